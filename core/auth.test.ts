import { craftToken, now } from "../test/support/tokens";
import { MAX_TOKEN_LENGTH, signToken, verifyToken } from "./auth";

const secret = "unit-test-secret-of-enough-length-0123456789";
const inAMinute = () => now() + 60;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("verifyToken", () => {
  test("accepts a token signToken made, with its claims", async () => {
    const verdict = await verifyToken(await signToken(secret, "alice", { name: "Alice" }), secret);
    expect(verdict).toMatchObject({ ok: true, claims: { sub: "alice", name: "Alice" } });
  });

  test("accepts an HS256 token another signer made, and a token that expired is refused as expired", async () => {
    expect(await verifyToken(await craftToken({ sub: "bob", exp: inAMinute() }, secret), secret)).toEqual({
      ok: true,
      claims: { sub: "bob", exp: expect.any(Number) },
    });
    expect(await verifyToken(await craftToken({ sub: "a", exp: now() - 1 }, secret), secret)).toEqual({
      ok: false,
      reason: "ERR_JWT_EXPIRED",
    });
  });

  test.each([
    ["expired", () => craftToken({ sub: "a", exp: now() - 1 }, secret)],
    ["not yet valid", () => craftToken({ sub: "a", exp: inAMinute(), nbf: inAMinute() }, secret)],
    ["signed with another secret", () => craftToken({ sub: "a", exp: inAMinute() }, "another-secret")],
    ["HS384", () => craftToken({ sub: "a", exp: inAMinute() }, secret, "HS384")],
    ["without exp", () => craftToken({ sub: "a" }, secret)],
    ["with an empty sub", () => craftToken({ sub: "", exp: inAMinute() }, secret)],
    ["with a sub out of pattern", () => craftToken({ sub: "a b", exp: inAMinute() }, secret)],
    [
      "with a name over 64 characters",
      () => craftToken({ sub: "a", name: "n".repeat(65), exp: inAMinute() }, secret),
    ],
    ["alg none", async () => `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "a", exp: inAMinute() })}.`],
    [
      "oversized",
      () => craftToken({ sub: "a", exp: inAMinute(), pad: "x".repeat(MAX_TOKEN_LENGTH) }, secret),
    ],
    ["not a JWT", async () => "hello"],
  ])("refuses a token %s", async (_label, make) => {
    expect((await verifyToken(await make(), secret)).ok).toBe(false);
  });

  test("refuses an RS256/HS256 confusion: a token whose header says RS256", async () => {
    const header = b64({ alg: "RS256", typ: "JWT" });
    const body = b64({ sub: "a", exp: inAMinute() });
    const forged = `${header}.${body}.${(await craftToken({}, secret)).split(".")[2]}`;
    expect((await verifyToken(forged, secret)).ok).toBe(false);
  });
});

describe("signToken", () => {
  test("refuses a user id the protocol does not allow", async () => {
    await expect(signToken(secret, "has space")).rejects.toThrow();
  });
});
