/**
 * `npm run token:aws -- --secret-arn <JwtSecretArn output> <userId> [--name <display name>] [--ttl <seconds>]`:
 * prints a token, and only the token, that the deployed stack accepts. It reads the stack's JWT
 * secret from Secrets Manager with your AWS credentials (the region comes from the ARN), so it works
 * for whoever may read that secret and for no one else. JWT_SECRET_ARN may stand for --secret-arn.
 */
import { parseArgs } from "node:util";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { signToken } from "../core/auth";
import { MAX_NAME_LENGTH, USER_ID_PATTERN } from "../core/schemas";

const USAGE =
  "usage: npm run token:aws -- --secret-arn <arn> <userId> [--name <display name>] [--ttl <seconds>]";

/** A bad command line or an unreadable secret, told in one sentence. */
export class TokenCommandError extends Error {
  override name = "TokenCommandError";
}

/** The region of a Secrets Manager ARN (`arn:aws:secretsmanager:{region}:{account}:secret:{name}`). */
export function regionOfArn(arn: string): string {
  const region = arn.split(":")[3];
  if (!arn.startsWith("arn:") || !region) throw new TokenCommandError(`"${arn}" is not a secret ARN.`);
  return region;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { "secret-arn": { type: "string" }, name: { type: "string" }, ttl: { type: "string" } },
    allowPositionals: true,
  });
  const arn = values["secret-arn"] ?? process.env.JWT_SECRET_ARN;
  const [userId, ...rest] = positionals;
  if (!arn) throw new TokenCommandError("Give --secret-arn (the stack's JwtSecretArn output).");
  if (!userId) throw new TokenCommandError("Give the user id the token is for.");
  if (rest.length > 0) throw new TokenCommandError(`Unexpected argument "${rest[0]}".`);
  if (!USER_ID_PATTERN.test(userId)) {
    throw new TokenCommandError("The user id must be 1-64 characters of A-Z a-z 0-9 _ . @ -.");
  }
  if (values.name !== undefined && (values.name.length === 0 || values.name.length > MAX_NAME_LENGTH)) {
    throw new TokenCommandError(`The name must be 1-${MAX_NAME_LENGTH} characters.`);
  }
  const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) {
    throw new TokenCommandError("--ttl must be a whole number of seconds greater than 0.");
  }
  const client = new SecretsManagerClient({ region: regionOfArn(arn) });
  let secret: string | undefined;
  try {
    secret = (await client.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString;
  } catch (cause) {
    throw new TokenCommandError(`Could not read the secret ${arn} with your AWS credentials.`, { cause });
  }
  if (!secret) throw new TokenCommandError(`The secret ${arn} holds no string.`);
  process.stdout.write(`${await signToken(secret, userId, { name: values.name, ttlSeconds })}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : "";
    process.stderr.write(`${message}${cause}\n${USAGE}\n`);
    process.exit(2);
  });
}
