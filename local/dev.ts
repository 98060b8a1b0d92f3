/**
 * `npm run dev`: the whole backend on this machine, in the foreground. Prints the WebSocket URL, the
 * web client's address on the same port (local/web.ts) and a wscat line with a token once it accepts
 * connections; Ctrl-C (SIGINT) or SIGTERM stops everything
 * within DEV_STOP_SECONDS (15), killing by pid what it started that has not stopped by then.
 *
 * Every worker and service of ours that dies is restarted (capped backoff, same ports), with one line
 * on stderr each time. Our services keep their data in DEV_DATA_DIR (`.cache/data`), reused by the
 * next run; `npm run dev -- --fresh` (or DEV_FRESH=1) starts empty.
 *
 * Settings: LOCAL_PORT (3001), STAGE (dev), FANOUT_WORKERS (1), PERSISTERS (1), LOG_LEVEL (warn), and
 * REDIS_URL, KAFKA_BROKERS, DATABASE_URL, DYNAMODB_ENDPOINT to use running services instead of ours.
 */
import { relative } from "node:path";
import { signToken } from "../core/auth";
import { formatMeter, formatProjection, loadPrices, projectMonthlyCost } from "./gateway/cost";
import { localJwtSecret } from "./secret";
import { absolute, killAllServices, repoRoot } from "./services/process";
import { type RunningStack, startStack } from "./stack";
import { createWebHandler } from "./web";

function count(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 16) {
    process.stderr.write(`${name} must be a whole number from 0 to 16 (it is "${raw}").\n`);
    process.exit(2);
  }
  return n;
}

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1 || n > 600) {
    process.stderr.write(`${name} must be a number of seconds from 1 to 600 (it is "${raw}").\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const started = Date.now();
  const say = (line: string) =>
    process.stderr.write(`[dev ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  const stopBoundMs = seconds("DEV_STOP_SECONDS", 15) * 1000;
  const dataDir = absolute(process.env.DEV_DATA_DIR || ".cache/data");
  const fresh = process.argv.includes("--fresh") || /^(1|true|yes)$/i.test(process.env.DEV_FRESH ?? "");

  let stack: RunningStack | undefined;
  let stopping = false;
  /** The last resort: SIGKILL, by pid, every process we started, and leave. */
  const force = (why: string) => {
    say(`${why}: killing what is left`);
    stack?.killNow();
    killAllServices();
    process.exit(1);
  };
  const stop = async (signal: string) => {
    if (stopping) return force(`${signal} again`);
    stopping = true;
    say(`${signal}: stopping (at most ${stopBoundMs / 1000} s)`);
    setTimeout(() => force(`not stopped within ${stopBoundMs / 1000} s`), stopBoundMs);
    // Still starting: let the start finish (or fail), then stop what it started.
    const running = await starting.catch(() => undefined);
    await running?.stop();
    say("stopped");
    if (running) printBill(running);
    process.exit(0);
  };
  // Installed before anything starts, so a Ctrl-C while starting is bounded too.
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  const where = relative(repoRoot, dataDir).startsWith("..") ? dataDir : relative(repoRoot, dataDir);
  say(
    `starting the local stack (Redis, Kafka, PostgreSQL, DynamoDB, gateway, workers); data in ${where}${fresh ? ", starting empty" : ""}`,
  );
  // The web client is built (in memory) before the port opens, so the page is there as soon as the
  // address is printed.
  const stage = process.env.STAGE ?? "dev";
  const webHandler = await createWebHandler({ stage, secret: () => localJwtSecret() });
  const starting = startStack({
    httpHandler: webHandler,
    fanoutWorkers: count("FANOUT_WORKERS", 1),
    persisters: count("PERSISTERS", 1),
    onProgress: say,
    supervise: say,
    dataDir,
    persistent: true,
    fresh,
    // Within the stop bound, with time left for the services' own shutdown.
    workerStopGraceMs: Math.min(10_000, Math.floor(stopBoundMs / 2)),
  });
  stack = await starting;
  if (stopping) return;

  const token = await signToken(localJwtSecret(), "alice", { name: "Alice", ttlSeconds: 24 * 60 * 60 });
  const workers = stack.workers.map((w) => w.id).join(", ") || "none";
  process.stdout.write(
    [
      "",
      `Chat backend ready at ${stack.url}`,
      `  web client: http://127.0.0.1:${stack.gateway.port}/ (sign in with a name)`,
      `  management API: ${stack.managementEndpoint}/@connections/{connectionId}`,
      `  workers: ${workers}`,
      `  data: ${where} (kept across runs; npm run dev -- --fresh starts empty)`,
      "",
      "Connect (a token for another user: npm run token -- <userId> --name <name>):",
      `  npx wscat -c '${stack.url}?token=${token}'`,
      `  then send: {"action":"joinRoom","roomId":"lobby"}`,
      "",
      "Ctrl-C stops everything.",
      "",
    ].join("\n"),
  );
}

/** What AWS would have billed for the session, and a month of 1,000 users like it. */
function printBill(stack: RunningStack): void {
  const reading = stack.meter.snapshot();
  const lines = formatMeter(reading);
  try {
    const projection = projectMonthlyCost(reading, loadPrices());
    if (projection) lines.push(...formatProjection(projection));
  } catch (error) {
    lines.push(`  (no projection: ${error instanceof Error ? error.message : String(error)})`);
  }
  process.stdout.write(`\n${lines.join("\n")}\n`);
}

main().catch((error) => {
  process.stderr.write(
    `npm run dev could not start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
