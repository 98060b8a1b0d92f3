/**
 * An emulator of API Gateway's WebSocket APIs, for running the project's Lambda handlers on one
 * machine. It is faithful where the common local emulators are not: the stage in the path, the
 * REQUEST authorizer and `$connect` deciding the upgrade, AWS-shaped events, route selection with
 * `$default` and the `Forbidden` frame, two-way route responses, the frame, message, idle and
 * lifetime limits, and the `@connections` management API that the real SDK client talks to.
 */

import { isUtf8 } from "node:buffer";
import http, { type IncomingMessage, STATUS_CODES } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import {
  type ApiFacts,
  authorizerEvent,
  type ConnectionFacts,
  connectEvent,
  connectMethodArn,
  disconnectEvent,
  messageEvent,
  upgradeRequestParts,
} from "./events";
import { watchFrameSizes } from "./frame-limit";
import { newApiId, newAwsId, newRequestUuid } from "./ids";
import { handleManagementRequest, type ManagedConnection } from "./management";
import { decideOnAuthorizerError, decideOnAuthorizerResult } from "./policy";

/** The Lambda context passed to handlers: the fields handlers commonly read. */
export interface LambdaContext {
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  awsRequestId: string;
  logGroupName: string;
  logStreamName: string;
  callbackWaitsForEmptyEventLoop: boolean;
  getRemainingTimeInMillis(): number;
}

/** A Lambda handler as the routes export it: API Gateway's events are untyped at this edge. */
// biome-ignore lint/suspicious/noExplicitAny: the events and results are AWS's untyped JSON
export type LambdaHandler = (event: any, context: LambdaContext) => Promise<any>;

/** The logger the gateway writes to: pino's shape, so the process's one logger can be passed. */
export interface GatewayLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/** How to start the emulator. */
export interface GatewayOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** The stage name; the WebSocket URL is ws://host:port/{stage}. */
  stage: string;
  /** Default: 10 lowercase alphanumerics, generated. */
  apiId?: string;
  /** Route key → handler: "$connect", "$disconnect", "$default" and action values. */
  routes: Record<string, LambdaHandler>;
  /** Route keys whose handler result body is sent back to the client (two-way routes). */
  routeResponses: ReadonlySet<string>;
  /** REQUEST authorizer on $connect. */
  authorizer?: LambdaHandler;
  /**
   * Identity sources of the authorizer (`route.request.header.Authorization`,
   * `route.request.querystring.token`): when one is missing, AWS answers 401 without invoking it.
   * Default: none checked.
   */
  identitySource?: readonly string[];
  /** Default "$request.body.action". */
  routeSelectionExpression?: string;
  /** Default 10 min. */
  idleTimeoutMs?: number;
  /** Default 2 h. */
  maxLifetimeMs?: number;
  /** How long a handler may run before API Gateway gives up on it; default 29 s. */
  integrationTimeoutMs?: number;
  /** Region and account in the method ARN; defaults us-east-1 and 123456789012. */
  region?: string;
  accountId?: string;
  stageVariables?: Record<string, string>;
  logger?: GatewayLogger;
}

/** A started emulator. */
export interface RunningGateway {
  /** ws://127.0.0.1:PORT/STAGE */
  url: string;
  /** http://127.0.0.1:PORT/STAGE: the SDK client's `endpoint`. */
  managementEndpoint: string;
  port: number;
  apiId: string;
  connectionCount(): number;
  /** Closes every connection (running $disconnect for each) and the server. */
  close(): Promise<void>;
}

/** The gateway could not start (bad options, or the port could not be bound). */
export class GatewayStartError extends Error {
  override name = "GatewayStartError";
}

/** A handler ran past the integration timeout. */
export class IntegrationTimeoutError extends Error {
  override name = "IntegrationTimeoutError";
}

/** API Gateway's limits. */
export const FRAME_LIMIT_BYTES = 32 * 1024;
export const MESSAGE_LIMIT_BYTES = 128 * 1024;
const DEFAULT_IDLE_MS = 10 * 60 * 1000;
const DEFAULT_LIFETIME_MS = 2 * 60 * 60 * 1000;
const DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000;
/** How long a closing handshake may take before the socket is cut. */
const CLOSE_GRACE_MS = 1000;

/** The close code ws sends for each of its protocol errors. */
const PROTOCOL_ERROR_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
  WS_ERR_INVALID_UTF8: 1007,
};

const silentLogger: GatewayLogger = { info() {}, warn() {}, error() {} };

interface Connection extends ConnectionFacts, ManagedConnection {
  ws: WebSocket;
  /** Invocations of this connection run one after the other, in order of arrival. */
  queue: Promise<void>;
  idleTimer: NodeJS.Timeout;
  lifetimeTimer: NodeJS.Timeout;
  /** Set when the gateway closes the connection: the code and reason $disconnect reports. */
  closedBy?: { code: number; reason: string };
  open: boolean;
}

type Invocation = { ok: true; result: unknown } | { ok: false; error: unknown; timedOut: boolean };

/** The body path of a route selection expression: `$request.body.action` → ["action"]. */
function parseSelectionExpression(expression: string): string[] {
  const match = /^\$\{?request\.body\.([A-Za-z0-9_$.-]+)\}?$/.exec(expression.trim());
  if (!match?.[1]) {
    throw new GatewayStartError(
      `unsupported routeSelectionExpression ${JSON.stringify(expression)}: expected $request.body.<field>`,
    );
  }
  return match[1].split(".");
}

/** The route key a frame selects: the string at the expression's path in a JSON object body. */
function selectRouteKey(body: string, path: readonly string[]): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  for (const key of path) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return typeof value === "string" ? value : undefined;
}

/** What a two-way route sends back: the result's `body`, or the result itself when a string. */
function routeResponseText(result: unknown): string | undefined {
  if (typeof result === "string") return result;
  if (typeof result !== "object" || result === null) return undefined;
  const body = (result as { body?: unknown }).body;
  if (body === undefined || body === null) return undefined;
  return typeof body === "string" ? body : JSON.stringify(body);
}

const statusOf = (result: unknown): number | undefined => {
  if (typeof result !== "object" || result === null) return undefined;
  const code = Number((result as { statusCode?: unknown }).statusCode);
  return Number.isInteger(code) ? code : undefined;
};

/** Whether the identity source named (AWS's `route.request.header.X` / `.querystring.X` syntax) is present. */
function identityPresent(
  source: string,
  req: IncomingMessage,
  query: Record<string, string> | undefined,
): boolean {
  const header = /^route\.request\.header\.(.+)$/i.exec(source);
  if (header?.[1]) return (req.headers[header[1].toLowerCase()] ?? "") !== "";
  const qs = /^route\.request\.querystring\.(.+)$/i.exec(source);
  if (qs?.[1]) return (query?.[qs[1]] ?? "") !== "";
  return true;
}

function rejectUpgrade(socket: Duplex, status: number, body: string, errorType?: string): void {
  if (socket.destroyed) return;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    `x-amzn-RequestId: ${newRequestUuid()}`,
  ];
  if (errorType) lines.push(`x-amzn-ErrorType: ${errorType}`);
  socket.once("finish", () => socket.destroy());
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

const errorFrame = (message: string, connectionId: string, requestId: string) =>
  JSON.stringify({ message, connectionId, requestId });

/**
 * Starts the emulator and resolves once it accepts connections.
 */
export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  if (!/^[A-Za-z0-9_-]+$/.test(opts.stage)) {
    throw new GatewayStartError(`stage ${JSON.stringify(opts.stage)} must be letters, digits, - or _`);
  }
  const host = opts.host ?? "127.0.0.1";
  const log = opts.logger ?? silentLogger;
  const selectionPath = parseSelectionExpression(opts.routeSelectionExpression ?? "$request.body.action");
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
  const lifetimeMs = opts.maxLifetimeMs ?? DEFAULT_LIFETIME_MS;
  const integrationTimeoutMs = opts.integrationTimeoutMs ?? DEFAULT_INTEGRATION_TIMEOUT_MS;
  const apiId = opts.apiId ?? newApiId();
  const connections = new Map<string, Connection>();
  /** Upgrades between the request and the accepted WebSocket (authorizer and $connect running). */
  const pendingUpgrades = new Set<Duplex>();
  /** $disconnect invocations still running, so close() can wait for them. */
  const draining = new Set<Promise<void>>();
  let closing = false;
  let port = 0; // known once the server is bound

  const api: ApiFacts = {
    apiId,
    stage: opts.stage,
    region: opts.region ?? "us-east-1",
    accountId: opts.accountId ?? "123456789012",
    domainName: "", // known once the port is bound
    stageVariables: opts.stageVariables ?? {},
  };

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: MESSAGE_LIMIT_BYTES,
    perMessageDeflate: false,
    // The protocol $connect chose (its Sec-WebSocket-Protocol response header), as AWS echoes it.
    handleProtocols: (_protocols, req) =>
      (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol ?? false,
  });

  async function invoke(
    routeKey: string,
    handler: LambdaHandler,
    event: Record<string, unknown>,
    requestId: string,
  ): Promise<Invocation> {
    const started = Date.now();
    const context: LambdaContext = {
      functionName: `${apiId}-${routeKey}`,
      functionVersion: "$LATEST",
      invokedFunctionArn: `arn:aws:lambda:${api.region}:${api.accountId}:function:${apiId}-${routeKey}`,
      memoryLimitInMB: "1024",
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${apiId}-${routeKey}`,
      logStreamName: "local",
      callbackWaitsForEmptyEventLoop: false,
      getRemainingTimeInMillis: () => Math.max(0, integrationTimeoutMs - (Date.now() - started)),
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new IntegrationTimeoutError(`${routeKey} ran past ${integrationTimeoutMs} ms`)),
          integrationTimeoutMs,
        );
        timer.unref();
      });
      // A handler that throws synchronously is caught like one that rejects.
      const result = await Promise.race([Promise.resolve().then(() => handler(event, context)), timeout]);
      return { ok: true, result };
    } catch (error) {
      return { ok: false, error, timedOut: error instanceof IntegrationTimeoutError };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  function enqueue(conn: Connection, work: () => Promise<void>): Promise<void> {
    const next = conn.queue.then(work).catch((error: unknown) => {
      log.error({ err: error, connectionId: conn.connectionId }, "gateway invocation failed unexpectedly");
    });
    conn.queue = next;
    return next;
  }

  function sendText(conn: Connection, text: string): void {
    if (conn.open && conn.ws.readyState === conn.ws.OPEN) conn.ws.send(text);
  }

  /** Closes a connection from the gateway's side with `code`; $disconnect reports that code. */
  function closeFromGateway(conn: Connection, code: number, reason: string): void {
    if (!conn.open) return;
    conn.open = false;
    conn.closedBy = { code, reason };
    clearTimeout(conn.idleTimer);
    clearTimeout(conn.lifetimeTimer);
    conn.ws.close(code, reason);
    // A client that never answers the close frame is cut, as AWS does not wait for it either.
    setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  function routeMessage(conn: Connection, body: string): void {
    conn.lastActiveAt = Date.now();
    conn.idleTimer.refresh();
    const selected = selectRouteKey(body, selectionPath);
    const routeKey =
      selected !== undefined && Object.hasOwn(opts.routes, selected) && !selected.startsWith("$")
        ? selected
        : "$default";
    const handler = opts.routes[routeKey];
    void enqueue(conn, async () => {
      const requestId = newAwsId();
      if (!handler) {
        log.info({ connectionId: conn.connectionId, requestId }, "no route matches the message: Forbidden");
        sendText(conn, errorFrame("Forbidden", conn.connectionId, requestId));
        return;
      }
      const now = Date.now();
      const event = messageEvent(api, conn, routeKey, body, requestId, now);
      const outcome = await invoke(routeKey, handler, event, requestId);
      const fields = { connectionId: conn.connectionId, routeKey, requestId, ms: Date.now() - now };
      if (!outcome.ok) {
        log.warn({ ...fields, err: outcome.error }, "route handler failed");
        const message = outcome.timedOut ? "Endpoint request timed out" : "Internal server error";
        sendText(conn, errorFrame(message, conn.connectionId, requestId));
        return;
      }
      log.info({ ...fields, status: statusOf(outcome.result) }, "route handled");
      if (opts.routeResponses.has(routeKey)) {
        const text = routeResponseText(outcome.result);
        if (text !== undefined) sendText(conn, text);
      }
    });
  }

  function runDisconnect(conn: Connection, code: number, reason: string): void {
    const handler = opts.routes.$disconnect;
    const done = enqueue(conn, async () => {
      if (!handler) return;
      const requestId = newAwsId();
      const event = disconnectEvent(api, conn, code, reason, requestId, Date.now());
      const outcome = await invoke("$disconnect", handler, event, requestId);
      if (!outcome.ok) {
        log.warn(
          { connectionId: conn.connectionId, requestId, err: outcome.error },
          "$disconnect handler failed",
        );
      } else {
        log.info({ connectionId: conn.connectionId, requestId, code }, "disconnected");
      }
    });
    draining.add(done);
    void done.finally(() => draining.delete(done));
  }

  function accept(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    facts: ConnectionFacts,
    onAccepted: (ws: WebSocket) => void,
  ): void {
    let oversize = false;
    let conn: Connection | undefined;
    // Attached before ws's own listener, so an oversized frame is seen before ws delivers it.
    watchFrameSizes(socket, FRAME_LIMIT_BYTES, (length) => {
      oversize = true;
      log.warn({ connectionId: facts.connectionId, length }, "frame over 32 KB: closing with 1009");
      if (conn) closeFromGateway(conn, 1009, "Message too big");
    });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const created: Connection = {
        ...facts,
        ws,
        queue: Promise.resolve(),
        lastActiveAt: facts.connectedAt,
        open: true,
        idleTimer: setTimeout(() => closeFromGateway(created, 1001, "Going away"), idleMs).unref(),
        lifetimeTimer: setTimeout(() => closeFromGateway(created, 1001, "Going away"), lifetimeMs).unref(),
        send(data: Buffer) {
          if (!created.open || ws.readyState !== ws.OPEN) return;
          // AWS delivers posted data as a text frame; bytes that are not UTF-8 cannot be one.
          ws.send(data, { binary: !isUtf8(data) });
        },
        disconnect() {
          closeFromGateway(created, 1000, "");
        },
      };
      conn = created;
      connections.set(created.connectionId, created);
      ws.on("message", (data: RawData, isBinary: boolean) => {
        if (oversize || !created.open) return;
        if (isBinary) {
          // AWS does not accept binary frames from clients: it disconnects with 1003.
          log.warn({ connectionId: created.connectionId }, "binary frame: closing with 1003");
          closeFromGateway(created, 1003, "Binary frames are not supported");
          return;
        }
        const text = Array.isArray(data) ? Buffer.concat(data).toString() : (data as Buffer).toString();
        routeMessage(created, text);
      });
      ws.on("ping", () => {
        created.lastActiveAt = Date.now();
        created.idleTimer.refresh();
      });
      ws.on("error", (error: Error & { code?: string }) => {
        // ws closes the connection after a protocol error; $disconnect reports the code it sent.
        const code = PROTOCOL_ERROR_CODES[error.code ?? ""] ?? 1002;
        if (created.open) {
          created.open = false;
          created.closedBy = { code, reason: "" };
        }
        log.warn(
          { connectionId: created.connectionId, code, wsError: error.code },
          "WebSocket protocol error",
        );
      });
      ws.on("close", (code: number, reason: Buffer) => {
        created.open = false;
        clearTimeout(created.idleTimer);
        clearTimeout(created.lifetimeTimer);
        connections.delete(created.connectionId);
        const by = created.closedBy;
        runDisconnect(created, by?.code ?? code, by?.reason ?? reason.toString());
      });
      if (oversize) closeFromGateway(created, 1009, "Message too big");
      onAccepted(ws);
    });
  }

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => {}); // a client that drops mid-upgrade must not crash the process
    const url = req.url ?? "/";
    const path = url.split("?")[0];
    if (closing) return rejectUpgrade(socket, 503, '{"message":"Service Unavailable"}');
    if (path !== `/${opts.stage}` && path !== `/${opts.stage}/`) {
      return rejectUpgrade(socket, 403, '{"message":"Forbidden"}', "ForbiddenException");
    }
    const key = req.headers["sec-websocket-key"];
    const version = req.headers["sec-websocket-version"];
    if (
      (req.headers.upgrade ?? "").toLowerCase() !== "websocket" ||
      !key ||
      (version !== "13" && version !== "8")
    ) {
      return rejectUpgrade(socket, 400, '{"message":"Bad Request"}');
    }

    const now = Date.now();
    const remote = req.socket.remoteAddress ?? "127.0.0.1";
    const facts: ConnectionFacts = {
      connectionId: newAwsId(),
      connectedAt: now,
      sourceIp: remote.startsWith("::ffff:") ? remote.slice(7) : remote,
      userAgent: req.headers["user-agent"] ?? null,
    };
    const parts = upgradeRequestParts(req, facts.sourceIp, port, now);
    const requestId = newAwsId();
    const logFields = { connectionId: facts.connectionId, requestId };
    pendingUpgrades.add(socket);
    try {
      if (opts.authorizer) {
        const missing = (opts.identitySource ?? []).find(
          (s) => !identityPresent(s, req, parts.queryStringParameters),
        );
        if (missing) {
          log.info({ ...logFields, identitySource: missing }, "identity source missing: 401");
          return rejectUpgrade(socket, 401, '{"message":"Unauthorized"}', "UnauthorizedException");
        }
        const started = Date.now();
        const outcome = await invoke(
          "$authorizer",
          opts.authorizer,
          authorizerEvent(api, facts, parts, requestId, now),
          requestId,
        );
        const decision = outcome.ok
          ? decideOnAuthorizerResult(outcome.result, connectMethodArn(api))
          : decideOnAuthorizerError(outcome.error);
        switch (decision.kind) {
          case "unauthorized":
            log.info(logFields, "authorizer: Unauthorized (401)");
            return rejectUpgrade(socket, 401, '{"message":"Unauthorized"}', "UnauthorizedException");
          case "deny":
            log.info({ ...logFields, reason: decision.reason }, "authorizer: Forbidden (403)");
            return rejectUpgrade(socket, 403, '{"message":"Forbidden"}', "AccessDeniedException");
          case "error":
            log.warn(
              { ...logFields, reason: decision.reason, err: outcome.ok ? undefined : outcome.error },
              "authorizer failed (500)",
            );
            return rejectUpgrade(
              socket,
              500,
              '{"message":"Internal server error"}',
              "AuthorizerConfigurationException",
            );
          case "allow": {
            const authorizer: Record<string, unknown> = { ...decision.context };
            if (decision.principalId !== undefined) authorizer.principalId = decision.principalId;
            authorizer.integrationLatency = Date.now() - started;
            facts.authorizer = authorizer;
          }
        }
      }

      const connectHandler = opts.routes.$connect;
      let connectRan = false;
      if (connectHandler) {
        const outcome = await invoke(
          "$connect",
          connectHandler,
          connectEvent(api, facts, parts, requestId, now),
          requestId,
        );
        connectRan = true;
        if (!outcome.ok) {
          log.warn({ ...logFields, err: outcome.error }, "$connect handler failed: refusing the upgrade");
          const status = outcome.timedOut ? 504 : 502;
          return rejectUpgrade(socket, status, '{"message":"Internal server error"}');
        }
        const status = statusOf(outcome.result) ?? 200;
        if (status < 200 || status > 299) {
          log.info({ ...logFields, status }, "$connect refused the connection");
          const text = routeResponseText(outcome.result) ?? "";
          return rejectUpgrade(socket, status, text);
        }
        const headers = (outcome.result as { headers?: Record<string, unknown> } | undefined)?.headers;
        const protocol = headers
          ? Object.entries(headers).find(([name]) => name.toLowerCase() === "sec-websocket-protocol")?.[1]
          : undefined;
        if (typeof protocol === "string")
          (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol = protocol;
      }

      if (socket.destroyed || closing) {
        // The client left while $connect ran; its record may exist, so $disconnect must clean it up.
        if (connectRan && opts.routes.$disconnect) {
          const ghost = { ...facts, queue: Promise.resolve() } as unknown as Connection;
          runDisconnect(ghost, 1006, "");
        }
        socket.destroy();
        return;
      }
      accept(req, socket, head, facts, () => {
        log.info({ ...logFields, sourceIp: facts.sourceIp }, "connected");
      });
    } finally {
      pendingUpgrades.delete(socket);
    }
  }

  const server = http.createServer({ keepAlive: true }, (req, res) =>
    handleManagementRequest(req, res, {
      stage: opts.stage,
      maxMessageBytes: MESSAGE_LIMIT_BYTES,
      lookup: (id) => connections.get(id),
      logger: log,
    }),
  );
  // The SDK keeps sockets alive for reuse; a server that closes them first makes it retry.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrade(req, socket, head).catch((error: unknown) => {
      log.error({ err: error }, "upgrade failed unexpectedly");
      rejectUpgrade(socket, 500, '{"message":"Internal server error"}');
    });
  });
  server.on("clientError", (_error, socket) => {
    if (!socket.destroyed) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(new GatewayStartError(`could not listen on ${host}:${opts.port}`, { cause: error }));
    server.once("error", onError);
    server.listen(opts.port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  api.domainName = `${host}:${port}`;
  const base = `${host}:${port}/${opts.stage}`;
  log.info({ url: `ws://${base}`, apiId }, "API Gateway emulator listening");

  return {
    url: `ws://${base}`,
    managementEndpoint: `http://${base}`,
    port,
    apiId,
    connectionCount: () => connections.size,
    async close() {
      if (closing) return;
      closing = true;
      for (const socket of pendingUpgrades) socket.destroy();
      for (const conn of connections.values()) closeFromGateway(conn, 1001, "Going away");
      // Wait for every close event, then for every $disconnect it started.
      const deadline = Date.now() + CLOSE_GRACE_MS * 2;
      while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      for (const conn of connections.values()) conn.ws.terminate();
      while (connections.size > 0 && Date.now() < deadline + 500) await new Promise((r) => setTimeout(r, 10));
      await Promise.allSettled([...draining]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      log.info({ apiId }, "API Gateway emulator closed");
    },
  };
}
