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
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
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
}

/** Delivery to one connection through the API Gateway management API. */
export interface ConnectionGateway {
  /** Answers "gone" when the connection no longer exists (HTTP 410). Other failures throw. */
  post(connectionId: string, data: string): Promise<"ok" | "gone">;
  close(connectionId: string): Promise<void>;
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
