/**
 * kafkajs's request queue with this project's fix: nothing is scheduled while nothing waits, and
 * what waits (behind the in-flight limit, or a broker's throttle) is still sent, in order.
 */
import { RequestQueue } from "./kafka-request-queue";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function queue() {
  const sent: number[] = [];
  const q = new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: quiet,
  });
  const push = (correlationId: number) =>
    new Promise<void>((resolve, reject) =>
      q.push({
        entry: { correlationId, apiKey: 0, apiName: "Produce", apiVersion: 7, resolve, reject },
        expectResponse: true,
        sendRequest: () => sent.push(correlationId),
      }),
    );
  const answer = (correlationId: number) =>
    q.fulfillRequest({ correlationId, payload: Buffer.alloc(0), size: 0 });
  return { q, sent, push, answer };
}

test("an answered request leaves no check scheduled when nothing waits", async () => {
  const { q, sent, push, answer } = queue();
  const done = push(1);
  expect(sent).toEqual([1]);
  answer(1);
  await done;
  // kafkajs 2.2.4 re-armed a 1 ms timer here, and again from it, for as long as the connection
  // lived.
  expect(q.throttleCheckTimeoutId).toBeNull();
  await new Promise((r) => setTimeout(r, 30));
  expect(q.throttleCheckTimeoutId).toBeNull();
  q.destroy();
});

test("a request held by the in-flight limit is sent when the one before it is answered", async () => {
  const { q, sent, push, answer } = queue();
  const first = push(1);
  const second = push(2);
  expect(sent).toEqual([1]);
  answer(1);
  await first;
  expect(sent).toEqual([1, 2]);
  answer(2);
  await second;
  // The 10 ms check scheduled while 2 waited runs once, finds nothing, and schedules nothing more.
  await new Promise((r) => setTimeout(r, 30));
  expect(q.throttleCheckTimeoutId).toBeNull();
  q.destroy();
});

test("a request made while the broker throttles is sent when the throttle ends, not before", async () => {
  const { q, sent, push, answer } = queue();
  q.maybeThrottle(80);
  const t0 = Date.now();
  const done = push(1);
  expect(sent).toEqual([]);
  await new Promise((r) => setTimeout(r, 40));
  expect(sent).toEqual([]);
  while (sent.length === 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
  expect(sent).toEqual([1]);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
  answer(1);
  await done;
  expect(q.throttleCheckTimeoutId).toBeNull();
  q.destroy();
});
