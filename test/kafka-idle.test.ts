/**
 * A Kafka client at rest stays at rest: after a producer's appends and while a consumer waits on an
 * empty topic, the request queues of their connections check for waiting requests only when there
 * are some (core/adapters/kafka-request-queue.ts). kafkajs 2.2.4 alone re-arms a 1 ms timer on
 * every connection after its first answer, about a thousand checks a second each. Real broker
 * (KAFKA_BROKERS from the global set-up), clients built as the handlers and the persister build them.
 */
import { createKafka } from "../core/adapters/kafka";
import { RequestQueue } from "../core/adapters/kafka-request-queue";
import { loadConfig } from "../core/config";
import { sleep } from "../core/retry";

jest.setTimeout(60_000);

const brokers = process.env.KAFKA_BROKERS;
if (!brokers) throw new Error("KAFKA_BROKERS is not set: the integration global set-up must start Kafka");

const settings = loadConfig({ KAFKA_BROKERS: brokers, KAFKA_CLIENT_ID: "idle-test" });
const topic = `idle-${process.pid}-${Date.now().toString(36)}`;

/** How many times the request queues checked for waiting requests during `ms`. */
async function checksDuring(ms: number): Promise<number> {
  const original = RequestQueue.prototype.checkPendingRequests;
  let checks = 0;
  RequestQueue.prototype.checkPendingRequests = function (this: typeof RequestQueue.prototype) {
    checks++;
    original.call(this);
  };
  try {
    await sleep(ms);
  } finally {
    RequestQueue.prototype.checkPendingRequests = original;
  }
  return checks;
}

test("a producer and a consumer at rest do not keep their process awake", async () => {
  const kafka = createKafka(settings.kafka(), "us-east-1");
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
  });
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  // Concurrent appends: the in-flight limit queues some of them, which is what starts a check.
  await Promise.all(
    Array.from({ length: 5 }, (_, i) => producer.send({ topic, acks: -1, messages: [{ value: `m${i}` }] })),
  );
  const consumer = kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let received = 0;
  await consumer.run({
    eachMessage: async () => {
      received++;
    },
  });
  try {
    const until = Date.now() + 20_000;
    while (received < 5 && Date.now() < until) await sleep(50);
    expect(received).toBe(5);
    // At rest for a second: the consumer's long poll answers about once a second, the producer's
    // and the coordinator's connections not at all. kafkajs alone: about a thousand checks per
    // connection.
    const checks = await checksDuring(1000);
    expect(checks).toBeLessThan(50);
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
});
