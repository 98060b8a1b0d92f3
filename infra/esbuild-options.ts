/**
 * The one definition of how handlers and workers are bundled. `npm run build` (infra/bundle.ts) and
 * the CDK NodejsFunction construct both read it, so what is tested locally is what is deployed.
 */
import { type BundlingOptions, LogLevel } from "aws-cdk-lib/aws-lambda-nodejs";
import type { BuildOptions } from "esbuild";

/** Node.js version the bundles are compiled for: the oldest runtime any of them runs on. */
export const NODE_TARGET = "node22";

/**
 * The Lambda runtime ships AWS SDK v3; leaving it out keeps cold starts short. Containers have no SDK
 * of their own, so the workers bundle it.
 */
export const AWS_SDK_EXTERNAL = ["@aws-sdk/*"];

/** Options shared by every bundle, whichever tool runs esbuild. */
export const SHARED = {
  target: NODE_TARGET,
  minify: true,
  sourceMap: true,
  // Keep class names: errors are told apart by `name` in logs and by `instanceof` in code.
  keepNames: true,
} as const;

/** Bundling options for a NodejsFunction (Lambda handlers and infra custom resources). */
export function lambdaBundling(extra: Partial<BundlingOptions> = {}): BundlingOptions {
  return {
    ...SHARED,
    externalModules: AWS_SDK_EXTERNAL,
    // Local esbuild, never Docker: there is no Docker engine where this synthesizes.
    forceDockerBundling: false,
    logLevel: LogLevel.ERROR,
    ...extra,
  };
}

/** esbuild API options for one entry point, matching `lambdaBundling` for handlers. */
export function esbuildOptions(entry: string, outfile: string, target: "lambda" | "container"): BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: SHARED.target,
    minify: SHARED.minify,
    sourcemap: SHARED.sourceMap,
    keepNames: SHARED.keepNames,
    external: target === "lambda" ? AWS_SDK_EXTERNAL : [],
    metafile: true,
    logLevel: "warning",
  };
}
