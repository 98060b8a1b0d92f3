/**
 * Secrets: on AWS they live in Secrets Manager and are named by ARN in the environment; on the local
 * stack they are given directly. Each is fetched once per process (a Lambda's cold start).
 */
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ConfigError, config } from "./config";
import { DependencyError } from "./errors";

const cache = new Map<string, Promise<string>>();
let client: SecretsManagerClient | undefined;

/** Secrets Manager's GetSecretValue. The SDK client is loaded on the first read, so a process given its secrets directly never loads it. */
async function fetchSecret(arn: string): Promise<string> {
  const { GetSecretValueCommand, SecretsManagerClient } =
    require("@aws-sdk/client-secrets-manager") as typeof import("@aws-sdk/client-secrets-manager");
  // A deadline well inside a handler's timeout, like every other remote call of a handler.
  client ??= new SecretsManagerClient({
    region: config.aws().region,
    requestHandler: { connectionTimeout: 1000, requestTimeout: 3000, throwOnRequestTimeout: true },
  });
  const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  if (!out.SecretString) throw new DependencyError("secrets", `secret ${arn} holds no string`);
  return out.SecretString;
}

/** The secret string stored under `arn`. */
export function readSecret(arn: string): Promise<string> {
  let value = cache.get(arn);
  if (!value) {
    value = fetchSecret(arn).catch((cause) => {
      cache.delete(arn);
      throw cause instanceof DependencyError
        ? cause
        : new DependencyError("secrets", `could not read secret ${arn}`, { cause });
    });
    cache.set(arn, value);
  }
  return value;
}

/** The JWT signing secret: JWT_SECRET, or the secret named by JWT_SECRET_ARN. */
export async function jwtSecret(): Promise<string> {
  const { jwtSecret: direct, jwtSecretArn } = config.auth();
  if (direct) return direct;
  if (jwtSecretArn) return readSecret(jwtSecretArn);
  throw new ConfigError(
    "Environment variable JWT_SECRET (or JWT_SECRET_ARN) is missing: set the token signing secret",
  );
}

/** The PostgreSQL URL: DATABASE_URL, or one built from the RDS secret named by DATABASE_SECRET_ARN. */
export async function databaseUrl(): Promise<string> {
  const { url, secretArn } = config.database();
  if (url) return url;
  if (!secretArn) {
    throw new ConfigError(
      "Environment variable DATABASE_URL is missing: set it to postgresql://user@host:port/db",
    );
  }
  const secret = JSON.parse(await readSecret(secretArn)) as Record<string, unknown>;
  const user = encodeURIComponent(String(secret.username ?? ""));
  const password = encodeURIComponent(String(secret.password ?? ""));
  const db = encodeURIComponent(String(secret.dbname ?? "chat"));
  return `postgresql://${user}:${password}@${String(secret.host)}:${String(secret.port ?? 5432)}/${db}?sslmode=verify-full`;
}

/** The Redis AUTH token where REDIS_AUTH_SECRET_ARN names one (ElastiCache), else none. */
export async function redisPassword(): Promise<string | undefined> {
  const { authSecretArn } = config.redis();
  return authSecretArn ? readSecret(authSecretArn) : undefined;
}
