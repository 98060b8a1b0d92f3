/**
 * The API Gateway management API (`@connections`) on the gateway's own host and port, in the wire
 * format of AWS's restJson1 protocol so that `@aws-sdk/client-apigatewaymanagementapi` maps the
 * answers: 200 / 204 on success, 410 with `x-amzn-ErrorType: GoneException`, 413 with
 * `PayloadTooLargeException`, 403 with `ForbiddenException`, 429 with `LimitExceededException`.
 *
 * It checks what AWS checks before a call reaches a connection: a SigV4 signature of the right shape
 * scoped to `execute-api` (sigv4.ts; the signature itself is not verified, there are no credentials
 * on a developer's machine worth checking against), no browser `Origin`, and the account's request
 * rate, which `@connections` calls share with the clients' frames. A connection whose `$connect` is
 * still running is not yet a connection: it answers 410, as on AWS.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { newRequestUuid } from "./ids";
import { signatureProblem } from "./sigv4";

/** What the management API needs of one live connection. */
export interface ManagedConnection {
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string | null;
  /** Queues `data` as one frame to the client; "full" when its buffer is over the bound (nothing sent). */
  send(data: Buffer): "sent" | "full";
  /** Closes the connection from the gateway's side; `$disconnect` follows. */
  disconnect(): void;
}

/** What the management API reads from the gateway. */
export interface ManagementDeps {
  stage: string;
  maxMessageBytes: number;
  lookup(connectionId: string): ManagedConnection | undefined;
  /** Takes a token of the account's request rate; false when the call is throttled. */
  admit(): boolean;
  /** Told of every call, and of what was refused for being over a limit. */
  onCall(): void;
  onThrottled(kind: "accountCallbacks" | "clientBuffer"): void;
  logger: { warn(o: object, msg?: string): void; info(o: object, msg?: string): void };
  /** How long a call takes before it is served (a simulated round trip to AWS); default 0. */
  latencyMs?: number;
}

const JSON_TYPE = "application/json";

function answer(res: ServerResponse, status: number, body: string, errorType?: string): void {
  const headers: Record<string, string | number> = {
    "Content-Type": JSON_TYPE,
    "Content-Length": Buffer.byteLength(body),
    "x-amzn-RequestId": newRequestUuid(),
  };
  if (errorType) headers["x-amzn-ErrorType"] = errorType;
  res.writeHead(status, headers);
  res.end(body);
}

// AWS sends GoneException without a message, which is why SDK logs read "GoneException: UnknownError".
const GONE_BODY = '{"message":null}';
const FORBIDDEN_BODY = '{"message":"Forbidden"}';
const TOO_LARGE_BODY = '{"message":"Message too long"}';
const LIMIT_BODY = '{"message":"Limit Exceeded"}';

const gone = (res: ServerResponse) => answer(res, 410, GONE_BODY, "GoneException");
const forbidden = (res: ServerResponse, message?: string) =>
  answer(res, 403, message ? JSON.stringify({ message }) : FORBIDDEN_BODY, "ForbiddenException");
const limitExceeded = (res: ServerResponse) => answer(res, 429, LIMIT_BODY, "LimitExceededException");
const tooLarge = (res: ServerResponse) => answer(res, 413, TOO_LARGE_BODY, "PayloadTooLargeException");

/** The connection id in `/{stage}/@connections/{id}`, decoded (the SDK sends `=` as `%3D`), or undefined. */
export function connectionIdFromPath(url: string, stage: string): string | undefined {
  const prefix = `/${stage}/@connections/`;
  if (!url.startsWith(prefix)) return undefined;
  const q = url.indexOf("?", prefix.length);
  const raw = q >= 0 ? url.slice(prefix.length, q) : url.slice(prefix.length);
  if (raw.length === 0 || raw.includes("/")) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** Reads a POST body up to `limit` bytes; answers undefined when the body is larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (over) resolve(undefined);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    });
    req.on("error", reject);
  });
}

/**
 * Serves one HTTP request that is not a WebSocket upgrade; with `latencyMs`, a call to
 * `@connections` is served that much later (its body is read at once, as the network would carry it).
 */
export function handleManagementRequest(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ManagementDeps,
): void {
  const latency = deps.latencyMs ?? 0;
  if (latency > 0 && (req.url ?? "").includes("/@connections/")) {
    const body = readBody(req, deps.maxMessageBytes);
    const later = () => setTimeout(() => serve(req, res, deps, body), latency);
    body.then(later, later);
    return;
  }
  serve(req, res, deps);
}

/** `read`: the body's reading, when it began already (a delayed call). */
function serve(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ManagementDeps,
  read?: Promise<Buffer | undefined>,
): void {
  const url = req.url ?? "/";
  const connectionId = connectionIdFromPath(url, deps.stage);
  if (connectionId === undefined) {
    const path = url.split("?")[0];
    // A plain HTTP request to the WebSocket URL itself.
    if (path === `/${deps.stage}` || path === `/${deps.stage}/`) {
      answer(res, 426, '{"message":"Upgrade Required"}');
      return;
    }
    forbidden(res);
    return;
  }
  deps.onCall();
  const problem = signatureProblem(req.headers, url);
  if (problem !== undefined) {
    deps.logger.info({ connectionId, problem }, "management call refused: signature");
    req.resume();
    forbidden(res, problem);
    return;
  }
  if (req.headers.origin !== undefined) {
    // The management API is for backends; AWS refuses calls a browser makes.
    deps.logger.info({ connectionId }, "management call refused: it carries a browser Origin");
    req.resume();
    forbidden(res);
    return;
  }
  if (!deps.admit()) {
    deps.onThrottled("accountCallbacks");
    req.resume();
    limitExceeded(res);
    return;
  }

  switch (req.method) {
    case "POST": {
      const declared = Number(req.headers["content-length"]);
      if (declared > deps.maxMessageBytes) {
        tooLarge(res);
        return;
      }
      (read ?? readBody(req, deps.maxMessageBytes)).then(
        (body) => {
          if (body === undefined) return tooLarge(res);
          const conn = deps.lookup(connectionId);
          if (!conn) return gone(res);
          if (conn.send(body) === "full") {
            deps.onThrottled("clientBuffer");
            return limitExceeded(res);
          }
          res.writeHead(200, { "Content-Length": 0, "x-amzn-RequestId": newRequestUuid() });
          res.end();
        },
        (error: unknown) => {
          deps.logger.warn({ err: error, connectionId }, "management POST body could not be read");
          if (!res.headersSent) answer(res, 400, '{"message":"Bad Request"}', "BadRequestException");
        },
      );
      return;
    }
    case "GET": {
      const conn = deps.lookup(connectionId);
      if (!conn) {
        gone(res);
        return;
      }
      answer(
        res,
        200,
        JSON.stringify({
          connectedAt: new Date(conn.connectedAt).toISOString(),
          identity: { sourceIp: conn.sourceIp, userAgent: conn.userAgent },
          lastActiveAt: new Date(conn.lastActiveAt).toISOString(),
        }),
      );
      return;
    }
    case "DELETE": {
      const conn = deps.lookup(connectionId);
      if (!conn) {
        gone(res);
        return;
      }
      conn.disconnect();
      res.writeHead(204, { "x-amzn-RequestId": newRequestUuid() });
      res.end();
      return;
    }
    default:
      forbidden(res);
  }
}
