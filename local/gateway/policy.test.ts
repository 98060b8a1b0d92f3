import { decideOnAuthorizerError, decideOnAuthorizerResult, iamMatch } from "./policy";

const ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdefghij/dev/$connect";
const allow = (resource: unknown, extra: object = {}) => ({
  principalId: "u1",
  policyDocument: {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "execute-api:Invoke", Resource: resource }],
  },
  ...extra,
});

describe("iamMatch", () => {
  test.each([
    ["*", ARN, true],
    [ARN, ARN, true],
    ["arn:aws:execute-api:*:*:abcdefghij/*", ARN, true],
    ["arn:aws:execute-api:us-east-1:123456789012:abcdefghij/dev/*", ARN, true],
    ["arn:aws:execute-api:us-east-1:123456789012:abcdefghij/prod/*", ARN, false],
    ["arn:aws:execute-api:us-east-1:123456789012:abcdefghi?/dev/$connect", ARN, true],
    ["arn:aws:execute-api:us-east-1:123456789012:abcdefghij/dev/$connec", ARN, false],
    ["", ARN, false],
  ])("%s matches %s: %s", (pattern, value, expected) => {
    expect(iamMatch(pattern, value)).toBe(expected);
  });
});

describe("decideOnAuthorizerResult", () => {
  test("Allow on the ARN, in a list, or by wildcard allows, with principal and context", () => {
    expect(decideOnAuthorizerResult(allow(ARN, { context: { a: "x", n: 1, b: true } }), ARN)).toEqual({
      kind: "allow",
      principalId: "u1",
      context: { a: "x", n: 1, b: true },
    });
    expect(decideOnAuthorizerResult(allow(["arn:other", ARN]), ARN).kind).toBe("allow");
    expect(decideOnAuthorizerResult(allow("arn:aws:execute-api:*"), ARN).kind).toBe("allow");
  });

  test("a Statement given as one object, and Action lists or wildcards, are read as IAM reads them", () => {
    const single = {
      policyDocument: { Statement: { Effect: "Allow", Action: ["execute-api:*"], Resource: ARN } },
    };
    expect(decideOnAuthorizerResult(single, ARN).kind).toBe("allow");
    const otherAction = {
      policyDocument: { Statement: { Effect: "Allow", Action: "s3:GetObject", Resource: ARN } },
    };
    expect(decideOnAuthorizerResult(otherAction, ARN).kind).toBe("deny");
  });

  test("an explicit Deny wins over an Allow", () => {
    const both = {
      policyDocument: {
        Statement: [
          { Effect: "Allow", Action: "execute-api:Invoke", Resource: "*" },
          { Effect: "Deny", Action: "execute-api:Invoke", Resource: ARN },
        ],
      },
    };
    expect(decideOnAuthorizerResult(both, ARN).kind).toBe("deny");
  });

  test.each([
    ["no answer", undefined],
    ["no policy", { principalId: "u1" }],
    ["an empty statement list", { policyDocument: { Statement: [] } }],
    ["an Allow on another resource", allow("arn:aws:execute-api:us-east-1:123456789012:other/dev/$connect")],
  ])("%s is a 403", (_name, result) => {
    expect(decideOnAuthorizerResult(result, ARN).kind).toBe("deny");
  });

  test("context values that are objects, arrays or null are AWS's configuration error (500)", () => {
    for (const value of [{ a: 1 }, [1], null]) {
      expect(decideOnAuthorizerResult(allow(ARN, { context: { v: value } }), ARN).kind).toBe("error");
    }
    expect(decideOnAuthorizerResult(allow(ARN, { context: "text" }), ARN).kind).toBe("error");
  });

  test('"Unauthorized", thrown or answered, is a 401; any other failure a 500', () => {
    expect(decideOnAuthorizerResult("Unauthorized", ARN).kind).toBe("unauthorized");
    expect(decideOnAuthorizerError(new Error("Unauthorized")).kind).toBe("unauthorized");
    expect(decideOnAuthorizerError(new Error("database down")).kind).toBe("error");
    expect(decideOnAuthorizerError("Unauthorized").kind).toBe("unauthorized");
  });
});
