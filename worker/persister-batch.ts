/**
 * The persister's batch writer: what becomes of one batch's records. Every record is decoded; the
 * valid messages are written with one idempotent insert (what is stored already is skipped, so a
 * redelivered batch stores nothing twice); what can never be stored (a poison record, a message
 * PostgreSQL cannot hold, a message whose (roomId, seq) belongs to another) is sent to the
 * dead-letter topic. A batch is done only when each of its records is stored or dead-lettered:
 * transient errors are retried with capped, jittered backoff, never skipped, since the caller
 * commits past the batch once this answers.
 *
 * Logs name a record by partition and offset and say why it was refused; they never carry its body.
 */
import type { Batch, KafkaMessage, Producer } from "kafkajs";
import { decodeMessageRecord } from "../core/adapters/kafka";
import {
  isPermanentWriteError,
  MessageConflictError,
  unstorableReason,
} from "../core/adapters/message-repository";
import type { Logger } from "../core/logger";
import type { MessageRepository } from "../core/ports";
import { backoffMs, sleep } from "../core/retry";
import type { ChatMessage } from "../core/schemas";
import { deadLetterRecord } from "./persister-dead-letter";

/** The batch was given up without committing (shutdown during an outage): it will be delivered again. */
export class BatchAbandonedError extends Error {
  override name = "BatchAbandonedError";
}

/** A record and the message it carries. */
export interface Decoded {
  record: KafkaMessage;
  message: ChatMessage;
}

/** A record that can never be stored: why, and the name of the error that said so. */
export interface Refused {
  record: KafkaMessage;
  reason: string;
  error: string;
}

/** What storing one batch did, for its log line. */
export interface BatchOutcome {
  /** Rows the insert wrote. */
  written: number;
  /** Valid messages stored already (a redelivery), so neither written nor refused. */
  duplicates: number;
  /** Records sent to the dead-letter topic, whether refused on decoding or by the database. */
  deadLettered: number;
}

/** `record` refused by `error`, which says why. */
function refusedBy(record: KafkaMessage, error: unknown): Refused {
  const e = error as Error;
  return { record, reason: e.message, error: e.name ?? "Error" };
}

/** Splits records into the messages to write and those that can never be stored as they are. */
export function decodeRecords(records: KafkaMessage[]): { valid: Decoded[]; refused: Refused[] } {
  const valid: Decoded[] = [];
  const refused: Refused[] = [];
  for (const record of records) {
    try {
      const message = decodeMessageRecord(record.value);
      const reason = unstorableReason(message);
      if (reason) refused.push({ record, reason, error: "UnstorableMessageError" });
      else valid.push({ record, message });
    } catch (error) {
      refused.push(refusedBy(record, error));
    }
  }
  return { valid, refused };
}

/** The records of `decoded` that `error` names, each with what holds its place. */
export function conflictRefusals(decoded: Decoded[], error: MessageConflictError): Refused[] {
  const byId = new Map(error.conflicts.map((c) => [c.message.messageId, c.reason]));
  return decoded
    .filter((d) => byId.has(d.message.messageId))
    .map((d) => ({
      record: d.record,
      reason: byId.get(d.message.messageId) ?? "conflict",
      error: error.name,
    }));
}

export interface BatchWriterDeps {
  repository: Pick<MessageRepository, "insertMany">;
  /** An idempotent producer, for the dead-letter topic. */
  producer: Pick<Producer, "send">;
  logger: Logger;
  /** The topic the records come from, and the group reading it: both go into each dead-letter record. */
  topic: string;
  groupId: string;
  deadLetterTopic: string;
  /** First and longest retry delay of a failed write or produce, in ms. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Whether the persister is stopping: a transient failure then abandons the batch instead of waiting. */
  stopping(): boolean;
}

/** Stores batches: writes, then dead-letters what can never be written. */
export class BatchWriter {
  constructor(private readonly deps: BatchWriterDeps) {}

  /** Stores every record of `batch`, written or dead-lettered; throws only when the batch must be fetched again. */
  async store(
    batch: Pick<Batch, "partition" | "messages">,
    heartbeat: () => Promise<void>,
  ): Promise<BatchOutcome> {
    const { valid, refused: dead } = decodeRecords(batch.messages);
    const { written, refused } = await this.write(valid, heartbeat);
    dead.push(...refused);
    await this.deadLetter(dead, batch.partition, heartbeat);
    return { written, duplicates: valid.length - written - refused.length, deadLettered: dead.length };
  }

  /** Runs `work` until it succeeds or fails permanently; transient failures are retried forever, except on shutdown. */
  private async retrying<T>(
    what: string,
    work: () => Promise<T>,
    heartbeat: () => Promise<void>,
  ): Promise<T> {
    const { logger, retryBaseMs, retryMaxMs } = this.deps;
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (isPermanentWriteError(error)) throw error;
        if (this.deps.stopping()) {
          throw new BatchAbandonedError(`${what} failed during shutdown`, { cause: error });
        }
        const delay = backoffMs(attempt, retryBaseMs, retryMaxMs);
        logger.warn(
          { err: error, attempt: attempt + 1, delayMs: Math.round(delay) },
          `${what} failed; retrying`,
        );
        await sleep(delay);
        await heartbeat();
      }
    }
  }

  /** Writes the messages; answers those refused for good, with their reason. Transient errors are retried inside. */
  private async write(
    decoded: Decoded[],
    heartbeat: () => Promise<void>,
  ): Promise<{ written: number; refused: Refused[] }> {
    if (decoded.length === 0) return { written: 0, refused: [] };
    const { repository, logger } = this.deps;
    try {
      const written = await this.retrying(
        "insert",
        () => repository.insertMany(decoded.map((d) => d.message)),
        heartbeat,
      );
      return { written, refused: [] };
    } catch (error) {
      if (error instanceof MessageConflictError) {
        return { written: error.written, refused: conflictRefusals(decoded, error) };
      }
      if (!isPermanentWriteError(error)) throw error;
      if (decoded.length === 1) {
        return { written: 0, refused: [refusedBy((decoded[0] as Decoded).record, error)] };
      }
      // One record spoils the statement for all: write them one by one to find it.
      logger.warn({ count: decoded.length }, "batch refused by the database; writing its records one by one");
      let written = 0;
      const refused: Refused[] = [];
      for (const d of decoded) {
        const one = await this.write([d], heartbeat);
        written += one.written;
        refused.push(...one.refused);
      }
      return { written, refused };
    }
  }

  private async deadLetter(
    dead: Refused[],
    partition: number,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    if (dead.length === 0) return;
    const { producer, logger, topic, groupId, deadLetterTopic } = this.deps;
    const messages = dead.map((d) =>
      deadLetterRecord({ topic, partition, groupId }, d.record, d.reason, d.error),
    );
    // Kafka errors are all worth a retry here; a record is never committed past before its DLQ copy is acked.
    await this.retrying(
      "dead-letter produce",
      () => producer.send({ topic: deadLetterTopic, acks: -1, messages }),
      heartbeat,
    );
    for (const d of dead) {
      logger.warn(
        { partition, offset: d.record.offset, error: d.error, reason: d.reason },
        "record sent to the dead-letter topic",
      );
    }
  }
}
