/** Shapes shared by the service starters (re-exported from index.ts). */

/** One service we use: either started by us (it has a pid) or given by the environment. */
export interface RunningService {
  /** "redis", "kafka", "postgres" or "dynamodb". */
  name: string;
  /** What clients connect to: redis://…, host:port, postgresql://…, http://…. */
  url: string;
  /** The process we started (absent for an in-process or an external service). */
  pid?: number;
  /** Stops it cleanly (a no-op for a service we did not start). */
  stop(): Promise<void>;
  /** SIGKILL the process (only one we started); for fault-injection tests */
  kill?(): Promise<void>;
  /** start it again on the same port and data dir after kill() */
  restart?(): Promise<void>;
  /** Resolves when the current process ends (crash, kill or stop), saying how: "signal SIGKILL". */
  exited?(): Promise<string>;
}

/** Options every starter takes. */
export interface StarterOptions {
  /** The directory for this service's data and log; created if missing. */
  dataDir: string;
  /** Progress for people ("starting Redis…"); one line per call. */
  onProgress?: (line: string) => void;
  /** How long the service may take to become ready (milliseconds). */
  timeoutMs?: number;
}
