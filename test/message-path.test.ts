/**
 * The message path over the running local stack: real WebSocket clients, Redis, a Kafka broker,
 * PostgreSQL and dynalite, the fan-out worker and the persister as their own processes.
 */
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 1, persisters: 1 });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

async function connect(userId: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.url, { token: await stack.token(userId, `User ${userId}`) });
  clients.push(client);
  return client;
}

/** Checks a client's frames of one room: each acked message exactly once, in seq order. */
function expectExactlyOnceInOrder(received: Frame[], acked: Map<number, Frame>): void {
  const seqs = received.map((m) => m.seq);
  expect(seqs).toEqual([...acked.keys()].sort((a, b) => a - b));
  for (const m of received) expect(m.messageId).toBe(acked.get(m.seq)?.messageId);
}

test("three rooms: every member receives each message once, in seq order; non-members nothing; PostgreSQL matches the acks", async () => {
  const rooms = ["a", "b", "c"].map((r) => `${stack.id}-room-${r}`);
  const perRoom = 4;
  const members: TestClient[][] = [];
  for (const [i, room] of rooms.entries()) {
    const list: TestClient[] = [];
    for (let j = 0; j < perRoom; j++) {
      const client = await connect(`u${i}${j}`);
      await client.request({ action: "joinRoom", roomId: room }, "joined");
      list.push(client);
    }
    members.push(list);
  }
  // One client in two rooms, and one in none.
  const both = await connect("both");
  await both.request({ action: "joinRoom", roomId: rooms[0] as string }, "joined");
  await both.request({ action: "joinRoom", roomId: rooms[1] as string }, "joined");
  members[0]?.push(both);
  members[1]?.push(both);
  const outsider = await connect("outsider");

  const messagesPerSender = 5;
  const acks = new Map<string, Map<number, Frame>>(rooms.map((r) => [r, new Map()]));
  const texts = new Map<string, string>();
  await Promise.all(
    rooms.flatMap((room, i) =>
      (members[i] ?? []).map(async (client, j) => {
        for (let k = 0; k < messagesPerSender; k++) {
          const clientMsgId = `m-${i}-${j}-${k}`;
          const text = `message ${k} from ${j} in ${room} ✓`;
          const ack = await client.request({ action: "sendMessage", roomId: room, text, clientMsgId }, "ack");
          expect(ack).toMatchObject({ type: "ack", roomId: room, clientMsgId });
          expect(typeof ack.messageId).toBe("string");
          acks.get(room)?.set(ack.seq, ack);
          texts.set(ack.messageId, text);
        }
      }),
    ),
  );

  for (const [i, room] of rooms.entries()) {
    const acked = acks.get(room) as Map<number, Frame>;
    const expected = (members[i]?.length ?? 0) * messagesPerSender;
    expect(acked.size).toBe(expected);
    // Seqs are 1..n with no gap: the server assigned them in the order it accepted them.
    expect([...acked.keys()].sort((a, b) => a - b)).toEqual(
      Array.from({ length: expected }, (_, k) => k + 1),
    );
    for (const client of members[i] ?? []) {
      const received = await client.waitForMessages(room, expected);
      expectExactlyOnceInOrder(received, acked);
      for (const m of received) {
        expect(m.text).toBe(texts.get(m.messageId));
        expect(m.senderName).toMatch(/^User /);
        expect(new Date(m.sentAt).toISOString()).toBe(m.sentAt);
      }
    }
    await stack.waitForRows(room, expected);
    const rows = await stack.rows(room);
    expect(rows.map((r) => r.seq)).toEqual([...acked.keys()].sort((a, b) => a - b));
    for (const row of rows) {
      expect(row.messageId).toBe(acked.get(row.seq)?.messageId);
      expect(row.text).toBe(texts.get(row.messageId));
    }
  }
  // Give a late delivery the chance to show up before declaring the outsider clean.
  await new Promise((r) => setTimeout(r, 500));
  expect(outsider.frames.filter((f) => f.type === "message")).toEqual([]);
  // The client in two rooms got each room's messages, and only those.
  expect(both.frames.filter((f) => f.type === "message" && !rooms.slice(0, 2).includes(f.roomId))).toEqual(
    [],
  );
});

test("a retried sendMessage answers the same messageId and seq, and is delivered and stored once", async () => {
  const room = `${stack.id}-retry`;
  const sender = await connect("retrier");
  const reader = await connect("reader");
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  await reader.request({ action: "joinRoom", roomId: room }, "joined");
  const frame = { action: "sendMessage", roomId: room, text: "only once", clientMsgId: "same-id" };
  const first = await sender.request(frame, "ack");
  const second = await sender.request(frame, "ack");
  expect(second).toEqual(first);
  await reader.waitForMessages(room, 1);
  await stack.waitForRows(room, 1);
  await new Promise((r) => setTimeout(r, 500));
  expect(reader.messages(room)).toHaveLength(1);
  expect(await stack.rows(room)).toHaveLength(1);
});

test("a join is visible to the next message, and a leave stops delivery", async () => {
  const room = `${stack.id}-membership`;
  const a = await connect("early");
  await a.request({ action: "joinRoom", roomId: room }, "joined");
  await a.request({ action: "sendMessage", roomId: room, text: "before", clientMsgId: "j1" }, "ack");
  const b = await connect("late");
  const joined = await b.request({ action: "joinRoom", roomId: room }, "joined");
  expect(joined.lastSeq).toBe(1);
  await a.request({ action: "sendMessage", roomId: room, text: "after", clientMsgId: "j2" }, "ack");
  expect((await b.next((f) => f.type === "message" && f.roomId === room)).seq).toBe(2);
  await b.request({ action: "leaveRoom", roomId: room }, "left");
  await a.request({ action: "sendMessage", roomId: room, text: "gone", clientMsgId: "j3" }, "ack");
  await a.waitForMessages(room, 3);
  await new Promise((r) => setTimeout(r, 300));
  expect(b.messages(room).map((m) => m.seq)).toEqual([2]);
});

test("a stale connection (gone without $disconnect) is cleaned on the first 410", async () => {
  const room = `${stack.id}-stale`;
  const live = await connect("alive");
  await live.request({ action: "joinRoom", roomId: room }, "joined");
  const ghost = await connect("ghost");
  await ghost.request({ action: "joinRoom", roomId: room }, "joined");
  // Its own presence event reached it while it was there (else that post would be the first 410).
  await ghost.next((f) => f.type === "presence" && f.userId === "ghost");
  const memberships = await stack.memberships(room);
  const records = await Promise.all(
    memberships.map(async (membership) => ({
      membership,
      meta: await stack.item(membership.sk as string, "META"),
    })),
  );
  const ghostRecords = records.find((r) => r.meta?.userId === "ghost");
  expect(ghostRecords?.meta).toBeDefined();
  // The socket drops; its records are put back as they were, as if $disconnect had never run.
  ghost.ws.terminate();
  await ghost.closed;
  await new Promise((r) => setTimeout(r, 300));
  await stack.putItems([ghostRecords?.membership, ghostRecords?.meta] as Record<string, unknown>[]);
  expect(await stack.memberships(room)).toHaveLength(2);

  await live.request({ action: "sendMessage", roomId: room, text: "anyone?", clientMsgId: "s1" }, "ack");
  await live.waitForMessages(room, 1);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await stack.memberships(room)).length > 1) {
    await new Promise((r) => setTimeout(r, 50));
  }
  expect((await stack.memberships(room)).map((i) => i.userId)).toEqual(["alive"]);
  expect(await stack.item(ghostRecords?.meta?.pk as string, "META")).toBeUndefined();
});

test("the meter counts what the handlers call, from the thread they run in", async () => {
  // The handlers run in a thread of their own (GATEWAY_HANDLER_THREADS, default 1); their DynamoDB
  // units and Kafka appends reach the stack's meter by message, after the acks.
  const room = `${stack.id}-metered`;
  const sender = await connect("metered");
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  const before = stack.meter.snapshot();
  for (let i = 0; i < 3; i++) {
    const ack = await sender.request(
      { action: "sendMessage", roomId: room, text: `m${i}`, clientMsgId: `m-${i}` },
      "ack",
    );
    expect(ack).toMatchObject({ type: "ack", seq: i + 1 });
  }
  const deadline = Date.now() + 5000;
  let after = stack.meter.snapshot();
  while (after.kafka.records < before.kafka.records + 3 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    after = stack.meter.snapshot();
  }
  expect(after.kafka.records - before.kafka.records).toBe(3);
  expect(after.kafka.bytesIn).toBeGreaterThan(before.kafka.bytesIn);
  expect(after.dynamodb.writeUnits).toBeGreaterThan(before.dynamodb.writeUnits);
  const sends = (s: typeof before) => s.lambda.byHandler.sendMessage?.invocations ?? 0;
  expect(sends(after) - sends(before)).toBe(3);
});
