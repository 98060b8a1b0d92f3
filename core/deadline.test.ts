import { isDeadlineExceeded, remainingMs, withDeadline } from "./deadline";
import { DependencyError, DependencyTimeoutError, isRetriable } from "./errors";

test("work that settles in time answers as it does", async () => {
  await expect(withDeadline("redis", 1000, Promise.resolve(7))).resolves.toBe(7);
  await expect(withDeadline("redis", 1000, async () => "done")).resolves.toBe("done");
  const failure = new Error("refused");
  await expect(withDeadline("redis", 1000, Promise.reject(failure))).rejects.toBe(failure);
  await expect(withDeadline("redis", Number.POSITIVE_INFINITY, Promise.resolve(1))).resolves.toBe(1);
});

test("work past its deadline rejects with a retriable DependencyTimeoutError naming the dependency", async () => {
  const started = Date.now();
  const late = withDeadline("dynamodb", 50, new Promise(() => undefined));
  await expect(late).rejects.toBeInstanceOf(DependencyTimeoutError);
  await expect(late).rejects.toBeInstanceOf(DependencyError);
  await expect(late).rejects.toMatchObject({
    name: "DependencyTimeoutError",
    dependency: "dynamodb",
    timeoutMs: 50,
    retriable: true,
    message: "dynamodb did not answer within 50 ms",
  });
  expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  const error = await late.catch((e: unknown) => e);
  expect(isRetriable(error)).toBe(true);
  expect(isDeadlineExceeded(error)).toBe(true);
  expect(isDeadlineExceeded(error, "dynamodb")).toBe(true);
  expect(isDeadlineExceeded(error, "kafka")).toBe(false);
  expect(isDeadlineExceeded(new DependencyError("dynamodb", "refused"))).toBe(false);
  await expect(withDeadline("kafka", 10, new Promise(() => undefined), "Kafka is slow")).rejects.toThrow(
    "Kafka is slow",
  );
});

test("the signal aborts at the deadline, with the deadline's error; a late rejection is ignored", async () => {
  let signal: AbortSignal | undefined;
  const late = withDeadline("dynamodb", 20, (s) => {
    signal = s;
    return new Promise((_, reject) => setTimeout(() => reject(new Error("too late")), 60));
  });
  const error = await late.catch((e: unknown) => e);
  expect(signal?.aborted).toBe(true);
  expect(signal?.reason).toBe(error);
  // The work's own rejection, after the deadline, must not surface as an unhandled rejection.
  await new Promise((resolve) => setTimeout(resolve, 80));
});

test("a deadline already past rejects without starting the work", async () => {
  const work = jest.fn(async () => 1);
  await expect(withDeadline("postgres", 0, work)).rejects.toBeInstanceOf(DependencyTimeoutError);
  expect(work).not.toHaveBeenCalled();
});

test("remainingMs is the budget left, never negative", () => {
  expect(remainingMs(1500, 1000)).toBe(500);
  expect(remainingMs(1000, 1500)).toBe(0);
});
