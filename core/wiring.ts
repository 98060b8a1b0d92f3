/**
 * The composition module of the Lambda handlers: the real adapters, built once per process (a warm
 * Lambda, or the local gateway) and reused by every invocation. Tests and the local stack may replace
 * parts through `overrideServices`.
 */
import { Redis } from "ioredis";
import { createDynamoClient, DynamoConnectionStore } from "./adapters/dynamo";
import { createKafka, KafkaEventLog } from "./adapters/kafka";
import { createMessageRepository } from "./adapters/message-repository";
import { RedisMessageBus, redisOptions } from "./adapters/redis";
import { ChatService } from "./chat";
import { config } from "./config";
import type { EventLog, MessageRepository } from "./ports";
import { databaseUrl, redisPassword } from "./secrets";

export interface Services {
  chat: ChatService;
  close(): Promise<void>;
}

let services: Promise<Services> | undefined;
let overrides: { log?: (real: EventLog) => EventLog } = {};

async function build(): Promise<Services> {
  const redis = new Redis(config.redis().url, redisOptions(await redisPassword()));
  const bus = new RedisMessageBus(redis);
  const kafkaLog = new KafkaEventLog(createKafka());
  const log = overrides.log ? overrides.log(kafkaLog) : kafkaLog;
  const store = new DynamoConnectionStore(createDynamoClient());
  let repository: Promise<MessageRepository> | undefined;
  const openRepository = () => {
    repository ??= databaseUrl()
      .then((url) => createMessageRepository(url))
      .catch((error) => {
        repository = undefined;
        throw error;
      });
    return repository;
  };
  const chat = new ChatService({
    store,
    bus,
    log,
    repository: openRepository,
    rateLimit: config.rateLimit(),
    fanoutShards: config.fanout().shards,
    connectionTtlSeconds: config.table().connectionTtlSeconds,
  });
  return {
    chat,
    async close() {
      await Promise.allSettled([
        kafkaLog.disconnect(),
        redis.quit(),
        repository?.then((r) => r.disconnect()),
      ]);
    },
  };
}

/** The process's services, built on first use. A failed build is retried by the next call. */
export function getServices(): Promise<Services> {
  services ??= build().catch((error) => {
    services = undefined;
    throw error;
  });
  return services;
}

/** Replaces parts of the wiring (tests inject faults at a port's edge). Call before first use. */
export function overrideServices(next: typeof overrides): void {
  overrides = next;
}

/** Closes the process's services (the local stack's shutdown; a Lambda never calls it). */
export async function closeServices(): Promise<void> {
  const current = services;
  services = undefined;
  if (current) await (await current).close();
}
