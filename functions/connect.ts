/** `$connect`: the authorizer has accepted the token; record the connection. */
import { connect } from "../core/chat";
import { config } from "../core/config";
import { createLogger } from "../core/logger";
import { connectionStore } from "../core/wiring/store";
import type { HandlerResult, WebSocketEvent } from "./event";
import { callerOf } from "./handler";

const log = createLogger("connect");

export async function handler(event: WebSocketEvent): Promise<HandlerResult> {
  const caller = callerOf(event);
  try {
    const outcome = await connect(
      {
        store: connectionStore,
        limits: config.rooms(),
        connectionTtlSeconds: config.table().connectionTtlSeconds,
      },
      caller,
      { batch: event.queryStringParameters?.batch === "1" },
    );
    if (!outcome.ok) {
      log.info({ connectionId: caller.connectionId }, "connection refused: the user has too many");
      // API Gateway answers the upgrade with $connect's status.
      return {
        statusCode: 429,
        body: `This user has ${config.rooms().maxConnectionsPerUser} connections open already; close one first.`,
      };
    }
    return { statusCode: 200 };
  } catch (error) {
    log.error({ connectionId: caller.connectionId, err: error }, "could not record the connection");
    return { statusCode: 500 };
  }
}
