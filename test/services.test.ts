/**
 * The local service starters, checked against the real services: the ones global-setup started (or the
 * environment gave) for what does not kill anything, and separate ones, started here, for kill() and
 * restart().
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import { Client } from "pg";
import { isolatedNames } from "../local/isolation";
import { commandLine, processStat, processTree } from "../local/proc";
import {
  type RunningService,
  ServiceStartError,
  startKafka,
  startLocalServices,
  startPostgres,
  startRedis,
} from "../local/services";
import { freePort, portFree } from "../local/services/process";

// jest 30 reads testTimeout only from the top-level config, not from a project's, so say it here:
// starting a broker of our own, killing and restarting it takes tens of seconds on a busy machine.
jest.setTimeout(120_000);

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: is test/global-setup.ts configured for this project?`);
  return value;
};

/** Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not count). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Waits for a SIGKILLed process to be gone: delivery is asynchronous, so allow it a moment. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

async function sql<T>(url: string, text: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

const scratch: string[] = [];
function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "chat-services-test-"));
  scratch.push(dir);
  return dir;
}
const ours: RunningService[] = [];
afterAll(async () => {
  await Promise.allSettled(ours.map((s) => s.stop()));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("the services global-setup provides", () => {
  test("Redis answers PING", async () => {
    const redis = new Redis(env("REDIS_URL"), { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe("PONG");
    } finally {
      redis.disconnect();
    }
  });

  test("Kafka: a topic, an idempotent producer with acks -1, and a consumer group reading it back", async () => {
    const kafka = new Kafka({
      clientId: "services-test",
      brokers: env("KAFKA_BROKERS").split(","),
      logLevel: logLevel.WARN,
    });
    const topic = `services-test-${Date.now()}-${process.pid}`;
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })).toBe(
        true,
      );
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `room-${i % 5}`, value: `record-${i}` }));
    try {
      const results = await producer.send({ topic, acks: -1, messages: sent });
      expect(results.every((r) => r.errorCode === 0)).toBe(true);
    } finally {
      await producer.disconnect();
    }
    const consumer = kafka.consumer({
      groupId: `${topic}-group`,
      sessionTimeout: 6000,
      heartbeatInterval: 500,
    });
    const received: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const all = new Promise<void>((done) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            received.push(message.value?.toString() ?? "");
            if (received.length >= sent.length) done();
          },
        });
      });
      await all;
    } finally {
      await consumer.disconnect();
    }
    expect(received.sort()).toEqual(sent.map((m) => m.value).sort());
  });

  test("PostgreSQL answers select 1, in the database chat", async () => {
    const rows = await sql<{ one: number; db: string }>(
      env("DATABASE_URL"),
      "select 1 as one, current_database() as db",
    );
    expect(rows).toEqual([{ one: 1, db: "chat" }]);
  });

  test("DynamoDB (dynalite) answers ListTables through the AWS SDK", async () => {
    const client = new DynamoDBClient({
      endpoint: env("DYNAMODB_ENDPOINT"),
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    try {
      const answer = await client.send(new ListTablesCommand({}));
      expect(Array.isArray(answer.TableNames)).toBe(true);
    } finally {
      client.destroy();
    }
  });
});

test("freePort picks free ports below the range of outgoing connections, never the same one twice", async () => {
  // A port from that range can be taken by any connection the machine opens (the first run's Kafka
  // download, a client of another service) before the service it was picked for binds it.
  const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  const ports: number[] = [];
  for (let i = 0; i < 20; i++) ports.push(await freePort());
  expect(new Set(ports).size).toBe(20);
  for (const port of ports) {
    expect(port).toBeLessThan(low);
    expect(await portFree(port)).toBe(true);
  }
});

describe("services started for one test", () => {
  test("Redis survives kill() and restart() with every acknowledged write", async () => {
    const redis = await startRedis({ dataDir: scratchDir() });
    ours.push(redis);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    for (let i = 0; i < 200; i++) await client.incr("counter");
    await client.set("last", "written just before the kill");
    client.disconnect();
    const pid = redis.pid;
    expect(pid).toBeDefined();
    await redis.kill?.();
    expect(alive(pid as number)).toBe(false);
    expect(redis.pid).toBeUndefined();

    await redis.restart?.();
    expect(redis.pid).toBeDefined();
    expect(redis.pid).not.toBe(pid);
    const again = new Redis(redis.url, { lazyConnect: true });
    try {
      await again.connect();
      expect(await again.get("counter")).toBe("200");
      expect(await again.get("last")).toBe("written just before the kill");
    } finally {
      again.disconnect();
    }
    const restartedPid = redis.pid as number;
    await redis.stop();
    expect(alive(restartedPid)).toBe(false);
  });

  test("PostgreSQL survives kill() and restart() with its committed rows", async () => {
    const postgres = await startPostgres({ dataDir: scratchDir() });
    ours.push(postgres);
    await sql(
      postgres.url,
      "create table t (id int primary key); insert into t select generate_series(1, 100)",
    );
    const pid = postgres.pid as number;
    await postgres.kill?.();
    expect(alive(pid)).toBe(false);
    await postgres.restart?.();
    expect(await sql(postgres.url, "select count(*)::int as n from t")).toEqual([{ n: 100 }]);
    const restartedPid = postgres.pid as number;
    await postgres.stop();
    expect(alive(restartedPid)).toBe(false);
  });

  test("Kafka survives kill() and restart() with its acknowledged records", async () => {
    const broker = await startKafka({ dataDir: scratchDir() });
    ours.push(broker);
    const kafka = new Kafka({ clientId: "services-test", brokers: [broker.url], logLevel: logLevel.NOTHING });
    const topic = "survives-restart";
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ value: "a" }, { value: "b" }] });
    await producer.disconnect();

    const pid = broker.pid as number;
    await broker.kill?.();
    expect(alive(pid)).toBe(false);
    await broker.restart?.();

    const check = kafka.admin();
    await check.connect();
    try {
      const offsets = await check.fetchTopicOffsets(topic);
      expect(offsets).toEqual([expect.objectContaining({ partition: 0, low: "0", high: "2" })]);
    } finally {
      await check.disconnect();
    }
    const restartedPid = broker.pid as number;
    await broker.stop();
    expect(alive(restartedPid)).toBe(false);
  });
});

describe("what cannot be started is said in one sentence", () => {
  test("a missing redis-server", async () => {
    const error = await startRedis({ dataDir: scratchDir(), binary: "/nonexistent/redis-server" }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(ServiceStartError);
    expect(error.message).toBe("Redis not found: apt-get install redis-server, or set REDIS_URL");
  });

  test("missing PostgreSQL binaries", async () => {
    const error = await startPostgres({ dataDir: scratchDir(), binDir: "/nonexistent/bin" }).catch((e) => e);
    expect(error).toBeInstanceOf(ServiceStartError);
    expect(error.message).toBe("PostgreSQL not found: apt-get install postgresql, or set DATABASE_URL");
  });

  test("a missing java", async () => {
    const error = await startKafka({ dataDir: scratchDir(), java: "/nonexistent/java" }).catch((e) => e);
    expect(error).toBeInstanceOf(ServiceStartError);
    expect(error.message).toMatch(
      /^Java not found: apt-get install openjdk-\d+-jre-headless, or set KAFKA_BROKERS$/,
    );
  });

  test("a process that dies while starting: the error carries the tail of its log", async () => {
    const error = await startRedis({ dataDir: scratchDir(), args: ["--no-such-setting", "1"] }).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(ServiceStartError);
    expect(error.message).toMatch(/^Redis exited with code \d+ while starting/);
    expect(error.logTail).toMatch(/no-such-setting/);
  });
});

describe("startLocalServices", () => {
  test("uses the environment's URLs as they are and starts nothing", async () => {
    const given = {
      REDIS_URL: "redis://cache.example:6379",
      KAFKA_BROKERS: "b1.example:9092,b2.example:9092",
      DATABASE_URL: "postgresql://app@db.example:5432/chat",
      DYNAMODB_ENDPOINT: "http://dynamo.example:8000",
    };
    const dataDir = join(scratchDir(), "unused");
    const services = await startLocalServices({ env: given, dataDir });
    try {
      expect(services.env).toEqual(given);
      expect(services.services.every((s) => s.pid === undefined)).toBe(true);
    } finally {
      await services.stop();
    }
  });

  test("starts only what is needed and not given, and stop() removes its data", async () => {
    const dataDir = join(scratchDir(), "run");
    const services = await startLocalServices({
      env: { DATABASE_URL: "postgresql://app@db.example:5432/chat" },
      dataDir,
      keepData: false,
      need: { redis: true, postgres: true, kafka: false, dynamodb: false },
    });
    const again = await startLocalServices({ dataDir });
    expect(again).toBe(services);
    const pid = services.services.find((s) => s.name === "redis")?.pid;
    expect(pid).toBeDefined();
    try {
      expect(services.env.KAFKA_BROKERS).toBe("");
      expect(services.env.DYNAMODB_ENDPOINT).toBe("");
      expect(services.env.DATABASE_URL).toBe("postgresql://app@db.example:5432/chat");
      expect(services.env.REDIS_URL).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      expect(alive(pid as number)).toBe(true);
    } finally {
      await services.stop();
    }
    expect(alive(pid as number)).toBe(false);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe("startLocalServices with a persistent data folder (npm run dev)", () => {
  const only = { redis: true, dynamodb: true, kafka: false, postgres: false };
  const none = { REDIS_URL: "", DYNAMODB_ENDPOINT: "" };
  const dynamo = (endpoint: string) =>
    new DynamoDBClient({
      endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });

  test("keeps Redis's and DynamoDB's data and ports for the next start; fresh starts empty", async () => {
    const dataDir = join(scratchDir(), "data");
    const first = await startLocalServices({ env: none, dataDir, need: only, persistent: true });
    const redis = new Redis(first.env.REDIS_URL, { lazyConnect: true });
    await redis.connect();
    await redis.set("kept", "across runs");
    redis.disconnect();
    const client = dynamo(first.env.DYNAMODB_ENDPOINT);
    await client.send(
      new CreateTableCommand({
        TableName: "kept-table",
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
    client.destroy();
    await first.stop();
    expect(existsSync(join(dataDir, "redis"))).toBe(true);

    const second = await startLocalServices({ env: none, dataDir, need: only, persistent: true });
    try {
      expect(second.env).toEqual(first.env);
      const again = new Redis(second.env.REDIS_URL, { lazyConnect: true });
      await again.connect();
      expect(await again.get("kept")).toBe("across runs");
      again.disconnect();
      const client2 = dynamo(second.env.DYNAMODB_ENDPOINT);
      expect((await client2.send(new ListTablesCommand({}))).TableNames).toEqual(["kept-table"]);
      client2.destroy();
    } finally {
      await second.stop();
    }

    const fresh = await startLocalServices({ env: none, dataDir, need: only, persistent: true, fresh: true });
    try {
      const empty = new Redis(fresh.env.REDIS_URL, { lazyConnect: true });
      await empty.connect();
      expect(await empty.get("kept")).toBeNull();
      empty.disconnect();
      const client3 = dynamo(fresh.env.DYNAMODB_ENDPOINT);
      expect((await client3.send(new ListTablesCommand({}))).TableNames).toEqual([]);
      client3.destroy();
    } finally {
      await fresh.stop();
    }
  });

  test("a folder another live process uses is refused; one a killed owner left is taken, its services killed", async () => {
    const dataDir = join(scratchDir(), "data");
    const run = tsx([
      "-e",
      `import { startLocalServices } from "./local/services";
       startLocalServices({ env: { REDIS_URL: "" }, dataDir: ${JSON.stringify(dataDir)}, persistent: true,
         need: { redis: true, kafka: false, postgres: false, dynamodb: false } })
         .then((s) => console.log("redis pid " + s.services[0].pid));`,
    ]);
    const pid = Number((await run.until(/redis pid (\d+)/))[1]);
    try {
      const error = await startLocalServices({
        env: { REDIS_URL: "" },
        dataDir,
        persistent: true,
        need: { redis: true, kafka: false, postgres: false, dynamodb: false },
      }).catch((e) => e);
      expect(error).toBeInstanceOf(ServiceStartError);
      expect(error.message).toMatch(/is in use by process \d+/);
      // The owner (tsx's child, which recorded itself) dies without a word: its Redis, detached, is
      // left running on the folder.
      const owner = JSON.parse(readFileSync(join(dataDir, "owner.json"), "utf8")).pid as number;
      expect(processTree(run.child.pid as number)).toContain(owner);
      process.kill(owner, "SIGKILL");
      await run.exited;
      expect(await gone(owner)).toBe(true);
      expect(alive(pid)).toBe(true);
      const next = await startLocalServices({
        env: { REDIS_URL: "" },
        dataDir,
        persistent: true,
        need: { redis: true, kafka: false, postgres: false, dynamodb: false },
      });
      try {
        expect(alive(pid)).toBe(false);
        expect(next.services[0]?.pid).not.toBe(pid);
      } finally {
        await next.stop();
      }
    } finally {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

describe("startLocalServices in its default folder (the bench, the tests)", () => {
  test("services a killed owner left running are killed, and its folder removed, at the next start", async () => {
    const run = tsx([
      "-e",
      `import { startLocalServices } from "./local/services";
       startLocalServices({ env: { REDIS_URL: "" }, need: { redis: true, kafka: false, postgres: false, dynamodb: false } })
         .then((s) => console.log("owner " + process.pid + " redis pid " + s.services[0].pid));`,
    ]);
    const [, ownerText, pidText] = await run.until(/owner (\d+) redis pid (\d+)/);
    const owner = Number(ownerText);
    const pid = Number(pidText);
    const folder = join(resolve(__dirname, ".."), ".cache", "run", String(owner));
    try {
      // Killed without a chance to stop its Redis (kill -9, a timeout): Redis is left running.
      process.kill(owner, "SIGKILL");
      await run.exited;
      expect(await gone(owner)).toBe(true);
      expect(alive(pid)).toBe(true);
      expect(existsSync(folder)).toBe(true);
      // The next start in the default folder, in a process of its own as the next bench or test run
      // is (this one's default folder is the global set-up's when jest runs in band).
      const next = tsx([
        "-e",
        `import { startLocalServices } from "./local/services";
         startLocalServices({ env: { REDIS_URL: "" }, need: { redis: true, kafka: false, postgres: false, dynamodb: false } })
           .then((s) => { console.log("next redis pid " + s.services[0].pid); return s.stop(); })
           .then(() => console.log("stopped"));`,
      ]);
      const [, nextPid] = await next.until(/next redis pid (\d+)/);
      await next.until(/stopped/);
      expect(Number(nextPid)).not.toBe(pid);
      expect(await gone(pid)).toBe(true);
      expect(existsSync(folder)).toBe(false);
    } finally {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

/** Runs a TypeScript snippet (or file) in a child process through tsx, as `npm run` would. */
function tsx(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const root = resolve(__dirname, "..");
  const child = spawn(process.execPath, [join(root, "node_modules", "tsx", "dist", "cli.mjs"), ...args], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c) => {
    stdout += c;
  });
  child.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const until = async (pattern: RegExp) => {
    const deadline = Date.now() + 60_000;
    while (!pattern.test(stdout + stderr)) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`no ${pattern} in:\n${stdout}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return (stdout + stderr).match(pattern) as RegExpMatchArray;
  };
  return { child, exited, until, output: () => stdout + stderr };
}

describe("no service outlives the process that started it", () => {
  const snippet = (ending: string) =>
    `import { startRedis } from "./local/services";
     startRedis({ dataDir: ${JSON.stringify(scratchDir())} }).then((r) => { console.log("redis pid " + r.pid); ${ending} });`;

  test.each([
    ["SIGTERM, with no handler of its own", "", "SIGTERM" as const],
    ["SIGINT, with no handler of its own", "", "SIGINT" as const],
    ["process.exit()", "setTimeout(() => process.exit(0), 200);", undefined],
  ])("%s", async (_, ending, signal) => {
    const run = tsx(["-e", snippet(ending)]);
    const pid = Number((await run.until(/redis pid (\d+)/))[1]);
    expect(alive(pid)).toBe(true);
    if (signal) run.child.kill(signal);
    await run.exited;
    expect(await gone(pid)).toBe(true);
  });

  test("npm run services prints export lines, and stops what it started on Ctrl-C", async () => {
    const run = tsx(["local/services/cli.ts"], {
      ...process.env,
      // Given, so only Redis is started: the test stays quick.
      KAFKA_BROKERS: "127.0.0.1:1",
      DATABASE_URL: "postgresql://postgres@127.0.0.1:1/chat",
      DYNAMODB_ENDPOINT: "http://127.0.0.1:1",
      REDIS_URL: "",
    });
    const redisUrl = (await run.until(/^export REDIS_URL=(redis:\/\/127\.0\.0\.1:\d+)$/m))[1] as string;
    expect(run.output()).toMatch(/^export KAFKA_BROKERS=127\.0\.0\.1:1$/m);
    const pid = Number((await run.until(/"pids":\{"redis":(\d+)\}/))[1]);
    const client = new Redis(redisUrl, { lazyConnect: true });
    await client.connect();
    expect(await client.ping()).toBe("PONG");
    client.disconnect();
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  });
});

test("npm run dev killed with SIGKILL leaves no worker behind", async () => {
  const id = `k${Date.now().toString(36)}`;
  const run = tsx(["local/dev.ts"], {
    ...process.env,
    ...isolatedNames(id),
    LOCAL_PORT: "0",
    LOG_LEVEL: "error",
    FANOUT_WORKERS: "1",
    PERSISTERS: "1",
  });
  const workers: number[] = [];
  try {
    await run.until(/Chat backend ready at/);
    const found = processTree(run.child.pid as number).filter((pid) =>
      commandLine(pid)?.some((arg) => /worker\/(fanout|persister)\.ts$/.test(arg)),
    );
    workers.push(...found);
    expect(found).toHaveLength(2);
    // The process that started the workers: `npm run dev` itself, with no chance to clean up.
    const parents = found.map((pid) => processStat(pid)?.ppid);
    const dev = parents[0] as number;
    expect(parents.every((ppid) => ppid === dev)).toBe(true);
    process.kill(dev, "SIGKILL");
    const deadline = Date.now() + 30_000;
    while (workers.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(workers.filter(alive)).toEqual([]);
  } finally {
    for (const pid of [...workers, run.child.pid as number]) {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }
});
