/**
 * What happens to a client's frame: metered, throttled (the account's rate, then the route's),
 * routed, and invoked in the invocation pool, concurrently with the connection's other frames as
 * on AWS; the route response or AWS's error frame goes back. And `$disconnect` after a close: best
 * effort as on AWS, so a setting can drop a share of them or run them late.
 */

import { sendText } from "./connection";
import type { GatewayContext } from "./context";
import { disconnectEvent, messageEvent } from "./events";
import { newAwsId } from "./ids";
import { invoke } from "./invocations";
import type { Connection } from "./registry";
import { errorFrame, routeResponseText, selectRouteKey, statusOf } from "./routing";

/** The frame a throttled client gets (429 on AWS's side). */
export const THROTTLED_MESSAGE = "Too Many Requests";

export function routeMessage(ctx: GatewayContext, conn: Connection, body: string): void {
  const { opts, log } = ctx;
  conn.lastActiveAt = Date.now();
  conn.idleTimer.refresh();
  ctx.meter.frameIn(Buffer.byteLength(body));
  const selected = selectRouteKey(body, ctx.selectionPath);
  const routeKey =
    selected !== undefined && Object.hasOwn(opts.routes, selected) && !selected.startsWith("$")
      ? selected
      : "$default";
  const handler = opts.routes[routeKey];
  const requestId = newAwsId();
  const refuse = (kind: "account" | "route" | "concurrency" | "connectionQueue") => {
    ctx.meter.throttle(kind);
    log.info({ connectionId: conn.connectionId, routeKey, requestId, limit: kind }, "frame throttled (429)");
    sendText(ctx, conn, errorFrame(THROTTLED_MESSAGE, conn.connectionId, requestId));
  };
  if (!ctx.throttles.account.take()) {
    refuse("account");
    return;
  }
  if (!handler) {
    log.info({ connectionId: conn.connectionId, requestId }, "no route matches the message: Forbidden");
    sendText(ctx, conn, errorFrame("Forbidden", conn.connectionId, requestId));
    return;
  }
  if (!ctx.throttles.route(routeKey).take()) {
    refuse("route");
    return;
  }
  const admission = ctx.pool.submit(conn.connectionId, async () => {
    if (!conn.open) return;
    const now = Date.now();
    const event = messageEvent(ctx.api, conn, routeKey, body, requestId, now);
    const outcome = await invoke(ctx.target, routeKey, handler, event, requestId);
    const fields = { connectionId: conn.connectionId, routeKey, requestId, ms: Date.now() - now };
    if (!outcome.ok) {
      log.warn({ ...fields, err: outcome.error }, "route handler failed");
      const message = outcome.timedOut ? "Endpoint request timed out" : "Internal server error";
      sendText(ctx, conn, errorFrame(message, conn.connectionId, requestId));
      return;
    }
    log.info({ ...fields, status: statusOf(outcome.result) }, "route handled");
    if (opts.routeResponses.has(routeKey)) {
      const text = routeResponseText(outcome.result);
      if (text !== undefined) sendText(ctx, conn, text);
    }
  });
  if (admission === "overConcurrency") refuse("concurrency");
  else if (admission === "overQueue") refuse("connectionQueue");
}

/** Runs `$disconnect` for a closed connection (unless the drop rate drops it), after the set delay. */
export function runDisconnect(ctx: GatewayContext, conn: Connection, code: number, reason: string): void {
  const handler = ctx.opts.routes.$disconnect;
  if (!handler) return;
  const { log, limits } = ctx;
  if (limits.disconnectDropRate > 0 && ctx.random() < limits.disconnectDropRate) {
    ctx.meter.throttle("disconnectDropped");
    log.info({ connectionId: conn.connectionId, code }, "$disconnect dropped (GATEWAY_DISCONNECT_DROP)");
    return;
  }
  const done = (async () => {
    if (limits.disconnectDelayMs > 0) await new Promise((r) => setTimeout(r, limits.disconnectDelayMs));
    const requestId = newAwsId();
    const event = disconnectEvent(ctx.api, conn, code, reason, requestId, Date.now());
    const outcome = await invoke(ctx.target, "$disconnect", handler, event, requestId);
    if (!outcome.ok) {
      log.warn(
        { connectionId: conn.connectionId, requestId, err: outcome.error },
        "$disconnect handler failed",
      );
    } else {
      log.info({ connectionId: conn.connectionId, requestId, code }, "disconnected");
    }
  })();
  ctx.draining.add(done);
  void done.finally(() => ctx.draining.delete(done));
}
