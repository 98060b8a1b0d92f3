/**
 * Named errors, each marked retriable or permanent. Status codes and error frames are chosen only at
 * the edge (functions/), from these.
 */

export abstract class ChatError extends Error {
  abstract readonly retriable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A dependency behind the gateway failed in a way a retry may fix (INTERNAL to the client). */
export class DependencyError extends ChatError {
  override name = "DependencyError";
  readonly retriable = true;
  constructor(
    readonly dependency: "dynamodb" | "redis" | "kafka" | "postgres" | "management-api" | "secrets",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A dependency did not answer within its deadline (core/deadline.ts); retriable, INTERNAL to the client. */
export class DependencyTimeoutError extends DependencyError {
  override name = "DependencyTimeoutError";
  constructor(
    dependency: DependencyError["dependency"],
    readonly timeoutMs: number,
    message = `${dependency} did not answer within ${timeoutMs} ms`,
    options?: { cause?: unknown },
  ) {
    super(dependency, message, options);
  }
}

/** A Kafka record that can never be decoded or stored; it goes to the dead-letter topic. */
export class PoisonRecordError extends ChatError {
  override name = "PoisonRecordError";
  readonly retriable = false;
}

/** A room has as many member users as it may. */
export class RoomFullError extends ChatError {
  override name = "RoomFullError";
  readonly retriable = false;
}

/** Whether an error is worth retrying: ours say so; anything unknown is treated as transient. */
export function isRetriable(error: unknown): boolean {
  return error instanceof ChatError ? error.retriable : true;
}
