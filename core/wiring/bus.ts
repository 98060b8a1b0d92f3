/**
 * The ports over Redis (through ioredis): the message bus and presence, on one connection. Both are
 * made together so that each has defined its scripts on the client before either sends a command
 * (a script defined while an automatic pipeline is pending is missing from that pipeline).
 */
import { Redis } from "ioredis";
import { RedisPresence } from "../adapters/presence";
import { RedisMessageBus, redisOptions } from "../adapters/redis";
import { config } from "../config";
import { redisPassword } from "../secrets";
import { service } from "./services";

const redisPorts = service(
  async () => {
    const redis = new Redis(config.redis().url, redisOptions(await redisPassword()));
    return { bus: new RedisMessageBus(redis), presence: new RedisPresence(redis) };
  },
  (ports) => ports.bus.redis.quit(),
);

export const messageBus = async (): Promise<RedisMessageBus> => (await redisPorts()).bus;

export const presenceRegistry = async (): Promise<RedisPresence> => (await redisPorts()).presence;
