/**
 * Fault injection under load (`npm run test:faults`): steady traffic from real clients in several
 * rooms while, one fault per scenario, a part is killed with SIGKILL and started again: a fan-out
 * worker (one of two), the persister, Redis, the Kafka broker, PostgreSQL and the gateway itself;
 * and Redis loses its data as ElastiCache can (every key, or its newest writes) or fills up (its
 * noeviction policy refuses writes). Redis keeps only
 * 20 recent messages per room here, so a stopped persister leaves history to span the gap.
 * After each: every acked message is in PostgreSQL exactly once; every client, after reconnecting and
 * catching up with getHistory, has every message of its room in seq order with nothing doubled; every
 * send during the outage was acked or answered with an error; and the system was back to normal
 * within the bound the scenario states. Each scenario prints what it did and counted; the suite
 * writes test/faults/results.json and test/faults/RESULTS.md.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { sleep } from "../../core/retry";
import { type Rig, type ScenarioResult, startRig, Traffic, timeToNormal, verify } from "./harness";

/** How long a killed part stays dead before it is started again. */
const DOWN_MS = Number(process.env.FAULT_DOWN_MS ?? 3000);

let rig: Rig;
const results: ScenarioResult[] = [];

beforeAll(async () => {
  rig = await startRig();
});

afterAll(async () => {
  await rig?.stop();
  writeFileSync(join(__dirname, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(__dirname, "RESULTS.md"), table(results));
});

/** The Markdown table the README's is produced from. */
function table(rows: ScenarioResult[]): string {
  const head =
    "| scenario | fault | rooms × clients | acked | stored | lost | doubled | seq reused | outage answers | cut by crash | silent | filled by history | seqs without a message | duplicate deliveries | back to normal (bound) | result |\n" +
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  const body = rows
    .map((r) =>
      [
        r.scenario,
        r.fault,
        `${r.rooms} × ${r.clients / r.rooms}`,
        r.acked,
        r.stored,
        r.lost,
        r.doubled,
        r.seqReused,
        Object.entries(r.outageAnswers)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "0",
        r.cutByCrash,
        r.silent,
        r.filledByHistory,
        r.seqsWithoutMessage,
        r.duplicateDeliveries,
        `${(r.recoveryMs / 1000).toFixed(1)} s (${r.recoveryBoundMs / 1000} s)`,
        r.passed ? "pass" : "FAIL",
      ].join(" | "),
    )
    .map((line) => `| ${line} |`)
    .join("\n");
  const total = rows.reduce((n, r) => n + r.acked, 0);
  return (
    `# Fault injection results\n\nProduced by \`npm run test:faults\` on ${new Date().toISOString().slice(0, 10)}: ` +
    `${rows.length} scenarios, ${rows.filter((r) => r.passed).length} faults survived, ${total} messages acked, ` +
    `${rows.reduce((n, r) => n + r.lost, 0)} lost, ${rows.reduce((n, r) => n + r.doubled, 0)} doubled.\n\n${head}${body}\n`
  );
}

/**
 * One scenario: traffic, the fault (kill, stay down, start again), traffic on, the time back to
 * normal, then the checks.
 */
async function scenario(
  name: string,
  fault: string,
  kill: () => Promise<void>,
  restart: () => Promise<void>,
  boundMs: number,
): Promise<void> {
  const traffic = new Traffic(rig, name);
  await traffic.start();
  await sleep(2500);
  const before = traffic.acked;
  await kill();
  await sleep(DOWN_MS);
  await restart();
  const restarted = Date.now();
  const recoveryMs = await timeToNormal(rig, name, restarted, boundMs);
  await sleep(2000);
  await traffic.stop();
  const counted = await verify(rig, traffic);
  await traffic.close();
  const result: ScenarioResult = {
    scenario: name,
    fault,
    downMs: DOWN_MS,
    ...counted,
    recoveryMs,
    recoveryBoundMs: boundMs,
    passed: false,
  };
  result.passed =
    result.lost === 0 &&
    result.doubled === 0 &&
    result.seqReused === 0 &&
    result.silent === 0 &&
    result.duplicateDeliveries === 0 &&
    result.stored === result.acked &&
    recoveryMs <= boundMs;
  results.push(result);
  process.stderr.write(
    `[faults] ${name}: ${fault}; ${before} acked before the kill, down ${DOWN_MS} ms; ` +
      `${result.acked} acked, ${result.stored} stored, ${result.lost} lost, ${result.doubled} doubled, ` +
      `${result.seqReused} seqs reused, ` +
      `outage answers ${JSON.stringify(result.outageAnswers)}, ${result.cutByCrash} cut by the crash, ` +
      `${result.silent} silent, ${result.filledByHistory} filled by history, ${result.seqsWithoutMessage} seqs without a message, ` +
      `${result.duplicateDeliveries} duplicate deliveries, ` +
      `${result.reconnects} reconnects; back to normal ${recoveryMs} ms after the restart (bound ${boundMs} ms)\n`,
  );
  expect(result).toMatchObject({ lost: 0, doubled: 0, seqReused: 0, silent: 0, duplicateDeliveries: 0 });
  expect(result.stored).toBe(result.acked);
  expect(result.acked).toBeGreaterThan(before);
  expect(recoveryMs).toBeLessThanOrEqual(boundMs);
}

test("a fan-out worker (one of two) is killed and started again", async () => {
  const victim = rig.stack.workers.find((w) => w.kind === "fanout" && w.child.exitCode === null);
  if (!victim) throw new Error("no fan-out worker");
  await scenario(
    "fanout",
    "SIGKILL one of two fan-out workers",
    async () => {
      victim.child.kill("SIGKILL");
      await victim.exited;
    },
    async () => {
      rig.stack.spawnWorker("fanout");
    },
    15_000,
  );
});

test("the persister is killed and started again", async () => {
  const victim = rig.stack.workers.find((w) => w.kind === "persister" && w.child.exitCode === null);
  if (!victim) throw new Error("no persister");
  await scenario(
    "persister",
    "SIGKILL the only persister",
    async () => {
      victim.child.kill("SIGKILL");
      await victim.exited;
    },
    async () => {
      rig.stack.spawnWorker("persister");
    },
    15_000,
  );
});

test("PostgreSQL is killed and started again", async () => {
  const pg = rig.service("postgres");
  await scenario("postgres", "SIGKILL PostgreSQL", pg.kill, pg.restart, 20_000);
});

test("Redis is killed and started again", async () => {
  const redis = rig.service("redis");
  await scenario("redis", "SIGKILL Redis (AOF always)", redis.kill, redis.restart, 20_000);
});

test("Redis loses every key (a failover to an empty replica)", async () => {
  const redis = new Redis(rig.stack.env.REDIS_URL as string);
  try {
    await scenario(
      "redis-empty",
      "FLUSHALL on Redis (every seq cursor, retry record, stream and lease gone)",
      async () => {
        await redis.flushall();
      },
      async () => undefined,
      20_000,
    );
  } finally {
    redis.disconnect();
  }
});

test("Redis loses its newest writes (an asynchronous failover)", async () => {
  const redis = new Redis(rig.stack.env.REDIS_URL as string, {
    keyPrefix: rig.stack.env.REDIS_KEY_PREFIX,
  });
  const prefix = rig.stack.env.REDIS_KEY_PREFIX as string;
  const unprefixed = async (pattern: string) =>
    (await redis.keys(pattern)).map((k) => k.slice(prefix.length));
  try {
    await scenario(
      "redis-behind",
      "every room's stream cursor set back 5 and every retry record dropped",
      async () => {
        for (const key of await unprefixed("room:*:seq")) await redis.decrby(key, 5);
        const dedupe = await unprefixed("dedupe:*");
        if (dedupe.length > 0) await redis.del(...dedupe);
      },
      async () => undefined,
      20_000,
    );
  } finally {
    redis.disconnect();
  }
});

test("Redis is full (noeviction refuses every write) and then has room again", async () => {
  const redis = new Redis(rig.stack.env.REDIS_URL as string);
  try {
    await scenario(
      "redis-full",
      "Redis maxmemory set to what it holds (writes refused with OOM), then lifted",
      async () => {
        const used = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1]);
        await redis.config("SET", "maxmemory", String(used));
      },
      async () => {
        await redis.config("SET", "maxmemory", "0");
      },
      20_000,
    );
  } finally {
    redis.disconnect();
  }
});

test("the Kafka broker is killed and started again", async () => {
  const kafka = rig.service("kafka");
  await scenario("kafka", "SIGKILL the Kafka broker", kafka.kill, kafka.restart, 45_000);
});

test("the gateway is killed; clients reconnect and catch up with getHistory", async () => {
  await scenario(
    "gateway",
    "SIGKILL the gateway process",
    () => rig.killGateway(),
    () => rig.startGateway(),
    15_000,
  );
});
