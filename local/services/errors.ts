/** Errors of the local service starters. */

/**
 * A local service could not be started. The message is one sentence saying what is missing and how
 * to get it (or, for a process that died while starting, the tail of its log), so the CLI and the
 * test set-up can print it as is.
 */
export class ServiceStartError extends Error {
  override name = "ServiceStartError";
  constructor(
    message: string,
    options?: {
      cause?: unknown;
      /** The last lines of the service's log, when a process died while starting. */
      logTail?: string;
    },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.logTail = options?.logTail;
  }
  readonly logTail: string | undefined;
}
