/**
 * The persister's commit tracker: a partition's committed offset moves past a batch only once that
 * batch, and every batch fetched before it on the partition, is stored (written or dead-lettered).
 * A crash or a lost partition therefore redelivers whatever was not stored, and the idempotent
 * insert skips what was.
 *
 * kafkajs fetches again only once eachBatch returns, so eachBatch queues the batch on its partition
 * and returns: the next fetch and its decoding overlap the write instead of waiting on PostgreSQL.
 * The fetch position moves on at once (resolveOffset); each partition's batches are stored one after
 * another, in the order they were fetched, and at most `ahead` of them wait, which bounds memory to a
 * few fetches. A batch that fails is fetched again: the partition seeks back to its first offset and
 * the batches queued behind it are dropped, since the new fetch brings them again.
 */
import type { Batch, Consumer, EachBatchPayload } from "kafkajs";
import { Coalescer } from "../core/coalesce";
import type { Logger } from "../core/logger";
import { BatchAbandonedError, type BatchOutcome } from "./persister-batch";

/** What the tracker reads of a fetched batch. */
export type FetchedBatch = Pick<Batch, "topic" | "partition" | "messages" | "firstOffset" | "lastOffset">;

/** What the tracker reads of kafkajs's eachBatch payload. */
export type BatchPayload = Pick<EachBatchPayload, "resolveOffset" | "heartbeat" | "isStale"> & {
  batch: FetchedBatch;
};

export interface CommitTrackerDeps {
  consumer: Pick<Consumer, "commitOffsets" | "seek">;
  logger: Logger;
  /** Stores every record of the batch; throws when the batch must be fetched again. */
  store(batch: FetchedBatch, heartbeat: () => Promise<void>): Promise<BatchOutcome>;
  /** Batches one partition may have fetched ahead of its write (default 2). */
  ahead?: number;
}

/** One partition's queue of batches to store. */
interface Pipeline {
  /** Settles once every batch queued so far is stored, abandoned or failed. */
  tail: Promise<void>;
  queued: number;
  /** Bumped when a batch fails: batches queued behind it are dropped and fetched again. */
  epoch: number;
}

/** The offset to commit once the batch ending at `lastOffset` is stored: Kafka commits the next one to read. */
export function offsetAfter(lastOffset: string): string {
  return (BigInt(lastOffset) + 1n).toString();
}

/** An offset to commit: Kafka's next one to read on the partition. */
interface Commit {
  topic: string;
  partition: number;
  offset: string;
}

/**
 * Commits offsets one request at a time; the commits asked for while a request is in flight go
 * together in the next one, each partition at the highest offset asked. A fetch brings batches of
 * several partitions, each stored on its own, and a commit is a write to the broker's offsets log:
 * one request for them all, not one each.
 */
export class CoalescedCommits {
  private readonly commits: Coalescer<Commit>;

  constructor(consumer: Pick<Consumer, "commitOffsets">) {
    this.commits = new Coalescer(async (asked) => {
      const highest = new Map<string, Commit>();
      for (const c of asked) {
        const key = `${c.topic}/${c.partition}`;
        const before = highest.get(key);
        if (!before || BigInt(c.offset) > BigInt(before.offset)) highest.set(key, c);
      }
      await consumer.commitOffsets([...highest.values()]);
    });
  }

  /** Resolves once a request carrying this offset (or a later one of its partition) succeeded. */
  commit(topic: string, partition: number, offset: string): Promise<void> {
    return this.commits.add({ topic, partition, offset });
  }
}

/** Queues fetched batches per partition and commits past each once it is stored. */
export class CommitTracker {
  private readonly pipelines = new Map<number, Pipeline>();
  private readonly ahead: number;
  private readonly commits: CoalescedCommits;

  constructor(private readonly deps: CommitTrackerDeps) {
    this.ahead = deps.ahead ?? 2;
    this.commits = new CoalescedCommits(deps.consumer);
  }

  /** kafkajs's eachBatch: queues the batch and returns, waiting only while the partition is `ahead` batches behind. */
  async eachBatch(payload: BatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isStale } = payload;
    if (batch.messages.length === 0 || isStale()) return;
    const p = this.pipelines.get(batch.partition) ?? { tail: Promise.resolve(), queued: 0, epoch: 0 };
    this.pipelines.set(batch.partition, p);
    const epoch = p.epoch;
    const before = p.tail;
    p.queued++;
    // A heartbeat that fails (a rebalance began) must not fail the write: the runner heartbeats too.
    const beat = () => heartbeat().catch(() => undefined);
    p.tail = before
      .then(() => (p.epoch === epoch ? this.storeAndCommit(batch, beat) : undefined))
      .catch((error: unknown) => {
        p.epoch++;
        this.fetchAgain(batch, error);
      })
      .finally(() => {
        p.queued--;
      });
    resolveOffset(batch.lastOffset());
    if (p.queued > this.ahead) await before;
  }

  /** Resolves once every queued batch is stored (or abandoned). */
  async drained(): Promise<void> {
    for (;;) {
      const tails = [...this.pipelines.values()];
      await Promise.all(tails.map((p) => p.tail));
      if (tails.every((p) => p.queued === 0)) return;
    }
  }

  /** Stores one batch, then commits past it. Runs after the partition's previous batch. */
  private async storeAndCommit(batch: FetchedBatch, heartbeat: () => Promise<void>): Promise<void> {
    const { logger } = this.deps;
    const started = Date.now();
    const { written, duplicates, deadLettered } = await this.deps.store(batch, heartbeat);
    const last = batch.lastOffset();
    try {
      await this.commits.commit(batch.topic, batch.partition, offsetAfter(last));
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
        duplicates,
        deadLettered,
        durationMs: Date.now() - started,
      },
      "batch stored and committed",
    );
  }

  /** After a failed batch: seek back to it, so that it and what followed are delivered again. */
  private fetchAgain(batch: FetchedBatch, error: unknown): void {
    const { consumer, logger } = this.deps;
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
      consumer.seek({ topic: batch.topic, partition: batch.partition, offset });
    } catch (seekError) {
      logger.error(
        { partition: batch.partition, err: seekError },
        "could not seek back; restart to redeliver",
      );
    }
  }
}
