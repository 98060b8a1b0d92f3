/**
 * A failure between the Redis step and the Kafka append of sendMessage, injected at the event log
 * port's edge (the append to the real broker throws once): the sender gets INTERNAL, a retry with the
 * same clientMsgId completes what is missing, and the message is delivered once and stored once.
 * Without a retry, the fan-out worker's sweeper appends it, so what was delivered is also stored.
 */
import { DependencyError } from "../core/errors";
import type { EventLog } from "../core/ports";
import { overrideServices } from "../core/wiring/services";
import { TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let failures = 0;
overrideServices({
  log: (real: EventLog): EventLog => ({
    append: async (messages) => {
      if (failures > 0) {
        failures--;
        throw new DependencyError("kafka", "injected: the broker did not answer");
      }
      return real.append(messages);
    },
    disconnect: () => real.disconnect(),
  }),
});

let stack: TestStack;
let sender: TestClient;
let reader: TestClient;

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    // The fault is injected into the handlers' wiring in this process: they run in its event loop.
    settings: { FANOUT_SWEEP_AFTER_MS: "1500", GATEWAY_HANDLER_THREADS: "0" },
  });
  sender = await TestClient.connect(stack.url, { token: await stack.token("sender") });
  reader = await TestClient.connect(stack.url, { token: await stack.token("reader") });
});

afterAll(async () => {
  await sender?.close();
  await reader?.close();
  await stack?.stop();
});

test("a retry after a failed Kafka append answers the seq already delivered; one delivery, one row", async () => {
  const room = `${stack.id}-retry`;
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  await reader.request({ action: "joinRoom", roomId: room }, "joined");
  const frame = { action: "sendMessage", roomId: room, text: "through a failure", clientMsgId: "r-1" };

  failures = 1;
  const failed = await sender.request(frame, "ack");
  expect(failed).toMatchObject({
    type: "error",
    code: "INTERNAL",
    action: "sendMessage",
    clientMsgId: "r-1",
  });

  const ack = await sender.request(frame, "ack");
  expect(ack).toMatchObject({ type: "ack", roomId: room, clientMsgId: "r-1", seq: 1 });

  for (const client of [sender, reader]) {
    const [message] = await client.waitForMessages(room, 1);
    expect(message).toMatchObject({ messageId: ack.messageId, seq: 1, text: "through a failure" });
  }
  await stack.waitForRows(room, 1);
  // Long enough for a second delivery or a second row to show up if there were one.
  await new Promise((r) => setTimeout(r, 2500));
  expect(sender.messages(room)).toHaveLength(1);
  expect(reader.messages(room)).toHaveLength(1);
  expect(await stack.rows(room)).toEqual([expect.objectContaining({ messageId: ack.messageId, seq: 1 })]);
});

test("an accepted message whose sender never retries is still stored, by the sweeper", async () => {
  const room = `${stack.id}-abandoned`;
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  failures = 1;
  const failed = await sender.request(
    { action: "sendMessage", roomId: room, text: "nobody retries", clientMsgId: "a-1" },
    "ack",
  );
  expect(failed).toMatchObject({ code: "INTERNAL" });
  const [delivered] = await sender.waitForMessages(room, 1);
  await stack.waitForRows(room, 1, 20_000);
  expect(await stack.rows(room)).toEqual([
    expect.objectContaining({ messageId: delivered?.messageId, seq: 1 }),
  ]);
  // The retry that comes later still answers the same message.
  const late = await sender.request(
    { action: "sendMessage", roomId: room, text: "nobody retries", clientMsgId: "a-1" },
    "ack",
  );
  expect(late).toMatchObject({ type: "ack", messageId: delivered?.messageId, seq: 1 });
  expect(await stack.rows(room)).toHaveLength(1);
});
