/**
 * Fan-out and latency: C real WebSocket clients in R rooms against one target (this project's local
 * stack, the Socket.IO pair, or the plain `ws` ceiling), with an offered load stepped up until the
 * target saturates. Every member of the sender's room counts one delivery; latency is from the
 * client's send to each member's receipt, all clients sharing this process's clock.
 */
import { performance } from "node:perf_hooks";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { measureCpu, type ProcessGroup } from "../lib/cpu";
import { progress, sleep } from "../lib/progress";
import { round, Samples, type Summary } from "../lib/stats";

/**
 * The fan-out target that is the architecture's floor: the message path of DESIGN.md with nothing
 * of this project's on it (bench/servers/floor-gateway.ts and floor-fanout.ts).
 */
export const FLOOR_TARGET = "floor";

/** The shape of the load: how many clients, rooms, which rates, for how long each. */
export interface FanoutParams {
  connections: number;
  rooms: number;
  /** Offered messages a second, in the order tried. */
  rates: number[];
  /** Seconds of sending per step. */
  stepSeconds: number;
  /** Longest wait for stragglers after a step's sending ends, in seconds. */
  drainSeconds: number;
  /**
   * Seconds of sending at the first rate before the first step, measured nowhere: each target's
   * code is compiled and its caches are filled by then, so that the steps measure steady state (a
   * cold start has a scenario of its own). Default 0.
   */
  warmSeconds?: number;
}

/** How to reach a target: the protocol its clients speak and where. */
export type TargetKind =
  | {
      protocol: "chat";
      url: string;
      token: (userId: string) => Promise<string>;
      /** Connect with `batch=1` (PROTOCOL.md, batched frames). */
      batch?: boolean;
    }
  | { protocol: "plain"; url: string }
  | { protocol: "socketio"; urls: string[] };

/** One load step's figures. */
export interface StepResult {
  offeredPerSec: number;
  sent: number;
  acked: number;
  errors: Record<string, number>;
  expectedDeliveries: number;
  delivered: number;
  /** Deliveries that never arrived within the drain window. */
  drops: number;
  deliveriesPerSec: number;
  offeredDeliveriesPerSec: number;
  /** Publish (client send) to receipt at every member, ms. */
  latencyMs: Summary;
  /** Send to ack, ms. */
  ackMs: Summary;
  /** Medians over messages, ms: client send → server's sentAt, sentAt → first member, first → last member, sentAt → ack. */
  hopsMs: { sendToSentAt: number; sentAtToFirst: number; firstToLast: number; sentAtToAck: number };
  /** CPU the load generator (this process) used, as a share of one core. */
  clientCpu: number;
  /**
   * CPU milliseconds each process of the target (and each shared service) spent per 1,000
   * deliveries over the step, from /proc; absent where /proc is not.
   */
  cpuMsPer1000?: Record<string, number>;
  saturated: boolean;
}

/** One target's run. */
export interface TargetResult {
  target: string;
  connectSeconds: number;
  steps: StepResult[];
  /** Highest deliveries a second reached over the steps. */
  maxDeliveriesPerSec: number;
}

interface Handlers {
  onMessage(key: string, sentAt: string | undefined, at: number): void;
  onAck(key: string, at: number): void;
  onError(code: string, key: string | undefined): void;
}

interface LoadClient {
  join(roomId: string): Promise<void>;
  send(roomId: string, key: string): void;
  close(): void;
}

const now = () => performance.timeOrigin + performance.now();

function wsClient(url: string, h: Handlers): Promise<LoadClient> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const joins = new Map<string, () => void>();
  // A join refused for a passing reason (INTERNAL while the stack warms up) is asked again.
  let joining: string | undefined;
  const retryJoin = () =>
    setTimeout(() => {
      if (joining !== undefined) ws.send(JSON.stringify({ action: "joinRoom", roomId: joining }));
    }, 200);
  ws.on("message", (data) => {
    const at = now();
    // A batch=1 connection may receive several frames in one, one JSON object a line.
    for (const line of data.toString().split("\n")) {
      let f: {
        type?: string;
        text?: string;
        sentAt?: string;
        clientMsgId?: string;
        roomId?: string;
        code?: string;
      };
      try {
        f = JSON.parse(line);
      } catch {
        h.onError("UNPARSED", undefined);
        continue;
      }
      if (f.type === "message") h.onMessage(f.text ?? "", f.sentAt, at);
      else if (f.type === "ack") h.onAck(f.clientMsgId ?? "", at);
      else if (f.type === "joined") joins.get(f.roomId ?? "")?.();
      else if (f.type === "error" && (f as { action?: string }).action === "joinRoom") retryJoin();
      else if (f.type === "error") h.onError(f.code ?? "ERROR", f.clientMsgId);
    }
  });
  ws.on("error", () => h.onError("SOCKET", undefined));
  return new Promise((resolve, reject) => {
    ws.once("open", () =>
      resolve({
        join: (roomId) =>
          new Promise<void>((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`join ${roomId} timed out`)), 60_000);
            joining = roomId;
            joins.set(roomId, () => {
              clearTimeout(timer);
              joining = undefined;
              done();
            });
            ws.send(JSON.stringify({ action: "joinRoom", roomId }));
          }),
        send: (roomId, key) =>
          ws.send(JSON.stringify({ action: "sendMessage", roomId, text: key, clientMsgId: key })),
        close: () => ws.terminate(),
      }),
    );
    ws.once("unexpected-response", (_req, res) =>
      reject(new Error(`upgrade refused with ${res.statusCode}`)),
    );
    ws.once("error", reject);
  });
}

function socketIoClient(url: string, userId: string, h: Handlers): Promise<LoadClient> {
  const socket: Socket = io(url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    auth: { userId },
  });
  socket.on("message", (m: { text?: string; sentAt?: string }) => h.onMessage(m.text ?? "", m.sentAt, now()));
  socket.on("connect_error", () => h.onError("SOCKET", undefined));
  return new Promise((resolve, reject) => {
    socket.once("connect", () =>
      resolve({
        join: (roomId) =>
          new Promise<void>((done) => {
            socket.emit("join", roomId, () => done());
          }),
        send: (roomId, key) =>
          socket.emit("send", { roomId, text: key, clientMsgId: key }, () => h.onAck(key, now())),
        close: () => socket.disconnect(),
      }),
    );
    socket.once("connect_error", reject);
  });
}

interface Pending {
  t: number;
  members: number;
  received: number;
  first: number;
  last: number;
  sentAt: number;
  ack: number;
}

/** Runs the steps against one target; stops stepping at the first saturated step. */
export async function runFanout(
  name: string,
  target: TargetKind,
  params: FanoutParams,
  /** The processes whose CPU each step accounts for (the target's servers, the services, this one). */
  processes: () => ProcessGroup[] = () => [],
): Promise<TargetResult> {
  const roomSize = Math.max(1, Math.floor(params.connections / params.rooms));
  const run = `${name.replace(/[^A-Za-z0-9]/g, "")}${Date.now().toString(36)}`;
  let pending = new Map<string, Pending>();
  let latency = new Samples();
  let acks = new Samples();
  let delivered = 0;
  let acked = 0;
  let lastAt = 0;
  let errors: Record<string, number> = {};
  const handlers: Handlers = {
    onMessage(key, sentAt, at) {
      const p = pending.get(key);
      if (!p) return;
      p.received++;
      delivered++;
      latency.push(at - p.t);
      if (p.first === 0) {
        p.first = at;
        if (sentAt) p.sentAt = Date.parse(sentAt);
      }
      p.last = at;
      lastAt = at;
    },
    onAck(key, at) {
      const p = pending.get(key);
      if (!p) return;
      if (p.ack !== 0) return;
      p.ack = at;
      acked++;
      acks.push(at - p.t);
    },
    onError(code) {
      errors[code] = (errors[code] ?? 0) + 1;
    },
  };

  const started = now();
  const clients: LoadClient[] = [];
  const roomOf = (i: number) => `${run}-r${Math.floor(i / roomSize)}`;
  const total = roomSize * params.rooms;
  for (let i = 0; i < total; i += 50) {
    const batch = Array.from({ length: Math.min(50, total - i) }, (_, j) => i + j);
    const opened = await Promise.all(
      batch.map(async (k) => {
        const userId = `${run}-u${k}`;
        const client =
          target.protocol === "socketio"
            ? await socketIoClient(target.urls[k % target.urls.length] as string, userId, handlers)
            : target.protocol === "chat"
              ? await wsClient(
                  `${target.url}?token=${encodeURIComponent(await target.token(userId))}${target.batch ? "&batch=1" : ""}`,
                  handlers,
                )
              : await wsClient(`${target.url}?user=${userId}`, handlers);
        await client.join(roomOf(k));
        return client;
      }),
    );
    clients.push(...opened);
  }
  const connectSeconds = round((now() - started) / 1000);
  progress(
    `${name}: ${clients.length} clients in ${params.rooms} rooms of ${roomSize} connected in ${connectSeconds} s`,
  );
  // Warm-up: one message per room, waited for, so that lazily opened connections (Kafka producer,
  // worker shard leases, adapter subscriptions) are open before anything is measured.
  const warmUntil = now() + 60_000;
  for (let r = 0; r < params.rooms; r++) {
    const key = `${run}-w${r}`;
    pending.set(key, { t: now(), members: roomSize, received: 0, first: 0, last: 0, sentAt: 0, ack: 0 });
    clients[r * roomSize]?.send(`${run}-r${r}`, key);
  }
  while (delivered < params.rooms * roomSize && now() < warmUntil) await sleep(50);
  progress(`${name}: warm-up delivered ${delivered} of ${params.rooms * roomSize}`);

  /** Sends `rate` messages a second for `seconds`, round the rooms and their members; answers how many. */
  const offer = async (rate: number, seconds: number, prefix: string, t0: number): Promise<number> => {
    let sent = 0;
    const goal = Math.round(rate * seconds);
    // A tick sends what is due by now, so the offered rate holds even when timers run late.
    while (sent < goal) {
      const due = Math.min(goal, Math.floor(((now() - t0) / 1000) * rate));
      for (; sent < due; sent++) {
        const room = sent % params.rooms;
        const member = Math.floor(sent / params.rooms) % roomSize;
        const index = room * roomSize + member;
        const key = `${run}-${prefix}-m${sent}`;
        pending.set(key, { t: now(), members: roomSize, received: 0, first: 0, last: 0, sentAt: 0, ack: 0 });
        clients[index]?.send(`${run}-r${room}`, key);
      }
      await sleep(5);
    }
    return sent;
  };

  const firstRate = params.rates[0];
  if (params.warmSeconds && firstRate) {
    delivered = 0;
    const sent = await offer(firstRate, params.warmSeconds, "warm", now());
    const drainUntil = now() + params.drainSeconds * 1000;
    while (delivered < sent * roomSize && now() < drainUntil) await sleep(20);
    progress(
      `${name}: ${params.warmSeconds} s at ${firstRate} msg/s to warm up (not measured): delivered ${delivered} of ${sent * roomSize}`,
    );
  }
  errors = {};

  const steps: StepResult[] = [];
  try {
    for (const [stepIndex, rate] of params.rates.entries()) {
      pending = new Map();
      latency = new Samples();
      acks = new Samples();
      delivered = 0;
      acked = 0;
      errors = {};
      lastAt = 0;
      const cpu = process.cpuUsage();
      const cpuOf = measureCpu(processes);
      const t0 = now();
      const windowMs = params.stepSeconds * 1000;
      const sent = await offer(rate, params.stepSeconds, `s${stepIndex}`, t0);
      const expected = sent * roomSize;
      const drainUntil = t0 + windowMs + params.drainSeconds * 1000;
      while ((delivered < expected || acked < sent) && now() < drainUntil) await sleep(20);
      const elapsed = Math.max(windowMs, (lastAt || now()) - t0) / 1000;
      const used = process.cpuUsage(cpu);
      const groupSeconds = cpuOf();
      const med = (values: number[]) => {
        if (values.length === 0) return Number.NaN;
        values.sort((a, b) => a - b);
        return round(values[Math.floor(values.length / 2)] as number);
      };
      const ps = [...pending.values()];
      const step: StepResult = {
        offeredPerSec: rate,
        sent,
        acked,
        errors,
        expectedDeliveries: expected,
        delivered,
        drops: expected - delivered,
        deliveriesPerSec: round(delivered / elapsed, 1),
        offeredDeliveriesPerSec: rate * roomSize,
        latencyMs: latency.summary(),
        ackMs: acks.summary(),
        hopsMs: {
          sendToSentAt: med(ps.filter((p) => p.sentAt > 0).map((p) => p.sentAt - p.t)),
          sentAtToFirst: med(ps.filter((p) => p.sentAt > 0).map((p) => p.first - p.sentAt)),
          firstToLast: med(ps.filter((p) => p.first > 0).map((p) => p.last - p.first)),
          sentAtToAck: med(ps.filter((p) => p.sentAt > 0 && p.ack > 0).map((p) => p.ack - p.sentAt)),
        },
        clientCpu: round((used.user + used.system) / 1000 / (now() - t0 || 1), 2),
        cpuMsPer1000: groupSeconds
          ? Object.fromEntries(
              Object.entries(groupSeconds).map(([group, seconds]) => [
                group,
                round((seconds * 1_000_000) / Math.max(1, delivered), 1),
              ]),
            )
          : undefined,
        saturated: false,
      };
      step.saturated =
        step.drops > 0.01 * expected || step.deliveriesPerSec < 0.9 * step.offeredDeliveriesPerSec;
      steps.push(step);
      progress(
        `${name}: ${rate} msg/s → ${step.deliveriesPerSec} deliveries/s of ${step.offeredDeliveriesPerSec} offered, ` +
          `p50 ${step.latencyMs.p50} ms p99 ${step.latencyMs.p99} ms, drops ${step.drops}, ` +
          `errors ${JSON.stringify(errors)}${step.saturated ? " (saturated)" : ""}`,
      );
      if (step.saturated) break;
      await sleep(500);
    }
  } finally {
    for (const c of clients) c.close();
  }
  return {
    target: name,
    connectSeconds,
    steps,
    maxDeliveriesPerSec: Math.max(0, ...steps.map((s) => s.deliveriesPerSec)),
  };
}
