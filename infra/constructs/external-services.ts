/**
 * Redis, Kafka and PostgreSQL that the stack does not own: on the LocalStack profile, the services of
 * localstack/docker-compose.yml, reached from LocalStack's Lambda containers by their compose host
 * names. They implement the same ports as ElastiCache, MSK and RDS, so the app wires them the same way.
 */
import type { Consumer } from "./consumer";
import {
  type DatabaseEndpoint,
  type KafkaEndpoint,
  type RedisEndpoint,
  setTopicEnvironment,
  type TopicSettings,
} from "./endpoints";

/** A Redis reached by URL, without AUTH (the compose network is the boundary). */
export class ExternalRedis implements RedisEndpoint {
  constructor(private readonly url: string) {}

  connect(consumer: Consumer): void {
    consumer.addEnvironment("REDIS_URL", this.url);
  }
}

/** A PostgreSQL reached by `DATABASE_URL`. */
export class ExternalDatabase implements DatabaseEndpoint {
  constructor(private readonly url: string) {}

  connect(consumer: Consumer): void {
    consumer.addEnvironment("DATABASE_URL", this.url);
  }
}

/** A Kafka reached over PLAINTEXT; the topics are created by the deploy as on MSK. */
export class ExternalKafka implements KafkaEndpoint {
  constructor(
    private readonly brokers: string,
    readonly topics: TopicSettings,
  ) {}

  private base(consumer: Consumer): void {
    consumer.addEnvironment("KAFKA_BROKERS", this.brokers);
    setTopicEnvironment(consumer, this.topics);
  }

  connectProducer(consumer: Consumer): void {
    this.base(consumer);
  }

  connectConsumer(consumer: Consumer, groupId: string): void {
    this.base(consumer);
    consumer.addEnvironment("PERSISTER_GROUP_ID", groupId);
  }

  connectAdmin(consumer: Consumer): void {
    this.base(consumer);
  }
}
