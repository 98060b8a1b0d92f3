import type { KafkaMessage } from "kafkajs";
import pino from "pino";
import { encodeMessageRecord } from "../core/adapters/kafka";
import { MessageConflictError, UnstorableMessageError } from "../core/adapters/message-repository";
import type { ChatMessage } from "../core/schemas";
import { BatchAbandonedError, BatchWriter, type BatchWriterDeps, decodeRecords } from "./persister-batch";
import type { DeadLetterEnvelope } from "./persister-dead-letter";

const SECRET = "a body no log may carry";

function chat(seq: number, extra: Partial<ChatMessage> = {}): ChatMessage {
  return {
    messageId: `r-${seq}`,
    roomId: "r",
    seq,
    senderId: "bob",
    text: `${SECRET} ${seq}`,
    sentAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
    clientMsgId: `c${seq}`,
    ...extra,
  };
}

function record(offset: number, value: string | null): KafkaMessage {
  return {
    key: Buffer.from("r"),
    value: value === null ? null : Buffer.from(value),
    offset: String(offset),
    timestamp: "0",
    attributes: 0,
    headers: {},
  } as KafkaMessage;
}

const recordOf = (offset: number, message: ChatMessage) => record(offset, encodeMessageRecord(message).value);

/** A writer over fakes; `insertMany` decides what each insert does. */
function writer(insertMany: (messages: ChatMessage[]) => Promise<number>, stopping = () => false) {
  const logs: string[] = [];
  const sent: DeadLetterEnvelope[] = [];
  const inserts: string[][] = [];
  const deps: BatchWriterDeps = {
    repository: {
      insertMany: (messages) => {
        inserts.push(messages.map((m) => m.messageId));
        return insertMany(messages);
      },
    },
    producer: {
      send: async (r) => {
        for (const m of r.messages) sent.push(JSON.parse(String(m.value)));
        return [];
      },
    },
    logger: pino({ level: "trace" }, { write: (line: string) => void logs.push(line) }),
    topic: "messages",
    groupId: "persister",
    deadLetterTopic: "messages.dlq",
    retryBaseMs: 0,
    retryMaxMs: 0,
    stopping,
  };
  return { writer: new BatchWriter(deps), logs, sent, inserts };
}

const heartbeat = async () => undefined;

describe("decodeRecords", () => {
  test("valid messages to write; poison and unstorable records refused with their reason", () => {
    const { valid, refused } = decodeRecords([
      recordOf(0, chat(1)),
      record(1, null),
      record(2, "not json"),
      record(3, JSON.stringify({ v: 1, message: { roomId: "r" } })),
      recordOf(4, chat(2, { text: "nul \u0000 inside" })),
    ]);
    expect(valid.map((d) => [d.record.offset, d.message.messageId])).toEqual([["0", "r-1"]]);
    expect(refused.map((r) => [r.record.offset, r.error])).toEqual([
      ["1", "PoisonRecordError"],
      ["2", "PoisonRecordError"],
      ["3", "PoisonRecordError"],
      ["4", "UnstorableMessageError"],
    ]);
    expect(refused[0]?.reason).toMatch(/tombstone/);
    expect(refused[3]?.reason).toMatch(/NUL/);
  });
});

describe("BatchWriter", () => {
  test("writes the valid messages in one insert and dead-letters the rest; redelivered ones count as duplicates", async () => {
    const w = writer(async (messages) => messages.length - 1);
    const outcome = await w.writer.store(
      { partition: 3, messages: [recordOf(0, chat(1)), record(1, "x"), recordOf(2, chat(2))] },
      heartbeat,
    );
    expect(outcome).toEqual({ written: 1, duplicates: 1, deadLettered: 1 });
    expect(w.inserts).toEqual([["r-1", "r-2"]]);
    expect(w.sent.map((e) => [e.source.partition, e.source.offset, e.error])).toEqual([
      [3, "1", "PoisonRecordError"],
    ]);
  });

  test("transient errors are retried until the insert succeeds", async () => {
    let failures = 2;
    const w = writer(async (messages) => {
      if (failures-- > 0) throw new Error("connection terminated");
      return messages.length;
    });
    const outcome = await w.writer.store({ partition: 0, messages: [recordOf(0, chat(1))] }, heartbeat);
    expect(outcome).toEqual({ written: 1, duplicates: 0, deadLettered: 0 });
    expect(w.inserts).toHaveLength(3);
    expect(w.sent).toEqual([]);
  });

  test("a batch the database refuses for good is written record by record, and only the bad one is dead-lettered", async () => {
    const w = writer(async (messages) => {
      const bad = messages.find((m) => m.seq === 2);
      if (bad) throw new UnstorableMessageError(bad.messageId, "refused");
      return messages.length;
    });
    const outcome = await w.writer.store(
      { partition: 0, messages: [recordOf(0, chat(1)), recordOf(1, chat(2)), recordOf(2, chat(3))] },
      heartbeat,
    );
    expect(outcome).toEqual({ written: 2, duplicates: 0, deadLettered: 1 });
    expect(w.inserts).toEqual([["r-1", "r-2", "r-3"], ["r-1"], ["r-2"], ["r-3"]]);
    expect(w.sent.map((e) => [e.source.offset, e.error])).toEqual([["1", "UnstorableMessageError"]]);
  });

  test("a message whose (roomId, seq) belongs to another is dead-lettered with the id that holds it", async () => {
    const w = writer(async (messages) => {
      const [first] = messages as [ChatMessage];
      throw new MessageConflictError([{ message: first, reason: "r-other" }], messages.length - 1);
    });
    const outcome = await w.writer.store(
      { partition: 0, messages: [recordOf(0, chat(1)), recordOf(1, chat(2))] },
      heartbeat,
    );
    expect(outcome).toEqual({ written: 1, duplicates: 0, deadLettered: 1 });
    expect(w.sent.map((e) => [e.source.offset, e.reason, e.error])).toEqual([
      ["0", "r-other", "MessageConflictError"],
    ]);
  });

  test("on shutdown a transient failure abandons the batch instead of waiting", async () => {
    const w = writer(
      async () => {
        throw new Error("connection terminated");
      },
      () => true,
    );
    await expect(
      w.writer.store({ partition: 0, messages: [recordOf(0, chat(1))] }, heartbeat),
    ).rejects.toBeInstanceOf(BatchAbandonedError);
    expect(w.inserts).toHaveLength(1);
  });

  test("logs say where a refused record was and why, never its body", async () => {
    let failures = 1;
    const w = writer(async (messages) => {
      if (failures-- > 0) throw new Error("connection terminated");
      const bad = messages.find((m) => m.seq === 2);
      if (bad) throw new UnstorableMessageError(bad.messageId, "refused");
      return messages.length;
    });
    await w.writer.store({ partition: 0, messages: [recordOf(0, chat(1)), recordOf(1, chat(2))] }, heartbeat);
    expect(w.logs.join("")).toMatch(/record sent to the dead-letter topic/);
    expect(w.logs.join("")).not.toContain(SECRET);
  });
});
