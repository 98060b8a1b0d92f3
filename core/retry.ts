/**
 * Waiting between attempts, for every process that retries (the fan-out worker, the persister): one
 * capped exponential backoff with full jitter, so that replicas retrying the same outage do not
 * retry in step, and one sleep.
 */

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A random delay from 0 up to `baseMs × 2^attempt`, capped at `capMs` (attempt counts from 0). */
export function backoffMs(attempt: number, baseMs = 50, capMs = 2000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
}
