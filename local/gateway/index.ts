/**
 * An emulator of API Gateway's WebSocket APIs, for running the project's Lambda handlers on one
 * machine. It is faithful where the common local emulators are not: the stage in the path, the
 * REQUEST authorizer and `$connect` deciding the upgrade, AWS-shaped events, route selection with
 * `$default` and the `Forbidden` frame, two-way route responses, each frame its own invocation
 * (concurrent, bounded as Lambda's concurrency bounds it), AWS's throttles (the account's request
 * rate shared with `@connections`, new connections a second, the stage's route throttle), the frame,
 * message, idle and lifetime limits, best-effort `$disconnect`, and the `@connections` management
 * API that the real SDK client talks to, checking what AWS checks. A meter counts what AWS would
 * bill for the traffic.
 *
 * The parts: upgrade.ts (the upgrade decision), connection.ts (an accepted connection), frames.ts
 * (a frame's way to its handler, and `$disconnect`), registry.ts (the connections), invocations.ts
 * (Lambda invocations and the pool that bounds them), throttle.ts and settings.ts (the limits),
 * management.ts and sigv4.ts (`@connections`), meter.ts and cost.ts (the bill).
 */

import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { CLOSE_GRACE_MS, closeFromGateway, MESSAGE_LIMIT_BYTES } from "./connection";
import type { GatewayContext } from "./context";
import type { ApiFacts } from "./events";
import { newApiId } from "./ids";
import { InvocationPool } from "./invocations";
import { handleManagementRequest } from "./management";
import { Meter } from "./meter";
import { ConnectionRegistry } from "./registry";
import { GatewayStartError, parseSelectionExpression, rejectUpgrade } from "./routing";
import { withLimits } from "./settings";
import { createThrottles } from "./throttle";
import type { GatewayLogger, GatewayOptions, RunningGateway } from "./types";
import { handleUpgrade } from "./upgrade";

export { FRAME_LIMIT_BYTES, MESSAGE_LIMIT_BYTES } from "./connection";
export { THROTTLED_MESSAGE } from "./frames";
export {
  IntegrationTimeoutError,
  InvocationPool,
  type LambdaContext,
  type LambdaHandler,
} from "./invocations";
export { Meter, type MeterSnapshot } from "./meter";
export { GatewayStartError } from "./routing";
export {
  connectionTimesFromEnv,
  DEFAULT_LIMITS,
  type GatewayLimits,
  GatewaySettingError,
  handlerThreadsFromEnv,
  limitsFromEnv,
} from "./settings";
export type { GatewayLogger, GatewayOptions, RunningGateway } from "./types";

const DEFAULT_IDLE_MS = 10 * 60 * 1000;
const DEFAULT_LIFETIME_MS = 2 * 60 * 60 * 1000;
const DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000;

const silentLogger: GatewayLogger = { info() {}, warn() {}, error() {} };

/**
 * Starts the emulator and resolves once it accepts connections.
 */
export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  if (!/^[A-Za-z0-9_-]+$/.test(opts.stage)) {
    throw new GatewayStartError(`stage ${JSON.stringify(opts.stage)} must be letters, digits, - or _`);
  }
  const host = opts.host ?? "127.0.0.1";
  const log = opts.logger ?? silentLogger;
  const limits = withLimits(opts.limits);
  const meter = opts.meter ?? new Meter(limits.lambdaMemoryMb);
  const apiId = opts.apiId ?? newApiId();
  const api: ApiFacts = {
    apiId,
    stage: opts.stage,
    region: opts.region ?? "us-east-1",
    accountId: opts.accountId ?? "123456789012",
    domainName: "", // known once the port is bound
    stageVariables: opts.stageVariables ?? {},
  };
  let closing = false;
  let port = 0;
  /** Upgrades between the request and the accepted WebSocket (authorizer and $connect running). */
  const pendingUpgrades = new Set<Duplex>();

  const ctx: GatewayContext = {
    opts,
    api,
    log,
    limits,
    meter,
    target: {
      apiId,
      region: api.region,
      accountId: api.accountId,
      integrationTimeoutMs: opts.integrationTimeoutMs ?? DEFAULT_INTEGRATION_TIMEOUT_MS,
      memoryMb: limits.lambdaMemoryMb,
      meter,
    },
    registry: new ConnectionRegistry(meter),
    pool: new InvocationPool(
      limits.localSlots,
      limits.concurrency,
      limits.connectionQueue,
      (error, connectionId) =>
        log.error({ err: error, connectionId }, "gateway invocation failed unexpectedly"),
    ),
    throttles: createThrottles(limits),
    wss: new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: MESSAGE_LIMIT_BYTES,
      perMessageDeflate: false,
      // The protocol $connect chose (its Sec-WebSocket-Protocol response header), as AWS echoes it.
      handleProtocols: (_protocols, req) =>
        (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol ?? false,
    }),
    selectionPath: parseSelectionExpression(opts.routeSelectionExpression ?? "$request.body.action"),
    idleMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_MS,
    lifetimeMs: opts.maxLifetimeMs ?? DEFAULT_LIFETIME_MS,
    random: opts.random ?? Math.random,
    draining: new Set(),
    isClosing: () => closing,
    port: () => port,
  };
  const { registry } = ctx;

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    // The local stack's own pages (the web client, its token endpoint) may answer first, but never
    // a path under the stage: the management API's requests reach it exactly as without them.
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const underStage = path === `/${opts.stage}` || path.startsWith(`/${opts.stage}/`);
    if (!underStage && opts.httpHandler?.(req, res)) return;
    handleManagementRequest(req, res, {
      stage: opts.stage,
      maxMessageBytes: MESSAGE_LIMIT_BYTES,
      lookup: (id) => registry.get(id),
      admit: () => ctx.throttles.account.take(),
      onCall: () => meter.managementCall(),
      onThrottled: (kind) => meter.throttle(kind),
      logger: log,
      latencyMs: limits.managementLatencyMs,
    });
  });
  // The SDK keeps sockets alive for reuse; a server that closes them first makes it retry.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(ctx, pendingUpgrades, req, socket, head).catch((error: unknown) => {
      log.error({ err: error }, "upgrade failed unexpectedly");
      rejectUpgrade(socket, 500, '{"message":"Internal server error"}');
    });
  });
  server.on("clientError", (_error, socket) => {
    if (!socket.destroyed) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(new GatewayStartError(`could not listen on ${host}:${opts.port}`, { cause: error }));
    server.once("error", onError);
    server.listen(opts.port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  api.domainName = `${host}:${port}`;
  const base = `${host}:${port}/${opts.stage}`;
  log.info({ url: `ws://${base}`, apiId }, "API Gateway emulator listening");

  return {
    url: `ws://${base}`,
    managementEndpoint: `http://${base}`,
    port,
    apiId,
    meter,
    connectionCount: () => registry.size(),
    invocations: () => ({ running: ctx.pool.running(), waiting: ctx.pool.waiting() }),
    async close() {
      if (closing) return;
      closing = true;
      for (const socket of pendingUpgrades) socket.destroy();
      for (const conn of registry.all()) closeFromGateway(conn, 1001, "Going away");
      // Wait for every close event, then for every $disconnect it started.
      const deadline = Date.now() + CLOSE_GRACE_MS * 2;
      while (registry.size() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      for (const conn of registry.all()) conn.ws.terminate();
      while (registry.size() > 0 && Date.now() < deadline + 500) await new Promise((r) => setTimeout(r, 10));
      // Invocations already running finish (a Lambda is not stopped by its client leaving), bounded.
      await Promise.race([ctx.pool.idle(), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS * 2).unref())]);
      await Promise.allSettled([...ctx.draining]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      log.info({ apiId }, "API Gateway emulator closed");
    },
  };
}
