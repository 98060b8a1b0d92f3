/**
 * The message bus over Redis: one atomic step accepts a message (dedupe on sender and clientMsgId,
 * rate limit, next seq of the room, recent history, fan-out stream), plus the reads and small writes
 * around it. Keys:
 *
 * - `dedupe:{senderId}:{clientMsgId}`  hash: m = message JSON, s = "a" (accepted) | "l" (in the log)
 * - `room:{roomId}:seq`                the room's newest seq
 * - `room:{roomId}:recent`             sorted set of the newest messages, scored by seq
 * - `room:{roomId}:mver`               membership version, bumped on join, leave and clean-up
 * - `room:{roomId}:members`            set of connections DynamoDB confirmed as members (a cache)
 * - `fanout:{shard}`                   stream the fan-out workers read; a room always maps to one shard
 * - `rl:{scope}:{id}`                  token bucket of the rate limit
 * - `log:pending`                      dedupe keys accepted but not yet confirmed by Kafka, by time
 */
import type { Redis, RedisOptions } from "ioredis";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ChatMessage } from "../schemas";

export const keys = {
  dedupe: (senderId: string, clientMsgId: string) => `dedupe:${senderId}:${clientMsgId}`,
  seq: (roomId: string) => `room:${roomId}:seq`,
  recent: (roomId: string) => `room:${roomId}:recent`,
  membershipVersion: (roomId: string) => `room:${roomId}:mver`,
  members: (roomId: string) => `room:${roomId}:members`,
  stream: (shard: number) => `fanout:${shard}`,
  rate: (scope: string, id: string) => `rl:${scope}:${id}`,
  pendingLog: "log:pending",
};

/** FNV-1a: a stable, cheap hash, so a room always lands on the same fan-out shard. */
export function shardOf(roomId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < roomId.length; i++) {
    h ^= roomId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

/** API Gateway closes every connection within 2 hours; a remembered membership outlives none. */
const MEMBERS_TTL_SECONDS = 3 * 60 * 60;

const ACCEPT = `
local d = redis.call('HMGET', KEYS[1], 'm', 's')
if d[1] then return {'dup', d[1], d[2]} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'noseq'} end
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[5], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local ttl = math.ceil(burst * 1000 / rate) + 1000
if tokens < 1 then
  redis.call('HSET', KEYS[5], 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', KEYS[5], ttl)
  return {'limited'}
end
redis.call('HSET', KEYS[5], 'tokens', tostring(tokens - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[5], ttl)
local seq = redis.call('INCR', KEYS[2])
local m = '{"seq":' .. seq .. ARGV[1]
redis.call('HSET', KEYS[1], 'm', m, 's', 'a')
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[7], now, ARGV[7])
redis.call('ZADD', KEYS[3], seq, m)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[4]) + 1))
local mv = redis.call('GET', KEYS[6]) or '0'
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'm', m, 'v', mv)
return {'ok', m}
`;

const MARK_LOGGED = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 's', 'l') end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

export type AcceptOutcome =
  | { status: "accepted"; message: ChatMessage }
  | { status: "duplicate"; message: ChatMessage; logged: boolean }
  | { status: "rate-limited" }
  | { status: "no-seq" };

export interface AcceptInput {
  message: Omit<ChatMessage, "seq">;
  /** The token bucket to draw from: per connection or per user. */
  rateKey: string;
  ratePerSecond: number;
  burst: number;
  shard: number;
}

type BusRedis = Redis & {
  chatAccept(...args: (string | number)[]): Promise<string[]>;
  chatMarkLogged(...args: string[]): Promise<number>;
};

/** Options for a client to the configured Redis; `password` comes from Secrets Manager on AWS. */
export function redisOptions(password?: string): RedisOptions {
  return {
    password,
    // Lets several stacks share one Redis (the tests run one per file); applies to script KEYS too.
    keyPrefix: config.redis().keyPrefix || undefined,
    tls: config.redis().url.startsWith("rediss://") ? {} : undefined,
    maxRetriesPerRequest: 2,
    connectTimeout: 3000,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(1000, 50 * 2 ** Math.min(times, 5)),
  };
}

function wrap<T>(what: string, work: Promise<T>): Promise<T> {
  return work.catch((cause: unknown) => {
    throw new DependencyError("redis", `Redis ${what} failed`, { cause });
  });
}

export class RedisMessageBus {
  readonly redis: BusRedis;

  constructor(
    redis: Redis,
    private readonly recentSize: number = config.redis().recentHistory,
    private readonly streamMaxLen = 100_000,
    private readonly dedupeTtlSeconds = 24 * 60 * 60,
  ) {
    redis.defineCommand("chatAccept", { numberOfKeys: 7, lua: ACCEPT });
    redis.defineCommand("chatMarkLogged", { numberOfKeys: 2, lua: MARK_LOGGED });
    this.redis = redis as BusRedis;
  }

  /** The atomic step of sendMessage. `no-seq` means the room's counter is unknown: seed it, then retry. */
  async accept(input: AcceptInput): Promise<AcceptOutcome> {
    const { message } = input;
    const body = JSON.stringify(message);
    const reply = await wrap(
      "accept",
      this.redis.chatAccept(
        keys.dedupe(message.senderId, message.clientMsgId),
        keys.seq(message.roomId),
        keys.recent(message.roomId),
        keys.stream(input.shard),
        input.rateKey,
        keys.membershipVersion(message.roomId),
        keys.pendingLog,
        `,${body.slice(1)}`,
        input.ratePerSecond,
        input.burst,
        this.recentSize,
        this.dedupeTtlSeconds,
        this.streamMaxLen,
        // The pending set names the dedupe key as callers see it, without any client key prefix.
        keys.dedupe(message.senderId, message.clientMsgId),
      ),
    );
    switch (reply[0]) {
      case "ok":
        return { status: "accepted", message: JSON.parse(reply[1] as string) as ChatMessage };
      case "dup":
        return {
          status: "duplicate",
          message: JSON.parse(reply[1] as string) as ChatMessage,
          logged: reply[2] === "l",
        };
      case "limited":
        return { status: "rate-limited" };
      default:
        return { status: "no-seq" };
    }
  }

  /** Records that Kafka has the message, so a retry need not append it again. */
  async markLogged(senderId: string, clientMsgId: string): Promise<void> {
    await wrap(
      "mark logged",
      this.redis.chatMarkLogged(
        keys.dedupe(senderId, clientMsgId),
        keys.pendingLog,
        keys.dedupe(senderId, clientMsgId),
      ),
    );
  }

  /** Accepted messages whose append to Kafka was not confirmed for `olderThanMs`. */
  async unloggedSince(olderThanMs: number, limit = 500): Promise<ChatMessage[]> {
    const dedupeKeys = await wrap(
      "pending scan",
      this.redis.zrangebyscore(keys.pendingLog, "-inf", Date.now() - olderThanMs, "LIMIT", 0, limit),
    );
    const out: ChatMessage[] = [];
    for (const key of dedupeKeys) {
      const m = await wrap("pending read", this.redis.hget(key, "m"));
      if (m) out.push(JSON.parse(m) as ChatMessage);
      else await this.redis.zrem(keys.pendingLog, key);
    }
    return out;
  }

  /** The room's newest seq, or undefined when Redis does not know the room (new, or Redis lost it). */
  async currentSeq(roomId: string): Promise<number | undefined> {
    const v = await wrap("read seq", this.redis.get(keys.seq(roomId)));
    return v === null ? undefined : Number(v);
  }

  /** Sets the room's counter when it is missing; answers the counter as it then stands. */
  async seedSeq(roomId: string, value: number): Promise<number> {
    const reply = await wrap(
      "seed seq",
      this.redis.set(keys.seq(roomId), value, "NX").then(() => this.redis.get(keys.seq(roomId))),
    );
    return Number(reply);
  }

  /**
   * Whether the connection is remembered as a member of the room. False means "not known here"
   * (never confirmed, forgotten, or expired), not "not a member": ask DynamoDB.
   */
  async knownMember(roomId: string, connectionId: string): Promise<boolean> {
    return (await wrap("membership", this.redis.sismember(keys.members(roomId), connectionId))) === 1;
  }

  /** Remembers a membership DynamoDB confirmed, for as long as a connection can live and then some. */
  async rememberMember(roomId: string, connectionId: string): Promise<void> {
    const key = keys.members(roomId);
    await wrap(
      "membership",
      this.redis.multi().sadd(key, connectionId).expire(key, MEMBERS_TTL_SECONDS).exec(),
    );
  }

  /** Forgets the connection's membership of these rooms (before DynamoDB's record goes, on leave). */
  async forgetMember(roomIds: string[], connectionId: string): Promise<void> {
    if (roomIds.length === 0) return;
    await wrap("membership", Promise.all(roomIds.map((r) => this.redis.srem(keys.members(r), connectionId))));
  }

  async bumpMembership(roomIds: string[]): Promise<void> {
    if (roomIds.length === 0) return;
    await wrap(
      "membership version",
      Promise.all(roomIds.map((r) => this.redis.incr(keys.membershipVersion(r)))),
    );
  }

  /** The lowest seq held in the room's recent history, or undefined when it holds none. */
  async recentFloor(roomId: string): Promise<number | undefined> {
    const first = await wrap("recent floor", this.redis.zrange(keys.recent(roomId), "0", "0", "WITHSCORES"));
    return first[1] === undefined ? undefined : Number(first[1]);
  }

  /** Messages of the recent history with after < seq < before, the `limit` nearest `from`'s side. */
  async recentRange(
    roomId: string,
    after: number,
    before: number,
    limit: number,
    from: "oldest" | "newest",
  ): Promise<ChatMessage[]> {
    const key = keys.recent(roomId);
    const lo = `(${after}`;
    const hi = Number.isFinite(before) ? `(${before}` : "+inf";
    const raw =
      from === "oldest"
        ? await wrap("recent range", this.redis.zrangebyscore(key, lo, hi, "LIMIT", 0, limit))
        : await wrap("recent range", this.redis.zrevrangebyscore(key, hi, lo, "LIMIT", 0, limit));
    const messages = raw.map((m) => JSON.parse(m) as ChatMessage);
    return from === "oldest" ? messages : messages.reverse();
  }
}
