/**
 * A fix of kafkajs 2.2.4's request queue (one per broker connection), which otherwise keeps every
 * process with a Kafka client awake a thousand times a second.
 *
 * After each answer the queue checks for requests waiting to be sent, and that check always ends
 * by scheduling the next one: `setTimeout(check, throttledUntil - now)`. Unthrottled, that delay is
 * negative, Node runs it after 1 ms, and the check schedules itself again, for as long as the
 * connection is open, with nothing waiting (kafkajs issue 1556; the fix proposed there was never
 * released, and 2.2.4 is the last kafkajs). An idle persister spent about 50 ms of CPU a second
 * on it.
 *
 * The replacement schedules a check only for requests that wait: at the end of a broker's
 * throttle, or every 10 ms while the in-flight limit holds them (an answer also checks, as before).
 * With none waiting it schedules nothing: a request that comes later is sent at once or schedules
 * its own check when it is queued.
 */

/** The part of kafkajs's internal RequestQueue this fix touches. */
export interface RequestQueueState {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's interval between checks while the in-flight limit holds requests back. */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

export function scheduleCheckPendingRequests(this: RequestQueueState): void {
  if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
  const throttledFor = this.throttledUntil - Date.now();
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    },
    throttledFor > 0 ? throttledFor : CHECK_PENDING_REQUESTS_INTERVAL_MS,
  );
}

/** kafkajs's RequestQueue class (internal to kafkajs, so untyped). */
export const RequestQueue = require("kafkajs/src/network/requestQueue") as {
  prototype: RequestQueueState;
  new (
    options: Record<string, unknown>,
  ): RequestQueueState & {
    push(request: unknown): void;
    fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
    maybeThrottle(ms: number | null): void;
    destroy(): void;
    inflight: Map<number, unknown>;
  };
};

RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
