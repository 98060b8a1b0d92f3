/**
 * `npm run dev` as a platform that survives its own faults, with real processes: its own Redis, Kafka
 * broker and PostgreSQL on a data folder of this test's, two persisters, and a WebSocket client
 * sending through the gateway. One persister and then the broker are SIGKILLed (by the pids this
 * test's `npm run dev` started); each is restarted and every acked message is stored exactly once.
 * Ctrl-C stops everything within its bound, and a second run on the same folder still has the
 * history, with seqs continuing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "pg";
import { signToken } from "../core/auth";
import { sleep } from "../core/retry";
import { commandLine, processTree } from "../local/proc";
import { type Frame, TestClient } from "./support/client";

jest.setTimeout(300_000);

const ROOT = resolve(__dirname, "..");
const SECRET = "dev-supervision-test-secret-0123456789abcdef";
/** The stop bound `npm run dev` states (DEV_STOP_SECONDS), and what this test allows on top of it. */
const STOP_BOUND_S = 15;

const dataDir = mkdtempSync(join(tmpdir(), "chat-dev-supervision-"));
// As root, PostgreSQL runs as the postgres user, who must be able to reach its folder inside.
chmodSync(dataDir, 0o755);
const started: ChildProcess[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** `npm run dev` on the test's data folder, with services of its own (none from the environment). */
function dev() {
  const child = spawn(
    process.execPath,
    [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "local/dev.ts"],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        REDIS_URL: "",
        KAFKA_BROKERS: "",
        DATABASE_URL: "",
        DYNAMODB_ENDPOINT: "",
        DEV_DATA_DIR: dataDir,
        DEV_STOP_SECONDS: String(STOP_BOUND_S),
        JWT_SECRET: SECRET,
        LOCAL_PORT: "0",
        LOG_LEVEL: "fatal",
        FANOUT_WORKERS: "1",
        PERSISTERS: "2",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  started.push(child);
  let output = "";
  child.stdout?.on("data", (c) => {
    output += c;
  });
  child.stderr?.on("data", (c) => {
    output += c;
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const until = async (pattern: RegExp, timeoutMs = 120_000, from = 0) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = output.slice(from).match(pattern);
      if (match) return match;
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`no ${pattern} in the output of npm run dev:\n${output.slice(-4000)}`);
      }
      await sleep(100);
    }
  };
  /** The processes of this run (the dev process's descendants) whose command line matches. */
  const pids = (match: (args: string[]) => boolean) =>
    processTree(child.pid as number).filter((pid) => {
      const args = commandLine(pid);
      return args !== undefined && match(args);
    });
  return { child, exited, until, pids, output: () => output };
}

/** Sends until acked, retrying with the same clientMsgId on INTERNAL or silence, as a client would. */
async function sendAcked(client: TestClient, roomId: string, clientMsgId: string): Promise<Frame> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const answer = await client
      .request({ action: "sendMessage", roomId, text: `text of ${clientMsgId}`, clientMsgId }, "ack", 5000)
      .catch(() => undefined);
    if (answer?.type === "ack") return answer;
    if (answer && answer.code !== "INTERNAL" && answer.code !== "RATE_LIMITED") {
      throw new Error(`sendMessage answered ${JSON.stringify(answer)}`);
    }
    if (Date.now() > deadline) throw new Error(`${clientMsgId} was never acked`);
    await sleep(250);
  }
}

async function stored(databaseUrl: string): Promise<Map<string, number>> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; n: number }>(
      "select message_id as id, count(*)::int as n from messages group by message_id",
    );
    return new Map(rows.map((r) => [r.id, r.n]));
  } finally {
    await db.end();
  }
}

/** Waits until every acked message is stored; answers how long that took. */
async function allStored(databaseUrl: string, acked: Frame[], timeoutMs: number): Promise<number> {
  const since = Date.now();
  for (;;) {
    const rows = await stored(databaseUrl).catch(() => new Map<string, number>());
    if (acked.every((a) => rows.has(a.messageId))) return Date.now() - since;
    if (Date.now() - since > timeoutMs) {
      const missing = acked.filter((a) => !rows.has(a.messageId)).length;
      throw new Error(`${missing} of ${acked.length} acked messages not stored within ${timeoutMs} ms`);
    }
    await sleep(200);
  }
}

/** SIGINT, as Ctrl-C: answers the exit code and how long the stop took. */
async function interrupt(run: ReturnType<typeof dev>): Promise<{ code: number | null; ms: number }> {
  const since = Date.now();
  run.child.kill("SIGINT");
  const code = await run.exited;
  return { code, ms: Date.now() - since };
}

afterAll(async () => {
  for (const child of started) {
    if (child.pid !== undefined && alive(child.pid)) {
      // Whatever this test's dev process started goes with it (by pid, descendants first).
      for (const pid of processTree(child.pid).reverse()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const ROOMS = ["r1", "r2", "r3", "r4", "r5", "r6"];

test("restarts a killed persister and broker, stores every acked message once, stops within its bound, keeps the data", async () => {
  const first = dev();
  const url = (await first.until(/Chat backend ready at (ws:\/\/\S+)/))[1] as string;
  const databaseUrl = (await first.until(/postgres: ready at (postgresql:\/\/\S+)/))[1] as string;
  const token = await signToken(SECRET, "alice", { name: "Alice", ttlSeconds: 3600 });
  const client = await TestClient.connect(url, { token });
  for (const roomId of ROOMS) {
    expect((await client.request({ action: "joinRoom", roomId }, "joined")).type).toBe("joined");
  }
  const acked: Frame[] = [];
  let n = 0;
  const sendRound = async () => {
    const round = ++n;
    acked.push(
      ...(await Promise.all(ROOMS.map((roomId) => sendAcked(client, roomId, `${roomId}-${round}`)))),
    );
  };
  for (let i = 0; i < 3; i++) await sendRound();
  await allStored(databaseUrl, acked, 30_000);

  // A persister dies: it is restarted, and its partitions are written again within the bound.
  const persisters = first.pids((args) => args.some((a) => a.endsWith("worker/persister.ts")));
  expect(persisters).toHaveLength(2);
  const mark = first.output().length;
  const killedAt = Date.now();
  process.kill(persisters[1] as number, "SIGKILL");
  const afterKill = acked.length;
  for (let i = 0; i < 3; i++) await sendRound();
  await allStored(databaseUrl, acked.slice(afterKill), 60_000);
  const takeoverMs = Date.now() - killedAt;
  const name = (
    await first.until(/(persister-\d+) exited \(signal SIGKILL\); restarting in 1 s/, 10_000, mark)
  )[1];
  await first.until(new RegExp(`${name} running again`), 60_000, mark);
  expect(first.pids((args) => args.some((a) => a.endsWith("worker/persister.ts")))).toHaveLength(2);

  // The broker dies: it is restarted on its port, and sends are acked (and stored) again.
  const brokers = first.pids(
    (args) => args.includes("kafka.Kafka") && args.some((a) => a.startsWith(dataDir)),
  );
  expect(brokers).toHaveLength(1);
  const brokerMark = first.output().length;
  const brokerKilledAt = Date.now();
  process.kill(brokers[0] as number, "SIGKILL");
  await first.until(/kafka exited \(signal SIGKILL\); restarting in 1 s/, 10_000, brokerMark);
  for (let i = 0; i < 2; i++) await sendRound();
  const ackedAgainMs = Date.now() - brokerKilledAt;
  await first.until(/kafka running again/, 120_000, brokerMark);
  for (let i = 0; i < 2; i++) await sendRound();
  await allStored(databaseUrl, acked, 90_000);
  const rows = await stored(databaseUrl);
  expect(acked.filter((a) => rows.get(a.messageId) !== 1)).toEqual([]);
  expect(rows.size).toBe(acked.length);
  await client.close();

  // Ctrl-C: the whole stack is gone within the bound.
  const everything = processTree(first.child.pid as number).slice(1);
  const stop = await interrupt(first);
  expect(stop.code).toBe(0);
  expect(stop.ms).toBeLessThan((STOP_BOUND_S + 3) * 1000);
  for (let i = 0; i < 50 && everything.some(alive); i++) await sleep(100);
  expect(everything.filter(alive)).toEqual([]);

  // The next run on the same folder has the history, and seqs go on.
  const second = dev();
  const url2 = (await second.until(/Chat backend ready at (ws:\/\/\S+)/))[1] as string;
  const client2 = await TestClient.connect(url2, { token });
  const lastSeq = Math.max(...acked.filter((a) => a.roomId === "r1").map((a) => a.seq as number));
  const joined = await client2.request({ action: "joinRoom", roomId: "r1" }, "joined");
  expect(joined.lastSeq).toBe(lastSeq);
  const history = await client2.request(
    { action: "getHistory", roomId: "r1", afterSeq: 0, limit: 100 },
    "history",
  );
  expect(history.messages.map((m: Frame) => m.messageId)).toEqual(
    acked.filter((a) => a.roomId === "r1").map((a) => a.messageId),
  );
  const next = await sendAcked(client2, "r1", "r1-after-restart");
  expect(next.seq).toBe(lastSeq + 1);
  const databaseUrl2 = (await second.until(/postgres: ready at (postgresql:\/\/\S+)/))[1] as string;
  await allStored(databaseUrl2, [...acked, next], 30_000);
  await client2.close();

  // Ctrl-C while the broker is dead and being restarted is bounded too.
  const secondBroker = second.pids(
    (args) => args.includes("kafka.Kafka") && args.some((a) => a.startsWith(dataDir)),
  );
  expect(secondBroker).toHaveLength(1);
  const all2 = processTree(second.child.pid as number).slice(1);
  const mark2 = second.output().length;
  process.kill(secondBroker[0] as number, "SIGKILL");
  await second.until(/kafka exited \(signal SIGKILL\)/, 10_000, mark2);
  await sleep(1500);
  const stop2 = await interrupt(second);
  expect(stop2.ms).toBeLessThan((STOP_BOUND_S + 3) * 1000);
  for (let i = 0; i < 50 && all2.some(alive); i++) await sleep(100);
  expect(all2.filter(alive)).toEqual([]);

  process.stderr.write(
    `dev-supervision: ${acked.length + 1} acked and stored once; persister takeover ${(takeoverMs / 1000).toFixed(1)} s, ` +
      `sends acked again ${(ackedAgainMs / 1000).toFixed(1)} s after the broker's kill, ` +
      `Ctrl-C ${(stop.ms / 1000).toFixed(1)} s and ${(stop2.ms / 1000).toFixed(1)} s (bound ${STOP_BOUND_S} s)\n`,
  );
});
