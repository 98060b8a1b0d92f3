/**
 * Deadlines for remote calls. A handler's Lambda has 10 s; a dependency that stalls must not hold it
 * that long, or the client gets AWS's generic error instead of INTERNAL with its clientMsgId. Each
 * remote call therefore runs under a deadline well inside it, and a call past its deadline rejects
 * with a {@link DependencyTimeoutError} (a retriable DependencyError) that names the dependency.
 */
import { type DependencyError, DependencyTimeoutError } from "./errors";

export { DependencyTimeoutError } from "./errors";

/** The dependencies a deadline can name (those of {@link DependencyError}). */
export type Dependency = DependencyError["dependency"];

/** The work under a deadline: a promise already started, or a function given a signal that aborts at the deadline. */
export type DeadlineWork<T> = PromiseLike<T> | ((signal: AbortSignal) => PromiseLike<T>);

/**
 * Runs `work` with a deadline of `timeoutMs` milliseconds: resolves or rejects as it does when it
 * settles in time, and otherwise rejects at the deadline with a {@link DependencyTimeoutError} naming
 * `dependency` (the signal given to a function aborts with the same error, so clients that take an
 * AbortSignal, such as the AWS SDK's, stop their request). Work that settles after the deadline is
 * ignored, its rejection included. A deadline of 0 or less rejects at once without starting a
 * function; a non-finite one sets no timer.
 *
 * @param message the error's sentence, default "<dependency> did not answer within <timeoutMs> ms".
 */
export function withDeadline<T>(
  dependency: Dependency,
  timeoutMs: number,
  work: DeadlineWork<T>,
  message?: string,
): Promise<T> {
  const expired = () => new DependencyTimeoutError(dependency, timeoutMs, message);
  const controller = new AbortController();
  if (timeoutMs <= 0) {
    controller.abort();
    // A promise already started may reject later; nobody is listening to it any more.
    if (typeof work !== "function") Promise.resolve(work).then(undefined, () => undefined);
    return Promise.reject(expired());
  }
  let running: Promise<T>;
  try {
    running = Promise.resolve(typeof work === "function" ? work(controller.signal) : work);
  } catch (error) {
    return Promise.reject(error);
  }
  if (!Number.isFinite(timeoutMs)) return running;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = expired();
      controller.abort(error);
      reject(error);
    }, timeoutMs);
    running.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Milliseconds left until `deadlineAt` (an epoch time in ms), never below 0: the budget of a call made now. */
export function remainingMs(deadlineAt: number, now: number = Date.now()): number {
  return Math.max(0, deadlineAt - now);
}

/** Whether an error is a deadline's (of any dependency, or of the one named). */
export function isDeadlineExceeded(error: unknown, dependency?: Dependency): error is DependencyTimeoutError {
  return (
    error instanceof DependencyTimeoutError && (dependency === undefined || error.dependency === dependency)
  );
}
