/** The presence port (Redis, on the message bus's connection). */
import { RedisPresence } from "../adapters/presence";
import type { PresenceRegistry } from "../ports";
import { messageBus } from "./bus";
import { service } from "./services";

export const presenceRegistry = service<PresenceRegistry>(
  async () => new RedisPresence((await messageBus()).redis),
);
