/**
 * Shard ownership for the fan-out workers. Each shard of the fan-out stream has one owner at a time,
 * held by a lease in Redis that the owner renews; a worker that dies stops renewing and its shards go
 * to the others when the lease expires. Live workers register in a sorted set with a heartbeat, and
 * each takes at most its fair share, so shards spread as workers come and go.
 */
import type { Redis } from "ioredis";
import { keys } from "../core/adapters/redis";

const streamKey = keys.stream;

/**
 * Every script here runs even when Redis is out of memory (noeviction refuses writes): each writes a
 * few bytes, and without them no worker could deliver the backlog and trim the stream, which is what
 * frees the memory.
 */
const ALLOW_OOM = "#!lua flags=allow-oom";

const ACQUIRE = `${ALLOW_OOM}
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')`;
const HEARTBEAT = `${ALLOW_OOM}
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
return redis.call('ZCARD', KEYS[1])`;
const RENEW = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
/**
 * Moves the shard's cursor past a batch, only while the caller still holds the lease (a fence against
 * a late writer). The batch's start is kept and its record of started entries emptied, so that a
 * new owner can finish a batch its previous owner died in.
 */
const ADVANCE = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local previous = redis.call('GET', KEYS[2])
if previous then redis.call('SET', KEYS[3], previous) else redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[4])
return 1`;

/**
 * Claims an entry of the current batch for delivery: only while the caller holds the lease, and only
 * once (SADD answers 0 when another owner already began it). A stale owner whose lease passed to
 * another worker, still delivering its batch, is stopped here instead of delivering twice.
 */
const CLAIM = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('SADD', KEYS[2], ARGV[2])`;

export const leaseKeys = {
  workers: "fanout:workers",
  lease: (shard: number) => `fanout:lease:${shard}`,
  cursor: (shard: number) => `fanout:cursor:${shard}`,
  /** Where the batch up to the cursor began (exclusive). */
  batchStart: (shard: number) => `fanout:start:${shard}`,
  /** Entries of the current batch whose delivery began. */
  started: (shard: number) => `fanout:started:${shard}`,
};

type LeaseRedis = Redis & {
  fanoutAcquire(key: string, owner: string, ms: number): Promise<string | null>;
  fanoutHeartbeat(key: string, now: number, owner: string, ms: number): Promise<number>;
  fanoutRenew(key: string, owner: string, ms: number): Promise<number>;
  fanoutRelease(key: string, owner: string): Promise<number>;
  fanoutClaim(lease: string, started: string, owner: string, id: string): Promise<number>;
  fanoutAdvance(
    lease: string,
    cursor: string,
    start: string,
    started: string,
    owner: string,
    id: string,
  ): Promise<number>;
};

export class ShardLeases {
  private readonly redis: LeaseRedis;

  constructor(
    redis: Redis,
    readonly workerId: string,
    readonly shards: number,
    readonly leaseMs: number,
  ) {
    redis.defineCommand("fanoutAcquire", { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand("fanoutHeartbeat", { numberOfKeys: 1, lua: HEARTBEAT });
    redis.defineCommand("fanoutRenew", { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand("fanoutRelease", { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand("fanoutAdvance", { numberOfKeys: 4, lua: ADVANCE });
    redis.defineCommand("fanoutClaim", { numberOfKeys: 2, lua: CLAIM });
    this.redis = redis as LeaseRedis;
  }

  /** Records this worker as alive; answers how many workers are alive. */
  async heartbeat(): Promise<number> {
    return Math.max(
      1,
      await this.redis.fanoutHeartbeat(leaseKeys.workers, Date.now(), this.workerId, this.leaseMs),
    );
  }

  async leave(): Promise<void> {
    await this.redis.zrem(leaseKeys.workers, this.workerId);
  }

  async tryAcquire(shard: number): Promise<boolean> {
    return (await this.redis.fanoutAcquire(leaseKeys.lease(shard), this.workerId, this.leaseMs)) === "OK";
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

  /**
   * Records that delivery of an entry begins, if this worker still holds the shard's lease and no
   * one began it before; false means the entry must not be delivered by this worker.
   */
  async claim(shard: number, id: string): Promise<boolean> {
    return (
      (await this.redis.fanoutClaim(leaseKeys.lease(shard), leaseKeys.started(shard), this.workerId, id)) ===
      1
    );
  }

  /**
   * The batch a previous owner advanced past but may not have finished: its entries, and those whose
   * delivery had begun (which must not be delivered again).
   */
  async unfinished(
    shard: number,
  ): Promise<{ entries: [string, string[]][]; started: Set<string> } | undefined> {
    const [cursor, start, started] = await Promise.all([
      this.redis.get(leaseKeys.cursor(shard)),
      this.redis.get(leaseKeys.batchStart(shard)),
      this.redis.smembers(leaseKeys.started(shard)),
    ]);
    if (!cursor) return undefined;
    const entries = (await this.redis.xrange(streamKey(shard), start ? `(${start}` : "-", cursor)) as [
      string,
      string[],
    ][];
    return { entries, started: new Set(started) };
  }

  /** Moves the cursor past `id`; false when the lease was lost, and the batch must not be delivered. */
  async advance(shard: number, id: string): Promise<boolean> {
    return (
      (await this.redis.fanoutAdvance(
        leaseKeys.lease(shard),
        leaseKeys.cursor(shard),
        leaseKeys.batchStart(shard),
        leaseKeys.started(shard),
        this.workerId,
        id,
      )) === 1
    );
  }
}
