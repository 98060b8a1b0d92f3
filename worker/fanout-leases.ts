/**
 * Shard ownership for the fan-out workers. Each shard of the fan-out stream has one owner at a time,
 * held by a lease in Redis that the owner renews; a worker that dies stops renewing and its shards go
 * to the others when the lease expires. Live workers register in a sorted set with a heartbeat, and
 * each takes at most its fair share, so shards spread as workers come and go.
 */
import type { Redis } from "ioredis";

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
/** Moves the shard's cursor only while the caller still holds the lease (a fence against a late writer). */
const ADVANCE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`;

export const leaseKeys = {
  workers: "fanout:workers",
  lease: (shard: number) => `fanout:lease:${shard}`,
  cursor: (shard: number) => `fanout:cursor:${shard}`,
};

type LeaseRedis = Redis & {
  fanoutRenew(key: string, owner: string, ms: number): Promise<number>;
  fanoutRelease(key: string, owner: string): Promise<number>;
  fanoutAdvance(lease: string, cursor: string, owner: string, id: string): Promise<number>;
};

export class ShardLeases {
  private readonly redis: LeaseRedis;

  constructor(
    redis: Redis,
    readonly workerId: string,
    readonly shards: number,
    readonly leaseMs: number,
  ) {
    redis.defineCommand("fanoutRenew", { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand("fanoutRelease", { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand("fanoutAdvance", { numberOfKeys: 2, lua: ADVANCE });
    this.redis = redis as LeaseRedis;
  }

  /** Records this worker as alive; answers how many workers are alive. */
  async heartbeat(): Promise<number> {
    const now = Date.now();
    await this.redis.zadd(leaseKeys.workers, now, this.workerId);
    await this.redis.zremrangebyscore(leaseKeys.workers, "-inf", now - this.leaseMs);
    return Math.max(1, await this.redis.zcard(leaseKeys.workers));
  }

  async leave(): Promise<void> {
    await this.redis.zrem(leaseKeys.workers, this.workerId);
  }

  async tryAcquire(shard: number): Promise<boolean> {
    return (await this.redis.set(leaseKeys.lease(shard), this.workerId, "PX", this.leaseMs, "NX")) === "OK";
  }

  async renew(shard: number): Promise<boolean> {
    return (await this.redis.fanoutRenew(leaseKeys.lease(shard), this.workerId, this.leaseMs)) === 1;
  }

  async release(shard: number): Promise<void> {
    await this.redis.fanoutRelease(leaseKeys.lease(shard), this.workerId);
  }

  async cursor(shard: number): Promise<string | null> {
    return this.redis.get(leaseKeys.cursor(shard));
  }

  /** Moves the cursor past `id`; false when the lease was lost, and the batch must not be delivered. */
  async advance(shard: number, id: string): Promise<boolean> {
    return (
      (await this.redis.fanoutAdvance(leaseKeys.lease(shard), leaseKeys.cursor(shard), this.workerId, id)) ===
      1
    );
  }
}
