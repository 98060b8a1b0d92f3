/**
 * Small Lambda handlers for the gateway conformance suite: they record the events they receive and
 * answer in ways that exercise each behaviour of API Gateway (echo, throw, non-2xx, plain string,
 * no body, slow), plus a REQUEST authorizer that decides by token.
 */

import { sleep } from "../core/retry";
import type { LambdaHandler } from "../local/gateway";
import { signedShape } from "./support/raw-client";

/** A recorded invocation. */
export interface Recorded {
  routeKey: string;
  // biome-ignore lint/suspicious/noExplicitAny: events are AWS's untyped JSON
  event: any;
}

/** The fixture handlers, and what they have seen. */
export interface Fixtures {
  routes: Record<string, LambdaHandler>;
  routeResponses: ReadonlySet<string>;
  authorizer: LambdaHandler;
  /** Every event, in order of invocation. */
  seen: Recorded[];
  /** Authorizer events, in order. */
  authorizerEvents: unknown[];
  /** Resolves with the first recorded event matching `predicate` (waits for it). */
  waitFor(predicate: (r: Recorded) => boolean, timeoutMs?: number): Promise<Recorded>;
}

/** Reads the token as the app does: `?token=` or `Authorization: Bearer`, whatever the header's case. */
// biome-ignore lint/suspicious/noExplicitAny: events are AWS's untyped JSON
function tokenOf(event: any): string | undefined {
  const fromQuery = event.queryStringParameters?.token;
  if (typeof fromQuery === "string") return fromQuery;
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string")
      return value.replace(/^Bearer\s+/i, "");
  }
  return undefined;
}

const policy = (effect: "Allow" | "Deny", resource: string | string[]) => ({
  Version: "2012-10-17",
  Statement: [{ Action: "execute-api:Invoke", Effect: effect, Resource: resource }],
});

/** Builds a fresh set of fixtures. */
export function createFixtures(): Fixtures {
  const seen: Recorded[] = [];
  const authorizerEvents: unknown[] = [];
  const waiters: { predicate: (r: Recorded) => boolean; resolve: (r: Recorded) => void }[] = [];

  const record = (routeKey: string, event: unknown) => {
    const entry = { routeKey, event };
    seen.push(entry);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i];
      if (waiter?.predicate(entry)) {
        waiters.splice(i, 1);
        waiter.resolve(entry);
      }
    }
  };

  const authorizer: LambdaHandler = async (event) => {
    authorizerEvents.push(event);
    const token = tokenOf(event);
    const arn: string = event.methodArn;
    if (token?.startsWith("allow-")) {
      return {
        principalId: token.slice("allow-".length),
        policyDocument: policy("Allow", arn),
        context: { userId: token.slice("allow-".length), level: 7, admin: false },
      };
    }
    switch (token) {
      case "wildcard": {
        // arn:aws:execute-api:region:account:apiId/stage/$connect → apiId/*
        const [prefix = "", apiAndRest = ""] = arn.split(/:(?=[^:]*$)/);
        return {
          principalId: "wild",
          policyDocument: policy("Allow", `${prefix}:${apiAndRest.split("/")[0]}/*`),
        };
      }
      case "deny":
        return { principalId: "denied", policyDocument: policy("Deny", arn) };
      case "mixed":
        return {
          principalId: "both",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [...policy("Allow", "*").Statement, ...policy("Deny", arn).Statement],
          },
        };
      case "other-stage":
        return {
          principalId: "other",
          policyDocument: policy("Allow", arn.replace(/\/[^/]+\/\$connect$/, "/prod/$connect")),
        };
      case "no-policy":
        return { principalId: "nobody" };
      case "bad-context":
        return {
          principalId: "bad",
          policyDocument: policy("Allow", arn),
          context: { nested: { no: "objects" } },
        };
      case "boom":
        throw new Error("the authorizer broke");
      default:
        throw new Error("Unauthorized");
    }
  };

  const routes: Record<string, LambdaHandler> = {
    $connect: async (event) => {
      record("$connect", event);
      const q = event.queryStringParameters ?? {};
      if (q.connect === "throw") throw new Error("connect failed");
      if (q.connect === "post-self") {
        // A post to the connection whose $connect is running: AWS answers 410, it is not connected yet.
        const { domainName, stage, connectionId } = event.requestContext;
        const res = await fetch(
          `http://${domainName}/${stage}/@connections/${encodeURIComponent(connectionId)}`,
          { method: "POST", body: "too early", headers: signedShape() },
        );
        record("$connect:post-self", {
          requestContext: event.requestContext,
          status: res.status,
          errorType: res.headers.get("x-amzn-errortype"),
        });
        await res.arrayBuffer();
      }
      if (q.connectStatus) return { statusCode: Number(q.connectStatus), body: "refused by $connect" };
      if (q.protocol) return { statusCode: 200, headers: { "Sec-WebSocket-Protocol": q.protocol } };
      return { statusCode: 200 };
    },
    $disconnect: async (event) => {
      record("$disconnect", event);
      return { statusCode: 200 };
    },
    $default: async (event) => {
      record("$default", event);
      let action: unknown;
      try {
        action = JSON.parse(event.body).action;
      } catch {
        action = undefined;
      }
      const frame = { type: "error", code: "UNKNOWN_ACTION", message: "That action does not exist.", action };
      return { statusCode: 200, body: JSON.stringify(frame) };
    },
    ping: async (event) => {
      record("ping", event);
      return { statusCode: 200, body: JSON.stringify({ type: "pong" }) };
    },
    echo: async (event) => {
      record("echo", event);
      return { statusCode: 200, body: JSON.stringify(event) };
    },
    oneway: async (event) => {
      record("oneway", event);
      return { statusCode: 200, body: "a one-way route's body is not sent" };
    },
    fail: async (event) => {
      record("fail", event);
      throw new Error("handler failed");
    },
    text: async (event) => {
      record("text", event);
      return "a plain string result";
    },
    nobody: async (event) => {
      record("nobody", event);
      return { statusCode: 200 };
    },
    slow: async (event) => {
      record("slow", event);
      const { ms, n } = JSON.parse(event.body) as { ms: number; n: number };
      await sleep(ms);
      return { statusCode: 200, body: JSON.stringify({ n }) };
    },
  };

  return {
    routes,
    routeResponses: new Set(["$default", "ping", "echo", "text", "nobody", "slow", "fail"]),
    authorizer,
    seen,
    authorizerEvents,
    waitFor(predicate, timeoutMs = 3000) {
      const found = seen.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("no matching event was recorded in time")),
          timeoutMs,
        );
        waiters.push({
          predicate,
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        });
      });
    },
  };
}
