/** Child processes the benchmark starts: a server under test, waited on until it says it is ready. */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(__dirname, "..", "..");
/** Where the children's own output goes (ignored by git): the terminal shows only progress. */
export const LOG_DIR = join(ROOT, ".cache", "bench", "logs");

/** A child that printed `BENCH_READY {json}`. */
export interface ReadyChild<T> {
  child: ChildProcess;
  info: T;
  /** SIGTERM, then SIGKILL after the grace; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** The child could not start (it exited, or did not print its ready line in time). */
export class ChildStartError extends Error {
  override name = "ChildStartError";
}

/** Runs a TypeScript entry point under tsx and waits for its ready line. */
export function startChild<T>(
  name: string,
  entry: string,
  env: Record<string, string | undefined>,
  timeoutMs = 120_000,
): Promise<ReadyChild<T>> {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(join(LOG_DIR, `${name}.log`));
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, entry)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    // stdin stays open and unwritten: it closes when this process exits, however it ends, and the
    // child stops then (bench/servers/lifecycle.ts).
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      child.stdin?.destroy();
      resolve();
    }),
  );
  child.stderr?.pipe(log, { end: false });
  const stop = async (graceMs = 15_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    }
    log.end();
  };
  return new Promise((resolve, reject) => {
    let buffered = "";
    let ready = false;
    const timer = setTimeout(() => {
      void stop(1000);
      reject(
        new ChildStartError(`${name} did not get ready within ${timeoutMs} ms (see ${LOG_DIR}/${name}.log)`),
      );
    }, timeoutMs);
    child.stdout?.on("data", (chunk: Buffer) => {
      if (ready) {
        log.write(chunk);
        return;
      }
      buffered += chunk.toString();
      const at = buffered.indexOf("BENCH_READY ");
      const end = at >= 0 ? buffered.indexOf("\n", at) : -1;
      if (end < 0) return;
      ready = true;
      clearTimeout(timer);
      log.write(buffered);
      resolve({ child, info: JSON.parse(buffered.slice(at + 12, end)) as T, stop });
    });
    child.once("exit", (code, signal) => {
      if (ready) return;
      clearTimeout(timer);
      reject(
        new ChildStartError(
          `${name} exited (${code ?? signal}) before it was ready (see ${LOG_DIR}/${name}.log)`,
        ),
      );
    });
  });
}
