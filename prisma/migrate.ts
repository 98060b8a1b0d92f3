/**
 * Applies the SQL migrations in prisma/migrations to a PostgreSQL database through `pg`, offline.
 *
 * Prisma's own `migrate deploy` needs its schema engine, which cannot be downloaded on every machine
 * this project runs on; this does the same job and keeps the same books, so either tool can be used
 * on a database afterwards: every migration is recorded in `_prisma_migrations` with Prisma's columns
 * and the sha256 of its file, and runners exclude each other with Prisma's advisory lock key.
 *
 * Run as `npm run db:migrate` (reads DATABASE_URL); `npm run dev`, the test harness and the deploy's
 * custom resource call {@link migrate}.
 */
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Client, type ClientConfig } from "pg";
import { createLogger } from "../core/logger";
import { databaseUrl } from "../core/secrets";

/** The key `prisma migrate` locks, so that our runner and Prisma's never apply at the same time. */
const PRISMA_ADVISORY_LOCK_KEY = 72707369;

/** The folder holding `<timestamp>_<name>/migration.sql`, the layout Prisma reads. */
export const MIGRATIONS_DIR = path.join(__dirname, "migrations");

/** A migration could not be read or applied, or the database's record of migrations is not one we can build on. */
export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Receives one human-readable line per step (never SQL text or credentials). */
  log?: (line: string) => void;
  /** Where the migration folders are; defaults to prisma/migrations beside this file. */
  migrationsDir?: string;
}

interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/** Prisma's own definition of its bookkeeping table, so `prisma migrate` recognises ours. */
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** Reads the migration folders in name order (their timestamp prefix orders them). */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (cause) {
    throw new MigrationError(`Cannot read the migrations folder ${dir}`, { cause });
  }
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const migrations: MigrationFile[] = [];
  for (const name of names) {
    const file = path.join(dir, name, "migration.sql");
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (cause) {
      throw new MigrationError(`Migration ${name} has no readable migration.sql`, { cause });
    }
    migrations.push({
      name,
      sql: bytes.toString("utf8"),
      checksum: createHash("sha256").update(bytes).digest("hex"),
    });
  }
  return migrations;
}

/** The database name of a postgres URL, and the same URL pointed at the `postgres` maintenance database. */
function maintenanceTarget(databaseUrl: string): { database: string; maintenanceUrl: string } {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch (cause) {
    throw new MigrationError("The database URL is not a valid postgresql:// URL", { cause });
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!database)
    throw new MigrationError("The database URL names no database (postgresql://user@host:port/db)");
  url.pathname = "/postgres";
  return { database, maintenanceUrl: url.toString() };
}

/** PostgreSQL's SQLSTATE of an error from `pg`, if it has one. */
function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

async function connect(config: ClientConfig): Promise<Client> {
  const client = new Client(config);
  try {
    await client.connect();
    return client;
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}

/** Connects to the target database, creating it first when it does not exist. */
async function connectCreatingDatabase(databaseUrl: string, log: (line: string) => void): Promise<Client> {
  try {
    return await connect({ connectionString: databaseUrl });
  } catch (error) {
    // 3D000 invalid_catalog_name: the database does not exist yet.
    if (sqlState(error) !== "3D000") {
      throw new MigrationError("Cannot connect to the database to migrate it", { cause: error });
    }
  }
  const { database, maintenanceUrl } = maintenanceTarget(databaseUrl);
  const admin = await connect({ connectionString: maintenanceUrl }).catch((cause: unknown) => {
    throw new MigrationError(
      `Database ${database} does not exist and the postgres database to create it from is unreachable`,
      {
        cause,
      },
    );
  });
  try {
    const quoted = `"${database.replaceAll('"', '""')}"`;
    await admin.query(`CREATE DATABASE ${quoted}`);
    log(`created database ${database}`);
  } catch (error) {
    // Another runner created it between our attempts: 42P04 duplicate_database, or the unique index
    // of pg_database (23505) when both CREATE DATABASE statements raced.
    const state = sqlState(error);
    if (state !== "42P04" && state !== "23505") {
      throw new MigrationError(`Cannot create database ${database}`, { cause: error });
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
  return connect({ connectionString: databaseUrl }).catch((cause: unknown) => {
    throw new MigrationError("Cannot connect to the database to migrate it", { cause });
  });
}

/**
 * Applies every migration not yet recorded, in order, each in its own transaction, under Prisma's
 * advisory lock (concurrent runners wait, then find nothing left to do). Creates the database when
 * it does not exist. Idempotent.
 *
 * @returns the names of the migrations this call applied, in order (empty when none was pending).
 * @throws MigrationError when the database cannot be reached, a migration fails (its transaction is
 *   rolled back and nothing is recorded), or a migration is recorded as failed by an earlier Prisma run.
 */
export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<string[]> {
  const log = opts.log ?? (() => undefined);
  const migrations = await readMigrations(opts.migrationsDir);
  const client = await connectCreatingDatabase(databaseUrl, log);
  const applied: string[] = [];
  try {
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const { rows } = await client.query<AppliedRow>(
        `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"`,
      );
      const failed = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
      if (failed) {
        throw new MigrationError(
          `Migration ${failed.migration_name} is recorded as started but not finished; resolve it (prisma migrate resolve) before migrating again`,
        );
      }
      const done = new Map(
        rows.filter((r) => r.finished_at !== null).map((r) => [r.migration_name, r.checksum]),
      );
      for (const m of migrations) {
        const checksum = done.get(m.name);
        if (checksum !== undefined) {
          if (checksum !== m.checksum) log(`warning: migration ${m.name} was edited after it was applied`);
          continue;
        }
        const started = Date.now();
        try {
          await client.query("BEGIN");
          await client.query(m.sql);
          await client.query(
            `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
             VALUES ($1, $2, $3, $4, now(), 1)`,
            [randomUUID(), m.checksum, m.name, new Date(started)],
          );
          await client.query("COMMIT");
        } catch (cause) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw new MigrationError(`Migration ${m.name} failed and was rolled back`, { cause });
        }
        applied.push(m.name);
        log(`applied ${m.name} in ${Date.now() - started} ms`);
      }
      if (applied.length === 0) log(`no pending migrations (${migrations.length} already applied)`);
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [PRISMA_ADVISORY_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return applied;
}

/** `npm run db:migrate`: migrates the database named by DATABASE_URL (or DATABASE_SECRET_ARN on AWS). */
async function main(): Promise<void> {
  const logger = createLogger("migrate");
  const url = await databaseUrl();
  const applied = await migrate(url, { log: (line) => logger.info(line) });
  logger.info({ applied }, `migrations done: ${applied.length} applied`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(
      error instanceof Error ? `${error.name}: ${error.message}` : error,
      (error as Error)?.cause ?? "",
    );
    process.exitCode = 1;
  });
}
