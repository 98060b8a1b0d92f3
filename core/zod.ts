/**
 * zod's functional build, `zod/mini`, for every schema of core/: esbuild keeps only the schema kinds
 * and checks a bundle uses, where the full build would put all of zod in each Lambda handler.
 * The full build sets its English messages by itself and zod/mini does not, so they are set here,
 * once: error frames and ConfigErrors quote them (PROTOCOL.md's answers stay the same).
 *
 * Import it as `import * as z from "./zod"`, where `zod/mini` would be imported.
 */
import { en } from "zod/locales";
import { compile, config, type core } from "zod/mini";

config(en());

export * from "zod/mini";

/**
 * The schema compiled by zod into one generated function, made on the first call: for a parse on a
 * hot path (every message a worker reads), where zod/mini's interpreted objects cost more CPU than
 * JSON.parse. It accepts and refuses what the schema does, with the same issues (zod parses a
 * refusal again with the schema itself). Compiling on first use keeps it out of the cold start of a
 * handler that only imports the schema.
 */
export function compiledOnFirstUse<T extends core.$ZodType>(schema: T): () => T {
  let compiled: T | undefined;
  return () => {
    compiled ??= compile(schema);
    return compiled;
  };
}
