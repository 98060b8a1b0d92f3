/**
 * The fan-out's two background duties, each a timer:
 * - the sweeper (one worker at a time, by a lease in Redis): messages Redis accepted whose Kafka
 *   append was never confirmed (the sender's handler died between the two) are appended, so every
 *   message that was delivered is also stored;
 * - the releaser: a room whose stream waits for a seq that never came (its sender died between the
 *   ledger and Redis) is released after `releaseHeldMs`; the gap is a client's getHistory away.
 */
import type { Redis } from "ioredis";
import type { RedisMessageBus } from "../core/adapters/redis";
import type { Logger } from "../core/logger";
import type { EventLog } from "../core/ports";
import { holdsSoleLease } from "./fanout-leases";

export interface SweeperDeps {
  redis: Redis;
  bus: RedisMessageBus;
  /** Where the sweeper appends; without it there is no sweeper. */
  log?: EventLog;
  logger: Logger;
  workerId: string;
  sweepAfterMs: number;
  releaseHeldMs: number;
  /** Told how many messages each sweep appended. */
  onSwept(count: number): void;
}

async function sweep(deps: SweeperDeps, log: EventLog): Promise<void> {
  const { redis, bus, workerId, sweepAfterMs } = deps;
  if (!(await holdsSoleLease(redis, "fanout:sweeper", workerId, sweepAfterMs))) return;
  const pending = await bus.unloggedSince(sweepAfterMs);
  if (pending.length === 0) return;
  await log.append(pending);
  for (const m of pending) await bus.markLogged(m.senderId, m.clientMsgId);
  deps.onSwept(pending.length);
  deps.logger.warn(
    { count: pending.length },
    "appended accepted messages whose Kafka append was never confirmed",
  );
}

/** Starts both timers; answers a function that stops them. */
export function startSweeper(deps: SweeperDeps): () => void {
  const { bus, logger, releaseHeldMs, sweepAfterMs } = deps;
  const releaser = setInterval(
    () => {
      void bus
        .releaseHeld(releaseHeldMs)
        .then((n) => {
          if (n > 0) logger.warn({ rooms: n }, "released rooms that waited for a seq that never came");
        })
        .catch((err) => logger.error({ err }, "releasing held rooms failed"));
    },
    Math.max(200, Math.floor(releaseHeldMs / 2)),
  );
  const log = deps.log;
  const sweeper = log
    ? setInterval(
        () => {
          void sweep(deps, log).catch((err) => logger.error({ err }, "sweep failed"));
        },
        Math.max(500, Math.floor(sweepAfterMs / 2)),
      )
    : undefined;
  return () => {
    clearInterval(releaser);
    clearInterval(sweeper);
  };
}
