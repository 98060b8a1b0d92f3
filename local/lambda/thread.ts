/**
 * A handler thread: the Lambda handlers' execution environment, beside the API Gateway emulator's
 * event loop rather than in it, as on AWS, where a handler never shares the gateway's CPU. It loads
 * every handler once (the cold start), then runs each invocation the gateway posts, concurrently,
 * and posts back its outcome. Its clients (DynamoDB, Redis, Kafka, PostgreSQL) are its own, as a
 * warm Lambda's are. The counts the meter needs are posted to the gateway's thread.
 *
 * Started by host.ts through thread.cjs (worker threads do not inherit the loader that runs the
 * TypeScript sources).
 */
import { parentPort, workerData } from "node:worker_threads";
import { waitAtMost } from "../../core/retry";
import { closeServices, overrideServices } from "../../core/wiring/services";
import type { LambdaContext, LambdaHandler } from "../gateway/invocations";
import { loadHandlers } from "./handlers";
import {
  AUTHORIZER_KEY,
  type ContextFields,
  type FromThread,
  type MeterCall,
  type ThreadData,
  type ToThread,
} from "./messages";
import { meteringOverrides } from "./metering";

function main(): void {
  const port = parentPort;
  if (!port) throw new Error("local/lambda/thread.ts runs as a worker thread, started by host.ts");
  const post = (message: FromThread) => port.postMessage(message);
  const { metering } = workerData as ThreadData;

  // The meter's calls go to the gateway's thread in batches, once per turn of this event loop.
  let calls: MeterCall[] = [];
  const flush = () => {
    if (calls.length === 0) return;
    post({ type: "meter", calls });
    calls = [];
  };
  const record = (call: MeterCall) => {
    if (calls.length === 0) setImmediate(flush);
    calls.push(call);
  };
  if (metering) {
    overrideServices(
      meteringOverrides({
        dynamodb: (...args) => record(["dynamodb", args]),
        kafkaAppend: (...args) => record(["kafkaAppend", args]),
      }),
    );
  }

  const { routes, authorizer } = loadHandlers();
  const handlerOf = (key: string): LambdaHandler | undefined =>
    key === AUTHORIZER_KEY ? authorizer : Object.hasOwn(routes, key) ? routes[key] : undefined;

  const invoke = async (id: number, key: string, event: unknown, fields: ContextFields) => {
    const { remainingMs, ...rest } = fields;
    const deadline = performance.now() + remainingMs;
    const context: LambdaContext = {
      ...rest,
      getRemainingTimeInMillis: () => Math.max(0, deadline - performance.now()),
    };
    try {
      const handler = handlerOf(key);
      if (!handler) throw new Error(`no handler for ${key} in this thread`);
      post({ type: "result", id, ok: true, result: await handler(event, context) });
    } catch (caught) {
      const error = caught instanceof Error ? caught : new Error(String(caught));
      post({
        type: "result",
        id,
        ok: false,
        error: { name: error.name, message: error.message, stack: error.stack },
      });
    }
  };

  port.on("message", (message: ToThread) => {
    if (message.type === "invoke") {
      void invoke(message.id, message.handler, message.event, message.context);
      return;
    }
    // The stack is stopping: its clients' goodbyes, bounded (a dead broker never answers), then out.
    void waitAtMost(closeServices(), 3000).finally(() => {
      flush();
      post({ type: "closed" });
      port.close();
    });
  });
  post({ type: "ready" });
}

main();
