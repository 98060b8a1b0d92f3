/**
 * What both workers do around their run loop: stop on SIGTERM and SIGINT, and, when a parent process
 * started them (the local stack), stop when that parent is gone, so a killed `npm run dev` leaves no
 * worker behind. In a container the parent is the runtime and PARENT_PID is unset.
 */
import type { Server } from "node:http";
import { config } from "../core/config";
import type { Logger } from "../core/logger";
import { serveHealth } from "./health";

export function onShutdown(stop: (signal: string) => void): void {
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  const { parentPid } = config.process();
  if (parentPid === undefined) return;
  const watch = setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      clearInterval(watch);
      stop("parent exited");
    }
  }, 1000);
  watch.unref();
}

export interface WorkerLifecycle {
  logger: Logger;
  /** The health endpoint's port (0 for any); none when undefined. */
  healthPort?: number;
  /** What the health endpoint says while the worker runs (it answers 503 once stopping). */
  status: string;
  /** A health finer than "running" (200 only while `ok`); the endpoint answers 503 once stopping. */
  health?(): { ok: boolean; status: string } & Record<string, unknown>;
  start(): Promise<void>;
  /** Finishes the work in flight and lets go of what the worker holds. */
  stop(): Promise<void>;
  /** Closes the worker's clients, after stop(). */
  close?(): Promise<void>;
  /** Logged every `reportEveryMs` (default 30 s). */
  report?(): object;
  reportEveryMs?: number;
}

/**
 * Runs a worker: the health endpoint (200 while running, 503 while draining), start, a periodic
 * report, and on SIGTERM (or the parent gone) a drain: stop, close, exit 0.
 */
export async function runWorker(worker: WorkerLifecycle): Promise<void> {
  const { logger } = worker;
  let running = true;
  const health: Server | undefined =
    worker.healthPort !== undefined
      ? await serveHealth(worker.healthPort, () => {
          if (!running) return { ok: false, status: "stopping" };
          return worker.health?.() ?? { ok: true, status: worker.status };
        })
      : undefined;
  await worker.start();
  const report = worker.report;
  const reporter = report
    ? setInterval(() => logger.info(report(), "stats"), worker.reportEveryMs ?? 30_000)
    : undefined;
  onShutdown((signal) => {
    if (!running) return;
    running = false;
    logger.info({ signal }, "stopping");
    clearInterval(reporter);
    void (async () => {
      let code = 0;
      try {
        await worker.stop();
        await worker.close?.();
      } catch (err) {
        logger.error({ err }, "stopping failed");
        code = 1;
      }
      health?.close();
      process.exit(code);
    })();
  });
}
