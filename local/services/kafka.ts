/**
 * An Apache Kafka broker of our own, in KRaft mode (one process is both broker and controller), from
 * the jars on Maven Central: no Docker, no Kafka distribution. The jars are fetched once with Maven
 * (local/kafka/pom.xml) into a cache, `.cache/kafka/<version>/libs` in the repository unless told
 * otherwise, and the broker runs as `java -cp 'libs/*' kafka.Kafka server.properties`.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { ServiceStartError } from "./errors";
import { findExecutable, freePort, ManagedProcess, portOpen, repoRoot, runningService } from "./process";
import type { RunningService, StarterOptions } from "./types";

/** The Kafka line we run: 3.9 is the last that keeps every protocol version kafkajs 2.2.4 speaks. */
export const DEFAULT_KAFKA_VERSIONS = ["3.9.1", "3.9.2"];

/** Where fetched jars are kept unless KAFKA_HOME_CACHE (or the cacheDir option) says otherwise. */
export const DEFAULT_KAFKA_CACHE = join(repoRoot, ".cache", "kafka");

const POM = join(repoRoot, "local", "kafka", "pom.xml");

/** Options of {@link fetchKafka}. */
export interface KafkaFetchOptions {
  /** One version to fetch; default 3.9.1, then 3.9.2 if that does not resolve. */
  version?: string;
  /** The cache root; jars go to `<cacheDir>/<version>/libs`. */
  cacheDir?: string;
  /** The Maven executable; default "mvn" on PATH. */
  mvn?: string;
  onProgress?: (line: string) => void;
}

/** The jars of one Kafka version, ready to put on a class path. */
export interface KafkaLibs {
  version: string;
  libs: string;
}

const major = (version: string) => Number(version.split(".")[0]);
const COMPLETE = ".complete";
const fetching = new Map<string, Promise<KafkaLibs>>();

function runMaven(mvn: string, version: string, outputDir: string, onProgress?: (line: string) => void) {
  return new Promise<void>((done, fail) => {
    const args = [
      // Batch mode: no colours or transfer bars, one line per download (counted for progress).
      "-B",
      "-Dstyle.color=never",
      "-f",
      POM,
      "dependency:copy-dependencies",
      `-DoutputDirectory=${outputDir}`,
      `-Dkafka.version=${version}`,
      // Kafka 4 logs through log4j 2; the pom's default back end is the one Kafka 3 expects.
      ...(major(version) >= 4 ? ["-Plog4j2"] : []),
    ];
    const child = spawn(mvn, args, { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    let downloaded = 0;
    let lastReport = Date.now();
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line.trim()) continue;
        lines.push(line);
        if (lines.length > 200) lines.shift();
        if (line.includes("Downloaded from")) downloaded++;
      }
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        onProgress?.(`fetching Kafka ${version}: still resolving, ${downloaded} files downloaded so far…`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", fail);
    child.once("exit", (code) => {
      if (code === 0) return done();
      // Maven's useful sentence is its first [ERROR] line (e.g. "Could not resolve dependencies…").
      const error =
        lines.find((l) => l.includes("[ERROR]")) ?? lines.at(-1) ?? `mvn exited with code ${code}`;
      fail(
        new Error(
          error
            .replace("[ERROR] ", "")
            .replace(/ -> \[Help \d+\]/, "")
            .trim(),
        ),
      );
    });
  });
}

async function fetchVersion(
  version: string,
  cacheDir: string,
  mvn: string,
  onProgress?: (line: string) => void,
) {
  const home = join(cacheDir, version);
  const libs = join(home, "libs");
  if (existsSync(join(libs, COMPLETE))) return { version, libs };
  onProgress?.(`fetching Kafka ${version} from Maven Central (first run only)…`);
  // Fetch beside the cache and rename when complete, so an interrupted fetch or a second process
  // fetching at the same time never leaves a half-filled libs directory that looks usable.
  const partial = join(home, `libs.partial-${process.pid}-${Date.now()}`);
  mkdirSync(partial, { recursive: true });
  try {
    await runMaven(mvn, version, partial, onProgress);
    writeFileSync(join(partial, COMPLETE), `${new Date().toISOString()}\n`);
    try {
      renameSync(partial, libs);
    } catch (error) {
      // Another process finished first; its copy is as good as ours.
      if (!existsSync(join(libs, COMPLETE))) throw error;
    }
    onProgress?.(`fetched Kafka ${version} into ${libs}`);
    return { version, libs };
  } finally {
    rmSync(partial, { recursive: true, force: true });
    // A version that never resolved leaves no empty directory behind to suggest otherwise.
    if (!existsSync(libs)) rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Makes sure the jars of a Kafka broker are in the cache, fetching them with Maven the first time
 * (about 50 MB), and answers where they are. Throws a {@link ServiceStartError} when Maven is missing
 * or no candidate version resolves.
 */
export function fetchKafka(options: KafkaFetchOptions = {}): Promise<KafkaLibs> {
  const cacheDir = options.cacheDir ?? DEFAULT_KAFKA_CACHE;
  const versions = options.version ? [options.version] : DEFAULT_KAFKA_VERSIONS;
  const cached = versions.find((v) => existsSync(join(cacheDir, v, "libs", COMPLETE)));
  if (cached) return Promise.resolve({ version: cached, libs: join(cacheDir, cached, "libs") });
  const key = `${cacheDir}|${versions.join(",")}`;
  const running = fetching.get(key);
  if (running) return running;
  const work = (async () => {
    const mvn = findExecutable(options.mvn ?? "mvn");
    if (!mvn) {
      throw new ServiceStartError(
        "Maven not found (it fetches Kafka's jars once): apt-get install maven, or set KAFKA_BROKERS",
      );
    }
    const failures: string[] = [];
    for (const version of versions) {
      try {
        return await fetchVersion(version, cacheDir, mvn, options.onProgress);
      } catch (error) {
        failures.push(`${version}: ${(error as Error).message}`);
        options.onProgress?.(`Kafka ${version} could not be fetched (${(error as Error).message})`);
      }
    }
    throw new ServiceStartError(
      `Could not fetch Kafka ${versions.join(" or ")} from Maven Central (${failures.join("; ")}); check the network or set KAFKA_BROKERS`,
    );
  })().finally(() => fetching.delete(key));
  fetching.set(key, work);
  return work;
}

/** Options of {@link startKafka}. */
export interface KafkaOptions extends StarterOptions, Omit<KafkaFetchOptions, "onProgress"> {
  /** The java executable; default "java" on PATH. */
  java?: string;
  /** The client port; default a free one from the OS. */
  port?: number;
  /** The KRaft controller port; default a free one from the OS. */
  controllerPort?: number;
  /** The broker's maximum heap; default 512 MB. */
  heapMb?: number;
}

function serverProperties(dir: string, port: number, controllerPort: number): string {
  const settings: Record<string, string | number> = {
    "process.roles": "broker,controller",
    "node.id": 1,
    "controller.quorum.voters": `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${port}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "log.dirs": join(dir, "data"),
    "num.partitions": 6,
    "default.replication.factor": 1,
    "min.insync.replicas": 1,
    "offsets.topic.replication.factor": 1,
    // 50 partitions (the default) make the first consumer group wait seconds for them to be created.
    "offsets.topic.num.partitions": 6,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.state.log.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    // After a SIGKILL the restarted broker is refused (DUPLICATE_BROKER_REGISTRATION) until the dead
    // one's session expires (9 s by default, plus the registration back-off): a short session lets a
    // restarted broker serve again within a fault test's time.
    "broker.heartbeat.interval.ms": 500,
    "broker.session.timeout.ms": 3000,
    // Fault tests kill consumers; short sessions let the group notice within a test's time.
    "group.min.session.timeout.ms": 1000,
    "log.segment.bytes": 16 * 1024 * 1024,
    "log.retention.hours": 24,
    "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
    // The controller appends a no-op record to the metadata log every 500 ms by default, a steady
    // share of an idle broker's CPU; a node that is its own only controller needs it far less often.
    "metadata.max.idle.interval.ms": 5000,
    "num.network.threads": 2,
    "num.io.threads": 4,
  };
  return `${Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n")}\n`;
}

/**
 * A random cluster id as Kafka writes one (16 bytes, base64url), never starting with "-": the storage
 * tool's argument parser takes such an id for an option and refuses to format (one id in 64).
 */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/** Kafka 3 logs through reload4j (log4j 1 syntax); Kafka 4 through log4j 2. Both to stdout, our log file. */
function writeLogConfig(dir: string, version: string): string {
  if (major(version) >= 4) {
    const file = join(dir, "log4j2.properties");
    writeFileSync(
      file,
      [
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = out",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = warn",
        "rootLogger.appenderRef.out.ref = out",
        "logger.server.name = kafka.server",
        "logger.server.level = info",
        "",
      ].join("\n"),
    );
    return `-Dlog4j2.configurationFile=${file}`;
  }
  const file = join(dir, "log4j.properties");
  writeFileSync(
    file,
    [
      "log4j.rootLogger=WARN, out",
      "log4j.appender.out=org.apache.log4j.ConsoleAppender",
      "log4j.appender.out.layout=org.apache.log4j.PatternLayout",
      "log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n",
      "log4j.logger.kafka.server=INFO",
      "",
    ].join("\n"),
  );
  return `-Dlog4j.configuration=file:${file}`;
}

function runJava(java: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(java, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c) => {
      output += c;
    });
    child.stderr.on("data", (c) => {
      output += c;
    });
    child.once("error", fail);
    child.once("exit", (code) =>
      code === 0 ? done(output) : fail(new Error(output.trim().split("\n").slice(-10).join("\n"))),
    );
  });
}

/** Answers whether the broker serves metadata (it is up, unfenced, has a controller) and consumer groups. */
async function brokerReady(port: number): Promise<boolean> {
  if (!(await portOpen(port))) return false;
  const kafka = new Kafka({
    clientId: "local-services",
    brokers: [`127.0.0.1:${port}`],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    // A starting broker may accept a connection before it serves requests; ask again soon instead.
    requestTimeout: 2000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0 || cluster.controller === null) return false;
    // Finding a group coordinator creates __consumer_offsets and fails until its partitions have
    // leaders; waiting for it here spares every first consumer group a crash-and-retry.
    await admin.describeGroups(["local-services-ready"]);
    return true;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Starts a single-node Kafka broker (KRaft) on 127.0.0.1 with its log in `<dataDir>`, fetching the jars
 * first if needed, and waits until a kafkajs admin can describe the cluster. Answers `127.0.0.1:<port>`
 * as its url (a KAFKA_BROKERS value). Throws a {@link ServiceStartError} when java or Maven is missing,
 * the fetch fails, or the broker dies while starting.
 */
export async function startKafka(options: KafkaOptions): Promise<RunningService> {
  const java = findExecutable(options.java ?? "java");
  if (!java)
    throw new ServiceStartError(
      "Java not found: apt-get install openjdk-17-jre-headless, or set KAFKA_BROKERS",
    );
  const { version, libs } = await fetchKafka({ ...options });
  const dir = options.dataDir;
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const controllerPort = options.controllerPort ?? (await freePort());
  const properties = join(dir, "server.properties");
  writeFileSync(properties, serverProperties(dir, port, controllerPort));
  const logConfig = writeLogConfig(dir, version);
  const classPath = join(libs, "*");

  if (!existsSync(join(dir, "data", "meta.properties"))) {
    options.onProgress?.(`formatting Kafka ${version} storage`);
    const clusterId = newClusterId();
    try {
      await runJava(java, [
        logConfig,
        "-cp",
        classPath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        clusterId,
        "-c",
        properties,
      ]);
    } catch (error) {
      throw new ServiceStartError(`Kafka storage format failed in ${dir}:\n${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  const broker = new ManagedProcess({
    name: `Kafka ${version}`,
    command: java,
    args: [
      `-Xmx${options.heapMb ?? 512}m`,
      "-Djava.awt.headless=true",
      "-XX:+ExitOnOutOfMemoryError",
      // A local broker lives for a test run or a working day: the optimizing compiler's work would
      // cost more CPU than its faster code saves, on a machine the stack shares with everything
      // else. One collector thread, for the same reason.
      "-XX:TieredStopAtLevel=1",
      "-XX:+UseSerialGC",
      logConfig,
      "-cp",
      classPath,
      "kafka.Kafka",
      properties,
    ],
    cwd: dir,
    logFile: join(dir, "kafka.log"),
    // SIGTERM runs Kafka's controlled shutdown, which flushes and closes its logs.
    stopSignal: "SIGTERM",
    stopTimeoutMs: 15_000,
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const start = async () => {
    options.onProgress?.(`starting Kafka ${version} on 127.0.0.1:${port}`);
    broker.start();
    await broker.waitUntil(() => brokerReady(port), timeoutMs);
  };
  await start();
  return runningService("kafka", `127.0.0.1:${port}`, broker, start);
}
