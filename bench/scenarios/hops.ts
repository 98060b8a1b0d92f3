/**
 * Where the time goes: each hop of the message path measured alone, one call after another, against
 * the same local services, so that the end-to-end figures of the fan-out run can be read hop by hop:
 * the membership GetItem, the Redis admit script, the DynamoDB seq and send record, the Redis
 * publish script, the Kafka append (acks all), a gateway round trip
 * (frame in, handler, route response out), and PostToConnection through the real SDK client and
 * through a plain kept-alive HTTP client, one at a time and at the worker's concurrency.
 *
 * The plain client is the cheapest measured on this path: undici's pool driven through its
 * dispatcher, with nothing of ours (no signing, no retries), the client the fan-out's own is built
 * on.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi";
import { Redis } from "ioredis";
import WebSocket, { WebSocketServer } from "ws";
import {
  createDynamoClient,
  DynamoConnectionStore,
  DynamoSendLedger,
  ensureTable,
} from "../../core/adapters/dynamo";
import { DynamoWire } from "../../core/adapters/dynamo-wire";
import { createKafka, ensureTopics, KafkaEventLog } from "../../core/adapters/kafka";
import { createManagementClient, ManagementApiGateway } from "../../core/adapters/management";
import { poolTransport } from "../../core/adapters/pool-transport";
import { RedisMessageBus, redisOptions } from "../../core/adapters/redis";
import { httpTransport } from "../../core/adapters/signed-post";
import { startGateway } from "../../local/gateway";
import { isolatedNames } from "../../local/isolation";
import { Delivery } from "../../worker/fanout-delivery";
import { bareClient, bareDynamoHeaders } from "../lib/bare-client";
import { progress } from "../lib/progress";
import { ratio, round, Samples, type Summary } from "../lib/stats";

/** The hops measured, by name. */
export const HOP = {
  membership: "DynamoDB GetItem (membership)",
  admit: "Redis admit script",
  seqAndRecord: "DynamoDB seq and send record",
  publish: "Redis publish script",
  kafka: "Kafka append (acks all)",
  gateway: "Gateway round trip (frame → handler → response)",
  sdkPost: "PostToConnection, AWS SDK client",
  signedPost: "PostToConnection, signed keep-alive HTTP (the fan-out's client)",
  plainPost: "PostToConnection, plain keep-alive HTTP",
} as const;

/** How many calls each hop is timed over, and how long the throughput runs last. */
export interface HopsParams {
  samples: number;
  throughputSeconds: number;
  concurrency: number;
}

/** One hop's latency, one call at a time. */
export interface HopResult {
  hop: string;
  latencyMs: Summary;
}

/** PostToConnection throughput at the worker's concurrency. */
export interface PostThroughput {
  client: string;
  postsPerSec: number;
  /** CPU of this process (client and the emulator together) per POST, ms. */
  cpuMsPerPost: number;
}

/**
 * The CPU one delivery costs end to end on this machine (a frame from a backend to a WebSocket
 * client through an HTTP POST), all parties in this process: the poster, the HTTP server that
 * turns the POST into a WebSocket frame, and the WebSocket client that reads it.
 */
export interface DeliveryCost {
  path: string;
  deliveriesPerSec: number;
  /** Frames per POST (above 1 when frames were batched). */
  framesPerPost: number;
  /** CPU microseconds of this process per delivered frame. */
  cpuUsPerDelivery: number;
  /** ÷ the floor row (a bare keep-alive POST and its WebSocket send). */
  overFloor: number | null;
}

/** One DynamoDB call's CPU, through the AWS SDK and as the same request on a plain HTTP client. */
export interface DynamoCallCost {
  client: string;
  callsPerSec: number;
  /** CPU of this process per call, ms: the client (the bench runs dynalite in a process of its own). */
  cpuMsPerCall: number;
}

export interface HopsResult {
  hops: HopResult[];
  posts: PostThroughput[];
  /** What a handler's DynamoDB call costs in CPU: the AWS SDK against the bare request. */
  dynamoCalls?: DynamoCallCost[];
  deliveries: DeliveryCost[];
}

async function time(n: number, work: (i: number) => Promise<unknown>): Promise<Summary> {
  await work(-1);
  const s = new Samples();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await work(i);
    s.push(performance.now() - t);
  }
  return s.summary();
}

/**
 * How long a row runs unmeasured before it is measured: a second, or the row itself if shorter.
 * The rows share code (the HTTP server, `ws`, undici); without it the first row would pay for
 * compiling what the rows after it reuse.
 */
const warmUpMs = (seconds: number) => Math.min(1000, seconds * 1000);

async function throughput(seconds: number, concurrency: number, post: () => Promise<unknown>) {
  const run = async (ms: number) => {
    const until = performance.now() + ms;
    let done = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          await post();
          done++;
        }
      }),
    );
    return done;
  };
  await run(warmUpMs(seconds));
  const cpu = process.cpuUsage();
  const done = await run(seconds * 1000);
  const used = process.cpuUsage(cpu);
  return {
    postsPerSec: round(done / seconds, 0),
    cpuMsPerPost: round((used.user + used.system) / 1000 / done, 3),
  };
}

/** Measures each hop alone. `env` names the services; the process environment is set from it. */
export async function runHops(env: Record<string, string>, params: HopsParams): Promise<HopsResult> {
  const id = `bh${randomBytes(3).toString("hex")}`;
  Object.assign(process.env, env, {
    ...isolatedNames(id),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  const hops: HopResult[] = [];
  const n = params.samples;

  const dynamo = createDynamoClient();
  await ensureTable(dynamo, isolatedNames(id).TABLE_NAME);
  const store = new DynamoConnectionStore(dynamo);
  const roomId = `${id}-room`;
  await store.joinRoom("c1", roomId, "u1", Math.floor(Date.now() / 1000) + 3600);
  hops.push({
    hop: HOP.membership,
    latencyMs: await time(n, () => store.isMember("c1", roomId)),
  });

  const dynamoCalls = await dynamoCallCosts(store, roomId, isolatedNames(id).TABLE_NAME, params);
  progress(
    `hops: DynamoDB GetItem ${dynamoCalls.map((c) => `${c.client} ${c.cpuMsPerCall} ms CPU each`).join("; ")}`,
  );

  const redis = new Redis(env.REDIS_URL as string, redisOptions());
  const bus = new RedisMessageBus(redis, { shards: 16 });
  const draft = (i: number) => ({
    messageId: `${id}-${i + 1}`,
    roomId,
    senderId: "u1",
    text: "hello",
    sentAt: new Date().toISOString(),
    clientMsgId: `c${i + 1}`,
  });
  const rate = { scope: "connection" as const, perSecond: 1e6, burst: 1e6 };
  hops.push({
    hop: HOP.admit,
    latencyMs: await time(n, (i) => bus.admit({ userId: "u1", connectionId: "c1" }, `c${i + 1}`, rate)),
  });
  const wire = DynamoWire.from(dynamo);
  const ledger = new DynamoSendLedger(wire, isolatedNames(id).TABLE_NAME);
  hops.push({
    hop: HOP.seqAndRecord,
    latencyMs: await time(n, async (i) => {
      const seq = await ledger.nextSeq(roomId, async () => 0);
      await ledger.recordSend({ ...draft(i), seq, textDigest: "x" });
    }),
  });
  wire.destroy();
  hops.push({
    hop: HOP.publish,
    latencyMs: await time(n, (i) => bus.publish({ ...draft(i), seq: i + 1 }, "x")),
  });

  await ensureTopics(createKafka());
  const log = new KafkaEventLog(createKafka());
  hops.push({
    hop: HOP.kafka,
    latencyMs: await time(n, (i) => log.append([{ ...draft(i + n), seq: i + 2 }])),
  });
  await log.disconnect();
  redis.disconnect();
  progress("hops: DynamoDB, Redis and Kafka measured");

  let connectionId = "";
  const gateway = await startGateway({
    port: 0,
    stage: "bench",
    routes: {
      $connect: async (event: { requestContext: { connectionId: string } }) => {
        connectionId = event.requestContext.connectionId;
        return { statusCode: 200 };
      },
      $disconnect: async () => ({ statusCode: 200 }),
      ping: async () => ({ statusCode: 200, body: '{"type":"pong"}' }),
    },
    routeResponses: new Set(["ping"]),
    // This measures what the emulator and the clients can do, past AWS's account rate (10,000 a second).
    limits: { account: { ratePerSecond: 1e9, burst: 1e9 } },
  });
  const ws = new WebSocket(gateway.url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let received = 0;
  let pong: (() => void) | undefined;
  ws.on("message", (data) => {
    received++;
    if (data.toString().includes('"pong"')) pong?.();
  });
  hops.push({
    hop: HOP.gateway,
    latencyMs: await time(
      n,
      () =>
        new Promise<void>((resolve) => {
          pong = resolve;
          ws.send('{"action":"ping"}');
        }),
    ),
  });

  // The AWS SDK client's own send, against the signed kept-alive request the fan-out worker makes.
  const client = createManagementClient(gateway.managementEndpoint, params.concurrency);
  const sdk = (id: string, body: string) =>
    client.send(new PostToConnectionCommand({ ConnectionId: id, Data: body }));
  const signed = new ManagementApiGateway(client, {
    endpoint: gateway.managementEndpoint,
    maxSockets: params.concurrency,
    transport: poolTransport,
  });
  const signedOverNodeHttp = new ManagementApiGateway(client, {
    endpoint: gateway.managementEndpoint,
    maxSockets: params.concurrency,
    transport: httpTransport,
  });
  const management = new URL(gateway.managementEndpoint);
  const bareManagement = bareClient(management.origin, params.concurrency);
  const data = JSON.stringify({ type: "message", roomId, text: "x".repeat(100) });
  // Unsigned but shaped like a signature: the emulator refuses a request without one, as AWS does,
  // and checks only the shape, so this is the floor without the signing work.
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  const shaped = {
    "x-amz-date": amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=local/${amzDate.slice(0, 8)}/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`,
  };
  const plain = async () => {
    const { status } = await bareManagement.post(
      `${management.pathname}/@connections/${encodeURIComponent(connectionId)}`,
      shaped,
      data,
    );
    if (status !== 200) throw new Error(`POST answered ${status}`);
  };
  hops.push({
    hop: HOP.sdkPost,
    latencyMs: await time(n, () => sdk(connectionId, data)),
  });
  hops.push({
    hop: HOP.signedPost,
    latencyMs: await time(n, () => signed.post(connectionId, data)),
  });
  hops.push({ hop: HOP.plainPost, latencyMs: await time(n, plain) });
  const posts: PostThroughput[] = [
    {
      client: "AWS SDK client",
      ...(await throughput(params.throughputSeconds, params.concurrency, () => sdk(connectionId, data))),
    },
    {
      client: "signed keep-alive HTTP (the fan-out's client)",
      ...(await throughput(params.throughputSeconds, params.concurrency, () =>
        signed.post(connectionId, data),
      )),
    },
    {
      client: "the same, over node:http's agent (the handlers' transport)",
      ...(await throughput(params.throughputSeconds, params.concurrency, () =>
        signedOverNodeHttp.post(connectionId, data),
      )),
    },
    {
      client: "plain keep-alive HTTP",
      ...(await throughput(params.throughputSeconds, params.concurrency, plain)),
    },
  ];
  progress(
    `hops: PostToConnection ${posts.map((p) => `${p.client} ${p.postsPerSec}/s, ${p.cpuMsPerPost} ms CPU each`).join("; ")}`,
  );
  ws.terminate();
  await bareManagement.close();
  await gateway.close();
  if (received === 0) throw new Error("the hops client received nothing: the gateway did not deliver");
  const deliveries = await deliveryCosts(params);
  progress(
    `hops: delivery CPU ${deliveries.map((d) => `${d.path} ${d.cpuUsPerDelivery} µs (${d.framesPerPost} frames/POST)`).join("; ")}`,
  );
  return { hops, posts, dynamoCalls, deliveries };
}

/** Clients that count what they receive (batched frames count one per line). */
async function receivers(urls: string[]): Promise<{ count: () => number; close: () => void }> {
  let count = 0;
  const sockets = await Promise.all(
    urls.map(
      (url) =>
        new Promise<WebSocket>((resolve, reject) => {
          const w = new WebSocket(url, { perMessageDeflate: false });
          w.on("message", (data) => {
            const text = data.toString();
            count++;
            for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) count++;
          });
          w.once("open", () => resolve(w));
          w.once("error", reject);
        }),
    ),
  );
  return {
    count: () => count,
    close: () => {
      for (const w of sockets) w.terminate();
    },
  };
}

/** Runs `offer` (which posts frames) for `seconds`, keeping the receivers busy; CPU per received frame. */
async function measureDeliveries(
  seconds: number,
  received: () => number,
  /** Posts until `stop()`; answers how many posts it made. */
  offer: (stop: () => boolean) => Promise<{ posts: number }>,
): Promise<Omit<DeliveryCost, "path" | "overFloor">> {
  // What was posted has arrived (or is given up on after 5 s).
  const settled = async () => {
    const deadline = performance.now() + 5000;
    let last = -1;
    while (received() !== last && performance.now() < deadline) {
      last = received();
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const warmUntil = performance.now() + warmUpMs(seconds);
  await offer(() => performance.now() >= warmUntil);
  await settled();
  const cpu = process.cpuUsage();
  const start = received();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  const { posts } = await offer(() => performance.now() >= until);
  await settled();
  const got = () => received() - start;
  const used = process.cpuUsage(cpu);
  const frames = got();
  const elapsed = (performance.now() - t0) / 1000;
  return {
    deliveriesPerSec: round(frames / elapsed, 0),
    framesPerPost: round(frames / Math.max(1, posts), 2),
    cpuUsPerDelivery: round((used.user + used.system) / Math.max(1, frames), 1),
  };
}

/**
 * The floor (a bare keep-alive POST, the plain client above, whose server writes the body to a
 * WebSocket as one frame) against the fan-out's own path (its delivery and signed client, the
 * emulator's `@connections`, the same WebSocket clients), v1 clients and `batch=1` clients, at the
 * worker's concurrency, over 64 connections receiving the same messages.
 */
async function deliveryCosts(params: HopsParams): Promise<DeliveryCost[]> {
  const CONNECTIONS = 64;
  const data = JSON.stringify({ type: "message", roomId: "r", text: "x".repeat(120), seq: 1 });
  const results: DeliveryCost[] = [];

  // The floor: node:http keep-alive server, the `ws` library, nothing else.
  const bare = createServer({ keepAlive: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const id = Number((req.url ?? "/0").slice(1));
      sockets[id]?.send(Buffer.concat(chunks));
      res.writeHead(200, { "Content-Length": 0 });
      res.end();
    });
  });
  const sockets: WebSocket[] = [];
  const wss = new WebSocketServer({ server: bare, perMessageDeflate: false });
  wss.on("connection", (w) => sockets.push(w));
  await new Promise<void>((r) => bare.listen(0, "127.0.0.1", () => r()));
  const bareAddress = bare.address() as AddressInfo;
  const floorClients = await receivers(
    Array.from({ length: CONNECTIONS }, () => `ws://127.0.0.1:${bareAddress.port}/`),
  );
  const bareFloor = bareClient(`http://127.0.0.1:${bareAddress.port}`, params.concurrency);
  const barePost = (id: number) => bareFloor.post(`/${id}`, {}, data);
  const floor = await measureDeliveries(params.throughputSeconds, floorClients.count, async (stop) => {
    let posts = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: params.concurrency }, async () => {
        while (!stop()) {
          await barePost(next++ % CONNECTIONS);
          posts++;
        }
      }),
    );
    return { posts };
  });
  results.push({ path: "floor: bare keep-alive POST → its WebSocket send", ...floor, overFloor: 1 });
  floorClients.close();
  await bareFloor.close();
  wss.close();
  await new Promise<void>((r) => bare.close(() => r()));
  bare.closeAllConnections();

  // The fan-out's delivery through the emulator, to v1 and to batch=1 connections.
  for (const batch of [false, true]) {
    const ids: string[] = [];
    const emulator = await startGateway({
      port: 0,
      stage: "bench",
      routes: {
        $connect: async (event: { requestContext: { connectionId: string } }) => {
          ids.push(event.requestContext.connectionId);
          return { statusCode: 200 };
        },
        $disconnect: async () => ({ statusCode: 200 }),
      },
      routeResponses: new Set(),
      limits: { account: { ratePerSecond: 1e9, burst: 1e9 } },
    });
    const clients = await receivers(Array.from({ length: CONNECTIONS }, () => emulator.url));
    const gatewayClient = new ManagementApiGateway(
      createManagementClient(emulator.managementEndpoint, params.concurrency),
      { endpoint: emulator.managementEndpoint, maxSockets: params.concurrency, transport: poolTransport },
    );
    const delivery = new Delivery(
      gatewayClient,
      { concurrency: params.concurrency, attempts: 4, throttleGiveUpMs: 60_000, maxBatchBytes: 32 * 1024 },
      { gone() {}, failed() {} },
    );
    const members = ids.map((connectionId) => ({ connectionId, joinedSeq: 0, batch }));
    const cost = await measureDeliveries(params.throughputSeconds, clients.count, async (stop) => {
      const before = delivery.stats.posts;
      // A room's messages as the worker hands them over: a few in flight at once.
      const inFlight = new Set<Promise<void>>();
      while (!stop()) {
        const p = delivery.send("r", members, data);
        inFlight.add(p);
        void p.then(() => inFlight.delete(p));
        if (inFlight.size >= 4) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      return { posts: delivery.stats.posts - before };
    });
    results.push({
      path: `fan-out delivery → emulator → WebSocket, ${batch ? "batch=1 clients" : "v1 clients (one frame a POST)"}`,
      ...cost,
      overFloor: ratio(cost.cpuUsPerDelivery, floor.cpuUsPerDelivery),
    });
    clients.close();
    await emulator.close();
  }
  return results;
}

/**
 * A membership GetItem at 16 in flight, through the connection store's adapter (the AWS SDK's
 * document client), through the send ledger's client (signed keep-alive requests, DynamoWire), and
 * as the same JSON request on the plain kept-alive client: what the SDK adds to each DynamoDB call
 * and what the ledger's client keeps of that. dynalite checks that a signature is there, not what
 * it is, so the bare request sends a fixed one.
 */
async function dynamoCallCosts(
  store: DynamoConnectionStore,
  roomId: string,
  table: string,
  params: HopsParams,
): Promise<DynamoCallCost[]> {
  const endpoint = new URL(process.env.DYNAMODB_ENDPOINT ?? "");
  const bareDynamo = bareClient(endpoint.origin, 16);
  const body = JSON.stringify({
    TableName: table,
    Key: { pk: { S: `ROOM#${roomId}` }, sk: { S: "CONN#c1" } },
    ConsistentRead: true,
  });
  const bare = async () => {
    const answer = await bareDynamo.post("/", bareDynamoHeaders("GetItem"), body);
    if (answer.status !== 200 || !answer.body.includes('"Item"'))
      throw new Error(`bare GetItem answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  };
  const viaSdk = async () => {
    if (!(await store.isMember("c1", roomId))) throw new Error("the SDK GetItem did not find the membership");
  };
  const wire = DynamoWire.from(createDynamoClient());
  const viaWire = async () => {
    const out = await wire.call("GetItem", JSON.parse(body) as Record<string, unknown>);
    if (!out.Item) throw new Error("the signed GetItem did not find the membership");
  };
  await bare();
  await viaSdk();
  await viaWire();
  const concurrency = Math.min(16, params.concurrency);
  const rows: DynamoCallCost[] = [];
  for (const [client, call] of [
    ["AWS SDK document client (the connection store's adapter)", viaSdk],
    ["signed keep-alive HTTP (the send ledger's client)", viaWire],
    ["the same request, plain keep-alive HTTP, unsigned", bare],
  ] as const) {
    const t = await throughput(params.throughputSeconds, concurrency, call);
    rows.push({ client, callsPerSec: t.postsPerSec, cpuMsPerCall: t.cpuMsPerPost });
  }
  await bareDynamo.close();
  wire.destroy();
  return rows;
}
