/**
 * Answers in the protocol's frames, and the body as a JSON object. No dependency beyond the
 * protocol's types, so the handlers that only answer (ping, $default) bundle small.
 */
import type { ErrorCode, ErrorFrame, ServerFrame } from "../core/protocol";
import type { HandlerResult, WebSocketEvent } from "./event";

export function reply(frame: ServerFrame): HandlerResult {
  return { statusCode: 200, body: JSON.stringify(frame) };
}

export function errorReply(
  code: ErrorCode,
  message: string,
  echo: { action?: unknown; clientMsgId?: unknown } = {},
): HandlerResult {
  const frame: ErrorFrame = { type: "error", code, message };
  if (typeof echo.action === "string") frame.action = echo.action;
  if (typeof echo.clientMsgId === "string") frame.clientMsgId = echo.clientMsgId;
  return reply(frame);
}

/** The body as a JSON object, or undefined when it is not one. */
export function parseBody(event: WebSocketEvent): Record<string, unknown> | undefined {
  if (typeof event.body !== "string") return undefined;
  try {
    const value: unknown = JSON.parse(event.body);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
