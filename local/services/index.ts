/**
 * The services the local stack and the integration tests need: Redis, Kafka, PostgreSQL and DynamoDB.
 * Each one given by the environment (REDIS_URL, KAFKA_BROKERS, DATABASE_URL, DYNAMODB_ENDPOINT) is used
 * as is; for each other one we start our own on a free port of 127.0.0.1, with its data under one
 * directory that is removed again on stop.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startDynamo } from "./dynamodb";
import { ServiceStartError } from "./errors";
import { startKafka } from "./kafka";
import { startPostgres } from "./postgres";
import { absolute, repoRoot } from "./process";
import { startRedis } from "./redis";
import type { RunningService } from "./types";

export { startDynamo } from "./dynamodb";
export { ServiceStartError } from "./errors";
export { DEFAULT_KAFKA_CACHE, DEFAULT_KAFKA_VERSIONS, fetchKafka, startKafka } from "./kafka";
export { findPostgresBinDir, startPostgres } from "./postgres";
export { startRedis } from "./redis";
export type { RunningService, StarterOptions } from "./types";

/** The four services and how to reach them. */
export interface LocalServices {
  /** The connection settings, ready to merge into a process's environment. */
  env: { REDIS_URL: string; KAFKA_BROKERS: string; DATABASE_URL: string; DYNAMODB_ENDPOINT: string };
  /** One entry per service, in the order redis, kafka, postgres, dynamodb; external ones have no pid. */
  services: RunningService[];
  /** Stops what we started and removes its data (unless kept). Idempotent. */
  stop(): Promise<void>;
}

type Name = "redis" | "kafka" | "postgres" | "dynamodb";

/** Options of {@link startLocalServices}. */
export interface LocalServicesOptions {
  /** Where to read the four URLs, KAFKA_HOME_CACHE and KAFKA_VERSION; default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Where our services keep their data; default `.cache/run/<pid>` in the repository. A relative path
   * is taken from the repository's root.
   */
  dataDir?: string;
  /** Which services are needed; default all four. One not needed gets an empty string in `env`. */
  need?: Partial<Record<Name, boolean>>;
  /** Progress for people, one line per call (the first Kafka fetch takes a while). */
  onProgress?: (line: string) => void;
  /** Keep the data directory on stop; default true for a dataDir given, false for the default one. */
  keepData?: boolean;
}

const VARIABLE: Record<Name, keyof LocalServices["env"]> = {
  redis: "REDIS_URL",
  kafka: "KAFKA_BROKERS",
  postgres: "DATABASE_URL",
  dynamodb: "DYNAMODB_ENDPOINT",
};
const NAMES: Name[] = ["redis", "kafka", "postgres", "dynamodb"];

const RUN_ROOT = join(repoRoot, ".cache", "run");

/**
 * Removes the default data directories of processes that are gone: one killed with SIGKILL had no
 * chance to remove its own, and they would pile up.
 */
function removeStaleRunDirs(): void {
  if (!existsSync(RUN_ROOT)) return;
  for (const entry of readdirSync(RUN_ROOT)) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      process.kill(Number(entry), 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ESRCH") {
        rmSync(join(RUN_ROOT, entry), { recursive: true, force: true });
      }
    }
  }
}

/** Handles started in this process, by data directory: starting twice answers the same services. */
const started = new Map<string, Promise<LocalServices>>();

function external(name: Name, url: string): RunningService {
  return { name, url, stop: async () => undefined };
}

/**
 * Starts, in parallel, each needed service the environment does not provide, and answers their URLs.
 * If any fails, the ones already started are stopped and its {@link ServiceStartError} is thrown.
 * Calling it again with the same data directory before stop() answers the same services.
 */
export function startLocalServices(opts: LocalServicesOptions = {}): Promise<LocalServices> {
  if (opts.dataDir === undefined) removeStaleRunDirs();
  const dataDir = absolute(opts.dataDir ?? join(RUN_ROOT, String(process.pid)));
  const existing = started.get(dataDir);
  if (existing) return existing;
  const work = start(dataDir, opts);
  started.set(dataDir, work);
  work.catch(() => started.delete(dataDir));
  return work;
}

async function start(dataDir: string, opts: LocalServicesOptions): Promise<LocalServices> {
  const env = opts.env ?? process.env;
  const keepData = opts.keepData ?? opts.dataDir !== undefined;
  const progress = opts.onProgress;
  const wanted = NAMES.filter((name) => opts.need?.[name] ?? true);
  const own = wanted.filter((name) => !env[VARIABLE[name]]);
  if (own.length > 0) mkdirSync(dataDir, { recursive: true });

  const starters: Record<Name, () => Promise<RunningService>> = {
    redis: () => startRedis({ dataDir: join(dataDir, "redis"), onProgress: progress }),
    kafka: () =>
      startKafka({
        dataDir: join(dataDir, "kafka"),
        onProgress: progress,
        cacheDir: env.KAFKA_HOME_CACHE ? absolute(env.KAFKA_HOME_CACHE) : undefined,
        version: env.KAFKA_VERSION || undefined,
      }),
    postgres: () => startPostgres({ dataDir: join(dataDir, "postgres"), onProgress: progress }),
    dynamodb: () => startDynamo({ onProgress: progress }),
  };

  const results = await Promise.allSettled(
    wanted.map(async (name): Promise<RunningService> => {
      const given = env[VARIABLE[name]];
      if (given) {
        progress?.(`${name}: using ${VARIABLE[name]} from the environment`);
        return external(name, given);
      }
      const service = await starters[name]();
      progress?.(`${name}: ready at ${service.url}`);
      return service;
    }),
  );
  const services = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await Promise.allSettled(services.map((s) => s.stop()));
      started.delete(dataDir);
      if (!keepData && own.length > 0) rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) {
    await stop();
    const reason = failure.reason;
    throw reason instanceof ServiceStartError
      ? reason
      : new ServiceStartError(`A local service failed to start: ${String(reason)}`, { cause: reason });
  }
  const url = (name: Name) => services.find((s) => s.name === name)?.url ?? "";
  return {
    env: {
      REDIS_URL: url("redis"),
      KAFKA_BROKERS: url("kafka"),
      DATABASE_URL: url("postgres"),
      DYNAMODB_ENDPOINT: url("dynamodb"),
    },
    services,
    stop,
  };
}
