/**
 * A redis-server of our own, for the local stack and the tests. Every write is appended and fsynced
 * before Redis answers it (appendonly, appendfsync always, no RDB snapshots), so a SIGKILL followed by
 * restart() loses nothing that was acknowledged: the fault-injection tests rely on that.
 */
import { mkdirSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { ServiceStartError } from "./errors";
import { findExecutable, freePort, ManagedProcess, runningService } from "./process";
import type { RunningService, StarterOptions } from "./types";

/** Options of {@link startRedis}. */
export interface RedisOptions extends StarterOptions {
  /** The redis-server executable (a name on PATH or a path); default "redis-server". */
  binary?: string;
  /** The port; default a free one from the OS. */
  port?: number;
  /** Extra command-line settings, e.g. ["--maxmemory", "64mb"]. */
  args?: string[];
}

/** Answers whether a Redis on `port` replies +PONG (not -LOADING while it replays its log). */
function pings(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = new Socket();
    let reply = "";
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once("error", () => finish(false));
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1");
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });
}

/**
 * Starts redis-server bound to 127.0.0.1 with its files in `<dataDir>`, and waits until it answers
 * PING. Throws a {@link ServiceStartError} when redis-server is not installed or dies while starting.
 */
export async function startRedis(options: RedisOptions): Promise<RunningService> {
  const binary = findExecutable(options.binary ?? "redis-server");
  if (!binary) throw new ServiceStartError("Redis not found: apt-get install redis-server, or set REDIS_URL");
  const dir = options.dataDir;
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const timeoutMs = options.timeoutMs ?? 30_000;
  // The arguments name the port explicitly, so restart() comes back where clients expect it.
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--daemonize",
    "no",
    "--logfile",
    "",
    // As the CDK app sets on ElastiCache: a full Redis refuses writes rather than evicting keys.
    "--maxmemory-policy",
    "noeviction",
    ...(options.args ?? []),
  ];
  const server = new ManagedProcess({
    name: "Redis",
    command: binary,
    args,
    cwd: dir,
    logFile: join(dir, "redis.log"),
    stopSignal: "SIGTERM",
    stopTimeoutMs: 10_000,
  });
  const start = async () => {
    options.onProgress?.(`starting Redis on 127.0.0.1:${port}`);
    server.start();
    await server.waitUntil(() => pings(port), timeoutMs);
  };
  await start();
  return runningService("redis", `redis://127.0.0.1:${port}`, server, start);
}
