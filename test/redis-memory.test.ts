/**
 * Redis memory is bounded by design, and a full Redis loses nothing. The stack runs on a Redis of
 * this test's own with `noeviction` (as the CDK app sets on ElastiCache) and a `maxmemory` a little
 * above what it holds at rest. With the fan-out worker stopped (a lagging fan-out: its stream grows),
 * a flood of 16 KB messages fills Redis: sends are answered INTERNAL, and the senders retry with the
 * same clientMsgId. Once a fan-out worker runs again it delivers the backlog and trims the stream,
 * the memory comes back, and every send is acked. Then:
 * - every acked message is stored once, under the seq and messageId of its ack; no seq twice;
 * - a retry of an acked message answers its first ack;
 * - at rest, Redis holds per message only its retry record (no text), the room's recent window, and
 *   nothing on the streams or the pending list; every room key and retry record expires.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedis } from "../local/services/redis";
import type { RunningService } from "../local/services/types";
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

const SENDERS = 6;
const PER_SENDER = 30;
const ROOMS = 2;
const RECENT = 5;
/** Nearly 4,000 code points of 4 UTF-8 bytes each: about the largest text PROTOCOL.md allows. */
const BIG = "🦜".repeat(3990);

let dir: string;
let redisServer: RunningService;
let redis: Redis;
let stack: TestStack;
const clients: TestClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "chat-redis-memory-"));
  redisServer = await startRedis({ dataDir: dir });
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    settings: {
      REDIS_URL: redisServer.url,
      RECENT_HISTORY_SIZE: String(RECENT),
      RATE_LIMIT_PER_SECOND: "1000",
      RATE_LIMIT_BURST: "1000",
      // Every refused send is logged at error level; the test counts them itself.
      LOG_LEVEL: "fatal",
    },
  });
  redis = new Redis(redisServer.url);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  redis?.disconnect();
  await stack?.stop();
  await redisServer?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const roomOf = (i: number) => `${stack.id}-flood-${i % ROOMS}`;
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);

/** INTERNAL answers so far, across senders. */
let refused = 0;

/** Sends until acked, retrying INTERNAL with the same clientMsgId; answers the ack and the INTERNALs. */
async function sendUntilAcked(
  client: TestClient,
  frame: Record<string, string>,
): Promise<{ ack: Frame; internal: number }> {
  let internal = 0;
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const answer = await client.request({ action: "sendMessage", ...frame }, "ack", 15_000);
    if (answer.type === "ack") return { ack: answer, internal };
    expect(answer).toMatchObject({ type: "error", code: "INTERNAL", clientMsgId: frame.clientMsgId });
    internal++;
    refused++;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${frame.clientMsgId} was not acked within 90 s`);
}

test("a flood that fills Redis loses nothing, doubles nothing, and sends succeed again once the backlog is delivered", async () => {
  const senders: TestClient[] = [];
  for (let i = 0; i < SENDERS; i++) {
    const client = await TestClient.connect(stack.url, { token: await stack.token(`flooder${i}`) });
    clients.push(client);
    senders.push(client);
    await client.request({ action: "joinRoom", roomId: roomOf(i) }, "joined");
  }
  const reader = await TestClient.connect(stack.url, { token: await stack.token("listener") });
  clients.push(reader);
  for (let r = 0; r < ROOMS; r++) await reader.request({ action: "joinRoom", roomId: roomOf(r) }, "joined");

  // The fan-out lags: its stream only grows.
  const fanout = stack.workers.find((w) => w.kind === "fanout" && w.child.exitCode === null);
  if (!fanout) throw new Error("no fan-out worker");
  fanout.child.kill("SIGTERM");
  await fanout.exited;

  const atRest = await usedMemory();
  const limit = atRest + 2 * 1024 * 1024;
  await redis.config("SET", "maxmemory", String(limit));

  let internal = 0;
  const acks = new Map<string, Frame>();
  const flood = Promise.all(
    senders.map(async (client, i) => {
      for (let k = 0; k < PER_SENDER; k++) {
        const clientMsgId = `f${i}-${k}`;
        const sent = await sendUntilAcked(client, { roomId: roomOf(i), text: `${k} ${BIG}`, clientMsgId });
        internal += sent.internal;
        acks.set(clientMsgId, sent.ack);
      }
    }),
  );
  // Once the flood has filled Redis, a fan-out worker comes back and drains the backlog.
  const deadline = Date.now() + 60_000;
  while (refused === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(refused).toBeGreaterThan(0);
  stack.spawnWorker("fanout");
  await flood;
  process.stderr.write(
    `redis memory: ${SENDERS * PER_SENDER} sends of 16 KB against maxmemory ${limit} (${atRest} at rest): ` +
      `${internal} INTERNAL while full, every send acked in the end\n`,
  );
  expect(acks.size).toBe(SENDERS * PER_SENDER);

  // Sends succeed again at once, and a retry of an acked message answers its first ack.
  const after = await senders[0]?.request(
    { action: "sendMessage", roomId: roomOf(0), text: "after the flood", clientMsgId: "after" },
    "ack",
  );
  expect(after).toMatchObject({ type: "ack" });
  const retried = await senders[1]?.request(
    { action: "sendMessage", roomId: roomOf(1), text: `0 ${BIG}`, clientMsgId: "f1-0" },
    "ack",
  );
  expect(retried).toEqual(acks.get("f1-0"));

  // Every acked message stored once under its ack; no seq twice.
  for (let r = 0; r < ROOMS; r++) {
    const room = roomOf(r);
    const acked = [...acks.values()].filter((a) => a.roomId === room);
    if (r === 0 && after) acked.push(after);
    await stack.waitForRows(room, acked.length, 60_000);
    const rows = await stack.rows(room);
    expect(rows.map((row) => [row.seq, row.messageId])).toEqual(
      acked.sort((a, b) => a.seq - b.seq).map((a) => [a.seq, a.messageId]),
    );
  }

  // At rest: the streams hold only the batch in flight, nothing waits for Kafka, retry records keep
  // no text and expire, and every room key expires.
  await reader.waitForMessages(roomOf(0), 1);
  await new Promise((r) => setTimeout(r, 2000));
  const prefix = stack.env.REDIS_KEY_PREFIX as string;
  expect(await redis.zcard(`${prefix}log:pending`)).toBe(0);
  for (const key of await redis.keys(`${prefix}fanout:[0-9]*`)) expect(await redis.xlen(key)).toBe(0);
  const records = await redis.keys(`${prefix}dedupe:*`);
  expect(records.length).toBeGreaterThanOrEqual(SENDERS * PER_SENDER);
  for (const key of records) {
    expect(await redis.hexists(key, "m")).toBe(0);
    expect(await redis.ttl(key)).toBeGreaterThan(0);
  }
  for (const key of await redis.keys(`${prefix}room:*`)) expect(await redis.ttl(key)).toBeGreaterThan(0);
  const resting = await usedMemory();
  expect(resting).toBeLessThan(limit);
  // What each kind of key holds now, by MEMORY USAGE.
  const byKind = new Map<string, { keys: number; bytes: number }>();
  for (const key of await redis.keys(`${prefix}*`)) {
    const name = key.slice(prefix.length);
    const kind = name.startsWith("room:")
      ? name.replace(/^room:.*:([a-z]+)$/, "room:*:$1")
      : name.startsWith("dedupe:")
        ? "dedupe:*"
        : name.replace(/:[^:]*$/, ":*");
    const entry = byKind.get(kind) ?? { keys: 0, bytes: 0 };
    entry.keys++;
    entry.bytes += Number(await redis.memory("USAGE", key));
    byKind.set(kind, entry);
  }
  const perRecord = (byKind.get("dedupe:*")?.bytes ?? 0) / records.length;
  expect(perRecord).toBeLessThan(512);
  process.stderr.write(
    `redis memory: at rest after the flood ${resting - atRest} bytes more than before it; by key: ` +
      `${[...byKind].map(([k, v]) => `${k} ${v.keys} keys ${v.bytes} B`).join(", ")}; ` +
      `${perRecord.toFixed(0)} B per retry record\n`,
  );
});
