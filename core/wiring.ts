/**
 * The composition module of the Lambda handlers: the real adapters, each built on first use and
 * then reused by every invocation of the process (a warm Lambda, or the local gateway). Nothing is
 * opened, and no setting is read, before a handler needs it: `$connect` touches only DynamoDB.
 * Tests may wrap a port at its edge through `overrideServices`.
 */
import { Redis } from "ioredis";
import { createDynamoClient, DynamoConnectionStore } from "./adapters/dynamo";
import { createKafka, KafkaEventLog } from "./adapters/kafka";
import { createMessageHistory } from "./adapters/message-history";
import { RedisMessageBus, redisOptions } from "./adapters/redis";
import { ChatService } from "./chat";
import { config } from "./config";
import type { EventLog } from "./ports";
import { databaseUrl, redisPassword } from "./secrets";

export interface Services {
  chat: ChatService;
  close(): Promise<void>;
}

let overrides: { log?: (real: EventLog) => EventLog } = {};

/** A value made once, on first use; a failed attempt is forgotten so the next call tries again. */
function lazy<T>(make: () => Promise<T>): { get: () => Promise<T>; made: () => Promise<T> | undefined } {
  let value: Promise<T> | undefined;
  return {
    get: () => {
      value ??= make().catch((error) => {
        value = undefined;
        throw error;
      });
      return value;
    },
    made: () => value,
  };
}

function build(): Services {
  const store = lazy(async () => new DynamoConnectionStore(createDynamoClient()));
  const redis = lazy(async () => new Redis(config.redis().url, redisOptions(await redisPassword())));
  const bus = lazy(async () => new RedisMessageBus(await redis.get()));
  const kafkaLog = lazy(async () => new KafkaEventLog(createKafka()));
  const log = lazy(async () => (overrides.log ? overrides.log(await kafkaLog.get()) : kafkaLog.get()));
  const history = lazy(async () => createMessageHistory(await databaseUrl()));
  const chat = new ChatService({
    store: store.get,
    bus: bus.get,
    log: log.get,
    history: history.get,
    rateLimit: config.rateLimit(),
    fanoutShards: config.fanout().shards,
    connectionTtlSeconds: config.table().connectionTtlSeconds,
  });
  return {
    chat,
    async close() {
      await Promise.allSettled([
        kafkaLog.made()?.then((l) => l.disconnect()),
        redis.made()?.then((r) => r.quit()),
        history.made()?.then((h) => h.disconnect()),
      ]);
    },
  };
}

let services: Services | undefined;

/** The process's services, built on first use (opening nothing until a port is used). */
export async function getServices(): Promise<Services> {
  services ??= build();
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
  await current?.close();
}
