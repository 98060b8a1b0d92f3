/**
 * Presence over Redis: which users are in each room, counted by their connections, with a grace
 * before a user whose last connection went away is shown offline. Keys:
 *
 * - `pres:{roomId}:c`        hash: connectionId → userId, the connections present in the room
 * - `pres:{roomId}:u`        hash: userId → how many of its connections are present; "0" while the
 *                            user is within its grace (still shown)
 * - `pres:{roomId}:n`        hash: userId → display name
 * - `pres:conn:{connId}`     set of the rooms the connection is present in
 * - `pres:due`               sorted set of "{roomId}\n{userId}" by when the user's grace ends
 * - `pres:check`             sorted set of connections by when to ask API Gateway whether they live
 * - `typing:{roomId}:{user}` a key that exists for 2 s after the user's typing was shown
 *
 * Every key expires: a connection lives at most 2 hours, so 3 hours after its last write a room's
 * presence is stale by definition.
 */
import type { Redis } from "ioredis";
import { DependencyError } from "../errors";
import type { PresenceRegistry, PresenceUser } from "../ports";

const TTL_SECONDS = 3 * 60 * 60;

export const presenceKeys = {
  connections: (roomId: string) => `pres:${roomId}:c`,
  users: (roomId: string) => `pres:${roomId}:u`,
  names: (roomId: string) => `pres:${roomId}:n`,
  roomsOf: (connectionId: string) => `pres:conn:${connectionId}`,
  due: "pres:due",
  check: "pres:check",
  typing: (roomId: string, userId: string) => `typing:${roomId}:${userId}`,
};

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * KEYS: connections, users, names, roomsOf, due, check.
 * ARGV: roomId, connectionId, userId, name ('' for none), checkAfterMs, ttl. Returns 1 when the
 * user came online.
 */
const ENTER = `${NOW}
local ttl = tonumber(ARGV[6])
local online = 0
if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 1 then
  local count = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  local within = redis.call('ZREM', KEYS[5], ARGV[1] .. '\\n' .. ARGV[3])
  if count == 1 and within == 0 then online = 1 end
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('EXPIRE', KEYS[4], ttl)
  redis.call('ZADD', KEYS[6], 'NX', now + tonumber(ARGV[5]), ARGV[2])
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
return online
`;

/**
 * The end of one connection's presence in one room. KEYS: connections, users, names, roomsOf, due,
 * check. ARGV: roomId, connectionId, graceMs. Returns {userId, name} when the user is offline now.
 */
const LEAVE_ONE = `
local function leave(kc, ku, kn, kr, kdue, room, conn, grace)
  local user = redis.call('HGET', kc, conn)
  redis.call('SREM', kr, room)
  if not user then return nil end
  redis.call('HDEL', kc, conn)
  local count = redis.call('HINCRBY', ku, user, -1)
  if count > 0 then return nil end
  if grace > 0 then
    redis.call('HSET', ku, user, 0)
    redis.call('ZADD', kdue, now + grace, room .. '\\n' .. user)
    return nil
  end
  local name = redis.call('HGET', kn, user) or ''
  redis.call('HDEL', ku, user)
  redis.call('HDEL', kn, user)
  return {user, name}
end
`;

const LEAVE = `${NOW}${LEAVE_ONE}
local gone = leave(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], tonumber(ARGV[3]))
if redis.call('SCARD', KEYS[4]) == 0 then redis.call('ZREM', KEYS[6], ARGV[2]) end
return gone
`;

/**
 * Every room of the connection, with grace. KEYS: roomsOf, due, check. The room keys are built here
 * from the stored room ids (so this runs on one Redis node, as the stack's does, not on a cluster).
 * ARGV: connectionId, graceMs, key prefix.
 */
const LEAVE_ALL = `${NOW}${LEAVE_ONE}
local p = ARGV[3]
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  leave(p .. 'pres:' .. room .. ':c', p .. 'pres:' .. room .. ':u', p .. 'pres:' .. room .. ':n', KEYS[1], KEYS[2], room, ARGV[1], tonumber(ARGV[2]))
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

/** Users whose grace ended: still at 0 connections, they are forgotten. KEYS: due. ARGV: max, prefix. */
const EXPIRED = `${NOW}
local out = {}
local p = ARGV[2]
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  redis.call('ZREM', KEYS[1], member)
  local cut = string.find(member, '\\n', 1, true)
  local room = string.sub(member, 1, cut - 1)
  local user = string.sub(member, cut + 1)
  local ku = p .. 'pres:' .. room .. ':u'
  if redis.call('HGET', ku, user) == '0' then
    local kn = p .. 'pres:' .. room .. ':n'
    table.insert(out, room)
    table.insert(out, user)
    table.insert(out, redis.call('HGET', kn, user) or '')
    redis.call('HDEL', ku, user)
    redis.call('HDEL', kn, user)
  end
end
return out
`;

/** KEYS: check. ARGV: max. */
const SUSPECTS = `${NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
`;

/** KEYS: check. ARGV: connectionId, afterMs. Only a connection still tracked is checked again. */
const RECHECK = `${NOW}
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
`;

type PresenceRedis = Redis & {
  presenceEnter(...args: (string | number)[]): Promise<number>;
  presenceLeave(...args: (string | number)[]): Promise<[string, string] | null>;
  presenceLeaveAll(...args: (string | number)[]): Promise<number>;
  presenceExpired(...args: (string | number)[]): Promise<string[]>;
  presenceSuspects(...args: (string | number)[]): Promise<string[]>;
  presenceRecheck(...args: (string | number)[]): Promise<number>;
};

function wrap<T>(what: string, work: Promise<T>): Promise<T> {
  return work.catch((cause: unknown) => {
    throw new DependencyError("redis", `Redis presence ${what} failed`, { cause });
  });
}

const userOf = (userId: string, name: string): PresenceUser => (name ? { userId, name } : { userId });

export class RedisPresence implements PresenceRegistry {
  private readonly redis: PresenceRedis;
  /** The client's key prefix: scripts that build room keys from stored ids must add it themselves. */
  private readonly prefix: string;

  constructor(redis: Redis) {
    redis.defineCommand("presenceEnter", { numberOfKeys: 6, lua: ENTER });
    redis.defineCommand("presenceLeave", { numberOfKeys: 6, lua: LEAVE });
    redis.defineCommand("presenceLeaveAll", { numberOfKeys: 3, lua: LEAVE_ALL });
    redis.defineCommand("presenceExpired", { numberOfKeys: 1, lua: EXPIRED });
    redis.defineCommand("presenceSuspects", { numberOfKeys: 1, lua: SUSPECTS });
    redis.defineCommand("presenceRecheck", { numberOfKeys: 1, lua: RECHECK });
    this.redis = redis as PresenceRedis;
    this.prefix = typeof redis.options.keyPrefix === "string" ? redis.options.keyPrefix : "";
  }

  private roomKeys(roomId: string, connectionId: string): string[] {
    return [
      presenceKeys.connections(roomId),
      presenceKeys.users(roomId),
      presenceKeys.names(roomId),
      presenceKeys.roomsOf(connectionId),
      presenceKeys.due,
      presenceKeys.check,
    ];
  }

  async enter(roomId: string, connectionId: string, user: PresenceUser, checkAfterMs: number) {
    const online = await wrap(
      "enter",
      this.redis.presenceEnter(
        ...this.roomKeys(roomId, connectionId),
        roomId,
        connectionId,
        user.userId,
        user.name ?? "",
        checkAfterMs,
        TTL_SECONDS,
      ),
    );
    return online === 1;
  }

  async leave(roomId: string, connectionId: string, graceMs: number) {
    const gone = await wrap(
      "leave",
      this.redis.presenceLeave(...this.roomKeys(roomId, connectionId), roomId, connectionId, graceMs),
    );
    return gone ? userOf(gone[0], gone[1]) : undefined;
  }

  async leaveAll(connectionId: string, graceMs: number) {
    await wrap(
      "leaveAll",
      this.redis.presenceLeaveAll(
        presenceKeys.roomsOf(connectionId),
        presenceKeys.due,
        presenceKeys.check,
        connectionId,
        graceMs,
        this.prefix,
      ),
    );
  }

  async list(roomId: string) {
    const [counts, names] = await wrap(
      "list",
      Promise.all([
        this.redis.hgetall(presenceKeys.users(roomId)),
        this.redis.hgetall(presenceKeys.names(roomId)),
      ]),
    );
    return Object.keys(counts)
      .sort()
      .map((userId) => userOf(userId, names[userId] ?? ""));
  }

  async expired(max: number) {
    const flat = await wrap("expired", this.redis.presenceExpired(presenceKeys.due, max, this.prefix));
    const out: { roomId: string; user: PresenceUser }[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      out.push({ roomId: flat[i] as string, user: userOf(flat[i + 1] as string, flat[i + 2] as string) });
    }
    return out;
  }

  async suspects(max: number) {
    return wrap("suspects", this.redis.presenceSuspects(presenceKeys.check, max));
  }

  async recheck(connectionId: string, afterMs: number) {
    await wrap("recheck", this.redis.presenceRecheck(presenceKeys.check, connectionId, afterMs));
  }

  async mayShowTyping(roomId: string, userId: string, everyMs: number) {
    const set = await wrap(
      "typing",
      this.redis.set(presenceKeys.typing(roomId, userId), "1", "PX", everyMs, "NX"),
    );
    return set === "OK";
  }
}
