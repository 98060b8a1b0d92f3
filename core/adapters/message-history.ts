/**
 * Reads of the messages table (history pages and a room's highest seq) over a plain `pg` pool.
 * The Lambda handlers read through this alone, so their bundles carry `pg` and not the Prisma client
 * (megabytes, and a slower cold start); the persister's Prisma repository delegates its reads here
 * too, over the same pool, so one piece of SQL serves both.
 */
import { Pool } from "pg";
import { config } from "../config";
import { DependencyError } from "../errors";
import { createLogger } from "../logger";
import type { HistoryQuery, MessageHistory } from "../ports";
import type { ChatMessage } from "../schemas";

interface Row {
  message_id: string;
  room_id: string;
  seq: string;
  sender_id: string;
  sender_name: string | null;
  text: string;
  sent_at: Date;
  client_msg_id: string;
}

/** The messages table's columns, in the order every read and write of it names them. */
export const MESSAGE_COLUMNS =
  "message_id, room_id, seq, sender_id, sender_name, text, sent_at, client_msg_id";

function toMessage(row: Row): ChatMessage {
  const m: ChatMessage = {
    messageId: row.message_id,
    roomId: row.room_id,
    seq: Number(row.seq),
    senderId: row.sender_id,
    text: row.text,
    sentAt: row.sent_at.toISOString(),
    clientMsgId: row.client_msg_id,
  };
  if (row.sender_name !== null) m.senderName = row.sender_name;
  return m;
}

export class PgMessageHistory implements MessageHistory {
  constructor(readonly pool: Pool) {}

  private async query(sql: string, values: unknown[]): Promise<Row[]> {
    try {
      return (await this.pool.query<Row>(sql, values)).rows;
    } catch (cause) {
      throw new DependencyError("postgres", "reading messages from PostgreSQL failed", { cause });
    }
  }

  async range(roomId: string, query: HistoryQuery): Promise<ChatMessage[]> {
    const take = Math.max(0, Math.floor(query.limit));
    if (take === 0) return [];
    if (query.afterSeq !== undefined) {
      const rows = await this.query(
        `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3`,
        [roomId, String(query.afterSeq), take],
      );
      return rows.map(toMessage);
    }
    const rows =
      query.beforeSeq !== undefined
        ? await this.query(
            `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`,
            [roomId, String(query.beforeSeq), take],
          )
        : await this.query(
            `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 ORDER BY seq DESC LIMIT $2`,
            [roomId, take],
          );
    return rows.reverse().map(toMessage);
  }

  async maxSeq(roomId: string): Promise<number> {
    const rows = (await this.query("SELECT max(seq)::text AS seq FROM messages WHERE room_id = $1", [
      roomId,
    ])) as unknown as { seq: string | null }[];
    return rows[0]?.seq ? Number(rows[0].seq) : 0;
  }

  async disconnect(): Promise<void> {
    // The pool may be shared with Prisma's adapter, which can have ended it already.
    if (!this.pool.ended) await this.pool.end();
  }
}

/** Deadlines of a pool's connections and statements, in milliseconds. */
export interface PgTimeouts {
  /** Opening a connection (and waiting for a free one of the pool). */
  connectMs: number;
  /** One statement: PostgreSQL cancels it (statement_timeout), and the client gives up on it (query_timeout). */
  statementMs: number;
}

/**
 * A pg pool on `databaseUrl` with the deadlines of {@link PgTimeouts}, for readers and writers alike.
 * The client-side query_timeout is a little longer than the server's statement_timeout, so a slow
 * statement is cancelled by the server (the connection stays usable) and only an unreachable server
 * leaves it to the client.
 */
export function createPgPool(databaseUrl: string, maxConnections: number, timeouts: PgTimeouts): Pool {
  const pool = new Pool({
    connectionString: databaseUrl,
    max: maxConnections,
    connectionTimeoutMillis: timeouts.connectMs,
    statement_timeout: timeouts.statementMs,
    query_timeout: timeouts.statementMs + 500,
  });
  // An idle client whose server went away (PostgreSQL restarted) emits "error" on the pool, and an
  // unheard "error" ends the process. The pool drops that client by itself; the next query opens a
  // new one, and a failing query still rejects for its caller.
  pool.on("error", (err) => createLogger("postgres").warn({ err }, "an idle PostgreSQL connection failed"));
  return pool;
}

/** The handlers' read deadlines: DATABASE_READ_TIMEOUT_MS and DATABASE_CONNECT_TIMEOUT_MS (3 s each). */
export function readTimeouts(): PgTimeouts {
  const db = config.database();
  return { connectMs: db.connectTimeoutMs, statementMs: db.readTimeoutMs };
}

/** A history reader on the database at `databaseUrl`, with a small pool (a Lambda serves one request at a time). */
export function createMessageHistory(
  databaseUrl: string,
  maxConnections = 2,
  timeouts: PgTimeouts = readTimeouts(),
): PgMessageHistory {
  return new PgMessageHistory(createPgPool(databaseUrl, maxConnections, timeouts));
}
