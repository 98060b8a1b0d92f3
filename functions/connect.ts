/** `$connect`: the authorizer has accepted the token; record the connection. */
import { createLogger } from "../core/logger";
import { getServices } from "../core/wiring";
import type { HandlerResult, WebSocketEvent } from "./event";
import { callerOf } from "./respond";

const log = createLogger("connect");

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const caller = callerOf(event);
  try {
    await (await getServices()).chat.connect(caller);
    return { statusCode: 200 };
  } catch (error) {
    log.error({ connectionId: caller.connectionId, err: error }, "could not record the connection");
    return { statusCode: 500 };
  }
}
