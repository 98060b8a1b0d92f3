/**
 * The benchmark at tiny sizes, so that it cannot rot: every scenario runs end to end against the
 * services of the global set-up, and the three output files are produced and well formed. No speed
 * is asserted; the figures only have to be real measurements (counts that add up, finite numbers).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunResult, runBench } from "../bench/run";

jest.setTimeout(300_000);

describe("npm run bench -- --smoke", () => {
  const out = mkdtempSync(join(tmpdir(), "bench-smoke-"));
  let result: RunResult;

  beforeAll(async () => {
    ({ result } = await runBench(["--smoke", "--out", out]));
  });

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  test("runs every scenario without a failure", () => {
    expect(result.failures).toEqual([]);
    expect(result.profile).toBe("smoke");
  });

  test("latest.json holds the machine, the parameters and each scenario's figures", () => {
    const json = JSON.parse(readFileSync(join(out, "latest.json"), "utf8")) as RunResult;
    expect(json.machine.cpus).toBeGreaterThan(0);
    expect(json.machine.node).toBe(process.version);
    expect(json.machine.kafka).toEqual(expect.any(String));
    expect(json.fanout?.params.connections).toBeGreaterThan(0);
    expect(json.fanout?.targets.map((t) => t.target)).toEqual(["ws", "socketio", "floor", "chat"]);
    for (const target of json.fanout?.targets ?? []) {
      const step = target.steps[0];
      expect(step).toBeDefined();
      if (!step) continue;
      // Every delivery is accounted for: received or counted as dropped.
      expect(step.delivered + step.drops).toBe(step.expectedDeliveries);
      expect(step.delivered).toBeGreaterThan(0);
      expect(step.latencyMs.n).toBe(step.delivered);
      expect(Number.isFinite(step.latencyMs.p99)).toBe(true);
      expect(step.latencyMs.p50).toBeLessThanOrEqual(step.latencyMs.p99);
    }
    expect(json.fanout?.ratios.some((r) => r.target === "chat" && r.p99OverSocketIo !== null)).toBe(true);
    const persist = json.persist;
    expect(persist?.persister.rows).toBe(persist?.messages);
    expect(persist?.copy.rows).toBe(persist?.messages);
    expect(persist?.perRow.rows).toBeGreaterThan(0);
    expect(persist?.ratios.persisterOverCopy).toEqual(expect.any(Number));
    const ping = json.coldStart?.handlers.find((h) => h.handler === "ping");
    expect(ping?.bytes).toBeGreaterThan(0);
    expect(ping?.loadMs).toBeGreaterThan(0);
    expect(ping?.answer).toBe("pong");
    expect(json.coldStart?.floors.map((f) => f.name)).toEqual([
      "DynamoDB client + document client",
      "Secrets Manager client",
      "ioredis",
      "kafkajs",
      "pg",
    ]);
    for (const floor of json.coldStart?.floors ?? []) {
      expect(floor.loadMs).toBeGreaterThan(0);
      if (floor.kind === "bundled library") expect(floor.bytes).toBeGreaterThan(10_000);
    }
    expect(json.hops?.hops.map((h) => h.hop)).toContain("Kafka append (acks all)");
    // The SDK, the fan-out's signed client over undici's pool and over node:http's agent, plain HTTP.
    expect(json.hops?.posts.map((p) => p.client)).toEqual([
      "AWS SDK client",
      "signed keep-alive HTTP (the fan-out's client)",
      "the same, over node:http's agent (the handlers' transport)",
      "plain keep-alive HTTP",
    ]);
    for (const p of json.hops?.posts ?? []) expect(p.cpuMsPerPost).toBeGreaterThan(0);
    // The floor row (a bare POST and its WebSocket send) and the fan-out's delivery against it.
    expect(json.hops?.deliveries.map((d) => d.overFloor)).toEqual([
      1,
      expect.any(Number),
      expect.any(Number),
    ]);
    for (const d of json.hops?.deliveries ?? []) expect(d.cpuUsPerDelivery).toBeGreaterThan(0);
    // The hot room: one room, the management API answering after a simulated round trip.
    expect(json.hotRoom?.params.latencyMs).toBeGreaterThan(0);
    const hot = json.hotRoom?.target.steps[0];
    expect(hot?.delivered).toBeGreaterThan(0);
    expect((hot?.delivered ?? 0) + (hot?.drops ?? 0)).toBe(hot?.expectedDeliveries);
  });

  test("latest.md is a Markdown report with a table per scenario", () => {
    const md = readFileSync(join(out, "latest.md"), "utf8");
    for (const heading of [
      "## Fan-out and latency",
      "## Persistence",
      "## Lambda cold start",
      "## Where the time goes",
      "## A hot room",
      "## Targets (issue 12)",
    ]) {
      expect(md).toContain(heading);
    }
    const tables = md.split("\n").filter((line) => /^\|(---\|)+$/.test(line));
    expect(tables.length).toBeGreaterThanOrEqual(5);
  });

  test("latest.svg is one SVG document with a bar per measured figure", () => {
    const svg = readFileSync(join(out, "latest.svg"), "utf8");
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    expect((svg.match(/<rect /g) ?? []).length).toBeGreaterThan(5);
    expect(svg).not.toContain("NaN");
  });
});
