/** The event log port (Kafka, through kafkajs): only `sendMessage` appends to it. */
import { createKafka, KafkaEventLog } from "../adapters/kafka";
import type { EventLog } from "../ports";
import { service, serviceOverrides } from "./services";

const kafkaLog = service(
  async () => new KafkaEventLog(createKafka()),
  (log) => log.disconnect(),
);

export const eventLog = service<EventLog>(async () => {
  const real = await kafkaLog();
  return serviceOverrides().log?.(real) ?? real;
});
