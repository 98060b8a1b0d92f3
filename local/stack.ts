/**
 * The whole backend on one machine: the services (from the environment, else our own), the table,
 * topics and schema, the API Gateway emulator in this process with the Lambda handlers in threads
 * beside it (lambda/host.ts), and the fan-out workers and persisters as child processes running the
 * same entry points as the images.
 * `npm run dev` and the integration tests both start it through here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { createDynamoClient, ensureTable } from "../core/adapters/dynamo";
import { createKafka, ensureTopics } from "../core/adapters/kafka";
import { config } from "../core/config";
import { createLogger } from "../core/logger";
import { DEFAULT_NAMES } from "../core/names";
import { sleep, waitAtMost } from "../core/retry";
import { closeServices, overrideServices, serviceOverrides } from "../core/wiring/services";
import { migrate } from "../prisma/migrate";
import {
  connectionTimesFromEnv,
  type GatewayOptions,
  handlerThreadsFromEnv,
  limitsFromEnv,
  Meter,
  type RunningGateway,
  startGateway,
} from "./gateway";
import { type DynamoMeterProxy, startDynamoMeterProxy } from "./gateway/dynamodb-meter";
import { ROUTE_RESPONSES } from "./lambda/handlers";
import { type HandlerThreads, localHandlers } from "./lambda/host";
import { meteringOverrides } from "./lambda/metering";
import { localJwtSecret } from "./secret";
import { type LocalServices, startLocalServices } from "./services";
import { freePort, killAllServices } from "./services/process";
import { type Supervisor, supervise } from "./supervisor";

export const ROOT = join(__dirname, "..");

export type WorkerKind = "fanout" | "persister";

export interface StackOptions {
  /** The environment to read service URLs and settings from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default LOCAL_PORT, else 3001; 0 takes any free port. */
  port?: number;
  stage?: string;
  fanoutWorkers?: number;
  persisters?: number;
  idleTimeoutMs?: number;
  maxLifetimeMs?: number;
  /** Extra variables for the handlers and workers (rate limits, shard count, …). */
  settings?: Record<string, string>;
  onProgress?: (line: string) => void;
  /**
   * Restart every worker and every service of ours that dies unexpectedly (capped backoff, same
   * ports and data), saying so through this function, one line per event. Default: no restarts
   * (the tests kill and restart what they choose).
   */
  supervise?: (line: string) => void;
  /** Where our services keep their data (see startLocalServices); default a temporary folder. */
  dataDir?: string;
  /** Keep and reuse the data folder across runs (`npm run dev`); see startLocalServices. */
  persistent?: boolean;
  /** With `persistent`: empty the data folder first. */
  fresh?: boolean;
  /** How long a worker may take to stop on SIGTERM before it is killed; default 10 s. */
  workerStopGraceMs?: number;
  /** Plain HTTP requests on the gateway's port outside the stage (the web client); see GatewayOptions. */
  httpHandler?: GatewayOptions["httpHandler"];
}

export interface WorkerProcess {
  kind: WorkerKind;
  id: string;
  /** The current process (a restarted worker gets a new one). */
  child: ChildProcess;
  /** Resolves with the exit code (or signal) once the current process has ended. */
  exited: Promise<number | string>;
}

export interface RunningStack {
  url: string;
  managementEndpoint: string;
  /** The environment the handlers and workers run with. */
  env: Record<string, string>;
  gateway: RunningGateway;
  /** What AWS would bill for the traffic (the gateway's, DynamoDB's through its counting proxy, Kafka's). */
  meter: Meter;
  services: LocalServices;
  workers: WorkerProcess[];
  /** Starts one more worker of the kind. */
  spawnWorker(kind: WorkerKind): WorkerProcess;
  /** Stops every worker (SIGTERM, then SIGKILL after a grace), the gateway and our services. */
  stop(): Promise<void>;
  /**
   * SIGKILLs at once, by pid, every worker and service process this stack started (synchronous):
   * the last resort when stop() takes too long.
   */
  killNow(): void;
}

let workerCount = 0;
/** The stack sets this process's environment, which its handlers read: one stack at a time. */
let stackRunning = false;

export async function startStack(opts: StackOptions = {}): Promise<RunningStack> {
  if (stackRunning) {
    throw new Error("a local stack is already running in this process; stop it before starting another");
  }
  stackRunning = true;
  try {
    return await start(opts);
  } catch (error) {
    stackRunning = false;
    throw error;
  }
}

async function start(opts: StackOptions): Promise<RunningStack> {
  const baseEnv = opts.env ?? process.env;
  const progress = opts.onProgress ?? (() => undefined);
  // The emulator's limits (GATEWAY_* settings), checked before anything starts.
  const settingsEnv = { ...baseEnv, ...opts.settings };
  const limits = limitsFromEnv(settingsEnv);
  // API Gateway's idle timeout and 2-hour cap, shorter where a test or a person asks.
  const times = connectionTimesFromEnv(settingsEnv);
  const idleTimeoutMs = opts.idleTimeoutMs ?? times.idleTimeoutMs;
  const maxLifetimeMs = opts.maxLifetimeMs ?? times.maxLifetimeMs;
  const metering = settingsEnv.LOCAL_METER !== "0";
  const handlerThreadCount = handlerThreadsFromEnv(settingsEnv);
  const meter = new Meter(limits.lambdaMemoryMb, (opts.persisters ?? 1) > 0 ? 1 : 0);
  const services = await startLocalServices({
    env: baseEnv,
    onProgress: progress,
    dataDir: opts.dataDir,
    persistent: opts.persistent,
    fresh: opts.fresh,
    supervise: opts.supervise,
  });
  let gateway: RunningGateway | undefined;
  let handlers: HandlerThreads | undefined;
  let dynamoMeter: DynamoMeterProxy | undefined;
  const priorOverrides = serviceOverrides();
  const workers: WorkerProcess[] = [];
  const supervisors: Supervisor[] = [];
  let stopping = false;
  try {
    const env: Record<string, string> = {
      AWS_REGION: baseEnv.AWS_REGION ?? "us-east-1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      TABLE_NAME: baseEnv.TABLE_NAME ?? "chat",
      LOG_LEVEL: baseEnv.LOG_LEVEL ?? "warn",
      ...services.env,
      // Presence asks about a connection once it has been idle as long as the gateway allows.
      ...(idleTimeoutMs !== undefined
        ? { PRESENCE_IDLE_SECONDS: String(Math.max(1, Math.ceil(idleTimeoutMs / 1000))) }
        : {}),
      ...opts.settings,
      JWT_SECRET: localJwtSecret(baseEnv),
    };
    if (metering) {
      // DynamoDB's read and write units: the handlers' clients count them themselves, the workers go
      // through a counting proxy; Kafka appends are counted at the port.
      dynamoMeter = await startDynamoMeterProxy(env.DYNAMODB_ENDPOINT as string, meter);
      overrideServices(meteringOverrides(meter, priorOverrides));
    }
    // The handlers read their configuration from this process's environment (a handler thread
    // gets a copy of it when it starts).
    Object.assign(process.env, env);
    config.reset();

    progress("creating the table, topics and schema");
    await ensureTable(createDynamoClient(), env.TABLE_NAME);
    await ensureTopics(createKafka());
    await migrate(env.DATABASE_URL as string, { log: progress });

    const logger = createLogger("gateway");
    // The handlers run beside the gateway's event loop, in threads of their own, unless asked to
    // run in it (GATEWAY_HANDLER_THREADS=0).
    handlers = localHandlers({
      threads: handlerThreadCount,
      meter: metering ? meter : undefined,
      log: logger,
    });
    const { routes, authorizer } = handlers;
    gateway = await startGateway({
      port: opts.port ?? Number(baseEnv.LOCAL_PORT ?? 3001),
      stage: opts.stage ?? baseEnv.STAGE ?? "dev",
      routes,
      routeResponses: ROUTE_RESPONSES,
      authorizer,
      idleTimeoutMs,
      maxLifetimeMs,
      limits,
      meter,
      logger,
      httpHandler: opts.httpHandler,
    });
    env.MANAGEMENT_ENDPOINT = gateway.managementEndpoint;
    process.env.MANAGEMENT_ENDPOINT = gateway.managementEndpoint;
    if (handlerThreadCount > 0) {
      progress(`starting ${handlerThreadCount} handler thread${handlerThreadCount === 1 ? "" : "s"}`);
    }
    await handlers.start();

    const launch = (kind: WorkerKind, workerId: string, healthPort?: number) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "worker", `${kind}.ts`)], {
        cwd: ROOT,
        env: {
          ...process.env,
          ...env,
          ...(dynamoMeter ? { DYNAMODB_ENDPOINT: dynamoMeter.url } : {}),
          WORKER_ID: workerId,
          PERSISTER_GROUP_ID: baseEnv.PERSISTER_GROUP_ID ?? DEFAULT_NAMES.persisterGroupId,
          // The worker stops when this process is gone, even if it was killed without a word.
          PARENT_PID: String(process.pid),
          ...(healthPort !== undefined ? { HEALTH_PORT: String(healthPort) } : {}),
        },
        stdio: ["ignore", "inherit", "inherit"],
      });
      const exited = new Promise<number | string>((resolve) =>
        child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
      );
      return { child, exited };
    };
    const spawnWorker = (kind: WorkerKind): WorkerProcess => {
      const id = `${kind}-${++workerCount}`;
      const worker: WorkerProcess = { kind, id, ...launch(kind, id) };
      workers.push(worker);
      if (opts.supervise) supervisors.push(superviseWorker(worker, opts.supervise));
      return worker;
    };
    /** Restarts the worker whenever it exits while the stack runs; it is running again once healthy. */
    const superviseWorker = (worker: WorkerProcess, say: (line: string) => void): Supervisor => {
      let incarnation = 1;
      return supervise(
        worker.id,
        {
          exited: async () => {
            const how = await worker.exited;
            return typeof how === "number" ? `code ${how}` : `signal ${how}`;
          },
          restart: async () => {
            if (stopping) throw new Error("the stack is stopping");
            // Each incarnation is a new worker to the others (its own fan-out lease owner id).
            const healthPort = await freePort();
            if (stopping) throw new Error("the stack is stopping");
            Object.assign(worker, launch(worker.kind, `${worker.id}.${++incarnation}`, healthPort));
            await healthy(healthPort, worker.exited);
          },
        },
        { say },
      );
    };
    for (let i = 0; i < (opts.fanoutWorkers ?? 1); i++) spawnWorker("fanout");
    for (let i = 0; i < (opts.persisters ?? 1); i++) spawnWorker("persister");

    const running = gateway;
    let stopped: Promise<void> | undefined;
    return {
      url: running.url,
      managementEndpoint: running.managementEndpoint,
      env,
      gateway: running,
      meter,
      services,
      workers,
      spawnWorker,
      stop: () => {
        stopped ??= (async () => {
          stopping = true;
          for (const supervisor of supervisors) supervisor.stop();
          await stopWorkers(workers, opts.workerStopGraceMs);
          await running.close();
          // The handlers' clients' goodbyes wait on the services (a dead broker never answers).
          await handlers?.close();
          await waitAtMost(closeServices(), 3000);
          overrideServices(priorOverrides);
          await dynamoMeter?.stop();
          // LOCAL_METER_FILE: where the meter's last reading goes (npm run soak and bench read it).
          if (settingsEnv.LOCAL_METER_FILE) {
            writeFileSync(settingsEnv.LOCAL_METER_FILE, `${JSON.stringify(meter.snapshot(), null, 2)}\n`);
          }
          await services.stop();
          stackRunning = false;
        })();
        return stopped;
      },
      killNow: () => {
        stopping = true;
        for (const supervisor of supervisors) supervisor.stop();
        for (const w of workers) {
          if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
        }
        killAllServices();
      },
    };
  } catch (error) {
    stopping = true;
    for (const supervisor of supervisors) supervisor.stop();
    await stopWorkers(workers);
    await gateway?.close();
    await handlers?.close();
    await closeServices();
    overrideServices(priorOverrides);
    await dynamoMeter?.stop();
    await services.stop();
    throw error;
  }
}

/**
 * Resolves once GET /health on the port answers 200; rejects when `exited` settles first (the
 * worker died before it was healthy).
 */
async function healthy(port: number, exited: Promise<unknown>): Promise<void> {
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  const ask = () =>
    new Promise<boolean>((done) => {
      const req = request({ host: "127.0.0.1", port, path: "/health", timeout: 1000 }, (res) => {
        res.resume();
        done(res.statusCode === 200);
      });
      req.once("timeout", () => req.destroy());
      req.once("error", () => done(false));
      req.end();
    });
  while (!dead) {
    if (await ask()) return;
    await sleep(200);
  }
  throw new Error("it exited before it was healthy");
}

/** SIGTERM each live worker, then SIGKILL what has not exited within the grace. */
export async function stopWorkers(workers: WorkerProcess[], graceMs = 10_000): Promise<void> {
  await Promise.all(
    workers
      .filter((w) => w.child.exitCode === null && w.child.signalCode === null)
      .map(async (w) => {
        w.child.kill("SIGTERM");
        const timer = setTimeout(() => w.child.kill("SIGKILL"), graceMs);
        await w.exited;
        clearTimeout(timer);
      }),
  );
}
