/**
 * API Gateway throttles with the token bucket algorithm: a bucket of `burst` tokens refilled at
 * `ratePerSecond`, one token per request; a request finding the bucket empty is refused with 429.
 */
import type { RateLimit } from "./settings";

/** One token bucket. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = limit.burst;
    this.last = this.now();
  }

  /** Takes a token when there is one; answers false (throttled) when the bucket is empty. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(
      this.limit.burst,
      this.tokens + ((t - this.last) / 1000) * this.limit.ratePerSecond,
    );
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The buckets of one emulated account and stage. */
export interface Throttles {
  /** Shared by client frames and `@connections` calls. */
  account: TokenBucket;
  newConnections: TokenBucket;
  /** The stage's default route throttle, one bucket per route key (AWS throttles each route). */
  route(routeKey: string): TokenBucket;
}

export function createThrottles(limits: {
  account: RateLimit;
  newConnections: RateLimit;
  route: RateLimit;
}): Throttles {
  const routes = new Map<string, TokenBucket>();
  return {
    account: new TokenBucket(limits.account),
    newConnections: new TokenBucket(limits.newConnections),
    route(routeKey) {
      let bucket = routes.get(routeKey);
      if (!bucket) {
        bucket = new TokenBucket(limits.route);
        routes.set(routeKey, bucket);
      }
      return bucket;
    },
  };
}
