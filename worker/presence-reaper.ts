/**
 * Presence upkeep, run by one fan-out worker at a time (a Redis lease): announces users whose grace
 * ended and checks connections idle past API Gateway's idle timeout, whose `$disconnect` may have
 * been lost (core/presence.ts, reapPresence).
 */
import type { Redis } from "ioredis";
import type { Logger } from "../core/logger";
import { type ReapDeps, reapPresence } from "../core/presence";
import { holdsSoleLease } from "./fanout-leases";

const LEASE = "pres:reaper";

export function startPresenceReaper(
  deps: ReapDeps & { redis: Redis; logger: Logger; workerId: string },
  everyMs = 1000,
): { stop: () => Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const leaseMs = Math.max(5000, everyMs * 5);
  const round = async () => {
    if (!(await holdsSoleLease(deps.redis, LEASE, deps.workerId, leaseMs))) return;
    const done = await reapPresence(deps);
    if (done.offline + done.gone > 0) deps.logger.info(done, "presence upkeep");
  };
  const timer = setInterval(() => {
    running = running.then(round).catch((err) => deps.logger.warn({ err }, "presence upkeep failed"));
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
