/** `$disconnect`: remove the connection and its memberships (best effort, as on AWS; TTL and 410 back it up). */
import { disconnect } from "../core/chat";
import { createLogger } from "../core/logger";
import { messageBus } from "../core/wiring/bus";
import { connectionStore } from "../core/wiring/store";
import type { HandlerResult, WebSocketEvent } from "./event";

const log = createLogger("disconnect");

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const { connectionId, disconnectStatusCode } = event.requestContext;
  try {
    await disconnect({ store: connectionStore, bus: messageBus }, connectionId);
  } catch (error) {
    log.warn(
      { connectionId, disconnectStatusCode, err: error },
      "clean-up failed; TTL or a 410 will finish it",
    );
  }
  return { statusCode: 200 };
}
