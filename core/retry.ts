/**
 * Waiting between attempts, for every process that retries (the fan-out worker, the persister): one
 * capped exponential backoff with full jitter, so that replicas retrying the same outage do not
 * retry in step, and one sleep.
 */

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for `work`, but no longer than `ms`: answers its value, or undefined when the time ran out
 * first (a rejection before then is thrown). Its timer is cleared either way, so a process waiting
 * on nothing else can exit at once.
 */
export async function waitAtMost<T>(work: PromiseLike<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A random delay from 0 up to `baseMs × 2^attempt`, capped at `capMs` (attempt counts from 0). */
export function backoffMs(attempt: number, baseMs = 50, capMs = 2000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
}
