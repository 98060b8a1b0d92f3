/**
 * Throw-away databases for tests: each suite gets its own database on the server the run's
 * DATABASE_URL points at, migrated with {@link migrate}, and dropped afterwards.
 */
import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { migrate } from "./migrate";

/** A migrated database of its own for one test suite. */
export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database (closing whatever connections are left on it). */
  drop(): Promise<void>;
}

/** The URL of the server a test run uses, from DATABASE_URL, else the machine's own PostgreSQL. */
export function serverUrl(env: Record<string, string | undefined> = process.env): string {
  return env.DATABASE_URL || "postgresql://postgres@127.0.0.1:5432/postgres";
}

/** Same server and credentials as `base`, another database name. */
export function withDatabase(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates (through migrate) a database named `<prefix>_<random>` and answers its URL. */
export async function createTestDatabase(prefix: string, base: string = serverUrl()): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(4).toString("hex")}`.toLowerCase();
  const url = withDatabase(base, name);
  await migrate(url);
  return {
    url,
    name,
    async drop() {
      const admin = new Client({ connectionString: withDatabase(base, "postgres") });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
