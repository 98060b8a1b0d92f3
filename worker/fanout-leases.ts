/**
 * Shard ownership for the fan-out workers. Each shard of the fan-out stream has one owner at a time,
 * held by a lease in Redis that the owner renews; a worker that dies stops renewing and its shards go
 * to the others when the lease expires. Live workers register in a sorted set with a heartbeat, and
 * each takes at most its fair share, so shards spread as workers come and go.
 */
import type { Redis } from "ioredis";
import { keys } from "../core/adapters/redis";
import { nextId } from "./fanout-entries";

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
 * Moves the shard's cursor past what was read (the owner records it every so often, not on every
 * read), only while the caller still holds the lease (a fence against a late writer), and records
 * how far delivery is complete: every entry up to the
 * watermark (`start`) is delivered, so it leaves the record of started entries and the stream.
 * Entries between the watermark and the cursor are in delivery; a new owner finishes those that
 * had not started. It also counts the entries read, for the check of entries trimmed unread.
 */
const ADVANCE = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
if tonumber(ARGV[5]) > 0 then redis.call('INCRBY', KEYS[6], ARGV[5]) end
for i = 6, #ARGV do redis.call('SREM', KEYS[4], ARGV[i]) end
if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[5], 'MINID', '=', ARGV[4]) end
return 1`;

/**
 * Entries trimmed from the stream before any owner read them (the publish side caps the stream's
 * length; a backlog past the cap loses its oldest entries). Checked when the owner has caught up
 * (no entry after its cursor is left): every entry ever added is then either read or lost, so
 * lost = added - read - (what was there before the first check), less what was counted before.
 * Answers the newly lost, or -1 (not the owner), -2 (not caught up; nothing checked).
 */
const TRIMMED = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
local info = redis.call('XINFO', 'STREAM', KEYS[2])
local last, added
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] elseif info[i] == 'entries-added' then added = tonumber(info[i + 1]) end
end
if not added then return -2 end
if last ~= ARGV[2] then
  -- Not caught up, unless every entry after the cursor is gone (trimmed before it was read).
  if #redis.call('XRANGE', KEYS[2], '(' .. ARGV[2], '+', 'COUNT', 1) > 0 then return -2 end
end
local read = tonumber(redis.call('GET', KEYS[3]) or '0')
local base = redis.call('GET', KEYS[4])
local counted = tonumber(redis.call('GET', KEYS[5]) or '0')
if not base then redis.call('SET', KEYS[4], added - read) return 0 end
local lost = added - read - tonumber(base) - counted
if lost < 0 then
  redis.call('SET', KEYS[4], added - read)
  redis.call('SET', KEYS[5], 0)
  return 0
end
if lost > 0 then redis.call('INCRBY', KEYS[5], lost) end
return lost`;

/**
 * Claims entries of the current batch for delivery: only while the caller holds the lease (-1
 * otherwise), and each only once (SADD answers 0 when another owner already began it). A stale
 * owner whose lease passed to another worker, still delivering, is stopped here instead of
 * delivering twice.
 */
const CLAIM = `${ALLOW_OOM}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
for i = 2, #ARGV do out[i - 1] = redis.call('SADD', KEYS[2], ARGV[i]) end
return out`;

/**
 * Whether this worker holds (or now takes) the lease `key` that one worker at a time holds for a
 * periodic task; renews it for `ms` when held.
 */
export async function holdsSoleLease(
  redis: Redis,
  key: string,
  workerId: string,
  ms: number,
): Promise<boolean> {
  const mine =
    (await redis.set(key, workerId, "PX", ms, "NX")) === "OK" || (await redis.get(key)) === workerId;
  if (mine) await redis.pexpire(key, ms);
  return mine;
}

export const leaseKeys = {
  workers: "fanout:workers",
  lease: (shard: number) => `fanout:lease:${shard}`,
  cursor: (shard: number) => `fanout:cursor:${shard}`,
  /** Where the batch up to the cursor began (exclusive). */
  batchStart: (shard: number) => `fanout:start:${shard}`,
  /** Entries past the watermark whose delivery began. */
  started: (shard: number) => `fanout:started:${shard}`,
  /** Entries read from the stream by its owners, over time; and what the check of trimmed entries keeps. */
  read: (shard: number) => `fanout:read:${shard}`,
  base: (shard: number) => `fanout:base:${shard}`,
  trimmed: (shard: number) => `fanout:trimmed:${shard}`,
};

type LeaseRedis = Redis & {
  fanoutAcquire(key: string, owner: string, ms: number): Promise<string | null>;
  fanoutHeartbeat(key: string, now: number, owner: string, ms: number): Promise<number>;
  fanoutRenew(key: string, owner: string, ms: number): Promise<number>;
  fanoutRelease(key: string, owner: string): Promise<number>;
  fanoutClaim(lease: string, started: string, owner: string, ...ids: string[]): Promise<number | number[]>;
  fanoutAdvance(...keysAndArgs: string[]): Promise<number>;
  fanoutTrimmed(...keysAndArgs: string[]): Promise<number>;
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
    redis.defineCommand("fanoutAdvance", { numberOfKeys: 6, lua: ADVANCE });
    redis.defineCommand("fanoutTrimmed", { numberOfKeys: 5, lua: TRIMMED });
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
   * Records that delivery of these entries begins, if this worker still holds the shard's lease:
   * answers, per id, whether this worker may deliver it (false: another owner began it), or
   * undefined when the lease is lost and nothing may be delivered.
   */
  async claim(shard: number, ids: string[]): Promise<boolean[] | undefined> {
    const out = await this.redis.fanoutClaim(
      leaseKeys.lease(shard),
      leaseKeys.started(shard),
      this.workerId,
      ...ids,
    );
    return Array.isArray(out) ? out.map((n) => n === 1) : undefined;
  }

  /**
   * The batch a previous owner advanced past but may not have finished: its entries, and those whose
   * delivery had begun (which must not be delivered again).
   */
  async unfinished(
    shard: number,
  ): Promise<{ entries: [string, string[]][]; started: Set<string>; start: string | undefined } | undefined> {
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
    return { entries, started: new Set(started), start: start ?? undefined };
  }

  /**
   * Moves the cursor to `cursor` (having read `read` more entries), and the watermark to `watermark`
   * (every entry up to it delivered: `delivered` leave the started record, the stream is trimmed up
   * to it); false when the lease was lost, and nothing read may be delivered.
   */
  async advance(
    shard: number,
    cursor: string,
    read: number,
    watermark: string | undefined,
    delivered: string[],
  ): Promise<boolean> {
    return (
      (await this.redis.fanoutAdvance(
        leaseKeys.lease(shard),
        leaseKeys.cursor(shard),
        leaseKeys.batchStart(shard),
        leaseKeys.started(shard),
        streamKey(shard),
        leaseKeys.read(shard),
        this.workerId,
        cursor,
        watermark ?? "",
        watermark ? nextId(watermark) : "",
        String(read),
        ...delivered,
      )) === 1
    );
  }

  /**
   * Entries trimmed from the stream before they were read, newly found since the last check; 0
   * when none, or when the check could not be made (the owner is not caught up to `cursor`).
   */
  async trimmedUnread(shard: number, cursor: string): Promise<number> {
    const lost = await this.redis.fanoutTrimmed(
      leaseKeys.lease(shard),
      streamKey(shard),
      leaseKeys.read(shard),
      leaseKeys.base(shard),
      leaseKeys.trimmed(shard),
      this.workerId,
      cursor,
    );
    return Math.max(0, lost);
  }
}
