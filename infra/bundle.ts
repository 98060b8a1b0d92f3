/**
 * `npm run build`: bundles every handler of the route table and the authorizer into
 * `dist/functions/<file>/index.js`, and each worker into `dist/worker/<name>.js`, with the same
 * esbuild options the CDK app uses, then prints a table of sizes.
 *
 * `--only workers` builds only the workers (the worker image's build stage uses it).
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { AUTHORIZER, ROUTES, WORKERS } from "../functions/routes";
import { esbuildOptions } from "./esbuild-options";

export class BundleError extends Error {
  override name = "BundleError";
}

/** One bundle to build: where it comes from and where it goes. */
export interface BundleTarget {
  kind: "function" | "worker";
  name: string;
  entry: string;
  outfile: string;
}

const root = path.resolve(__dirname, "..");

/** Every bundle the project ships, read from the route table and the worker list. */
export function bundleTargets(outDir = path.join(root, "dist")): BundleTarget[] {
  const functions = [...new Set([AUTHORIZER.file, ...ROUTES.map((r) => r.file)])].map((file) => ({
    kind: "function" as const,
    name: file,
    entry: path.join(root, "functions", `${file}.ts`),
    outfile: path.join(outDir, "functions", file, "index.js"),
  }));
  const workers = WORKERS.map((w) => ({
    kind: "worker" as const,
    name: w.name,
    entry: path.join(root, w.entry),
    outfile: path.join(outDir, "worker", `${w.name}.js`),
  }));
  return [...functions, ...workers];
}

/** Builds the given targets; resolves to each one's output size in bytes. */
export async function bundle(targets: BundleTarget[]): Promise<{ target: BundleTarget; bytes: number }[]> {
  const missing = targets.filter((t) => !existsSync(t.entry));
  if (missing.length > 0) {
    throw new BundleError(
      `entry points not found: ${missing.map((t) => path.relative(root, t.entry)).join(", ")}`,
    );
  }
  return Promise.all(
    targets.map(async (target) => {
      try {
        await build(
          esbuildOptions(target.entry, target.outfile, target.kind === "function" ? "lambda" : "container"),
        );
      } catch (cause) {
        throw new BundleError(`could not bundle ${path.relative(root, target.entry)}`, { cause });
      }
      return { target, bytes: statSync(target.outfile).size };
    }),
  );
}

async function main(): Promise<void> {
  const onlyIndex = process.argv.indexOf("--only");
  const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;
  const targets = bundleTargets().filter(
    (t) => only === undefined || (only === "workers" ? t.kind === "worker" : t.kind === "function"),
  );
  const results = await bundle(targets);
  const rows = results.map(({ target, bytes }) => [
    target.kind,
    target.name,
    path.relative(root, target.outfile),
    `${(bytes / 1024).toFixed(1)} KiB`,
  ]);
  const header = ["kind", "name", "bundle", "size"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  process.stdout.write(`${[line(header), ...rows.map(line)].join("\n")}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? `${error.message}\n${String(error.cause ?? "")}` : String(error)}\n`,
    );
    process.exit(1);
  });
}
