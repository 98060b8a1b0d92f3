/**
 * A TCP proxy for fault tests (node:net): clients connect to it, and it forwards their bytes to one
 * target and the target's bytes back. It can be switched, at any time and for every connection, to
 * - "stall": the requests still reach the target, the replies are held (in order) until `pass()`;
 * - "drop": the requests still reach the target, and a connection is closed the moment its reply
 *   comes back, so the work was done and the answer lost.
 * It parses nothing: whatever the clients must reach has to be routed to it (kafkajs: a socketFactory).
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

export type ProxyMode = "pass" | "stall" | "drop";

interface Link {
  client: Socket;
  upstream: Socket;
  held: Buffer[];
}

export class TcpProxy {
  private mode: ProxyMode = "pass";
  private readonly links = new Set<Link>();
  /** Connections accepted, replies held by a stall, and connections closed by "drop". */
  readonly counts = { connections: 0, held: 0, dropped: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Starts a proxy on a free port of 127.0.0.1 that forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy?.accept(client, target));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy has no TCP port");
    proxy = new TcpProxy(server, address.port);
    return proxy;
  }

  /** Forwards both ways again, first delivering the replies a stall held. */
  pass(): void {
    this.mode = "pass";
    for (const link of this.links) {
      for (const chunk of link.held.splice(0)) link.client.write(chunk);
    }
  }

  /** Holds every reply from now on (requests still go through) until {@link pass}. */
  stall(): void {
    this.mode = "stall";
  }

  /** Closes each connection when its next reply arrives (the request went through; the answer is lost). */
  drop(): void {
    this.mode = "drop";
    // Replies held by a stall are lost the same way.
    for (const link of this.links) if (link.held.length > 0) this.cut(link);
  }

  /** Closes every connection, held replies unsent, and stops listening. */
  async close(): Promise<void> {
    for (const link of this.links) this.cut(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    this.counts.connections++;
    const upstream = tcpConnect(target.port, target.host);
    const link: Link = { client, upstream, held: [] };
    this.links.add(link);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (this.mode === "drop") {
        this.counts.dropped++;
        this.cut(link);
      } else if (this.mode === "stall" || link.held.length > 0) {
        this.counts.held++;
        link.held.push(chunk);
      } else {
        client.write(chunk);
      }
    });
    const close = () => this.cut(link);
    for (const socket of [client, upstream]) {
      socket.on("error", close);
      socket.on("close", close);
    }
  }

  private cut(link: Link): void {
    if (!this.links.delete(link)) return;
    link.held.length = 0;
    link.client.destroy();
    link.upstream.destroy();
  }
}
