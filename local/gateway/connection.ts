/**
 * One accepted WebSocket connection: its timers (idle, lifetime), what it sends (metered, and
 * bounded for posts: a client that does not read fills its buffer, and PostToConnection answers 429
 * as on AWS), how the gateway closes it, and what follows its close.
 */
import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket } from "ws";
import type { GatewayContext } from "./context";
import type { ConnectionFacts } from "./events";
import { watchFrameSizes } from "./frame-limit";
import { routeMessage, runDisconnect } from "./frames";
import type { Connection } from "./registry";

/** API Gateway's limits. */
export const FRAME_LIMIT_BYTES = 32 * 1024;
export const MESSAGE_LIMIT_BYTES = 128 * 1024;
/** How long a closing handshake may take before the socket is cut. */
export const CLOSE_GRACE_MS = 1000;

/** The close code ws sends for each of its protocol errors. */
const PROTOCOL_ERROR_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
  WS_ERR_INVALID_UTF8: 1007,
};

/** Sends a frame API Gateway itself sends (a route response, an error frame), metered. */
export function sendText(ctx: GatewayContext, conn: Connection, text: string): void {
  if (!conn.open || conn.ws.readyState !== conn.ws.OPEN) return;
  ctx.meter.frameOut(Buffer.byteLength(text));
  conn.ws.send(text);
}

/** Closes a connection from the gateway's side with `code`; $disconnect reports that code. */
export function closeFromGateway(conn: Connection, code: number, reason: string): void {
  if (!conn.open) return;
  conn.open = false;
  conn.closedBy = { code, reason };
  clearTimeout(conn.idleTimer);
  clearTimeout(conn.lifetimeTimer);
  conn.ws.close(code, reason);
  // A client that never answers the close frame is cut, as AWS does not wait for it either.
  setTimeout(() => conn.ws.terminate(), CLOSE_GRACE_MS).unref();
}

/** Completes the WebSocket handshake of an upgrade `$connect` accepted, and registers the connection. */
export function acceptConnection(
  ctx: GatewayContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  facts: ConnectionFacts,
  onAccepted: (ws: WebSocket) => void,
): void {
  const { log, limits } = ctx;
  let oversize = false;
  let conn: Connection | undefined;
  // Attached before ws's own listener, so an oversized frame is seen before ws delivers it.
  watchFrameSizes(socket, FRAME_LIMIT_BYTES, (length) => {
    oversize = true;
    log.warn({ connectionId: facts.connectionId, length }, "frame over 32 KB: closing with 1009");
    if (conn) closeFromGateway(conn, 1009, "Message too big");
  });
  ctx.wss.handleUpgrade(req, socket, head, (ws) => {
    const created: Connection = {
      ...facts,
      ws,
      lastActiveAt: facts.connectedAt,
      open: true,
      idleTimer: setTimeout(() => closeFromGateway(created, 1001, "Going away"), ctx.idleMs).unref(),
      lifetimeTimer: setTimeout(() => closeFromGateway(created, 1001, "Going away"), ctx.lifetimeMs).unref(),
      send(data: Buffer) {
        if (!created.open || ws.readyState !== ws.OPEN) return "sent";
        // "The WebSocket client side buffer is full": AWS answers the post 429 and sends nothing.
        if (ws.bufferedAmount > limits.clientBufferBytes) return "full";
        ctx.meter.frameOut(data.length);
        // AWS delivers posted data as a text frame; bytes that are not UTF-8 cannot be one.
        ws.send(data, { binary: !isUtf8(data) });
        return "sent";
      },
      disconnect() {
        closeFromGateway(created, 1000, "");
      },
    };
    conn = created;
    ctx.registry.add(created);
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (oversize || !created.open) return;
      if (isBinary) {
        // AWS does not accept binary frames from clients: it disconnects with 1003.
        log.warn({ connectionId: created.connectionId }, "binary frame: closing with 1003");
        closeFromGateway(created, 1003, "Binary frames are not supported");
        return;
      }
      const text = Array.isArray(data) ? Buffer.concat(data).toString() : (data as Buffer).toString();
      routeMessage(ctx, created, text);
    });
    ws.on("ping", () => {
      created.lastActiveAt = Date.now();
      created.idleTimer.refresh();
    });
    ws.on("error", (error: Error & { code?: string }) => {
      // ws closes the connection after a protocol error; $disconnect reports the code it sent.
      const code = PROTOCOL_ERROR_CODES[error.code ?? ""] ?? 1002;
      if (created.open) {
        created.open = false;
        created.closedBy = { code, reason: "" };
      }
      log.warn({ connectionId: created.connectionId, code, wsError: error.code }, "WebSocket protocol error");
    });
    ws.on("close", (code: number, reason: Buffer) => {
      created.open = false;
      clearTimeout(created.idleTimer);
      clearTimeout(created.lifetimeTimer);
      ctx.registry.remove(created);
      // Frames still waiting for an invocation slot are never invoked once the connection is gone.
      const dropped = ctx.pool.forget(created.connectionId);
      if (dropped > 0)
        log.info({ connectionId: created.connectionId, dropped }, "closed: waiting frames dropped");
      const by = created.closedBy;
      runDisconnect(ctx, created, by?.code ?? code, by?.reason ?? reason.toString());
    });
    if (oversize) closeFromGateway(created, 1009, "Message too big");
    onAccepted(ws);
  });
}
