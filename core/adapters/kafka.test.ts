import type { Kafka } from "kafkajs";
import { DependencyError, DependencyTimeoutError, PoisonRecordError } from "../errors";
import { type ChatMessage, MessageRecord } from "../schemas";
import { decodeMessageRecord, encodeMessageRecord, isExpectedKafkaLog, KafkaEventLog } from "./kafka";

const message: ChatMessage = {
  messageId: "01JDQ8Z4N6W7X8Y9ZABCDEFGHJ",
  roomId: "room-1",
  seq: 7,
  senderId: "alice@example",
  senderName: "Alice",
  text: "hello",
  sentAt: "2026-11-30T05:00:00.123Z",
  clientMsgId: "c-1",
};

/** A record value with one field of the message changed (undefined removes it). */
function withField(field: string, value: unknown): Buffer {
  const m: Record<string, unknown> = { ...message, [field]: value };
  if (value === undefined) delete m[field];
  return Buffer.from(JSON.stringify({ v: 1, message: m }));
}

/** What the schema itself says of a value: the message, or the reason decodeMessageRecord must give. */
function bySchema(value: Buffer): ChatMessage | string {
  const parsed = MessageRecord.safeParse(JSON.parse(value.toString("utf8")));
  if (parsed.success) return parsed.data.message;
  const issue = parsed.error.issues[0];
  return `record does not match the message schema at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`;
}

function decoded(value: Buffer): ChatMessage | string {
  try {
    return decodeMessageRecord(value);
  } catch (error) {
    expect(error).toBeInstanceOf(PoisonRecordError);
    return (error as Error).message;
  }
}

describe("decodeMessageRecord", () => {
  test("reads back what encodeMessageRecord wrote, with and without the optional name", () => {
    expect(decodeMessageRecord(Buffer.from(encodeMessageRecord(message).value))).toEqual(message);
    const { senderName: _, ...anonymous } = message;
    expect(decodeMessageRecord(Buffer.from(encodeMessageRecord(anonymous).value))).toEqual(anonymous);
  });

  test("keeps only the message's own fields", () => {
    const m = decodeMessageRecord(withField("extra", "x\u0000"));
    expect(Object.keys(m).sort()).toEqual(Object.keys(message).sort());
  });

  // The decoder runs the schema compiled to one function; each case must get the schema's own answer.
  const cases: [string, Buffer][] = [
    ["a valid record", withField("seq", 1)],
    ["seq a string", withField("seq", "7")],
    ["seq zero", withField("seq", 0)],
    ["seq a fraction", withField("seq", 1.5)],
    ["roomId with a space", withField("roomId", "a b")],
    ["roomId too long", withField("roomId", "r".repeat(65))],
    ["senderId missing", withField("senderId", undefined)],
    ["senderName too long", withField("senderName", "n".repeat(65))],
    ["senderName null", withField("senderName", null)],
    ["text empty", withField("text", "")],
    ["sentAt with an offset", withField("sentAt", "2026-11-30T05:00:00+01:00")],
    ["sentAt not a date", withField("sentAt", "2026-02-30T05:00:00Z")],
    ["clientMsgId with a colon", withField("clientMsgId", "a:b")],
    ["messageId empty", withField("messageId", "")],
    ["message not an object", Buffer.from(JSON.stringify({ v: 1, message: "hi" }))],
    ["version 2", Buffer.from(JSON.stringify({ v: 2, message }))],
    ["an array", Buffer.from("[1,2]")],
  ];
  test.each(cases)("%s: the schema's answer", (_name, value) => {
    expect(decoded(value)).toEqual(bySchema(value));
  });

  test("the refusals name the field", () => {
    expect(decoded(withField("seq", "7"))).toMatch(/at message\.seq: /);
    expect(decoded(Buffer.from(JSON.stringify({ v: 2, message })))).toMatch(/at v: /);
  });

  test("a value that is not JSON, or none, is poison", () => {
    expect(decoded(Buffer.from("{not json"))).toBe("record value is not JSON");
    expect(() => decodeMessageRecord(null)).toThrow(/no value/);
  });
});

/** A producer whose sends answer when the test says so. */
class FakeProducer {
  readonly sends: { ids: string[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  connects = 0;
  disconnects = 0;
  async connect() {
    this.connects++;
  }
  send(request: { messages: { value: string }[] }) {
    return new Promise<void>((resolve, reject) => {
      const ids = request.messages.map((r) => (JSON.parse(r.value) as MessageRecord).message.messageId);
      this.sends.push({ ids, resolve, reject });
    });
  }
  async disconnect() {
    this.disconnects++;
  }
}

function fakeKafka() {
  const producers: FakeProducer[] = [];
  const kafka = {
    producer: () => {
      const p = new FakeProducer();
      producers.push(p);
      return p;
    },
  } as unknown as Kafka;
  return { kafka, producers };
}

const numbered = (n: number): ChatMessage => ({ ...message, messageId: `m-${n}`, seq: n });
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("KafkaEventLog", () => {
  test("batches appends made while a send is in flight into the next send", async () => {
    const { kafka, producers } = fakeKafka();
    const log = new KafkaEventLog(kafka, "t", { appendTimeoutMs: 5000 });
    const first = log.append([numbered(1)]);
    await settled();
    const behind = [log.append([numbered(2)]), log.append([numbered(3)])];
    producers[0]?.sends[0]?.resolve();
    await first;
    await settled();
    expect(producers[0]?.sends.map((s) => s.ids)).toEqual([["m-1"], ["m-2", "m-3"]]);
    producers[0]?.sends[1]?.resolve();
    await Promise.all(behind);
    expect(producers).toHaveLength(1);
    await log.disconnect();
  });

  test("a failed send retires its producer: what was queued behind it goes on a new one, answered by it alone", async () => {
    const { kafka, producers } = fakeKafka();
    const log = new KafkaEventLog(kafka, "t", { appendTimeoutMs: 5000 });
    const failed = log.append([numbered(1)]);
    await settled();
    const behind = log.append([numbered(2)]);
    let behindSettled = false;
    void behind.finally(() => {
      behindSettled = true;
    });
    producers[0]?.sends[0]?.reject(new Error("KafkaJSNumberOfRetriesExceeded"));
    await expect(failed).rejects.toMatchObject({ dependency: "kafka", retriable: true });
    await expect(failed).rejects.toBeInstanceOf(DependencyError);
    await settled();
    expect(behindSettled).toBe(false);
    expect(producers).toHaveLength(2);
    expect(producers[0]?.disconnects).toBeGreaterThanOrEqual(1);
    expect(producers[0]?.sends).toHaveLength(1);
    expect(producers[1]?.connects).toBe(1);
    expect(producers[1]?.sends.map((s) => s.ids)).toEqual([["m-2"]]);
    producers[1]?.sends[0]?.resolve();
    await behind;
    expect(log.stats).toEqual({ producers: 2, failedSends: 1 });
    await log.disconnect();
    expect(producers[1]?.disconnects).toBe(1);
  });

  test("a send that never answers: the append rejects at its deadline, and the next goes on a new producer", async () => {
    const { kafka, producers } = fakeKafka();
    const log = new KafkaEventLog(kafka, "t", { appendTimeoutMs: 100 });
    const started = Date.now();
    const stalled = log.append([numbered(1)]);
    await expect(stalled).rejects.toBeInstanceOf(DependencyTimeoutError);
    await expect(stalled).rejects.toMatchObject({ dependency: "kafka", timeoutMs: 100, retriable: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(Date.now() - started).toBeLessThan(1000);
    const next = log.append([numbered(2)]);
    await settled();
    expect(producers).toHaveLength(2);
    expect(producers[1]?.sends.map((s) => s.ids)).toEqual([["m-2"]]);
    // The abandoned send answers late: it settles nothing, and its producer is disconnected again.
    producers[0]?.sends[0]?.resolve();
    producers[1]?.sends[0]?.resolve();
    await next;
    await log.disconnect();
    expect(producers[0]?.disconnects).toBe(2);
  });
});

describe("isExpectedKafkaLog", () => {
  test("a retriable answer to one request and the idempotent producer's bounded retries are expected", () => {
    expect(
      isExpectedKafkaLog({
        message: "Response InitProducerId(key: 22, version: 1)",
        error: "The coordinator is loading and hence can't process requests for this group",
      }),
    ).toBe(true);
    expect(isExpectedKafkaLog({ message: "Limiting retries for the idempotent producer to 1" })).toBe(true);
  });

  test("anything else keeps its level", () => {
    expect(
      isExpectedKafkaLog({
        message: "Response SaslAuthenticate(key: 36, version: 1)",
        error: "SASL Authentication failed",
      }),
    ).toBe(false);
    expect(isExpectedKafkaLog({ message: "Connection timeout", error: "The coordinator is loading" })).toBe(
      false,
    );
    expect(isExpectedKafkaLog({ error: "The coordinator is loading" })).toBe(false);
  });
});
