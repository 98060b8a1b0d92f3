/**
 * The event log port over Kafka (kafkajs): the client factory (plain or MSK IAM through
 * SASL/OAUTHBEARER), topic creation, the record codec shared by producer and consumer, and a producer
 * that batches concurrent appends into one request.
 */

import { Kafka, type LogEntry, logLevel, type Producer } from "kafkajs";
import { type Config, config } from "../config";
import { DependencyError, PoisonRecordError } from "../errors";
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

/** A kafkajs client for the configured brokers; on MSK, signed with the task's or function's IAM role. */
export function createKafka(cfg: KafkaConfig = config.kafka(), region = config.aws().region): Kafka {
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
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        // Bounded retries are deliberate: a send fails fast, the client retries with the same
        // clientMsgId, and the persister drops the duplicate a retried produce may leave.
        const expected =
          typeof message === "string" && message.startsWith("Limiting retries for the idempotent");
        log[expected ? "debug" : (levelNames[level] ?? "info")](rest, message);
      },
  });
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

/**
 * The event log over an idempotent producer with acks from all in-sync replicas. Appends that arrive
 * while a request is in flight are sent together in the next request, so concurrent handlers in one
 * process (the local stack, a warm Lambda under load) share round trips without waiting on a timer.
 */
export class KafkaEventLog implements EventLog {
  private producer: Producer;
  private connecting: Promise<void> | undefined;
  private queue: { messages: ChatMessage[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private sending = false;

  constructor(
    kafka: Kafka,
    private readonly topic: string = config.kafka().messagesTopic,
  ) {
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
  }

  private connect(): Promise<void> {
    this.connecting ??= this.producer.connect().catch((cause) => {
      this.connecting = undefined;
      throw new DependencyError("kafka", "could not connect to Kafka", { cause });
    });
    return this.connecting;
  }

  append(messages: ChatMessage[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ messages, resolve, reject });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.queue.length);
        try {
          await this.connect();
          await this.producer.send({
            topic: this.topic,
            acks: -1,
            messages: batch.flatMap((b) => b.messages.map(encodeMessageRecord)),
          });
          for (const b of batch) b.resolve();
        } catch (cause) {
          const error =
            cause instanceof DependencyError
              ? cause
              : new DependencyError("kafka", "Kafka did not take the message", { cause });
          for (const b of batch) b.reject(error);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  async disconnect(): Promise<void> {
    if (this.connecting) await this.producer.disconnect();
    this.connecting = undefined;
  }
}
