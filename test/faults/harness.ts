/**
 * The fault-injection rig: services of its own (so it may SIGKILL them), a stack over them with two
 * fan-out workers and a persister, the gateway in a child process (so it can crash too), steady
 * traffic from real WebSocket clients in several rooms, and the checks every scenario ends with:
 * every acked message stored exactly once, every client complete and in order after catching up,
 * every send during the outage acked or answered with an error, and the time back to normal.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Client } from "pg";
import { signToken } from "../../core/auth";
import { sleep, waitAtMost } from "../../core/retry";
import { isolatedNames } from "../../local/isolation";
import { type LocalServices, startLocalServices } from "../../local/services";
import { repoRoot } from "../../local/services/process";
import { type RunningStack, startStack } from "../../local/stack";
import { type Frame, TestClient } from "../support/client";

/** The running stack, with an id to prefix room ids and a token maker. */
export interface FaultStack extends RunningStack {
  id: string;
  token(userId: string): Promise<string>;
}

/** What a scenario did and counted; one row of the results table. */
export interface ScenarioResult {
  scenario: string;
  fault: string;
  rooms: number;
  clients: number;
  downMs: number;
  acked: number;
  stored: number;
  lost: number;
  doubled: number;
  /** Acks that named a seq of their room another ack had named for another message. */
  seqReused: number;
  /** Sends answered with an error frame during the outage, by code (each was retried until acked). */
  outageAnswers: Record<string, number>;
  /** Sends whose connection died before any answer (gateway crash); retried after reconnecting. */
  cutByCrash: number;
  /** Sends that got no answer at all on a live connection within the integration timeout. */
  silent: number;
  /** Seqs of the room that carry no message (its sender died between the ledger's two writes). */
  seqsWithoutMessage: number;
  /** Live deliveries missed and filled by getHistory afterSeq. */
  filledByHistory: number;
  /** Duplicate live deliveries to one connection (must be 0). */
  duplicateDeliveries: number;
  reconnects: number;
  recoveryMs: number;
  recoveryBoundMs: number;
  passed: boolean;
}

export interface Rig {
  stack: FaultStack;
  services: LocalServices;
  url: string;
  service(name: "redis" | "kafka" | "postgres"): { kill(): Promise<void>; restart(): Promise<void> };
  /** SIGKILLs the gateway process. */
  killGateway(): Promise<void>;
  startGateway(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts our own services (never the machine's), a stack over them, and the gateway process. */
export async function startRig(settings: Record<string, string> = {}): Promise<Rig> {
  const id = randomBytes(3).toString("hex");
  const say = (line: string) => process.stderr.write(`[faults] ${line}\n`);
  const services = await startLocalServices({
    env: { KAFKA_HOME_CACHE: process.env.KAFKA_HOME_CACHE, KAFKA_VERSION: process.env.KAFKA_VERSION },
    dataDir: join(repoRoot, ".cache", "faults", `${process.pid}-${id}`),
    keepData: false,
    onProgress: say,
  });
  Object.assign(process.env, services.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
  });
  // startStack rather than the integration tests' startTestStack: that one keeps a PostgreSQL client
  // open, and its unhandled error would end the suite when PostgreSQL is killed.
  const running = await startStack({
    port: 0,
    fanoutWorkers: 2,
    persisters: 1,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
    settings: {
      ...isolatedNames(`f${id}`),
      KAFKA_PARTITIONS: "4",
      FANOUT_SHARDS: "8",
      FANOUT_LEASE_MS: "1500",
      FANOUT_SWEEP_AFTER_MS: "2000",
      RATE_LIMIT_PER_SECOND: "1000",
      RATE_LIMIT_BURST: "1000",
      // Fewer recent messages than an outage's worth: history must span PostgreSQL lagging behind.
      RECENT_HISTORY_SIZE: "20",
      ...settings,
    },
  });
  const stack: FaultStack = {
    ...running,
    id: `f${id}`,
    token: (userId) => signToken(running.env.JWT_SECRET as string, userId),
  };
  // The in-process gateway gives its port to a gateway process the suite can crash; the workers'
  // management endpoint (that port) stays right.
  const port = stack.gateway.port;
  await stack.gateway.close();
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  const startGateway = async () => {
    const proc = spawn(process.execPath, ["--import", "tsx", join(__dirname, "gateway-process.ts")], {
      cwd: repoRoot,
      env: { ...process.env, ...stack.env, FAULT_GATEWAY_PORT: String(port) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child = proc;
    exited = new Promise((r) => proc.once("exit", r));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("the gateway process did not start in 30 s")), 30_000);
      proc.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("ready ")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the gateway process exited with ${code}`));
      });
    });
  };
  await startGateway();
  const named = (name: string) => {
    const s = services.services.find((x) => x.name === name);
    if (!s?.kill || !s.restart) throw new Error(`${name} was not started by the rig`);
    return { kill: s.kill, restart: s.restart };
  };
  return {
    stack,
    services,
    url: stack.url,
    service: named,
    async killGateway() {
      child?.kill("SIGKILL");
      await exited;
    },
    startGateway,
    async stop() {
      child?.kill("SIGTERM");
      await waitAtMost(exited, 5000);
      child?.kill("SIGKILL");
      await stack.stop();
      await services.stop();
    },
  };
}

/** One member connection of a room; it reconnects (and rejoins) when its connection dies. */
class Member {
  client!: TestClient;
  /** Live message frames of the room, per connection instance. */
  readonly live: Frame[][] = [];
  reconnects = 0;

  constructor(
    readonly rig: Rig,
    readonly userId: string,
    readonly room: string,
  ) {}

  async open(): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const client = await TestClient.connect(this.rig.url, {
          token: await this.rig.stack.token(this.userId),
        });
        const joined = await client.request({ action: "joinRoom", roomId: this.room }, "joined", 10_000);
        if (joined.type !== "joined") throw new Error(`join answered ${JSON.stringify(joined)}`);
        const frames: Frame[] = [];
        this.live.push(frames);
        client.ws.on("message", (data) => {
          try {
            const f = JSON.parse(data.toString()) as Frame;
            if (f.type === "message" && f.roomId === this.room) frames.push(f);
          } catch {
            // not JSON: the checks below see it missing from nothing; the hostile suite covers frames
          }
        });
        this.client = client;
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  }

  get connected(): boolean {
    return this.client?.ws.readyState === 1;
  }

  /** Reopens the connection if it died; answers whether it had to. */
  async ensure(): Promise<boolean> {
    if (this.connected) return false;
    await this.open();
    this.reconnects++;
    return true;
  }
}

/** Steady traffic: one sender per room sends every `intervalMs`, retrying each message until acked. */
export class Traffic {
  readonly members: Member[][] = [];
  readonly acks = new Map<string, Map<number, string>>();
  readonly outageAnswers: Record<string, number> = {};
  cutByCrash = 0;
  silent = 0;
  seqReused = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    readonly rig: Rig,
    readonly name: string,
    readonly rooms = 4,
    readonly perRoom = 3,
    readonly intervalMs = 60,
  ) {}

  get roomIds(): string[] {
    return Array.from({ length: this.rooms }, (_, i) => `${this.rig.stack.id}-${this.name}-${i}`);
  }

  async start(): Promise<void> {
    for (const [i, room] of this.roomIds.entries()) {
      const list: Member[] = [];
      for (let j = 0; j < this.perRoom; j++) {
        const m = new Member(this.rig, `${this.name}${i}u${j}`, room);
        await m.open();
        list.push(m);
      }
      this.members.push(list);
      this.acks.set(room, new Map());
    }
    this.running = true;
    this.loops = this.roomIds.map((room, i) => this.sendLoop(room, this.members[i]?.[0] as Member));
  }

  private async sendLoop(room: string, sender: Member): Promise<void> {
    let k = 0;
    while (this.running) {
      const clientMsgId = `m${k++}`;
      await this.sendUntilAcked(room, sender, clientMsgId);
      await sleep(this.intervalMs);
    }
  }

  /** Sends one message, retrying with the same clientMsgId on an error or a lost connection. */
  private async sendUntilAcked(room: string, sender: Member, clientMsgId: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      try {
        await sender.ensure();
      } catch {
        await sleep(200);
        continue;
      }
      const client = sender.client;
      const closed = client.closed.then(() => "closed" as const);
      // The gateway's integration timeout is 29 s: an answer must come within it.
      const answer = client
        .request(
          { action: "sendMessage", roomId: room, text: `${this.name} ${clientMsgId}`, clientMsgId },
          "ack",
          31_000,
        )
        .catch(() => "timeout" as const);
      const got = await Promise.race([answer, closed]);
      if (got === "closed") {
        this.cutByCrash++;
        continue;
      }
      if (got === "timeout") {
        if (sender.connected) this.silent++;
        else this.cutByCrash++;
        continue;
      }
      if (got.type === "ack") {
        const acks = this.acks.get(room);
        const before = acks?.get(got.seq as number);
        if (before !== undefined && before !== got.messageId) this.seqReused++;
        acks?.set(got.seq as number, got.messageId as string);
        return;
      }
      const code = String(got.code ?? got.message ?? "unknown");
      this.outageAnswers[code] = (this.outageAnswers[code] ?? 0) + 1;
      await sleep(150);
    }
    throw new Error(`${room} ${clientMsgId} was not acked within 120 s`);
  }

  get acked(): number {
    let n = 0;
    for (const m of this.acks.values()) n += m.size;
    return n;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.flat().map((m) => (m.connected ? m.client.close() : undefined)));
  }
}

/**
 * Back to normal: a fresh message in a probe room is acked at the first try and delivered live to the
 * other member. Answers the time it took from `since`.
 */
export async function timeToNormal(rig: Rig, name: string, since: number, boundMs: number): Promise<number> {
  const room = `${rig.stack.id}-${name}-probe`;
  const deadline = since + boundMs + 5_000;
  let n = 0;
  while (Date.now() < deadline) {
    let a: TestClient | undefined;
    let b: TestClient | undefined;
    try {
      a = await TestClient.connect(rig.url, { token: await rig.stack.token(`${name}pa`) });
      b = await TestClient.connect(rig.url, { token: await rig.stack.token(`${name}pb`) });
      await a.request({ action: "joinRoom", roomId: room }, "joined", 3_000);
      await b.request({ action: "joinRoom", roomId: room }, "joined", 3_000);
      const clientMsgId = `p${n++}`;
      const ack = await a.request(
        { action: "sendMessage", roomId: room, text: "probe", clientMsgId },
        "ack",
        3_000,
      );
      if (ack.type === "ack") {
        await b.next((f) => f.type === "message" && f.messageId === ack.messageId, 3_000);
        return Date.now() - since;
      }
    } catch {
      // not yet
    } finally {
      await Promise.allSettled([a?.close(), b?.close()]);
    }
    await sleep(250);
  }
  return Number.POSITIVE_INFINITY;
}

/**
 * The room's rows in PostgreSQL once there are `count` (or the timeout passed). A client of its own
 * per query: the stack's long-lived one dies with the PostgreSQL the suite kills.
 */
async function storedRows(rig: Rig, room: string, count: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let rows: { messageId: string; seq: number }[] = [];
  for (;;) {
    const pg = new Client({ connectionString: rig.stack.env.DATABASE_URL });
    pg.on("error", () => undefined); // a dying server surfaces through the query's rejection
    try {
      await pg.connect();
      rows = (
        await pg.query(
          'select message_id as "messageId", seq::int as seq from messages where room_id = $1 order by seq',
          [room],
        )
      ).rows;
    } catch {
      // PostgreSQL is still coming back
    } finally {
      await pg.end().catch(() => undefined);
    }
    if (rows.length >= count || Date.now() > deadline) return rows;
    await sleep(200);
  }
}

/**
 * Fills a member's view of its room with getHistory afterSeq, as a client does; answers the complete
 * list, the gaps filled, and the seqs that carry no message (a sender that died between being given
 * a seq and recording its send: history, once storage has caught up, passes over them).
 */
async function catchUp(
  member: Member,
  lastSeq: number,
): Promise<{ all: Frame[]; filled: number; empty: number }> {
  const bySeq = new Map<number, Frame>();
  for (const frames of member.live) for (const f of frames) if (!bySeq.has(f.seq)) bySeq.set(f.seq, f);
  let filled = 0;
  let empty = 0;
  let after = 0;
  await member.ensure();
  while (after < lastSeq) {
    if (bySeq.has(after + 1)) {
      after++;
      continue;
    }
    const page = await member.client.request(
      { action: "getHistory", roomId: member.room, afterSeq: after, limit: 100 },
      "history",
    );
    if (page.type !== "history") throw new Error(`getHistory answered ${JSON.stringify(page)}`);
    const messages = page.messages as Frame[];
    for (const m of messages)
      if (!bySeq.has(m.seq)) {
        bySeq.set(m.seq, m);
        filled++;
      }
    if (bySeq.has(after + 1)) continue;
    // The page starts past after + 1 without saying more is still to come before it: nothing exists
    // there. (Storage catching up answers an empty page with hasMore; verify waited for it anyway.)
    const next = messages[0]?.seq;
    if (next === undefined || next <= after + 1 || (messages.length === 0 && page.hasMore)) {
      throw new Error(`seq ${after + 1} of ${member.room} is in no history page`);
    }
    empty += next - (after + 1);
    after = next - 1;
  }
  return { all: [...bySeq.values()].sort((x, y) => x.seq - y.seq), filled, empty };
}

/** The end-of-scenario checks; counts rather than throws, so the scenario can print and then assert. */
export async function verify(
  rig: Rig,
  traffic: Traffic,
): Promise<
  Omit<ScenarioResult, "scenario" | "fault" | "downMs" | "recoveryMs" | "recoveryBoundMs" | "passed">
> {
  let lost = 0;
  let doubled = 0;
  let stored = 0;
  let filled = 0;
  let empty = 0;
  let duplicateDeliveries = 0;
  for (const [i, room] of traffic.roomIds.entries()) {
    const acked = traffic.acks.get(room) ?? new Map<number, string>();
    const lastSeq = Math.max(0, ...acked.keys());
    const rows = await storedRows(rig, room, acked.size, 60_000);
    stored += rows.length;
    const byId = new Map<string, number>();
    for (const r of rows) byId.set(r.messageId, (byId.get(r.messageId) ?? 0) + 1);
    for (const id of acked.values()) {
      const n = byId.get(id) ?? 0;
      if (n === 0) lost++;
      if (n > 1) doubled += n - 1;
    }
    const seqs = new Set(rows.map((r) => r.seq));
    doubled += rows.length - seqs.size;
    let roomEmpty = 0;
    for (const member of traffic.members[i] ?? []) {
      for (const frames of member.live) {
        const seen = frames.map((f) => f.seq as number);
        duplicateDeliveries += seen.length - new Set(seen).size;
        for (let k = 1; k < seen.length; k++)
          if ((seen[k] as number) <= (seen[k - 1] as number)) duplicateDeliveries++;
      }
      const { all, filled: f, empty: e } = await catchUp(member, lastSeq);
      filled += f;
      roomEmpty = Math.max(roomEmpty, e);
      // Every acked message in the member's view, under the seq of its ack.
      const got = new Map(all.map((m) => [m.seq as number, m]));
      for (const [seq, id] of acked) if (got.get(seq)?.messageId !== id) lost++;
    }
    empty += roomEmpty;
  }
  return {
    rooms: traffic.rooms,
    clients: traffic.rooms * traffic.perRoom,
    acked: traffic.acked,
    stored,
    lost,
    doubled,
    seqReused: traffic.seqReused,
    outageAnswers: traffic.outageAnswers,
    cutByCrash: traffic.cutByCrash,
    silent: traffic.silent,
    filledByHistory: filled,
    seqsWithoutMessage: empty,
    duplicateDeliveries,
    reconnects: traffic.members.flat().reduce((n, m) => n + m.reconnects, 0),
  };
}
