import jwt from "jsonwebtoken";
import { MAX_TOKEN_LENGTH, signToken, verifyToken } from "./auth";

const secret = "unit-test-secret-of-enough-length-0123456789";
const inAMinute = () => Math.floor(Date.now() / 1000) + 60;

describe("verifyToken", () => {
  test("accepts a token signToken made, with its claims", () => {
    const verdict = verifyToken(signToken(secret, "alice", { name: "Alice" }), secret);
    expect(verdict).toMatchObject({ ok: true, claims: { sub: "alice", name: "Alice" } });
  });

  test.each([
    ["expired", () => jwt.sign({ sub: "a", exp: Math.floor(Date.now() / 1000) - 1 }, secret)],
    ["not yet valid", () => jwt.sign({ sub: "a", exp: inAMinute(), nbf: inAMinute() }, secret)],
    ["signed with another secret", () => jwt.sign({ sub: "a", exp: inAMinute() }, "another-secret")],
    ["HS384", () => jwt.sign({ sub: "a", exp: inAMinute() }, secret, { algorithm: "HS384" })],
    ["without exp", () => jwt.sign({ sub: "a" }, secret)],
    ["with an empty sub", () => jwt.sign({ sub: "", exp: inAMinute() }, secret)],
    ["with a sub out of pattern", () => jwt.sign({ sub: "a b", exp: inAMinute() }, secret)],
    [
      "with a name over 64 characters",
      () => jwt.sign({ sub: "a", name: "n".repeat(65), exp: inAMinute() }, secret),
    ],
    [
      "alg none",
      () =>
        `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(
          JSON.stringify({ sub: "a", exp: inAMinute() }),
        ).toString("base64url")}.`,
    ],
    ["oversized", () => jwt.sign({ sub: "a", exp: inAMinute(), pad: "x".repeat(MAX_TOKEN_LENGTH) }, secret)],
    ["not a JWT", () => "hello"],
  ])("refuses a token %s", (_label, make) => {
    expect(verifyToken(make(), secret).ok).toBe(false);
  });

  test("refuses an RS256/HS256 confusion: a token whose header says RS256", () => {
    const header = Buffer.from('{"alg":"RS256","typ":"JWT"}').toString("base64url");
    const body = Buffer.from(JSON.stringify({ sub: "a", exp: inAMinute() })).toString("base64url");
    const forged = `${header}.${body}.${jwt.sign({}, secret).split(".")[2]}`;
    expect(verifyToken(forged, secret).ok).toBe(false);
  });
});

describe("signToken", () => {
  test("refuses a user id the protocol does not allow", () => {
    expect(() => signToken(secret, "has space")).toThrow();
  });
});
