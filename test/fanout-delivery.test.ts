/**
 * The fan-out worker's delivery, against the real local stack (gateway emulator, handlers, Redis,
 * dynalite) and real WebSocket clients: batched frames for `batch=1` connections only, the emulator's
 * simulated round trip, a throttled room not delaying another room of the same shard, entries
 * trimmed before delivery counted, and the member cache's bounds and clean-up of gone connections.
 *
 * The worker runs in this process (the stack starts none), so the test can read its counters and
 * put an HTTP proxy between it and the management API: the proxy answers 429 (as API Gateway does
 * for a client whose buffer is full) for the frames of a room it is told to throttle.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import WebSocket from "ws";
import { createDynamoClient, DynamoConnectionStore } from "../core/adapters/dynamo";
import { createManagementClient, ManagementApiGateway } from "../core/adapters/management";
import { poolTransport } from "../core/adapters/pool-transport";
import { RedisMessageBus, redisOptions } from "../core/adapters/redis";
import { config } from "../core/config";
import { createLogger } from "../core/logger";
import { GatewaySettingError, limitsFromEnv } from "../local/gateway";
import { createFanoutWorker, type FanoutOptions } from "../worker/fanout";
import { startTestStack, type TestStack } from "./support/stack";

jest.setTimeout(120_000);

let stack: TestStack;
let proxy: Server;
let proxyUrl = "";
/** Rooms whose frames the proxy answers with 429. */
const throttledRooms = new Set<string>();
const metrics: { name: string; value: number }[] = [];
const sockets: WebSocket[] = [];
const redises: Redis[] = [];
let workerCount = 0;

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 0,
    persisters: 0,
    settings: {
      // One shard: every room of the test shares it, so a slow room could hold the others back.
      FANOUT_SHARDS: "1",
      // Connections closed by the clients keep their records: the worker finds them gone (410).
      GATEWAY_DISCONNECT_DROP: "1",
      MANAGEMENT_LATENCY_MS: "40",
    },
  });
  const target = new URL(stack.managementEndpoint);
  proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const text = body.toString();
      if ([...throttledRooms].some((room) => text.includes(`"roomId":"${room}"`))) {
        res.writeHead(429, {
          "x-amzn-ErrorType": "LimitExceededException",
          "content-type": "application/json",
        });
        res.end('{"message":"Limit Exceeded"}');
        return;
      }
      const out = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}${target.pathname}`;
});

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  for (const r of redises) r.disconnect();
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
  await stack?.stop();
});

async function startWorker(options: Partial<FanoutOptions> = {}) {
  config.reset();
  const redis = new Redis(stack.env.REDIS_URL as string, redisOptions());
  redises.push(redis);
  const worker = createFanoutWorker(
    {
      redis,
      newReader: () => {
        const reader = redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
        redises.push(reader);
        return reader;
      },
      store: new DynamoConnectionStore(createDynamoClient()),
      gateway: new ManagementApiGateway(createManagementClient(proxyUrl, 16), {
        endpoint: proxyUrl,
        maxSockets: 16,
        transport: poolTransport,
      }),
      bus: new RedisMessageBus(redis),
      logger: createLogger("fanout-test"),
      metric: (name, value) => metrics.push({ name, value }),
    },
    { shards: 1, concurrency: 16, leaseMs: 1500, workerId: `test-worker-${++workerCount}`, ...options },
  );
  await worker.start();
  return worker;
}

interface Client {
  ws: WebSocket;
  /** Every WebSocket frame as received. */
  raw: string[];
  /** Every JSON object received, a batched frame's lines one by one. */
  lines: Record<string, unknown>[];
  join(roomId: string): Promise<void>;
  messages(roomId: string): { seq: number; text: string; at: number }[];
}

async function connect(user: string, batch: boolean): Promise<Client> {
  const token = await stack.token(user);
  const ws = new WebSocket(`${stack.url}?token=${encodeURIComponent(token)}${batch ? "&batch=1" : ""}`);
  sockets.push(ws);
  const raw: string[] = [];
  const lines: (Record<string, unknown> & { at?: number })[] = [];
  ws.on("message", (data) => {
    const text = data.toString();
    raw.push(text);
    const at = performance.now();
    for (const line of text.split("\n")) lines.push({ ...(JSON.parse(line) as Record<string, unknown>), at });
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return {
    ws,
    raw,
    lines,
    async join(roomId) {
      ws.send(JSON.stringify({ action: "joinRoom", roomId }));
      await until(
        () => lines.some((l) => l.type === "joined" && l.roomId === roomId),
        `${user} joins ${roomId}`,
      );
    },
    messages: (roomId) =>
      lines
        .filter((l) => l.type === "message" && l.roomId === roomId)
        .map((l) => ({ seq: l.seq as number, text: l.text as string, at: l.at as number })),
  };
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function send(client: Client, roomId: string, text: string): void {
  client.ws.send(JSON.stringify({ action: "sendMessage", roomId, text, clientMsgId: `${roomId}-${text}` }));
}

test("MANAGEMENT_LATENCY_MS: every @connections call is served after the simulated round trip", async () => {
  expect(limitsFromEnv({}).managementLatencyMs).toBe(0);
  expect(limitsFromEnv({ MANAGEMENT_LATENCY_MS: "15" }).managementLatencyMs).toBe(15);
  expect(() => limitsFromEnv({ MANAGEMENT_LATENCY_MS: "-1" })).toThrow(GatewaySettingError);
  const direct = new ManagementApiGateway(createManagementClient(stack.managementEndpoint, 2), {
    endpoint: stack.managementEndpoint,
    maxSockets: 2,
  });
  const t = performance.now();
  expect(await direct.post("NoSuchConnection0=", "{}")).toBe("gone");
  expect(performance.now() - t).toBeGreaterThanOrEqual(39);
});

test("batch=1 connections receive frames joined by \\n, in order, none lost; v1 connections one object a frame", async () => {
  const worker = await startWorker();
  try {
    const room = `${stack.id}-batch`;
    const batched = await connect("batched", true);
    const plain = await connect("plain", false);
    const sender = await connect("sender", false);
    for (const c of [batched, plain, sender]) await c.join(room);
    // Sent faster than a post's round trip (40 ms): frames queue behind the post in flight.
    for (let i = 1; i <= 30; i++) send(sender, room, `m${i}`);
    await until(
      () => batched.messages(room).length >= 30 && plain.messages(room).length >= 30,
      "both receive 30 messages",
    );
    // Sent at once, the 30 are accepted in any order (each frame is its own invocation); each
    // connection receives them in seq order, all of them, once.
    for (const c of [batched, plain]) {
      const got = c.messages(room);
      expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, k) => k + 1));
      expect(new Set(got.map((m) => m.text))).toEqual(
        new Set(Array.from({ length: 30 }, (_, k) => `m${k + 1}`)),
      );
    }
    expect(batched.messages(room).map((m) => m.text)).toEqual(plain.messages(room).map((m) => m.text));
    expect(batched.raw.some((frame) => frame.includes("\n"))).toBe(true);
    for (const frame of plain.raw) {
      expect(frame).not.toContain("\n");
      expect(typeof JSON.parse(frame)).toBe("object");
    }
    expect(worker.stats().batched).toBeGreaterThan(0);
  } finally {
    await worker.stop();
  }
});

test("a room whose posts are throttled does not delay another room of the same shard", async () => {
  const worker = await startWorker();
  const slow = `${stack.id}-slow`;
  const fast = `${stack.id}-fast`;
  try {
    const slowMember = await connect("slow-member", true);
    const fastMember = await connect("fast-member", true);
    const sender = await connect("room-sender", false);
    await slowMember.join(slow);
    await fastMember.join(fast);
    await sender.join(slow);
    await sender.join(fast);
    throttledRooms.add(slow);
    for (let i = 1; i <= 5; i++) send(sender, slow, `s${i}`);
    await until(() => worker.stats().retried > 0, "the slow room's posts are throttled");
    const sentAt = performance.now();
    send(sender, fast, "f1");
    await until(() => fastMember.messages(fast).length === 1, "the fast room's message arrives", 5000);
    const waited = (fastMember.messages(fast)[0]?.at ?? 0) - sentAt;
    // The slow room keeps retrying (for up to a minute) meanwhile: nothing of it has arrived.
    expect(slowMember.messages(slow)).toHaveLength(0);
    expect(waited).toBeLessThan(2000);
    throttledRooms.delete(slow);
    await until(
      () => slowMember.messages(slow).length === 5,
      "the slow room's messages arrive once it is not throttled",
    );
    // Sent without waiting for acks, so their seqs need not follow the order sent: in seq order, each once.
    const got = slowMember.messages(slow);
    expect(got.map((m) => m.seq)).toEqual([...got.map((m) => m.seq)].sort((a, b) => a - b));
    expect(got.map((m) => m.text).sort()).toEqual(["s1", "s2", "s3", "s4", "s5"]);
  } finally {
    throttledRooms.delete(slow);
    await worker.stop();
  }
});

test("fan-out entries trimmed from the stream before delivery are counted and reported as a metric", async () => {
  const room = `${stack.id}-trim`;
  const member = await connect("trim-member", true);
  const sender = await connect("trim-sender", false);
  await member.join(room);
  await sender.join(room);
  let worker = await startWorker();
  send(sender, room, "before");
  await until(() => member.messages(room).length === 1, "the first message arrives");
  // The worker has caught up and checked its stream (once a second when idle).
  await new Promise((r) => setTimeout(r, 1500));
  await worker.stop();
  const acked = () => sender.lines.filter((l) => l.type === "ack" && l.roomId === room).length;
  for (const text of ["lost1", "lost2", "lost3"]) send(sender, room, text);
  await until(() => acked() === 4, "the three are acked (accepted, stored)");
  // What the publish side's length cap does to a backlog no worker reads: the oldest go.
  const admin = new Redis(stack.env.REDIS_URL as string);
  redises.push(admin);
  const stream = `${stack.env.REDIS_KEY_PREFIX ?? ""}fanout:0`;
  expect(await admin.xtrim(stream, "MAXLEN", 0)).toBe(3);
  const before = metrics.length;
  worker = await startWorker();
  try {
    await until(() => worker.stats().trimmed === 3, "the new owner counts the 3 trimmed entries", 10_000);
    expect(metrics.slice(before)).toEqual([{ name: "FanoutEntriesTrimmedUndelivered", value: 3 }]);
    send(sender, room, "after");
    await until(() => member.messages(room).some((m) => m.text === "after"), "later messages still arrive");
    expect(member.messages(room).map((m) => m.text)).toEqual(["before", "after"]);
  } finally {
    await worker.stop();
  }
});

test("the member cache is bounded; a gone connection leaves every cached room at once; a mass disconnect lists a room once per message at most", async () => {
  const worker = await startWorker({ memberCacheRooms: 2 });
  try {
    const rooms = [1, 2, 3, 4].map((n) => `${stack.id}-cache${n}`);
    const reader = await connect("cache-reader", true);
    const leaver = await connect("cache-leaver", true);
    for (const room of rooms) await reader.join(room);
    for (const room of rooms.slice(2)) await leaver.join(room);
    for (const room of rooms) {
      send(reader, room, "hello");
      await until(() => reader.messages(room).length === 1, `${room} is delivered`);
    }
    // Four rooms delivered, two cached: the two most recent, each with the reader and the leaver.
    expect(worker.stats().cachedRooms).toBe(2);
    expect(worker.stats().cachedMembers).toBe(4);
    leaver.ws.terminate();
    await until(() => leaver.ws.readyState === WebSocket.CLOSED, "the leaver is closed");
    send(reader, rooms[2] as string, "after");
    await until(() => worker.stats().gone === 1, "the leaver's post answers 410");
    // Removed from both cached rooms it was in, not only from the room that found it gone.
    expect(worker.stats().cachedMembers).toBe(2);
    await until(
      async () => (await stack.memberships(rooms[3] as string)).length === 1,
      "its records are removed",
    );

    // A mass disconnect: ten members of a room go without $disconnect.
    const crowd = `${stack.id}-crowd`;
    const stayer = await connect("crowd-stayer", true);
    await stayer.join(crowd);
    const goers = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(`crowd-goer${i}`, true)));
    for (const g of goers) await g.join(crowd);
    send(stayer, crowd, "c0");
    await until(
      () => [stayer, ...goers].every((c) => c.messages(crowd).length === 1),
      "the crowd's first message arrives everywhere",
    );
    // Counted from before the goers go: a post already on its way to one (a presence notice of the
    // joins) may be the one that finds it gone.
    const goneBefore = worker.stats().gone;
    for (const g of goers) g.ws.terminate();
    await new Promise((r) => setTimeout(r, 200));
    const listsBefore = worker.stats().memberLists;
    for (let i = 1; i <= 3; i++) {
      send(stayer, crowd, `c${i}`);
      await until(() => stayer.messages(crowd).length === i + 1, `crowd message ${i} arrives`);
    }
    // Each goer is found gone once, by whichever post reached it first.
    expect(worker.stats().gone - goneBefore).toBe(10);
    // Ten clean-ups bump the room's membership ten times; the room is listed once a message at most.
    expect(worker.stats().memberLists - listsBefore).toBeLessThanOrEqual(3);
    expect(stayer.messages(crowd).map((m) => m.text)).toEqual(["c0", "c1", "c2", "c3"]);
  } finally {
    await worker.stop();
  }
});
