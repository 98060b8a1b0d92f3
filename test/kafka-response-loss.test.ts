/**
 * The Kafka event log when the broker's answers are lost: every kafkajs connection of the log under
 * test goes through a TCP proxy (test/support/tcp-proxy.ts, by a socketFactory) to the real broker
 * (KAFKA_BROKERS from the global set-up), and the proxy is switched to hold the broker's replies
 * (a stall) or to close each connection when its reply comes back (the produce went through, its
 * answer is lost). The topic is then read from the beginning, directly: every append that resolved
 * must be in it, and sends after the failure must be taken.
 *
 * - A stall: an append rejects within its deadline (KAFKA_APPEND_TIMEOUT_MS), with a retriable
 *   DependencyError naming Kafka that the handlers answer as INTERNAL with the clientMsgId, and so
 *   does an append queued behind it.
 * - A lost answer: kafkajs rolls the partition's sequence back and keeps its producer id, so a
 *   producer used again after the failed send gives the next message the sequence of the one the
 *   broker stored: the broker acks it as that one's duplicate and never stores it. The log must not.
 */
import { connect } from "node:net";
import { Kafka, logLevel } from "kafkajs";
import { createKafka, KafkaEventLog } from "../core/adapters/kafka";
import { loadConfig } from "../core/config";
import { DependencyError, isRetriable } from "../core/errors";
import { sleep } from "../core/retry";
import type { ChatMessage } from "../core/schemas";
import type { WebSocketEvent } from "../functions/event";
import { route } from "../functions/handler";
import { TcpProxy } from "./support/tcp-proxy";

jest.setTimeout(60_000);

const brokers = (process.env.KAFKA_BROKERS ?? "").split(",").filter(Boolean);
if (brokers.length === 0)
  throw new Error("KAFKA_BROKERS is not set: the integration global set-up must start Kafka");
const [host = "127.0.0.1", port = "9092"] = (brokers[0] ?? "").split(":");

/** The append deadline under test (short, to keep the test short), and the slack a busy machine needs. */
const APPEND_MS = 2000;
const MARGIN_MS = 1500;

const settings = loadConfig({
  KAFKA_BROKERS: brokers[0],
  KAFKA_CLIENT_ID: "response-loss-test",
  KAFKA_APPEND_TIMEOUT_MS: String(APPEND_MS),
});
const direct = new Kafka({ clientId: "response-loss-reader", brokers, logLevel: logLevel.NOTHING });
const run = `${process.pid}-${Date.now().toString(36)}`;
let proxy: TcpProxy;

beforeAll(async () => {
  proxy = await TcpProxy.start({ host, port: Number(port) });
});

afterAll(async () => {
  await proxy?.close();
});

/** A kafkajs client built as the handlers build theirs, whose every socket goes through the proxy. */
function kafkaThroughProxy(): Kafka {
  return createKafka(settings.kafka(), "us-east-1", {
    socketFactory: ({ onConnect }) => connect({ host: "127.0.0.1", port: proxy.port }, onConnect),
  });
}

async function createTopic(name: string): Promise<string> {
  const topic = `response-loss-${run}-${name}`;
  const admin = direct.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
    });
  } finally {
    await admin.disconnect();
  }
  return topic;
}

function message(topic: string, n: number): ChatMessage {
  return {
    messageId: `${topic}-m${n}`,
    roomId: "room-1",
    seq: n,
    senderId: "alice",
    text: `message ${n}`,
    sentAt: new Date().toISOString(),
    clientMsgId: `c-${n}`,
  };
}

/** The messageIds in the topic, read from its beginning to its end. */
/**
 * The figures of a run: appends acked, acked ones in the log, lost, and extra copies (a rejected
 * append that the broker had written: the persister keeps one row per messageId).
 */
function report(kind: string, acked: ChatMessage[], records: string[]): void {
  const ids = new Set(acked.map((m) => m.messageId));
  const lost = [...ids].filter((id) => !records.includes(id)).length;
  process.stderr.write(
    `kafka response loss (${kind}): ${ids.size} acked, ${ids.size - lost} in the log, ${lost} lost, ` +
      `${records.length - new Set(records).size} extra copies for the persister to skip\n`,
  );
}

async function storedIds(topic: string): Promise<string[]> {
  const admin = direct.admin();
  await admin.connect();
  const [end] = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const high = Number(end?.high ?? 0);
  const ids: string[] = [];
  if (high === 0) return ids;
  const consumer = direct.consumer({ groupId: `response-loss-reader-${run}-${topic}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${ids.length} records of ${high}`)), 20_000);
      void consumer.run({
        eachMessage: async ({ message: record }) => {
          ids.push((JSON.parse(String(record.value)) as { message: ChatMessage }).message.messageId);
          if (Number(record.offset) + 1 >= high) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return ids;
}

type Outcome = { status: "resolved" | "rejected" | "pending"; error?: unknown; ms: number };

/** How a promise settled within `ms` (or that it had not), and after how long. */
function settleWithin(promise: Promise<unknown>, ms: number): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ status: "pending", ms: Date.now() - started }), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve({ status: "resolved", ms: Date.now() - started });
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve({ status: "rejected", error, ms: Date.now() - started });
      },
    );
  });
}

/** The log under test and the messages whose append resolved. */
function appender(log: KafkaEventLog) {
  const acked: ChatMessage[] = [];
  return {
    acked,
    append: async (m: ChatMessage) => {
      await log.append([m]);
      acked.push(m);
    },
  };
}

/** What the sendMessage handler answers when the domain throws `error`. */
async function handlerAnswer(error: unknown, clientMsgId: string) {
  const handler = route("sendMessage", async () => {
    throw error;
  });
  const event: WebSocketEvent = {
    requestContext: {
      connectionId: "conn-1",
      routeKey: "sendMessage",
      eventType: "MESSAGE",
      requestId: "req-1",
      authorizer: { userId: "alice" },
    },
    body: JSON.stringify({ action: "sendMessage", roomId: "room-1", text: "hi", clientMsgId }),
  };
  return JSON.parse((await handler(event)).body ?? "null");
}

/** Disconnects, bounded: a log that never answered must not hold the test past its time. */
async function stop(log: KafkaEventLog): Promise<void> {
  proxy.pass();
  await settleWithin(log.disconnect(), 15_000);
}

test("a stalled broker: appends reject within their deadline, retriable; afterwards every acked message is stored and sends are taken", async () => {
  const topic = await createTopic("stall");
  const log = new KafkaEventLog(kafkaThroughProxy(), topic, {
    appendTimeoutMs: settings.kafka().appendTimeoutMs,
  });
  const { acked, append } = appender(log);
  try {
    await append(message(topic, 1));

    proxy.stall();
    const first = settleWithin(append(message(topic, 2)), APPEND_MS + MARGIN_MS);
    await sleep(300);
    // Queued behind the stalled request: the failed request must not answer it.
    const queued = settleWithin(append(message(topic, 3)), APPEND_MS + MARGIN_MS);
    const outcomes = [await first, await queued];
    for (const outcome of outcomes) {
      expect(outcome.status).toBe("rejected");
      expect(outcome.ms).toBeLessThanOrEqual(APPEND_MS + MARGIN_MS);
      expect(outcome.error).toBeInstanceOf(DependencyError);
      expect(outcome.error).toMatchObject({ dependency: "kafka", retriable: true });
      expect(isRetriable(outcome.error)).toBe(true);
    }
    expect(proxy.counts.held).toBeGreaterThan(0);
    expect(await handlerAnswer(outcomes[0]?.error, "c-2")).toEqual({
      type: "error",
      code: "INTERNAL",
      message: expect.any(String),
      action: "sendMessage",
      clientMsgId: "c-2",
    });

    // The stall outlasts both deadlines, then ends: the held answers arrive late, to nobody.
    await sleep(1000);
    proxy.pass();

    // The client retries with the same clientMsgId (the same record), and sends new messages.
    for (const n of [2, 3, 4, 5]) {
      const outcome = await settleWithin(append(message(topic, n)), APPEND_MS + MARGIN_MS);
      expect({ n, ...outcome }).toMatchObject({ n, status: "resolved" });
    }
  } finally {
    await stop(log);
  }
  const records = await storedIds(topic);
  const stored = new Set(records);
  expect(acked.map((m) => m.messageId).filter((id) => !stored.has(id))).toEqual([]);
  expect(acked.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  report("stalled broker", acked, records);
  expect(log.stats.producers).toBeGreaterThanOrEqual(2);
});

test("an answer lost after the broker stored the batch: the next messages are stored, not acked as its duplicates", async () => {
  const topic = await createTopic("lost");
  const log = new KafkaEventLog(kafkaThroughProxy(), topic, {
    appendTimeoutMs: settings.kafka().appendTimeoutMs,
  });
  const { acked, append } = appender(log);
  try {
    await append(message(topic, 1));

    const droppedBefore = proxy.counts.dropped;
    proxy.drop();
    // kafkajs retries the send on new connections; each answer is lost again until the append gives up.
    const lost = await settleWithin(append(message(topic, 2)), 20_000);
    expect(lost.status).toBe("rejected");
    expect(lost.error).toMatchObject({ dependency: "kafka", retriable: true });
    expect(proxy.counts.dropped).toBeGreaterThan(droppedBefore);
    proxy.pass();

    // A new message first: on the failed producer it would carry the stored batch's sequence.
    await append(message(topic, 3));
    await append(message(topic, 4));
    // The client's retry of the failed one, then more.
    await append(message(topic, 2));
    await Promise.all([append(message(topic, 5)), append(message(topic, 6))]);
  } finally {
    await stop(log);
  }
  const records = await storedIds(topic);
  const stored = new Set(records);
  expect(acked.map((m) => m.messageId).filter((id) => !stored.has(id))).toEqual([]);
  expect(acked).toHaveLength(6);
  report("answer lost after the write", acked, records);
});
