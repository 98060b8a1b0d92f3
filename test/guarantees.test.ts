/**
 * The guarantees of PROTOCOL.md when Redis misbehaves as ElastiCache can and when a valid token sends
 * what it should not: an acked message is stored exactly once under the seq of its ack, no two
 * messages of a room share a seq, and a retry answers the first ack.
 *
 * - A clientMsgId reused for another room or another text answers CONFLICT; nothing of it is
 *   delivered or stored, and the identical retry still answers the first ack.
 * - Redis loses its newest writes (an asynchronous failover): the room's stream cursor goes back and
 *   the retry records of the newest sends vanish. Seqs come from the ledger, so none is issued twice;
 *   retries are answered from the ledger; every message is stored once and reaches the reader.
 * - Redis loses everything (a new, empty node): the same holds.
 */
import { Redis } from "ioredis";
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;
let redis: Redis;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 1, persisters: 1 });
  redis = new Redis(stack.env.REDIS_URL as string, { keyPrefix: stack.env.REDIS_KEY_PREFIX });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  redis?.disconnect();
  await stack?.stop();
});

async function connect(userId: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.url, { token: await stack.token(userId) });
  clients.push(client);
  return client;
}

function send(client: TestClient, roomId: string, text: string, clientMsgId: string): Promise<Frame> {
  return client.request({ action: "sendMessage", roomId, text, clientMsgId }, "ack");
}

/** Every seq of the room's rows once, each row under the messageId and seq its ack gave. */
async function expectStoredAsAcked(roomId: string, acks: Frame[]): Promise<void> {
  await stack.waitForRows(roomId, acks.length);
  // Long enough for a doubled row to show up if there were one.
  await new Promise((r) => setTimeout(r, 1500));
  const rows = await stack.rows(roomId);
  expect(rows.map((r) => [r.seq, r.messageId])).toEqual(
    [...acks].sort((a, b) => a.seq - b.seq).map((a) => [a.seq, a.messageId]),
  );
}

test("a clientMsgId reused for another room or text answers CONFLICT, and nothing of it is delivered or stored", async () => {
  const [a, b] = [`${stack.id}-reuse-a`, `${stack.id}-reuse-b`];
  const sender = await connect("reuser");
  const reader = await connect("reader");
  for (const room of [a, b]) {
    await sender.request({ action: "joinRoom", roomId: room }, "joined");
    await reader.request({ action: "joinRoom", roomId: room }, "joined");
  }
  const first = await send(sender, a, "one", "x");
  expect(first).toMatchObject({ type: "ack", roomId: a, seq: 1 });

  const otherRoom = await send(sender, b, "one", "x");
  expect(otherRoom).toMatchObject({
    type: "error",
    code: "CONFLICT",
    action: "sendMessage",
    clientMsgId: "x",
  });
  expect(otherRoom.message).toMatch(/clientMsgId/);
  const otherText = await send(sender, a, "two", "x");
  expect(otherText).toMatchObject({ type: "error", code: "CONFLICT", clientMsgId: "x" });

  // The identical retry still answers the first ack; another user may use the same id.
  expect(await send(sender, a, "one", "x")).toEqual(first);
  const others = await send(reader, a, "mine", "x");
  expect(others).toMatchObject({ type: "ack", seq: 2 });

  // Redis forgets the send (its retry record expired or was lost): the ledger still tells.
  await redis.del("dedupe:reuser:x");
  expect(await send(sender, b, "one", "x")).toMatchObject({ type: "error", code: "CONFLICT" });
  expect(await send(sender, a, "one", "x")).toEqual(first);

  const next = await send(sender, b, "two", "y");
  expect(next).toMatchObject({ type: "ack", roomId: b });
  await reader.waitForMessages(b, 1);
  await reader.waitForMessages(a, 2);
  await new Promise((r) => setTimeout(r, 1000));
  expect(reader.messages(a).map((m) => [m.seq, m.text])).toEqual([
    [1, "one"],
    [2, "mine"],
  ]);
  expect(reader.messages(b).map((m) => m.text)).toEqual(["two"]);
  await expectStoredAsAcked(a, [first, others]);
  await expectStoredAsAcked(b, [next]);
  process.stderr.write(
    "guarantees (reused clientMsgId): 3 acked, 3 stored, 0 lost, 0 doubled, 0 seqs reused; " +
      "3 reuses answered CONFLICT, 0 of them delivered or stored\n",
  );
});

test("Redis losing its newest writes issues no seq twice, and retries answer their first ack", async () => {
  const room = `${stack.id}-failover`;
  const sender = await connect("writer");
  const reader = await connect("watcher");
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  await reader.request({ action: "joinRoom", roomId: room }, "joined");
  const acks: Frame[] = [];
  for (let i = 1; i <= 15; i++) acks.push(await send(sender, room, `before ${i}`, `m${i}`));
  expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
  await reader.waitForMessages(room, 15);

  // The failover lost the last five sends' writes: the stream cursor is five back, and their retry
  // records are gone.
  await redis.set(`room:${room}:seq`, "10");
  for (let i = 11; i <= 15; i++) await redis.del(`dedupe:writer:m${i}`);

  // A retry of a lost send answers its first ack and is not delivered again.
  expect(await send(sender, room, "before 15", "m15")).toEqual(acks[14]);
  for (let i = 16; i <= 20; i++) acks.push(await send(sender, room, `after ${i}`, `m${i}`));
  const seqs = acks.map((a) => a.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect(Math.min(...seqs.slice(15))).toBeGreaterThan(15);

  // The reader gets the new messages (after the stream gives up on the seqs it thinks it lacks),
  // in order, each once.
  await reader.waitForMessages(room, 20, 15_000);
  await expectStoredAsAcked(room, acks);
  expect(reader.messages(room).map((m) => m.seq)).toEqual([...seqs].sort((a, b) => a - b));
  process.stderr.write(
    `guarantees (Redis lost its newest writes): ${acks.length} acked, ${acks.length} stored, 0 lost, ` +
      "0 doubled, 0 seqs reused; the retry of a lost send answered its first ack\n",
  );
});

test("a Redis that lost everything continues the room's seqs, and answers retries from the ledger", async () => {
  const room = `${stack.id}-empty-redis`;
  const sender = await connect("survivor");
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  const acks: Frame[] = [];
  for (let i = 1; i <= 5; i++) acks.push(await send(sender, room, `old ${i}`, `s${i}`));
  await stack.waitForRows(room, 5);

  const mine = await redis.keys("*");
  const prefix = stack.env.REDIS_KEY_PREFIX as string;
  await redis.del(...mine.map((k) => k.slice(prefix.length)));

  expect(await send(sender, room, "old 5", "s5")).toEqual(acks[4]);
  for (let i = 6; i <= 8; i++) acks.push(await send(sender, room, `new ${i}`, `s${i}`));
  // The retry Redis forgot drew a seq before the ledger answered it (that seq carries no message):
  // the new ones continue after it, never below 6.
  const fresh = acks.slice(5).map((a) => a.seq);
  expect(fresh[0]).toBeGreaterThan(5);
  expect(fresh).toEqual([...fresh].sort((x, y) => x - y));
  expect(new Set(fresh).size).toBe(3);
  const joined = await sender.request({ action: "joinRoom", roomId: room }, "joined");
  expect(joined.lastSeq).toBe(fresh.at(-1));
  await expectStoredAsAcked(room, acks);
});
