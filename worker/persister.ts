/**
 * The persister: a Kafka consumer group member that stores every accepted message in PostgreSQL
 * exactly once. Run it with `tsx worker/persister.ts` (the worker image runs the same entry point).
 *
 * Per batch: decode every record, write the valid ones with one idempotent insert, send what can
 * never be stored to the dead-letter topic, and only then resolve and commit the batch's offsets.
 * A crash anywhere before the commit means the batch is delivered again, and the insert skips what
 * is stored already, so nothing is lost and nothing is stored twice. Transient database errors are
 * retried with capped, jittered backoff and never skipped.
 */
import {
  type Consumer,
  type EachBatchPayload,
  type Kafka,
  type KafkaMessage,
  Partitioners,
  type Producer,
} from "kafkajs";
import { createKafka, decodeMessageRecord, ensureTopics } from "../core/adapters/kafka";
import {
  createMessageRepository,
  isPermanentWriteError,
  MessageConflictError,
  unstorableReason,
} from "../core/adapters/message-repository";
import { config } from "../core/config";
import { createLogger, type Logger } from "../core/logger";
import type { MessageRepository } from "../core/ports";
import { backoffMs, sleep } from "../core/retry";
import type { ChatMessage } from "../core/schemas";
import { databaseUrl } from "../core/secrets";
import { runWorker } from "./lifecycle";
import { deadLetterRecord } from "./persister-dead-letter";

/** Tuning of {@link createPersister}; every field has a default fit for production. */
export interface PersisterOptions {
  /** First retry delay of a failed write, in ms (default 100). */
  retryBaseMs?: number;
  /** Longest retry delay, in ms (default 5000). */
  retryMaxMs?: number;
  /**
   * Consumer session timeout, in ms (default PERSISTER_SESSION_TIMEOUT_MS, 10000): how long a dead
   * persister holds its partitions before the group gives them to the others.
   */
  sessionTimeoutMs?: number;
  /** Consumer heartbeat interval, in ms (default a sixth of the session timeout). */
  heartbeatIntervalMs?: number;
  /** How long the group waits for its live members to rejoin a rebalance (default twice the session timeout). */
  rebalanceTimeoutMs?: number;
  /**
   * Partitions written side by side, each on its own database connection (default 6). The
   * repository's pool should hold at least this many connections.
   */
  concurrency?: number;
  /** Most bytes one fetch returns per partition (default 4 MiB) and in all (default 32 MiB). */
  fetchMaxBytesPerPartition?: number;
  fetchMaxBytes?: number;
  /**
   * A fetch is answered once this many bytes are ready (default 256 KiB) or after fetchMaxWaitMs
   * (default 250): under light traffic the persister asks a few times a second for many records
   * instead of once per record. A backlog fills a fetch at once, so it never waits.
   */
  fetchMinBytes?: number;
  fetchMaxWaitMs?: number;
}

/** Defaults of {@link PersisterOptions}: see `npm run bench -- --only persist` for what they buy. */
export const PERSISTER_DEFAULTS = {
  concurrency: 6,
  fetchMaxBytesPerPartition: 4 * 1024 * 1024,
  fetchMaxBytes: 32 * 1024 * 1024,
  fetchMinBytes: 256 * 1024,
  fetchMaxWaitMs: 250,
} as const;

/** What {@link createPersister} needs: the real adapters in production, the same in tests. */
export interface PersisterDeps {
  kafka: Kafka;
  repository: MessageRepository;
  logger: Logger;
  topic: string;
  deadLetterTopic: string;
  groupId: string;
  options?: PersisterOptions;
}

/** A running persister. */
export interface Persister {
  /** Joins the group and starts consuming; resolves once the consumer runs. */
  start(): Promise<void>;
  /** Finishes the batch in flight, commits it, leaves the group and disconnects. Idempotent. */
  stop(): Promise<void>;
  /** Whether the consumer is in its group and consuming (what the health endpoint answers). */
  healthy(): boolean;
}

/** The batch was given up without committing (shutdown during an outage): it will be delivered again. */
class BatchAbandonedError extends Error {
  override name = "BatchAbandonedError";
}

interface Decoded {
  record: KafkaMessage;
  message: ChatMessage;
}

/** Creates a persister over the given Kafka client and repository. */
export function createPersister(deps: PersisterDeps): Persister {
  const { kafka, repository, logger, topic, deadLetterTopic, groupId } = deps;
  const options = deps.options ?? {};
  const retryBaseMs = options.retryBaseMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  let consumer: Consumer | undefined;
  let producer: Producer | undefined;
  let consuming = false;
  let stopping = false;
  let stopped: Promise<void> | undefined;

  const backoff = (attempt: number) => backoffMs(attempt, retryBaseMs, retryMaxMs);

  /** Runs `work` until it succeeds or fails permanently; transient failures are retried forever, except on shutdown. */
  async function retrying<T>(
    what: string,
    work: () => Promise<T>,
    heartbeat: () => Promise<void>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (isPermanentWriteError(error)) throw error;
        if (stopping) throw new BatchAbandonedError(`${what} failed during shutdown`, { cause: error });
        const delay = backoff(attempt);
        logger.warn(
          { err: error, attempt: attempt + 1, delayMs: Math.round(delay) },
          `${what} failed; retrying`,
        );
        await sleep(delay);
        await heartbeat();
      }
    }
  }

  async function sendToDeadLetter(
    dead: { record: KafkaMessage; reason: string; error: string }[],
    partition: number,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    if (dead.length === 0 || !producer) return;
    const messages = dead.map((d) =>
      deadLetterRecord({ topic, partition, groupId }, d.record, d.reason, d.error),
    );
    const p = producer;
    // Kafka errors are all worth a retry here; a record is never committed past before its DLQ copy is acked.
    await retrying(
      "dead-letter produce",
      () => p.send({ topic: deadLetterTopic, acks: -1, messages }),
      heartbeat,
    );
    for (const d of dead) {
      logger.warn(
        { partition, offset: d.record.offset, error: d.error, reason: d.reason },
        "record sent to the dead-letter topic",
      );
    }
  }

  /** Writes the messages; answers those refused for good, with their reason. Transient errors are retried inside. */
  async function write(
    decoded: Decoded[],
    heartbeat: () => Promise<void>,
  ): Promise<{ written: number; refused: { record: KafkaMessage; reason: string; error: string }[] }> {
    if (decoded.length === 0) return { written: 0, refused: [] };
    try {
      const written = await retrying(
        "insert",
        () => repository.insertMany(decoded.map((d) => d.message)),
        heartbeat,
      );
      return { written, refused: [] };
    } catch (error) {
      if (error instanceof MessageConflictError) {
        const byId = new Map(error.conflicts.map((c) => [c.message.messageId, c.reason]));
        return {
          written: error.written,
          refused: decoded
            .filter((d) => byId.has(d.message.messageId))
            .map((d) => ({
              record: d.record,
              reason: byId.get(d.message.messageId) ?? "conflict",
              error: error.name,
            })),
        };
      }
      if (!isPermanentWriteError(error)) throw error;
      if (decoded.length === 1) {
        const only = decoded[0] as Decoded;
        const e = error as Error;
        return {
          written: 0,
          refused: [{ record: only.record, reason: e.message, error: e.name ?? "Error" }],
        };
      }
      // One record spoils the statement for all: write them one by one to find it.
      logger.warn({ count: decoded.length }, "batch refused by the database; writing its records one by one");
      let written = 0;
      const refused: { record: KafkaMessage; reason: string; error: string }[] = [];
      for (const d of decoded) {
        const one = await write([d], heartbeat);
        written += one.written;
        refused.push(...one.refused);
      }
      return { written, refused };
    }
  }

  /**
   * One partition's writes, in the order its batches were fetched. kafkajs fetches again only once
   * eachBatch returns, so waiting there for PostgreSQL left the broker and the decoder idle during
   * every write; now eachBatch queues the batch here and returns, and the next fetch overlaps the
   * write. The fetch position moves on at once (resolveOffset); the committed offset moves only after
   * the batch, and every batch before it on the partition, is stored, so a crash or a lost partition
   * still redelivers whatever was not stored, and the insert skips what was.
   */
  interface Pipeline {
    tail: Promise<void>;
    queued: number;
    /** Bumped when a batch fails: batches queued behind it are dropped and fetched again. */
    epoch: number;
  }
  const pipelines = new Map<number, Pipeline>();
  /** Batches one partition may have fetched ahead of its write (bounds memory to a few fetches). */
  const AHEAD = 2;

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isStale } = payload;
    if (batch.messages.length === 0 || !consumer || isStale()) return;
    const p = pipelines.get(batch.partition) ?? { tail: Promise.resolve(), queued: 0, epoch: 0 };
    pipelines.set(batch.partition, p);
    const epoch = p.epoch;
    const before = p.tail;
    p.queued++;
    // A heartbeat that fails (a rebalance began) must not fail the write: the runner heartbeats too.
    const beat = () => heartbeat().catch(() => undefined);
    p.tail = before
      .then(() => (p.epoch === epoch ? storeBatch(batch, beat) : undefined))
      .catch((error: unknown) => {
        p.epoch++;
        if (error instanceof BatchAbandonedError) {
          logger.warn(
            { partition: batch.partition, err: error.cause },
            "batch abandoned during shutdown; it will be delivered again",
          );
          return;
        }
        logger.error(
          { partition: batch.partition, offset: batch.firstOffset(), err: error },
          "storing a batch failed; fetching the partition again from it",
        );
        try {
          const offset = batch.firstOffset() ?? batch.messages[0]?.offset ?? "0";
          consumer?.seek({ topic: batch.topic, partition: batch.partition, offset });
        } catch (seekError) {
          logger.error(
            { partition: batch.partition, err: seekError },
            "could not seek back; restart to redeliver",
          );
        }
      })
      .finally(() => {
        p.queued--;
      });
    resolveOffset(batch.lastOffset());
    if (p.queued > AHEAD) await before;
  }

  /** Decodes, writes and dead-letters one batch, then commits past it. Runs after the partition's previous batch. */
  async function storeBatch(batch: EachBatchPayload["batch"], heartbeat: () => Promise<void>): Promise<void> {
    const started = Date.now();
    const valid: Decoded[] = [];
    const dead: { record: KafkaMessage; reason: string; error: string }[] = [];
    for (const record of batch.messages) {
      try {
        const message = decodeMessageRecord(record.value);
        const reason = unstorableReason(message);
        if (reason) dead.push({ record, reason, error: "UnstorableMessageError" });
        else valid.push({ record, message });
      } catch (error) {
        const e = error as Error;
        dead.push({ record, reason: e.message, error: e.name ?? "Error" });
      }
    }
    const { written, refused } = await write(valid, heartbeat);
    dead.push(...refused);
    await sendToDeadLetter(dead, batch.partition, heartbeat);
    const last = batch.lastOffset();
    const next = (BigInt(last) + 1n).toString();
    try {
      await consumer?.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
    } catch (error) {
      // The partition was taken from us meanwhile: the new owner will see these again; the writes are idempotent.
      logger.info(
        { partition: batch.partition, err: error },
        "batch stored after losing the partition; not committed",
      );
      return;
    }
    logger.info(
      {
        partition: batch.partition,
        firstOffset: batch.firstOffset(),
        lastOffset: last,
        records: batch.messages.length,
        written,
        duplicates: valid.length - written - refused.length,
        deadLettered: dead.length,
        durationMs: Date.now() - started,
      },
      "batch stored and committed",
    );
  }

  /** Resolves once every queued batch is stored (or abandoned). */
  async function drained(): Promise<void> {
    for (;;) {
      const tails = [...pipelines.values()];
      await Promise.all(tails.map((p) => p.tail));
      if (tails.every((p) => p.queued === 0)) return;
    }
  }

  return {
    async start() {
      producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      const sessionTimeout = options.sessionTimeoutMs ?? config.persister().sessionTimeoutMs;
      consumer = kafka.consumer({
        groupId,
        sessionTimeout,
        heartbeatInterval: options.heartbeatIntervalMs ?? Math.max(100, Math.floor(sessionTimeout / 6)),
        rebalanceTimeout: options.rebalanceTimeoutMs ?? 2 * sessionTimeout,
        allowAutoTopicCreation: false,
        // One fetch answers for every partition of the broker and the next waits until all its
        // batches are written, so a fetch should carry thousands of records, not the default 1 MiB.
        maxBytesPerPartition:
          options.fetchMaxBytesPerPartition ?? PERSISTER_DEFAULTS.fetchMaxBytesPerPartition,
        maxBytes: options.fetchMaxBytes ?? PERSISTER_DEFAULTS.fetchMaxBytes,
        minBytes: options.fetchMinBytes ?? PERSISTER_DEFAULTS.fetchMinBytes,
        maxWaitTimeInMs: options.fetchMaxWaitMs ?? PERSISTER_DEFAULTS.fetchMaxWaitMs,
      });
      const c = consumer;
      c.on(c.events.GROUP_JOIN, (e) => {
        consuming = true;
        logger.info(
          { memberId: e.payload.memberId, assignment: e.payload.memberAssignment },
          "joined the consumer group",
        );
      });
      c.on(c.events.CRASH, (e) => {
        consuming = false;
        logger.error({ err: e.payload.error, restart: e.payload.restart }, "consumer crashed");
      });
      c.on(c.events.STOP, () => {
        consuming = false;
      });
      await c.connect();
      // A new group starts at the beginning: messages produced before the first persister ran must be stored too.
      await c.subscribe({ topic, fromBeginning: true });
      // Partitions are written side by side: each batch waits on its own round trip to PostgreSQL.
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.concurrency ?? PERSISTER_DEFAULTS.concurrency,
        eachBatch,
      });
      logger.info({ topic, groupId, deadLetterTopic }, "persister started");
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        logger.info("persister stopping: finishing the batches in flight");
        // No more fetches; the queued batches are stored and committed while still in the group,
        // then disconnect() leaves it.
        if (consumer && consuming) consumer.pause([{ topic }]);
        await drained();
        await consumer?.disconnect();
        consuming = false;
        await producer?.disconnect();
        logger.info("persister stopped");
      })();
      return stopped;
    },
    healthy: () => consuming && !stopping,
  };
}

/** The entry point: wires the real adapters from the environment and runs until SIGTERM or SIGINT. */
async function main(): Promise<void> {
  const logger = createLogger("persister");
  const kafkaConfig = config.kafka();
  const persisterConfig = config.persister();
  // A connection per partition written at once, and one for the conflict look-ups.
  const repository = createMessageRepository(await databaseUrl(), {
    maxConnections: PERSISTER_DEFAULTS.concurrency + 1,
  });
  try {
    await repository.assertReady();
  } catch (error) {
    logger.fatal({ err: error }, (error as Error).message);
    await repository.disconnect();
    process.exit(1);
  }
  const kafka = createKafka(kafkaConfig);
  await ensureTopics(kafka, kafkaConfig);
  const persister = createPersister({
    kafka,
    repository,
    logger,
    topic: kafkaConfig.messagesTopic,
    deadLetterTopic: kafkaConfig.deadLetterTopic,
    groupId: persisterConfig.groupId,
  });
  await runWorker({
    logger,
    healthPort: persisterConfig.healthPort,
    status: "consuming",
    // 200 only while the consumer is in its group and consuming, not merely while the process runs.
    health: () => {
      const ok = persister.healthy();
      return { ok, status: ok ? "consuming" : "not consuming", groupId: persisterConfig.groupId };
    },
    start: () => persister.start(),
    stop: () => persister.stop(),
    close: () => repository.disconnect(),
  });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
