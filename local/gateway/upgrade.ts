/**
 * An upgrade request, decided as API Gateway decides it: the stage in the path, the new-connections
 * rate (429 over it), the identity sources and the REQUEST authorizer (401, 403, 500), then
 * `$connect`, whose answer accepts or refuses the upgrade. Until `$connect` has answered, the id is
 * not a connection: the management API answers 410 for it.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { acceptConnection } from "./connection";
import type { GatewayContext } from "./context";
import {
  authorizerEvent,
  type ConnectionFacts,
  connectEvent,
  connectMethodArn,
  upgradeRequestParts,
} from "./events";
import { runDisconnect } from "./frames";
import { newAwsId } from "./ids";
import { invoke } from "./invocations";
import { decideOnAuthorizerError, decideOnAuthorizerResult } from "./policy";
import type { Connection } from "./registry";
import { identityPresent, rejectUpgrade, routeResponseText, statusOf } from "./routing";

export async function handleUpgrade(
  ctx: GatewayContext,
  pendingUpgrades: Set<Duplex>,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const { opts, log, api } = ctx;
  socket.on("error", () => {}); // a client that drops mid-upgrade must not crash the process
  const url = req.url ?? "/";
  const path = url.split("?")[0];
  if (ctx.isClosing()) return rejectUpgrade(socket, 503, '{"message":"Service Unavailable"}');
  if (path !== `/${opts.stage}` && path !== `/${opts.stage}/`) {
    return rejectUpgrade(socket, 403, '{"message":"Forbidden"}', "ForbiddenException");
  }
  const key = req.headers["sec-websocket-key"];
  const version = req.headers["sec-websocket-version"];
  if (
    (req.headers.upgrade ?? "").toLowerCase() !== "websocket" ||
    !key ||
    (version !== "13" && version !== "8")
  ) {
    return rejectUpgrade(socket, 400, '{"message":"Bad Request"}');
  }
  if (!ctx.throttles.newConnections.take() || !ctx.throttles.account.take()) {
    ctx.meter.throttle("newConnections");
    log.info({ sourceIp: req.socket.remoteAddress }, "new connection over the rate: 429");
    return rejectUpgrade(socket, 429, '{"message":"Too Many Requests"}', "LimitExceededException");
  }

  const now = Date.now();
  const remote = req.socket.remoteAddress ?? "127.0.0.1";
  const facts: ConnectionFacts = {
    connectionId: newAwsId(),
    connectedAt: now,
    sourceIp: remote.startsWith("::ffff:") ? remote.slice(7) : remote,
    userAgent: req.headers["user-agent"] ?? null,
  };
  const parts = upgradeRequestParts(req, facts.sourceIp, ctx.port(), now);
  const requestId = newAwsId();
  const logFields = { connectionId: facts.connectionId, requestId };
  pendingUpgrades.add(socket);
  ctx.registry.beginConnect(facts.connectionId);
  let accepted = false;
  try {
    if (opts.authorizer) {
      const missing = (opts.identitySource ?? []).find(
        (s) => !identityPresent(s, req, parts.queryStringParameters),
      );
      if (missing) {
        log.info({ ...logFields, identitySource: missing }, "identity source missing: 401");
        return rejectUpgrade(socket, 401, '{"message":"Unauthorized"}', "UnauthorizedException");
      }
      const started = Date.now();
      const outcome = await invoke(
        ctx.target,
        "$authorizer",
        opts.authorizer,
        authorizerEvent(api, facts, parts, requestId, now),
        requestId,
      );
      const decision = outcome.ok
        ? decideOnAuthorizerResult(outcome.result, connectMethodArn(api))
        : decideOnAuthorizerError(outcome.error);
      switch (decision.kind) {
        case "unauthorized":
          log.info(logFields, "authorizer: Unauthorized (401)");
          return rejectUpgrade(socket, 401, '{"message":"Unauthorized"}', "UnauthorizedException");
        case "deny":
          log.info({ ...logFields, reason: decision.reason }, "authorizer: Forbidden (403)");
          return rejectUpgrade(socket, 403, '{"message":"Forbidden"}', "AccessDeniedException");
        case "error":
          log.warn(
            { ...logFields, reason: decision.reason, err: outcome.ok ? undefined : outcome.error },
            "authorizer failed (500)",
          );
          return rejectUpgrade(
            socket,
            500,
            '{"message":"Internal server error"}',
            "AuthorizerConfigurationException",
          );
        case "allow": {
          const authorizer: Record<string, unknown> = { ...decision.context };
          if (decision.principalId !== undefined) authorizer.principalId = decision.principalId;
          authorizer.integrationLatency = Date.now() - started;
          facts.authorizer = authorizer;
        }
      }
    }

    const connectHandler = opts.routes.$connect;
    let connectRan = false;
    if (connectHandler) {
      const outcome = await invoke(
        ctx.target,
        "$connect",
        connectHandler,
        connectEvent(api, facts, parts, requestId, now),
        requestId,
      );
      connectRan = true;
      if (!outcome.ok) {
        log.warn({ ...logFields, err: outcome.error }, "$connect handler failed: refusing the upgrade");
        const status = outcome.timedOut ? 504 : 502;
        return rejectUpgrade(socket, status, '{"message":"Internal server error"}');
      }
      const status = statusOf(outcome.result) ?? 200;
      if (status < 200 || status > 299) {
        log.info({ ...logFields, status }, "$connect refused the connection");
        const text = routeResponseText(outcome.result) ?? "";
        return rejectUpgrade(socket, status, text);
      }
      const headers = (outcome.result as { headers?: Record<string, unknown> } | undefined)?.headers;
      const protocol = headers
        ? Object.entries(headers).find(([name]) => name.toLowerCase() === "sec-websocket-protocol")?.[1]
        : undefined;
      if (typeof protocol === "string")
        (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol = protocol;
    }

    if (socket.destroyed || ctx.isClosing()) {
      // The client left while $connect ran; its record may exist, so $disconnect must clean it up.
      if (connectRan) runDisconnect(ctx, { ...facts } as unknown as Connection, 1006, "");
      socket.destroy();
      return;
    }
    accepted = true;
    acceptConnection(ctx, req, socket, head, facts, () => {
      log.info({ ...logFields, sourceIp: facts.sourceIp }, "connected");
    });
  } finally {
    pendingUpgrades.delete(socket);
    if (!accepted) ctx.registry.abandonConnect(facts.connectionId);
  }
}
