/**
 * The sendMessage allowance (a token bucket in Redis): past it, RATE_LIMITED with the request echoed,
 * and the connection stays usable; a retry later with the same clientMsgId is accepted.
 */
import { TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 0,
    settings: { RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "3" },
  });
});

afterAll(async () => {
  await stack?.stop();
});

test("RATE_LIMITED past the allowance, and the connection stays usable", async () => {
  const room = `${stack.id}-rl`;
  const client = await TestClient.connect(stack.url, { token: await stack.token("flood") });
  await client.request({ action: "joinRoom", roomId: room }, "joined");
  const started = Date.now();
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      client.request({ action: "sendMessage", roomId: room, text: `x${i}`, clientMsgId: `f${i}` }, "ack"),
    ),
  );
  const limitedAnswers = answers.filter((a) => a.type === "error");
  const elapsedSeconds = (Date.now() - started) / 1000;
  // The burst is there at once; then one more a second.
  const acked = answers.filter((a) => a.type === "ack").length;
  expect(acked).toBeGreaterThanOrEqual(3);
  expect(acked).toBeLessThanOrEqual(3 + Math.ceil(elapsedSeconds));
  expect(limitedAnswers.length).toBe(20 - acked);
  for (const a of limitedAnswers) expect(a).toMatchObject({ code: "RATE_LIMITED", action: "sendMessage" });
  await new Promise((r) => setTimeout(r, 1100));
  const retry = await client.request(
    { action: "sendMessage", roomId: room, text: "x0", clientMsgId: limitedAnswers[0]?.clientMsgId },
    "ack",
  );
  expect(retry.type).toBe("ack");
  await client.close();
});
