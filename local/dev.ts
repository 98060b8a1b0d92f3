/**
 * `npm run dev`: the whole backend on this machine, in the foreground. Prints the WebSocket URL and a
 * wscat line with a token once it accepts connections; Ctrl-C (SIGINT) or SIGTERM stops everything.
 *
 * Settings: LOCAL_PORT (3001), STAGE (dev), FANOUT_WORKERS (1), PERSISTERS (1), LOG_LEVEL (warn), and
 * REDIS_URL, KAFKA_BROKERS, DATABASE_URL, DYNAMODB_ENDPOINT to use running services instead of ours.
 */
import { signToken } from "../core/auth";
import { localJwtSecret } from "./secret";
import { startStack } from "./stack";

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

async function main(): Promise<void> {
  const started = Date.now();
  const say = (line: string) =>
    process.stderr.write(`[dev ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  say("starting the local stack (Redis, Kafka, PostgreSQL, DynamoDB, gateway, workers)");
  const stack = await startStack({
    fanoutWorkers: count("FANOUT_WORKERS", 1),
    persisters: count("PERSISTERS", 1),
    onProgress: say,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping`);
    await stack.stop();
    say("stopped");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  const token = await signToken(localJwtSecret(), "alice", { name: "Alice", ttlSeconds: 24 * 60 * 60 });
  const workers = stack.workers.map((w) => w.id).join(", ") || "none";
  process.stdout.write(
    [
      "",
      `Chat backend ready at ${stack.url}`,
      `  management API: ${stack.managementEndpoint}/@connections/{connectionId}`,
      `  workers: ${workers}`,
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

main().catch((error) => {
  process.stderr.write(
    `npm run dev could not start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
