/**
 * Lambda cold start: each handler bundle built with the project's own esbuild options (infra/bundle.ts),
 * its minified size, the time to `require` it in a fresh Node.js process (median of many), and one
 * warm invocation against the local services.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { bundle, bundleTargets } from "../../infra/bundle";
import { esbuildOptions } from "../../infra/esbuild-options";
import { isolatedNames } from "../../local/isolation";
import { ROOT } from "../lib/child";
import { progress } from "../lib/progress";
import { median, round } from "../lib/stats";

const run = promisify(execFile);

/** How many fresh processes load each bundle, and how many warm invocations are timed. */
export interface ColdStartParams {
  loads: number;
  warmRuns: number;
  /** Stop loading one bundle after this many seconds once 3 loads are in (a slow machine stays in time). */
  budgetSeconds?: number;
  /** Only these handlers (the smoke run builds one); default all. */
  handlers?: string[];
}

/** One handler's figures. */
export interface HandlerResult {
  handler: string;
  bytes: number;
  gzipBytes: number;
  /** How many fresh processes loaded it. */
  loads: number;
  /** Median time of `require(bundle)` in a fresh process, ms. */
  loadMs: number;
  /** Median time from process start to the bundle loaded (Node's own start included), ms. */
  processToLoadedMs: number;
  /** The first invocation in a process (opens its clients), ms. */
  firstInvokeMs: number | null;
  /** Median of the warm invocations, ms. */
  warmInvokeMs: number | null;
  /** What the warm invocation answered (frame type), to show it did the real work. */
  answer: string | null;
}

/** What a fresh process loads: a bundle's path, or the names of modules to load one after another. */
const PROBE = `
const t0 = process.hrtime.bigint();
for (const m of process.argv.slice(1)) require(m);
const t1 = process.hrtime.bigint();
process.stdout.write(JSON.stringify({ loadMs: Number(t1 - t0) / 1e6, sinceStartMs: performance.now() }));
process.exit(0);
`;

/**
 * The AWS SDK clients the Lambda runtime provides (the bundles leave them out), loaded alone in the
 * same way: no handler that loads one can load faster than it.
 */
export const SDK_FLOORS = [
  {
    name: "DynamoDB client + document client",
    modules: ["@aws-sdk/client-dynamodb", "@aws-sdk/lib-dynamodb"],
    usedBy: "every handler but the authorizer, ping and $default",
  },
  {
    name: "Secrets Manager client",
    modules: ["@aws-sdk/client-secrets-manager"],
    usedBy: "a first invocation that reads a secret named by ARN (the deployed authorizer's JWT secret)",
  },
] as const;

/**
 * The client libraries the handlers bundle, each bundled alone with the handlers' options: no
 * handler that bundles one can be smaller, or load faster, than it.
 */
export const LIBRARY_FLOORS = [
  { name: "ioredis", usedBy: "disconnect, join-room, leave-room, send-message, get-history" },
  { name: "kafkajs", usedBy: "send-message" },
  { name: "pg", usedBy: "join-room, send-message, get-history (on first use)" },
] as const;

/** One floor's figures. */
export interface FloorResult {
  name: string;
  kind: "runtime SDK" | "bundled library";
  usedBy: string;
  /** A bundled library's minified size alone; the runtime's SDK is not in any bundle. */
  bytes: number | null;
  loads: number;
  /** Median time of requiring the modules in a fresh process, ms. */
  loadMs: number;
}

/** Loads `args` (see PROBE) in fresh processes until `loads` are in, or the budget is spent after 3. */
async function timeLoads(
  args: string[],
  env: NodeJS.ProcessEnv,
  loads: number,
  budgetSeconds: number,
): Promise<{ loadMs: number[]; sinceStartMs: number[] }> {
  const loadMs: number[] = [];
  const sinceStartMs: number[] = [];
  const until = Date.now() + budgetSeconds * 1000;
  for (let i = 0; i < loads && (i < 3 || Date.now() < until); i++) {
    const { stdout } = await run(process.execPath, ["-e", PROBE, ...args], { cwd: ROOT, env });
    const m = JSON.parse(stdout) as { loadMs: number; sinceStartMs: number };
    loadMs.push(m.loadMs);
    sinceStartMs.push(m.sinceStartMs);
  }
  return { loadMs, sinceStartMs };
}

/** Builds the handler bundles and measures them, and the floors beside them. */
export async function runColdStart(
  env: Record<string, string>,
  params: ColdStartParams,
): Promise<{ handlers: HandlerResult[]; floors: FloorResult[] }> {
  const outDir = join(ROOT, ".cache", "bench", "bundles");
  const targets = bundleTargets(outDir)
    .filter((t) => t.kind === "function")
    .filter((t) => params.handlers === undefined || params.handlers.includes(t.name));
  const built = await bundle(targets);
  progress(`cold start: built ${built.length} handler bundles`);
  const id = `bc${randomBytes(3).toString("hex")}`;
  const childEnv = {
    ...process.env,
    ...env,
    ...isolatedNames(id),
    JWT_SECRET: env.JWT_SECRET ?? randomBytes(16).toString("hex"),
    LOG_LEVEL: "silent",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  const results: HandlerResult[] = [];
  for (const { target } of built) {
    const { loadMs: loads, sinceStartMs: sinceStart } = await timeLoads(
      [target.outfile],
      childEnv,
      params.loads,
      params.budgetSeconds ?? 6,
    );
    const bytes = statSync(target.outfile).size;
    results.push({
      handler: target.name,
      bytes,
      gzipBytes: gzipSync(readFileSync(target.outfile)).length,
      loads: loads.length,
      loadMs: round(median(loads), 1),
      processToLoadedMs: round(median(sinceStart), 1),
      firstInvokeMs: null,
      warmInvokeMs: null,
      answer: null,
    });
    progress(
      `cold start: ${target.name} ${(bytes / 1024).toFixed(0)} KiB, require ${round(median(loads), 1)} ms`,
    );
  }
  try {
    const { stdout } = await run(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "bench", "scenarios", "invoke-probe.ts"),
        outDir,
        String(params.warmRuns),
        ...(params.handlers ? [params.handlers.join(",")] : []),
      ],
      { cwd: ROOT, env: childEnv, timeout: 120_000, maxBuffer: 1 << 24 },
    );
    const line = stdout.trim().split("\n").pop() ?? "{}";
    const invoked = JSON.parse(line) as Record<string, { firstMs: number; warmMs: number[]; answer: string }>;
    for (const r of results) {
      const i = invoked[r.handler];
      if (!i) continue;
      r.firstInvokeMs = round(i.firstMs, 1);
      r.warmInvokeMs = round(median(i.warmMs), 2);
      r.answer = i.answer;
    }
    progress("cold start: warm invocations measured");
  } catch (error) {
    progress(`cold start: the warm invocations failed: ${(error as Error).message.split("\n")[0]}`);
  }
  return { handlers: results, floors: await measureFloors(outDir, childEnv, params) };
}

/** The runtime's SDK clients and each bundled library, loaded alone. */
async function measureFloors(
  outDir: string,
  env: NodeJS.ProcessEnv,
  params: ColdStartParams,
): Promise<FloorResult[]> {
  const floors: FloorResult[] = [];
  const budget = params.budgetSeconds ?? 6;
  for (const floor of SDK_FLOORS) {
    const { loadMs } = await timeLoads([...floor.modules], env, params.loads, budget);
    floors.push({
      name: floor.name,
      kind: "runtime SDK",
      usedBy: floor.usedBy,
      bytes: null,
      loads: loadMs.length,
      loadMs: round(median(loadMs), 1),
    });
    progress(`cold start: the runtime's ${floor.name} alone, require ${round(median(loadMs), 1)} ms`);
  }
  const dir = join(outDir, "floors");
  mkdirSync(dir, { recursive: true });
  for (const floor of LIBRARY_FLOORS) {
    const entry = join(dir, `${floor.name}.entry.js`);
    const outfile = join(dir, `${floor.name}.js`);
    writeFileSync(entry, `module.exports = require(${JSON.stringify(floor.name)});\n`);
    await build(esbuildOptions(entry, outfile, "lambda"));
    const { loadMs } = await timeLoads([outfile], env, params.loads, budget);
    const bytes = statSync(outfile).size;
    floors.push({
      name: floor.name,
      kind: "bundled library",
      usedBy: floor.usedBy,
      bytes,
      loads: loadMs.length,
      loadMs: round(median(loadMs), 1),
    });
    progress(
      `cold start: ${floor.name} bundled alone, ${(bytes / 1024).toFixed(0)} KiB, require ${round(median(loadMs), 1)} ms`,
    );
  }
  return floors;
}
