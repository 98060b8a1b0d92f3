/**
 * Child processes of the service starters: spawned in their own process group with their output in a
 * log file, tracked by pid, and killed (the whole group) when this process exits or is signalled, so
 * no redis-server, postgres or java outlives us.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, statSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { sleep } from "../../core/retry";
import { ServiceStartError } from "./errors";
import type { RunningService } from "./types";

/** The repository's root (this file is local/services/process.ts). */
export const repoRoot = resolve(__dirname, "..", "..");

/**
 * The range the OS takes local ports of outgoing connections from (Linux; undefined elsewhere). A
 * port found free there can be taken by any connection this machine opens (a download, a client
 * of another service) between the moment it is found and the moment a service binds it.
 */
function outgoingPortRange(): [number, number] | undefined {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    return low && high ? [low, high] : undefined;
  } catch {
    return undefined;
  }
}

/** The lowest port freePort picks below the range of outgoing connections. */
const LOWEST_PICKED_PORT = 15000;
/** Ports this process has handed out, not handed out twice. */
const handedOut = new Set<number>();

/**
 * A port that is free on 127.0.0.1 right now, for a service about to bind it. Where the OS says
 * which ports its outgoing connections use, the port is picked below them (a few tries), so none
 * of them can take it before the service binds; otherwise, or when no try was free, the OS picks.
 */
export async function freePort(): Promise<number> {
  const low = outgoingPortRange()?.[0];
  if (low !== undefined && low > LOWEST_PICKED_PORT + 1000) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = LOWEST_PICKED_PORT + Math.floor(Math.random() * (low - LOWEST_PICKED_PORT));
      if (handedOut.has(port) || !(await portFree(port))) continue;
      handedOut.add(port);
      return port;
    }
  }
  return osPort();
}

/** Asks the OS for a port that is free on 127.0.0.1 right now. */
function osPort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? done(port) : fail(new Error("the OS gave no port"))));
    });
  });
}

/** Whether this process could listen on 127.0.0.1:port right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.unref();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((done) => {
    const socket = new Socket();
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
    socket.connect(port, host);
  });
}

/**
 * The absolute path of an executable: `name` itself when it holds a slash, else the first match on
 * PATH. Undefined when there is none, so callers can say which package provides it.
 */
export function findExecutable(name: string, path = process.env.PATH ?? ""): string | undefined {
  const candidates = name.includes("/")
    ? [resolve(name)]
    : path.split(delimiter).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; try the next one
    }
  }
  return undefined;
}

/** The last `lines` lines of a log file ("" when there is none). */
export function tail(file: string, lines = 15): string {
  if (!existsSync(file)) return "";
  const text = readFileSync(file, "utf8");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** How to run one service process. */
export interface ProcessSpec {
  /** For messages: "Redis", "Kafka", "PostgreSQL". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go here (appended), so a crash can be explained from its tail. */
  logFile: string;
  /** Run as this user (PostgreSQL refuses to run as root). */
  uid?: number;
  gid?: number;
  /** The signal that asks for a clean, quick shutdown. */
  stopSignal: NodeJS.Signals;
  /** How long a clean shutdown may take before the group is killed. */
  stopTimeoutMs: number;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

const live = new Map<number, ManagedProcess>();
let handlersInstalled = false;

/**
 * Kills every tracked process group at once; safe inside an `exit` handler (synchronous). Only the
 * processes this process started and still tracks are touched, each by its own process group id.
 */
export function killAllServices(): void {
  killAll();
}

/** Kills every tracked process group at once; safe inside an `exit` handler (synchronous). */
function killAll(): void {
  for (const managed of live.values()) managed.killGroupNow();
  live.clear();
}

/** How long someone else's signal handler may take to stop the services before we kill them. */
const SIGNAL_GRACE_MS = 20_000;

function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) {
    // The program shuts down on this signal itself (and will call stop()); kill what is left only
    // if that takes too long or never happens.
    setTimeout(killAll, SIGNAL_GRACE_MS).unref();
    return;
  }
  // Nobody else handles it: the default would end the process without an `exit` event, so kill the
  // children first and then die of the same signal, as the default would have.
  killAll();
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
}

/** One service process that can be started, stopped, killed and started again with the same spec. */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private running = false;

  constructor(readonly spec: ProcessSpec) {}

  /** The pid of the running process (its process group has the same id). */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** Resolves when the current (or last) process has ended, saying how: "signal SIGKILL", "code 1". */
  async exitedHow(): Promise<string> {
    const exit = await this.exited;
    if (exit.error) return `could not be run: ${exit.error.message}`;
    return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
  }

  /** Spawns the process; it is killed with us unless stopped first. */
  start(): void {
    if (this.running) return;
    installHandlers();
    const { command, args, cwd, env, logFile, uid, gid } = this.spec;
    const out = openSync(logFile, "a");
    try {
      // detached: its own process group, so kill(-pid) reaches what it forks too (postgres
      // backends), and a Ctrl-C aimed at the terminal does not stop it before we are ready.
      const child = spawn(command, args, { cwd, env, uid, gid, detached: true, stdio: ["ignore", out, out] });
      this.child = child;
      this.running = true;
      this.exited = new Promise<Exit>((done) => {
        child.once("error", (error) => done({ code: null, signal: null, error }));
        child.once("exit", (code, signal) => done({ code, signal }));
      }).then((exit) => {
        this.running = false;
        if (child.pid !== undefined && live.get(child.pid) === this) live.delete(child.pid);
        return exit;
      });
      if (child.pid !== undefined) live.set(child.pid, this);
    } finally {
      closeSync(out);
    }
  }

  /**
   * Polls `ready` until it answers true. Throws a ServiceStartError with the tail of the log if the
   * process exits first or `timeoutMs` passes.
   */
  async waitUntil(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let died: Exit | undefined;
    void this.exited.then((exit) => {
      died = exit;
    });
    while (Date.now() < deadline) {
      if (died || !this.running) break;
      if (await ready().catch(() => false)) return;
      await sleep(150);
    }
    await sleep(50);
    const { name, logFile } = this.spec;
    const logTail = tail(logFile);
    if (died || !this.running) {
      const how = died?.error
        ? `could not be run (${died.error.message})`
        : `exited with ${died?.signal ?? `code ${died?.code}`}`;
      throw new ServiceStartError(`${name} ${how} while starting; the end of ${logFile}:\n${logTail}`, {
        cause: died?.error,
        logTail,
      });
    }
    await this.kill();
    throw new ServiceStartError(
      `${name} did not become ready within ${Math.round(timeoutMs / 1000)} s; the end of ${logFile}:\n${logTail}`,
      { logTail },
    );
  }

  /** Asks for a clean shutdown, then kills the group if it takes longer than the spec allows. */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, this.spec.stopSignal);
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((done) => {
      timer = setTimeout(done, this.spec.stopTimeoutMs);
    });
    // The timer is cleared, not left to run out: it would keep a finished jest run alive for seconds.
    await Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
    // Whatever it forked (postgres backends) must go too, and so must a process that did not stop.
    this.killGroupNow();
    await this.exited;
  }

  /** SIGKILLs the process group, as a crash would; for fault-injection tests. */
  async kill(): Promise<void> {
    if (this.pid === undefined) return;
    this.killGroupNow();
    await this.exited;
  }

  /** Synchronous SIGKILL of the group (usable in an `exit` handler). */
  killGroupNow(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch (error) {
      // ESRCH: the whole group is gone. Anything else (the group could not be signalled): kill the
      // leader alone, but only while we know it runs, since a dead pid may belong to someone else.
      if ((error as NodeJS.ErrnoException).code !== "ESRCH" && this.running) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  }
}

/** Resolves a data directory option against the repository root. */
/**
 * A started process as a {@link RunningService}: stop it, kill it (SIGKILL), or restart it with
 * `start` on the same port and data after a kill.
 */
export function runningService(
  name: string,
  url: string,
  server: ManagedProcess,
  start: () => Promise<void>,
): RunningService {
  return {
    name,
    url,
    get pid() {
      return server.pid;
    },
    stop: () => server.stop(),
    kill: () => server.kill(),
    exited: () => server.exitedHow(),
    restart: async () => {
      await server.kill();
      // A leader killed from outside (kill -9 <pid>) can leave what it forked behind (postgres
      // backends holding its shared memory): the rest of its group goes before the new start.
      server.killGroupNow();
      await start();
    },
  };
}

export function absolute(dir: string): string {
  return isAbsolute(dir) ? dir : resolve(repoRoot, dir);
}
