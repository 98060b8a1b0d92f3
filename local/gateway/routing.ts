/**
 * Route selection and what API Gateway makes of a handler's answer: the route key a frame selects,
 * a two-way route's response text, the status of a `$connect` answer, and the error frames and
 * refused upgrades API Gateway sends itself.
 */
import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { newRequestUuid } from "./ids";

/** The gateway could not start (bad options, or the port could not be bound). */
export class GatewayStartError extends Error {
  override name = "GatewayStartError";
}

/** The body path of a route selection expression: `$request.body.action` → ["action"]. */
export function parseSelectionExpression(expression: string): string[] {
  const match = /^\$\{?request\.body\.([A-Za-z0-9_$.-]+)\}?$/.exec(expression.trim());
  if (!match?.[1]) {
    throw new GatewayStartError(
      `unsupported routeSelectionExpression ${JSON.stringify(expression)}: expected $request.body.<field>`,
    );
  }
  return match[1].split(".");
}

/** The route key a frame selects: the string at the expression's path in a JSON object body. */
export function selectRouteKey(body: string, path: readonly string[]): string | undefined {
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
export function routeResponseText(result: unknown): string | undefined {
  if (typeof result === "string") return result;
  if (typeof result !== "object" || result === null) return undefined;
  const body = (result as { body?: unknown }).body;
  if (body === undefined || body === null) return undefined;
  return typeof body === "string" ? body : JSON.stringify(body);
}

/** The `statusCode` of a handler's answer, when it has a whole one. */
export function statusOf(result: unknown): number | undefined {
  if (typeof result !== "object" || result === null) return undefined;
  const code = Number((result as { statusCode?: unknown }).statusCode);
  return Number.isInteger(code) ? code : undefined;
}

/** Whether the identity source named (AWS's `route.request.header.X` / `.querystring.X` syntax) is present. */
export function identityPresent(
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

/** Answers an upgrade request with an HTTP error, as API Gateway does, and closes the socket. */
export function rejectUpgrade(socket: Duplex, status: number, body: string, errorType?: string): void {
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

/** The frame API Gateway sends a client when a route cannot be served (Forbidden, a failed handler, a throttle). */
export const errorFrame = (message: string, connectionId: string, requestId: string) =>
  JSON.stringify({ message, connectionId, requestId });
