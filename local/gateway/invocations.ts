/**
 * Lambda invocations as API Gateway makes them: each with a Lambda context and the integration
 * timeout, metered; and the pool that runs a connection's frames the way AWS does, each its own
 * invocation, concurrent with the others (of the same connection too), at most `limit` at once.
 */
import type { Meter } from "./meter";

/** The Lambda context passed to handlers: the fields handlers commonly read. */
export interface LambdaContext {
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  awsRequestId: string;
  logGroupName: string;
  logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
}

/** A Lambda handler as the routes export it: API Gateway's events are untyped at this edge. */
// biome-ignore lint/suspicious/noExplicitAny: the events and results are AWS's untyped JSON
export type LambdaHandler = (event: any, context: LambdaContext) => Promise<any>;

/** A handler ran past the integration timeout. */
export class IntegrationTimeoutError extends Error {
  override name = "IntegrationTimeoutError";
}

export type Invocation = { ok: true; result: unknown } | { ok: false; error: unknown; timedOut: boolean };

/** What every invocation of one emulated API shares. */
export interface InvokeTarget {
  apiId: string;
  region: string;
  accountId: string;
  integrationTimeoutMs: number;
  memoryMb: number;
  meter: Meter;
}

/** Invokes `handler` as Lambda would for API Gateway: never throws, answers the outcome. */
export async function invoke(
  target: InvokeTarget,
  routeKey: string,
  handler: LambdaHandler,
  event: Record<string, unknown>,
  requestId: string,
): Promise<Invocation> {
  const { apiId, region, accountId, integrationTimeoutMs } = target;
  const started = performance.now();
  const context: LambdaContext = {
    functionName: `${apiId}-${routeKey}`,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${region}:${accountId}:function:${apiId}-${routeKey}`,
    memoryLimitInMB: String(target.memoryMb),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${apiId}-${routeKey}`,
    logStreamName: "local",
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, integrationTimeoutMs - (performance.now() - started)),
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new IntegrationTimeoutError(`${routeKey} ran past ${integrationTimeoutMs} ms`)),
        integrationTimeoutMs,
      );
      timer.unref();
    });
    // A handler that throws synchronously is caught like one that rejects.
    const result = await Promise.race([Promise.resolve().then(() => handler(event, context)), timeout]);
    return { ok: true, result };
  } catch (error) {
    return { ok: false, error, timedOut: error instanceof IntegrationTimeoutError };
  } finally {
    if (timer) clearTimeout(timer);
    target.meter.invocation(routeKey, performance.now() - started);
  }
}

/** What became of a frame handed to the pool. */
export type Admission = "started" | "queued" | "overConcurrency" | "overQueue";

/**
 * Runs frames' invocations as AWS runs them: each its own, concurrent with the others (two frames of
 * one connection too), and at most `concurrency` in flight (Lambda's account concurrency: past it,
 * AWS throttles the invocation). This process has one CPU where AWS has one per invocation, so at
 * most `slots` run here at a time; the others wait in a queue per connection, served in turn across
 * connections, so that one connection's burst does not hold up another's frame (as on AWS, where it
 * would run in its own Lambda). A connection's queue holds at most `perKeyQueue` frames. Work still
 * waiting when its connection closes never runs.
 */
export class InvocationPool {
  private active = 0;
  private queued = 0;
  private readonly queues = new Map<string, (() => Promise<void>)[]>();
  /** Connections with waiting work, in the order they are served. */
  private ring: string[] = [];
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly slots: number,
    private readonly concurrency: number,
    private readonly perKeyQueue: number,
    private readonly onError: (error: unknown, key: string) => void,
  ) {}

  /** Invocations running now. */
  running(): number {
    return this.active;
  }

  /** Invocations waiting for a slot. */
  waiting(): number {
    return this.queued;
  }

  submit(key: string, work: () => Promise<void>): Admission {
    if (this.active + this.queued >= this.concurrency) return "overConcurrency";
    if (this.active < this.slots && this.queued === 0) {
      this.run(key, work);
      return "started";
    }
    const queue = this.queues.get(key) ?? [];
    if (queue.length >= this.perKeyQueue) return "overQueue";
    if (queue.length === 0) {
      this.queues.set(key, queue);
      this.ring.push(key);
    }
    queue.push(work);
    this.queued++;
    return "queued";
  }

  /** Drops the connection's waiting work: a closed connection's frames are not invoked. */
  forget(key: string): number {
    const queue = this.queues.get(key);
    if (!queue) return 0;
    this.queues.delete(key);
    this.ring = this.ring.filter((k) => k !== key);
    this.queued -= queue.length;
    this.settle();
    return queue.length;
  }

  /** Resolves once nothing runs or waits. */
  async idle(): Promise<void> {
    if (this.active === 0 && this.queued === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private run(key: string, work: () => Promise<void>): void {
    this.active++;
    void work()
      .catch((error: unknown) => this.onError(error, key))
      .finally(() => {
        this.active--;
        this.next();
      });
  }

  private next(): void {
    while (this.active < this.slots && this.ring.length > 0) {
      const key = this.ring.shift() as string;
      const queue = this.queues.get(key);
      const work = queue?.shift();
      if (!queue || !work) continue;
      this.queued--;
      if (queue.length > 0) this.ring.push(key);
      else this.queues.delete(key);
      this.run(key, work);
    }
    this.settle();
  }

  private settle(): void {
    if (this.active === 0 && this.queued === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}
