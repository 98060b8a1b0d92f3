/**
 * The message bus over Redis: the fast half of accepting a message (rate limit, a cache of recent
 * sends for retries, the room's recent history, the fan-out stream in seq order), plus the reads and
 * small writes around it. Redis is a cache here: what may not be lost (each room's seq counter and
 * each send's record) is kept by the send ledger in DynamoDB, and everything below either expires
 * or is trimmed, so a Redis node's memory is bounded by design (README, "Redis memory"). Keys:
 *
 * - `dedupe:{senderId}:{clientMsgId}`  hash: k = what a retry is answered with (SentRecord JSON),
 *                                      s = "a" (accepted) | "l" (in the log), m = the message JSON
 *                                      until Kafka has it; then only k and s, for `dedupeTtlSeconds`
 * - `room:{roomId}:seq`                the highest seq put on the fan-out stream
 * - `room:{roomId}:held`               sorted set of messages waiting for a lower seq (a skipped seq
 *                                      has the member "-{seq}")
 * - `room:{roomId}:recent`             sorted set of the newest messages, scored by seq
 * - `room:{roomId}:mver`               membership version, bumped on join, leave and clean-up
 * - `room:{roomId}:members`            set of connections DynamoDB confirmed as members (a cache)
 * - `fanout:{shard}`                   stream the fan-out workers read; a room always maps to one shard
 * - `fanout:held`                      sorted set of rooms with held messages, by when they began
 * - `rl:{scope}:{id}`                  token bucket of the rate limit
 * - `log:pending`                      dedupe keys accepted but not yet confirmed by Kafka, by time
 *
 * Every room key expires `roomTtlSeconds` after the room's last message or membership change.
 */
import type { Redis, RedisOptions } from "ioredis";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { AdmitOutcome, MessageBus, RateLimit, SentRecord } from "../ports";
import {
  type ChatMessage,
  ChatMessage as ChatMessageSchema,
  type FanoutNotice,
  SentRecord as SentRecordSchema,
} from "../schemas";
import { compiledOnFirstUse } from "../zod";

/** What Redis holds is parsed with the schemas it was written from, not cast. */
const chatMessage = compiledOnFirstUse(ChatMessageSchema);
const sentRecordSchema = compiledOnFirstUse(SentRecordSchema);
const decodeMessage = (text: string): ChatMessage => chatMessage().parse(JSON.parse(text));

export const keys = {
  dedupe: (senderId: string, clientMsgId: string) => `dedupe:${senderId}:${clientMsgId}`,
  seq: (roomId: string) => `room:${roomId}:seq`,
  held: (roomId: string) => `room:${roomId}:held`,
  recent: (roomId: string) => `room:${roomId}:recent`,
  membershipVersion: (roomId: string) => `room:${roomId}:mver`,
  members: (roomId: string) => `room:${roomId}:members`,
  stream: (shard: number) => `fanout:${shard}`,
  heldRooms: "fanout:held",
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

/** A room quiet for this long leaves Redis; its history is then read from PostgreSQL. */
const ROOM_TTL_SECONDS = 24 * 60 * 60;

/** A send that Kafka never confirmed stays until the sweeper has appended it, up to this long. */
const PENDING_TTL_SECONDS = 7 * 24 * 60 * 60;

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** Draws one token from the bucket KEYS[2] (rate ARGV[1] a second, burst ARGV[2]); sets `admitted`. */
const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local ttl = math.ceil(burst * 1000 / rate) + 1000
local admitted = tokens >= 1
if admitted then tokens = tokens - 1 end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[2], ttl)
`;

/**
 * A connection the room's member set does not hold is sent back to ask DynamoDB (when ARGV[3] names
 * it); a retry is answered from the dedupe record; a first send draws from the token bucket.
 * KEYS: dedupe, rate, members. ARGV: rate, burst, connectionId or ''.
 */
const ADMIT = `${NOW}
if ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 0 then return {'unknown'} end
local d = redis.call('HMGET', KEYS[1], 'k', 's', 'm')
if d[1] then return {'dup', d[1], d[2], d[3] or ''} end
${TOKEN_BUCKET}
if admitted then return {'ok'} end
return {'limited'}
`;

/** The allowance of a room action other than a send (KEYS[1] is unused). */
const METER = `${NOW}
${TOKEN_BUCKET}
if admitted then return 1 end
return 0
`;

/**
 * Puts held messages that are next in seq order on the stream. KEYS: seq, held, stream, mver.
 * Expects \`pub\` (the highest seq on the stream) and \`ttl\` in scope; leaves \`pub\` updated.
 */
const DRAIN = `
local mv = redis.call('GET', KEYS[4]) or '0'
while true do
  local nxt = redis.call('ZRANGEBYSCORE', KEYS[2], pub + 1, pub + 1)
  if #nxt == 0 then break end
  for _, m in ipairs(nxt) do
    if string.sub(m, 1, 1) == '{' then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'm', m, 'v', mv)
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], pub + 1, pub + 1)
  pub = pub + 1
end
redis.call('SET', KEYS[1], pub, 'EX', ttl)
`;

/**
 * Publishes a message under the seq the ledger issued, or skips a seq issued to nothing (m = '').
 * Seqs come from DynamoDB, so two sends of one room may reach Redis out of order: a message whose
 * predecessor is not on the stream yet is held until it is (or until the fan-out releases a room
 * held too long, after a sender died between the two steps). The stream stays in seq order per
 * room: a seq it has passed already (released, or published before) is not put on it again, and
 * is a client's getHistory away. Without a cursor (a room Redis lost or let expire) a first send
 * goes out as it comes; a retry does not, since it may have gone out before Redis lost the cursor.
 *
 * KEYS: seq, held, stream, mver, dedupe, recent, pendingLog, heldRooms
 * ARGV: streamMaxLen, roomTtl, m, seq, recentSize, pendingTtl, pendingMember, roomId, k, retry
 */
const PUBLISH = `${NOW}
local ttl = tonumber(ARGV[2])
local seq = tonumber(ARGV[4])
local m = ARGV[3]
if m ~= '' then
  redis.call('HSET', KEYS[5], 'k', ARGV[9], 'm', m, 's', 'a')
  redis.call('EXPIRE', KEYS[5], ARGV[6])
  redis.call('ZADD', KEYS[7], now, ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], seq, seq)
  redis.call('ZADD', KEYS[6], seq, m)
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(tonumber(ARGV[5]) + 1))
  redis.call('EXPIRE', KEYS[6], ttl)
end
local pub = tonumber(redis.call('GET', KEYS[1]))
if pub and seq <= pub then return 'passed' end
if not pub and ARGV[10] == '1' then return 'unknown' end
if pub and seq > pub + 1 then
  if m == '' then m = '-' .. seq end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], seq, seq)
  redis.call('ZADD', KEYS[2], seq, m)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('ZADD', KEYS[8], 'NX', now, ARGV[8])
  return 'held'
end
if m ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'm', m, 'v', redis.call('GET', KEYS[4]) or '0')
end
pub = seq
${DRAIN}
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[8], ARGV[8]) end
return 'published'
`;

/**
 * Gives up waiting for a held room's missing seq: publishes from its lowest held message on. It moves
 * what Redis holds already, so it runs when Redis is out of memory too.
 */
const RELEASE = `#!lua flags=allow-oom
local ttl = tonumber(ARGV[2])
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first == 0 then
  redis.call('ZREM', KEYS[5], ARGV[3])
  return 0
end
local pub = tonumber(first[2]) - 1
${DRAIN}
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[5], ARGV[3]) end
return 1
`;

/** A frame for the room's members, with the membership version the fan-out lists them by. KEYS: stream, mver. */
const ANNOUNCE = `
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'c', ARGV[2], 'v', redis.call('GET', KEYS[2]) or '0')
return 1
`;

/** Runs when Redis is out of memory too: it frees the message body the record no longer needs. */
const MARK_LOGGED = `#!lua flags=allow-oom
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 's', 'l')
  redis.call('HDEL', KEYS[1], 'm')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/** Sends and other actions draw from separate buckets, per user or per connection. */
function rateKeyOf(
  kind: "send" | "act",
  caller: { userId: string; connectionId: string },
  rate: RateLimit,
): string {
  // The send bucket keeps its old names, so a deploy does not reset everyone's allowance.
  const prefix = kind === "send" ? "" : "act:";
  return rate.scope === "user"
    ? keys.rate(`${prefix}user`, caller.userId)
    : keys.rate(`${prefix}conn`, caller.connectionId);
}

function sentRecord(m: ChatMessage, textDigest: string): SentRecord {
  return { messageId: m.messageId, roomId: m.roomId, seq: m.seq, textDigest };
}

type BusRedis = Redis & {
  chatAdmit(...args: (string | number)[]): Promise<string[]>;
  chatMeter(...args: (string | number)[]): Promise<number>;
  chatPublish(...args: (string | number)[]): Promise<string>;
  chatRelease(...args: (string | number)[]): Promise<number>;
  chatMarkLogged(...args: (string | number)[]): Promise<number>;
  chatAnnounce(...args: (string | number)[]): Promise<number>;
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
    // A stalled Redis answers INTERNAL well within a handler's timeout.
    commandTimeout: 2000,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(1000, 50 * 2 ** Math.min(times, 5)),
  };
}

function wrap<T>(what: string, work: Promise<T>): Promise<T> {
  return work.catch((cause: unknown) => {
    throw new DependencyError("redis", `Redis ${what} failed`, { cause });
  });
}

export interface BusOptions {
  recentSize?: number;
  shards?: number;
  streamMaxLen?: number;
  /** How long a send Kafka has confirmed stays cached for retries (DynamoDB answers after that). */
  dedupeTtlSeconds?: number;
  roomTtlSeconds?: number;
}

export class RedisMessageBus implements MessageBus {
  readonly redis: BusRedis;
  private readonly recentSize: number;
  private readonly shards: number;
  private readonly streamMaxLen: number;
  private readonly dedupeTtlSeconds: number;
  private readonly roomTtlSeconds: number;

  constructor(redis: Redis, options: BusOptions = {}) {
    redis.defineCommand("chatAdmit", { numberOfKeys: 3, lua: ADMIT });
    redis.defineCommand("chatMeter", { numberOfKeys: 2, lua: METER });
    redis.defineCommand("chatPublish", { numberOfKeys: 8, lua: PUBLISH });
    redis.defineCommand("chatRelease", { numberOfKeys: 5, lua: RELEASE });
    redis.defineCommand("chatMarkLogged", { numberOfKeys: 2, lua: MARK_LOGGED });
    redis.defineCommand("chatAnnounce", { numberOfKeys: 2, lua: ANNOUNCE });
    this.redis = redis as BusRedis;
    this.recentSize = options.recentSize ?? config.redis().recentHistory;
    this.shards = options.shards ?? config.fanout().shards;
    this.streamMaxLen = options.streamMaxLen ?? 100_000;
    this.dedupeTtlSeconds = options.dedupeTtlSeconds ?? 15 * 60;
    this.roomTtlSeconds = options.roomTtlSeconds ?? ROOM_TTL_SECONDS;
  }

  /** The fan-out stream shard of a room. */
  shardOf(roomId: string): number {
    return shardOf(roomId, this.shards);
  }

  /**
   * The first step of a send, in one round trip: with `memberOf`, a connection Redis does not
   * remember as the room's member is sent to ask DynamoDB (nothing drawn); a retry Redis remembers
   * is answered from its record; anything else draws one token from the caller's bucket.
   */
  async admit(
    sender: { userId: string; connectionId: string },
    clientMsgId: string,
    rate: RateLimit,
    memberOf?: string,
  ): Promise<AdmitOutcome> {
    const rateKey = rateKeyOf("send", sender, rate);
    const dedupeKey = keys.dedupe(sender.userId, clientMsgId);
    const reply = await wrap(
      "admit",
      this.redis.chatAdmit(
        dedupeKey,
        rateKey,
        memberOf === undefined ? dedupeKey : keys.members(memberOf),
        rate.perSecond,
        rate.burst,
        memberOf === undefined ? "" : sender.connectionId,
      ),
    );
    switch (reply[0]) {
      case "unknown":
        return { status: "unknown-member" };
      case "dup":
        return {
          status: "duplicate",
          sent: sentRecordSchema().parse(JSON.parse(reply[1] as string)) as SentRecord,
          ...(reply[2] !== "l" && reply[3] ? { unlogged: decodeMessage(reply[3]) } : {}),
        };
      case "limited":
        return { status: "rate-limited" };
      default:
        return { status: "admitted" };
    }
  }

  async meter(caller: { userId: string; connectionId: string }, rate: RateLimit): Promise<boolean> {
    const key = rateKeyOf("act", caller, rate);
    return (await wrap("meter", this.redis.chatMeter(key, key, rate.perSecond, rate.burst))) === 1;
  }

  async notify(roomId: string, connectionIds: string[], frame: object, forget = false): Promise<void> {
    if (connectionIds.length === 0 && !forget) return;
    await wrap(
      "notify",
      this.redis.xadd(
        keys.stream(this.shardOf(roomId)),
        "MAXLEN",
        "~",
        this.streamMaxLen,
        "*",
        "c",
        JSON.stringify({
          roomId,
          connectionIds,
          frame: frame as FanoutNotice["frame"],
          forget,
        } satisfies FanoutNotice),
      ),
    );
  }

  async announce(roomId: string, frame: object, options: { except?: string; dropAfter?: number } = {}) {
    const notice: FanoutNotice = { roomId, room: true, frame: frame as FanoutNotice["frame"], ...options };
    await wrap(
      "announce",
      this.redis.chatAnnounce(
        keys.stream(this.shardOf(roomId)),
        keys.membershipVersion(roomId),
        this.streamMaxLen,
        JSON.stringify(notice),
      ),
    );
  }

  /**
   * Puts the message on its room's recent history and, in seq order, on the fan-out stream, and
   * remembers it for retries and for the sweeper until Kafka confirms it.
   */
  async publish(message: ChatMessage, textDigest: string, retry = false): Promise<void> {
    await this.runPublish(message.roomId, message.seq, message, textDigest, retry);
  }

  /** Tells the stream that a seq the ledger issued carries no message, so later ones need not wait. */
  async skip(roomId: string, seq: number): Promise<void> {
    await this.runPublish(roomId, seq, undefined, "", false);
  }

  private async runPublish(
    roomId: string,
    seq: number,
    message: ChatMessage | undefined,
    textDigest: string,
    retry: boolean,
  ): Promise<void> {
    // A skipped seq touches neither a dedupe record nor the pending set: the script leaves KEYS[5] be.
    const dedupeKey = message ? keys.dedupe(message.senderId, message.clientMsgId) : keys.seq(roomId);
    await wrap(
      "publish",
      this.redis.chatPublish(
        keys.seq(roomId),
        keys.held(roomId),
        keys.stream(this.shardOf(roomId)),
        keys.membershipVersion(roomId),
        dedupeKey,
        keys.recent(roomId),
        keys.pendingLog,
        keys.heldRooms,
        this.streamMaxLen,
        this.roomTtlSeconds,
        message ? JSON.stringify(message) : "",
        seq,
        this.recentSize,
        PENDING_TTL_SECONDS,
        // The pending set names the dedupe key as callers see it, without any client key prefix.
        dedupeKey,
        roomId,
        message ? JSON.stringify(sentRecord(message, textDigest)) : "",
        retry ? "1" : "0",
      ),
    );
  }

  /**
   * Releases rooms whose stream has waited longer than `heldMs` for a seq that never came (its
   * sender died between the ledger and Redis): their held messages go out, in seq order.
   */
  async releaseHeld(heldMs: number): Promise<number> {
    const rooms = await wrap(
      "held rooms",
      this.redis.zrangebyscore(keys.heldRooms, "-inf", Date.now() - heldMs, "LIMIT", 0, 100),
    );
    for (const roomId of rooms) {
      await wrap(
        "release",
        this.redis.chatRelease(
          keys.seq(roomId),
          keys.held(roomId),
          keys.stream(this.shardOf(roomId)),
          keys.membershipVersion(roomId),
          keys.heldRooms,
          this.streamMaxLen,
          this.roomTtlSeconds,
          roomId,
        ),
      );
    }
    return rooms.length;
  }

  /** Records that Kafka has the message, so a retry need not append it again. */
  async markLogged(senderId: string, clientMsgId: string): Promise<void> {
    await wrap(
      "mark logged",
      this.redis.chatMarkLogged(
        keys.dedupe(senderId, clientMsgId),
        keys.pendingLog,
        keys.dedupe(senderId, clientMsgId),
        this.dedupeTtlSeconds,
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
      if (m) out.push(decodeMessage(m));
      else await this.redis.zrem(keys.pendingLog, key);
    }
    return out;
  }

  /**
   * Sets the room's stream cursor where it is missing. Without one, a message is put on the stream as
   * it comes (a room quiet past its TTL, or a Redis that lost it): the order of the sends racing at
   * that moment is not known here.
   */
  async startAt(roomId: string, seq: number): Promise<void> {
    await wrap("start seq", this.redis.set(keys.seq(roomId), seq, "EX", this.roomTtlSeconds, "NX"));
  }

  /** The highest seq on the room's fan-out stream, or undefined when Redis does not know the room. */
  async publishedSeq(roomId: string): Promise<number | undefined> {
    const v = await wrap("read seq", this.redis.get(keys.seq(roomId)));
    return v === null ? undefined : Number(v);
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
      Promise.all(
        roomIds.map((r) =>
          this.redis
            .multi()
            .incr(keys.membershipVersion(r))
            .expire(keys.membershipVersion(r), this.roomTtlSeconds)
            .exec(),
        ),
      ),
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
    const messages = raw.map(decodeMessage);
    return from === "oldest" ? messages : messages.reverse();
  }
}
