#!/usr/bin/env node
/**
 * `npm run db:generate` (and postinstall): generates the Prisma client into prisma/generated,
 * offline, then makes it loadable by jest.
 *
 * - `prisma generate` needs no schema engine, but the CLI tries to fetch one unless told where it
 *   is; /bin/false satisfies that check and is never run by generate.
 * - The generated client loads its query compiler with `await import(...)`. TypeScript keeps a
 *   dynamic import as is under NodeNext, and jest's CommonJS runtime refuses one without
 *   --experimental-vm-modules; `require` loads the same CommonJS modules everywhere (tsx, jest,
 *   esbuild bundles).
 * - Without the Prisma CLI (a production install without dev dependencies) there is nothing to do:
 *   the worker images are bundled from a full install.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
let cli;
try {
  cli = require.resolve("prisma/build/index.js", { paths: [root] });
} catch {
  console.log("prisma CLI not installed (production install?): skipping client generation");
  process.exit(0);
}
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: "1" };
env.PRISMA_SCHEMA_ENGINE_BINARY ||= "/bin/false";
const result = spawnSync(
  process.execPath,
  [cli, "generate", "--schema", path.join(__dirname, "schema.prisma")],
  {
    cwd: root,
    env,
    stdio: "inherit",
  },
);
if (result.status !== 0) process.exit(result.status ?? 1);

const classFile = path.join(__dirname, "generated", "internal", "class.ts");
const source = fs.readFileSync(classFile, "utf8");
const patched = source.replace(/await import\(/g, "require(");
if (patched === source && !source.includes("require(")) {
  console.error(
    `no dynamic import found in ${classFile}: the Prisma client layout changed, check prisma/generate.cjs`,
  );
  process.exit(1);
}
fs.writeFileSync(classFile, patched);
