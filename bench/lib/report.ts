/** Writes the run's results: JSON (everything), a Markdown summary and an SVG chart the README shows. */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatMeter, formatProjection } from "../../local/gateway/cost";
import type { ColdStartResultSet, RunResult } from "../run";
import { FLOOR_TARGET, type TargetResult } from "../scenarios/fanout";
import { ratio, round } from "./stats";

const fmt = (v: number | null | undefined, digits = 1) =>
  v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v.toFixed(digits)).toLocaleString("en-US");
const x = (v: number | null | undefined) => (v === null || v === undefined ? "–" : `${fmt(v, 2)}×`);

/** One target of issue 12, as measured in this run. */
export interface TargetCheck {
  target: string;
  goal: string;
  measured: string;
  /** The same goal's figure for the architecture's floor in the same run, where it ran. */
  floor?: string;
  met: boolean | null;
}

/** Whether a target reached saturation at some step (it stops stepping at the first one that does). */
const saturated = (t: TargetResult) => t.steps.some((s) => s.saturated);

/** "≥ " before the highest deliveries/s of a target that never saturated: it could deliver more. */
const atLeast = (t: TargetResult | undefined) => (t && !saturated(t) ? "≥ " : "");

/**
 * "≤ " before the ratio of a target that saturated over a baseline that never did: the baseline's
 * figure is a lower bound, so the ratio is an upper bound.
 */
const atMost = (t: TargetResult | undefined, base: TargetResult | undefined) =>
  t && base && base !== t && saturated(t) && !saturated(base) ? "≤ " : "";

const total = (cpu: Record<string, number> | undefined) =>
  cpu ? Object.values(cpu).reduce((a, b) => a + b, 0) : undefined;

/** A fan-out target's whole-path figures, each against Socket.IO's in the same run. */
interface PathFigures {
  cpu: string;
  cpuRatio: number | undefined;
  saturation: string;
  /** Under an upper bound (a baseline that never saturated) a ratio past the goal proves nothing. */
  saturationRatio: number | undefined;
  saturationBounded: boolean;
  p50: number | null | undefined;
  p99: number | null | undefined;
  drops: number;
  latency: string;
  kafkaMsPerMessage: number | undefined;
}

function pathFigures(
  f: NonNullable<RunResult["fanout"]>,
  t: TargetResult,
  sio: TargetResult | undefined,
): PathFigures | undefined {
  const first = t.steps[0];
  if (!first) return undefined;
  const sioCpu = total(sio?.steps[0]?.cpuMsPer1000);
  const cpu = total(first.cpuMsPer1000);
  const cpuRatio = cpu !== undefined && sioCpu ? cpu / sioCpu : undefined;
  const saturationRatio = f.saturation.find((q) => q.target === t.target)?.overSocketIo ?? undefined;
  const bound = atMost(t, sio);
  const q = f.ratios.find((r) => r.target === t.target && r.offeredPerSec === first.offeredPerSec);
  const kafka = first.cpuMsPer1000?.kafka;
  const roomSize = Math.max(1, Math.floor(f.params.connections / f.params.rooms));
  return {
    cpu: `${fmt(cpu)} ÷ ${fmt(sioCpu)} = ${x(cpuRatio)}`,
    cpuRatio,
    saturation: `${fmt(t.maxDeliveriesPerSec, 0)} ÷ ${atLeast(sio)}${fmt(sio?.maxDeliveriesPerSec, 0)} = ${bound}${x(saturationRatio)}${bound ? " (Socket.IO did not saturate at the highest step offered)" : ""}`,
    saturationRatio,
    saturationBounded: bound !== "",
    p50: q?.p50OverSocketIo,
    p99: q?.p99OverSocketIo,
    drops: first.drops,
    latency: `p50 ${x(q?.p50OverSocketIo)}, p99 ${x(q?.p99OverSocketIo)}, ${first.drops} drops`,
    kafkaMsPerMessage: kafka === undefined ? undefined : (kafka * roomSize) / 1000,
  };
}

/** The four whole-path goals, each a test of a target's figures: true met, false missed, null unknown. */
const PATH_GOALS: {
  target: (offered: number) => string;
  goal: string;
  measured: (p: PathFigures) => string;
  met: (p: PathFigures) => boolean | null;
}[] = [
  {
    target: () => "CPU of the whole path per 1,000 deliveries ÷ Socket.IO's (first step)",
    goal: "≤ 1.5×",
    measured: (p) => p.cpu,
    met: (p) => (p.cpuRatio === undefined ? null : p.cpuRatio <= 1.5),
  },
  {
    target: () => "saturation deliveries/s ÷ Socket.IO's",
    goal: "≥ 0.3×",
    measured: (p) => p.saturation,
    met: (p) =>
      p.saturationRatio === undefined || (p.saturationBounded && p.saturationRatio >= 0.3)
        ? null
        : p.saturationRatio >= 0.3,
  },
  {
    target: (offered) => `p50 and p99 ÷ Socket.IO's at ${offered} msg/s, drops`,
    goal: "p50 ≤ 3×, p99 ≤ 5×, 0 drops",
    measured: (p) => p.latency,
    met: (p) => (p.p50 == null || p.p99 == null ? null : p.p50 <= 3 && p.p99 <= 5 && p.drops === 0),
  },
  {
    target: () => "Kafka broker CPU per accepted message (first step)",
    goal: "≤ 0.5 ms",
    measured: (p) =>
      p.kafkaMsPerMessage === undefined
        ? "not measured (the environment's broker)"
        : `${fmt(p.kafkaMsPerMessage, 2)} ms`,
    met: (p) => (p.kafkaMsPerMessage === undefined ? null : p.kafkaMsPerMessage <= 0.5),
  },
];

/** The run's figures against the targets (each a ratio within this run, or a bound). */
export function targetChecks(r: RunResult): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const f = r.fanout;
  const sio = f?.targets.find((t) => t.target === "socketio");
  const chat = f?.targets.find((t) => t.target === "chat");
  const floorTarget = f?.targets.find((t) => t.target === FLOOR_TARGET);
  const figures = f && chat ? pathFigures(f, chat, sio) : undefined;
  const floor = f && floorTarget ? pathFigures(f, floorTarget, sio) : undefined;
  if (figures && chat?.steps[0]) {
    for (const g of PATH_GOALS) {
      const floorMet = floor ? g.met(floor) : null;
      checks.push({
        target: g.target(chat.steps[0].offeredPerSec),
        goal: g.goal,
        measured: g.measured(figures),
        ...(floor
          ? {
              floor: `${g.measured(floor)}${floorMet === false ? ": misses the goal too" : floorMet ? ": meets the goal" : ""}`,
            }
          : {}),
        met: g.met(figures),
      });
    }
  }
  const deliveries = r.hops?.deliveries;
  if (deliveries?.length) {
    for (const d of deliveries.slice(1)) {
      checks.push({
        target: `${d.path}: CPU per delivery ÷ the floor`,
        goal: "≤ 2×",
        measured: `${fmt(d.cpuUsPerDelivery)} µs ÷ ${fmt(deliveries[0]?.cpuUsPerDelivery)} µs = ${x(d.overFloor)}`,
        met: d.overFloor === null ? null : d.overFloor <= 2,
      });
    }
  }
  if (r.hotRoom) {
    const ok = r.hotRoom.target.steps.filter((s) => s.drops === 0 && s.latencyMs.p99 < 1000);
    const best = Math.max(0, ...ok.map((s) => s.offeredPerSec));
    checks.push({
      target: `hot room (${r.hotRoom.params.connections} members, ${r.hotRoom.params.latencyMs} ms per @connections call)`,
      goal: "≥ 20 msg/s, p99 < 1 s, nothing lost",
      measured: r.hotRoom.target.steps
        .map((s) => `${s.offeredPerSec} msg/s: p99 ${fmt(s.latencyMs.p99, 0)} ms, ${s.drops} drops`)
        .join("; "),
      met: best >= 20,
    });
  }
  return checks;
}

/** The Markdown table(s) of one run. */
export function markdown(r: RunResult): string {
  const out: string[] = [];
  out.push(`# Benchmark results (${r.profile})`, "");
  out.push(
    `Run ${r.startedAt}, ${r.durationSeconds} s. Machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ` +
      `Node.js ${r.machine.node}, Kafka ${r.machine.kafka ?? "?"}, Redis ${r.machine.redis ?? "?"}, PostgreSQL ${r.machine.postgres ?? "?"}. ` +
      `Load average at start: ${r.loadAverage.join(" / ")} (a shared machine: read ratios, not absolutes).`,
    "",
  );
  const checks = targetChecks(r);
  if (checks.length > 0) {
    out.push(
      "## Targets (issue 12)",
      "",
      ...(checks.some((c) => c.floor)
        ? [
            "The architecture's floor is the message path of DESIGN.md with nothing of this project's on it, run against the same clients in the same run (bench/servers/floor-gateway.ts and floor-fanout.ts: a membership check, a seq from DynamoDB, the stream, one Kafka request a message, one POST a delivery). A goal the floor misses too is out of reach on this machine whatever this project's code does.",
            "",
          ]
        : []),
      "| target | goal | this run | the architecture's floor | met |",
      "|---|---|---|---|---|",
      ...checks.map(
        (c) =>
          `| ${c.target} | ${c.goal} | ${c.measured} | ${c.floor ?? "–"} | ${c.met === null ? "–" : c.met ? "yes" : "no"} |`,
      ),
      "",
    );
  }
  if (r.fanout) {
    const f = r.fanout;
    const sio = f.targets.find((t) => t.target === "socketio");
    const ceiling = f.targets.find((t) => t.target === "ws");
    out.push(
      "## Fan-out and latency",
      "",
      `${f.params.connections} connections in ${f.params.rooms} rooms, ${f.params.stepSeconds} s per step${f.params.warmSeconds ? ` after ${f.params.warmSeconds} s at the first rate to warm up (not measured)` : ""}; latency = client send → receipt at every member.`,
      "",
      "| target | msg/s offered | deliveries/s (offered) | p50 ms | p95 ms | p99 ms | max ms | ack p50 ms | drops | errors | p50 ÷ Socket.IO | p99 ÷ Socket.IO |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const t of f.targets) {
      for (const s of t.steps) {
        const ratio = f.ratios.find((q) => q.target === t.target && q.offeredPerSec === s.offeredPerSec);
        out.push(
          `| ${t.target} | ${s.offeredPerSec} | ${fmt(s.deliveriesPerSec, 0)} (${s.offeredDeliveriesPerSec})${s.saturated ? " sat." : ""} | ${fmt(s.latencyMs.p50)} | ${fmt(s.latencyMs.p95)} | ${fmt(s.latencyMs.p99)} | ${fmt(s.latencyMs.max)} | ${fmt(s.ackMs.p50)} | ${s.drops} | ${Object.values(s.errors).reduce((a, b) => a + b, 0)} | ${x(ratio?.p50OverSocketIo)} | ${x(ratio?.p99OverSocketIo)} |`,
        );
      }
    }
    out.push(
      "",
      "| target | max deliveries/s | ÷ Socket.IO | ÷ ws ceiling |",
      "|---|---|---|---|",
      ...f.targets.map((t) => {
        const s = f.saturation.find((q) => q.target === t.target);
        return `| ${t.target} | ${atLeast(t)}${fmt(t.maxDeliveriesPerSec, 0)} | ${atMost(t, sio)}${x(s?.overSocketIo)} | ${atMost(t, ceiling)}${x(s?.overCeiling)} |`;
      }),
      "",
    );
    const cpuRows = f.targets.flatMap((t) => {
      const cpu = t.steps[0]?.cpuMsPer1000;
      if (!cpu) return [];
      const total = Object.values(cpu).reduce((a, b) => a + b, 0);
      return [
        ...Object.entries(cpu).map(([group, ms]) => `| ${t.target} | ${group} | ${fmt(ms)} |`),
        `| ${t.target} | **all of the above** | **${fmt(total)}** |`,
      ];
    });
    if (cpuRows.length > 0) {
      out.push(
        `Where the CPU goes at the first step (${f.params.rates[0]} msg/s): CPU milliseconds per 1,000 deliveries, by process (from /proc; services the environment provided are not counted).`,
        "",
        "| target | process | CPU ms per 1,000 deliveries |",
        "|---|---|---|",
        ...cpuRows,
        "",
      );
    }
  }
  if (r.hotRoom) {
    const { params, target } = r.hotRoom;
    out.push(
      "## A hot room",
      "",
      `One room of ${params.connections} members (clients connected with batch=1), the management API answering each call after ${params.latencyMs} ms (a simulated round trip to API Gateway on AWS), ${params.stepSeconds} s per step; latency = client send → receipt at every member. Target: ≥ 20 messages a second with p99 < 1 s and nothing lost.`,
      "",
      "| msg/s offered | deliveries/s (offered) | p50 ms | p95 ms | p99 ms | max ms | drops | errors |",
      "|---|---|---|---|---|---|---|---|",
      ...target.steps.map(
        (s) =>
          `| ${s.offeredPerSec} | ${fmt(s.deliveriesPerSec, 0)} (${s.offeredDeliveriesPerSec})${s.saturated ? " sat." : ""} | ${fmt(s.latencyMs.p50)} | ${fmt(s.latencyMs.p95)} | ${fmt(s.latencyMs.p99)} | ${fmt(s.latencyMs.max)} | ${s.drops} | ${Object.values(s.errors).reduce((a, b) => a + b, 0)} |`,
      ),
      "",
    );
  }
  if (r.fanout?.bill) {
    const { reading, projection } = r.fanout.bill;
    out.push(
      "## What AWS would bill",
      "",
      "The emulator's meter over the chat target's whole run (connects, every step, the drain), and a month of 1,000 users each behaving as the run's average connection did (a load test's traffic: far more than a chat user's). Prices and their sources: bench/prices.json.",
      "",
      "```",
      ...formatMeter(reading),
      ...(projection ? formatProjection(projection) : []),
      "```",
      "",
    );
  }
  if (r.hops) {
    out.push(
      "## Where the time goes",
      "",
      "Each hop alone, one call at a time (ms):",
      "",
      "| hop | p50 | p95 | p99 |",
      "|---|---|---|---|",
    );
    for (const h of r.hops.hops)
      out.push(
        `| ${h.hop} | ${fmt(h.latencyMs.p50, 2)} | ${fmt(h.latencyMs.p95, 2)} | ${fmt(h.latencyMs.p99, 2)} |`,
      );
    out.push(
      "",
      "| PostToConnection client | POST/s at the worker's concurrency | CPU ms per POST (client + emulator) |",
      "|---|---|---|",
    );
    for (const p of r.hops.posts)
      out.push(`| ${p.client} | ${fmt(p.postsPerSec, 0)} | ${fmt(p.cpuMsPerPost, 3)} |`);
    if (r.hops.dynamoCalls?.length) {
      const [sdk, wire, bare] = r.hops.dynamoCalls;
      out.push(
        "",
        "A DynamoDB call from a handler, 16 in flight: the AWS SDK, the send ledger's signed keep-alive client, and the same request on a plain client (CPU of the bench process, the client alone: DynamoDB, dynalite, runs in a process of its own). sendMessage makes two calls a message, both through the ledger's client; joinRoom and $disconnect make theirs through the SDK.",
        "",
        "| DynamoDB GetItem client | calls/s | CPU ms per call |",
        "|---|---|---|",
        ...r.hops.dynamoCalls.map(
          (c) => `| ${c.client} | ${fmt(c.callsPerSec, 0)} | ${fmt(c.cpuMsPerCall, 3)} |`,
        ),
      );
      if (sdk && wire && bare)
        out.push(
          "",
          `The SDK adds ${fmt(round(sdk.cpuMsPerCall - bare.cpuMsPerCall, 3), 3)} ms of CPU to each call (${x(ratio(sdk.cpuMsPerCall, bare.cpuMsPerCall))} the bare request); the ledger's client adds ${fmt(round(wire.cpuMsPerCall - bare.cpuMsPerCall, 3), 3)} ms (${x(ratio(wire.cpuMsPerCall, bare.cpuMsPerCall))}).`,
        );
    }
    if (r.hops.deliveries?.length) {
      out.push(
        "",
        "One delivery end to end, at the worker's concurrency, 64 connections (poster, HTTP server, WebSocket server and clients all in one process, so each row counts the same parties). The floor is what one POST per delivery costs on this machine whatever the code; API Gateway's management API makes every delivery such a POST.",
        "",
        "| path | deliveries/s | frames per POST | CPU µs per delivery | ÷ floor |",
        "|---|---|---|---|---|",
        ...r.hops.deliveries.map(
          (d) =>
            `| ${d.path} | ${fmt(d.deliveriesPerSec, 0)} | ${fmt(d.framesPerPost, 2)} | ${fmt(d.cpuUsPerDelivery)} | ${x(d.overFloor)} |`,
        ),
      );
    }
    const chat = r.fanout?.targets.find((t) => t.target === "chat")?.steps[0];
    if (chat) {
      out.push(
        "",
        `In the fan-out run (this project, first step, medians): client send → handler's sentAt ${fmt(chat.hopsMs.sendToSentAt)} ms ` +
          `(gateway in, the admit script with the membership check, the seq from DynamoDB), sentAt → ack ${fmt(chat.hopsMs.sentAtToAck)} ms (send record, publish script, Kafka append, gateway out), ` +
          `sentAt → first member ${fmt(chat.hopsMs.sentAtToFirst)} ms (send record, publish script, Redis stream → worker → PostToConnection → gateway), ` +
          `first → last member ${fmt(chat.hopsMs.firstToLast)} ms (the room's POSTs one after another through the worker).`,
      );
    }
    out.push("");
  }
  if (r.persist) {
    const p = r.persist;
    out.push(
      "## Persistence",
      "",
      `A backlog of ${p.messages.toLocaleString("en-US")} messages in the topic.`,
      "",
      "| writer | rows stored | seconds | rows/s (whole) | rows/s (steady) | complete |",
      "|---|---|---|---|---|---|",
      `| persister (this project) | ${p.persister.rows} | ${p.persister.seconds} | ${fmt(p.persister.rowsPerSec, 0)} | ${fmt(p.persister.steadyRowsPerSec, 0)} | ${p.persister.complete} |`,
      `| one INSERT per message (seed, time-boxed) | ${p.perRow.rows} | ${p.perRow.seconds} | ${fmt(p.perRow.rowsPerSec, 0)} | ${fmt(p.perRow.steadyRowsPerSec, 0)} | ${p.perRow.complete} |`,
      `| COPY (ceiling) | ${p.copy.rows} | ${p.copy.seconds} | ${fmt(p.copy.rowsPerSec, 0)} | ${fmt(p.copy.steadyRowsPerSec, 0)} | ${p.copy.complete} |`,
      "",
      `Persister ÷ COPY ceiling: ${x(p.ratios.persisterOverCopy)} (target ≥ 0.5×); persister ÷ per-row baseline: ${x(p.ratios.persisterOverPerRow)} (target ≥ 20×).`,
      "",
    );
  }
  if (r.coldStart) {
    out.push(
      "## Lambda cold start",
      "",
      "| handler | bundle KiB (minified) | gzip KiB | require ms (median) | process start → loaded ms | first invoke ms | warm invoke ms | answer |",
      "|---|---|---|---|---|---|---|---|",
    );
    for (const h of r.coldStart.handlers) {
      out.push(
        `| ${h.handler} | ${fmt(h.bytes / 1024)}${h.bytes > 200 * 1024 ? " ✗" : ""} | ${fmt(h.gzipBytes / 1024)} | ${fmt(h.loadMs)}${h.loadMs > 50 ? " ✗" : ""} | ${fmt(h.processToLoadedMs)} | ${fmt(h.firstInvokeMs)} | ${fmt(h.warmInvokeMs, 2)} | ${h.answer ?? "–"} |`,
      );
    }
    out.push("", "Targets: bundle under 200 KB and require under 50 ms (✗ marks a miss).", "");
    if (r.coldStart.floors?.length) {
      out.push(
        "The floors: the AWS SDK clients the Lambda runtime provides (left out of the bundles) and the client libraries the handlers bundle, each loaded alone in a fresh process the same way (a library bundled alone with the handlers' options). A handler that loads one cannot load faster, or bundle smaller, than it.",
        "",
        "| floor | kind | bundle KiB (minified) | require ms (median) | loaded by |",
        "|---|---|---|---|---|",
        ...r.coldStart.floors.map(
          (f) =>
            `| ${f.name} | ${f.kind} | ${f.bytes === null ? "–" : fmt(f.bytes / 1024)} | ${fmt(f.loadMs)} | ${f.usedBy} |`,
        ),
        "",
      );
    }
  }
  return `${out.join("\n")}\n`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

interface Bar {
  label: string;
  value: number;
  color: string;
}

function panel(
  title: string,
  unit: string,
  bars: Bar[],
  y: number,
  width: number,
): { svg: string; height: number } {
  const rowH = 18;
  const left = 260;
  const usable = width - left - 90;
  const max = Math.max(1e-9, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const parts = [`<text x="10" y="${y + 16}" font-weight="bold">${esc(title)}</text>`];
  bars.forEach((b, i) => {
    const top = y + 26 + i * rowH;
    const v = Number.isFinite(b.value) ? b.value : 0;
    const w = Math.max(1, (v / max) * usable);
    parts.push(
      `<text x="${left - 6}" y="${top + 12}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${left}" y="${top}" width="${w.toFixed(1)}" height="${rowH - 4}" fill="${b.color}"/>`,
      `<text x="${left + w + 4}" y="${top + 12}">${esc(Number.isFinite(b.value) ? `${fmt(b.value, b.value < 10 ? 2 : 0)} ${unit}` : "–")}</text>`,
    );
  });
  return { svg: parts.join("\n"), height: 36 + bars.length * rowH };
}

const COLORS: Record<string, string> = {
  chat: "#2b6cb0",
  socketio: "#dd6b20",
  ws: "#718096",
  [FLOOR_TARGET]: "#a0aec0",
};

/** The chart: saturation throughput, p99 per step, persistence rates, handler load times. */
export function svg(r: RunResult): string {
  const width = 760;
  const panels: { title: string; unit: string; bars: Bar[] }[] = [];
  if (r.fanout) {
    panels.push({
      title: "Fan-out: most deliveries per second reached",
      unit: "/s",
      bars: r.fanout.targets.map((t) => ({
        label: t.target,
        value: t.maxDeliveriesPerSec,
        color: COLORS[t.target] ?? "#555",
      })),
    });
    panels.push({
      title: "Fan-out: p99 publish → receive latency by offered load",
      unit: "ms",
      bars: r.fanout.targets.flatMap((t) =>
        t.steps.map((s) => ({
          label: `${t.target} @ ${s.offeredPerSec} msg/s${s.saturated ? " (sat.)" : ""}`,
          value: s.latencyMs.p99,
          color: COLORS[t.target] ?? "#555",
        })),
      ),
    });
  }
  if (r.persist) {
    panels.push({
      title: `Persistence: rows per second (backlog ${r.persist.messages.toLocaleString("en-US")})`,
      unit: "rows/s",
      bars: [
        { label: "COPY (ceiling)", value: r.persist.copy.rowsPerSec, color: "#718096" },
        { label: "persister (this project)", value: r.persist.persister.steadyRowsPerSec, color: "#2b6cb0" },
        { label: "INSERT per message (seed)", value: r.persist.perRow.steadyRowsPerSec, color: "#dd6b20" },
      ],
    });
  }
  if (r.coldStart) {
    panels.push({
      title: "Lambda cold start: require time of each handler bundle (target 50 ms), and the floors in grey",
      unit: "ms",
      bars: [
        ...r.coldStart.handlers.map((h) => ({
          label: h.handler,
          value: h.loadMs,
          color: h.loadMs > 50 ? "#c53030" : "#2f855a",
        })),
        // The floors in grey: what a handler that loads one cannot go below.
        ...(r.coldStart.floors ?? []).map((f) => ({
          label: f.kind === "runtime SDK" ? `floor: ${f.name.split(" ")[0]} SDK client` : `floor: ${f.name}`,
          value: f.loadMs,
          color: "#718096",
        })),
      ],
    });
  }
  let y = 30;
  const body: string[] = [];
  for (const p of panels) {
    const drawn = panel(p.title, p.unit, p.bars, y, width);
    body.push(drawn.svg);
    y += drawn.height + 12;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${esc(`chat-backend benchmark (${r.profile}, ${r.machine.cpus} CPUs, Node ${r.machine.node})`)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** Writes latest.json, latest.md and latest.svg into `dir`, each through a temporary file. */
export function writeResults(dir: string, r: RunResult): string[] {
  mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    [
      "latest.json",
      `${JSON.stringify(r, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`,
    ],
    ["latest.md", markdown(r)],
    ["latest.svg", svg(r)],
  ];
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    return path;
  });
}

export type { ColdStartResultSet };
