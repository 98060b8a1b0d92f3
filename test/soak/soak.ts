/**
 * The soak run (`npm run soak`): many concurrent WebSocket connections with steady traffic against
 * the whole local stack (`local/dev.ts` in a child process, over services this script starts), for a
 * fixed time. Reports errors (target 0), ack and delivery latency percentiles per interval, every
 * acked message stored once, and the memory of each process of the stack after warm-up and at the
 * end, against a stated growth bound. Exits 1 when a target is missed.
 *
 * Settings: SOAK_CONNECTIONS (2000), SOAK_SECONDS (300), SOAK_ROOM_SIZE (10 connections a room),
 * SOAK_RATE (messages a second over all rooms, 100), SOAK_INTERVAL_SECONDS (10), SOAK_WARMUP_SECONDS
 * (10). The short CI run: SOAK_CONNECTIONS=500 SOAK_SECONDS=30 npm run soak.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";
import WebSocket from "ws";
import { signToken } from "../../core/auth";
import { sleep, waitAtMost } from "../../core/retry";
import { formatMeter, formatProjection, loadPrices, projectMonthlyCost } from "../../local/gateway/cost";
import type { MeterSnapshot } from "../../local/gateway/meter";
import { isolatedNames } from "../../local/isolation";
import { commandLine, processTree } from "../../local/proc";
import { localJwtSecret } from "../../local/secret";
import { startLocalServices } from "../../local/services";
import { freePort, repoRoot } from "../../local/services/process";

const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const CONNECTIONS = num("SOAK_CONNECTIONS", 2000);
const SECONDS = num("SOAK_SECONDS", 300);
const ROOM_SIZE = num("SOAK_ROOM_SIZE", 10);
const RATE = num("SOAK_RATE", 100);
const INTERVAL_S = num("SOAK_INTERVAL_SECONDS", 10);
const WARMUP_S = num("SOAK_WARMUP_SECONDS", 10);
/** Memory bound: a process may grow by at most this fraction of its post-warm-up RSS, or by GROWTH_MB. */
const GROWTH_FRACTION = 0.5;
const GROWTH_MB = 100;

const say = (line: string) => process.stderr.write(`[soak] ${line}\n`);
const pct = (xs: number[], q: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

/** The RSS in MB and the command of a process, from /proc. */
function rssOf(pid: number): { mb: number; name: string } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const cmd = commandLine(pid) ?? [];
    const script = cmd.find((a) => /\.(ts|js)$/.test(a))?.replace(`${repoRoot}/`, "");
    const name = script ?? cmd[0]?.split("/").pop() ?? String(pid);
    return { mb: Math.round(kb / 1024), name: cmd[0]?.includes("java") ? "kafka (java)" : name };
  } catch {
    return undefined;
  }
}

interface Conn {
  ws: WebSocket;
  room: string;
  pending: Map<string, number>;
}

async function main(): Promise<void> {
  const started = Date.now();
  const rooms = Math.max(1, Math.ceil(CONNECTIONS / ROOM_SIZE));
  say(`${CONNECTIONS} connections in ${rooms} rooms, ${RATE} messages/s for ${SECONDS} s`);
  const services = await startLocalServices({
    env: { KAFKA_HOME_CACHE: process.env.KAFKA_HOME_CACHE, KAFKA_VERSION: process.env.KAFKA_VERSION },
    dataDir: join(repoRoot, ".cache", "soak", String(process.pid)),
    keepData: false,
    onProgress: say,
  });
  const port = await freePort();
  // The stack writes its meter here when it stops: what AWS would bill for the soak.
  const meterFile = join(repoRoot, ".cache", "soak", `meter-${process.pid}.json`);
  const stackEnv = {
    ...process.env,
    ...services.env,
    LOCAL_PORT: String(port),
    LOG_LEVEL: "error",
    ...isolatedNames(`soak${process.pid}`),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
    LOCAL_METER_FILE: meterFile,
  };
  let dev: ChildProcess | undefined;
  const failures: string[] = [];
  let written: (Record<string, unknown> & Parameters<typeof markdown>[0]) | undefined;
  try {
    dev = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "local", "dev.ts")], {
      cwd: repoRoot,
      env: stackEnv,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const child = dev;
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("the stack did not start within 120 s")), 120_000);
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /ready at (ws:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once("exit", (code) => reject(new Error(`npm run dev exited with ${code}`)));
    });
    say(`stack ready at ${url} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const secret = localJwtSecret(stackEnv);
    const errors: Record<string, number> = {};
    const error = (what: string) => {
      errors[what] = (errors[what] ?? 0) + 1;
    };
    const conns: Conn[] = [];
    const sentAt = new Map<string, { t: number; room: string }>();
    const received = new Map<string, number>(); // messageId → deliveries
    const acked = new Map<string, string>(); // clientMsgId → messageId
    let ackLat: number[] = [];
    let delLat: number[] = [];
    const roomMembers = new Map<string, number>();

    // Connect at up to 200 a second (AWS allows 500 new connections a second per account).
    const connectOne = async (i: number) => {
      const token = await signToken(secret, `u${i}`, { ttlSeconds: 3600 });
      return new Promise<void>((resolve) => {
        const room = `soak-${i % rooms}`;
        const ws = new WebSocket(`${url}?token=${token}`);
        const conn: Conn = { ws, room, pending: new Map() };
        ws.once("open", () => ws.send(JSON.stringify({ action: "joinRoom", roomId: room })));
        ws.on("message", (data) => {
          const f = JSON.parse(data.toString()) as Record<string, unknown>;
          if (f.type === "joined") {
            conns.push(conn);
            roomMembers.set(room, (roomMembers.get(room) ?? 0) + 1);
            resolve();
          } else if (f.type === "ack") {
            const t = conn.pending.get(f.clientMsgId as string);
            conn.pending.delete(f.clientMsgId as string);
            if (t !== undefined) ackLat.push(Date.now() - t);
            acked.set(f.clientMsgId as string, f.messageId as string);
          } else if (f.type === "message") {
            const id = f.messageId as string;
            received.set(id, (received.get(id) ?? 0) + 1);
            const cid = /^soak (\S+)/.exec(f.text as string)?.[1];
            const s = cid ? sentAt.get(cid) : undefined;
            if (s) delLat.push(Date.now() - s.t);
          } else if (f.type === "error") {
            error(`error frame ${f.code}`);
            if (typeof f.clientMsgId === "string") conn.pending.delete(f.clientMsgId);
          }
        });
        ws.on("close", () => {
          if (running) error("connection closed");
        });
        ws.on("error", () => {
          error("connect failed");
          resolve();
        });
      });
    };
    let running = true;
    for (let i = 0; i < CONNECTIONS; i += 20) {
      const t = Date.now();
      await Promise.all(Array.from({ length: Math.min(20, CONNECTIONS - i) }, (_, k) => connectOne(i + k)));
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
    say(`${conns.length} connections open and joined after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (conns.length < CONNECTIONS)
      failures.push(`only ${conns.length} of ${CONNECTIONS} connections joined`);

    const procs = () =>
      processTree(child.pid as number)
        .concat(services.services.flatMap((s) => (s.pid ? processTree(s.pid) : [])))
        .flatMap((pid) => {
          const r = rssOf(pid);
          return r ? [{ pid, ...r }] : [];
        });

    // Traffic: RATE messages a second, each from a random connection to its room.
    let n = 0;
    const tick = 50;
    const perTick = RATE * (tick / 1000);
    let credit = 0;
    const traffic = setInterval(() => {
      credit += perTick;
      while (credit >= 1) {
        credit--;
        const c = conns[Math.floor(Math.random() * conns.length)];
        if (!c || c.ws.readyState !== WebSocket.OPEN) continue;
        const clientMsgId = `c${n++}`;
        const t = Date.now();
        c.pending.set(clientMsgId, t);
        sentAt.set(clientMsgId, { t, room: c.room });
        c.ws.send(
          JSON.stringify({ action: "sendMessage", roomId: c.room, text: `soak ${clientMsgId}`, clientMsgId }),
        );
      }
    }, tick);

    const intervals: Record<string, number>[] = [];
    let memStart: { pid: number; mb: number; name: string }[] = [];
    const soakStart = Date.now();
    for (let k = 1; k * INTERVAL_S <= SECONDS; k++) {
      await sleep(soakStart + k * INTERVAL_S * 1000 - Date.now());
      const row = {
        t: k * INTERVAL_S,
        sent: n,
        acked: acked.size,
        errors: Object.values(errors).reduce((a, b) => a + b, 0),
        ackP50: pct(ackLat, 0.5),
        ackP95: pct(ackLat, 0.95),
        ackP99: pct(ackLat, 0.99),
        deliveryP50: pct(delLat, 0.5),
        deliveryP95: pct(delLat, 0.95),
        deliveryP99: pct(delLat, 0.99),
      };
      intervals.push(row);
      ackLat = [];
      delLat = [];
      say(
        `t=${row.t}s sent ${row.sent} acked ${row.acked} errors ${row.errors} ack p50/p95/p99 ${row.ackP50}/${row.ackP95}/${row.ackP99} ms, delivery ${row.deliveryP50}/${row.deliveryP95}/${row.deliveryP99} ms`,
      );
      if (memStart.length === 0 && row.t >= WARMUP_S) memStart = procs();
    }
    if (memStart.length === 0) memStart = procs();
    clearInterval(traffic);
    // Let the last answers and deliveries land.
    const drain = Date.now() + 30_000;
    while (conns.some((c) => c.pending.size > 0) && Date.now() < drain) await sleep(100);
    // Deliveries lag acks under load: wait (bounded) until each acked message reached its room.
    const expected = () => {
      let want = 0;
      for (const [cid] of acked) want += roomMembers.get(sentAt.get(cid)?.room as string) ?? 0;
      return want;
    };
    const want = expected();
    while ([...received.values()].reduce((a, b) => a + b, 0) < want && Date.now() < drain + 30_000)
      await sleep(200);
    const memEnd = procs();
    running = false;

    const unanswered = conns.reduce((a, c) => a + c.pending.size, 0);
    if (unanswered > 0) error("no answer");
    // Every acked message reached every member of its room once.
    let missing = 0;
    let doubled = 0;
    for (const [cid, id] of acked) {
      const room = sentAt.get(cid)?.room as string;
      const want = roomMembers.get(room) ?? 0;
      const got = received.get(id) ?? 0;
      if (got < want) missing += want - got;
      if (got > want) doubled += got - want;
    }
    // Every acked message stored exactly once.
    const pg = new Client({ connectionString: services.env.DATABASE_URL });
    await pg.connect();
    let rows = 0;
    const wanted = new Set(acked.values());
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await pg.query(
        "select message_id, count(*)::int as n from messages where room_id like 'soak-%' group by message_id",
      );
      rows = r.rows.filter((x: { message_id: string }) => wanted.has(x.message_id)).length;
      const dup = r.rows.filter((x: { n: number }) => x.n > 1).length;
      if ((rows >= wanted.size && dup === 0) || Date.now() > deadline) {
        if (dup > 0) failures.push(`${dup} messages stored twice`);
        break;
      }
      await sleep(500);
    }
    await pg.end();
    const lostInStore = wanted.size - rows;

    const memory = memEnd.map((e) => {
      const s = memStart.find((x) => x.pid === e.pid);
      const bound = s ? Math.max(s.mb * (1 + GROWTH_FRACTION), s.mb + GROWTH_MB) : undefined;
      return {
        pid: e.pid,
        name: e.name,
        startMb: s?.mb,
        endMb: e.mb,
        boundMb: bound ? Math.round(bound) : undefined,
      };
    });
    const self = rssOf(process.pid);
    const totalErrors = Object.values(errors).reduce((a, b) => a + b, 0);
    if (totalErrors > 0) failures.push(`errors: ${JSON.stringify(errors)}`);
    if (missing > 0) failures.push(`${missing} deliveries missing`);
    if (doubled > 0) failures.push(`${doubled} deliveries doubled`);
    if (lostInStore > 0) failures.push(`${lostInStore} acked messages not stored`);
    for (const m of memory)
      if (m.boundMb !== undefined && m.endMb > m.boundMb)
        failures.push(
          `${m.name} (${m.pid}) grew from ${m.startMb} MB to ${m.endMb} MB (bound ${m.boundMb} MB)`,
        );

    const all = intervals.slice(1);
    const summary = {
      date: new Date().toISOString(),
      connections: conns.length,
      rooms,
      seconds: SECONDS,
      ratePerSecond: RATE,
      sent: n,
      acked: acked.size,
      errors,
      unanswered,
      deliveriesMissing: missing,
      deliveriesDoubled: doubled,
      storedOfAcked: rows,
      worstIntervalAckP99: Math.max(0, ...all.map((r) => r.ackP99 as number)),
      worstIntervalDeliveryP99: Math.max(0, ...all.map((r) => r.deliveryP99 as number)),
      intervals,
      memory,
      clientProcessMb: self?.mb,
      growthBound: `${GROWTH_FRACTION * 100}% or ${GROWTH_MB} MB over the RSS after ${WARMUP_S} s of warm-up`,
      failures,
      passed: failures.length === 0,
    };
    writeFileSync(join(__dirname, "results.json"), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(__dirname, "RESULTS.md"), markdown(summary));
    written = summary;
    say(
      `memory (MB, after warm-up → end, bound): ${memory.map((m) => `${m.name} ${m.startMb}→${m.endMb} (${m.boundMb})`).join("; ")}`,
    );
    say(
      `done: ${summary.connections} connections, ${n} sent, ${acked.size} acked, errors ${totalErrors}, ${missing} deliveries missing, ${doubled} doubled, ${rows}/${acked.size} stored; ${failures.length === 0 ? "PASS" : `FAIL: ${failures.join("; ")}`}`,
    );
    for (const c of conns) c.ws.terminate();
  } finally {
    if (dev && dev.exitCode === null) {
      const exited = new Promise((r) => dev?.once("exit", r));
      dev.kill("SIGTERM");
      await waitAtMost(exited, 20_000);
      if (dev.exitCode === null) dev.kill("SIGKILL");
    }
    if (written && existsSync(meterFile)) {
      // The bill: the stack wrote its meter on the way out; added to the results written above.
      const reading = JSON.parse(readFileSync(meterFile, "utf8")) as MeterSnapshot;
      const projection = projectMonthlyCost(reading, loadPrices());
      const lines = [...formatMeter(reading), ...(projection ? formatProjection(projection) : [])];
      for (const line of lines) say(line);
      const withBill = { ...written, bill: { reading, projection, lines } };
      writeFileSync(join(__dirname, "results.json"), `${JSON.stringify(withBill, null, 2)}\n`);
      writeFileSync(join(__dirname, "RESULTS.md"), markdown(withBill));
    }
    await services.stop();
  }
  process.exit(failures.length === 0 ? 0 : 1);
}

function markdown(
  s: Record<string, unknown> & {
    intervals: Record<string, number>[];
    memory: Record<string, unknown>[];
    bill?: { lines: string[] };
  },
): string {
  const lines = [
    "# Soak results",
    "",
    `Produced by \`npm run soak\` (SOAK_CONNECTIONS=${s.connections}, SOAK_SECONDS=${s.seconds}) on ${String(s.date).slice(0, 10)}: ` +
      `${s.connections} connections in ${s.rooms} rooms, ${s.ratePerSecond} messages/s, ${s.sent} sent, ${s.acked} acked, ` +
      `errors ${JSON.stringify(s.errors)}, ${s.deliveriesMissing} deliveries missing, ${s.deliveriesDoubled} doubled, ` +
      `${s.storedOfAcked} of ${s.acked} stored. ${s.passed ? "PASS" : "FAIL"}.`,
    "",
    "| t (s) | sent | acked | errors | ack p50 / p95 / p99 (ms) | delivery p50 / p95 / p99 (ms) |",
    "|---|---|---|---|---|---|",
    ...s.intervals.map(
      (r) =>
        `| ${r.t} | ${r.sent} | ${r.acked} | ${r.errors} | ${r.ackP50} / ${r.ackP95} / ${r.ackP99} | ${r.deliveryP50} / ${r.deliveryP95} / ${r.deliveryP99} |`,
    ),
    "",
    `Memory (RSS, MB) after warm-up and at the end; bound: ${s.growthBound}.`,
    "",
    "| process | after warm-up | end | bound |",
    "|---|---|---|---|",
    ...s.memory.map(
      (m) => `| ${m.name} (${m.pid}) | ${m.startMb ?? "-"} | ${m.endMb} | ${m.boundMb ?? "-"} |`,
    ),
    "",
    ...(s.bill
      ? [
          "What AWS would bill for the soak (the emulator's meter; prices and sources in bench/prices.json):",
          "",
          "```",
          ...s.bill.lines,
          "```",
          "",
        ]
      : []),
  ];
  return lines.join("\n");
}

main().catch((error) => {
  process.stderr.write(
    `soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
