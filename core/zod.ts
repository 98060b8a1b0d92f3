/**
 * zod's functional build, `zod/mini`, for every schema of core/: esbuild keeps only the schema kinds
 * and checks a bundle uses (tens of KB instead of the full build's ~460 KB in each Lambda handler).
 * The full build sets its English messages by itself and zod/mini does not, so they are set here,
 * once: error frames and ConfigErrors quote them (PROTOCOL.md's answers stay the same).
 *
 * Import it as `import * as z from "./zod"`, where `zod/mini` would be imported.
 */
import { en } from "zod/locales";
import { config } from "zod/mini";

config(en());

export * from "zod/mini";
