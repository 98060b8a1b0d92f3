/**
 * Persistence: a backlog of N messages in a topic of their own, then the time until each writer has
 * them in PostgreSQL's messages table. Writers: this project's persister (worker/persister.ts, as a
 * process), the seed's consumer that inserts one row per message as it arrives (time-boxed: at its
 * rate a large backlog would take many minutes), and the ceiling, COPY of the same rows. The rows are
 * removed before each writer and at the end, so each one starts from the same table.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Kafka, logLevel } from "kafkajs";
import { Client } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { decodeMessageRecord, encodeMessageRecord } from "../../core/adapters/kafka";
import { MESSAGE_COLUMNS } from "../../core/adapters/message-history";
import { COPY_MESSAGES, copyRows } from "../../core/adapters/message-repository";
import type { ChatMessage } from "../../core/schemas";
import { migrate } from "../../prisma/migrate";
import { LOG_DIR, ROOT } from "../lib/child";
import { progress, sleep } from "../lib/progress";
import { ratio, round } from "../lib/stats";

/** The size of the backlog and the time boxes. */
export interface PersistParams {
  messages: number;
  rooms: number;
  /** Longest wait for the persister to store the whole backlog, in seconds. */
  persisterTimeoutSeconds: number;
  /** How long the per-row baseline runs, in seconds (it stops earlier when it has stored all). */
  perRowSeconds: number;
}

/** One writer's figures. */
export interface WriterResult {
  rows: number;
  /** From the writer's start (process spawn, consumer start, COPY start) to its last row, seconds. */
  seconds: number;
  rowsPerSec: number;
  /** From its first stored row to its last, the steady rate. */
  steadyRowsPerSec: number;
  complete: boolean;
}

/** The scenario's figures, ratios beside them. */
export interface PersistResult {
  messages: number;
  produceRowsPerSec: number;
  persister: WriterResult & { lag: { s: number; remaining: number }[] };
  perRow: WriterResult;
  copy: WriterResult;
  ratios: { persisterOverCopy: number | null; persisterOverPerRow: number | null };
}

/** Services the scenario needs. */
export interface PersistEnv {
  KAFKA_BROKERS: string;
  DATABASE_URL: string;
  REDIS_URL: string;
  DYNAMODB_ENDPOINT: string;
}

function backlog(id: string, n: number, rooms: number): ChatMessage[] {
  const base = Date.now() - n;
  const text = "A benchmark message of a typical length, with some words in it so that it looks like chat. ";
  return Array.from({ length: n }, (_, k) => ({
    messageId: `${id}-${k}`,
    roomId: `${id}-r${k % rooms}`,
    seq: Math.floor(k / rooms) + 1,
    senderId: `u${k % 997}`,
    senderName: "Bench",
    text: `${text}${k}`,
    sentAt: new Date(base + k).toISOString(),
    clientMsgId: `c${k}`,
  }));
}

/** Runs the three writers over one backlog. */
export async function runPersist(env: PersistEnv, params: PersistParams): Promise<PersistResult> {
  const id = `bp${randomBytes(3).toString("hex")}`;
  const topic = `bench.persist.${id}`;
  const db = new Client({ connectionString: env.DATABASE_URL });
  await migrate(env.DATABASE_URL);
  await db.connect();
  // Rows of this run sort between these bounds, so counting and deleting use the (room_id, seq) index.
  const bounds = [`${id}-`, `${id}.`];
  const count = async () =>
    Number(
      (await db.query("select count(*)::int as n from messages where room_id >= $1 and room_id < $2", bounds))
        .rows[0]?.n ?? 0,
    );
  const clear = () => db.query("delete from messages where room_id >= $1 and room_id < $2", bounds);
  const kafka = new Kafka({
    clientId: "bench",
    brokers: env.KAFKA_BROKERS.split(","),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic, numPartitions: 6, replicationFactor: 1 },
      { topic: `${topic}.dlq`, numPartitions: 1, replicationFactor: 1 },
    ],
  });

  try {
    const messages = backlog(id, params.messages, params.rooms);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const p0 = Date.now();
    for (let i = 0; i < messages.length; i += 5000) {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(i, i + 5000).map(encodeMessageRecord),
      });
    }
    await producer.disconnect();
    const produceRowsPerSec = round(messages.length / ((Date.now() - p0) / 1000), 0);
    progress(`persist: ${messages.length} messages in the topic (${produceRowsPerSec} records/s produced)`);

    // This project's persister, as its own process with its real entry point.
    mkdirSync(LOG_DIR, { recursive: true });
    const log = createWriteStream(join(LOG_DIR, "persister.log"));
    const started = Date.now();
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "worker", "persister.ts")], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...env,
        MESSAGES_TOPIC: topic,
        DEAD_LETTER_TOPIC: `${topic}.dlq`,
        PERSISTER_GROUP_ID: `bench-${id}`,
        KAFKA_PARTITIONS: "6",
        LOG_LEVEL: "warn",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const lag: { s: number; remaining: number }[] = [];
    let stored = 0;
    let first = 0;
    let last = started;
    let lastReport = 0;
    const deadline = started + params.persisterTimeoutSeconds * 1000;
    while (stored < messages.length && Date.now() < deadline && child.exitCode === null) {
      await sleep(200);
      const n = await count();
      const at = Date.now();
      if (n > 0 && first === 0) first = at;
      if (n > stored) last = at;
      stored = n;
      lag.push({ s: round((at - started) / 1000, 1), remaining: messages.length - n });
      if (at - lastReport > 5000) {
        lastReport = at;
        progress(`persist: persister has stored ${n} of ${messages.length}`);
      }
    }
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(killer);
    log.end();
    const persister = {
      ...writer(stored, started, first, last, messages.length),
      lag: thin(lag, 120),
    };
    progress(`persist: persister ${persister.rowsPerSec} rows/s (steady ${persister.steadyRowsPerSec})`);

    // The seed: one INSERT per message as it arrives.
    await clear();
    const perRow = await perRowBaseline(
      kafka,
      topic,
      id,
      env.DATABASE_URL,
      messages.length,
      params.perRowSeconds,
      count,
    );
    progress(
      `persist: per-row baseline ${perRow.rowsPerSec} rows/s (${perRow.rows} rows in ${perRow.seconds} s)`,
    );

    // The ceiling: COPY of the same rows.
    await clear();
    const c0 = Date.now();
    const stream = db.query(copyFrom(COPY_MESSAGES));
    await pipeline(Readable.from(csvRows(messages)), stream);
    const copied = await count();
    const copy = writer(copied, c0, c0, Date.now(), messages.length);
    progress(`persist: COPY ceiling ${copy.rowsPerSec} rows/s`);
    await clear();

    return {
      messages: messages.length,
      produceRowsPerSec,
      persister,
      perRow,
      copy,
      ratios: {
        persisterOverCopy: ratio(persister.steadyRowsPerSec, copy.rowsPerSec),
        persisterOverPerRow: ratio(persister.steadyRowsPerSec, perRow.steadyRowsPerSec),
      },
    };
  } finally {
    await clear().catch(() => undefined);
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined);
    await admin.disconnect();
    await db.end();
  }
}

function writer(rows: number, started: number, first: number, last: number, wanted: number): WriterResult {
  const seconds = Math.max(0.001, (last - started) / 1000);
  const steady = Math.max(0.001, (last - (first || started)) / 1000);
  return {
    rows,
    seconds: round(seconds, 2),
    rowsPerSec: round(rows / seconds, 0),
    // A writer that stored everything in one poll interval has no measurable steady span: use the whole.
    steadyRowsPerSec: round(rows / (steady < 0.25 ? seconds : steady), 0),
    complete: rows >= wanted,
  };
}

/** Keeps at most `max` points of a series, evenly spaced, always the last. */
function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const step = points.length / max;
  const out = Array.from({ length: max - 1 }, (_, i) => points[Math.floor(i * step)] as T);
  out.push(points[points.length - 1] as T);
  return out;
}

/** The backlog as CSV, in chunks, encoded as the persister's own COPY encodes a batch. */
function* csvRows(messages: ChatMessage[]): Generator<string> {
  for (let i = 0; i < messages.length; i += 1000) yield copyRows(messages.slice(i, i + 1000));
}

async function perRowBaseline(
  kafka: Kafka,
  topic: string,
  id: string,
  databaseUrl: string,
  wanted: number,
  seconds: number,
  count: () => Promise<number>,
): Promise<WriterResult> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  const consumer = kafka.consumer({ groupId: `bench-per-row-${id}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let rows = 0;
  let first = 0;
  let last = 0;
  const started = Date.now();
  await consumer.run({
    eachMessage: async ({ message }) => {
      const m = decodeMessageRecord(message.value);
      await db.query(
        `INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
        [m.messageId, m.roomId, m.seq, m.senderId, m.senderName ?? null, m.text, m.sentAt, m.clientMsgId],
      );
      rows++;
      last = Date.now();
      if (first === 0) first = last;
    },
  });
  const deadline = started + seconds * 1000;
  while (rows < wanted && Date.now() < deadline) await sleep(100);
  await consumer.disconnect();
  await db.end();
  const stored = await count();
  return writer(stored, started, first, last || Date.now(), wanted);
}
