/**
 * The benchmark report's saturation check: a baseline that delivered everything offered at its
 * highest step never saturated, so its figure is a lower bound and the ratio against it an upper
 * bound, and the report says so instead of printing a ratio it did not measure. And beside each
 * whole-path goal, the architecture's floor measured in the same run, and whether it misses the goal
 * too.
 */
import { markdown, targetChecks } from "../bench/lib/report";
import type { RunResult } from "../bench/run";
import type { StepResult, TargetResult } from "../bench/scenarios/fanout";

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

describe("the architecture's floor beside each whole-path goal", () => {
  /** The fixture's run with a floor target: 2,000 deliveries/s at the first step, CPU per process. */
  function withFloor(floorCpu: number, floorTop: number, floorP50: number): RunResult {
    const r = run(true);
    const f = r.fanout;
    if (!f) throw new Error("the fixture has no fan-out");
    const first = (t: string) => f.targets.find((x) => x.target === t)?.steps[0];
    const sioFirst = first("socketio");
    const chatFirst = first("chat");
    if (!sioFirst || !chatFirst) throw new Error("the fixture has no first steps");
    sioFirst.cpuMsPer1000 = { "Socket.IO servers": 150, "bench (clients)": 50 };
    chatFirst.cpuMsPer1000 = { "gateway emulator + handlers": 500, kafka: 50, "bench (clients)": 50 };
    const floorFirst = step(2000, 2000, false);
    floorFirst.cpuMsPer1000 = { "floor: gateway + handler": floorCpu - 70, kafka: 20, "bench (clients)": 50 };
    floorFirst.latencyMs = { ...floorFirst.latencyMs, p50: floorP50, p99: 4 };
    f.targets.splice(1, 0, target("floor", [floorFirst, step(20_000, floorTop, true)]));
    // As run.ts derives it for every target.
    f.saturation.push({ target: "floor", overSocketIo: floorTop / 50_000, overCeiling: null });
    f.ratios = [
      { target: "chat", offeredPerSec: 100, p50OverSocketIo: 10, p99OverSocketIo: 20 },
      { target: "floor", offeredPerSec: 100, p50OverSocketIo: floorP50, p99OverSocketIo: 4 },
    ];
    return r;
  }
  const check = (r: RunResult, start: string) =>
    targetChecks(r).find((c) => c.target.startsWith(start)) as {
      measured: string;
      floor?: string;
      met: boolean;
    };

  test("a goal the floor misses too says so; one it meets says that", () => {
    const r = withFloor(400, 12_000, 2);
    // The project: 600 ÷ 200 = 3×; the floor: 400 ÷ 200 = 2×, past the goal of 1.5× too.
    expect(check(r, "CPU").measured).toBe("600 ÷ 200 = 3×");
    expect(check(r, "CPU").floor).toBe("400 ÷ 200 = 2×: misses the goal too");
    expect(check(r, "CPU").met).toBe(false);
    // 12,000 ÷ 50,000 = 0.24×, short of 0.3×.
    expect(check(r, "saturation").floor).toBe("12,000 ÷ 50,000 = 0.24×: misses the goal too");
    // p50 2× and p99 4× Socket.IO's: within 3× and 5×, so the latency goal is within the floor's reach.
    expect(check(r, "p50").floor).toBe("p50 2×, p99 4×, 0 drops: meets the goal");
    expect(check(r, "p50").met).toBe(false);
    // The broker: 20 ms per 1,000 deliveries in rooms of 20 = 0.4 ms a message, within 0.5 ms.
    expect(check(r, "Kafka").floor).toBe("0.4 ms: meets the goal");
    expect(check(r, "Kafka").measured).toBe("1 ms");
  });

  test("the targets table has the floor's column, and says what the floor is", () => {
    const md = markdown(withFloor(250, 30_000, 2));
    expect(md).toContain("| target | goal | this run | the architecture's floor | met |");
    expect(md).toContain("| ≤ 1.5× | 600 ÷ 200 = 3× | 250 ÷ 200 = 1.25×: meets the goal | no |");
    expect(md).toContain("A goal the floor misses too is out of reach on this machine");
  });

  test("without a floor target, no floor figure is made up", () => {
    const r = run(true);
    expect(targetChecks(r).every((c) => c.floor === undefined)).toBe(true);
    expect(markdown(r)).not.toContain("A goal the floor misses too");
  });
});
