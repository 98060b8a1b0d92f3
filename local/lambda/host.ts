/**
 * The Lambda handlers in threads of their own (GATEWAY_HANDLER_THREADS, default 1), beside the API
 * Gateway emulator rather than in its event loop: on AWS a handler never shares the gateway's CPU,
 * and here a busy handler would otherwise delay every frame and `@connections` call the gateway
 * serves. The gateway gets one function a route, as in its own thread; each posts the invocation to
 * the thread with the fewest in flight and answers what the handler answered.
 *
 * A thread that dies is replaced on the next invocation, as Lambda replaces a failed environment;
 * the invocations it held fail, and the gateway answers them as AWS does ("Internal server error").
 */
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { ROUTES } from "../../functions/routes";
import type { LambdaContext, LambdaHandler } from "../gateway/invocations";
import type { GatewayLogger } from "../gateway/types";
import { type Handlers, loadHandlers } from "./handlers";
import {
  AUTHORIZER_KEY,
  type FromThread,
  type ThreadData,
  type ThreadError,
  type ToThread,
} from "./messages";
import type { HandlerMeter } from "./metering";

export interface HandlerThreadOptions {
  /** How many threads: at least 1 (localHandlers also takes 0). */
  threads: number;
  /** Where the handlers' DynamoDB units and Kafka appends are counted; none when undefined. */
  meter?: HandlerMeter;
  log: GatewayLogger;
  /**
   * The thread's module and the route keys it serves; default the project's handlers (thread.cjs
   * and the route table). A test gives a stand-in that fails in the ways a thread can.
   */
  entry?: string;
  routeKeys?: readonly string[];
}

export interface HandlerThreads extends Handlers {
  /**
   * Starts the threads with this process's environment as it is now (the handlers read their
   * settings from it) and resolves once each has loaded the handlers. Invocations before it wait.
   */
  start(): Promise<void>;
  /** Lets each thread close its clients (bounded), then ends it. */
  close(): Promise<void>;
}

/** How long a stopping thread may take to close its clients before it is terminated. */
const CLOSE_BOUND_MS = 5000;

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

/** One thread and the invocations it holds. */
class HandlerThread {
  readonly pending = new Map<number, Pending>();
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  private readonly worker: Worker;
  private closing = false;
  private alive = true;

  constructor(
    private readonly opts: HandlerThreadOptions,
    private readonly onDead: (thread: HandlerThread) => void,
  ) {
    const data: ThreadData = { metering: opts.meter !== undefined };
    this.worker = new Worker(opts.entry ?? join(__dirname, "thread.cjs"), {
      workerData: data,
      env: { ...process.env },
      // The loader of the TypeScript sources is registered by thread.cjs, not inherited.
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    let loaded: () => void = () => undefined;
    let failed: (error: Error) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      loaded = resolve;
      failed = reject;
    });
    // A thread that fails to load rejects `ready`; no unhandled rejection if nobody waited on it.
    this.ready.catch(() => undefined);
    this.worker.on("message", (message: FromThread) => this.receive(message, loaded));
    this.worker.on("error", (error) => {
      failed(error);
      if (!this.closing) opts.log.error({ err: error }, "a handler thread failed");
    });
    this.exited = new Promise<void>((resolve) =>
      this.worker.once("exit", (code) => {
        this.alive = false;
        failed(new Error(`the handler thread exited (code ${code}) before it loaded the handlers`));
        const error = new Error(`the handler thread stopped (exit code ${code}) during the invocation`);
        for (const p of this.pending.values()) p.reject(error);
        this.pending.clear();
        if (!this.closing) {
          opts.log.error({ code }, "a handler thread stopped; the next invocation starts another");
          this.onDead(this);
        }
        resolve();
      }),
    );
  }

  private nextId = 0;

  /**
   * Posts the invocation once the thread has loaded the handlers; it counts as in flight from this
   * call on, so that invocations picked while the thread loads are spread too.
   */
  invoke(handler: string, event: unknown, context: LambdaContext): Promise<unknown> {
    if (!this.alive) return Promise.reject(new Error("the handler thread has stopped"));
    const id = ++this.nextId;
    const { getRemainingTimeInMillis, ...fields } = context;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ready.then(
        () => {
          if (!this.pending.has(id)) return;
          const message: ToThread = {
            type: "invoke",
            id,
            handler,
            event,
            context: { ...fields, remainingMs: getRemainingTimeInMillis() },
          };
          try {
            this.worker.postMessage(message);
          } catch (error) {
            // An event that cannot cross a thread (not one API Gateway would make): this call fails.
            this.pending.delete(id);
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        },
        (error: Error) => {
          this.pending.delete(id);
          reject(error);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (!this.alive) return;
    this.closing = true;
    this.worker.postMessage({ type: "close" } satisfies ToThread);
    const bound = setTimeout(() => void this.worker.terminate(), CLOSE_BOUND_MS);
    await this.exited;
    clearTimeout(bound);
  }

  private receive(message: FromThread, loaded: () => void): void {
    switch (message.type) {
      case "ready":
        loaded();
        return;
      case "result": {
        const pending = this.pending.get(message.id);
        if (!pending) return;
        this.pending.delete(message.id);
        if (message.ok) pending.resolve(message.result);
        else pending.reject(rebuilt(message.error));
        return;
      }
      case "meter":
        for (const [kind, args] of message.calls) {
          if (kind === "dynamodb") this.opts.meter?.dynamodb(...args);
          else this.opts.meter?.kafkaAppend(...args);
        }
        return;
      case "closed":
        return;
    }
  }
}

/** The handler's error as the gateway logs it: its name, message and stack from the thread. */
function rebuilt(error: ThreadError): Error {
  const rebuiltError = new Error(error.message);
  rebuiltError.name = error.name;
  if (error.stack) rebuiltError.stack = error.stack;
  return rebuiltError;
}

/** The handlers, each running in one of `opts.threads` threads; call start() before traffic. */
export function handlerThreads(opts: HandlerThreadOptions): HandlerThreads {
  if (!Number.isInteger(opts.threads) || opts.threads < 1) {
    throw new Error(`handler threads must be a whole number ≥ 1 (it is ${opts.threads})`);
  }
  const threads: (HandlerThread | undefined)[] = new Array(opts.threads).fill(undefined);
  let started: (() => void) | undefined;
  const startedOnce = new Promise<void>((resolve) => {
    started = resolve;
  });
  let closing = false;

  const spawn = (slot: number): HandlerThread => {
    const thread = new HandlerThread(opts, (dead) => {
      if (threads[slot] === dead) threads[slot] = undefined;
    });
    threads[slot] = thread;
    return thread;
  };
  /** The live thread with the fewest invocations in flight, or a new one in an empty slot. */
  const pick = (): HandlerThread => {
    let best: HandlerThread | undefined;
    for (let slot = 0; slot < threads.length; slot++) {
      const thread = threads[slot] ?? spawn(slot);
      if (!best || thread.pending.size < best.pending.size) best = thread;
    }
    return best as HandlerThread;
  };
  const via =
    (key: string): LambdaHandler =>
    async (event, context) => {
      await startedOnce;
      if (closing) throw new Error("the handler threads are closing");
      return pick().invoke(key, event, context);
    };

  const routes: Record<string, LambdaHandler> = {};
  for (const key of opts.routeKeys ?? ROUTES.map((route) => route.routeKey)) routes[key] = via(key);
  return {
    routes,
    authorizer: via(AUTHORIZER_KEY),
    async start() {
      try {
        const all = threads.map((_, slot) => spawn(slot));
        await Promise.all(all.map((thread) => thread.ready));
      } finally {
        // Invocations that waited go on: to the threads, or to the error of one that did not load.
        started?.();
      }
    },
    async close() {
      closing = true;
      await Promise.all(threads.map((thread) => thread?.close()));
    },
  };
}

/**
 * The handlers as the local stack runs them (GATEWAY_HANDLER_THREADS): in `opts.threads` threads
 * beside the gateway's event loop, or, with 0, in it (loaded here; start and close do nothing).
 */
export function localHandlers(opts: HandlerThreadOptions): HandlerThreads {
  if (opts.threads !== 0) return handlerThreads(opts);
  return { ...loadHandlers(), start: async () => undefined, close: async () => undefined };
}
