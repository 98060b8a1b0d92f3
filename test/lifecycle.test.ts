/**
 * The connection lifecycle over the running local stack, with real WebSocket clients: the upgrade
 * decided by the token, join/leave/ping, the error frames, and the records in DynamoDB.
 */
import { Redis } from "ioredis";
import { refusedStatus, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";
import { craftToken, now } from "./support/tokens";

let stack: TestStack;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 1, persisters: 0 });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

async function connect(userId: string, name?: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.url, { token: await stack.token(userId, name) });
  clients.push(client);
  return client;
}

async function connectionCount(): Promise<number> {
  return stack.gateway.connectionCount();
}

describe("the upgrade", () => {
  test("is refused with 401 without a token, and no record is written", async () => {
    const before = await connectionCount();
    expect(await refusedStatus(stack.url)).toBe(401);
    expect(await connectionCount()).toBe(before);
  });

  test.each([
    ["garbage", async () => "not-a-token"],
    ["badly signed", () => craftToken({ sub: "mallory", exp: now() + 60 }, "wrong-secret")],
    ["expired", () => craftToken({ sub: "alice", exp: now() - 10 }, stack.env.JWT_SECRET as string)],
    ["without exp", () => craftToken({ sub: "alice" }, stack.env.JWT_SECRET as string)],
    [
      "alg none",
      async () =>
        `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(
          JSON.stringify({ sub: "alice", exp: now() + 60 }),
        ).toString("base64url")}.`,
    ],
    [
      "HS512 with the right secret",
      () => craftToken({ sub: "alice", exp: now() + 60 }, stack.env.JWT_SECRET as string, "HS512"),
    ],
    ["an empty sub", () => craftToken({ sub: "", exp: now() + 60 }, stack.env.JWT_SECRET as string)],
  ])("is refused with 401 for a token %s", async (_label, token) => {
    expect(await refusedStatus(stack.url, { token: await token() })).toBe(401);
  });

  test("is accepted with a token in the query or in the Authorization header", async () => {
    const byQuery = await connect("alice", "Alice");
    expect((await byQuery.request({ action: "ping" }, "pong")).type).toBe("pong");
    const byHeader = await TestClient.connect(stack.url, { header: `Bearer ${await stack.token("bob")}` });
    clients.push(byHeader);
    expect((await byHeader.request({ action: "ping" }, "pong")).type).toBe("pong");
  });
});

describe("rooms and records", () => {
  test("join, leave and disconnect write and remove the records in DynamoDB", async () => {
    const room = `${stack.id}-lobby`;
    const client = await connect("carol", "Carol");
    const joined = await client.request({ action: "joinRoom", roomId: room }, "joined");
    expect(joined).toEqual({ type: "joined", roomId: room, lastSeq: 0, lastReadSeq: 0 });

    const members = await stack.memberships(room);
    expect(members).toHaveLength(1);
    const connectionKey = members[0]?.sk as string;
    const connection = await stack.item(connectionKey, "META");
    expect(connection).toMatchObject({ userId: "carol", name: "Carol" });
    expect(typeof connection?.connectedAt).toBe("number");
    expect(connection?.expiresAt).toBeGreaterThan(Date.now() / 1000);

    // Joining twice is not an error and does not add a second record.
    expect((await client.request({ action: "joinRoom", roomId: room }, "joined")).type).toBe("joined");
    expect(await stack.memberships(room)).toHaveLength(1);

    expect(await client.request({ action: "leaveRoom", roomId: room }, "left")).toEqual({
      type: "left",
      roomId: room,
    });
    expect(await stack.memberships(room)).toHaveLength(0);
    // Leaving a room not joined is not an error either.
    expect((await client.request({ action: "leaveRoom", roomId: room }, "left")).type).toBe("left");

    await client.request({ action: "joinRoom", roomId: room }, "joined");
    await client.request({ action: "joinRoom", roomId: `${room}-2` }, "joined");
    await client.close();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await stack.item(connectionKey, "META")))
      await new Promise((r) => setTimeout(r, 50));
    expect(await stack.item(connectionKey, "META")).toBeUndefined();
    expect(await stack.memberships(room)).toHaveLength(0);
    expect(await stack.memberships(`${room}-2`)).toHaveLength(0);
  });

  test("several connections of one user are separate members and all receive the room's messages", async () => {
    const room = `${stack.id}-multi`;
    const phone = await connect("dave", "Dave");
    const laptop = await connect("dave", "Dave");
    await phone.request({ action: "joinRoom", roomId: room }, "joined");
    await laptop.request({ action: "joinRoom", roomId: room }, "joined");
    expect(await stack.memberships(room)).toHaveLength(2);
    const ack = await phone.request(
      { action: "sendMessage", roomId: room, text: "from my phone", clientMsgId: "m1" },
      "ack",
    );
    expect(ack.seq).toBe(1);
    for (const c of [phone, laptop]) {
      const msg = await c.next((f) => f.type === "message" && f.roomId === room);
      expect(msg).toMatchObject({ senderId: "dave", senderName: "Dave", text: "from my phone", seq: 1 });
    }
    // Leaving on one connection keeps the other a member.
    await laptop.request({ action: "leaveRoom", roomId: room }, "left");
    expect(await stack.memberships(room)).toHaveLength(1);
  });

  test("membership is remembered in Redis for sends, forgotten on leave and disconnect, and asked of DynamoDB when Redis has lost it", async () => {
    const room = `${stack.id}-remembered`;
    const redis = new Redis(stack.env.REDIS_URL as string, { keyPrefix: stack.env.REDIS_KEY_PREFIX });
    const remembered = () => redis.scard(`room:${room}:members`);
    try {
      const client = await connect("ivan");
      const errorOf = async (frame: Record<string, unknown>) => {
        const answer = client.next((f) => f.type === "error");
        client.send(JSON.stringify(frame));
        return answer;
      };
      const send = (clientMsgId: string) =>
        client.request({ action: "sendMessage", roomId: room, clientMsgId, text: clientMsgId }, "ack");
      await client.request({ action: "joinRoom", roomId: room }, "joined");
      expect(await remembered()).toBe(1); // recorded in DynamoDB, then remembered
      await send("first"); // answered by Redis
      await client.request({ action: "getHistory", roomId: room }, "history");

      // Redis lost it (a restart without persistence): DynamoDB still says member, and is asked.
      await redis.del(`room:${room}:members`);
      await send("second");
      expect(await remembered()).toBe(1);

      // Leaving forgets it at once: the next send and history read are refused.
      await client.request({ action: "leaveRoom", roomId: room }, "left");
      expect(await remembered()).toBe(0);
      expect(
        await errorOf({ action: "sendMessage", roomId: room, clientMsgId: "after-leave", text: "x" }),
      ).toMatchObject({ code: "NOT_A_MEMBER", clientMsgId: "after-leave" });
      expect(await errorOf({ action: "getHistory", roomId: room })).toMatchObject({ code: "NOT_A_MEMBER" });

      // Joining again works as before, and disconnecting forgets it too.
      await client.request({ action: "joinRoom", roomId: room }, "joined");
      await send("third");
      expect(await remembered()).toBe(1);
      await client.close();
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await remembered()) > 0) await new Promise((r) => setTimeout(r, 50));
      expect(await remembered()).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  test("joinRoom answers the room's newest seq", async () => {
    const room = `${stack.id}-seq`;
    const a = await connect("erin");
    await a.request({ action: "joinRoom", roomId: room }, "joined");
    for (let i = 1; i <= 3; i++) {
      await a.request({ action: "sendMessage", roomId: room, text: `n${i}`, clientMsgId: `s${i}` }, "ack");
    }
    const b = await connect("frank");
    expect(await b.request({ action: "joinRoom", roomId: room }, "joined")).toEqual({
      type: "joined",
      roomId: room,
      lastSeq: 3,
      lastReadSeq: 0,
    });
  });
});

describe("error frames (PROTOCOL.md's table), and the connection stays usable", () => {
  const room = () => `${stack.id}-errors`;
  let client: TestClient;

  beforeAll(async () => {
    client = await connect("grace");
    await client.request({ action: "joinRoom", roomId: room() }, "joined");
  });

  afterEach(async () => {
    expect((await client.request({ action: "ping" }, "pong")).type).toBe("pong");
  });

  const errorOf = async (frame: string | Record<string, unknown>) => {
    const answer = client.next((f) => f.type === "error");
    client.send(frame as string);
    return answer;
  };

  test.each([
    ["not JSON", "hello"],
    ["a JSON array", "[1,2]"],
    ["a JSON string", '"joinRoom"'],
    ["null", "null"],
  ])("BAD_REQUEST for %s", async (_label, frame) => {
    expect(await errorOf(frame)).toMatchObject({ type: "error", code: "BAD_REQUEST" });
  });

  test.each([
    ["an unknown action", { action: "shout" }, "shout"],
    ["no action", { roomId: "x" }, undefined],
    ["a non-string action", { action: 42 }, undefined],
  ])("UNKNOWN_ACTION for %s", async (_label, frame, echoed) => {
    const error = await errorOf(frame);
    expect(error).toMatchObject({ type: "error", code: "UNKNOWN_ACTION" });
    expect(error.action).toBe(echoed);
    expect(typeof error.message).toBe("string");
  });

  test.each([
    ["joinRoom without roomId", { action: "joinRoom" }],
    ["joinRoom with a numeric roomId", { action: "joinRoom", roomId: 7 }],
    ["joinRoom with a roomId out of pattern", { action: "joinRoom", roomId: "has space" }],
    ["joinRoom with a 65-char roomId", { action: "joinRoom", roomId: "r".repeat(65) }],
    ["leaveRoom with an empty roomId", { action: "leaveRoom", roomId: "" }],
    ["sendMessage without text", { action: "sendMessage", roomId: "r", clientMsgId: "c" }],
    [
      "sendMessage with only white space",
      { action: "sendMessage", roomId: "r", clientMsgId: "c", text: " \n\t " },
    ],
    ["sendMessage with an empty text", { action: "sendMessage", roomId: "r", clientMsgId: "c", text: "" }],
    ["sendMessage with a numeric text", { action: "sendMessage", roomId: "r", clientMsgId: "c", text: 5 }],
    [
      "sendMessage with a bad clientMsgId",
      { action: "sendMessage", roomId: "r", clientMsgId: "a b", text: "x" },
    ],
    ["sendMessage without clientMsgId", { action: "sendMessage", roomId: "r", text: "x" }],
    ["getHistory with a negative afterSeq", { action: "getHistory", roomId: "r", afterSeq: -1 }],
    ["getHistory with a fractional limit", { action: "getHistory", roomId: "r", limit: 2.5 }],
    ["getHistory with limit 101", { action: "getHistory", roomId: "r", limit: 101 }],
    ["getHistory with limit 0", { action: "getHistory", roomId: "r", limit: 0 }],
    ["getHistory with a string beforeSeq", { action: "getHistory", roomId: "r", beforeSeq: "5" }],
    [
      "getHistory with both afterSeq and beforeSeq",
      { action: "getHistory", roomId: "r", afterSeq: 1, beforeSeq: 5 },
    ],
  ])("BAD_REQUEST for %s, echoing the action", async (_label, frame) => {
    const error = await errorOf(frame);
    expect(error).toMatchObject({ type: "error", code: "BAD_REQUEST", action: frame.action });
    expect(error.message.length).toBeGreaterThan(10);
  });

  test("BAD_REQUEST echoes the clientMsgId of a sendMessage", async () => {
    const error = await errorOf({ action: "sendMessage", roomId: room(), clientMsgId: "echo-me", text: "" });
    expect(error).toMatchObject({ code: "BAD_REQUEST", action: "sendMessage", clientMsgId: "echo-me" });
  });

  test("TOO_LARGE for a text over 4,000 characters, counted in code points", async () => {
    const error = await errorOf({
      action: "sendMessage",
      roomId: room(),
      clientMsgId: "big",
      text: "x".repeat(4001),
    });
    expect(error).toMatchObject({ code: "TOO_LARGE", action: "sendMessage", clientMsgId: "big" });
    // 4,000 emoji are 8,000 UTF-16 units but 4,000 code points: accepted.
    const ack = await client.request(
      { action: "sendMessage", roomId: room(), clientMsgId: "emoji", text: "😀".repeat(4000) },
      "ack",
    );
    expect(ack.type).toBe("ack");
  });

  test("NOT_A_MEMBER for sendMessage and getHistory on a room not joined", async () => {
    const send = await errorOf({
      action: "sendMessage",
      roomId: `${stack.id}-elsewhere`,
      clientMsgId: "nm",
      text: "hi",
    });
    expect(send).toMatchObject({ code: "NOT_A_MEMBER", action: "sendMessage", clientMsgId: "nm" });
    const history = await errorOf({ action: "getHistory", roomId: `${stack.id}-elsewhere` });
    expect(history).toMatchObject({ code: "NOT_A_MEMBER", action: "getHistory" });
  });

  test("a frame over 32 KB closes the connection with 1009", async () => {
    const victim = await connect("heidi");
    victim.send({ action: "ping", pad: "x".repeat(33 * 1024) });
    expect((await victim.closed).code).toBe(1009);
  });
});
