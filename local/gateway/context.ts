/** What the parts of one running emulator share. */
import type { WebSocketServer } from "ws";
import type { ApiFacts } from "./events";
import type { InvocationPool, InvokeTarget } from "./invocations";
import type { Meter } from "./meter";
import type { ConnectionRegistry } from "./registry";
import type { GatewayLimits } from "./settings";
import type { Throttles } from "./throttle";
import type { GatewayLogger, GatewayOptions } from "./types";

export interface GatewayContext {
  opts: GatewayOptions;
  api: ApiFacts;
  log: GatewayLogger;
  limits: GatewayLimits;
  target: InvokeTarget;
  registry: ConnectionRegistry;
  pool: InvocationPool;
  throttles: Throttles;
  meter: Meter;
  wss: WebSocketServer;
  selectionPath: readonly string[];
  idleMs: number;
  lifetimeMs: number;
  random: () => number;
  /** `$disconnect` invocations still to run or running, so close() can wait for them. */
  draining: Set<Promise<void>>;
  isClosing(): boolean;
  /** The port, known once the server is bound. */
  port(): number;
}
