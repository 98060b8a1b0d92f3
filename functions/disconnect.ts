/**
 * `$disconnect`: remove the connection and its memberships, and start its presence's grace (best
 * effort, as on AWS; TTL, a 410 and the presence check back it up).
 */
import { disconnect } from "../core/chat";
import { config } from "../core/config";
import { createLogger } from "../core/logger";
import { messageBus } from "../core/wiring/bus";
import { presenceRegistry } from "../core/wiring/presence";
import { connectionStore } from "../core/wiring/store";
import type { HandlerResult, WebSocketEvent } from "./event";

const log = createLogger("disconnect");

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const { connectionId, disconnectStatusCode } = event.requestContext;
  try {
    await disconnect(
      {
        store: connectionStore,
        bus: messageBus,
        presence: presenceRegistry,
        presenceTimes: config.presence(),
      },
      connectionId,
    );
  } catch (error) {
    log.warn(
      { connectionId, disconnectStatusCode, err: error },
      "clean-up failed; TTL or a 410 will finish it",
    );
  }
  return { statusCode: 200 };
}
