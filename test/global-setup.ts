/**
 * Starts the services the integration tests need, once per jest run: each of REDIS_URL, KAFKA_BROKERS,
 * DATABASE_URL and DYNAMODB_ENDPOINT already set is used as is, the others are started on free ports.
 * Their URLs go into process.env, which the test workers inherit; the handle stays on globalThis for
 * global-teardown.ts.
 */
import { type LocalServices, startLocalServices } from "../local/services";

/** A slot on the jest process's globalThis, shared with global-teardown.ts. */
const slot = globalThis as typeof globalThis & { __chatLocalServices?: LocalServices };

export default async function globalSetup(): Promise<void> {
  // The AWS SDK warns about Node 20 on every client; the tests create many.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  // kafkajs warns on every producer that its default partitioner changed in 2.0; we know.
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";
  const started = Date.now();
  // One line per step on stderr: the first Kafka fetch takes a while and should not look like a hang.
  const progress = (line: string) =>
    process.stderr.write(`[services +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  const services = await startLocalServices({ onProgress: progress });
  slot.__chatLocalServices = services;
  Object.assign(process.env, services.env);
  // dynalite and the SDK need some region and credentials, never real ones.
  process.env.AWS_REGION ??= "us-east-1";
  process.env.AWS_ACCESS_KEY_ID ??= "local";
  process.env.AWS_SECRET_ACCESS_KEY ??= "local";
}
