/** `$disconnect`: remove the connection and its memberships (best effort, as on AWS; TTL and 410 back it up). */
import { createLogger } from "../core/logger";
import { getServices } from "../core/wiring";
import type { HandlerResult, WebSocketEvent } from "./event";

const log = createLogger("disconnect");

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const { connectionId, disconnectStatusCode } = event.requestContext;
  try {
    await (await getServices()).chat.disconnect(connectionId);
  } catch (error) {
    log.warn(
      { connectionId, disconnectStatusCode, err: error },
      "clean-up failed; TTL or a 410 will finish it",
    );
  }
  return { statusCode: 200 };
}
