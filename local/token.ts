/**
 * `npm run token -- <userId> [--name <display name>] [--ttl <seconds>]`: prints a token, and only the
 * token, that the local stack of this checkout accepts.
 */
import { parseArgs } from "node:util";
import { signToken } from "../core/auth";
import { MAX_NAME_LENGTH, USER_ID_PATTERN } from "../core/schemas";
import { localJwtSecret } from "./secret";

const USAGE = "usage: npm run token -- <userId> [--name <display name>] [--ttl <seconds>]";

function fail(sentence: string): never {
  process.stderr.write(`${sentence}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed: ReturnType<
    typeof parseArgs<{
      options: { name: { type: "string" }; ttl: { type: "string" } };
      allowPositionals: true;
    }>
  >;
  try {
    parsed = parseArgs({
      options: { name: { type: "string" }, ttl: { type: "string" } },
      allowPositionals: true,
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  const [userId, ...rest] = parsed.positionals;
  if (!userId) fail("Give the user id the token is for.");
  if (rest.length > 0) fail(`Unexpected argument "${rest[0]}".`);
  if (!USER_ID_PATTERN.test(userId)) fail("The user id must be 1-64 characters of A-Z a-z 0-9 _ . @ -.");
  const { name, ttl } = parsed.values;
  if (name !== undefined && (name.length === 0 || name.length > MAX_NAME_LENGTH)) {
    fail(`The name must be 1-${MAX_NAME_LENGTH} characters.`);
  }
  const ttlSeconds = ttl === undefined ? undefined : Number(ttl);
  if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) {
    fail("--ttl must be a whole number of seconds greater than 0.");
  }
  process.stdout.write(`${await signToken(localJwtSecret(), userId, { name, ttlSeconds })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
