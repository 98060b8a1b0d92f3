/**
 * The workers' health signal: an HTTP endpoint (the image's HEALTHCHECK and ECS ask GET /health)
 * answering 200 while the worker does its work and 503 otherwise, with a small JSON status.
 */
import { createServer, type Server } from "node:http";

export interface HealthState {
  ok: boolean;
  status: string;
  [detail: string]: unknown;
}

/** Listens on `port` (0 for any) on every interface; resolves once listening. */
export async function serveHealth(port: number, state: () => HealthState): Promise<Server> {
  const server = createServer((req, res) => {
    const { ok, ...body } = state();
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json", connection: "close" });
    res.end(JSON.stringify(body));
    req.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "0.0.0.0", () => resolve());
  });
  return server;
}
