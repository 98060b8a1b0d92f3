/**
 * The limits the emulator enforces, each with AWS's default and where AWS documents it, and the
 * settings (environment variables) that change them. The local stack reads them once, here; tests
 * pass them to `startGateway` directly.
 *
 * Sources (read 2026-12-02):
 * - Account throttle: https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
 *   ("10,000 requests per second ... token bucket ... maximum bucket capacity of 5,000 requests",
 *   across HTTP, REST, WebSocket APIs and WebSocket callback APIs, i.e. `@connections`).
 * - New connections, frame, message, idle, lifetime, integration timeout:
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html
 * - Stage and route throttling (token bucket, 429):
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html
 * - LimitExceededException "... or the WebSocket client side buffer is full":
 *   https://docs.aws.amazon.com/AWSJavaSDK/latest/javadoc/com/amazonaws/services/apigatewaymanagementapi/model/package-summary.html
 * - Lambda's default concurrency per account and Region (1,000):
 *   https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html
 * - `$disconnect` is best effort:
 *   https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html
 */

/** A token bucket's steady rate (per second) and capacity. */
export interface RateLimit {
  ratePerSecond: number;
  burst: number;
}

/** Everything the emulator limits; each field's default is AWS's (or says why not). */
export interface GatewayLimits {
  /** Requests per second of the account, shared by client frames and `@connections` calls (10,000, burst 5,000). */
  account: RateLimit;
  /** New connections per second (500); an upgrade over it is refused with 429. */
  newConnections: RateLimit;
  /** The stage's default route throttle; AWS's default is the account's. */
  route: RateLimit;
  /**
   * Frames' invocations in flight at once, over every route (Lambda's default account concurrency,
   * 1,000); one past it is throttled, as Lambda throttles it.
   */
  concurrency: number;
  /**
   * How many of those run at a time in this process, the others waiting their turn, connection by
   * connection: one process has one CPU where AWS gives each invocation its own. Ours: 128.
   */
  localSlots: number;
  /**
   * Frames of one connection waiting for a local slot; one past it is throttled. AWS has no such
   * queue (each frame runs at once); 500 is ours, to bound the emulator's memory.
   */
  connectionQueue: number;
  /**
   * Bytes waiting to be written to one client before PostToConnection answers 429
   * LimitExceededException ("the WebSocket client side buffer is full"). AWS does not publish its
   * bound; 1 MiB is ours.
   */
  clientBufferBytes: number;
  /** The share (0-1) of `$disconnect` invocations dropped, as AWS may (best effort); default 0. */
  disconnectDropRate: number;
  /** How late `$disconnect` runs after the close, in ms; default 0. */
  disconnectDelayMs: number;
  /** The memory each handler is billed at, in MB (the CDK app's default: 512). */
  lambdaMemoryMb: number;
  /**
   * How long each `@connections` call takes before it is served and answered, in ms: the round trip
   * from a worker to API Gateway on AWS (about 15 ms within a Region). Default 0.
   */
  managementLatencyMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  account: { ratePerSecond: 10_000, burst: 5_000 },
  newConnections: { ratePerSecond: 500, burst: 500 },
  route: { ratePerSecond: 10_000, burst: 5_000 },
  concurrency: 1_000,
  localSlots: 128,
  connectionQueue: 500,
  clientBufferBytes: 1024 * 1024,
  disconnectDropRate: 0,
  disconnectDelayMs: 0,
  lambdaMemoryMb: 512,
  managementLatencyMs: 0,
};

/** A setting was set to a value the emulator cannot use. */
export class GatewaySettingError extends Error {
  override name = "GatewaySettingError";
}

/** The settings, by environment variable, for the README and error messages. */
export const GATEWAY_SETTINGS = {
  GATEWAY_ACCOUNT_RPS: "account requests per second (client frames and @connections calls)",
  GATEWAY_ACCOUNT_BURST: "the account's burst",
  GATEWAY_NEW_CONNECTIONS_PER_SECOND: "new connections per second",
  GATEWAY_ROUTE_RPS: "the stage's route throttle, per second",
  GATEWAY_ROUTE_BURST: "the stage's route burst",
  GATEWAY_LAMBDA_CONCURRENCY: "frames' handler invocations in flight at once",
  GATEWAY_LOCAL_SLOTS: "of those, how many run at a time in this process",
  GATEWAY_CONNECTION_QUEUE: "frames of one connection waiting for a local slot",
  GATEWAY_CLIENT_BUFFER_BYTES: "bytes buffered for one client before PostToConnection answers 429",
  GATEWAY_DISCONNECT_DROP: "share of $disconnect invocations dropped (0-1)",
  GATEWAY_DISCONNECT_DELAY_MS: "delay of $disconnect after the close",
  GATEWAY_LAMBDA_MEMORY_MB: "memory each handler is billed at",
  MANAGEMENT_LATENCY_MS: "how long each @connections call takes (a simulated round trip to AWS)",
  GATEWAY_HANDLER_THREADS: "threads the handlers run in, beside the gateway's event loop (0: in it)",
  GATEWAY_IDLE_TIMEOUT_MS: "how long a connection may go without a frame from its client",
  GATEWAY_MAX_LIFETIME_MS: "how long a connection may last",
} as const;

function number<F extends number | undefined>(
  env: Record<string, string | undefined>,
  name: keyof typeof GATEWAY_SETTINGS,
  fallback: F,
  check: (n: number) => boolean,
  expected: string,
): number | F {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) {
    throw new GatewaySettingError(`${name} must be ${expected} (it is "${raw}"): ${GATEWAY_SETTINGS[name]}`);
  }
  return n;
}

const positive = (n: number) => n > 0;
const whole = (n: number) => Number.isInteger(n) && n >= 1;

/** The limits the environment sets, AWS's defaults for the rest; throws on a bad value. */
export function limitsFromEnv(env: Record<string, string | undefined>): GatewayLimits {
  const d = DEFAULT_LIMITS;
  const accountRate = number(
    env,
    "GATEWAY_ACCOUNT_RPS",
    d.account.ratePerSecond,
    positive,
    "a positive number",
  );
  const accountBurst = number(env, "GATEWAY_ACCOUNT_BURST", d.account.burst, whole, "a whole number ≥ 1");
  const newConnections = number(
    env,
    "GATEWAY_NEW_CONNECTIONS_PER_SECOND",
    d.newConnections.ratePerSecond,
    positive,
    "a positive number",
  );
  return {
    account: { ratePerSecond: accountRate, burst: accountBurst },
    newConnections: { ratePerSecond: newConnections, burst: Math.max(1, Math.ceil(newConnections)) },
    route: {
      // Unset, the stage's throttle is the account's, as on AWS.
      ratePerSecond: number(env, "GATEWAY_ROUTE_RPS", accountRate, positive, "a positive number"),
      burst: number(env, "GATEWAY_ROUTE_BURST", accountBurst, whole, "a whole number ≥ 1"),
    },
    concurrency: number(env, "GATEWAY_LAMBDA_CONCURRENCY", d.concurrency, whole, "a whole number ≥ 1"),
    localSlots: number(env, "GATEWAY_LOCAL_SLOTS", d.localSlots, whole, "a whole number ≥ 1"),
    connectionQueue: number(env, "GATEWAY_CONNECTION_QUEUE", d.connectionQueue, whole, "a whole number ≥ 1"),
    clientBufferBytes: number(
      env,
      "GATEWAY_CLIENT_BUFFER_BYTES",
      d.clientBufferBytes,
      whole,
      "a whole number of bytes ≥ 1",
    ),
    disconnectDropRate: number(
      env,
      "GATEWAY_DISCONNECT_DROP",
      d.disconnectDropRate,
      (n) => n >= 0 && n <= 1,
      "a share from 0 to 1",
    ),
    disconnectDelayMs: number(
      env,
      "GATEWAY_DISCONNECT_DELAY_MS",
      d.disconnectDelayMs,
      (n) => n >= 0,
      "a number of ms ≥ 0",
    ),
    lambdaMemoryMb: number(env, "GATEWAY_LAMBDA_MEMORY_MB", d.lambdaMemoryMb, whole, "a whole number of MB"),
    managementLatencyMs: number(
      env,
      "MANAGEMENT_LATENCY_MS",
      d.managementLatencyMs,
      (n) => n >= 0,
      "a number of ms ≥ 0",
    ),
  };
}

/**
 * How long a connection may stay idle and may last, in ms, where the environment shortens them
 * (GATEWAY_IDLE_TIMEOUT_MS, GATEWAY_MAX_LIFETIME_MS); undefined leaves AWS's 10 minutes and 2 hours
 * to the gateway. Throws on a bad value.
 */
export function connectionTimesFromEnv(env: Record<string, string | undefined>): {
  idleTimeoutMs: number | undefined;
  maxLifetimeMs: number | undefined;
} {
  const ms = "a whole number of ms ≥ 1";
  return {
    idleTimeoutMs: number(env, "GATEWAY_IDLE_TIMEOUT_MS", undefined, whole, ms),
    maxLifetimeMs: number(env, "GATEWAY_MAX_LIFETIME_MS", undefined, whole, ms),
  };
}

/**
 * How many threads the local stack runs the handlers in (GATEWAY_HANDLER_THREADS, default 1): on AWS
 * they never share the gateway's CPU. 0 runs them in the gateway's own event loop, where a test can
 * reach their wiring. Throws on a bad value.
 */
export function handlerThreadsFromEnv(env: Record<string, string | undefined>): number {
  return number(
    env,
    "GATEWAY_HANDLER_THREADS",
    1,
    (n) => Number.isInteger(n) && n >= 0 && n <= 16,
    "a whole number from 0 to 16",
  );
}

/** The defaults with some fields replaced (nested rates replaced whole). */
export function withLimits(partial: Partial<GatewayLimits> = {}): GatewayLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
