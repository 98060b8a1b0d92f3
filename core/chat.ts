/**
 * The chat domain: what each client action does, independent of Lambda and of the gateway. Handlers
 * in functions/ parse the event, call one of these with the ports it takes, and map the outcome to a
 * frame.
 */
import { createHash, randomFillSync } from "node:crypto";
import { ulid } from "ulid";
import type {
  ConnectionGateway,
  ConnectionStore,
  EventLog,
  MessageBus,
  MessageHistory,
  PresenceRegistry,
  RateLimit,
  RoomDirectory,
  SendLedger,
  SendRecord,
  UserRoom,
} from "./ports";
import {
  type ChatMessage,
  type GetHistoryFrame,
  HISTORY_DEFAULT_LIMIT,
  type MessageFrame,
  type SendMessageFrame,
  toMessageFrame,
} from "./schemas";

/** Room ids of this prefix are direct rooms' alone (core/rooms.ts makes them). */
export const DIRECT_PREFIX = "dm.";

/** API Gateway closes every connection after 2 hours. */
export const MAX_CONNECTION_LIFETIME_MS = 2 * 60 * 60 * 1000;

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
  bus: Port<MessageBus>;
  ledger: Port<SendLedger>;
  log: Port<EventLog>;
  history: Port<MessageHistory>;
  rooms: Port<RoomDirectory>;
  presence: Port<PresenceRegistry>;
  /** Posts to a connection beyond the route's one answer (resume). */
  gateway: Port<ConnectionGateway>;
  /** How long a user whose last connection went away is still shown; API Gateway's idle timeout. */
  presenceTimes: { graceSeconds: number; idleSeconds: number };
  rateLimit: RateLimit;
  /** The allowance of every room action other than a send. */
  actionRateLimit: RateLimit;
  limits: { maxMembers: number; maxConnectionsPerUser: number };
  connectionTtlSeconds: number;
  now?: () => number;
  newId?: () => string;
}

export type ConnectDeps = Pick<ChatDeps, "store" | "limits" | "connectionTtlSeconds" | "now">;
export type DisconnectDeps = Pick<ChatDeps, "store" | "bus"> &
  Partial<Pick<ChatDeps, "presence" | "presenceTimes">>;
/** What joining a connection to a room takes (joinRoom, createRoom, openDirect, resume). */
export type JoinConnectionDeps = Pick<
  ChatDeps,
  "store" | "bus" | "ledger" | "history" | "presence" | "presenceTimes" | "connectionTtlSeconds" | "now"
>;
export type JoinDeps = JoinConnectionDeps & Pick<ChatDeps, "rooms" | "limits" | "actionRateLimit">;
export type LeaveDeps = Pick<ChatDeps, "store" | "bus" | "rooms" | "presence" | "actionRateLimit">;
export type SendDeps = Pick<
  ChatDeps,
  "store" | "bus" | "ledger" | "log" | "history" | "rooms" | "rateLimit" | "now" | "newId"
>;
export type HistoryDeps = Pick<ChatDeps, "store" | "bus" | "history" | "rooms" | "actionRateLimit">;

export interface Caller {
  connectionId: string;
  userId: string;
  name?: string;
}

export type SendOutcome =
  | { ok: true; messageId: string; seq: number }
  | { ok: false; code: "NOT_A_MEMBER" | "RATE_LIMITED" | "CONFLICT" | "FORBIDDEN" };

/** Why a room action was refused (PROTOCOL.md's codes). */
export type Refusal = { ok: false; code: "FORBIDDEN" | "ROOM_FULL" | "RATE_LIMITED" | "NOT_A_MEMBER" };

export type HistoryOutcome =
  | { ok: true; messages: MessageFrame[]; hasMore: boolean }
  | { ok: false; code: "NOT_A_MEMBER" | "FORBIDDEN" | "RATE_LIMITED" };

function expiresAt(deps: { connectionTtlSeconds: number; now?: () => number }): number {
  return Math.floor((deps.now ?? Date.now)() / 1000) + deps.connectionTtlSeconds;
}

/** Draws one token from the caller's allowance of room actions; false when it is spent. */
export async function metered(
  deps: Pick<ChatDeps, "bus" | "actionRateLimit">,
  caller: Caller,
): Promise<boolean> {
  return (await deps.bus()).meter(caller, deps.actionRateLimit);
}

/** The user's connections that are open now, or were within API Gateway's 2-hour cap. */
export async function openConnections(
  deps: Pick<ChatDeps, "store" | "now">,
  userId: string,
): Promise<string[]> {
  const now = (deps.now ?? Date.now)();
  return (await deps.store()).connectionsOf(userId, now - MAX_CONNECTION_LIFETIME_MS);
}

/**
 * Records the connection, unless the user has `maxConnectionsPerUser` already (API Gateway's 2-hour
 * cap bounds how long a connection whose `$disconnect` never came can count).
 */
export async function connect(
  deps: ConnectDeps,
  caller: Caller,
  /** `batch`: the client asked for batched frames (`batch=1` at connect; PROTOCOL.md). */
  options: { batch?: boolean } = {},
): Promise<{ ok: true } | { ok: false; code: "TOO_MANY_CONNECTIONS" }> {
  const open = await openConnections(deps, caller.userId);
  if (open.filter((id) => id !== caller.connectionId).length >= deps.limits.maxConnectionsPerUser) {
    return { ok: false, code: "TOO_MANY_CONNECTIONS" };
  }
  await (await deps.store()).putConnection({
    connectionId: caller.connectionId,
    userId: caller.userId,
    name: caller.name,
    connectedAt: (deps.now ?? Date.now)(),
    expiresAt: expiresAt(deps),
    ...(options.batch ? { batch: true } : {}),
  });
  return { ok: true };
}

/**
 * Removes the connection's records and answers the rooms it was in; safe to call twice, and for a
 * connection never recorded. `$disconnect` calls it, and the fan-out for a connection that is gone.
 */
export async function disconnect(deps: DisconnectDeps, connectionId: string): Promise<string[]> {
  const rooms = await (await deps.store()).removeConnection(connectionId);
  // Its users stay shown for the grace: a reconnect (API Gateway's 2-hour cap) does not flap.
  if (deps.presence && deps.presenceTimes) {
    await (await deps.presence()).leaveAll(connectionId, deps.presenceTimes.graceSeconds * 1000);
  }
  if (rooms.length === 0) return rooms;
  const bus = await deps.bus();
  await Promise.all([bus.forgetMember(rooms, connectionId), bus.bumpMembership(rooms)]);
  return rooms;
}

/**
 * Joins the room (idempotent) and answers its newest seq and the user's read position. A public
 * room takes any user (up to `maxMembers`); a private or direct room only its users.
 */
export async function joinRoom(
  deps: JoinDeps,
  caller: Caller,
  roomId: string,
): Promise<{ ok: true; lastSeq: number; lastReadSeq: number } | Refusal> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  const entered = await enterRoom(deps, caller, roomId);
  return entered.ok ? { ok: true, lastSeq: entered.lastSeq, lastReadSeq: entered.lastReadSeq } : entered;
}

/**
 * joinRoom without drawing from the allowance (resume draws once for all its rooms). Also answers
 * `joinedSeq`: the fan-out pushes the connection every message after it.
 */
export async function enterRoom(
  deps: JoinDeps,
  caller: Caller,
  roomId: string,
): Promise<{ ok: true; lastSeq: number; joinedSeq: number; lastReadSeq: number } | Refusal> {
  const rooms = await deps.rooms();
  const room = await rooms.room(roomId);
  // A room of the direct prefix that does not exist yet is no one's to take as a public room.
  if (!room && roomId.startsWith(DIRECT_PREFIX)) return { ok: false, code: "FORBIDDEN" };
  const kind = room?.kind ?? "public";
  let standing: UserRoom | "full" | undefined;
  if (kind === "public") {
    standing = await rooms.addUser({ roomId, kind }, caller.userId, "member", deps.limits.maxMembers);
  } else {
    // Invitees become members; anyone else is refused.
    standing = await rooms.userRoom(caller.userId, roomId);
    if (!standing) return { ok: false, code: "FORBIDDEN" };
    if (standing.role === "invited") {
      standing = await rooms.addUser({ roomId, kind }, caller.userId, "member", deps.limits.maxMembers);
    }
  }
  if (standing === "full") return { ok: false, code: "ROOM_FULL" };
  const { lastSeq, joinedSeq } = await joinConnection(deps, caller, roomId);
  return { ok: true, lastSeq, joinedSeq, lastReadSeq: standing.lastReadSeq };
}

/**
 * Makes the connection a member of the room and answers its newest seq. The membership records the
 * seq read before it was written, so the fan-out never pushes the joiner a message older than the
 * join; the answer is read after it was written, so a message accepted in between is either pushed
 * to the joiner or within the `lastSeq` it was told (both, at worst: clients keep a message once
 * per seq). `joinedSeq` is the seq recorded: every later message is pushed. The user comes online in
 * the room when this is its first connection there.
 */
export async function joinConnection(
  deps: JoinConnectionDeps,
  caller: Caller,
  roomId: string,
): Promise<{ lastSeq: number; joinedSeq: number }> {
  const before = await roomSeq(deps, roomId);
  const store = await deps.store();
  await store.joinRoom(caller.connectionId, roomId, caller.userId, expiresAt(deps), before);
  // Recorded in DynamoDB first, then remembered in Redis, so the joiner's sends skip the DynamoDB read.
  const bus = await deps.bus();
  await Promise.all([bus.rememberMember(roomId, caller.connectionId), bus.bumpMembership([roomId])]);
  const [after] = await Promise.all([
    (await deps.ledger()).currentSeq(roomId),
    enterPresence(deps, caller, roomId),
  ]);
  return { lastSeq: Math.max(before, after ?? before), joinedSeq: before };
}

/** The presence event of a user in a room. */
export function presenceFrame(
  roomId: string,
  user: { userId: string; name?: string },
  state: "online" | "offline",
) {
  return {
    type: "presence" as const,
    roomId,
    userId: user.userId,
    ...(user.name !== undefined ? { name: user.name } : {}),
    state,
  };
}

/** Counts the connection in the room's presence; announces the user when it just came online. */
async function enterPresence(
  deps: Pick<ChatDeps, "bus" | "presence" | "presenceTimes">,
  caller: Caller,
  roomId: string,
): Promise<void> {
  const presence = await deps.presence();
  // Asked again once the connection has been idle for the gateway's idle timeout.
  const checkAfterMs = deps.presenceTimes.idleSeconds * 1000;
  const user = { userId: caller.userId, ...(caller.name !== undefined ? { name: caller.name } : {}) };
  if (await presence.enter(roomId, caller.connectionId, user, checkAfterMs)) {
    await (await deps.bus()).announce(roomId, presenceFrame(roomId, user, "online"));
  }
}

/** The connection no longer counts in the room's presence; announces its user when it went offline. */
export async function leavePresence(
  deps: Pick<ChatDeps, "bus" | "presence">,
  roomId: string,
  connectionId: string,
): Promise<void> {
  const gone = await (await deps.presence()).leave(roomId, connectionId, 0);
  if (gone) await (await deps.bus()).announce(roomId, presenceFrame(roomId, gone, "offline"));
}

/**
 * Leaves the room: this connection stops receiving it, and the user no longer has it among its
 * rooms (a private room's owner keeps it).
 */
export async function leaveRoom(
  deps: LeaveDeps,
  caller: Caller,
  roomId: string,
): Promise<{ ok: true } | Refusal> {
  const bus = await deps.bus();
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  // Redis forgets first, so it never vouches for a membership DynamoDB no longer holds.
  await bus.forgetMember([roomId], caller.connectionId);
  await (await deps.store()).leaveRoom(caller.connectionId, roomId);
  await Promise.all([bus.bumpMembership([roomId]), leavePresence(deps, roomId, caller.connectionId)]);
  const rooms = await deps.rooms();
  const standing = await rooms.userRoom(caller.userId, roomId);
  if (standing && standing.role !== "owner") await rooms.removeUser(roomId, caller.userId);
  return { ok: true };
}

/**
 * Why a connection that has not joined the room is refused it: FORBIDDEN when its user may not
 * enter the room at all, else NOT_A_MEMBER (join first).
 */
export async function notJoined(
  deps: Pick<ChatDeps, "rooms">,
  userId: string,
  roomId: string,
): Promise<{ ok: false; code: "FORBIDDEN" | "NOT_A_MEMBER" }> {
  const rooms = await deps.rooms();
  const room = await rooms.room(roomId);
  if (room && room.kind !== "public" && !(await rooms.userRoom(userId, roomId))) {
    return { ok: false, code: "FORBIDDEN" };
  }
  return { ok: false, code: "NOT_A_MEMBER" };
}

/**
 * Whether the caller is a member of the room. DynamoDB holds the memberships; Redis remembers the
 * ones recorded or confirmed there (joining remembers), so a send costs one Redis round trip
 * instead of a DynamoDB read. Whatever Redis does not know (a Redis that lost its data, a
 * membership older than the cache) is asked of DynamoDB. Leaving and disconnecting forget the
 * connection in Redis.
 */
export async function isMember(
  deps: Pick<ChatDeps, "store" | "bus">,
  connectionId: string,
  roomId: string,
): Promise<boolean> {
  if (await (await deps.bus()).knownMember(roomId, connectionId)) return true;
  return confirmMember(deps, connectionId, roomId);
}

/** Asks DynamoDB whether the connection is the room's member, and remembers a yes in Redis. */
async function confirmMember(
  deps: Pick<ChatDeps, "store" | "bus">,
  connectionId: string,
  roomId: string,
): Promise<boolean> {
  if (!(await (await deps.store()).isMember(connectionId, roomId))) return false;
  await (await deps.bus()).rememberMember(roomId, connectionId);
  return true;
}

/**
 * Where a room the ledger never counted starts: after the highest seq stored or put on the fan-out
 * stream (a room older than the ledger). A room the ledger counts never asks again.
 */
async function seedOf(deps: Pick<ChatDeps, "bus" | "history">, roomId: string): Promise<number> {
  const [stored, published] = await Promise.all([
    deps.history().then((h) => h.maxSeq(roomId)),
    deps.bus().then((b) => b.publishedSeq(roomId)),
  ]);
  return Math.max(stored, published ?? 0);
}

/**
 * Seeds a room the ledger is about to count: the fan-out stream learns where the room starts, so
 * its first messages go out in seq order even when the second reaches Redis before the first.
 */
async function seedRoom(deps: Pick<ChatDeps, "bus" | "history">, roomId: string): Promise<number> {
  const start = await seedOf(deps, roomId);
  await (await deps.bus()).startAt(roomId, start);
  return start;
}

/** The room's newest issued seq (0 for a room never written to). */
async function roomSeq(deps: Pick<ChatDeps, "bus" | "ledger" | "history">, roomId: string): Promise<number> {
  return (await (await deps.ledger()).currentSeq(roomId)) ?? (await seedOf(deps, roomId));
}

/**
 * Random bytes for message ids, drawn from the OS a pool at a time: ulid's own source asks for one
 * byte per character of every id, 16 calls into the OS per message.
 */
const randomPool = Buffer.alloc(4096);
let randomAt = randomPool.length;
function pooledRandom(): number {
  if (randomAt >= randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  // A byte over 256 maps evenly onto ulid's 32 characters.
  return (randomPool[randomAt++] as number) / 256;
}

/** A new message id: a ULID, ordered by time of creation. */
export function newMessageId(): string {
  return ulid(undefined, pooledRandom);
}

/** A digest of the text, so the ledger can tell a retry from a reuse of its clientMsgId. */
function digestOf(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("base64url").slice(0, 22);
}

/** Appends to Kafka and then remembers that Kafka has it; the ack waits for both. */
async function appendToLog(deps: Pick<ChatDeps, "bus" | "log">, message: ChatMessage): Promise<void> {
  await (await deps.log()).append([message]);
  await (await deps.bus()).markLogged(message.senderId, message.clientMsgId);
}

/**
 * Accepts a message:
 * 1. Redis admits it (a retry it remembers is answered at once, after appending to Kafka if Kafka
 *    never confirmed it; a first send draws from the rate limit).
 * 2. The ledger (DynamoDB) issues the room's next seq and records the send under (sender,
 *    clientMsgId), so neither a seq nor a retry depends on Redis keeping its newest writes. A retry
 *    that Redis lost but the ledger holds is refused by that record's condition: it is answered
 *    with its first ack and the seq it drew is skipped. The ledger is not read first: that read
 *    would cost every send a DynamoDB call to find what only a Redis that lost data misses.
 * 3. Redis publishes it (recent history, and the fan-out stream in seq order).
 * 4. Kafka appends it (acks from every in-sync replica), and only then is it acked.
 * Reusing a clientMsgId for another room or text answers CONFLICT, and nothing more is delivered or
 * stored.
 */
export async function sendMessage(
  deps: SendDeps,
  caller: Caller,
  frame: SendMessageFrame,
): Promise<SendOutcome> {
  const [bus, ledger] = await Promise.all([deps.bus(), deps.ledger()]);
  // Membership, a remembered retry and the rate limit in one Redis round trip; a membership Redis
  // does not remember is asked of DynamoDB, and then the rest is asked again.
  let admitted = await bus.admit(caller, frame.clientMsgId, deps.rateLimit, frame.roomId);
  if (admitted.status === "unknown-member") {
    if (!(await confirmMember(deps, caller.connectionId, frame.roomId))) {
      return notJoined(deps, caller.userId, frame.roomId);
    }
    admitted = await bus.admit(caller, frame.clientMsgId, deps.rateLimit);
  }
  const textDigest = digestOf(frame.text);
  if (admitted.status === "duplicate") {
    const { sent, unlogged } = admitted;
    if (sent.roomId !== frame.roomId || sent.textDigest !== textDigest)
      return { ok: false, code: "CONFLICT" };
    if (unlogged) await appendToLog(deps, unlogged);
    return { ok: true, messageId: sent.messageId, seq: sent.seq };
  }
  // A refused send costs no DynamoDB read: a flood stays in Redis. (A retry Redis forgot that is
  // refused now is answered when it comes again.)
  if (admitted.status === "rate-limited") return { ok: false, code: "RATE_LIMITED" };
  const seq = await ledger.nextSeq(frame.roomId, () => seedRoom(deps, frame.roomId));
  const message: ChatMessage = {
    messageId: (deps.newId ?? newMessageId)(),
    roomId: frame.roomId,
    seq,
    senderId: caller.userId,
    ...(caller.name !== undefined ? { senderName: caller.name } : {}),
    text: frame.text,
    sentAt: new Date((deps.now ?? Date.now)()).toISOString(),
    clientMsgId: frame.clientMsgId,
  };
  const recorded = await ledger.recordSend({ ...message, textDigest });
  if (!recorded.recorded) {
    // The ledger holds this send already (a retry Redis lost, or the same send racing this one): the
    // seq just issued carries nothing. Best effort: a seq left unskipped only holds the room's
    // stream until the fan-out releases it.
    await bus.skip(frame.roomId, seq).catch(() => undefined);
    return resend(deps, caller, frame, recorded.existing, textDigest);
  }
  await bus.publish(message, textDigest);
  await appendToLog(deps, message);
  return { ok: true, messageId: message.messageId, seq: message.seq };
}

/**
 * A retry that Redis did not remember but the ledger did: answered with its first ack. It is put on
 * the fan-out stream only where the stream still waits for its seq (its first attempt failed before
 * Redis had it), and appended to Kafka again (the persister keeps one copy per messageId).
 */
async function resend(
  deps: SendDeps,
  caller: Caller,
  frame: SendMessageFrame,
  first: SendRecord,
  textDigest: string,
): Promise<SendOutcome> {
  if (first.roomId !== frame.roomId || first.textDigest !== textDigest)
    return { ok: false, code: "CONFLICT" };
  const message: ChatMessage = {
    messageId: first.messageId,
    roomId: first.roomId,
    seq: first.seq,
    senderId: caller.userId,
    ...(caller.name !== undefined ? { senderName: caller.name } : {}),
    text: frame.text,
    sentAt: first.sentAt,
    clientMsgId: frame.clientMsgId,
  };
  await (await deps.bus()).publish(message, textDigest, true);
  await appendToLog(deps, message);
  return { ok: true, messageId: message.messageId, seq: message.seq };
}

/** Part of a room's history, and whether it stops short of a range storage has not caught up with. */
interface Found {
  messages: ChatMessage[];
  /** Messages exist beyond `messages` that PostgreSQL does not hold yet and Redis no longer does. */
  lagging: boolean;
}

/**
 * History in ascending seq. Recent messages come from Redis, older ones from PostgreSQL; the answer
 * is the same either way. Never skips: where PostgreSQL lags behind what Redis still keeps, the page
 * stops at that range with `hasMore` (the client asks again and finds it once stored). Answers fewer
 * than `limit` (with hasMore) when the frame would pass the gateway's message size limit.
 */
export async function getHistory(
  deps: HistoryDeps,
  caller: Caller,
  frame: GetHistoryFrame,
): Promise<HistoryOutcome> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  if (!(await isMember(deps, caller.connectionId, frame.roomId))) {
    return notJoined(deps, caller.userId, frame.roomId);
  }
  const limit = frame.limit ?? HISTORY_DEFAULT_LIMIT;
  const forward = frame.afterSeq !== undefined;
  const found = forward
    ? await pageForward(deps, frame.roomId, frame.afterSeq ?? 0, limit + 1)
    : await pageBackward(deps, frame.roomId, frame.beforeSeq ?? Number.POSITIVE_INFINITY, limit + 1);
  const hasMore = found.lagging || found.messages.length > limit;
  const page = forward
    ? found.messages.slice(0, limit)
    : found.messages.slice(Math.max(0, found.messages.length - limit));
  const fitted = fitPage(page, forward);
  return { ok: true, messages: fitted.frames, hasMore: hasMore || fitted.cut };
}

/**
 * A page's frames under the gateway's message size limit, dropping from the far end of the
 * direction asked; `cut` when some were dropped.
 */
export function fitPage(page: ChatMessage[], forward: boolean): { frames: MessageFrame[]; cut: boolean } {
  let frames = page.map(toMessageFrame);
  const sizes = frames.map((f) => Buffer.byteLength(JSON.stringify(f)) + 1);
  let bytes = sizes.reduce((a, b) => a + b, 200);
  let cut = false;
  while (frames.length > 0 && bytes > MAX_RESPONSE_BYTES) {
    cut = true;
    bytes -= (forward ? sizes.pop() : sizes.shift()) ?? 0;
    frames = forward ? frames.slice(0, -1) : frames.slice(1);
  }
  return { frames, cut };
}

/**
 * The oldest `count` messages with seq > afterSeq: from PostgreSQL up to where Redis's recent history
 * begins, then from Redis. If PostgreSQL ends before Redis begins, the messages between are stored
 * nowhere this can read yet (the persister lags): the page ends there.
 */
export async function pageForward(
  deps: Pick<ChatDeps, "bus" | "history">,
  roomId: string,
  afterSeq: number,
  count: number,
): Promise<Found> {
  const bus = await deps.bus();
  const floor = await bus.recentFloor(roomId);
  if (floor !== undefined && afterSeq + 1 >= floor) {
    return {
      messages: await bus.recentRange(roomId, afterSeq, Number.POSITIVE_INFINITY, count, "oldest"),
      lagging: false,
    };
  }
  const stored = await (await deps.history()).range(roomId, { afterSeq, limit: count });
  if (stored.length >= count || floor === undefined) return { messages: stored, lagging: false };
  // PostgreSQL holds nothing after `last`.
  const last = stored.at(-1)?.seq ?? afterSeq;
  if (last + 1 < floor) return { messages: stored, lagging: true };
  const recent = await bus.recentRange(
    roomId,
    last,
    Number.POSITIVE_INFINITY,
    count - stored.length,
    "oldest",
  );
  return { messages: [...stored, ...recent], lagging: false };
}

/**
 * The newest `count` messages with seq < beforeSeq, ascending: from Redis, then from PostgreSQL below
 * where Redis begins. If PostgreSQL has not stored up to there, the older part is left out.
 */
async function pageBackward(
  deps: Pick<ChatDeps, "bus" | "history">,
  roomId: string,
  beforeSeq: number,
  count: number,
): Promise<Found> {
  const bus = await deps.bus();
  const recent = await bus.recentRange(roomId, 0, beforeSeq, count, "newest");
  const lowest = recent[0]?.seq ?? beforeSeq;
  if (recent.length >= count || lowest <= 1) return { messages: recent, lagging: false };
  // Below `boundary` only PostgreSQL can answer; it must have stored everything up to it.
  const floor = recent.length > 0 ? lowest : await bus.recentFloor(roomId);
  const boundary = floor === undefined ? beforeSeq : Math.min(beforeSeq, floor);
  const history = await deps.history();
  const older = await history.range(roomId, {
    ...(Number.isFinite(boundary) ? { beforeSeq: boundary } : {}),
    limit: count - recent.length,
  });
  if (floor !== undefined && (older.at(-1)?.seq ?? 0) < boundary - 1) {
    // Seqs between the two are either stored later (lag) or were never a message; PostgreSQL's
    // highest seq tells which: past the boundary, the persister has passed them.
    if ((await history.maxSeq(roomId)) < boundary - 1) return { messages: recent, lagging: true };
  }
  return { messages: [...older, ...recent], lagging: false };
}
