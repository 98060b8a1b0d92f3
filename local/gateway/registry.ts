/**
 * The connection registry: the connections that are open (the management API's, the close path's
 * and the meter's view of them) and the ids whose `$connect` is still running, which are not yet
 * connections to anyone else.
 */
import type { WebSocket } from "ws";
import type { ConnectionFacts } from "./events";
import type { ManagedConnection } from "./management";
import type { Meter } from "./meter";

/** One open connection. */
export interface Connection extends ConnectionFacts, ManagedConnection {
  ws: WebSocket;
  idleTimer: NodeJS.Timeout;
  lifetimeTimer: NodeJS.Timeout;
  /** Set when the gateway closes the connection: the code and reason $disconnect reports. */
  closedBy?: { code: number; reason: string };
  open: boolean;
}

export class ConnectionRegistry {
  private readonly live = new Map<string, Connection>();
  private readonly connecting = new Set<string>();

  constructor(private readonly meter: Meter) {}

  /** An upgrade whose authorizer and `$connect` are running. */
  beginConnect(connectionId: string): void {
    this.connecting.add(connectionId);
  }

  /** The upgrade was refused or the client left: the id never became a connection. */
  abandonConnect(connectionId: string): void {
    this.connecting.delete(connectionId);
  }

  add(conn: Connection): void {
    this.connecting.delete(conn.connectionId);
    this.live.set(conn.connectionId, conn);
    this.meter.connectionOpened(conn.connectionId, conn.connectedAt);
  }

  remove(conn: Connection): void {
    if (this.live.get(conn.connectionId) !== conn) return;
    this.live.delete(conn.connectionId);
    this.meter.connectionClosed(conn.connectionId);
  }

  /** An open connection; undefined for one still in `$connect`, closed or never issued (all 410). */
  get(connectionId: string): Connection | undefined {
    return this.live.get(connectionId);
  }

  isConnecting(connectionId: string): boolean {
    return this.connecting.has(connectionId);
  }

  size(): number {
    return this.live.size;
  }

  all(): IterableIterator<Connection> {
    return this.live.values();
  }
}
