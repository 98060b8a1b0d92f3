/**
 * The persister: a Kafka consumer group member that stores every accepted message in PostgreSQL
 * exactly once. Run it with `tsx worker/persister.ts` (the worker image runs the same entry point).
 *
 * Per batch: decode every record, write the valid ones with one idempotent insert, send what can
 * never be stored to the dead-letter topic, and only then commit past the batch. A crash anywhere
 * before the commit means the batch is delivered again, and the insert skips what is stored
 * already, so nothing is lost and nothing is stored twice. Transient errors are retried with capped,
 * jittered backoff and never skipped.
 *
 * The parts, each in a file of its own:
 * - persister-batch.ts: the batch writer (decoding, the idempotent insert and its retries, telling
 *   a record that can never be stored from an outage, the dead-letter produce);
 * - persister-dead-letter.ts: the dead-letter record, its envelope and headers;
 * - persister-commits.ts: the commit tracker (each partition's batches stored in fetch order while
 *   the next fetch runs, the commit only after the write, a failed batch fetched again).
 * This file configures the consumer and the producer and wires the parts; `main` runs it with
 * runWorker (lifecycle.ts).
 */
import { type Consumer, type Kafka, Partitioners, type Producer } from "kafkajs";
import { createKafka, ensureTopics } from "../core/adapters/kafka";
import { createMessageRepository } from "../core/adapters/message-repository";
import { config } from "../core/config";
import { createLogger, type Logger } from "../core/logger";
import type { MessageRepository } from "../core/ports";
import { databaseUrl } from "../core/secrets";
import { runWorker } from "./lifecycle";
import { BatchWriter } from "./persister-batch";
import { CommitTracker } from "./persister-commits";

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
   * (default 1 s): under light traffic the persister asks once a second for many records instead
   * of once per record, and each fetch that answers costs the broker a commit besides. A message
   * is stored within about a second of its append (history reads the newest from Redis meanwhile);
   * a backlog fills a fetch at once, so it never waits.
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
  fetchMaxWaitMs: 1000,
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

/** Creates a persister over the given Kafka client and repository. */
export function createPersister(deps: PersisterDeps): Persister {
  const { kafka, repository, logger, topic, deadLetterTopic, groupId } = deps;
  const options = deps.options ?? {};
  let consumer: Consumer | undefined;
  let producer: Producer | undefined;
  let tracker: CommitTracker | undefined;
  let consuming = false;
  let stopping = false;
  let stopped: Promise<void> | undefined;

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
        // Each partition's batch becomes one insert, and a large insert costs far less per row than
        // a small one: a fetch should carry thousands of records per partition, not kafkajs's 1 MiB.
        maxBytesPerPartition:
          options.fetchMaxBytesPerPartition ?? PERSISTER_DEFAULTS.fetchMaxBytesPerPartition,
        maxBytes: options.fetchMaxBytes ?? PERSISTER_DEFAULTS.fetchMaxBytes,
        minBytes: options.fetchMinBytes ?? PERSISTER_DEFAULTS.fetchMinBytes,
        maxWaitTimeInMs: options.fetchMaxWaitMs ?? PERSISTER_DEFAULTS.fetchMaxWaitMs,
      });
      const writer = new BatchWriter({
        repository,
        producer,
        logger,
        topic,
        groupId,
        deadLetterTopic,
        retryBaseMs: options.retryBaseMs ?? 100,
        retryMaxMs: options.retryMaxMs ?? 5000,
        stopping: () => stopping,
      });
      const c = consumer;
      const t = new CommitTracker({ consumer: c, logger, store: (batch, beat) => writer.store(batch, beat) });
      tracker = t;
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
        eachBatch: (payload) => t.eachBatch(payload),
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
        await tracker?.drained();
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
