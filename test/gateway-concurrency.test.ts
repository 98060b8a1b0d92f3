/**
 * The handlers under API Gateway's concurrency: each frame is its own invocation, running at the same
 * time as the connection's other frames (the emulator no longer runs them one after another). These
 * are the races that exposes between a connection's own actions, and the rate limiter it used to
 * hide: a burst that arrives at once is limited at once.
 */
import { TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    settings: { RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "40" },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const connect = async (user: string) => TestClient.connect(stack.url, { token: await stack.token(user) });

test("a 200-message burst from one connection is limited at once: the allowance and no more are acked", async () => {
  const room = `${stack.id}-burst`;
  const client = await connect("burst");
  await client.request({ action: "joinRoom", roomId: room }, "joined");
  const started = Date.now();
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      client.request(
        { action: "sendMessage", roomId: room, text: `b${i}`, clientMsgId: `b${i}` },
        "ack",
        20_000,
      ),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  const acked = answers.filter((a) => a.type === "ack").length;
  const limited = answers.filter((a) => a.code === "RATE_LIMITED").length;
  // On a loaded machine some sends time out on their dependencies and answer INTERNAL: also an answer.
  const internal = answers.filter((a) => a.code === "INTERNAL").length;
  process.stderr.write(
    `gateway-concurrency: 200-message burst: ${acked} acked, ${limited} RATE_LIMITED, ${internal} INTERNAL in ${seconds.toFixed(1)} s\n`,
  );
  expect(acked + limited + internal).toBe(200);
  // Burst 40, then 20 a second while the burst is being answered: never the whole burst, as when
  // the frames were run one after another (200 acked, 0 limited, on a busy machine).
  expect(acked).toBeLessThanOrEqual(40 + Math.ceil(seconds * 20) + 1);
  expect(limited).toBeGreaterThan(0);
  await client.close();
});

test("the same clientMsgId sent twice at once (a double tap) is one message: same answer, delivered and stored once", async () => {
  const room = `${stack.id}-double`;
  const sender = await connect("tap");
  const reader = await connect("reader");
  await sender.request({ action: "joinRoom", roomId: room }, "joined");
  await reader.request({ action: "joinRoom", roomId: room }, "joined");
  const frame = { action: "sendMessage", roomId: room, text: "once", clientMsgId: "tap-1" };
  const both = [sender.next((f) => f.clientMsgId === "tap-1"), sender.next((f) => f.clientMsgId === "tap-1")];
  sender.send(frame);
  sender.send(frame);
  const [a, b] = await Promise.all(both);
  // Both acked with the same message, or one acked and the other told to retry (never two messages).
  const acks = [a, b].filter((f) => f?.type === "ack");
  expect(acks.length).toBeGreaterThanOrEqual(1);
  expect(new Set(acks.map((f) => f?.messageId)).size).toBe(1);
  for (const f of [a, b]) if (f?.type === "error") expect(f.code).toBe("INTERNAL");
  await stack.waitForRows(room, 1);
  await new Promise((r) => setTimeout(r, 500));
  expect(reader.messages(room)).toHaveLength(1);
  expect(await stack.rows(room)).toHaveLength(1);
  await Promise.all([sender.close(), reader.close()]);
});

test("joinRoom and sendMessage sent together: the send is acked and delivered, or NOT_A_MEMBER, never lost between", async () => {
  const reader = await connect("watcher");
  const rooms = Array.from({ length: 5 }, (_, i) => `${stack.id}-eager-${i}`);
  for (const room of rooms) await reader.request({ action: "joinRoom", roomId: room }, "joined");
  const eager = await connect("eager");
  const outcomes: string[] = [];
  for (const room of rooms) {
    const joined = eager.next((f) => f.type === "joined" && f.roomId === room);
    const sent = eager.next((f) => f.clientMsgId === `e-${room}`);
    eager.send({ action: "joinRoom", roomId: room });
    eager.send({ action: "sendMessage", roomId: room, text: "hi", clientMsgId: `e-${room}` });
    await joined;
    const answer = await sent;
    outcomes.push(answer.type === "ack" ? "ack" : answer.code);
    if (answer.type === "ack") {
      expect((await reader.waitForMessages(room, 1, 10_000)).map((m) => m.messageId)).toEqual([
        answer.messageId,
      ]);
    } else {
      expect(answer.code).toBe("NOT_A_MEMBER");
    }
  }
  process.stderr.write(`gateway-concurrency: join and send together: ${outcomes.join(", ")}\n`);
  await Promise.all([reader.close(), eager.close()]);
});

test("joinRoom and leaveRoom sent together leave one state that sends and deliveries agree on", async () => {
  const room = `${stack.id}-flip`;
  const other = await connect("other");
  await other.request({ action: "joinRoom", roomId: room }, "joined");
  const flip = await connect("flip");
  const states: string[] = [];
  for (let i = 0; i < 5; i++) {
    const answers = [
      flip.next((f) => (f.type === "joined" || f.type === "error") && f.roomId === room),
      flip.next((f) => f.type === "left" && f.roomId === room),
    ];
    flip.send({ action: "joinRoom", roomId: room });
    flip.send({ action: "leaveRoom", roomId: room });
    await Promise.all(answers);
    // Whatever the order, the connection is now a member or not, and both paths say the same.
    const probe = await other.request(
      { action: "sendMessage", roomId: room, text: `p${i}`, clientMsgId: `p${i}` },
      "ack",
    );
    expect(probe.type).toBe("ack");
    const got = await flip
      .next((f) => f.type === "message" && f.messageId === probe.messageId, 1500)
      .then(
        () => true,
        () => false,
      );
    const own = await flip.request(
      { action: "sendMessage", roomId: room, text: `o${i}`, clientMsgId: `o${i}` },
      "ack",
    );
    const canSend = own.type === "ack";
    states.push(`${got ? "member" : "gone"}/${canSend ? "sends" : own.code}`);
    expect(canSend).toBe(got);
    if (canSend) await flip.request({ action: "leaveRoom", roomId: room }, "left");
  }
  process.stderr.write(`gateway-concurrency: join and leave together: ${states.join(", ")}\n`);
  await Promise.all([other.close(), flip.close()]);
});
