/**
 * Where the time goes: each hop of the message path measured alone, one call after another, against
 * the same local services, so that the end-to-end figures of the fan-out run can be read hop by hop:
 * the membership GetItem, the Redis admit script, the DynamoDB seq and send record, the Redis
 * publish script, the Kafka append (acks all), a gateway round trip
 * (frame in, handler, route response out), and PostToConnection through the real SDK client and
 * through a plain kept-alive HTTP client, one at a time and at the worker's concurrency.
 */
import { randomBytes } from "node:crypto";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi";
import { Redis } from "ioredis";
import WebSocket from "ws";
import {
  createDynamoClient,
  DynamoConnectionStore,
  DynamoSendLedger,
  ensureTable,
} from "../../core/adapters/dynamo";
import { createKafka, ensureTopics, KafkaEventLog } from "../../core/adapters/kafka";
import { createManagementClient, ManagementApiGateway } from "../../core/adapters/management";
import { RedisMessageBus, redisOptions } from "../../core/adapters/redis";
import { startGateway } from "../../local/gateway";
import { isolatedNames } from "../../local/isolation";
import { progress } from "../lib/progress";
import { round, Samples, type Summary } from "../lib/stats";

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

export interface HopsResult {
  hops: HopResult[];
  posts: PostThroughput[];
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

async function throughput(seconds: number, concurrency: number, post: () => Promise<unknown>) {
  const until = performance.now() + seconds * 1000;
  const cpu = process.cpuUsage();
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await post();
        done++;
      }
    }),
  );
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
    hop: "DynamoDB GetItem (membership)",
    latencyMs: await time(n, () => store.isMember("c1", roomId)),
  });

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
    hop: "Redis admit script",
    latencyMs: await time(n, (i) => bus.admit({ userId: "u1", connectionId: "c1" }, `c${i + 1}`, rate)),
  });
  const ledger = new DynamoSendLedger(dynamo, isolatedNames(id).TABLE_NAME);
  hops.push({
    hop: "DynamoDB seq and send record",
    latencyMs: await time(n, async (i) => {
      const seq = await ledger.nextSeq(roomId, async () => 0);
      await ledger.recordSend({ ...draft(i), seq, textDigest: "x" });
    }),
  });
  hops.push({
    hop: "Redis publish script",
    latencyMs: await time(n, (i) => bus.publish({ ...draft(i), seq: i + 1 }, "x")),
  });

  await ensureTopics(createKafka());
  const log = new KafkaEventLog(createKafka());
  hops.push({
    hop: "Kafka append (acks all)",
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
    hop: "Gateway round trip (frame → handler → response)",
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
  const signed = new ManagementApiGateway(client, gateway.managementEndpoint, params.concurrency);
  const agent = new Agent({ keepAlive: true, maxSockets: params.concurrency });
  const { hostname, port, pathname } = new URL(gateway.managementEndpoint);
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
  const plain = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          agent,
          hostname,
          port,
          method: "POST",
          path: `${pathname}/@connections/${encodeURIComponent(connectionId)}`,
          headers: shaped,
        },
        (res) => {
          res.resume();
          res.once("end", () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`POST answered ${res.statusCode}`)),
          );
        },
      );
      req.once("error", reject);
      req.end(data);
    });
  hops.push({
    hop: "PostToConnection, AWS SDK client",
    latencyMs: await time(n, () => sdk(connectionId, data)),
  });
  hops.push({
    hop: "PostToConnection, signed keep-alive HTTP (the fan-out's client)",
    latencyMs: await time(n, () => signed.post(connectionId, data)),
  });
  hops.push({ hop: "PostToConnection, plain keep-alive HTTP", latencyMs: await time(n, plain) });
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
      client: "plain keep-alive HTTP",
      ...(await throughput(params.throughputSeconds, params.concurrency, plain)),
    },
  ];
  progress(
    `hops: PostToConnection ${posts.map((p) => `${p.client} ${p.postsPerSec}/s, ${p.cpuMsPerPost} ms CPU each`).join("; ")}`,
  );
  ws.terminate();
  agent.destroy();
  await gateway.close();
  if (received === 0) throw new Error("the hops client received nothing: the gateway did not deliver");
  return { hops, posts };
}
