/**
 * What the handlers would be billed for beyond their invocations, counted where they call out:
 * DynamoDB's read and write units (their clients count them, with no extra hop) and Kafka's appends
 * (counted at the event log port). The same overrides serve handlers in the gateway's thread, which
 * count into the stack's meter, and handlers in a thread of their own, which count into one that
 * posts its counts to the stack's.
 */
import type { ServiceOverrides } from "../../core/wiring/services";
import { meterDynamoClient, meterDynamoWire } from "../gateway/dynamodb-meter";
import type { Meter } from "../gateway/meter";

/** The part of the meter the handlers' calls count into. */
export type HandlerMeter = Pick<Meter, "dynamodb" | "kafkaAppend">;

/** `prior`'s overrides, each wrapped to count into `meter`. */
export function meteringOverrides(meter: HandlerMeter, prior: ServiceOverrides = {}): ServiceOverrides {
  return {
    ...prior,
    dynamo: (real) => meterDynamoClient(prior.dynamo ? prior.dynamo(real) : real, meter),
    dynamoWire: (real) => meterDynamoWire(prior.dynamoWire ? prior.dynamoWire(real) : real, meter),
    log: (real) => {
      const inner = prior.log ? prior.log(real) : real;
      return {
        append: async (messages) => {
          await inner.append(messages);
          let bytes = 0;
          for (const m of messages)
            bytes += Buffer.byteLength(m.roomId) + Buffer.byteLength(JSON.stringify(m));
          meter.kafkaAppend(messages.length, bytes);
        },
        disconnect: () => inner.disconnect(),
      };
    },
  };
}
