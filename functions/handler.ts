/**
 * What every route handler shares: reading the caller and the frame from the event, the error
 * frames of PROTOCOL.md, and the mapping of unexpected failures to INTERNAL.
 */
import type { Caller } from "../core/chat";
import { createLogger } from "../core/logger";
import type { core } from "../core/zod";
import type { HandlerResult, WebSocketEvent } from "./event";
import { errorReply, parseBody } from "./reply";

export { errorReply, parseBody, reply } from "./reply";

const log = createLogger("handler");

/** The sentence of each refusal a room action can answer, for a person to read. */
const REFUSALS = {
  NOT_A_MEMBER: "Join the room first.",
  FORBIDDEN: "You may not enter this room, or only its owner may do this.",
  ROOM_FULL: "The room has as many members as it may.",
  ROOM_EXISTS: "A room with this id exists already; choose another id.",
  RATE_LIMITED: "Too many requests: slow down and try again.",
  BAD_REQUEST: "The frame is not valid.",
} as const;

/** The error frame of a refused room action, with its sentence unless one is given. */
export function refuse(code: keyof typeof REFUSALS, action: string, message?: string) {
  return errorReply(code, message ?? REFUSALS[code], { action });
}

/** The caller as the authorizer described it on `$connect`. */
export function callerOf(event: WebSocketEvent): Caller {
  const auth = event.requestContext.authorizer ?? {};
  const userId = auth.userId ?? auth.principalId;
  if (!userId)
    throw new Error("the event carries no authorizer context: is the authorizer attached to $connect?");
  return {
    connectionId: event.requestContext.connectionId,
    userId,
    ...(auth.name ? { name: auth.name } : {}),
  };
}

/** A sentence naming the first problem of a frame that did not match its schema. */
export function describeIssue(error: core.$ZodError, frame: Record<string, unknown>): string {
  const issue = error.issues[0];
  if (!issue) return "The frame is not valid.";
  const field = issue.path.join(".");
  if (issue.code === "invalid_type") {
    // zod reports a wrong type and a missing field alike; the frame tells them apart.
    let value: unknown = frame;
    for (const key of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
    return value === undefined
      ? `The field "${field}" is required.`
      : `The field "${field}" must be ${issue.expected === "number" ? "a number" : `a ${issue.expected}`}.`;
  }
  return field ? `The field "${field}" is not valid: ${issue.message}.` : `${issue.message}.`;
}

type RouteWork = (frame: Record<string, unknown>, caller: Caller) => Promise<HandlerResult>;

/**
 * A route handler over a JSON-object frame: logs with the request's keys (never the body), and
 * answers INTERNAL for any failure the route did not map, echoing the action and clientMsgId.
 */
export function route(action: string, work: RouteWork) {
  return async (event: WebSocketEvent): Promise<HandlerResult> => {
    const started = Date.now();
    const frame = parseBody(event);
    if (!frame) return errorReply("BAD_REQUEST", "The frame must be a JSON object.", { action });
    const context = {
      connectionId: event.requestContext.connectionId,
      requestId: event.requestContext.requestId,
      action,
    };
    try {
      const result = await work(frame, callerOf(event));
      log.debug({ ...context, ms: Date.now() - started }, "handled");
      return result;
    } catch (error) {
      log.error({ ...context, err: error }, "route failed");
      return errorReply("INTERNAL", "Something failed behind the gateway; retrying is safe.", {
        action,
        clientMsgId: frame.clientMsgId,
      });
    }
  };
}
