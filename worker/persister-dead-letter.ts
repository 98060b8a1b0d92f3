/**
 * The dead-letter envelope: what the persister produces for a record it can never store. The
 * original value travels inside, with where it came from and why it was refused, so that an operator
 * can inspect, fix and re-produce it; the reason is also in the headers for tools that only read those.
 */
import type { IHeaders, KafkaMessage } from "kafkajs";

/** The JSON value of a dead-letter record. */
export interface DeadLetterEnvelope {
  v: 1;
  reason: string;
  /** The error's name (PoisonRecordError, MessageConflictError, UnstorableMessageError, …). */
  error: string;
  source: { topic: string; partition: number; offset: string; timestamp: string; key: string | null };
  /** The original value: as text when it is valid UTF-8, else base64. Null for a tombstone. */
  value: string | null;
  valueEncoding: "utf8" | "base64";
  groupId: string;
  failedAt: string;
}

/** Header names on dead-letter records. */
export const DEAD_LETTER_HEADERS = {
  reason: "dlq-reason",
  error: "dlq-error",
  topic: "dlq-source-topic",
  partition: "dlq-source-partition",
  offset: "dlq-source-offset",
} as const;

function isUtf8(buffer: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buffer);
    return true;
  } catch {
    return false;
  }
}

/** Builds the dead-letter record for `record` of topic/partition, refused for `reason`. */
export function deadLetterRecord(
  source: { topic: string; partition: number; groupId: string },
  record: KafkaMessage,
  reason: string,
  errorName: string,
): { key: Buffer | null; value: string; headers: IHeaders } {
  const utf8 = record.value === null || isUtf8(record.value);
  const envelope: DeadLetterEnvelope = {
    v: 1,
    reason,
    error: errorName,
    source: {
      topic: source.topic,
      partition: source.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      key: record.key === null ? null : record.key.toString("utf8"),
    },
    value: record.value === null ? null : record.value.toString(utf8 ? "utf8" : "base64"),
    valueEncoding: utf8 ? "utf8" : "base64",
    groupId: source.groupId,
    failedAt: new Date().toISOString(),
  };
  return {
    key: record.key,
    value: JSON.stringify(envelope),
    headers: {
      ...(record.headers ?? {}),
      [DEAD_LETTER_HEADERS.reason]: reason,
      [DEAD_LETTER_HEADERS.error]: errorName,
      [DEAD_LETTER_HEADERS.topic]: source.topic,
      [DEAD_LETTER_HEADERS.partition]: String(source.partition),
      [DEAD_LETTER_HEADERS.offset]: record.offset,
    },
  };
}
