/**
 * The Prisma message repository and the offline migrator against a real PostgreSQL (the run's
 * DATABASE_URL server; each suite works in a database of its own).
 */
import { Client } from "pg";
import {
  createMessageRepository,
  isPermanentWriteError,
  MessageConflictError,
  MissingTableError,
  type PostgresMessageRepository,
  UnstorableMessageError,
} from "../core/adapters/message-repository";
import type { ChatMessage } from "../core/schemas";
import { migrate, readMigrations } from "../prisma/migrate";
import { createTestDatabase, serverUrl, type TestDatabase, withDatabase } from "../prisma/test-database";

// Project-level testTimeout is not applied by jest to projects; these suites cross processes.
jest.setTimeout(120_000);

function message(
  roomId: string,
  seq: number,
  text = `message ${seq}`,
  extra: Partial<ChatMessage> = {},
): ChatMessage {
  return {
    messageId: `${roomId}-${seq}`,
    roomId,
    seq,
    senderId: "alice",
    senderName: "Alice",
    text,
    sentAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seq % 60, seq % 1000)).toISOString(),
    clientMsgId: `c-${roomId}-${seq}`,
    ...extra,
  };
}

describe("PostgresMessageRepository", () => {
  let db: TestDatabase;
  let repo: PostgresMessageRepository;

  beforeAll(async () => {
    db = await createTestDatabase("repo_test");
    repo = createMessageRepository(db.url);
    await repo.assertReady();
  });
  afterAll(async () => {
    await repo?.disconnect();
    await db?.drop();
  });

  test("insertMany writes each message once and answers the rows written", async () => {
    const batch = [1, 2, 3].map((s) => message("once", s));
    expect(await repo.insertMany(batch)).toBe(3);
    expect(await repo.insertMany(batch)).toBe(0);
    expect(await repo.insertMany([...batch, message("once", 4)])).toBe(1);
    expect(await repo.insertMany([])).toBe(0);
    const stored = await repo.range("once", { limit: 100 });
    expect(stored.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(stored[0]).toEqual(batch[0]);
  });

  test("a different message at a taken (roomId, seq) is a conflict, not a success; the rest are written", async () => {
    await repo.insertMany([message("clash", 1)]);
    const intruder = { ...message("clash", 1), messageId: "intruder" };
    const error = await repo.insertMany([intruder, message("clash", 2)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageConflictError);
    const conflict = error as MessageConflictError;
    expect(conflict.retriable).toBe(false);
    expect(conflict.written).toBe(1);
    expect(conflict.conflicts.map((c) => c.message.messageId)).toEqual(["intruder"]);
    expect(conflict.conflicts[0]?.reason).toContain("clash-1");
    const stored = await repo.range("clash", { limit: 10 });
    expect(stored.map((m) => m.messageId)).toEqual(["clash-1", "clash-2"]);
  });

  test("the same messageId at another (roomId, seq) is a conflict too", async () => {
    await repo.insertMany([message("moved", 1)]);
    const moved = { ...message("moved", 7), messageId: "moved-1" };
    const error = await repo.insertMany([moved]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageConflictError);
    expect(await repo.maxSeq("moved")).toBe(1);
  });

  test("text is stored byte for byte", async () => {
    const texts = [
      "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 and flags 🇫🇷",
      "RTL: مرحبا بالعالم שלום עולם",
      "combining: e\u0301 a\u030A n\u0303 \u1E9B\u0323 Å vs A\u030A",
      "controls: \u0001\u0007\b\t\n\u000b\f\r\u001b\u007f\u0085 end",
      "  leading and trailing white space  ",
      "zero width \u200b\u200c\u200d\ufeff and astral 𝕏 𐍈",
      "quotes ' \" \\ ; -- /* */ $1 %s",
      'CSV: a, b, "c", "" and a lone "',
      "\\.",
      "line\n\\.\nafter COPY's end marker on a line of its own",
      "\\N and NULL and null",
      "x".repeat(3990) + "🎉".repeat(10),
    ];
    const batch = texts.map((t, i) => message("bytes", i + 1, t, { senderName: "Zoë 🌟 ناصر" }));
    await repo.insertMany(batch);
    const stored = await repo.range("bytes", { limit: 100 });
    expect(stored).toHaveLength(texts.length);
    stored.forEach((m, i) => {
      expect(Buffer.from(m.text, "utf8").equals(Buffer.from(texts[i] as string, "utf8"))).toBe(true);
      expect(m.senderName).toBe("Zoë 🌟 ناصر");
    });
  });

  test("a message PostgreSQL cannot store as given is refused before anything is written", async () => {
    const withNul = message("nul", 2, "a\u0000b");
    const lone = message("nul", 3, "lone \ud800 surrogate");
    for (const bad of [withNul, lone]) {
      const error = await repo.insertMany([message("nul", 1), bad]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnstorableMessageError);
      expect((error as UnstorableMessageError).messageId).toBe(bad.messageId);
    }
    expect(await repo.maxSeq("nul")).toBe(0);
  });

  test("a value the database refuses fails the whole statement as permanent; an unreachable database is transient", async () => {
    const tooLong = message("refused", 2, "fine", { senderId: "x".repeat(65) });
    const badTime = message("refused", 3, "fine", { sentAt: "not a time" });
    for (const bad of [tooLong, badTime]) {
      const error = await repo.insertMany([message("refused", 1), bad]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(isPermanentWriteError(error)).toBe(true);
    }
    expect(await repo.maxSeq("refused")).toBe(0);

    const nowhere = createMessageRepository("postgresql://postgres@127.0.0.1:1/none");
    try {
      const error = await nowhere.insertMany([message("refused", 1)]).catch((e: unknown) => e);
      expect(String((error as Error).message)).toMatch(/ECONNREFUSED/);
      expect(isPermanentWriteError(error)).toBe(false);
    } finally {
      await nowhere.disconnect();
    }
  });

  test("a new batch is written by one COPY; a replayed one by the INSERT, which writes only the new rows", async () => {
    const before = { ...repo.writes };
    const batch = [1, 2, 3].map((s) => message("paths", s));
    expect(await repo.insertMany(batch)).toBe(3);
    expect(repo.writes).toEqual({ ...before, copied: before.copied + 1 });
    expect(await repo.insertMany([...batch, message("paths", 4)])).toBe(1);
    expect(repo.writes).toEqual({
      copied: before.copied + 1,
      insertedAfterCopyRefused: before.insertedAfterCopyRefused + 1,
    });
    expect((await repo.range("paths", { limit: 10 })).map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  test("an empty senderName stays empty, an absent one stays absent", async () => {
    const named = message("names", 1, "named", { senderName: "" });
    const { senderName: _, ...anonymous } = message("names", 2);
    await repo.insertMany([named, anonymous]);
    const stored = await repo.range("names", { limit: 10 });
    expect(stored).toEqual([named, anonymous]);
  });

  test("senderName is optional and sentAt keeps its milliseconds", async () => {
    const { senderName: _, ...anonymous } = message("anon", 1);
    anonymous.sentAt = "2026-03-04T05:06:07.089Z";
    await repo.insertMany([anonymous]);
    const [stored] = await repo.range("anon", { limit: 1 });
    expect(stored).toEqual(anonymous);
    expect(stored && "senderName" in stored).toBe(false);
  });

  describe("range", () => {
    const room = "hist";
    beforeAll(async () => {
      // Seqs 1..30 with a gap at 10..12, written out of order and in two batches.
      const seqs = Array.from({ length: 30 }, (_, i) => i + 1).filter((s) => s < 10 || s > 12);
      await repo.insertMany(seqs.filter((s) => s % 2 === 0).map((s) => message(room, s)));
      await repo.insertMany(seqs.filter((s) => s % 2 === 1).map((s) => message(room, s)));
      await repo.insertMany([message("hist-other", 5), message("hist-other", 50)]);
    });
    const seqsOf = (ms: ChatMessage[]) => ms.map((m) => m.seq);

    test("neither bound: the newest `limit`, ascending", async () => {
      expect(seqsOf(await repo.range(room, { limit: 3 }))).toEqual([28, 29, 30]);
      expect(seqsOf(await repo.range(room, { limit: 100 }))).toHaveLength(27);
    });
    test("afterSeq: the oldest `limit` with seq > afterSeq, ascending", async () => {
      expect(seqsOf(await repo.range(room, { afterSeq: 0, limit: 3 }))).toEqual([1, 2, 3]);
      expect(seqsOf(await repo.range(room, { afterSeq: 8, limit: 3 }))).toEqual([9, 13, 14]);
      expect(seqsOf(await repo.range(room, { afterSeq: 28, limit: 5 }))).toEqual([29, 30]);
      expect(await repo.range(room, { afterSeq: 30, limit: 5 })).toEqual([]);
    });
    test("beforeSeq: the newest `limit` with seq < beforeSeq, ascending", async () => {
      expect(seqsOf(await repo.range(room, { beforeSeq: 14, limit: 3 }))).toEqual([8, 9, 13]);
      expect(seqsOf(await repo.range(room, { beforeSeq: 3, limit: 5 }))).toEqual([1, 2]);
      expect(await repo.range(room, { beforeSeq: 1, limit: 5 })).toEqual([]);
      expect(seqsOf(await repo.range(room, { beforeSeq: 1000, limit: 2 }))).toEqual([29, 30]);
    });
    test("other rooms never leak in; an empty room answers nothing", async () => {
      expect(seqsOf(await repo.range("hist-other", { limit: 10 }))).toEqual([5, 50]);
      expect(await repo.range("nobody-here", { limit: 10 })).toEqual([]);
      expect(await repo.range(room, { limit: 0 })).toEqual([]);
    });
    test("maxSeq answers the highest stored seq, 0 when none", async () => {
      expect(await repo.maxSeq(room)).toBe(30);
      expect(await repo.maxSeq("hist-other")).toBe(50);
      expect(await repo.maxSeq("nobody-here")).toBe(0);
    });
    test("seqs past 2^31 round-trip as numbers", async () => {
      const big = 2 ** 40 + 3;
      await repo.insertMany([message("big", big)]);
      expect(await repo.maxSeq("big")).toBe(big);
      expect(seqsOf(await repo.range("big", { afterSeq: big - 1, limit: 1 }))).toEqual([big]);
    });
  });
});

describe("migrate", () => {
  const created: string[] = [];
  const base = serverUrl();
  async function dropAll(): Promise<void> {
    const admin = new Client({ connectionString: withDatabase(base, "postgres") });
    await admin.connect();
    try {
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  }
  afterAll(dropAll);

  test("creates the database, applies every migration once, records them as Prisma does, and is idempotent", async () => {
    const name = `migrate_once_${process.pid}`;
    created.push(name);
    const url = withDatabase(base, name);
    const lines: string[] = [];
    const files = await readMigrations();
    expect(files.length).toBeGreaterThan(0);
    expect(await migrate(url, { log: (l) => lines.push(l) })).toEqual(files.map((f) => f.name));
    expect(lines.some((l) => l.includes(`created database ${name}`))).toBe(true);
    expect(await migrate(url)).toEqual([]);

    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`,
      );
      expect(rows).toEqual(
        files.map((f) => ({
          migration_name: f.name,
          checksum: f.checksum,
          finished_at: expect.any(Date),
          rolled_back_at: null,
          applied_steps_count: 1,
        })),
      );
      expect(files[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
      const table = await client.query(`SELECT to_regclass('messages')::text AS t`);
      expect(table.rows[0].t).toBe("messages");
    } finally {
      await client.end();
    }
  });

  test("several runners at once on a database that does not exist yet: it is created and migrated exactly once", async () => {
    const name = `migrate_race_${process.pid}`;
    created.push(name);
    const url = withDatabase(base, name);
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(url)));
    const files = await readMigrations();
    expect(results.flat().sort()).toEqual(files.map((f) => f.name).sort());
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM "_prisma_migrations"`);
      expect(rows[0].n).toBe(files.length);
    } finally {
      await client.end();
    }
  });

  test("a repository on a database without the table says to run the migrations", async () => {
    const name = `migrate_none_${process.pid}`;
    created.push(name);
    const admin = new Client({ connectionString: withDatabase(base, "postgres") });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
    await admin.end();
    const repo = createMessageRepository(withDatabase(base, name));
    try {
      const error = await repo.assertReady().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MissingTableError);
      expect((error as Error).message).toContain("npm run db:migrate");
    } finally {
      await repo.disconnect();
    }
  });
});
