/**
 * Tokens the tests make by hand: any claims, any algorithm, any key, so that the refusals of the
 * authorizer can be checked one cause at a time.
 */
import type { KeyObject } from "node:crypto";
import { SignJWT } from "jose";

/** Seconds since the epoch, as JWT claims count time. */
export const now = (): number => Math.floor(Date.now() / 1000);

/** A JWT of `claims` signed with `key` (a shared secret, or a private key for RS256) under `alg`. */
export function craftToken(
  claims: Record<string, unknown>,
  key: string | KeyObject,
  alg: "HS256" | "HS384" | "HS512" | "RS256" = "HS256",
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg, typ: "JWT" })
    .sign(typeof key === "string" ? new TextEncoder().encode(key) : key);
}
