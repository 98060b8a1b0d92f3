/** `$default`: frames no route matched: not a JSON object (BAD_REQUEST) or an unknown action. */
import { ACTIONS } from "../core/protocol";
import type { HandlerResult, WebSocketEvent } from "./event";
import { errorReply, parseBody } from "./reply";

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const frame = parseBody(event);
  if (!frame) return errorReply("BAD_REQUEST", "The frame must be a JSON object with an action.");
  const { action } = frame;
  if (typeof action !== "string") {
    return errorReply("UNKNOWN_ACTION", `The frame needs an "action": one of ${ACTIONS.join(", ")}.`);
  }
  return errorReply("UNKNOWN_ACTION", `Unknown action; use one of ${ACTIONS.join(", ")}.`, { action });
}
