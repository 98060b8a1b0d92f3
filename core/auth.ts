/**
 * Tokens: HS256 JWTs carrying `sub`, optional `name` and a required `exp`. Verification accepts
 * HS256 only, so `none` and tokens signed with another algorithm (including the RS256/HS256
 * confusion) are refused, as are expired, not-yet-valid, oversized and malformed ones.
 */
import jwt from "jsonwebtoken";
import { type TokenClaims, TokenClaims as TokenClaimsSchema } from "./schemas";

/** Longer tokens are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 4096;

export type Verdict = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

export function verifyToken(token: string, secret: string): Verdict {
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "token too long" };
  let payload: unknown;
  try {
    payload = jwt.verify(token, secret, { algorithms: ["HS256"] });
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.name : "invalid token" };
  }
  const parsed = TokenClaimsSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, reason: `bad claims: ${parsed.error.issues[0]?.message}` };
  return { ok: true, claims: parsed.data };
}

/** Signs a token for `userId` that expires after `ttlSeconds`. */
export function signToken(
  secret: string,
  userId: string,
  options: { name?: string; ttlSeconds?: number } = {},
): string {
  const claims = TokenClaimsSchema.parse({
    sub: userId,
    ...(options.name !== undefined ? { name: options.name } : {}),
    exp: Math.floor(Date.now() / 1000) + (options.ttlSeconds ?? 24 * 60 * 60),
  });
  return jwt.sign(claims, secret, { algorithm: "HS256", noTimestamp: false });
}
