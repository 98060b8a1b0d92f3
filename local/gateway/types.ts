/** The emulator's options and what a started one offers. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { LambdaHandler } from "./invocations";
import type { Meter } from "./meter";
import type { GatewayLimits } from "./settings";

/** The logger the gateway writes to: pino's shape, so the process's one logger can be passed. */
export interface GatewayLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

/** How to start the emulator. */
export interface GatewayOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** The stage name; the WebSocket URL is ws://host:port/{stage}. */
  stage: string;
  /** Default: 10 lowercase alphanumerics, generated. */
  apiId?: string;
  /** Route key → handler: "$connect", "$disconnect", "$default" and action values. */
  routes: Record<string, LambdaHandler>;
  /** Route keys whose handler result body is sent back to the client (two-way routes). */
  routeResponses: ReadonlySet<string>;
  /** REQUEST authorizer on $connect. */
  authorizer?: LambdaHandler;
  /**
   * Identity sources of the authorizer (`route.request.header.Authorization`,
   * `route.request.querystring.token`): when one is missing, AWS answers 401 without invoking it.
   * Default: none checked.
   */
  identitySource?: readonly string[];
  /** Default "$request.body.action". */
  routeSelectionExpression?: string;
  /** Default 10 min. */
  idleTimeoutMs?: number;
  /** Default 2 h. */
  maxLifetimeMs?: number;
  /** How long a handler may run before API Gateway gives up on it; default 29 s. */
  integrationTimeoutMs?: number;
  /** Throttles, concurrency and the other bounds; default AWS's (settings.ts). */
  limits?: Partial<GatewayLimits>;
  /** Where to count what AWS would bill; default a meter of its own (`RunningGateway.meter`). */
  meter?: Meter;
  /** Region and account in the method ARN; defaults us-east-1 and 123456789012. */
  region?: string;
  accountId?: string;
  stageVariables?: Record<string, string>;
  logger?: GatewayLogger;
  /** Random numbers for the `$disconnect` drop rate; default Math.random (tests pass their own). */
  random?: () => number;
  /**
   * Answers plain HTTP requests before the management API does (`npm run dev` serves the web client
   * through it); returns true when it answered. Paths under `/{stage}` never reach it.
   */
  httpHandler?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A started emulator. */
export interface RunningGateway {
  /** ws://127.0.0.1:PORT/STAGE */
  url: string;
  /** http://127.0.0.1:PORT/STAGE: the SDK client's `endpoint`. */
  managementEndpoint: string;
  port: number;
  apiId: string;
  connectionCount(): number;
  /** What AWS would bill for the traffic so far. */
  meter: Meter;
  /** Handler invocations of frames running now, and waiting for a slot. */
  invocations(): { running: number; waiting: number };
  /** Closes every connection (running $disconnect for each) and the server. */
  close(): Promise<void>;
}
