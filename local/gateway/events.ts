/**
 * Lambda proxy events in the shapes API Gateway's WebSocket APIs send: the REQUEST authorizer
 * event, and CONNECT, MESSAGE and DISCONNECT events.
 */
import type { IncomingMessage } from "node:http";
import { newAwsId, newTraceId, requestTime } from "./ids";

/** What the gateway knows of the API it emulates, fixed at start. */
export interface ApiFacts {
  apiId: string;
  stage: string;
  region: string;
  accountId: string;
  /** `host:port`, as the client reaches the API. */
  domainName: string;
  stageVariables: Record<string, string>;
}

/** What one connection carries into each of its events. */
export interface ConnectionFacts {
  connectionId: string;
  connectedAt: number;
  sourceIp: string;
  userAgent: string | null;
  /** `requestContext.authorizer`: principalId, context and integrationLatency. */
  authorizer?: Record<string, unknown>;
}

/** The `$connect` request's headers and query string, as API Gateway passes them on. */
export interface UpgradeRequestParts {
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  queryStringParameters?: Record<string, string>;
  multiValueQueryStringParameters?: Record<string, string[]>;
}

/**
 * Reads headers with their names as the client spelled them (API Gateway does not lower-case
 * them), adds the ones API Gateway adds, and splits the query string.
 */
export function upgradeRequestParts(
  req: IncomingMessage,
  sourceIp: string,
  port: number,
  now: number,
): UpgradeRequestParts {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // Hop-by-hop headers of the upgrade stop at API Gateway.
    const lower = name.toLowerCase();
    if (lower === "connection" || lower === "upgrade") continue;
    headers[name] = value;
    const list = multiValueHeaders[name];
    if (list) list.push(value);
    else multiValueHeaders[name] = [value];
  }
  const added: Record<string, string> = {
    "X-Amzn-Trace-Id": newTraceId(now),
    "X-Forwarded-For": sourceIp,
    "X-Forwarded-Port": String(port),
    "X-Forwarded-Proto": "http",
  };
  for (const [name, value] of Object.entries(added)) {
    headers[name] ??= value;
    multiValueHeaders[name] ??= [value];
  }

  const parts: UpgradeRequestParts = { headers, multiValueHeaders };
  const q = (req.url ?? "").indexOf("?");
  if (q >= 0) {
    const params = new URLSearchParams((req.url ?? "").slice(q + 1));
    const single: Record<string, string> = {};
    const multi: Record<string, string[]> = {};
    for (const [key, value] of params) {
      single[key] = value;
      const list = multi[key];
      if (list) list.push(value);
      else multi[key] = [value];
    }
    if (Object.keys(single).length > 0) {
      parts.queryStringParameters = single;
      parts.multiValueQueryStringParameters = multi;
    }
  }
  return parts;
}

type EventType = "CONNECT" | "MESSAGE" | "DISCONNECT";

function requestContext(
  api: ApiFacts,
  conn: ConnectionFacts,
  routeKey: string,
  eventType: EventType,
  requestId: string,
  now: number,
): Record<string, unknown> {
  const context: Record<string, unknown> = {
    routeKey,
    messageId: eventType === "MESSAGE" ? newAwsId() : null,
    eventType,
    extendedRequestId: requestId,
    requestTime: requestTime(now),
    messageDirection: "IN",
    stage: api.stage,
    connectedAt: conn.connectedAt,
    requestTimeEpoch: now,
    identity: { sourceIp: conn.sourceIp, userAgent: conn.userAgent },
    requestId,
    domainName: api.domainName,
    connectionId: conn.connectionId,
    apiId: api.apiId,
  };
  if (conn.authorizer) context.authorizer = conn.authorizer;
  return context;
}

/** The ARN the authorizer's policy must allow: `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect`. */
export function connectMethodArn(api: ApiFacts): string {
  return `arn:aws:execute-api:${api.region}:${api.accountId}:${api.apiId}/${api.stage}/$connect`;
}

/** The REQUEST authorizer's event for a WebSocket `$connect`. */
export function authorizerEvent(
  api: ApiFacts,
  conn: ConnectionFacts,
  parts: UpgradeRequestParts,
  requestId: string,
  now: number,
): Record<string, unknown> {
  return {
    type: "REQUEST",
    methodArn: connectMethodArn(api),
    headers: parts.headers,
    multiValueHeaders: parts.multiValueHeaders,
    queryStringParameters: parts.queryStringParameters ?? {},
    multiValueQueryStringParameters: parts.multiValueQueryStringParameters ?? {},
    stageVariables: api.stageVariables,
    requestContext: requestContext(
      api,
      { ...conn, authorizer: undefined },
      "$connect",
      "CONNECT",
      requestId,
      now,
    ),
  };
}

const withStageVariables = (api: ApiFacts, event: Record<string, unknown>) => {
  if (Object.keys(api.stageVariables).length > 0) event.stageVariables = api.stageVariables;
  return event;
};

/** The `$connect` route's event: the only one with headers and the query string. */
export function connectEvent(
  api: ApiFacts,
  conn: ConnectionFacts,
  parts: UpgradeRequestParts,
  requestId: string,
  now: number,
): Record<string, unknown> {
  const event: Record<string, unknown> = {
    headers: parts.headers,
    multiValueHeaders: parts.multiValueHeaders,
  };
  if (parts.queryStringParameters) {
    event.queryStringParameters = parts.queryStringParameters;
    event.multiValueQueryStringParameters = parts.multiValueQueryStringParameters;
  }
  event.requestContext = requestContext(api, conn, "$connect", "CONNECT", requestId, now);
  event.isBase64Encoded = false;
  return withStageVariables(api, event);
}

/** A MESSAGE event: the frame's text as `body`, routed to `routeKey`. */
export function messageEvent(
  api: ApiFacts,
  conn: ConnectionFacts,
  routeKey: string,
  body: string,
  requestId: string,
  now: number,
): Record<string, unknown> {
  return withStageVariables(api, {
    requestContext: requestContext(api, conn, routeKey, "MESSAGE", requestId, now),
    body,
    isBase64Encoded: false,
  });
}

/** The `$disconnect` event, sent after the connection has closed. */
export function disconnectEvent(
  api: ApiFacts,
  conn: ConnectionFacts,
  statusCode: number,
  reason: string,
  requestId: string,
  now: number,
): Record<string, unknown> {
  const context = requestContext(api, conn, "$disconnect", "DISCONNECT", requestId, now);
  context.disconnectStatusCode = statusCode;
  context.disconnectReason = reason;
  return withStageVariables(api, { requestContext: context, isBase64Encoded: false });
}
