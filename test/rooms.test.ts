/**
 * Rooms you may enter (PROTOCOL.md v1.1), with real clients against the local stack: private rooms
 * and invitations, removal while connected, direct rooms, rooms that follow the user to another
 * device, read positions, and the limits per user. The hostile cases are the point: a non-member
 * guessing a private room's id, a removed member still connected, a third user at a direct room,
 * one user's many connections against the rate limit, and a flood of joins to random rooms.
 */

import { sleep } from "../core/retry";
import { type Frame, refusedStatus, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

const MAX_MEMBERS = 4;
const MAX_CONNECTIONS = 3;
const SEND_BURST = 10;
const ACTION_BURST = 15;

let stack: TestStack;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    settings: {
      ROOM_MAX_MEMBERS: String(MAX_MEMBERS),
      MAX_CONNECTIONS_PER_USER: String(MAX_CONNECTIONS),
      RATE_LIMIT_PER_SECOND: "5",
      RATE_LIMIT_BURST: String(SEND_BURST),
      ACTION_RATE_LIMIT_PER_SECOND: "5",
      ACTION_RATE_LIMIT_BURST: String(ACTION_BURST),
    },
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

async function connect(userId: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.url, { token: await stack.token(userId) });
  clients.push(client);
  return client;
}

const room = (name: string) => `${stack.id}-${name}`;

function error(code: string, action: string): Frame {
  return expect.objectContaining({ type: "error", code, action });
}

test("a private room: the owner creates and invites; a guessing outsider gets FORBIDDEN and nothing of the room", async () => {
  const owner = await connect("p-owner");
  const guest = await connect("p-guest");
  const outsider = await connect("p-outsider");
  const id = room("private");

  expect(await owner.request({ action: "createRoom", roomId: id, members: ["p-guest"] }, "created")).toEqual({
    type: "created",
    roomId: id,
  });
  // The invitee's open connection is told.
  expect(await guest.next((f) => f.type === "invited")).toEqual({
    type: "invited",
    roomId: id,
    userId: "p-guest",
  });
  expect(await owner.request({ action: "createRoom", roomId: id }, "created")).toEqual(
    error("ROOM_EXISTS", "createRoom"),
  );
  const ack = await owner.request(
    { action: "sendMessage", roomId: id, text: "secret", clientMsgId: "s1" },
    "ack",
  );
  expect(ack).toMatchObject({ type: "ack", seq: 1 });

  // The outsider guesses the id: every way in is refused.
  expect(await outsider.request({ action: "joinRoom", roomId: id }, "joined")).toEqual(
    error("FORBIDDEN", "joinRoom"),
  );
  expect(await outsider.request({ action: "getHistory", roomId: id, afterSeq: 0 }, "history")).toEqual(
    error("FORBIDDEN", "getHistory"),
  );
  expect(
    await outsider.request({ action: "sendMessage", roomId: id, text: "x", clientMsgId: "o1" }, "ack"),
  ).toEqual(expect.objectContaining({ code: "FORBIDDEN", clientMsgId: "o1" }));
  expect(await outsider.request({ action: "invite", roomId: id, userId: "p-outsider" }, "invited")).toEqual(
    error("FORBIDDEN", "invite"),
  );
  expect(await outsider.request({ action: "markRead", roomId: id, seq: 1 }, "read")).toEqual(
    error("FORBIDDEN", "markRead"),
  );
  // Only the owner invites; a member cannot.
  expect(await guest.request({ action: "joinRoom", roomId: id }, "joined")).toMatchObject({
    type: "joined",
    lastSeq: 1,
    lastReadSeq: 0,
  });
  expect(await guest.request({ action: "invite", roomId: id, userId: "p-outsider" }, "invited")).toEqual(
    error("FORBIDDEN", "invite"),
  );
  const history = await guest.request({ action: "getHistory", roomId: id, afterSeq: 0 }, "history");
  expect((history.messages as Frame[]).map((m) => m.text)).toEqual(["secret"]);
  await sleep(500);
  expect(outsider.frames.filter((f) => f.roomId === id && f.type !== "error")).toEqual([]);

  // Invited later, the outsider may enter.
  expect(await owner.request({ action: "invite", roomId: id, userId: "p-outsider" }, "invited")).toEqual({
    type: "invited",
    roomId: id,
    userId: "p-outsider",
  });
  expect(await outsider.next((f) => f.type === "invited" && f.roomId === id)).toMatchObject({
    userId: "p-outsider",
  });
  expect(await outsider.request({ action: "joinRoom", roomId: id }, "joined")).toMatchObject({
    type: "joined",
  });
});

test("a removed member still connected gets `removed` and nothing more of the room, and cannot come back", async () => {
  const owner = await connect("r-owner");
  const member = await connect("r-member");
  const memberPhone = await connect("r-member");
  const id = room("removal");
  await owner.request({ action: "createRoom", roomId: id, members: ["r-member"] }, "created");
  await member.request({ action: "joinRoom", roomId: id }, "joined");
  await memberPhone.request({ action: "joinRoom", roomId: id }, "joined");
  await owner.request({ action: "sendMessage", roomId: id, text: "before", clientMsgId: "b" }, "ack");
  await member.waitForMessages(id, 1);

  expect(await owner.request({ action: "removeMember", roomId: id, userId: "r-member" }, "removed")).toEqual({
    type: "removed",
    roomId: id,
    userId: "r-member",
  });
  for (let i = 0; i < 5; i++) {
    await owner.request(
      { action: "sendMessage", roomId: id, text: `after ${i}`, clientMsgId: `a${i}` },
      "ack",
    );
  }
  for (const c of [member, memberPhone]) {
    const removed = await c.next((f) => f.type === "removed" && f.roomId === id);
    expect(removed).toEqual({ type: "removed", roomId: id, userId: "r-member" });
  }
  await owner.waitForMessages(id, 6);
  await sleep(1000);
  for (const c of [member, memberPhone]) {
    // Everything of the room it got came before the `removed` frame, and none of it after.
    const ofRoom = c.frames.filter((f) => f.roomId === id && (f.type === "message" || f.type === "removed"));
    expect(ofRoom.map((f) => (f.type === "removed" ? "removed" : f.text))).toEqual(["before", "removed"]);
  }
  expect(
    await member.request({ action: "sendMessage", roomId: id, text: "still?", clientMsgId: "x" }, "ack"),
  ).toEqual(expect.objectContaining({ code: "FORBIDDEN" }));
  expect(await member.request({ action: "getHistory", roomId: id }, "history")).toEqual(
    error("FORBIDDEN", "getHistory"),
  );
  expect(await member.request({ action: "joinRoom", roomId: id }, "joined")).toEqual(
    error("FORBIDDEN", "joinRoom"),
  );
  expect(await stack.items("USER#r-member")).toEqual([]);
  expect(await stack.memberships(id)).toHaveLength(1);
});

test("a direct room is one room for the pair whichever opens it; a third user cannot enter", async () => {
  const ann = await connect("d-ann");
  const ben = await connect("d-ben");
  const eve = await connect("d-eve");
  const opened = await ann.request({ action: "openDirect", userId: "d-ben" }, "direct");
  expect(opened).toMatchObject({ type: "direct", userId: "d-ben" });
  const told = await ben.next((f) => f.type === "direct");
  expect(told).toEqual({ type: "direct", roomId: opened.roomId, userId: "d-ann" });
  const reopened = await ben.request({ action: "openDirect", userId: "d-ann" }, "direct");
  expect(reopened.roomId).toBe(opened.roomId);

  await ann.request(
    { action: "sendMessage", roomId: opened.roomId, text: "just us", clientMsgId: "d1" },
    "ack",
  );
  expect((await ben.waitForMessages(opened.roomId, 1)).map((m) => m.text)).toEqual(["just us"]);
  expect(await eve.request({ action: "joinRoom", roomId: opened.roomId }, "joined")).toEqual(
    error("FORBIDDEN", "joinRoom"),
  );
  expect(await eve.request({ action: "getHistory", roomId: opened.roomId }, "history")).toEqual(
    error("FORBIDDEN", "getHistory"),
  );
  expect(await eve.request({ action: "createRoom", roomId: opened.roomId }, "created")).toEqual(
    error("FORBIDDEN", "createRoom"),
  );
  expect(await eve.request({ action: "openDirect", userId: "d-eve" }, "direct")).toEqual(
    error("BAD_REQUEST", "openDirect"),
  );
  // The direct prefix is no one's to squat as a public room before the pair opens it.
  expect(await eve.request({ action: "joinRoom", roomId: "dm.not-yet-opened" }, "joined")).toEqual(
    error("FORBIDDEN", "joinRoom"),
  );
});

test("rooms follow the user to another device, with their seqs and a read position that never goes back", async () => {
  const laptop = await connect("f-user");
  const pub = room("follow-public");
  const priv = room("follow-private");
  await laptop.request({ action: "joinRoom", roomId: pub }, "joined");
  await laptop.request({ action: "createRoom", roomId: priv }, "created");
  for (let i = 1; i <= 3; i++) {
    await laptop.request({ action: "sendMessage", roomId: pub, text: `m${i}`, clientMsgId: `f${i}` }, "ack");
  }
  expect(await laptop.request({ action: "markRead", roomId: pub, seq: 2 }, "read")).toEqual({
    type: "read",
    roomId: pub,
    seq: 2,
  });
  expect(await laptop.request({ action: "markRead", roomId: pub, seq: 1 }, "read")).toEqual({
    type: "read",
    roomId: pub,
    seq: 2,
  });

  const phone = await connect("f-user");
  const listed = await phone.request({ action: "listRooms" }, "rooms");
  expect([...(listed.rooms as Frame[])].sort((a, b) => a.roomId.localeCompare(b.roomId))).toEqual(
    [
      { roomId: pub, kind: "public", lastSeq: 3, lastReadSeq: 2 },
      { roomId: priv, kind: "private", lastSeq: 0, lastReadSeq: 0 },
    ].sort((a, b) => a.roomId.localeCompare(b.roomId)),
  );
  expect(await phone.request({ action: "joinRoom", roomId: pub }, "joined")).toEqual({
    type: "joined",
    roomId: pub,
    lastSeq: 3,
    lastReadSeq: 2,
  });
  // Leaving takes the public room off the user's list.
  await phone.request({ action: "leaveRoom", roomId: pub }, "left");
  const after = await laptop.request({ action: "listRooms" }, "rooms");
  expect((after.rooms as Frame[]).map((r) => r.roomId)).toEqual([priv]);
});

test("ROOM_FULL at ROOM_MAX_MEMBERS member users, for joins, invitations and creation", async () => {
  const id = room("full");
  const users = await Promise.all(["full0", "full1", "full2", "full3", "full4"].map(connect));
  for (const u of users.slice(0, MAX_MEMBERS)) {
    expect(await u.request({ action: "joinRoom", roomId: id }, "joined")).toMatchObject({ type: "joined" });
  }
  expect(await users[4]?.request({ action: "joinRoom", roomId: id }, "joined")).toEqual(
    error("ROOM_FULL", "joinRoom"),
  );
  // A member's second connection is no new member user.
  const again = await connect("full0");
  expect(await again.request({ action: "joinRoom", roomId: id }, "joined")).toMatchObject({ type: "joined" });

  const owner = users[0] as TestClient;
  expect(
    await owner.request(
      { action: "createRoom", roomId: room("full-private"), members: ["a", "b", "c", "d"] },
      "created",
    ),
  ).toEqual(error("ROOM_FULL", "createRoom"));
  await owner.request(
    { action: "createRoom", roomId: room("full-private"), members: ["a", "b", "c"] },
    "created",
  );
  expect(
    await owner.request({ action: "invite", roomId: room("full-private"), userId: "e" }, "invited"),
  ).toEqual(error("ROOM_FULL", "invite"));
});

test("MAX_CONNECTIONS_PER_USER: the next upgrade is refused with 429 until one closes", async () => {
  const open: TestClient[] = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) open.push(await connect("c-many"));
  expect(await refusedStatus(stack.url, { token: await stack.token("c-many") })).toBe(429);
  // Another user is not affected.
  await connect("c-other");
  await open[0]?.close();
  await sleep(300);
  const replacement = await connect("c-many");
  expect((await replacement.request({ action: "ping" }, "pong")).type).toBe("pong");
});

test("one user's connections share one allowance; a flood of joins to random rooms is RATE_LIMITED", async () => {
  const id = room("flood");
  const conns = [await connect("rl-user"), await connect("rl-user"), await connect("rl-user")];
  for (const c of conns) await c.request({ action: "joinRoom", roomId: id }, "joined");
  await sleep(ACTION_BURST * 200);
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      (conns[i % 3] as TestClient).request(
        { action: "sendMessage", roomId: id, text: `flood ${i}`, clientMsgId: `fl${i}` },
        "ack",
      ),
    ),
  );
  const acked = answers.filter((a) => a.type === "ack").length;
  const limited = answers.filter((a) => a.code === "RATE_LIMITED").length;
  // Burst plus what refills at 5 a second while the flood lasts, shared by the three connections.
  expect(acked).toBeGreaterThanOrEqual(SEND_BURST);
  expect(acked).toBeLessThan(SEND_BURST + 10);
  expect(acked + limited).toBe(60);

  // Answers to joins carry no request id: send them all, then count the answers.
  const joiner = await connect("rl-joiner");
  for (let i = 0; i < 60; i++) joiner.send({ action: "joinRoom", roomId: room(`random-${i}`) });
  const deadline = Date.now() + 15_000;
  const answered = () => joiner.frames.filter((f) => f.type === "joined" || f.action === "joinRoom");
  while (answered().length < 60 && Date.now() < deadline) await sleep(50);
  const joined = answered().filter((f) => f.type === "joined").length;
  expect(answered().length).toBe(60);
  expect(joined).toBeGreaterThanOrEqual(ACTION_BURST - 1);
  expect(joined).toBeLessThan(ACTION_BURST + 10);
  expect(answered().filter((f) => f.code === "RATE_LIMITED").length).toBe(60 - joined);
  process.stderr.write(
    `rooms: 60 sends from 3 connections of one user: ${acked} acked, ${limited} RATE_LIMITED; ` +
      `60 joins of random rooms: ${joined} joined, ${60 - joined} RATE_LIMITED\n`,
  );
});
