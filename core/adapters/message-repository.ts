/**
 * The message table in PostgreSQL. Writes go through the `pg` pool (COPY, else one INSERT over column
 * arrays); Prisma, on the same pool through its `pg` driver adapter (no query engine binary), answers
 * the lookups that tell a replay from a conflict. Reads are message-history.ts's plain SQL.
 *
 * Writes are idempotent on messageId because Kafka replays happen. A different message claiming a
 * (roomId, seq) that is already taken is never treated as written: {@link MessageConflictError}
 * names it, and the caller (the persister) sends it to the dead-letter topic.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PrismaPg } from "@prisma/adapter-pg";
import { DatabaseError, type Pool } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { PrismaClient } from "../../prisma/generated/client";
import { config } from "../config";
import { ChatError } from "../errors";
import type { HistoryQuery, MessageRepository } from "../ports";
import type { ChatMessage } from "../schemas";
import { createPgPool, MESSAGE_COLUMNS, PgMessageHistory, type PgTimeouts } from "./message-history";

/** A message that collides with a stored row of another messageId on (roomId, seq). */
export interface MessageConflict {
  message: ChatMessage;
  /** The messageId already stored at that (roomId, seq), or the stored row's (roomId, seq) when the ids match but the place differs. */
  reason: string;
}

/**
 * Some messages of an insertMany call could not be stored because their (roomId, seq) belongs to
 * another message (or their messageId is stored at another place). Every other message of the call
 * was written before this was thrown. Permanent: retrying cannot succeed.
 */
export class MessageConflictError extends ChatError {
  override name = "MessageConflictError";
  readonly retriable = false;
  constructor(
    readonly conflicts: MessageConflict[],
    /** Rows the call did write. */
    readonly written: number,
  ) {
    super(`${conflicts.length} message(s) conflict with stored messages on (roomId, seq)`);
  }
}

/** A message that PostgreSQL can never store as given (NUL character, ill-formed Unicode). */
export class UnstorableMessageError extends ChatError {
  override name = "UnstorableMessageError";
  readonly retriable = false;
  constructor(
    readonly messageId: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`message ${messageId} cannot be stored: ${reason}`, options);
  }
}

/** The messages table does not exist: migrations have not been applied to this database. */
export class MissingTableError extends ChatError {
  override name = "MissingTableError";
  readonly retriable = false;
}

/**
 * Why PostgreSQL could never store this message as given, or undefined when it can. Text columns
 * refuse U+0000, and a lone surrogate would be silently replaced on encoding (not byte for byte).
 */
export function unstorableReason(m: ChatMessage): string | undefined {
  for (const [field, value] of Object.entries(m)) {
    if (typeof value !== "string") continue;
    if (value.includes("\u0000")) return `${field} holds a NUL character, which PostgreSQL text cannot store`;
    if (!value.isWellFormed()) return `${field} is not well-formed Unicode (lone surrogate)`;
  }
  return undefined;
}

/** COPY's CSV format, where an unquoted empty field is NULL and a quoted one ("") the empty string. */
export const COPY_MESSAGES = `COPY messages (${MESSAGE_COLUMNS}) FROM STDIN (FORMAT csv)`;

/** What makes a CSV field need quotes; a backslash too, so that no line can read as COPY's end marker. */
const CSV_SPECIAL = /[",\r\n\\]/;

function csvField(value: string | undefined): string {
  if (value === undefined) return "";
  return value === "" || CSV_SPECIAL.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The messages as the CSV lines of {@link COPY_MESSAGES}. */
export function copyRows(messages: ChatMessage[]): string {
  let out = "";
  for (const m of messages) {
    out += `${csvField(m.messageId)},${csvField(m.roomId)},${m.seq},${csvField(m.senderId)},${csvField(m.senderName)},${csvField(m.text)},${csvField(m.sentAt)},${csvField(m.clientMsgId)}\n`;
  }
  return out;
}

const INSERT_MANY = `
  INSERT INTO messages (${MESSAGE_COLUMNS})
  SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::bigint[], $4::varchar[], $5::varchar[],
                       $6::text[], $7::timestamptz[], $8::varchar[])
  ON CONFLICT DO NOTHING`;

/** {@link MessageRepository} on PostgreSQL: pg for the writes, Prisma for the conflict lookups. */
export class PostgresMessageRepository implements MessageRepository {
  /** insertMany calls written by one COPY, and those whose COPY was refused and went on to the INSERT. */
  readonly writes = { copied: 0, insertedAfterCopyRefused: 0 };

  constructor(
    private readonly prisma: PrismaClient,
    /** The pool under Prisma's adapter: the bulk insert uses it directly. */
    private readonly pool: Pool,
    /** Reads go through plain SQL on the same pool (see message-history.ts). */
    private readonly history: PgMessageHistory,
  ) {}

  /**
   * Writes the messages in one statement, skipping any whose messageId is stored already.
   * @returns the number of rows written.
   * @throws UnstorableMessageError before writing anything when a message can never be stored.
   * @throws MessageConflictError after writing the others, when some collide on (roomId, seq).
   */
  async insertMany(messages: ChatMessage[]): Promise<number> {
    if (messages.length === 0) return 0;
    for (const m of messages) {
      const reason = unstorableReason(m);
      if (reason) throw new UnstorableMessageError(m.messageId, reason);
    }
    // First COPY, all or nothing: PostgreSQL's bulk path, faster than the INSERT below
    // (`npm run bench -- --only persist` compares the persister with one COPY stream).
    // A batch that holds a message stored already (a Kafka replay) or one PostgreSQL refuses fails
    // as a whole and writes nothing; the INSERT then writes the rest and tells the cases apart.
    try {
      const copied = await this.copy(messages);
      this.writes.copied++;
      return copied;
    } catch (error) {
      if (!isPermanentWriteError(error)) throw error;
      this.writes.insertedAfterCopyRefused++;
    }
    // One statement over column arrays: PostgreSQL unpacks them, so a batch of thousands binds
    // eight parameters, not eight for every row, each built and bound on its own. It goes through
    // the pool Prisma's adapter runs on, not through $executeRaw, which adds work of its own per
    // row to the same statement (`npm run bench -- --only persist` measures the writer).
    // ON CONFLICT DO NOTHING skips both a replayed messageId and a taken (roomId, seq); the second
    // is told apart below, since it is data loss, not a replay.
    const result = await this.pool.query(INSERT_MANY, [
      messages.map((m) => m.messageId),
      messages.map((m) => m.roomId),
      messages.map((m) => String(m.seq)),
      messages.map((m) => m.senderId),
      messages.map((m) => m.senderName ?? null),
      messages.map((m) => m.text),
      messages.map((m) => m.sentAt),
      messages.map((m) => m.clientMsgId),
    ]);
    const count = result.rowCount ?? 0;
    if (count === messages.length) return count;
    const stored = await this.prisma.message.findMany({
      where: { messageId: { in: messages.map((m) => m.messageId) } },
      select: { messageId: true, roomId: true, seq: true },
    });
    const byId = new Map(stored.map((r) => [r.messageId, r]));
    const conflicts: MessageConflict[] = [];
    for (const m of messages) {
      const row = byId.get(m.messageId);
      if (!row) {
        const holder = await this.prisma.message.findUnique({
          where: { roomId_seq: { roomId: m.roomId, seq: BigInt(m.seq) } },
          select: { messageId: true },
        });
        conflicts.push({
          message: m,
          reason: `seq ${m.seq} of room ${m.roomId} is taken by message ${holder?.messageId ?? "(unknown)"}`,
        });
      } else if (row.roomId !== m.roomId || row.seq !== BigInt(m.seq)) {
        conflicts.push({
          message: m,
          reason: `messageId is stored at room ${row.roomId} seq ${row.seq}, not room ${m.roomId} seq ${m.seq}`,
        });
      }
    }
    if (conflicts.length > 0) throw new MessageConflictError(conflicts, count);
    return count;
  }

  /** Writes every message with one COPY, or none of them; resolves to the rows written. */
  private async copy(messages: ChatMessage[]): Promise<number> {
    const client = await this.pool.connect();
    // A connection that failed (rather than a statement PostgreSQL refused) is closed, not pooled.
    let broken = false;
    try {
      const stream = client.query(copyFrom(COPY_MESSAGES));
      await pipeline(Readable.from([copyRows(messages)]), stream);
      return stream.rowCount;
    } catch (error) {
      broken = !(error instanceof DatabaseError);
      throw error;
    } finally {
      client.release(broken);
    }
  }

  range(roomId: string, query: HistoryQuery): Promise<ChatMessage[]> {
    return this.history.range(roomId, query);
  }

  maxSeq(roomId: string): Promise<number> {
    return this.history.maxSeq(roomId);
  }

  /** Fails with a sentence when the messages table is missing (migrations not applied). */
  async assertReady(): Promise<void> {
    const rows = await this.prisma.$queryRaw<
      { found: string | null }[]
    >`SELECT to_regclass('messages')::text AS found`;
    if (!rows[0]?.found) {
      throw new MissingTableError(
        "The messages table does not exist in this database: apply the migrations first (npm run db:migrate)",
      );
    }
  }

  async disconnect(): Promise<void> {
    await this.prisma.$disconnect();
    await this.history.disconnect();
  }
}

/** Options of {@link createMessageRepository}. */
export interface MessageRepositoryOptions {
  /** Most connections the pool opens (default 5: one persister batch at a time, plus history reads). */
  maxConnections?: number;
  /** Connection and statement deadlines; default DATABASE_CONNECT_TIMEOUT_MS and DATABASE_WRITE_TIMEOUT_MS. */
  timeouts?: PgTimeouts;
}

/** A repository on the database at `databaseUrl` (postgresql://…). */
export function createMessageRepository(
  databaseUrl: string,
  options: MessageRepositoryOptions = {},
): PostgresMessageRepository {
  const db = config.database();
  const pool = createPgPool(
    databaseUrl,
    options.maxConnections ?? 5,
    // A batch's COPY takes seconds: the writes' deadline is the longer one of DATABASE_WRITE_TIMEOUT_MS.
    options.timeouts ?? { connectMs: db.connectTimeoutMs, statementMs: db.writeTimeoutMs },
  );
  return new PostgresMessageRepository(
    new PrismaClient({ adapter: new PrismaPg(pool) }),
    pool,
    new PgMessageHistory(pool),
  );
}

/** Driver adapter error kinds that say the data itself is refused; a retry cannot succeed. */
const PERMANENT_KINDS = new Set([
  "LengthMismatch",
  "ValueOutOfRange",
  "InvalidInputValue",
  "UniqueConstraintViolation",
  "NullConstraintViolation",
  "ForeignKeyConstraintViolation",
  "RestrictViolation",
  "InconsistentColumnData",
]);

/** SQLSTATE classes 22 (data exception, e.g. invalid byte sequence) and 23 (integrity violation). */
const PERMANENT_SQLSTATE = /^2[23]/;

/**
 * Whether a write failed because of the data (retrying cannot help: the message goes to the
 * dead-letter topic) rather than because of the database's state (connection refused or
 * terminated, serialization failure, shutdown, too many connections: retry). Anything not known
 * to be permanent is answered as transient, so that no message is ever skipped by mistake.
 */
export function isPermanentWriteError(error: unknown): boolean {
  if (error instanceof ChatError) return !error.retriable;
  // The bulk insert's errors come from pg itself, with the SQLSTATE in `code`.
  if (error instanceof DatabaseError)
    return typeof error.code === "string" && PERMANENT_SQLSTATE.test(error.code);
  const e = error as {
    name?: unknown;
    meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } };
  };
  if (e?.name === "PrismaClientValidationError") return true;
  const cause = e?.meta?.driverAdapterError?.cause;
  if (!cause || typeof cause.kind !== "string") return false;
  if (PERMANENT_KINDS.has(cause.kind)) return true;
  return cause.kind === "postgres" && typeof cause.code === "string" && PERMANENT_SQLSTATE.test(cause.code);
}
