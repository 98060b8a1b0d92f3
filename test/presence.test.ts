/**
 * Presence and typing (PROTOCOL.md v1.1) with real clients and real time against the local stack:
 * a user online with its first connection and offline with its last, two connections of one user,
 * a reconnect within the grace that shows no flap, typing throttled per user and room and dropped
 * when late, and access. The room's fan-out stream carries presence and typing in order with its
 * messages, so a message sent after an action proves what that action did or did not announce.
 */

import { sleep } from "../core/retry";
import type { Frame, TestClient } from "./support/client";
import { stackPerFile } from "./support/stack";

const GRACE_SECONDS = 3;

const { stack, connect, room } = stackPerFile({
  fanoutWorkers: 1,
  persisters: 0,
  settings: { PRESENCE_GRACE_SECONDS: String(GRACE_SECONDS) },
});
let marks = 0;

/** Sends a message and waits until `watcher` has it: every notice put on the stream before it has arrived. */
async function mark(sender: TestClient, watcher: TestClient, roomId: string): Promise<void> {
  const clientMsgId = `mark${++marks}`;
  const ack = await sender.request({ action: "sendMessage", roomId, text: "mark", clientMsgId }, "ack");
  expect(ack).toMatchObject({ type: "ack" });
  await watcher.next((f) => f.type === "message" && f.roomId === roomId && f.seq === ack.seq, 15_000);
}

const presenceOf = (client: TestClient, roomId: string, userId: string) =>
  client.frames.filter((f) => f.type === "presence" && f.roomId === roomId && f.userId === userId);

test("online with the first connection, no flap from a second, offline when the last one leaves", async () => {
  const id = room("two-connections");
  const bob = await connect("pr-bob", "Bob");
  await bob.request({ action: "joinRoom", roomId: id }, "joined");
  const laptop = await connect("pr-alice", "Alice");
  await laptop.request({ action: "joinRoom", roomId: id }, "joined");
  expect(await bob.next((f) => f.type === "presence" && f.userId === "pr-alice")).toEqual({
    type: "presence",
    roomId: id,
    userId: "pr-alice",
    name: "Alice",
    state: "online",
  });
  const list = await bob.request({ action: "getPresence", roomId: id }, "presenceList");
  expect(list).toEqual({
    type: "presenceList",
    roomId: id,
    users: [
      { userId: "pr-alice", name: "Alice" },
      { userId: "pr-bob", name: "Bob" },
    ],
    count: 2,
  });

  // A second connection of the same user: no second `online`.
  const phone = await connect("pr-alice", "Alice");
  await phone.request({ action: "joinRoom", roomId: id }, "joined");
  // One of two leaves: still online.
  await laptop.request({ action: "leaveRoom", roomId: id }, "left");
  await mark(bob, bob, id);
  expect(presenceOf(bob, id, "pr-alice").map((f) => f.state)).toEqual(["online"]);

  // The last one leaves: offline at once.
  await phone.request({ action: "leaveRoom", roomId: id }, "left");
  await mark(bob, bob, id);
  expect(presenceOf(bob, id, "pr-alice").map((f) => f.state)).toEqual(["online", "offline"]);
  const after = await bob.request({ action: "getPresence", roomId: id }, "presenceList");
  expect(after).toMatchObject({ users: [{ userId: "pr-bob" }], count: 1 });
});

test("a reconnect within the grace shows no flap; a user gone longer goes offline after the grace", async () => {
  const id = room("grace");
  const bob = await connect("gr-bob");
  await bob.request({ action: "joinRoom", roomId: id }, "joined");
  const first = await connect("gr-carol");
  await first.request({ action: "joinRoom", roomId: id }, "joined");
  await bob.next((f) => f.type === "presence" && f.userId === "gr-carol" && f.state === "online");

  // As after API Gateway's 2-hour cap: the connection closes and the client is back within a second.
  await first.close();
  await sleep(500);
  const second = await connect("gr-carol");
  await second.request({ action: "resume", rooms: [{ roomId: id, afterSeq: 0 }] }, "resumed");
  await sleep(GRACE_SECONDS * 1000 + 1500);
  await mark(bob, bob, id);
  expect(presenceOf(bob, id, "gr-carol").map((f) => f.state)).toEqual(["online"]);
  expect(await bob.request({ action: "getPresence", roomId: id }, "presenceList")).toMatchObject({
    count: 2,
  });

  // Gone for good: still shown during the grace, offline after it.
  const closedAt = Date.now();
  await second.close();
  const shown = await bob.request({ action: "getPresence", roomId: id }, "presenceList");
  expect((shown.users as Frame[]).map((u) => u.userId)).toContain("gr-carol");
  const offline = await bob.next(
    (f) => f.type === "presence" && f.userId === "gr-carol" && f.state === "offline",
    15_000,
  );
  expect(offline).toMatchObject({ roomId: id });
  expect(Date.now() - closedAt).toBeGreaterThanOrEqual(GRACE_SECONDS * 1000 - 250);
  const list = await bob.request({ action: "getPresence", roomId: id }, "presenceList");
  expect(list).toMatchObject({ users: [{ userId: "gr-bob" }], count: 1 });
});

test("typing reaches the others at most once per 2 seconds per user, never the typist, and is never answered", async () => {
  const id = room("typing");
  const dave = await connect("ty-dave", "Dave");
  const erin = await connect("ty-erin");
  const daveOther = await connect("ty-dave", "Dave");
  for (const c of [dave, erin, daveOther]) await c.request({ action: "joinRoom", roomId: id }, "joined");

  for (let i = 0; i < 5; i++) dave.send({ action: "typing", roomId: id });
  await erin.next((f) => f.type === "typing");
  // Typing is never answered, so nothing says when the other four were handled: give them time.
  await sleep(500);
  await mark(erin, erin, id);
  const typingOf = (c: TestClient) => c.frames.filter((f) => f.type === "typing" && f.roomId === id);
  expect(typingOf(erin)).toEqual([{ type: "typing", roomId: id, userId: "ty-dave", name: "Dave" }]);
  // The typist's own connection is not told; its other connection is (another device).
  await mark(erin, dave, id);
  await mark(erin, daveOther, id);
  expect(typingOf(dave)).toEqual([]);
  expect(typingOf(daveOther)).toHaveLength(1);
  // Nothing answers a typing frame.
  expect(dave.frames.filter((f) => f.type === "error")).toEqual([]);

  await sleep(2100);
  dave.send({ action: "typing", roomId: id });
  await erin.next((f) => f.type === "typing");
  expect(typingOf(erin)).toHaveLength(2);
  // Not stored and not in history.
  const history = await erin.request({ action: "getHistory", roomId: id }, "history");
  expect((history.messages as Frame[]).every((m) => m.text === "mark")).toBe(true);
});

test("typing is dropped rather than delivered late: a stalled fan-out does not replay it", async () => {
  const id = room("late");
  const frank = await connect("lt-frank");
  const gina = await connect("lt-gina");
  for (const c of [frank, gina]) await c.request({ action: "joinRoom", roomId: id }, "joined");
  await mark(frank, gina, id);

  const worker = stack().workers.find((w) => w.kind === "fanout");
  const pid = worker?.child.pid;
  if (pid === undefined) throw new Error("the stack runs no fan-out worker");
  // The fan-out stalls (as a long GC pause or a starved task would) while typing and a message wait.
  process.kill(pid, "SIGSTOP");
  try {
    frank.send({ action: "typing", roomId: id });
    await sleep(200);
    await frank.request({ action: "sendMessage", roomId: id, text: "after", clientMsgId: "late1" }, "ack");
    await sleep(3500);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  const delivered = await gina.next((f) => f.type === "message" && f.text === "after", 15_000);
  expect(delivered).toMatchObject({ roomId: id });
  expect(gina.frames.filter((f) => f.type === "typing")).toEqual([]);
});

test("presence and typing of a room the user may not enter are FORBIDDEN; of one not joined, NOT_A_MEMBER", async () => {
  const owner = await connect("ac-owner");
  const outsider = await connect("ac-outsider");
  const id = room("private");
  await owner.request({ action: "createRoom", roomId: id }, "created");
  for (const action of ["getPresence", "typing"]) {
    expect(await outsider.request({ action, roomId: id }, "presenceList")).toEqual(
      expect.objectContaining({ type: "error", code: "FORBIDDEN", action }),
    );
  }
  expect(await outsider.request({ action: "getPresence", roomId: room("public") }, "presenceList")).toEqual(
    expect.objectContaining({ type: "error", code: "NOT_A_MEMBER", action: "getPresence" }),
  );
  await mark(owner, owner, id);
  expect(owner.frames.filter((f) => f.type === "typing")).toEqual([]);
  expect(await outsider.request({ action: "typing" }, "presenceList")).toEqual(
    expect.objectContaining({ type: "error", code: "BAD_REQUEST", action: "typing" }),
  );
});
