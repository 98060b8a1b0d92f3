/**
 * `npm run build`: every handler of the route table, the authorizer and both workers are bundled
 * with the shared esbuild options; handlers leave the AWS SDK to the Lambda runtime, workers carry it,
 * and a handler carries the client libraries of what it is granted (FUNCTION_NEEDS) and no other.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { AUTHORIZER, ROUTES, WORKERS } from "../functions/routes";
import { BundleError, bundle, bundleTargets } from "./bundle";
import { FUNCTION_NEEDS, type FunctionNeed } from "./constructs/chat-api";
import { esbuildOptions } from "./esbuild-options";

test("the targets are read from the route table and the worker list", () => {
  const targets = bundleTargets("/out");
  const functions = targets.filter((t) => t.kind === "function").map((t) => t.name);
  expect(functions.sort()).toEqual([...new Set([AUTHORIZER.file, ...ROUTES.map((r) => r.file)])].sort());
  expect(targets.filter((t) => t.kind === "worker").map((t) => t.outfile)).toEqual(
    WORKERS.map((w) => `/out/worker/${w.name}.js`),
  );
  expect(targets.find((t) => t.name === "send-message")?.outfile).toBe(
    "/out/functions/send-message/index.js",
  );
});

test("bundles carry source maps; the AWS SDK is external to handlers and inside workers", async () => {
  const out = mkdtempSync(path.join(tmpdir(), "bundle-"));
  const targets = bundleTargets(out).filter((t) => t.name === "authorizer" || t.name === "fanout");
  const results = await bundle(targets);
  expect(results).toHaveLength(2);
  for (const { target, bytes } of results) {
    expect(bytes).toBeGreaterThan(0);
    expect(existsSync(`${target.outfile}.map`)).toBe(true);
  }
  const authorizer = readFileSync(path.join(out, "functions", "authorizer", "index.js"), "utf8");
  const fanout = readFileSync(path.join(out, "worker", "fanout.js"), "utf8");
  expect(authorizer).toMatch(/require\("@aws-sdk\/client-secrets-manager"\)/);
  // Only optional add-ons the SDK itself loads inside try/catch (signature-v4-crt) may stay unresolved.
  expect(fanout).not.toMatch(/require\("@aws-sdk\/client-/);
});

test("a handler bundles the client library of each of its FUNCTION_NEEDS and of no other need", async () => {
  // The AWS SDK is external: DynamoDB and Secrets Manager leave no package in a handler's bundle.
  const library: Partial<Record<FunctionNeed, string>> = {
    jwt: "jose",
    redis: "ioredis",
    kafka: "kafkajs",
    database: "pg",
  };
  const out = mkdtempSync(path.join(tmpdir(), "bundle-needs-"));
  for (const target of bundleTargets(out).filter((t) => t.kind === "function")) {
    const { metafile } = await build({
      ...esbuildOptions(target.entry, target.outfile, "lambda"),
      write: false,
      logLevel: "silent",
    });
    const packages = new Set(
      Object.keys(metafile?.inputs ?? {}).map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p)?.[1]),
    );
    const needs: readonly FunctionNeed[] = FUNCTION_NEEDS[target.name] ?? [];
    for (const [need, pkg] of Object.entries(library)) {
      expect({ handler: target.name, [pkg]: packages.has(pkg) }).toEqual({
        handler: target.name,
        [pkg]: needs.includes(need as FunctionNeed),
      });
    }
  }
});

test("a missing entry point is named", async () => {
  await expect(
    bundle([
      { kind: "function", name: "nope", entry: "/nowhere/nope.ts", outfile: path.join(tmpdir(), "nope.js") },
    ]),
  ).rejects.toThrow(BundleError);
});
