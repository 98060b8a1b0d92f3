/** What the gateway's thread and a handler thread (thread.ts) post to each other. */
import type { LambdaContext } from "../gateway/invocations";
import type { HandlerMeter } from "./metering";

/** The handler an invocation names: a route key, or the authorizer. */
export const AUTHORIZER_KEY = "$authorizer";

/** The fields of a Lambda context that cross to the thread (the remaining time as a number). */
export type ContextFields = Omit<LambdaContext, "getRemainingTimeInMillis"> & { remainingMs: number };

/** What the gateway's thread posts to a handler thread. */
export type ToThread =
  | { type: "invoke"; id: number; handler: string; event: unknown; context: ContextFields }
  | { type: "close" };

/** A handler's error, as far as it crosses a thread. */
export interface ThreadError {
  name: string;
  message: string;
  stack?: string;
}

/** The meter's calls, in the order the handlers made them. */
export type MeterCall =
  | ["dynamodb", Parameters<HandlerMeter["dynamodb"]>]
  | ["kafkaAppend", Parameters<HandlerMeter["kafkaAppend"]>];

/** What a handler thread posts back. */
export type FromThread =
  | { type: "ready" }
  | { type: "result"; id: number; ok: true; result: unknown }
  | { type: "result"; id: number; ok: false; error: ThreadError }
  | { type: "meter"; calls: MeterCall[] }
  | { type: "closed" };

/** How host.ts starts the thread. */
export interface ThreadData {
  /** Count DynamoDB units and Kafka appends for the stack's meter. */
  metering: boolean;
}
