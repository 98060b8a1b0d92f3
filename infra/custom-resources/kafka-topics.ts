/**
 * Deploy-time custom resource: creates the messages and dead-letter topics on MSK (IAM auth) with
 * the partitions and replication factor the stack sets in this function's environment. Existing
 * topics are left as they are; deleting the stack deletes the cluster, and the topics with it.
 */
import { createKafka, ensureTopics } from "../../core/adapters/kafka";
import { config } from "../../core/config";
import { createLogger } from "../../core/logger";
import type { CustomResourceEvent, CustomResourceResult } from "./event";

const logger = createLogger("deploy-topics");

/** Ensures both topics exist on Create and Update; nothing on Delete. */
export async function handler(event: CustomResourceEvent): Promise<CustomResourceResult> {
  const physicalId = event.PhysicalResourceId ?? "chat-kafka-topics";
  if (event.RequestType === "Delete") return { PhysicalResourceId: physicalId };
  const kafka = config.kafka();
  await ensureTopics(createKafka(kafka), kafka);
  logger.info({ topics: [kafka.messagesTopic, kafka.deadLetterTopic] }, "topics ready");
  return { PhysicalResourceId: physicalId };
}
