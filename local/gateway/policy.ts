/**
 * What API Gateway makes of a Lambda REQUEST authorizer's answer on `$connect`: an IAM policy that
 * allows or denies `execute-api:Invoke` on the method ARN, a principal id and a context map.
 */

/** The authorizer's context as it reaches `requestContext.authorizer`. */
export type AuthorizerContext = Record<string, string | number | boolean>;

/** The outcome of one authorizer invocation, mapped to what the client sees. */
export type AuthorizerDecision =
  | { kind: "allow"; principalId: string | undefined; context: AuthorizerContext }
  /** Explicit Deny, no matching Allow, or no usable policy: HTTP 403. */
  | { kind: "deny"; reason: string }
  /** The authorizer failed with "Unauthorized": HTTP 401. */
  | { kind: "unauthorized" }
  /** Any other failure, or a context AWS refuses (objects, arrays, null): HTTP 500. */
  | { kind: "error"; reason: string };

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  Resource?: unknown;
}

/** IAM wildcard match: `*` is any run of characters (slashes included), `?` exactly one. */
export function iamMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  let pi = 0;
  let vi = 0;
  let star = -1;
  let mark = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === "?" || p[pi] === v[vi])) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === "*") {
      star = pi++;
      mark = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : [value]);

function statementMatches(statement: Statement, methodArn: string): boolean {
  const actionHit = asList(statement.Action).some(
    (a) => typeof a === "string" && iamMatch(a, "execute-api:Invoke", true),
  );
  const resourceHit = asList(statement.Resource).some((r) => typeof r === "string" && iamMatch(r, methodArn));
  return actionHit && resourceHit;
}

/** Maps an error thrown by the authorizer as Lambda reports it to API Gateway. */
export function decideOnAuthorizerError(error: unknown): AuthorizerDecision {
  const message = error instanceof Error ? error.message : typeof error === "string" ? error : undefined;
  // AWS answers 401 only for the exact message "Unauthorized"; any other failure is a 500.
  if (message === "Unauthorized") return { kind: "unauthorized" };
  return { kind: "error", reason: "the authorizer failed" };
}

/** Maps the authorizer's answer to the decision API Gateway takes for `methodArn`. */
export function decideOnAuthorizerResult(result: unknown, methodArn: string): AuthorizerDecision {
  // A Node callback-style `callback("Unauthorized")` reaches API Gateway as that string.
  if (result === "Unauthorized") return { kind: "unauthorized" };
  if (typeof result !== "object" || result === null)
    return { kind: "deny", reason: "no policy in the answer" };
  const answer = result as { principalId?: unknown; policyDocument?: unknown; context?: unknown };

  let context: AuthorizerContext = {};
  if (answer.context !== undefined) {
    if (typeof answer.context !== "object" || answer.context === null || Array.isArray(answer.context)) {
      return { kind: "error", reason: "the context is not a map" };
    }
    context = {};
    for (const [key, value] of Object.entries(answer.context)) {
      if (value === undefined) continue; // dropped by JSON on the way out of Lambda
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
        return { kind: "error", reason: `the context value of ${key} is not a string, number or boolean` };
      }
      context[key] = value;
    }
  }

  const doc = answer.policyDocument as { Statement?: unknown } | undefined;
  if (typeof doc !== "object" || doc === null || doc.Statement === undefined) {
    return { kind: "deny", reason: "no policy document" };
  }
  const statements = asList(doc.Statement).filter((s): s is Statement => typeof s === "object" && s !== null);
  if (statements.length === 0) return { kind: "deny", reason: "no statement" };

  let allowed = false;
  for (const statement of statements) {
    if (!statementMatches(statement, methodArn)) continue;
    const effect = typeof statement.Effect === "string" ? statement.Effect.toLowerCase() : "";
    if (effect === "deny") return { kind: "deny", reason: "an explicit Deny matches" };
    if (effect === "allow") allowed = true;
  }
  if (!allowed) return { kind: "deny", reason: "no Allow matches the method ARN" };
  const principalId = answer.principalId === undefined ? undefined : String(answer.principalId);
  return { kind: "allow", principalId, context };
}
