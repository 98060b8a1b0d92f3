/**
 * The services the local stack and the integration tests need: Redis, Kafka, PostgreSQL and DynamoDB.
 * Each one given by the environment (REDIS_URL, KAFKA_BROKERS, DATABASE_URL, DYNAMODB_ENDPOINT) is used
 * as is; for each other one we start our own on a free port of 127.0.0.1, with its data under one
 * directory that is removed again on stop (the tests), or kept and reused by the next start
 * (`persistent`, `npm run dev`).
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, sep } from "node:path";
import { sleep } from "../../core/retry";
import { supervise } from "../supervisor";
import { startDynamo } from "./dynamodb";
import { ServiceStartError } from "./errors";
import { startKafka } from "./kafka";
import { startPostgres } from "./postgres";
import { absolute, freePort, portFree, repoRoot } from "./process";
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
  /**
   * The data directory outlives this process and is reused by the next start (`npm run dev`): its
   * data is kept (DynamoDB's too, on disk), the ports of the last run are taken again where free, one
   * process at a time may use it, and services a killed previous owner left running are killed.
   */
  persistent?: boolean;
  /** With `persistent`: remove the data the folder holds before starting (an empty start). */
  fresh?: boolean;
  /**
   * Restart each service we started that dies unexpectedly, on the same port and data, after a
   * capped backoff, saying so through this function (one line per event).
   */
  supervise?: (line: string) => void;
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
 * Removes the default data directories of processes that are gone, and stops the services such a
 * process left running in them: one killed with SIGKILL (a bench or a test run ended by `kill -9`
 * or a timeout) had no chance to stop its own, and they would go on taking memory, ports and CPU.
 */
async function removeStaleRunDirs(): Promise<void> {
  if (!existsSync(RUN_ROOT)) return;
  for (const entry of readdirSync(RUN_ROOT)) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (startTime(Number(entry)) !== undefined) continue;
    const dir = join(RUN_ROOT, entry);
    await killLeftovers(processesIn(dir));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Processes whose working directory is inside `dir`: our services run in their data directories. */
function processesIn(dir: string): number[] {
  return readdirSync("/proc").flatMap((entry) =>
    /^\d+$/.test(entry) && Number(entry) !== process.pid && worksIn(Number(entry), dir)
      ? [Number(entry)]
      : [],
  );
}

/** Kills services a dead owner left (their process groups where they lead one), and waits until they are gone. */
async function killLeftovers(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  for (let i = 0; i < 50 && pids.some((pid) => startTime(pid) !== undefined); i++) await sleep(100);
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
  const dataDir = absolute(opts.dataDir ?? join(RUN_ROOT, String(process.pid)));
  const existing = started.get(dataDir);
  if (existing) return existing;
  const work = (opts.dataDir === undefined ? removeStaleRunDirs() : Promise.resolve()).then(() =>
    start(dataDir, opts),
  );
  started.set(dataDir, work);
  work.catch(() => started.delete(dataDir));
  return work;
}

/**
 * The start time of a running process (clock ticks since boot), which tells a pid reused since
 * apart; undefined when it is gone (or a zombie).
 */
function startTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the process runs with its working directory inside `dir` (our services run in theirs). */
function worksIn(pid: number, dir: string): boolean {
  try {
    const cwd = realpathSync(`/proc/${pid}/cwd`);
    const root = realpathSync(dir);
    return cwd === root || cwd.startsWith(root + sep);
  } catch {
    return false;
  }
}

interface OwnerRecord {
  pid: number;
  startTime?: string;
  /** The service processes the owner started, by name. */
  pids: Record<string, number>;
  ports: Record<string, number>;
}

const OWNER_FILE = "owner.json";

function readOwner(dataDir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dataDir, OWNER_FILE), "utf8")) as OwnerRecord;
  } catch {
    return undefined;
  }
}

/**
 * Takes a persistent data directory for this process: refuses when another live process uses it,
 * and kills (by pid, each verified to run inside the directory) the services a previous owner that
 * was killed without a chance to stop them left behind. Answers the previous run's ports.
 */
async function claimDataDir(dataDir: string): Promise<Record<string, number>> {
  const previous = readOwner(dataDir);
  if (!previous) return {};
  if (previous.pid > 0 && previous.pid !== process.pid && startTime(previous.pid) !== undefined) {
    if (previous.startTime === undefined || startTime(previous.pid) === previous.startTime) {
      throw new ServiceStartError(
        `The data folder ${dataDir} is in use by process ${previous.pid} (another npm run dev?): stop it, or use another folder (DEV_DATA_DIR)`,
      );
    }
  }
  await killLeftovers(
    Object.values(previous.pids ?? {}).filter(
      (pid) => pid !== process.pid && startTime(pid) !== undefined && worksIn(pid, dataDir),
    ),
  );
  return previous.ports ?? {};
}

async function choosePort(wanted: number | undefined): Promise<number> {
  if (wanted && (await portFree(wanted))) return wanted;
  return freePort();
}

async function start(dataDir: string, opts: LocalServicesOptions): Promise<LocalServices> {
  const env = opts.env ?? process.env;
  const persistent = opts.persistent ?? false;
  const keepData = persistent || (opts.keepData ?? opts.dataDir !== undefined);
  const progress = opts.onProgress;
  const wanted = NAMES.filter((name) => opts.need?.[name] ?? true);
  const own = wanted.filter((name) => !env[VARIABLE[name]]);
  if (own.length > 0) mkdirSync(dataDir, { recursive: true });

  // A persistent folder takes the ports of its last run where they are free, so URLs stay the same.
  const lastPorts = persistent && own.length > 0 ? await claimDataDir(dataDir) : {};
  if (persistent && opts.fresh && own.length > 0) {
    progress?.(`starting empty: removing the data in ${dataDir}`);
    for (const name of NAMES) rmSync(join(dataDir, name), { recursive: true, force: true });
  }
  const ports: Record<string, number> = {};
  const port = async (key: string) => {
    if (!persistent) return undefined;
    ports[key] = await choosePort(lastPorts[key]);
    return ports[key];
  };
  const owner = (pids: Record<string, number>) => {
    if (!persistent || own.length === 0) return;
    const record: OwnerRecord = { pid: process.pid, startTime: startTime(process.pid), pids, ports };
    writeFileSync(join(dataDir, OWNER_FILE), `${JSON.stringify(record, null, 2)}\n`);
  };
  owner({});

  const starters: Record<Name, () => Promise<RunningService>> = {
    redis: async () =>
      startRedis({ dataDir: join(dataDir, "redis"), onProgress: progress, port: await port("redis") }),
    kafka: async () =>
      startKafka({
        dataDir: join(dataDir, "kafka"),
        onProgress: progress,
        cacheDir: env.KAFKA_HOME_CACHE ? absolute(env.KAFKA_HOME_CACHE) : undefined,
        version: env.KAFKA_VERSION || undefined,
        port: await port("kafka"),
        controllerPort: await port("kafkaController"),
      }),
    postgres: async () =>
      startPostgres({
        dataDir: join(dataDir, "postgres"),
        onProgress: progress,
        port: await port("postgres"),
      }),
    dynamodb: async () =>
      startDynamo({
        onProgress: progress,
        port: await port("dynamodb"),
        path: persistent ? join(dataDir, "dynamodb") : undefined,
      }),
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
  const pids = () => Object.fromEntries(services.flatMap((s) => (s.pid ? [[s.name, s.pid]] : [])));
  owner(pids());
  const supervisors = opts.supervise
    ? services.flatMap((service) => {
        const { exited, restart } = service;
        if (!exited || !restart || service.pid === undefined) return [];
        const say = opts.supervise as (line: string) => void;
        return [
          supervise(
            service.name,
            {
              exited: () => exited.call(service),
              restart: async () => {
                await restart.call(service);
                owner(pids());
              },
            },
            { say },
          ),
        ];
      })
    : [];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      for (const supervisor of supervisors) supervisor.stop();
      await Promise.allSettled(services.map((s) => s.stop()));
      started.delete(dataDir);
      if (!keepData && own.length > 0) rmSync(dataDir, { recursive: true, force: true });
      // Nobody owns the folder now; the ports are kept for the next start.
      if (persistent && own.length > 0) {
        const record: OwnerRecord = { pid: 0, pids: {}, ports };
        writeFileSync(join(dataDir, OWNER_FILE), `${JSON.stringify(record, null, 2)}\n`);
      }
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
