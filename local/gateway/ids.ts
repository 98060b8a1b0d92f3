/**
 * Identifiers and time stamps in the shapes API Gateway uses, so that code which logs, stores or
 * parses them sees what it will see on AWS.
 */
import { randomBytes, randomUUID } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

/** Fills from one pooled random buffer: ids are minted per frame, and a syscall per id would show. */
function randomChars(count: number): string {
  if (poolOffset + count > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  let out = "";
  for (let i = 0; i < count; i++) {
    // 256 % 62 leaves a slight bias; these ids need to be unique, not uniform.
    out += ALPHABET[(pool[poolOffset + i] ?? 0) % ALPHABET.length];
  }
  poolOffset += count;
  return out;
}

/**
 * An id in the style of API Gateway's connection, request and message ids: 16 characters, the
 * base64 of 11 bytes, so it ends in one `=` (for example `L0SM9cOFvHcCIhw=`). Only letters and
 * digits are drawn before the `=`, so the id never needs more than `%3D` when put in a URL path.
 */
export function newAwsId(): string {
  return `${randomChars(15)}=`;
}

/** An API id as AWS mints them: 10 lowercase letters and digits. */
export function newApiId(): string {
  const bytes = randomBytes(10);
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

/** A request id for the management API's `x-amzn-RequestId` header (a UUID, as AWS sends). */
export function newRequestUuid(): string {
  return randomUUID();
}

/** An X-Ray style trace header value, as API Gateway adds to `$connect` requests. */
export function newTraceId(now: number): string {
  return `Root=1-${Math.floor(now / 1000).toString(16)}-${randomBytes(12).toString("hex")}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `requestContext.requestTime` in API Gateway's format: `09/Apr/2024:12:34:56 +0000`. */
export function requestTime(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())} +0000`;
}
