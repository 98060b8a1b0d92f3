/**
 * The persister against a real Kafka broker and a real PostgreSQL (KAFKA_BROKERS and DATABASE_URL
 * from the global set-up). Each test uses topics and a database of its own. Tests about process
 * behaviour (signals, replicas, the health endpoint) run `tsx worker/persister.ts` as a child.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { Client } from "pg";
import { encodeMessageRecord } from "../core/adapters/kafka";
import { createMessageRepository, type PostgresMessageRepository } from "../core/adapters/message-repository";
import { createLogger } from "../core/logger";
import type { ChatMessage } from "../core/schemas";
import { freePort } from "../local/services/process";
import { createTestDatabase, type TestDatabase } from "../prisma/test-database";
import { createPersister, type Persister } from "../worker/persister";
import { DEAD_LETTER_HEADERS, type DeadLetterEnvelope } from "../worker/persister-dead-letter";

// Project-level testTimeout is not applied by jest to projects; these suites cross processes.
jest.setTimeout(120_000);

const root = path.join(__dirname, "..");
/**
 * tsx as a loader of node itself rather than its CLI: the CLI relays a signal to its child and kills
 * it when the child does not acknowledge within 30 ms, which a busy child on a loaded machine misses.
 */
const TSX_ARGS = ["--import", "tsx", "worker/persister.ts"];
const brokers = (process.env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
const logger = createLogger("persister-test");

if (brokers.length === 0)
  throw new Error("KAFKA_BROKERS is not set: the integration global set-up must start Kafka");

const kafka = new Kafka({ clientId: "persister-test", brokers, logLevel: logLevel.NOTHING });
let producer: Producer;
let db: TestDatabase;
let repo: PostgresMessageRepository;
let pg: Client;

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

function chat(roomId: string, seq: number, extra: Partial<ChatMessage> = {}): ChatMessage {
  return {
    messageId: `${roomId}-${seq}`,
    roomId,
    seq,
    senderId: "bob",
    text: `hello ${seq} 👋`,
    sentAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
    clientMsgId: `c${seq}`,
    ...extra,
  };
}

async function createTopics(partitions: number): Promise<{ topic: string; dlq: string }> {
  const topic = unique("msgs");
  const dlq = `${topic}.dlq`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic, numPartitions: partitions, replicationFactor: 1 },
        { topic: dlq, numPartitions: 1, replicationFactor: 1 },
      ],
    });
  } finally {
    await admin.disconnect();
  }
  return { topic, dlq };
}

async function produce(topic: string, messages: ChatMessage[]): Promise<void> {
  await producer.send({ topic, acks: -1, messages: messages.map(encodeMessageRecord) });
}

/** Rows per messageId among the given rooms' rows. */
async function storedCounts(roomPrefix: string): Promise<Map<string, number>> {
  const { rows } = await pg.query<{ message_id: string; n: number }>(
    "SELECT message_id, count(*)::int AS n FROM messages WHERE room_id LIKE $1 GROUP BY message_id",
    [`${roomPrefix}%`],
  );
  return new Map(rows.map((r) => [r.message_id, r.n]));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function waitForStored(roomPrefix: string, count: number): Promise<Map<string, number>> {
  return waitFor(`${count} stored messages`, async () => {
    const stored = await storedCounts(roomPrefix);
    return stored.size >= count ? stored : undefined;
  });
}

/** Committed offsets of a group on a topic, per partition (-1 where nothing is committed). */
async function committed(groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((entry?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

async function endOffsets(topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((p) => [p.partition, Number(p.high)]));
  } finally {
    await admin.disconnect();
  }
}

async function readDeadLetters(
  dlq: string,
  count: number,
): Promise<{ envelope: DeadLetterEnvelope; headers: Record<string, string> }[]> {
  const consumer = kafka.consumer({ groupId: unique("dlq-reader") });
  const out: { envelope: DeadLetterEnvelope; headers: Record<string, string> }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic: dlq, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      out.push({ envelope: JSON.parse(String(message.value)) as DeadLetterEnvelope, headers });
    },
  });
  try {
    await waitFor(`${count} dead letters`, async () => (out.length >= count ? true : undefined));
  } finally {
    await consumer.disconnect();
  }
  return out;
}

beforeAll(async () => {
  producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  db = await createTestDatabase("persister_test");
  repo = createMessageRepository(db.url);
  pg = new Client({ connectionString: db.url });
  await pg.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await repo?.disconnect();
  await pg?.end();
  await db?.drop();
});

describe("in process", () => {
  const running: Persister[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });
  function start(topic: string, dlq: string, groupId: string): Promise<Persister> {
    const p = createPersister({
      kafka,
      repository: repo,
      logger,
      topic,
      deadLetterTopic: dlq,
      groupId,
      options: { retryBaseMs: 20, retryMaxMs: 200 },
    });
    running.push(p);
    return p.start().then(() => p);
  }

  test("produced messages land exactly once, and re-delivery (duplicates, a replay from offset 0) stores nothing twice", async () => {
    const { topic, dlq } = await createTopics(3);
    const room = unique("once");
    const messages = Array.from({ length: 240 }, (_, i) => chat(`${room}-${i % 7}`, Math.floor(i / 7) + 1));
    // Half before the persister starts (a new group reads from the beginning), half after.
    await produce(topic, messages.slice(0, 120));
    const groupId = unique("g");
    const persister = await start(topic, dlq, groupId);
    await produce(topic, messages.slice(120));
    let stored = await waitForStored(room, messages.length);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(stored.keys())).toEqual(new Set(messages.map((m) => m.messageId)));
    expect(persister.healthy()).toBe(true);

    // The same records produced again.
    await produce(topic, messages.slice(0, 60));
    const end = await endOffsets(topic);
    // A partition no room hashed to (about one run in seventeen with 7 rooms on 3 partitions) has
    // nothing to commit: its end offset is 0 and its committed offset stays -1.
    await waitFor("the duplicates to be committed", async () => {
      const c = await committed(groupId, topic);
      return [...end].every(([p, high]) => high === 0 || c.get(p) === high) ? true : undefined;
    });

    // Replay of the whole topic by a second group.
    const replayGroup = unique("replay");
    await start(topic, dlq, replayGroup);
    await waitFor("the replay to be committed", async () => {
      const c = await committed(replayGroup, topic);
      return [...end].every(([p, high]) => high === 0 || c.get(p) === high) ? true : undefined;
    });
    stored = await storedCounts(room);
    expect(stored.size).toBe(messages.length);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    const roomZero = await repo.range(`${room}-0`, { afterSeq: 0, limit: 100 });
    expect(roomZero.map((m) => m.seq)).toEqual(Array.from({ length: roomZero.length }, (_, i) => i + 1));
    expect(roomZero[0]).toEqual(messages[0]);
  });

  test("a poison record goes to the dead-letter topic with its reason; the partition moves on", async () => {
    const { topic, dlq } = await createTopics(1);
    const room = unique("poison");
    const taken = chat(room, 2);
    await produce(topic, [chat(room, 1), taken]);
    const key = room;
    const intruder = { ...chat(room, 2), messageId: `${room}-intruder` };
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key, value: "{not json" },
        { key, value: JSON.stringify({ v: 1, message: { ...chat(room, 3), seq: "three" } }) },
        { key, value: JSON.stringify({ v: 2, message: chat(room, 4) }) },
        encodeMessageRecord(chat(room, 5, { text: "nul \u0000 inside" })),
        encodeMessageRecord(intruder),
        { key, value: Buffer.from([0xff, 0xfe, 0x00, 0x41]) },
        { key, value: null },
        ...[6, 7, 8].map((s) => encodeMessageRecord(chat(room, s))),
      ],
    });
    const groupId = unique("g");
    await start(topic, dlq, groupId);
    const stored = await waitForStored(room, 5);
    expect([...stored.keys()].sort()).toEqual([1, 2, 6, 7, 8].map((s) => `${room}-${s}`).sort());

    const letters = await readDeadLetters(dlq, 7);
    expect(letters).toHaveLength(7);
    const byOffset = new Map(letters.map((l) => [l.envelope.source.offset, l]));
    const reasonAt = (offset: number) => byOffset.get(String(offset))?.envelope.reason ?? "";
    expect(reasonAt(2)).toContain("not JSON");
    expect(reasonAt(3)).toContain("seq");
    expect(reasonAt(4)).toContain("v");
    expect(reasonAt(5)).toContain("NUL");
    expect(reasonAt(6)).toContain(`taken by message ${taken.messageId}`);
    expect(reasonAt(8)).toContain("no value");
    const binary = byOffset.get("7")?.envelope;
    expect(binary?.valueEncoding).toBe("base64");
    expect(Buffer.from(binary?.value ?? "", "base64")).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x41]));
    const first = byOffset.get("2");
    expect(first?.envelope).toMatchObject({ v: 1, value: "{not json", valueEncoding: "utf8", groupId });
    expect(first?.envelope.source).toMatchObject({ topic, partition: 0, offset: "2", key });
    expect(first?.headers[DEAD_LETTER_HEADERS.reason]).toBe(first?.envelope.reason);
    expect(first?.headers[DEAD_LETTER_HEADERS.offset]).toBe("2");
    expect(first?.headers[DEAD_LETTER_HEADERS.topic]).toBe(topic);
    // Everything, dead letters included, is committed.
    await waitFor("the partition to be committed", async () =>
      (await committed(groupId, topic)).get(0) === 12 ? true : undefined,
    );
  });

  test("a database outage is waited out with retries; nothing is skipped", async () => {
    const { topic, dlq } = await createTopics(1);
    const room = unique("outage");
    // A repository on a port where nothing listens, for the first attempts.
    const real = repo;
    let failures = 0;
    const flaky = {
      insertMany: async (ms: ChatMessage[]) => {
        if (failures < 4) {
          failures++;
          const down = createMessageRepository("postgresql://postgres@127.0.0.1:1/none");
          try {
            return await down.insertMany(ms);
          } finally {
            await down.disconnect();
          }
        }
        return real.insertMany(ms);
      },
      range: real.range.bind(real),
      maxSeq: real.maxSeq.bind(real),
      disconnect: async () => undefined,
    };
    const p = createPersister({
      kafka,
      repository: flaky,
      logger,
      topic,
      deadLetterTopic: dlq,
      groupId: unique("g"),
      options: { retryBaseMs: 20, retryMaxMs: 100 },
    });
    running.push(p);
    await p.start();
    await produce(
      topic,
      [1, 2, 3].map((s) => chat(room, s)),
    );
    const stored = await waitForStored(room, 3);
    expect(failures).toBe(4);
    expect(stored.size).toBe(3);
    const end = await endOffsets(dlq);
    expect(end.get(0)).toBe(0);
  });
});

describe("as a process", () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  function spawnPersister(topic: string, dlq: string, groupId: string, healthPort: number) {
    const child = spawn(process.execPath, TSX_ARGS, {
      cwd: root,
      env: {
        ...process.env,
        KAFKA_BROKERS: brokers.join(","),
        DATABASE_URL: db.url,
        MESSAGES_TOPIC: topic,
        DEAD_LETTER_TOPIC: dlq,
        PERSISTER_GROUP_ID: groupId,
        HEALTH_PORT: String(healthPort),
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let output = "";
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, exited, output: () => output };
  }

  async function healthStatus(port: number): Promise<number | undefined> {
    try {
      return (await fetch(`http://127.0.0.1:${port}/health`)).status;
    } catch {
      return undefined;
    }
  }

  test("SIGTERM mid-stream: the batch in flight is finished and committed, the process exits 0, nothing is lost", async () => {
    const { topic, dlq } = await createTopics(3);
    const room = unique("term");
    const groupId = unique("g");
    const port = await freePort();
    const first = spawnPersister(topic, dlq, groupId, port);
    await waitFor("the health endpoint to answer 200", async () =>
      (await healthStatus(port)) === 200 ? true : undefined,
    );

    const all: ChatMessage[] = [];
    let seq = 0;
    const stream = (async () => {
      for (let round = 0; round < 40; round++) {
        const batch = Array.from({ length: 25 }, () => {
          seq++;
          return chat(`${room}-${seq % 5}`, seq);
        });
        all.push(...batch);
        await produce(topic, batch);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await waitFor("some messages stored", async () =>
      (await storedCounts(room)).size > 100 ? true : undefined,
    );
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain("persister stopped");

    // Whatever the group committed is stored: every record below each committed offset.
    const c = await committed(groupId, topic);
    const storedAfterStop = await storedCounts(room);
    const committedTotal = [...c.values()].reduce((a, b) => a + Math.max(0, b), 0);
    expect(committedTotal).toBeGreaterThan(0);
    expect(storedAfterStop.size).toBeGreaterThanOrEqual(committedTotal);

    await stream;
    const second = spawnPersister(topic, dlq, groupId, await freePort());
    const stored = await waitForStored(room, all.length);
    expect(stored.size).toBe(all.length);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  test("two replicas share the partitions and the union is exact; one leaving hands its share to the other", async () => {
    const { topic, dlq } = await createTopics(4);
    const room = unique("pair");
    const groupId = unique("g");
    const ports = [await freePort(), await freePort()];
    const a = spawnPersister(topic, dlq, groupId, ports[0] as number);
    const b = spawnPersister(topic, dlq, groupId, ports[1] as number);
    for (const port of ports) {
      await waitFor("health 200", async () => ((await healthStatus(port)) === 200 ? true : undefined));
    }
    // Wait until the group has settled with both members before producing: each replica's latest
    // assignment holds partitions, and the two split the topic (a first replica that joined alone
    // holds all four until the rebalance that lets the second in reaches it too).
    const latestAssignment = (o: string): number[] | undefined => {
      // Only whole lines: the last one may still be arriving.
      const lines = o.split("\n").slice(0, -1);
      const joins = lines.filter((line) => line.includes('"joined the consumer group"'));
      const latest = joins.at(-1);
      return latest
        ? (JSON.parse(latest) as { assignment?: Record<string, number[]> }).assignment?.[topic]
        : undefined;
    };
    await waitFor("both replicas to hold partitions", async () => {
      const [ofA, ofB] = [latestAssignment(a.output()), latestAssignment(b.output())];
      if (!ofA?.length || !ofB?.length) return undefined;
      const split = new Set([...ofA, ...ofB]).size === ofA.length + ofB.length;
      return split && ofA.length + ofB.length === 4 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 3000));
    const rooms = Array.from({ length: 16 }, (_, i) => `${room}-${i}`);
    const firstWave = Array.from({ length: 320 }, (_, i) =>
      chat(rooms[i % 16] as string, Math.floor(i / 16) + 1),
    );
    await produce(topic, firstWave);
    await waitForStored(room, firstWave.length);
    const batches = (o: string) => (o.match(/batch stored and committed/g) ?? []).length;
    expect(batches(a.output())).toBeGreaterThan(0);
    expect(batches(b.output())).toBeGreaterThan(0);

    a.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    const secondWave = Array.from({ length: 160 }, (_, i) =>
      chat(rooms[i % 16] as string, 21 + Math.floor(i / 16)),
    );
    await produce(topic, secondWave);
    const stored = await waitForStored(room, firstWave.length + secondWave.length);
    expect(stored.size).toBe(firstWave.length + secondWave.length);
    expect([...stored.values()].every((n) => n === 1)).toBe(true);
    b.child.kill("SIGTERM");
    expect(await b.exited).toBe(0);
  });

  test("a database without the messages table: the process says to migrate and exits non-zero", async () => {
    const { topic, dlq } = await createTopics(1);
    const admin = new Client({ connectionString: db.url });
    await admin.connect();
    const bare = unique("bare").replace(/-/g, "_");
    await admin.query(`CREATE DATABASE ${bare}`);
    await admin.end();
    const url = new URL(db.url);
    url.pathname = `/${bare}`;
    const child = spawn(process.execPath, TSX_ARGS, {
      cwd: root,
      env: {
        ...process.env,
        KAFKA_BROKERS: brokers.join(","),
        DATABASE_URL: url.toString(),
        MESSAGES_TOPIC: topic,
        DEAD_LETTER_TOPIC: dlq,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let output = "";
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code).toBe(1);
    expect(output).toContain("npm run db:migrate");
    const cleanup = new Client({ connectionString: db.url });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE ${bare} WITH (FORCE)`);
    await cleanup.end();
  });
});
