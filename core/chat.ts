/**
 * The chat domain: what each client action does, independent of Lambda and of the gateway. Handlers
 * in functions/ parse the event, call one of these with the ports it takes, and map the outcome to a
 * frame.
 */
import { ulid } from "ulid";
import type { RedisMessageBus } from "./adapters/redis";
import { keys, shardOf } from "./adapters/redis";
import type { ConnectionStore, EventLog, MessageHistory } from "./ports";
import {
  type ChatMessage,
  type GetHistoryFrame,
  HISTORY_DEFAULT_LIMIT,
  type MessageFrame,
  type SendMessageFrame,
  toMessageFrame,
} from "./schemas";

/** API Gateway's limit on one message (route responses included) is 128 KB; keep a margin. */
export const MAX_RESPONSE_BYTES = 120 * 1024;

/** A port, opened on first use and then reused: a handler that never sends never connects to Kafka. */
export type Port<T> = () => Promise<T>;

/**
 * Every port and setting of the chat domain. Each action takes only the part it uses, so that an
 * entry point wires, and its bundle carries, only those adapters: `$connect` needs nothing but the
 * connection store.
 */
export interface ChatDeps {
  store: Port<ConnectionStore>;
  bus: Port<RedisMessageBus>;
  log: Port<EventLog>;
  history: Port<MessageHistory>;
  rateLimit: { perSecond: number; burst: number; scope: "connection" | "user" };
  fanoutShards: number;
  connectionTtlSeconds: number;
  now?: () => number;
  newId?: () => string;
}

export type ConnectDeps = Pick<ChatDeps, "store" | "connectionTtlSeconds" | "now">;
export type DisconnectDeps = Pick<ChatDeps, "store" | "bus">;
export type JoinDeps = Pick<ChatDeps, "store" | "bus" | "history" | "connectionTtlSeconds" | "now">;
export type LeaveDeps = Pick<ChatDeps, "store" | "bus">;
export type SendDeps = Pick<
  ChatDeps,
  "store" | "bus" | "log" | "history" | "rateLimit" | "fanoutShards" | "now" | "newId"
>;
export type HistoryDeps = Pick<ChatDeps, "store" | "bus" | "history">;

export interface Caller {
  connectionId: string;
  userId: string;
  name?: string;
}

export type SendOutcome =
  | { ok: true; messageId: string; seq: number }
  | { ok: false; code: "NOT_A_MEMBER" | "RATE_LIMITED" };

export type HistoryOutcome =
  | { ok: true; messages: MessageFrame[]; hasMore: boolean }
  | { ok: false; code: "NOT_A_MEMBER" };

function expiresAt(deps: { connectionTtlSeconds: number; now?: () => number }): number {
  return Math.floor((deps.now ?? Date.now)() / 1000) + deps.connectionTtlSeconds;
}

export async function connect(deps: ConnectDeps, caller: Caller): Promise<void> {
  await (await deps.store()).putConnection({
    connectionId: caller.connectionId,
    userId: caller.userId,
    name: caller.name,
    connectedAt: (deps.now ?? Date.now)(),
    expiresAt: expiresAt(deps),
  });
}

/**
 * Removes the connection's records and answers the rooms it was in; safe to call twice, and for a
 * connection never recorded. `$disconnect` calls it, and the fan-out for a connection that is gone.
 */
export async function disconnect(deps: DisconnectDeps, connectionId: string): Promise<string[]> {
  const rooms = await (await deps.store()).removeConnection(connectionId);
  if (rooms.length === 0) return rooms;
  const bus = await deps.bus();
  await Promise.all([bus.forgetMember(rooms, connectionId), bus.bumpMembership(rooms)]);
  return rooms;
}

/**
 * Joins the room (idempotent) and answers its newest seq. The membership records that seq, so the
 * fan-out never pushes the joiner a message it was told of already (one accepted just before the
 * join but delivered after it); every later one reaches it.
 */
export async function joinRoom(deps: JoinDeps, caller: Caller, roomId: string): Promise<{ lastSeq: number }> {
  const lastSeq = await roomSeq(deps, roomId);
  const store = await deps.store();
  await store.joinRoom(caller.connectionId, roomId, caller.userId, expiresAt(deps), lastSeq);
  // Recorded in DynamoDB first, then remembered in Redis, so the joiner's sends skip the DynamoDB read.
  const bus = await deps.bus();
  await Promise.all([bus.rememberMember(roomId, caller.connectionId), bus.bumpMembership([roomId])]);
  return { lastSeq };
}

export async function leaveRoom(deps: LeaveDeps, caller: Caller, roomId: string): Promise<void> {
  const bus = await deps.bus();
  // Redis forgets first, so it never vouches for a membership DynamoDB no longer holds.
  await bus.forgetMember([roomId], caller.connectionId);
  await (await deps.store()).leaveRoom(caller.connectionId, roomId);
  await bus.bumpMembership([roomId]);
}

/**
 * Whether the caller is a member of the room. DynamoDB holds the memberships; Redis remembers the
 * ones recorded or confirmed there (joining remembers), so a send costs one Redis round trip
 * instead of a DynamoDB read. Whatever Redis does not know (a Redis that lost its data, a
 * membership older than the cache) is asked of DynamoDB. Leaving and disconnecting forget the
 * connection in Redis.
 */
async function isMember(
  deps: Pick<ChatDeps, "store" | "bus">,
  connectionId: string,
  roomId: string,
): Promise<boolean> {
  const bus = await deps.bus();
  if (await bus.knownMember(roomId, connectionId)) return true;
  if (!(await (await deps.store()).isMember(connectionId, roomId))) return false;
  await bus.rememberMember(roomId, connectionId);
  return true;
}

/**
 * The room's newest seq. When Redis does not know the room (a new room, or a Redis that lost its
 * data) the counter is seeded from PostgreSQL, so seqs never go backwards.
 */
async function roomSeq(deps: Pick<ChatDeps, "bus" | "history">, roomId: string): Promise<number> {
  const bus = await deps.bus();
  const known = await bus.currentSeq(roomId);
  if (known !== undefined) return known;
  const stored = await (await deps.history()).maxSeq(roomId);
  return bus.seedSeq(roomId, stored);
}

/**
 * Accepts a message: one atomic Redis step (dedupe, rate limit, seq, recent history, fan-out
 * stream), then the Kafka append, and only then the ack. A retry with the same clientMsgId finds the
 * dedupe record and repeats only the append if Kafka never confirmed it.
 */
export async function sendMessage(
  deps: SendDeps,
  caller: Caller,
  frame: SendMessageFrame,
): Promise<SendOutcome> {
  const { rateLimit } = deps;
  if (!(await isMember(deps, caller.connectionId, frame.roomId))) return { ok: false, code: "NOT_A_MEMBER" };
  const bus = await deps.bus();
  const draft: Omit<ChatMessage, "seq"> = {
    messageId: (deps.newId ?? ulid)(),
    roomId: frame.roomId,
    senderId: caller.userId,
    ...(caller.name !== undefined ? { senderName: caller.name } : {}),
    text: frame.text,
    sentAt: new Date((deps.now ?? Date.now)()).toISOString(),
    clientMsgId: frame.clientMsgId,
  };
  const input = {
    message: draft,
    rateKey:
      rateLimit.scope === "user" ? keys.rate("user", caller.userId) : keys.rate("conn", caller.connectionId),
    ratePerSecond: rateLimit.perSecond,
    burst: rateLimit.burst,
    shard: shardOf(frame.roomId, deps.fanoutShards),
  };
  let outcome = await bus.accept(input);
  if (outcome.status === "no-seq") {
    await roomSeq(deps, frame.roomId);
    outcome = await bus.accept(input);
  }
  switch (outcome.status) {
    case "rate-limited":
      return { ok: false, code: "RATE_LIMITED" };
    case "no-seq":
      throw new Error(`room ${frame.roomId} has no seq counter after seeding it`);
    case "accepted":
    case "duplicate": {
      const { message } = outcome;
      if (outcome.status === "accepted" || !outcome.logged) {
        await (await deps.log()).append([message]);
        await bus.markLogged(message.senderId, message.clientMsgId);
      }
      return { ok: true, messageId: message.messageId, seq: message.seq };
    }
  }
}

/**
 * History in ascending seq. Recent messages come from Redis, older ones from PostgreSQL; the answer
 * is the same either way. Answers fewer than `limit` (with hasMore) when the frame would pass the
 * gateway's message size limit.
 */
export async function getHistory(
  deps: HistoryDeps,
  caller: Caller,
  frame: GetHistoryFrame,
): Promise<HistoryOutcome> {
  if (!(await isMember(deps, caller.connectionId, frame.roomId))) return { ok: false, code: "NOT_A_MEMBER" };
  const limit = frame.limit ?? HISTORY_DEFAULT_LIMIT;
  const forward = frame.afterSeq !== undefined;
  const found = forward
    ? await pageForward(deps, frame.roomId, frame.afterSeq ?? 0, limit + 1)
    : await pageBackward(deps, frame.roomId, frame.beforeSeq ?? Number.POSITIVE_INFINITY, limit + 1);
  let hasMore = found.length > limit;
  const page = forward ? found.slice(0, limit) : found.slice(Math.max(0, found.length - limit));
  let frames = page.map(toMessageFrame);
  // Keep the frame under the gateway's limit, dropping from the far end of the direction asked.
  const sizes = frames.map((f) => Buffer.byteLength(JSON.stringify(f)) + 1);
  let bytes = sizes.reduce((a, b) => a + b, 200);
  while (frames.length > 0 && bytes > MAX_RESPONSE_BYTES) {
    hasMore = true;
    bytes -= (forward ? sizes.pop() : sizes.shift()) ?? 0;
    frames = forward ? frames.slice(0, -1) : frames.slice(1);
  }
  return { ok: true, messages: frames, hasMore };
}

/** The oldest `count` messages with seq > afterSeq. */
async function pageForward(
  deps: Pick<ChatDeps, "bus" | "history">,
  roomId: string,
  afterSeq: number,
  count: number,
): Promise<ChatMessage[]> {
  const bus = await deps.bus();
  const floor = await bus.recentFloor(roomId);
  if (floor !== undefined && afterSeq + 1 >= floor) {
    return bus.recentRange(roomId, afterSeq, Number.POSITIVE_INFINITY, count, "oldest");
  }
  const stored = await (await deps.history()).range(roomId, { afterSeq, limit: count });
  if (stored.length >= count || floor === undefined) return stored;
  const last = stored.at(-1)?.seq ?? afterSeq;
  const recent = await bus.recentRange(
    roomId,
    last,
    Number.POSITIVE_INFINITY,
    count - stored.length,
    "oldest",
  );
  return [...stored, ...recent];
}

/** The newest `count` messages with seq < beforeSeq, ascending. */
async function pageBackward(
  deps: Pick<ChatDeps, "bus" | "history">,
  roomId: string,
  beforeSeq: number,
  count: number,
): Promise<ChatMessage[]> {
  const recent = await (await deps.bus()).recentRange(roomId, 0, beforeSeq, count, "newest");
  const lowest = recent[0]?.seq ?? beforeSeq;
  if (recent.length >= count || lowest <= 1) return recent;
  const older = await (await deps.history()).range(roomId, {
    ...(Number.isFinite(lowest) ? { beforeSeq: lowest } : {}),
    limit: count - recent.length,
  });
  return [...older, ...recent];
}
