/**
 * How a bench server starts and stops. It stops on SIGTERM or SIGINT (the bench's stop(), Ctrl-C),
 * and when the bench does, however the bench ends: the bench holds the write end of the server's
 * stdin (bench/lib/child.ts) and the kernel closes it when the bench exits, even on SIGKILL. A
 * server left behind would go on taking CPU from the next run's measurements.
 */
import type { IncomingMessage } from "node:http";

export function stopOnSignalOrParent(stop: () => void, graceMs = 10_000): void {
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  const orphaned = () => {
    stop();
    // A stop that waits on services the bench took down with it must not hang on.
    setTimeout(() => process.exit(1), graceMs);
  };
  process.stdin.once("end", orphaned);
  process.stdin.once("error", orphaned);
  process.stdin.resume();
}

/** A setting the bench passes to its servers; a server started without it stops at once, saying which. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the bench sets it when it starts this server`);
  return value;
}

/** Runs a server's start-up; one that fails says so on stderr and exits non-zero. */
export function serve(what: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    process.stderr.write(`${what} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

/** A frame of the plain protocol (the ceiling's and the floor's: `?user=`, joinRoom, sendMessage). */
export interface PlainFrame {
  action?: string;
  roomId?: string;
  text?: string;
  clientMsgId?: string;
}

/** The user a plain-protocol connection names in its URL. */
export const plainUser = (req: IncomingMessage): string =>
  new URL(req.url ?? "/", "http://x").searchParams.get("user") ?? "anon";

/** A plain-protocol frame, or undefined for one that is not JSON (the bench's clients send none). */
export function plainFrame(data: unknown): PlainFrame | undefined {
  try {
    return JSON.parse(String(data)) as PlainFrame;
  } catch {
    return undefined;
  }
}
