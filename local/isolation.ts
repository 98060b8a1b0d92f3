/**
 * The names one stack owns on shared services: its own table, topics, consumer group and Redis key
 * prefix, so that several stacks (test files, benchmark targets, the soak) can run over one Redis,
 * one Kafka broker and one DynamoDB without seeing each other's data.
 */
import { DEFAULT_NAMES } from "../core/names";

export function isolatedNames(id: string) {
  return {
    TABLE_NAME: `chat-${id}`,
    MESSAGES_TOPIC: `${DEFAULT_NAMES.messagesTopic}.${id}`,
    DEAD_LETTER_TOPIC: `${DEFAULT_NAMES.messagesTopic}.${id}.dlq`,
    PERSISTER_GROUP_ID: `persister-${id}`,
    REDIS_KEY_PREFIX: `${id}:`,
  };
}
