/**
 * The local stack's JWT secret: JWT_SECRET where set, else one generated on first use and kept in
 * `.cache/jwt-secret` (ignored by git), so `npm run token` and `npm run dev` of one checkout agree.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export const SECRET_FILE = join(__dirname, "..", ".cache", "jwt-secret");

export function localJwtSecret(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JWT_SECRET) return env.JWT_SECRET;
  try {
    const kept = readFileSync(SECRET_FILE, "utf8").trim();
    if (kept) return kept;
  } catch {
    // Not made yet.
  }
  const secret = randomBytes(32).toString("base64url");
  mkdirSync(dirname(SECRET_FILE), { recursive: true });
  writeFileSync(SECRET_FILE, `${secret}\n`, { mode: 0o600, flag: "wx" });
  return secret;
}
