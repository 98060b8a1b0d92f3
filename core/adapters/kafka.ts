/**
 * The event log port over Kafka (kafkajs): the client factory (plain or MSK IAM through
 * SASL/OAUTHBEARER), topic creation, the record codec shared by producer and consumer, and a producer
 * that batches concurrent appends into one request.
 */

import { type ISocketFactory, Kafka, type LogEntry, logLevel, type Producer } from "kafkajs";
import { Coalescer } from "../coalesce";
// kafkajs 2.2.4 keeps a 1 ms timer running on every connection; this module fixes its request queue.
import "./kafka-request-queue";
import { type Config, config } from "../config";
import { remainingMs, withDeadline } from "../deadline";
import { DependencyError, DependencyTimeoutError, PoisonRecordError } from "../errors";
import { createLogger } from "../logger";
import type { EventLog } from "../ports";
import { type ChatMessage, MessageRecord } from "../schemas";
import * as z from "../zod";

type KafkaConfig = ReturnType<Config["kafka"]>;

const levelNames: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/** What {@link createKafka} takes besides the configuration. */
export interface KafkaClientOptions {
  /** Opens the client's sockets (tests route them through a proxy); default plain TCP or TLS. */
  socketFactory?: ISocketFactory;
}

/** A kafkajs client for the configured brokers; on MSK, signed with the task's or function's IAM role. */
export function createKafka(
  cfg: KafkaConfig = config.kafka(),
  region = config.aws().region,
  options: KafkaClientOptions = {},
): Kafka {
  const log = createLogger("kafkajs");
  return new Kafka({
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    ssl: cfg.ssl || cfg.auth === "aws-iam",
    sasl:
      cfg.auth === "aws-iam"
        ? {
            mechanism: "oauthbearer",
            // Loaded here, on MSK only: plain brokers (the local stack) never pay for its start-up.
            oauthBearerProvider: async () => {
              const { generateAuthToken } =
                require("aws-msk-iam-sasl-signer-js") as typeof import("aws-msk-iam-sasl-signer-js");
              return { value: (await generateAuthToken({ region })).token };
            },
          }
        : undefined,
    ...(options.socketFactory ? { socketFactory: options.socketFactory } : {}),
    connectionTimeout: Math.min(3000, cfg.requestTimeoutMs),
    // For every client of the process (consumers and admins too); an append is bounded by its own
    // deadline besides (KafkaEventLog), which abandons a stalled request with its producer.
    requestTimeout: cfg.requestTimeoutMs,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        log[isExpectedKafkaLog(entry) ? "debug" : (levelNames[level] ?? "info")](rest, message);
      },
  });
}

/** Answers kafkajs retries by itself: an operation that still fails after them throws to its caller. */
const RETRIED_ANSWERS = [
  "The coordinator is loading",
  "The coordinator is not available",
  "This is not the correct coordinator",
  "There is no leader for this topic-partition",
];

/**
 * kafkajs log entries that describe what the design expects, logged at debug instead of their own
 * level: its bounded retries of an idempotent producer (a send fails fast, the client retries with
 * the same clientMsgId, and the persister drops the duplicate a retried produce may leave), and a
 * broker's retriable answer to one request (a coordinator still loading after a start, a leader
 * moving), which kafkajs retries before the operation succeeds or throws.
 */
export function isExpectedKafkaLog(entry: { message?: unknown; error?: unknown }): boolean {
  const { message, error } = entry;
  if (typeof message !== "string") return false;
  if (message.startsWith("Limiting retries for the idempotent")) return true;
  return (
    message.startsWith("Response ") &&
    typeof error === "string" &&
    RETRIED_ANSWERS.some((answer) => error.startsWith(answer))
  );
}

/** Creates the messages and dead-letter topics when missing; existing topics are left as they are. */
export async function ensureTopics(kafka: Kafka, cfg: KafkaConfig = config.kafka()): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const wanted = [
      { topic: cfg.messagesTopic, numPartitions: cfg.partitions },
      { topic: cfg.deadLetterTopic, numPartitions: 1 },
    ].filter((t) => !existing.has(t.topic));
    if (wanted.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: wanted.map((t) => ({
          ...t,
          replicationFactor: cfg.replicationFactor,
          configEntries: [{ name: "min.insync.replicas", value: String(Math.min(2, cfg.replicationFactor)) }],
        })),
      });
    }
  } finally {
    await admin.disconnect();
  }
}

export function encodeMessageRecord(message: ChatMessage): { key: string; value: string } {
  const record: MessageRecord = { v: 1, message };
  return { key: message.roomId, value: JSON.stringify(record) };
}

/** The record schema, compiled: the persister decodes every record (kafka.test.ts holds the answers beside the schema's). */
// Pure: a bundle that never decodes (the send-message handler) leaves the compiler out.
const messageRecord = /* @__PURE__ */ z.compiledOnFirstUse(MessageRecord);

/** Decodes a record of the messages topic; anything that is not a valid v1 record is poison. */
export function decodeMessageRecord(value: Buffer | null): ChatMessage {
  if (value === null) throw new PoisonRecordError("record has no value (tombstone)");
  let json: unknown;
  try {
    json = JSON.parse(value.toString("utf8"));
  } catch (cause) {
    throw new PoisonRecordError("record value is not JSON", { cause });
  }
  const parsed = messageRecord().safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PoisonRecordError(
      `record does not match the message schema at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    );
  }
  return parsed.data.message;
}

/** Options of {@link KafkaEventLog}. */
export interface KafkaEventLogOptions {
  /** The most one append may take, from the call to its answer; default KAFKA_APPEND_TIMEOUT_MS. */
  appendTimeoutMs?: number;
}

interface PendingAppend {
  messages: ChatMessage[];
  /** When the append must have answered (epoch ms). */
  deadlineAt: number;
}

/** One idempotent producer (one producer id), used until a send on it fails. */
interface Session {
  producer: Producer;
  connected?: Promise<void>;
}

/** How long a retired producer's disconnect may take, and how long its abandoned send is waited for. */
const RETIRE_DISCONNECT_MS = 5000;
const RETIRE_SETTLE_MS = 30_000;

/**
 * The event log over an idempotent producer with acks from all in-sync replicas. Appends that arrive
 * while a request is in flight are sent together in the next request, so concurrent handlers in one
 * process (the local stack, a warm Lambda under load) share round trips without waiting on a timer.
 *
 * Every append answers within its deadline (`appendTimeoutMs`, well inside a handler's timeout):
 * past it, it rejects with a retriable DependencyTimeoutError and the client retries with the same
 * clientMsgId. A producer is never used again after a send on it failed or ran out of time: kafkajs
 * rolls the partition's sequence back but keeps the producer id, so the broker, which may well have
 * stored the failed batch, would take the next batch as its duplicate (acked, never stored) or refuse
 * every later one as out of order. The failed producer is disconnected in the background and the
 * next append starts on a fresh one, with a new producer id.
 */
export class KafkaEventLog implements EventLog {
  private session: Session | undefined;
  private readonly retiring = new Set<Promise<void>>();
  private readonly appends: Coalescer<PendingAppend>;
  private readonly appendTimeoutMs: number;
  /** Producers opened and sends that failed (each failure retires its producer). */
  readonly stats = { producers: 0, failedSends: 0 };

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string = config.kafka().messagesTopic,
    options: KafkaEventLogOptions = {},
  ) {
    this.appendTimeoutMs = options.appendTimeoutMs ?? config.kafka().appendTimeoutMs;
    // The appends made while a request is in flight wait for the next one: only the answer to the
    // request that carried a message settles it.
    this.appends = new Coalescer((batch) => this.sendBatch(batch));
  }

  append(messages: ChatMessage[]): Promise<void> {
    return this.appends.add({ messages, deadlineAt: Date.now() + this.appendTimeoutMs });
  }

  private async sendBatch(batch: PendingAppend[]): Promise<void> {
    const budget = remainingMs(Math.min(...batch.map((b) => b.deadlineAt)));
    const expired = `Kafka did not take the message within ${this.appendTimeoutMs} ms`;
    if (budget <= 0) throw new DependencyTimeoutError("kafka", this.appendTimeoutMs, expired);
    this.session ??= this.open();
    const session = this.session;
    const sent = this.send(session, batch, budget);
    try {
      await withDeadline("kafka", budget, sent, expired);
    } catch (cause) {
      this.stats.failedSends++;
      this.retire(session, sent);
      throw cause instanceof DependencyError
        ? cause
        : new DependencyError("kafka", "Kafka did not take the message", { cause });
    }
  }

  private open(): Session {
    this.stats.producers++;
    return {
      producer: this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // A few quick retries (a closed connection, a leader moving) fit in an append's deadline;
        // a send given up on stops retrying soon after, so its retired producer goes away soon too.
        retry: { initialRetryTime: 100, retries: 3, maxRetryTime: 1000 },
      }),
    };
  }

  private async send(session: Session, batch: PendingAppend[], timeoutMs: number): Promise<void> {
    try {
      session.connected ??= session.producer.connect();
      await session.connected;
    } catch (cause) {
      throw new DependencyError("kafka", "could not connect to Kafka", { cause });
    }
    await session.producer.send({
      topic: this.topic,
      acks: -1,
      // The broker's wait for the in-sync replicas: no longer than the append may take.
      timeout: timeoutMs,
      messages: batch.flatMap((b) => b.messages.map(encodeMessageRecord)),
    });
  }

  /**
   * Takes a producer out of use after a failed send and disconnects it in the background, bounded:
   * once at once (which fails the request it has in flight), and again once its abandoned send has
   * settled, since kafkajs reconnects to retry a send whose connection closed.
   */
  private retire(session: Session, inflight: Promise<unknown>): void {
    if (this.session === session) this.session = undefined;
    const stop = () =>
      withDeadline("kafka", RETIRE_DISCONNECT_MS, () => session.producer.disconnect()).catch(() => undefined);
    const done = stop()
      .then(() => withDeadline("kafka", RETIRE_SETTLE_MS, inflight).catch(() => undefined))
      .then(stop);
    this.retiring.add(done);
    void done.then(() => this.retiring.delete(done));
  }

  async disconnect(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session?.connected) await session.producer.disconnect();
    await Promise.all(this.retiring);
  }
}
