/**
 * The Kafka broker's floor: its CPU per record when every produce request carries one record, sent
 * by a bare idempotent kafkajs producer (acks from all in-sync replicas, as the handlers append) at
 * the fan-out's first rate, for as long as a step. A Lambda invocation appends its one message in a
 * request of its own, so this is what an accepted message costs the broker at best on this
 * machine, whatever the handlers do; the broker's idle work over the window is in it, as it is in
 * the fan-out's figure.
 */
import { randomBytes } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { measureCpu } from "../lib/cpu";
import { progress } from "../lib/progress";
import { round } from "../lib/stats";

export interface KafkaFloor {
  recordsPerSec: number;
  records: number;
  /** The broker's CPU over the window, per record sent. */
  brokerCpuMsPerRecord: number;
}

export async function runKafkaFloor(
  brokers: string,
  brokerPid: number,
  perSecond: number,
  seconds: number,
): Promise<KafkaFloor | undefined> {
  const kafka = new Kafka({
    clientId: "bench-kafka-floor",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const topic = `bench-floor-${randomBytes(3).toString("hex")}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const value = JSON.stringify({ text: "x".repeat(120), sentAt: new Date().toISOString() });
  const send = (n: number) =>
    producer.send({ topic, acks: -1, messages: [{ key: `room-${n % 50}`, value }] });
  try {
    for (let i = 0; i < 20; i++) await send(i);
    const stop = measureCpu(() => [{ name: "kafka", pids: [brokerPid] }]);
    const started = Date.now();
    let records = 0;
    while (Date.now() - started < seconds * 1000) {
      await send(records);
      records++;
      const wait = started + (records * 1000) / perSecond - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const elapsed = (Date.now() - started) / 1000;
    const cpu = stop()?.kafka;
    if (cpu === undefined) return undefined;
    const floor = {
      recordsPerSec: round(records / elapsed, 1),
      records,
      brokerCpuMsPerRecord: round((cpu * 1000) / records, 3),
    };
    progress(
      `kafka floor: ${records} records one a request, ${floor.brokerCpuMsPerRecord} ms of broker CPU each`,
    );
    return floor;
  } finally {
    await producer.disconnect();
  }
}
