/**
 * One port per outside system. Domain code depends on these interfaces only; each entry point wires
 * the real adapters (core/adapters/) in one composition module, and tests may pass others in.
 */
import type { ChatMessage } from "./schemas";

/** A connection as recorded on `$connect`. */
export interface ConnectionRecord {
  connectionId: string;
  userId: string;
  name?: string;
  /** Epoch milliseconds. */
  connectedAt: number;
  /** Epoch seconds after which DynamoDB's TTL may delete the record. */
  expiresAt: number;
  /** Connected with `batch=1`: accepts several frames in one, separated by "\n" (PROTOCOL.md). */
  batch?: boolean;
}

/** A member connection of a room. */
export interface Member {
  connectionId: string;
  /** The room's newest seq when the connection joined: it already knows of every message up to it. */
  joinedSeq: number;
}

/** Connection and membership records (DynamoDB). */
export interface ConnectionStore {
  putConnection(record: ConnectionRecord): Promise<void>;
  /** The user's connections recorded since `sinceMs` (epoch ms), by connectionId. */
  connectionsOf(userId: string, sinceMs: number): Promise<string[]>;
  /** Removes the connection and every membership it holds; answers the rooms it was in. */
  removeConnection(connectionId: string): Promise<string[]>;
  /** Records the membership; `joinedSeq` is the room's newest seq when it was joined (default 0). */
  joinRoom(
    connectionId: string,
    roomId: string,
    userId: string,
    expiresAt: number,
    joinedSeq?: number,
  ): Promise<void>;
  leaveRoom(connectionId: string, roomId: string): Promise<void>;
  isMember(connectionId: string, roomId: string): Promise<boolean>;
  /** The room's members, one page per item (one paginated Query, no Scan). */
  listMembers(roomId: string): AsyncIterable<Member[]>;
  /** Which of these connections accept batched frames (recorded at `$connect`); none when absent. */
  batchingConnections?(connectionIds: string[]): Promise<Set<string>>;
}

/** Public: anyone may join (every v1 room). Private: its owner and invitees. Direct: its two users. */
export type RoomKind = "public" | "private" | "direct";
/** A user's standing in a room: an invitee becomes a member when it joins. */
export type RoomRole = "owner" | "member" | "invited";

export interface RoomInfo {
  roomId: string;
  kind: RoomKind;
  owner?: string;
  /** Member users, invitees included. */
  memberCount: number;
}

/** A room as one of its users sees it. */
export interface UserRoom {
  roomId: string;
  kind: RoomKind;
  role: RoomRole;
  lastReadSeq: number;
}

/**
 * Rooms and the users who may enter them (DynamoDB). Rooms follow users, not connections: a user's
 * rooms are listed from any of its connections.
 */
export interface RoomDirectory {
  /** The room's record; undefined for a public room nobody has joined since rooms had records. */
  room(roomId: string): Promise<RoomInfo | undefined>;
  /**
   * Creates a room with its first users, unless the id is taken (false). Throws a RoomFullError when
   * the users are more than `maxMembers`.
   */
  createRoom(
    room: { roomId: string; kind: RoomKind; owner?: string },
    users: { userId: string; role: RoomRole }[],
    maxMembers: number,
  ): Promise<boolean>;
  userRoom(userId: string, roomId: string): Promise<UserRoom | undefined>;
  /**
   * Adds the user to the room (an invitee joining becomes a member), counting it against
   * `maxMembers`: answers the user's standing, or "full".
   */
  addUser(
    room: { roomId: string; kind: RoomKind },
    userId: string,
    role: "member" | "invited",
    maxMembers: number,
  ): Promise<UserRoom | "full">;
  /** Removes the user from the room; false when it was not there. */
  removeUser(roomId: string, userId: string): Promise<boolean>;
  userRooms(userId: string): Promise<UserRoom[]>;
  /** Moves the user's read position forward (never back); answers where it stands, or undefined when not a user of the room. */
  markRead(userId: string, roomId: string, seq: number): Promise<number | undefined>;
}

/** What the ledger holds of one send: enough to answer a retry with the first ack. */
export interface SendRecord {
  senderId: string;
  clientMsgId: string;
  messageId: string;
  roomId: string;
  seq: number;
  /** A digest of the text: a retry with another text is a conflict, not a duplicate. */
  textDigest: string;
  sentAt: string;
}

/**
 * The durable half of accepting a message (DynamoDB): each room's seq counter and each send's
 * (sender, clientMsgId) record. Redis is a cache on AWS and may lose its newest writes in a
 * failover; these may not be lost, or a seq would be issued twice and a retry stored twice.
 */
export interface SendLedger {
  /**
   * Issues the room's next seq: never the same one twice, never lower than one issued before. A
   * room the ledger has never counted starts after `seed()` (the highest seq stored elsewhere).
   */
  nextSeq(roomId: string, seed: () => Promise<number>): Promise<number>;
  /** The highest seq issued in the room, or undefined when the ledger has never counted it. */
  currentSeq(roomId: string): Promise<number | undefined>;
  /**
   * Records the send unless (sender, clientMsgId) is recorded already; then answers that record,
   * and nothing is written.
   */
  recordSend(record: SendRecord): Promise<{ recorded: true } | { recorded: false; existing: SendRecord }>;
}

/** Whose allowance a send or action draws from. */
export interface RateLimit {
  scope: "connection" | "user";
  perSecond: number;
  burst: number;
}

/** What a retry is answered with, and what tells it from a reuse of its clientMsgId. */
export type SentRecord = Pick<SendRecord, "messageId" | "roomId" | "seq" | "textDigest">;

export type AdmitOutcome =
  | { status: "admitted" }
  /** `unlogged`: the whole message, while Kafka has not confirmed it. */
  | { status: "duplicate"; sent: SentRecord; unlogged?: ChatMessage }
  | { status: "rate-limited" }
  /** Only when asked about a room: the bus does not remember the connection as its member. */
  | { status: "unknown-member" };

/**
 * The message bus (Redis): the fast, cached half of accepting a message and of reading history,
 * and the fan-out stream. Whatever it holds may be lost (a failover, an eviction) without losing
 * or doubling an acked message: the ledger and the event log hold what must not be.
 */
export interface MessageBus {
  /**
   * A retry the bus remembers is answered from it; anything else draws a token from the bucket.
   * With `memberOf`, first: a connection not remembered as that room's member draws nothing and is
   * answered unknown-member (ask the connection store).
   */
  admit(
    sender: { userId: string; connectionId: string },
    clientMsgId: string,
    rate: RateLimit,
    memberOf?: string,
  ): Promise<AdmitOutcome>;
  /**
   * Recent history, the fan-out stream in seq order, and the retry cache. A `retry` (a send the
   * ledger answered) goes on the stream only where the stream is known to be waiting for it.
   */
  publish(message: ChatMessage, textDigest: string, retry?: boolean): Promise<void>;
  /**
   * Puts a frame for some connections on the room's fan-out stream, in order with its messages (an
   * invitation, a removal). `forget` tells the fan-out to list the room's members again first.
   */
  notify(roomId: string, connectionIds: string[], frame: object, forget?: boolean): Promise<void>;
  /**
   * Puts a frame for every member connection of the room (but `except`) on its fan-out stream, in
   * order with its messages (presence, typing). One the fan-out reaches after `dropAfter` (epoch ms)
   * is dropped rather than delivered late.
   */
  announce(roomId: string, frame: object, options?: { except?: string; dropAfter?: number }): Promise<void>;
  /** Draws one token from the caller's bucket for a room action; false when it is empty. */
  meter(caller: { userId: string; connectionId: string }, rate: RateLimit): Promise<boolean>;
  /** A seq the ledger issued to no message (a conflicting retry): later seqs need not wait for it. */
  skip(roomId: string, seq: number): Promise<void>;
  markLogged(senderId: string, clientMsgId: string): Promise<void>;
  /** Where a room the ledger starts counting begins: its stream waits for `seq + 1` first. */
  startAt(roomId: string, seq: number): Promise<void>;
  /** The highest seq on the room's fan-out stream, or undefined when the bus does not know the room. */
  publishedSeq(roomId: string): Promise<number | undefined>;
  /** Whether the membership is remembered; false means "ask the connection store". */
  knownMember(roomId: string, connectionId: string): Promise<boolean>;
  rememberMember(roomId: string, connectionId: string): Promise<void>;
  forgetMember(roomIds: string[], connectionId: string): Promise<void>;
  bumpMembership(roomIds: string[]): Promise<void>;
  /** The lowest seq of the room's recent history, or undefined when it holds none. */
  recentFloor(roomId: string): Promise<number | undefined>;
  /** Messages with after < seq < before, the `limit` nearest `from`'s side, ascending. */
  recentRange(
    roomId: string,
    after: number,
    before: number,
    limit: number,
    from: "oldest" | "newest",
  ): Promise<ChatMessage[]>;
}

/** A user as presence shows it. */
export interface PresenceUser {
  userId: string;
  name?: string;
}

/**
 * Who is in each room (Redis): the connections present per room, and the users whose last
 * connection went away less than a grace ago (still shown, so a reconnect does not flap). Lost on a
 * Redis failover like any cache: connections re-enter as they join or resume.
 */
export interface PresenceRegistry {
  /**
   * The connection is in the room (idempotent). Answers true when its user was not shown in the room
   * before (it came online). Its liveness is checked `checkAfterMs` from now unless it was scheduled.
   */
  enter(roomId: string, connectionId: string, user: PresenceUser, checkAfterMs: number): Promise<boolean>;
  /**
   * The connection is no longer in the room. With `graceMs` 0, answers its user when that was the
   * user's last connection there (offline now); otherwise the user goes offline `graceMs` from now
   * unless one of its connections enters again, and nothing is answered.
   */
  leave(roomId: string, connectionId: string, graceMs: number): Promise<PresenceUser | undefined>;
  /** Every room the connection is present in, left with `graceMs`. */
  leaveAll(connectionId: string, graceMs: number): Promise<void>;
  /** The users shown in the room (those within their grace included). */
  list(roomId: string): Promise<PresenceUser[]>;
  /** Up to `max` users whose grace ended with no connection back: forgotten, and answered. */
  expired(max: number): Promise<{ roomId: string; user: PresenceUser }[]>;
  /** Up to `max` connections whose liveness check is due. */
  suspects(max: number): Promise<string[]>;
  /** Checks the connection again `afterMs` from now (it is still there). */
  recheck(connectionId: string, afterMs: number): Promise<void>;
  /** Whether the user's typing may be shown in the room now: once per `everyMs`. */
  mayShowTyping(roomId: string, userId: string, everyMs: number): Promise<boolean>;
}

/** What API Gateway knows of a connection (GetConnection). */
export interface ConnectionProbe {
  /** When the client last sent a frame (epoch ms), or "gone" (410). */
  lastActive(connectionId: string): Promise<number | "gone">;
}

/** Delivery to one connection through the API Gateway management API. */
export interface ConnectionGateway {
  /** Answers "gone" when the connection no longer exists (HTTP 410). Other failures throw. */
  post(connectionId: string, data: string): Promise<"ok" | "gone">;
}

/** The durable log of accepted messages (Kafka). */
export interface EventLog {
  /** Resolves once every in-sync replica has the records (acks = all). */
  append(messages: ChatMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

/** Query of a room's stored messages, ascending seq in the answer. */
export interface HistoryQuery {
  afterSeq?: number;
  beforeSeq?: number;
  limit: number;
}

/** Reads of the message table in PostgreSQL. */
export interface MessageHistory {
  /**
   * afterSeq: the oldest `limit` with seq > afterSeq; beforeSeq: the newest `limit` with
   * seq < beforeSeq; neither: the newest `limit`. Always answered in ascending seq.
   */
  range(roomId: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /** The room's highest stored seq, 0 when none. */
  maxSeq(roomId: string): Promise<number>;
  disconnect(): Promise<void>;
}

/** The message table in PostgreSQL, written by the persister. */
export interface MessageRepository extends MessageHistory {
  /** Writes the messages; a message already stored (same messageId) is skipped. Answers rows written. */
  insertMany(messages: ChatMessage[]): Promise<number>;
}
