/** The message bus port (Redis, through ioredis). */
import { Redis } from "ioredis";
import { RedisMessageBus, redisOptions } from "../adapters/redis";
import { config } from "../config";
import { redisPassword } from "../secrets";
import { service } from "./services";

export const messageBus = service(
  async () => new RedisMessageBus(new Redis(config.redis().url, redisOptions(await redisPassword()))),
  (bus) => bus.redis.quit(),
);
