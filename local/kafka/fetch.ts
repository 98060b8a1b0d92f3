/**
 * `npm run kafka:fetch`: fetches the Kafka broker's jars into the cache (`.cache/kafka/<version>/libs`,
 * or KAFKA_HOME_CACHE) without starting anything, so CI can do the slow part in a step of its own.
 * Shows progress on stderr, prints the libs directory on stdout, and exits non-zero with one sentence
 * when the fetch fails. KAFKA_VERSION picks another version.
 */
import pino from "pino";
import { fetchKafka, ServiceStartError } from "../services";
import { absolute } from "../services/process";

const log = pino(
  { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
  pino.destination(2),
);

async function main(): Promise<void> {
  const cacheDir = process.env.KAFKA_HOME_CACHE;
  const { version, libs } = await fetchKafka({
    version: process.env.KAFKA_VERSION || undefined,
    cacheDir: cacheDir ? absolute(cacheDir) : undefined,
    onProgress: (line) => log.info(line),
  });
  log.info({ version, libs }, `Kafka ${version} is in the cache`);
  process.stdout.write(`${libs}\n`);
}

main().catch((error: unknown) => {
  const sentence =
    error instanceof ServiceStartError ? error.message : `Fetching Kafka failed: ${String(error)}`;
  log.error(sentence);
  process.exitCode = 1;
});
