/**
 * `npm run bench [-- --quick | --smoke] [--out DIR] [--only fanout,persist,coldstart,hops]`
 *
 * One run that compares this project with what users would pick instead, on their own machine, and
 * with what the machine can do at all: fan-out and latency against two Socket.IO servers joined by
 * the Redis adapter and against a plain `ws` server; persistence against one INSERT per message and
 * against COPY; handler bundle sizes and load times; and each hop of the message path alone. Writes
 * latest.json, latest.md and latest.svg to bench/results (or --out). Progress goes to stderr.
 *
 * Uses REDIS_URL, KAFKA_BROKERS, DATABASE_URL and DYNAMODB_ENDPOINT where set, else starts its own.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { Client } from "pg";
import { signToken } from "../core/auth";
import { loadPrices, type Projection, projectMonthlyCost } from "../local/gateway/cost";
import type { MeterSnapshot } from "../local/gateway/meter";
import { isolatedNames } from "../local/isolation";
import { DEFAULT_KAFKA_VERSIONS, startLocalServices } from "../local/services";
import { ROOT, startChild } from "./lib/child";
import { childrenMatching, type ProcessGroup } from "./lib/cpu";
import { type MachineInfo, machineInfo } from "./lib/machine";
import { progress } from "./lib/progress";
import { writeResults } from "./lib/report";
import { ratio, round } from "./lib/stats";
import {
  type ColdStartParams,
  type FloorResult,
  type HandlerResult,
  runColdStart,
} from "./scenarios/coldstart";
import { type FanoutParams, FLOOR_TARGET, runFanout, type TargetResult } from "./scenarios/fanout";
import { type HopsParams, type HopsResult, runHops } from "./scenarios/hops";
import { type PersistParams, type PersistResult, runPersist } from "./scenarios/persist";

export type Profile = "default" | "quick" | "smoke";
const SCENARIOS = ["hops", "coldstart", "fanout", "hotroom", "persist"] as const;
type Scenario = (typeof SCENARIOS)[number];

/** Each profile's sizes: default fits 10 minutes on 2 cores, quick 2 minutes, smoke a few seconds. */
export const PROFILES: Record<
  Profile,
  {
    fanout: FanoutParams;
    hotRoom: HotRoomParams;
    persist: PersistParams;
    coldStart: ColdStartParams;
    hops: HopsParams;
  }
> = {
  default: {
    fanout: {
      connections: 1000,
      rooms: 50,
      rates: [100, 300, 1000, 3000],
      stepSeconds: 8,
      drainSeconds: 6,
      warmSeconds: 3,
    },
    hotRoom: {
      connections: 1000,
      rooms: 1,
      rates: [20, 40],
      stepSeconds: 10,
      drainSeconds: 10,
      latencyMs: 15,
    },
    persist: { messages: 200_000, rooms: 50, persisterTimeoutSeconds: 150, perRowSeconds: 20 },
    coldStart: { loads: 11, warmRuns: 20 },
    hops: { samples: 300, throughputSeconds: 3, concurrency: 64 },
  },
  quick: {
    fanout: {
      connections: 100,
      rooms: 5,
      rates: [100, 300, 1000],
      stepSeconds: 2,
      drainSeconds: 2,
      warmSeconds: 1,
    },
    hotRoom: { connections: 200, rooms: 1, rates: [20], stepSeconds: 4, drainSeconds: 5, latencyMs: 15 },
    persist: { messages: 10_000, rooms: 20, persisterTimeoutSeconds: 30, perRowSeconds: 4 },
    coldStart: { loads: 3, warmRuns: 5, budgetSeconds: 3, handlers: ["authorizer", "send-message", "ping"] },
    hops: { samples: 100, throughputSeconds: 1, concurrency: 64 },
  },
  smoke: {
    fanout: { connections: 6, rooms: 2, rates: [10], stepSeconds: 1, drainSeconds: 5 },
    hotRoom: { connections: 6, rooms: 1, rates: [5], stepSeconds: 1, drainSeconds: 5, latencyMs: 15 },
    persist: { messages: 300, rooms: 3, persisterTimeoutSeconds: 60, perRowSeconds: 10 },
    coldStart: { loads: 1, warmRuns: 2, handlers: ["ping"] },
    hops: { samples: 10, throughputSeconds: 0.3, concurrency: 8 },
  },
};

export interface ColdStartResultSet {
  params: ColdStartParams;
  handlers: HandlerResult[];
  /** The runtime's SDK clients and each bundled client library, alone: what a handler using one cannot go below. */
  floors: FloorResult[];
}

/** Everything one run measured, as written to latest.json. */
export interface RunResult {
  profile: Profile;
  startedAt: string;
  durationSeconds: number;
  loadAverage: number[];
  machine: MachineInfo;
  fanout?: {
    params: FanoutParams;
    targets: TargetResult[];
    ratios: {
      target: string;
      offeredPerSec: number;
      p50OverSocketIo: number | null;
      p99OverSocketIo: number | null;
    }[];
    saturation: { target: string; overSocketIo: number | null; overCeiling: number | null }[];
    /** What AWS would bill for the chat target's whole run, and a month of 1,000 users like it. */
    bill?: { reading: MeterSnapshot; projection?: Projection };
  };
  /** One room of many members, the management API answering after a simulated AWS round trip. */
  hotRoom?: { params: HotRoomParams; target: TargetResult };
  persist?: PersistResult & { params: PersistParams };
  coldStart?: ColdStartResultSet;
  hops?: HopsResult & { params: HopsParams };
  failures: { scenario: string; error: string }[];
}

function parseArgs(argv: string[]): { profile: Profile; out: string; only: Set<Scenario> } {
  let profile: Profile = "default";
  let out = join(ROOT, "bench", "results");
  let only = new Set<Scenario>(SCENARIOS);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") profile = "quick";
    else if (a === "--smoke") profile = "smoke";
    else if (a === "--out") out = argv[++i] ?? out;
    else if (a === "--only") {
      const names = (argv[++i] ?? "").split(",").filter(Boolean);
      const bad = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
      if (bad.length > 0) throw new Error(`unknown scenario ${bad.join(", ")}: use ${SCENARIOS.join(", ")}`);
      only = new Set(names as Scenario[]);
    } else throw new Error(`unknown argument ${a}: use --quick, --smoke, --out DIR, --only a,b`);
  }
  return { profile, out, only };
}

async function fanoutAll(
  env: Record<string, string>,
  params: FanoutParams,
  services: { name: string; pid?: number }[],
): Promise<NonNullable<RunResult["fanout"]>> {
  const targets: TargetResult[] = [];
  let bill: NonNullable<RunResult["fanout"]>["bill"];
  // The services a target uses, where the bench started them (not those named by the environment),
  // and this process: the load generator's clients.
  const shared = (...names: string[]): ProcessGroup[] => [
    ...services.flatMap((s) => (s.pid && names.includes(s.name) ? [{ name: s.name, pids: [s.pid] }] : [])),
    { name: "bench (clients)", pids: [process.pid], rootsOnly: true },
  ];
  const pidsOf = (...children: { child: { pid?: number } }[]) =>
    children.flatMap((c) => (c.child.pid ? [c.child.pid] : []));
  // BENCH_TARGETS=chat (for a diagnosis) runs only the named targets; the ratios then stay empty.
  const wanted = new Set((process.env.BENCH_TARGETS ?? `ws,socketio,${FLOOR_TARGET},chat`).split(","));
  if (wanted.has("ws")) {
    const ws = await startChild<{ url: string }>("ws-ceiling", "bench/servers/ws-ceiling.ts", env);
    try {
      targets.push(
        await runFanout("ws", { protocol: "plain", url: ws.info.url }, params, () => [
          { name: "ws server", pids: pidsOf(ws) },
          ...shared(),
        ]),
      );
    } finally {
      await ws.stop();
    }
  }
  if (wanted.has("socketio")) {
    const key = `bench-sio-${randomBytes(3).toString("hex")}`;
    const sio = await Promise.all(
      ["a", "b"].map((n) =>
        startChild<{ url: string }>(`socketio-${n}`, "bench/servers/socketio.ts", {
          ...env,
          BENCH_SOCKETIO_KEY: key,
        }),
      ),
    );
    try {
      targets.push(
        await runFanout(
          "socketio",
          { protocol: "socketio", urls: sio.map((s) => s.info.url) },
          params,
          () => [{ name: "Socket.IO servers", pids: pidsOf(...sio) }, ...shared("redis")],
        ),
      );
    } finally {
      await Promise.all(sio.map((s) => s.stop()));
    }
  }
  if (wanted.has(FLOOR_TARGET)) {
    const id = `bfl${randomBytes(3).toString("hex")}`;
    progress("fan-out: starting the architecture's floor (floor-gateway.ts, floor-fanout.ts)");
    const gateway = await startChild<{ url: string; management: string }>(
      "floor-gateway",
      "bench/servers/floor-gateway.ts",
      { ...env, FLOOR_ID: id },
    );
    try {
      const fanout = await startChild<Record<string, never>>(
        "floor-fanout",
        "bench/servers/floor-fanout.ts",
        {
          ...env,
          FLOOR_ID: id,
          FLOOR_MANAGEMENT_URL: gateway.info.management,
        },
      );
      try {
        targets.push(
          await runFanout(FLOOR_TARGET, { protocol: "plain", url: gateway.info.url }, params, () => [
            { name: "floor: gateway + handler", pids: pidsOf(gateway) },
            { name: "floor: fan-out", pids: pidsOf(fanout) },
            ...shared("redis", "kafka", "dynamodb"),
          ]),
        );
      } finally {
        await fanout.stop();
      }
    } finally {
      await gateway.stop();
    }
  }
  if (wanted.has("chat")) {
    const id = `bf${randomBytes(3).toString("hex")}`;
    const secret = randomBytes(24).toString("base64url");
    const meterDir = join(ROOT, ".cache", "bench");
    mkdirSync(meterDir, { recursive: true });
    const meterFile = join(meterDir, `meter-${id}.json`);
    progress("fan-out: starting the local stack");
    const chat = await startChild<{ url: string }>("chat-stack", "bench/servers/chat-stack.ts", {
      ...env,
      JWT_SECRET: secret,
      ...isolatedNames(id),
      LOCAL_METER_FILE: meterFile,
      // info makes the gateway log each route's duration (`ms`) to .cache/bench/logs/chat-stack.log.
      LOG_LEVEL: process.env.BENCH_STACK_LOG_LEVEL ?? "warn",
    });
    try {
      targets.push(
        await runFanout(
          "chat",
          { protocol: "chat", url: chat.info.url, token: (u) => signToken(secret, u), batch: true },
          params,
          () => {
            const stack = pidsOf(chat);
            const root = stack[0] ?? 0;
            return [
              { name: "gateway emulator + handlers", pids: stack, rootsOnly: true },
              { name: "fan-out worker", pids: childrenMatching(root, "fanout.ts") },
              { name: "persister", pids: childrenMatching(root, "persister.ts") },
              ...shared("redis", "kafka", "postgres", "dynamodb"),
            ];
          },
        ),
      );
    } finally {
      await chat.stop();
    }
    if (existsSync(meterFile)) {
      const reading = JSON.parse(readFileSync(meterFile, "utf8")) as MeterSnapshot;
      bill = { reading, projection: projectMonthlyCost(reading, loadPrices()) };
    }
  }
  const byName = (n: string) => targets.find((t) => t.target === n);
  const socketio = byName("socketio");
  const ceiling = byName("ws");
  return {
    params,
    targets,
    ratios: targets.flatMap((t) =>
      t.steps.map((s) => {
        const base = socketio?.steps.find((b) => b.offeredPerSec === s.offeredPerSec);
        return {
          target: t.target,
          offeredPerSec: s.offeredPerSec,
          p50OverSocketIo: ratio(s.latencyMs.p50, base?.latencyMs.p50),
          p99OverSocketIo: ratio(s.latencyMs.p99, base?.latencyMs.p99),
        };
      }),
    ),
    saturation: targets.map((t) => ({
      target: t.target,
      overSocketIo: ratio(t.maxDeliveriesPerSec, socketio?.maxDeliveriesPerSec),
      overCeiling: ratio(t.maxDeliveriesPerSec, ceiling?.maxDeliveriesPerSec),
    })),
    bill,
  };
}

/** The hot room: one room of `connections` members (batch=1 clients), `@connections` after `latencyMs`. */
export interface HotRoomParams extends FanoutParams {
  latencyMs: number;
}

async function hotRoom(
  env: Record<string, string>,
  params: HotRoomParams,
): Promise<NonNullable<RunResult["hotRoom"]>> {
  const id = `bh${randomBytes(3).toString("hex")}`;
  const secret = randomBytes(24).toString("base64url");
  progress(`hot room: starting the local stack (@connections answered after ${params.latencyMs} ms)`);
  const chat = await startChild<{ url: string }>("chat-stack-hot", "bench/servers/chat-stack.ts", {
    ...env,
    JWT_SECRET: secret,
    ...isolatedNames(id),
    MANAGEMENT_LATENCY_MS: String(params.latencyMs),
    LOG_LEVEL: process.env.BENCH_STACK_LOG_LEVEL ?? "warn",
  });
  try {
    const target = await runFanout(
      "chat (hot room)",
      { protocol: "chat", url: chat.info.url, token: (u) => signToken(secret, u), batch: true },
      params,
    );
    return { params, target };
  } finally {
    await chat.stop();
  }
}

async function serviceVersions(env: Record<string, string>) {
  const versions: { kafka?: string; redis?: string; postgres?: string } = {
    kafka: process.env.KAFKA_VERSION || DEFAULT_KAFKA_VERSIONS?.[0],
  };
  try {
    const redis = new Redis(env.REDIS_URL as string, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    versions.redis = /redis_version:(\S+)/.exec(await redis.info("server"))?.[1];
    redis.disconnect();
  } catch {
    // Left unknown.
  }
  try {
    const pg = new Client({ connectionString: env.DATABASE_URL });
    await pg.connect();
    versions.postgres = String((await pg.query("show server_version")).rows[0]?.server_version ?? "");
    await pg.end();
  } catch {
    // Left unknown.
  }
  return versions;
}

/** Runs the benchmark; answers the result and the files written. */
export async function runBench(argv: string[]): Promise<{ result: RunResult; files: string[] }> {
  const { profile, out, only } = parseArgs(argv);
  const sizes = PROFILES[profile];
  const t0 = Date.now();
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";
  process.env.AWS_ACCESS_KEY_ID ??= "local";
  process.env.AWS_SECRET_ACCESS_KEY ??= "local";
  progress(
    `profile ${profile}: ${[...only].join(", ")}; starting the services (Redis, Kafka, PostgreSQL, DynamoDB)`,
  );
  // DynamoDB in a process of its own (unless the environment names one): its CPU then has a line of
  // its own, and its answers do not queue behind the clients' frames in this process.
  const dynalite = process.env.DYNAMODB_ENDPOINT
    ? undefined
    : await startChild<{ url: string }>("dynalite", "bench/servers/dynalite.ts", {});
  if (dynalite) process.env.DYNAMODB_ENDPOINT = dynalite.info.url;
  const services = await startLocalServices({ onProgress: (line) => progress(`services: ${line}`) });
  const measured = [
    ...services.services,
    ...(dynalite?.child.pid ? [{ name: "dynamodb", pid: dynalite.child.pid }] : []),
  ];
  const env: Record<string, string> = { ...services.env, AWS_REGION: process.env.AWS_REGION ?? "us-east-1" };
  const result: RunResult = {
    profile,
    startedAt: new Date(t0).toISOString(),
    durationSeconds: 0,
    loadAverage: os.loadavg().map((v) => round(v, 2)),
    machine: machineInfo(await serviceVersions(env)),
    failures: [],
  };
  const attempt = async (scenario: Scenario, work: () => Promise<void>) => {
    if (!only.has(scenario)) return;
    try {
      await work();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      progress(`${scenario} failed: ${message}`);
      result.failures.push({ scenario, error: message });
    }
  };
  try {
    await attempt("hops", async () => {
      result.hops = { params: sizes.hops, ...(await runHops(env, sizes.hops)) };
    });
    await attempt("coldstart", async () => {
      result.coldStart = { params: sizes.coldStart, ...(await runColdStart(env, sizes.coldStart)) };
    });
    await attempt("fanout", async () => {
      result.fanout = await fanoutAll(env, sizes.fanout, measured);
    });
    await attempt("hotroom", async () => {
      result.hotRoom = await hotRoom(env, sizes.hotRoom);
    });
    await attempt("persist", async () => {
      result.persist = { params: sizes.persist, ...(await runPersist(env as never, sizes.persist)) };
    });
  } finally {
    await services.stop();
    if (dynalite) {
      await dynalite.stop();
      delete process.env.DYNAMODB_ENDPOINT;
    }
  }
  result.durationSeconds = round((Date.now() - t0) / 1000, 1);
  const files = writeResults(out, result);
  progress(`done in ${result.durationSeconds} s; wrote ${files.join(", ")}`);
  return { result, files };
}

if (require.main === module) {
  runBench(process.argv.slice(2)).then(
    ({ result }) => process.exit(result.failures.length > 0 ? 1 : 0),
    (error: unknown) => {
      process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
