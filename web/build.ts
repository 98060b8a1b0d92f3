/**
 * Builds the web client into a few static files: index.html, styles.css, app.js (Preact and
 * partysocket bundled by esbuild) and its source map. `npm run web:build` writes them to web/dist;
 * `npm run dev` builds them in memory at start (local/web.ts); the CDK app builds them into its asset
 * (infra/constructs/web-client.ts). The deployed stack adds a config.json beside them.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type BuildOptions, build, buildSync } from "esbuild";

export const WEB_DIR = __dirname;
export const WEB_DIST = join(__dirname, "dist");

/** Files copied as they are. */
const STATIC_FILES = ["index.html", "styles.css"];

/** The browsers the bundle is written for: those of the last few years. */
const BROWSERS = ["chrome110", "firefox110", "safari16", "edge110"];

function options(minify: boolean): BuildOptions {
  return {
    entryPoints: [join(WEB_DIR, "src", "main.tsx")],
    bundle: true,
    format: "esm",
    target: BROWSERS,
    jsx: "automatic",
    jsxImportSource: "preact",
    minify,
    sourcemap: "linked",
    outfile: "app.js",
    write: false,
    logLevel: "silent",
    legalComments: "linked",
  };
}

/** A built file: its name in the output folder and its bytes. */
export interface WebFile {
  name: string;
  contents: Uint8Array;
}

function withStatic(outputs: { path: string; contents: Uint8Array }[]): WebFile[] {
  const files: WebFile[] = outputs.map((o) => ({
    name: o.path.split(/[\\/]/).pop() as string,
    contents: o.contents,
  }));
  for (const name of STATIC_FILES) files.push({ name, contents: readFileSync(join(WEB_DIR, name)) });
  return files;
}

/** Builds the client in memory. */
export async function buildWebFiles(minify = true): Promise<WebFile[]> {
  const result = await build({ ...options(minify), outdir: undefined, outfile: join(WEB_DIST, "app.js") });
  return withStatic(result.outputFiles ?? []);
}

/** Builds the client into `outdir`, synchronously (what CDK's local bundling needs). */
export function buildWebClientSync(outdir: string, minify = true): WebFile[] {
  const result = buildSync({ ...options(minify), outfile: join(outdir, "app.js") });
  const files = withStatic(result.outputFiles ?? []);
  mkdirSync(outdir, { recursive: true });
  for (const file of files) writeFileSync(join(outdir, file.name), file.contents);
  return files;
}

if (require.main === module) {
  const files = buildWebClientSync(WEB_DIST);
  process.stdout.write(
    `${files.map((f) => `web/dist/${f.name} ${f.contents.byteLength} bytes`).join("\n")}\n`,
  );
}
