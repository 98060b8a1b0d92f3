/**
 * The REQUEST authorizer on `$connect`: a JWT (HS256 with the stack's secret) from `?token=` or
 * `Authorization: Bearer`. Anything else throws "Unauthorized", which API Gateway answers with 401;
 * `$connect` then never runs, so no record is written.
 */
import { verifyToken } from "../core/auth";
import { createLogger } from "../core/logger";
import { jwtSecret } from "../core/secrets";
import type { AuthorizerEvent, AuthorizerResult } from "./event";

const log = createLogger("authorizer");

function tokenOf(event: AuthorizerEvent): string | undefined {
  const fromQuery = event.queryStringParameters?.token;
  if (fromQuery) return fromQuery;
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.toLowerCase() === "authorization" && value) {
      const match = /^Bearer\s+(\S+)$/i.exec(value.trim());
      if (match) return match[1];
    }
  }
  return undefined;
}

export async function handler(event: AuthorizerEvent): Promise<AuthorizerResult> {
  const token = tokenOf(event);
  const verdict = token
    ? await verifyToken(token, await jwtSecret())
    : { ok: false as const, reason: "no token" };
  if (!verdict.ok) {
    log.info(
      { connectionId: event.requestContext?.connectionId, reason: verdict.reason },
      "connection refused",
    );
    throw new Error("Unauthorized");
  }
  const { sub, name } = verdict.claims;
  return {
    principalId: sub,
    policyDocument: {
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: event.methodArn }],
    },
    context: { userId: sub, ...(name ? { name } : {}) },
  };
}
