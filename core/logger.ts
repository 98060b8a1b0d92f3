/**
 * One structured logger per process. Message bodies are never logged: the `text` field is redacted
 * wherever it appears, as a guard against a careless call.
 */
import pino, { type Logger } from "pino";
import { config } from "./config";

export type { Logger };

let root: Logger | undefined;

/** The process's logger, or a child of it bound to `component`. */
export function createLogger(component?: string): Logger {
  root ??= pino({
    level: config.log().level,
    base: { pid: process.pid },
    redact: { paths: ["text", "*.text", "message.text", "body", "*.body"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  return component ? root.child({ component }) : root;
}
