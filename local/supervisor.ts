/**
 * Restarts what the local stack runs when it dies unexpectedly, as ECS restarts a task, MSK a broker,
 * ElastiCache or RDS a node: after a capped, doubling delay, saying so in one line each time
 * ("persister-2 exited (signal SIGKILL); restarting in 1 s", then "persister-2 running again").
 * The target starts again with the same ports and data, so clients and workers reconnect to it.
 */

/** Something that runs, can die, and can be started again. */
export interface Restartable {
  /** Resolves when the current incarnation has ended, saying how ("signal SIGKILL", "code 1"). */
  exited(): Promise<string>;
  /** Starts it again; resolves once it runs (is ready), rejects when it could not start. */
  restart(): Promise<void>;
}

export interface SupervisorOptions {
  /** One line per event, for people. */
  say: (line: string) => void;
  /** The first delay before a restart; default 1 s. */
  minDelayMs?: number;
  /** The longest delay between restarts; default 8 s. */
  maxDelayMs?: number;
  /** An incarnation that ran this long resets the delay to the first one; default 30 s. */
  stableMs?: number;
}

export interface Supervisor {
  /** No more restarts from now on; a restart under way is left to the caller's stop to end. */
  stop(): void;
  /** How many restarts were started so far. */
  readonly restarts: number;
}

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

/** Watches `target` (already running) and restarts it whenever it ends, until stop(). */
export function supervise(name: string, target: Restartable, options: SupervisorOptions): Supervisor {
  const minDelayMs = options.minDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 8000;
  const stableMs = options.stableMs ?? 30_000;
  let stopped = false;
  let restarts = 0;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  const pause = (ms: number) =>
    new Promise<void>((done) => {
      wake = done;
      timer = setTimeout(done, ms);
    }).finally(() => {
      clearTimeout(timer);
      wake = undefined;
    });

  void (async () => {
    let attempt = 0;
    let since = Date.now();
    while (!stopped) {
      const how = await target.exited();
      if (stopped) return;
      if (Date.now() - since >= stableMs) attempt = 0;
      const delay = Math.min(maxDelayMs, minDelayMs * 2 ** attempt);
      attempt++;
      options.say(`${name} exited (${how}); restarting in ${seconds(delay)}`);
      await pause(delay);
      if (stopped) return;
      restarts++;
      since = Date.now();
      try {
        await target.restart();
        if (stopped) return;
        options.say(`${name} running again`);
      } catch (error) {
        if (stopped) return;
        const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
        options.say(`${name} could not be restarted (${reason})`);
      }
    }
  })();

  return {
    stop() {
      stopped = true;
      wake?.();
    },
    get restarts() {
      return restarts;
    },
  };
}
