import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { poolTransport } from "./pool-transport";
import { httpTransport, SignedPoster, type TransportFactory } from "./signed-post";

const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" };

/** A server that answers each request with `answer`, after recording what it received. */
async function serve(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<{
  server: Server;
  url: URL;
  seen: { headers: IncomingMessage["headers"]; body: string; path: string }[];
}> {
  const seen: { headers: IncomingMessage["headers"]; body: string; path: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ headers: req.headers, body, path: req.url ?? "" });
      answer(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: new URL(`http://127.0.0.1:${port}/dev`), seen };
}

describe.each<[string, TransportFactory]>([
  ["node:http", httpTransport],
  ["undici's pool", poolTransport],
])("SignedPoster over %s", (_name, transport) => {
  const servers: Server[] = [];
  const posters: SignedPoster[] = [];
  afterEach(async () => {
    for (const p of posters.splice(0)) p.destroy();
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  });
  const start = async (answer: Parameters<typeof serve>[0]) => {
    const s = await serve(answer);
    servers.push(s.server);
    const poster = new SignedPoster(s.url, "eu-west-1", "dynamodb", 4, transport);
    posters.push(poster);
    return { ...s, poster };
  };
  const never = () => new Error("timed out");

  test("sends the body signed, and answers the status and, when asked, the body", async () => {
    const { poster, seen } = await start((_req, res, body) => {
      res.writeHead(200, { "content-type": "application/json" }).end(`{"echo":${body}}`);
    });
    const request = {
      path: "/dev/x",
      body: Buffer.from('{"a":1}'),
      contentType: "application/x-amz-json-1.0",
      target: "DynamoDB_20120810.GetItem",
    };
    const kept = await poster.post(credentials, request, { timedOut: never }, true);
    expect(kept.status).toBe(200);
    expect(kept.body?.toString()).toBe('{"echo":{"a":1}}');
    const dropped = await poster.post(credentials, request, { timedOut: never }, false);
    expect(dropped).toEqual({ status: 200, body: undefined });
    const first = seen[0];
    expect(first?.path).toBe("/dev/x");
    expect(first?.body).toBe('{"a":1}');
    expect(first?.headers["x-amz-target"]).toBe("DynamoDB_20120810.GetItem");
    expect(first?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/,
    );
  });

  test("a server that never answers fails the post with timedOut(), by the deadline or the idle socket", async () => {
    const { poster } = await start(() => undefined);
    const request = { path: "/dev/x", body: Buffer.from("{}"), contentType: "application/json" };
    const byDeadline = new Error("deadline passed");
    const t0 = Date.now();
    await expect(
      poster.post(credentials, request, { deadlineMs: 150, timedOut: () => byDeadline }, true),
    ).rejects.toBe(byDeadline);
    const byIdle = new Error("idle too long");
    await expect(
      poster.post(credentials, request, { idleMs: 150, timedOut: () => byIdle }, false),
    ).rejects.toBe(byIdle);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test("a refused connection fails the post with the request's own error", async () => {
    const { poster, server } = await start((_req, res) => res.end());
    servers.splice(servers.indexOf(server), 1);
    await new Promise((resolve) => server.close(resolve));
    const request = { path: "/dev/x", body: Buffer.from("{}"), contentType: "application/json" };
    await expect(poster.post(credentials, request, { timedOut: never }, false)).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  test("a connection cut before the answer fails the post, and the next post is answered", async () => {
    let first = true;
    const { poster } = await start((req, res) => {
      if (first) {
        first = false;
        req.socket.destroy();
      } else res.writeHead(200).end();
    });
    const request = { path: "/dev/x", body: Buffer.from("{}"), contentType: "application/json" };
    await expect(poster.post(credentials, request, { timedOut: never }, false)).rejects.toThrow();
    await expect(poster.post(credentials, request, { timedOut: never }, false)).resolves.toEqual({
      status: 200,
      body: undefined,
    });
  });
});
