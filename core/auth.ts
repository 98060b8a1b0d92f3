/**
 * Tokens: HS256 JWTs carrying `sub`, optional `name` and a required `exp`. Verification accepts
 * HS256 only, so `none` and tokens signed with another algorithm (including the RS256/HS256
 * confusion) are refused, as are expired, not-yet-valid, oversized and malformed ones.
 *
 * jose does the JWT work: it has no dependencies and bundles small, and what the authorizer's bundle
 * loads is most of its cold start (`npm run bench` measures it).
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { type TokenClaims, TokenClaims as TokenClaimsSchema } from "./schemas";

/** Longer tokens are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 4096;

export type Verdict = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

const encoder = new TextEncoder();

export async function verifyToken(token: string, secret: string): Promise<Verdict> {
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "token too long" };
  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ["HS256"],
      requiredClaims: ["exp"],
    }));
  } catch (error) {
    return { ok: false, reason: error instanceof errors.JOSEError ? error.code : "invalid token" };
  }
  const parsed = TokenClaimsSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, reason: `bad claims: ${parsed.error.issues[0]?.message}` };
  return { ok: true, claims: parsed.data };
}

/** Signs a token for `userId` that expires after `ttlSeconds`. */
export async function signToken(
  secret: string,
  userId: string,
  options: { name?: string; ttlSeconds?: number } = {},
): Promise<string> {
  const claims = TokenClaimsSchema.parse({
    sub: userId,
    ...(options.name !== undefined ? { name: options.name } : {}),
    exp: Math.floor(Date.now() / 1000) + (options.ttlSeconds ?? 24 * 60 * 60),
  });
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .sign(encoder.encode(secret));
}
