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

/** Connection and membership records (DynamoDB). */
export interface ConnectionStore {
  putConnection(record: ConnectionRecord): Promise<void>;
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /** Removes the connection and every membership it holds; answers the rooms it was in. */
  removeConnection(connectionId: string): Promise<string[]>;
  joinRoom(connectionId: string, roomId: string, userId: string, expiresAt: number): Promise<void>;
  leaveRoom(connectionId: string, roomId: string): Promise<void>;
  isMember(connectionId: string, roomId: string): Promise<boolean>;
  /** The room's member connection ids, one page per item (one paginated Query, no Scan). */
  listMembers(roomId: string): AsyncIterable<string[]>;
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

/** The message table in PostgreSQL. */
export interface MessageRepository {
  /** Writes the messages; a message already stored (same messageId) is skipped. Answers rows written. */
  insertMany(messages: ChatMessage[]): Promise<number>;
  /**
   * afterSeq: the oldest `limit` with seq > afterSeq; beforeSeq: the newest `limit` with
   * seq < beforeSeq; neither: the newest `limit`. Always answered in ascending seq.
   */
  range(roomId: string, query: HistoryQuery): Promise<ChatMessage[]>;
  /** The room's highest stored seq, 0 when none. */
  maxSeq(roomId: string): Promise<number>;
  disconnect(): Promise<void>;
}
