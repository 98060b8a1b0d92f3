/**
 * undici's connection pool as a {@link PostTransport}, driven through its dispatcher (no stream for
 * each answer): less CPU per request than node:http's agent on the fan-out's path, a POST per
 * delivery (`npm run bench -- --only hops` measures the same signed POST over both). The fan-out
 * worker uses it; a Lambda does not, as the library would add to every cold start more than it
 * saves a handler.
 */
import { type Dispatcher, Pool } from "undici";
import type { PostAnswer, TransportFactory } from "./signed-post";

/** undici's codes for an answer that did not come in time. */
const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

export const poolTransport: TransportFactory = (endpoint, connections) => {
  const pool = new Pool(endpoint.origin, { connections, pipelining: 1 });
  return {
    post: (path, headers, body, timeouts, keepBody) =>
      new Promise<PostAnswer>((resolve, reject) => {
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        let controller: Dispatcher.DispatchController | undefined;
        let status = 0;
        const chunks: Buffer[] | undefined = keepBody ? [] : undefined;
        const settle = (error: unknown, answer?: PostAnswer) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (answer) resolve(answer);
          else reject(error);
        };
        if (timeouts.deadlineMs !== undefined) {
          // The deadline counts from now, waiting for a connection included: the promise fails on
          // time, and the request is cancelled wherever it has got to.
          timer = setTimeout(() => {
            const error = timeouts.timedOut();
            settle(error);
            controller?.abort(error);
          }, timeouts.deadlineMs);
        }
        pool.dispatch(
          {
            method: "POST",
            path,
            headers,
            body,
            headersTimeout: timeouts.idleMs,
            bodyTimeout: timeouts.idleMs,
          },
          {
            onRequestStart(started) {
              controller = started;
              if (settled) started.abort(timeouts.timedOut());
            },
            onResponseStart(_controller, statusCode) {
              status = statusCode;
            },
            onResponseData(_controller, chunk) {
              chunks?.push(chunk);
            },
            onResponseEnd() {
              settle(undefined, { status, body: chunks && Buffer.concat(chunks) });
            },
            onResponseError(_controller, error) {
              const code = (error as { code?: string }).code;
              settle(code && TIMEOUT_CODES.has(code) ? timeouts.timedOut() : error);
            },
          },
        );
      }),
    destroy: () => {
      pool.destroy().catch(() => undefined);
    },
  };
};
