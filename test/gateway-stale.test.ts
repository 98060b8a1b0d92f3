/**
 * What AWS does that a backend must survive, through the whole local stack: `$disconnect` lost (it is
 * best effort), so the fan-out's 410 must clean the connection up; and PostToConnection throttled
 * (429 LimitExceededException, the account's request rate, which the fan-out shares with every
 * client frame), so the fan-out must back off and still deliver everything, in order.
 */
import { TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 0,
    settings: {
      // Every $disconnect lost; the account's rate low enough for the fan-out to meet it.
      GATEWAY_DISCONNECT_DROP: "1",
      GATEWAY_ACCOUNT_RPS: "60",
      GATEWAY_ACCOUNT_BURST: "30",
      RATE_LIMIT_PER_SECOND: "1000",
      RATE_LIMIT_BURST: "1000",
    },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const connect = async (user: string) => {
  for (;;) {
    try {
      return await TestClient.connect(stack.url, { token: await stack.token(user) });
    } catch (error) {
      // The account's rate covers upgrades too: wait for a token.
      if ((error as { status?: number }).status !== 429) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
};

/**
 * A request that waits and tries again while the account's rate answers AWS's throttled frame. The
 * throttled frame names no request, so a connection sends one request at a time.
 */
async function request(client: TestClient, frame: Record<string, unknown>, type: string) {
  for (;;) {
    const answer = client.next(
      (f) =>
        f.message === "Too Many Requests" ||
        (f.type === type &&
          f.roomId === frame.roomId &&
          (frame.clientMsgId === undefined || f.clientMsgId === frame.clientMsgId)) ||
        (f.type === "error" && f.clientMsgId === frame.clientMsgId),
    );
    client.send(frame);
    const got = await answer;
    if (got.message !== "Too Many Requests") return got;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("a lost $disconnect leaves the connection's records; the first 410 removes them", async () => {
  const room = `${stack.id}-lost`;
  const live = await connect("alive");
  await request(live, { action: "joinRoom", roomId: room }, "joined");
  const ghost = await connect("ghost");
  await request(ghost, { action: "joinRoom", roomId: room }, "joined");
  // The join's presence notice goes to the ghost too: once it has it, no post to the ghost is on its
  // way, so the first 410 is the message's below, not a notice that found it gone early.
  await ghost.next((f) => f.type === "presence" && f.userId === "ghost" && f.roomId === room);
  const members = async () =>
    (await stack.items(`ROOM#${room}`)).filter((i) => String(i.sk).startsWith("CONN#")).map((i) => i.userId);
  ghost.ws.terminate();
  await ghost.closed;
  await new Promise((r) => setTimeout(r, 500));
  expect(stack.meter.snapshot().apiGateway.throttled.disconnectDropped).toBeGreaterThanOrEqual(1);
  expect((await members()).sort()).toEqual(["alive", "ghost"]);

  await request(live, { action: "sendMessage", roomId: room, text: "anyone?", clientMsgId: "l1" }, "ack");
  await live.waitForMessages(room, 1);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await members()).length > 1) await new Promise((r) => setTimeout(r, 100));
  expect(await members()).toEqual(["alive"]);
  await live.close();
});

test("PostToConnection throttled by the account's rate: the fan-out backs off and delivers every message, in order", async () => {
  const room = `${stack.id}-busy`;
  const members: TestClient[] = [];
  for (let i = 0; i < 8; i++) {
    const c = await connect(`m${i}`);
    await request(c, { action: "joinRoom", roomId: room }, "joined");
    members.push(c);
  }
  const before = stack.meter.snapshot().apiGateway.throttled.accountCallbacks;
  const sender = members[0] as TestClient;
  const count = 25;
  // One at a time (see request()); the fan-out's posts still outrun the account's rate.
  const acks = [];
  for (let i = 0; i < count; i++) {
    acks.push(
      await request(
        sender,
        { action: "sendMessage", roomId: room, text: `n${i}`, clientMsgId: `n${i}` },
        "ack",
      ),
    );
  }
  expect(new Set(acks.map((a) => a.seq)).size).toBe(count);
  expect(acks.every((a) => a.type === "ack")).toBe(true);
  // 8 members × 25 messages = 200 posts (and the members' presence events) at 60 a second, with 429s
  // on the way: each connection's next post waits out its own jittered backoff (up to 1 s).
  for (const c of members) {
    const got = await c.waitForMessages(room, count, 60_000);
    expect(got.map((m) => m.seq)).toEqual([...got.map((m) => m.seq)].sort((a, b) => a - b));
    expect(new Set(got.map((m) => m.messageId)).size).toBe(count);
  }
  const throttled = stack.meter.snapshot().apiGateway.throttled.accountCallbacks - before;
  process.stderr.write(
    `gateway-stale: ${count} messages to 8 members under a 60/s account rate: ${throttled} posts throttled (429)\n`,
  );
  expect(throttled).toBeGreaterThan(0);
  await Promise.all(members.map((c) => c.close()));
});
