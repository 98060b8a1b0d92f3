/**
 * Configuration, read once from the environment, typed and validated. This is the only module of
 * core/, functions/ and worker/ that reads `process.env`. Each section is validated when first asked
 * for, so a handler that never talks to Kafka does not need its variables; a bad or missing value
 * throws a ConfigError naming the variable and what to set it to.
 */

import { DEFAULT_NAMES } from "./names";
import * as z from "./zod";

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

function section<T extends z.core.$ZodShape>(
  env: Env,
  shape: T,
  names: { [K in keyof T]: string },
): z.infer<z.ZodMiniObject<T>> {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) {
    const value = env[names[key as keyof T]];
    raw[key] = value === "" ? undefined : value;
  }
  const parsed = z.object(shape).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "");
    const variable = names[key as keyof T] ?? key;
    throw new ConfigError(
      `Environment variable ${variable} is missing or invalid: ${issue?.message ?? "bad value"}`,
    );
  }
  return parsed.data;
}

const positiveInt = (fallback: number) =>
  z._default(z.coerce.number().check(z.int(), z.positive()), fallback);
const nonNegativeInt = (fallback: number) =>
  z._default(z.coerce.number().check(z.int(), z.minimum(0)), fallback);
const brokers = z
  .pipe(
    z.string({ error: "set it to a comma-separated list of host:port" }),
    z.transform((s: string) =>
      s
        .split(",")
        .map((b) => b.trim())
        .filter(Boolean),
    ),
  )
  .check(
    z.refine(
      (list: string[]) => list.length > 0 && list.every((b) => /^[^\s:]+:\d+$/.test(b)),
      "expected host:port[,host:port]",
    ),
  );

export function loadConfig(env: Env = process.env) {
  const cache = new Map<string, unknown>();
  const once = <T>(key: string, read: () => T): T => {
    if (!cache.has(key)) cache.set(key, read());
    return cache.get(key) as T;
  };
  return {
    /** Forgets what was read, so the next call reads the environment again (the local stack sets it). */
    reset: () => cache.clear(),
    aws: () =>
      once("aws", () =>
        section(
          env,
          { region: z._default(z.string(), "us-east-1"), dynamoEndpoint: z.optional(z.url()) },
          { region: "AWS_REGION", dynamoEndpoint: "DYNAMODB_ENDPOINT" },
        ),
      ),
    table: () =>
      once("table", () =>
        section(
          env,
          { name: z._default(z.string(), "chat"), connectionTtlSeconds: positiveInt(3 * 60 * 60) },
          { name: "TABLE_NAME", connectionTtlSeconds: "CONNECTION_TTL_SECONDS" },
        ),
      ),
    redis: () =>
      once("redis", () =>
        section(
          env,
          {
            url: z
              .string({ error: "set it to redis://host:port" })
              .check(z.regex(/^rediss?:\/\//, "expected redis://host:port")),
            authSecretArn: z.optional(z.string()),
            keyPrefix: z._default(z.string().check(z.maxLength(64)), ""),
            recentHistory: positiveInt(200),
          },
          {
            url: "REDIS_URL",
            authSecretArn: "REDIS_AUTH_SECRET_ARN",
            keyPrefix: "REDIS_KEY_PREFIX",
            recentHistory: "RECENT_HISTORY_SIZE",
          },
        ),
      ),
    kafka: () =>
      once("kafka", () =>
        section(
          env,
          {
            brokers,
            clientId: z._default(z.string(), "chat"),
            messagesTopic: z._default(z.string(), DEFAULT_NAMES.messagesTopic),
            deadLetterTopic: z._default(z.string(), DEFAULT_NAMES.deadLetterTopic),
            partitions: positiveInt(6),
            replicationFactor: positiveInt(1),
            auth: z._default(z.enum(["none", "aws-iam"]), "none"),
            ssl: z.pipe(
              z._default(z.enum(["true", "false"]), "false"),
              z.transform((v: "true" | "false") => v === "true"),
            ),
            // The whole of one append (connect, retries, acks), well inside a handler's 10 s timeout.
            appendTimeoutMs: positiveInt(4000),
            // One request's wait for its answer, for every client (fetches add their maxWaitTime);
            // an append gives up at appendTimeoutMs whatever this is.
            requestTimeoutMs: positiveInt(5000),
          },
          {
            brokers: "KAFKA_BROKERS",
            clientId: "KAFKA_CLIENT_ID",
            messagesTopic: "MESSAGES_TOPIC",
            deadLetterTopic: "DEAD_LETTER_TOPIC",
            partitions: "KAFKA_PARTITIONS",
            replicationFactor: "KAFKA_REPLICATION_FACTOR",
            auth: "KAFKA_AUTH",
            ssl: "KAFKA_SSL",
            appendTimeoutMs: "KAFKA_APPEND_TIMEOUT_MS",
            requestTimeoutMs: "KAFKA_REQUEST_TIMEOUT_MS",
          },
        ),
      ),
    database: () =>
      once("database", () =>
        section(
          env,
          {
            url: z.optional(
              z.string().check(z.regex(/^postgres(ql)?:\/\//, "expected postgresql://user@host:port/db")),
            ),
            secretArn: z.optional(z.string()),
            // Handlers' reads (statement and client-side query timeouts), well inside their 10 s.
            readTimeoutMs: positiveInt(3000),
            // The persister's writes: a COPY of a large batch takes seconds.
            writeTimeoutMs: positiveInt(30_000),
            connectTimeoutMs: positiveInt(3000),
          },
          {
            url: "DATABASE_URL",
            secretArn: "DATABASE_SECRET_ARN",
            readTimeoutMs: "DATABASE_READ_TIMEOUT_MS",
            writeTimeoutMs: "DATABASE_WRITE_TIMEOUT_MS",
            connectTimeoutMs: "DATABASE_CONNECT_TIMEOUT_MS",
          },
        ),
      ),
    auth: () =>
      once("auth", () =>
        section(
          env,
          { jwtSecret: z.optional(z.string()), jwtSecretArn: z.optional(z.string()) },
          { jwtSecret: "JWT_SECRET", jwtSecretArn: "JWT_SECRET_ARN" },
        ),
      ),
    rateLimit: () =>
      once("rateLimit", () =>
        section(
          env,
          {
            perSecond: positiveInt(20),
            burst: positiveInt(40),
            // Per user: one token's connections share one allowance, however many it opens.
            scope: z._default(z.enum(["connection", "user"]), "user"),
          },
          { perSecond: "RATE_LIMIT_PER_SECOND", burst: "RATE_LIMIT_BURST", scope: "RATE_LIMIT_SCOPE" },
        ),
      ),
    /** The allowance of every other room action (join, leave, history, rooms, invites, reads). */
    actionRateLimit: () =>
      once("actionRateLimit", () =>
        section(
          env,
          {
            perSecond: positiveInt(10),
            burst: positiveInt(30),
            scope: z._default(z.enum(["connection", "user"]), "user"),
          },
          {
            perSecond: "ACTION_RATE_LIMIT_PER_SECOND",
            burst: "ACTION_RATE_LIMIT_BURST",
            scope: "RATE_LIMIT_SCOPE",
          },
        ),
      ),
    rooms: () =>
      once("rooms", () =>
        section(
          env,
          { maxMembers: positiveInt(5000), maxConnectionsPerUser: positiveInt(10) },
          { maxMembers: "ROOM_MAX_MEMBERS", maxConnectionsPerUser: "MAX_CONNECTIONS_PER_USER" },
        ),
      ),
    presence: () =>
      once("presence", () =>
        section(
          env,
          { graceSeconds: nonNegativeInt(30), idleSeconds: positiveInt(600) },
          { graceSeconds: "PRESENCE_GRACE_SECONDS", idleSeconds: "PRESENCE_IDLE_SECONDS" },
        ),
      ),
    management: () =>
      once("management", () =>
        section(
          env,
          { endpoint: z.url({ error: "set it to the API's https://…/{stage} URL" }) },
          { endpoint: "MANAGEMENT_ENDPOINT" },
        ),
      ),
    fanout: () =>
      once("fanout", () =>
        section(
          env,
          {
            shards: positiveInt(16),
            concurrency: positiveInt(64),
            leaseMs: positiveInt(3000),
            sweepAfterMs: positiveInt(10_000),
            workerId: z.optional(z.string()),
            // The container's health endpoint (ECS and the image's HEALTHCHECK ask GET /health).
            healthPort: z.optional(z.coerce.number().check(z.int(), z.minimum(0))),
          },
          {
            shards: "FANOUT_SHARDS",
            concurrency: "FANOUT_CONCURRENCY",
            leaseMs: "FANOUT_LEASE_MS",
            sweepAfterMs: "FANOUT_SWEEP_AFTER_MS",
            workerId: "WORKER_ID",
            healthPort: "HEALTH_PORT",
          },
        ),
      ),
    persister: () =>
      once("persister", () =>
        section(
          env,
          {
            groupId: z._default(z.string(), DEFAULT_NAMES.persisterGroupId),
            healthPort: z.optional(z.coerce.number().check(z.int(), z.minimum(0))),
            // How long a dead persister holds its partitions; Kafka's and MSK's default floor is 6 s.
            sessionTimeoutMs: z._default(
              z.coerce.number().check(z.int(), z.minimum(1000, "must be at least 1000 ms")),
              10_000,
            ),
          },
          {
            groupId: "PERSISTER_GROUP_ID",
            healthPort: "HEALTH_PORT",
            sessionTimeoutMs: "PERSISTER_SESSION_TIMEOUT_MS",
          },
        ),
      ),
    process: () =>
      once("process", () =>
        section(
          env,
          { parentPid: z.optional(z.coerce.number().check(z.int(), z.positive())) },
          { parentPid: "PARENT_PID" },
        ),
      ),
    log: () =>
      once("log", () =>
        section(
          env,
          {
            level: z._default(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info"),
          },
          { level: "LOG_LEVEL" },
        ),
      ),
  };
}

export type Config = ReturnType<typeof loadConfig>;

/** The process's configuration, read from its environment. */
export const config: Config = loadConfig();
