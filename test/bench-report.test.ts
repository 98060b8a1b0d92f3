/**
 * The benchmark report's saturation check: a baseline that delivered everything offered at its
 * highest step never saturated, so its figure is a lower bound and the ratio against it an upper
 * bound, and the report says so instead of printing a ratio it did not measure. And what the same
 * run's floors say of a target: the cores' ceiling at the floor row's CPU per delivery, and the
 * delivery path's hops added up.
 */
import { markdown, targetChecks } from "../bench/lib/report";
import type { RunResult } from "../bench/run";
import type { StepResult, TargetResult } from "../bench/scenarios/fanout";
import { DELIVERY_HOPS, type HopsParams, type HopsResult } from "../bench/scenarios/hops";

function step(offered: number, delivered: number, saturated: boolean): StepResult {
  return {
    offeredPerSec: offered / 20,
    sent: offered / 20,
    acked: offered / 20,
    errors: {},
    expectedDeliveries: offered,
    delivered,
    drops: offered - delivered,
    deliveriesPerSec: delivered,
    offeredDeliveriesPerSec: offered,
    latencyMs: { n: delivered, p50: 1, p95: 2, p99: 3, max: 4, mean: 1 },
    ackMs: { n: delivered, p50: 1, p95: 2, p99: 3, max: 4, mean: 1 },
    hopsMs: { sendToSentAt: 1, sentAtToFirst: 1, firstToLast: 1, sentAtToAck: 1 },
    clientCpu: 0.1,
    saturated,
  };
}

function target(name: string, steps: StepResult[]): TargetResult {
  return {
    target: name,
    connectSeconds: 1,
    steps,
    maxDeliveriesPerSec: Math.max(...steps.map((s) => s.deliveriesPerSec)),
  };
}

function run(socketioSaturates: boolean): RunResult {
  const sioTop = socketioSaturates ? step(60_000, 50_000, true) : step(60_000, 60_000, false);
  const chat = target("chat", [step(2000, 2000, false), step(20_000, 15_000, true)]);
  const sio = target("socketio", [step(2000, 2000, false), sioTop]);
  return {
    profile: "default",
    startedAt: "2026-12-03T00:00:00.000Z",
    durationSeconds: 1,
    loadAverage: [0, 0, 0],
    machine: {
      cpus: 2,
      cpuModel: "test",
      memoryGiB: 1,
      platform: "linux",
      release: "6",
      node: "v20",
      versions: {},
    },
    fanout: {
      params: { connections: 1000, rooms: 50, rates: [100, 1000, 3000], stepSeconds: 1, drainSeconds: 1 },
      targets: [sio, chat],
      ratios: [],
      saturation: [
        { target: "socketio", overSocketIo: 1, overCeiling: null },
        { target: "chat", overSocketIo: 15_000 / sio.maxDeliveriesPerSec, overCeiling: null },
      ],
    },
    failures: [],
  } as unknown as RunResult;
}

const saturationCheck = (r: RunResult) =>
  targetChecks(r).find((c) => c.target.startsWith("saturation")) as { measured: string; met: boolean | null };

describe("the report's saturation check", () => {
  test("a baseline that never saturated is a lower bound, and the ratio an upper bound", () => {
    const r = run(false);
    const check = saturationCheck(r);
    expect(check.measured).toBe(
      "15,000 ÷ ≥ 60,000 = ≤ 0.25× (Socket.IO did not saturate at the highest step offered)",
    );
    expect(check.met).toBe(false);
    expect(markdown(r)).toContain("| socketio | ≥ 60,000 |");
    expect(markdown(r)).toContain("| chat | 15,000 | ≤ 0.25× |");
  });

  test("an upper bound at or past the goal is not taken for the goal met", () => {
    const r = run(false);
    const chat = r.fanout?.targets.find((t) => t.target === "chat");
    if (!chat?.steps[1] || !r.fanout?.saturation[1]) throw new Error("the fixture has no chat target");
    chat.steps[1].deliveriesPerSec = 20_000;
    chat.maxDeliveriesPerSec = 20_000;
    r.fanout.saturation[1].overSocketIo = 20_000 / 60_000;
    const check = saturationCheck(r);
    expect(check.measured).toContain("≤ 0.33×");
    expect(check.met).toBeNull();
  });

  test("a baseline that saturated gives a plain ratio", () => {
    const r = run(true);
    expect(saturationCheck(r).measured).toBe("15,000 ÷ 50,000 = 0.3×");
    expect(saturationCheck(r).met).toBe(true);
    expect(markdown(r)).toContain("| socketio | 50,000 |");
    expect(markdown(r)).toContain("| chat | 15,000 | 0.3× |");
  });
});

describe("what the same run's floors say of a target", () => {
  const hops = (postUs: number, hopMs: number): HopsResult & { params: HopsParams } => ({
    params: { samples: 1, throughputSeconds: 1, concurrency: 64 },
    hops: DELIVERY_HOPS.map((hop) => ({
      hop,
      latencyMs: { n: 1, p50: hopMs, p95: hopMs, p99: hopMs, max: hopMs, mean: hopMs },
    })),
    posts: [],
    deliveries: [
      { path: "floor", deliveriesPerSec: 1, framesPerPost: 1, cpuUsPerDelivery: postUs, overFloor: 1 },
    ],
  });

  test("saturation: the floor row's CPU per delivery caps the machine's cores", () => {
    const r = { ...run(true), hops: hops(100, 0.2) };
    // 2 cores ÷ 100 µs a delivery = 20,000 deliveries/s, 0.4× Socket.IO's 50,000.
    expect(saturationCheck(r).measured).toBe(
      "15,000 ÷ 50,000 = 0.3×; one POST a delivery and nothing else (the floor row, 100 µs of CPU) fills this machine's 2 cores at 20,000 deliveries/s, 0.4× Socket.IO's",
    );
    // Over a baseline that never saturated, that ratio too is an upper bound.
    expect(saturationCheck({ ...run(false), hops: hops(400, 0.2) }).measured).toContain(
      "at 5,000 deliveries/s, ≤ 0.08× Socket.IO's",
    );
  });

  test("latency: the delivery path's hops, each measured alone, added up at their medians", () => {
    const r = { ...run(true), hops: hops(100, 0.25) };
    const check = targetChecks(r).find((c) => c.target.startsWith("p50")) as { measured: string };
    // Five hops of 0.25 ms against 3 × Socket.IO's 1 ms median.
    expect(check.measured).toContain(
      "the hops before a member's receipt, each measured alone (gateway, admit, seq and send record, publish, one POST), add up to 1.25 ms at their medians, against the goal's 3 ms",
    );
  });

  test("without the hops measured, no note is made up", () => {
    expect(saturationCheck(run(true)).measured).toBe("15,000 ÷ 50,000 = 0.3×");
  });
});
