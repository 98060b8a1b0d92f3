/**
 * `npm run services`: starts each of Redis, Kafka, PostgreSQL and DynamoDB that the environment does
 * not provide, prints `export VAR=...` lines for a shell on stdout (progress goes to stderr), and
 * stays in the foreground until Ctrl-C or SIGTERM, then stops them all.
 *
 *   npm run services                 # in one terminal
 *   export REDIS_URL=...             # paste the printed lines into another
 */
import pino from "pino";
import { ServiceStartError, startLocalServices } from "./index";

// stdout is for the export lines only, so the log goes to stderr.
const log = pino(
  { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
  pino.destination(2),
);

async function main(): Promise<void> {
  const services = await startLocalServices({ onProgress: (line) => log.info(line) });
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping the services");
    services.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, "stopping the services failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  for (const [name, value] of Object.entries(services.env)) {
    if (value) process.stdout.write(`export ${name}=${value}\n`);
  }
  const pids = Object.fromEntries(services.services.flatMap((s) => (s.pid ? [[s.name, s.pid]] : [])));
  log.info({ pids }, "services ready; press Ctrl-C to stop them");
  // The child processes and dynalite's server keep the event loop alive until shutdown.
}

main().catch((error: unknown) => {
  if (error instanceof ServiceStartError) log.error(error.message);
  else log.error({ err: error }, "starting the services failed");
  process.exitCode = 1;
});
