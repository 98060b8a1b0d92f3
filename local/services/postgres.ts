/**
 * A PostgreSQL of our own, from the machine's binaries, for the local stack and the tests: a fresh
 * cluster (initdb) with trust authentication, bound to 127.0.0.1 on a free port, with a database
 * `chat`. fsync is off because the fault-injection tests kill the process, never the OS: what a
 * commit wrote is in the page cache and survives; synchronous_commit stays on for the same reason.
 */
import { execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";
import { ServiceStartError } from "./errors";
import { findExecutable, freePort, ManagedProcess, runningService } from "./process";
import type { RunningService, StarterOptions } from "./types";

/** Options of {@link startPostgres}. */
export interface PostgresOptions extends StarterOptions {
  /** The directory holding `postgres` and `initdb`; default `pg_config --bindir`, else the newest /usr/lib/postgresql/<n>/bin. */
  binDir?: string;
  /** The port; default a free one from the OS. */
  port?: number;
  /** The database to create; default "chat". */
  database?: string;
}

const MISSING = "PostgreSQL not found: apt-get install postgresql, or set DATABASE_URL";

function hasServer(dir: string): boolean {
  return Boolean(findExecutable(join(dir, "postgres")) && findExecutable(join(dir, "initdb")));
}

/** Where the server binaries are, or undefined. pg_config alone may come from libpq-dev without a server. */
export function findPostgresBinDir(binDir?: string): string | undefined {
  if (binDir !== undefined) return hasServer(binDir) ? binDir : undefined;
  const pgConfig = findExecutable("pg_config");
  if (pgConfig) {
    try {
      const dir = execFileSync(pgConfig, ["--bindir"], { encoding: "utf8" }).trim();
      if (hasServer(dir)) return dir;
    } catch {
      // fall through to the Debian layout
    }
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = join(root, version, "bin");
    if (hasServer(dir)) return dir;
  }
  return undefined;
}

/** The uid and gid of the `postgres` user, for when we are root (initdb and postgres refuse root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  return uid && gid ? { uid: Number(uid), gid: Number(gid) } : undefined;
}

/** Runs a command to completion (as `user` when given); rejects with its output. */
function run(command: string, args: string[], user?: { uid: number; gid: number }): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { uid: user?.uid, gid: user?.gid, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    child.once("error", fail);
    child.once("exit", (code) =>
      code === 0 ? done() : fail(new Error(output.trim().split("\n").slice(-10).join("\n"))),
    );
  });
}

async function query<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Starts a PostgreSQL cluster in `<dataDir>` (initdb on first use, reused afterwards), waits until it
 * answers, creates the database `chat` when missing, and answers its URL
 * `postgresql://postgres@127.0.0.1:<port>/chat`. Throws a {@link ServiceStartError} when the binaries
 * are missing or the server dies while starting.
 */
export async function startPostgres(options: PostgresOptions): Promise<RunningService> {
  const bin = findPostgresBinDir(options.binDir);
  if (!bin) throw new ServiceStartError(MISSING);
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (process.getuid?.() === 0 && !user) {
    throw new ServiceStartError(
      "PostgreSQL will not run as root and there is no postgres user: apt-get install postgresql, or set DATABASE_URL",
    );
  }
  const dir = options.dataDir;
  const data = join(dir, "data");
  const sockets = join(dir, "sock");
  mkdirSync(dir, { recursive: true });
  mkdirSync(sockets, { recursive: true });
  if (user) {
    for (const d of [dir, sockets]) chownSync(d, user.uid, user.gid);
  }
  const database = options.database ?? "chat";
  const port = options.port ?? (await freePort());
  const timeoutMs = options.timeoutMs ?? 60_000;

  if (!existsSync(join(data, "PG_VERSION"))) {
    options.onProgress?.("creating a PostgreSQL cluster (initdb)");
    try {
      await run(
        join(bin, "initdb"),
        ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        user,
      );
    } catch (error) {
      const output = (error as Error).message;
      // As root we run initdb as the postgres user, who must be able to reach the data directory.
      const hint = /permission denied/i.test(output)
        ? ` (the postgres user needs to traverse every parent of ${dir}; pass a dataDir under /tmp)`
        : "";
      throw new ServiceStartError(`PostgreSQL initdb failed in ${data}${hint}:\n${output}`, {
        cause: error,
      });
    }
  }

  const settings = {
    fsync: "off",
    full_page_writes: "off",
    max_connections: "200",
    shared_buffers: "64MB",
    // Tests connect and disconnect a lot; a quick checkpoint cadence keeps crash recovery short.
    max_wal_size: "256MB",
    log_min_messages: "warning",
  };
  const server = new ManagedProcess({
    name: "PostgreSQL",
    command: join(bin, "postgres"),
    args: [
      "-D",
      data,
      "-p",
      String(port),
      "-h",
      "127.0.0.1",
      "-k",
      sockets,
      ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    ],
    env: { PATH: process.env.PATH, LANG: "C", LC_ALL: "C" },
    uid: user?.uid,
    gid: user?.gid,
    logFile: join(dir, "postgres.log"),
    // SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
    stopSignal: "SIGINT",
    stopTimeoutMs: 10_000,
  });
  const adminUrl = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const start = async () => {
    options.onProgress?.(`starting PostgreSQL on 127.0.0.1:${port}`);
    server.start();
    await server.waitUntil(() => query(adminUrl, (c) => c.query("select 1").then(() => true)), timeoutMs);
  };
  await start();
  try {
    await query(adminUrl, async (client) => {
      const found = await client.query("select 1 from pg_database where datname = $1", [database]);
      if (found.rowCount === 0) await client.query(`create database "${database.replaceAll('"', '""')}"`);
    });
  } catch (error) {
    await server.stop();
    throw new ServiceStartError(`PostgreSQL started but creating database ${database} failed`, {
      cause: error,
    });
  }
  return runningService("postgres", `postgresql://postgres@127.0.0.1:${port}/${database}`, server, start);
}
