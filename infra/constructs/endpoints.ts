/**
 * The ports the stack wires consumers to. Each has an AWS implementation (ElastiCache, MSK, RDS) and
 * an external one (the LocalStack profile's compose services), so the rest of the app does not care
 * which profile it is synthesized for.
 */
import type { Consumer } from "./consumer";

/** Redis: sets REDIS_URL (and REDIS_AUTH_SECRET_ARN on AWS). */
export interface RedisEndpoint {
  connect(consumer: Consumer): void;
}

/** Kafka: sets KAFKA_BROKERS, the topic names and, on MSK, KAFKA_AUTH=aws-iam and KAFKA_SSL=true. */
export interface KafkaEndpoint {
  /** Write access to the messages topic. */
  connectProducer(consumer: Consumer): void;
  /** Read access to the messages topic in `groupId`, write access to the dead-letter topic. */
  connectConsumer(consumer: Consumer, groupId: string): void;
  /** Create and describe both topics (the deploy-time topic creator). */
  connectAdmin(consumer: Consumer): void;
}

/** PostgreSQL: sets DATABASE_SECRET_ARN on AWS, DATABASE_URL elsewhere. */
export interface DatabaseEndpoint {
  connect(consumer: Consumer): void;
}

/** Topic settings shared by both Kafka implementations. */
export interface TopicSettings {
  messagesTopic: string;
  deadLetterTopic: string;
  partitions: number;
  replicationFactor: number;
}

/** Sets the topic variables every Kafka consumer of either implementation reads. */
export function setTopicEnvironment(consumer: Consumer, topics: TopicSettings): void {
  consumer.addEnvironment("MESSAGES_TOPIC", topics.messagesTopic);
  consumer.addEnvironment("DEAD_LETTER_TOPIC", topics.deadLetterTopic);
  consumer.addEnvironment("KAFKA_PARTITIONS", String(topics.partitions));
  consumer.addEnvironment("KAFKA_REPLICATION_FACTOR", String(topics.replicationFactor));
}
