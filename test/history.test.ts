/**
 * getHistory in its three modes, across the boundary between the recent messages Redis keeps (five
 * here) and the older ones only PostgreSQL has: every page equals what the acks say it should be.
 */
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;
let client: TestClient;
let outsider: TestClient;
const room = () => `${stack.id}-hist`;
const total = 30;
const acked = new Map<number, Frame>();
const texts = new Map<number, string>();

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 1, persisters: 1, settings: { RECENT_HISTORY_SIZE: "5" } });
  client = await TestClient.connect(stack.url, { token: await stack.token("historian", "Historian") });
  outsider = await TestClient.connect(stack.url, { token: await stack.token("outsider") });
  await client.request({ action: "joinRoom", roomId: room() }, "joined");
  for (let i = 1; i <= total; i++) {
    const text = i % 7 === 0 ? `שלום ${i} e\u0301 👩‍👩‍👧` : `message ${i}`;
    const ack = await client.request(
      { action: "sendMessage", roomId: room(), text, clientMsgId: `h${i}` },
      "ack",
    );
    acked.set(ack.seq, ack);
    texts.set(ack.seq, text);
  }
  await stack.waitForRows(room(), total);
});

afterAll(async () => {
  await client?.close();
  await outsider?.close();
  await stack?.stop();
});

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function history(
  query: Record<string, unknown>,
): Promise<{ seqs: number[]; hasMore: boolean; page: Frame }> {
  const page = await client.request({ action: "getHistory", roomId: room(), ...query }, "history");
  expect(page.type).toBe("history");
  const messages = page.messages as Frame[];
  for (const m of messages) {
    expect(m).toMatchObject({
      roomId: room(),
      messageId: acked.get(m.seq)?.messageId,
      senderId: "historian",
      senderName: "Historian",
      text: texts.get(m.seq),
    });
  }
  return { seqs: messages.map((m) => m.seq), hasMore: page.hasMore, page };
}

test.each([
  ["the newest 10 (all from PostgreSQL and Redis together)", { limit: 10 }, range(21, 30), true],
  ["the newest 3 (Redis only)", { limit: 3 }, range(28, 30), true],
  ["the newest with the default limit", {}, range(1, 30), false],
  ["beforeSeq 21, limit 10 (PostgreSQL only)", { beforeSeq: 21, limit: 10 }, range(11, 20), true],
  ["beforeSeq 29, limit 6 (across the boundary)", { beforeSeq: 29, limit: 6 }, range(23, 28), true],
  ["beforeSeq 5, limit 10 (the oldest)", { beforeSeq: 5, limit: 10 }, range(1, 4), false],
  ["beforeSeq 1 (nothing older)", { beforeSeq: 1 }, [], false],
  ["afterSeq 0, limit 10 (the oldest)", { afterSeq: 0, limit: 10 }, range(1, 10), true],
  ["afterSeq 20, limit 8 (across the boundary)", { afterSeq: 20, limit: 8 }, range(21, 28), true],
  ["afterSeq 26 (Redis only)", { afterSeq: 26, limit: 10 }, range(27, 30), false],
  ["afterSeq 22, limit 8 (up to the newest)", { afterSeq: 22, limit: 8 }, range(23, 30), false],
  ["afterSeq 30 (nothing newer)", { afterSeq: 30 }, [], false],
  ["afterSeq past the newest", { afterSeq: 1000 }, [], false],
])("%s", async (_label, query, seqs, hasMore) => {
  const answer = await history(query);
  expect(answer.seqs).toEqual(seqs);
  expect(answer.hasMore).toBe(hasMore);
});

test("paging backwards with beforeSeq and forwards with afterSeq each visit every message once", async () => {
  const backwards: number[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await history(before === undefined ? { limit: 7 } : { beforeSeq: before, limit: 7 });
    backwards.unshift(...page.seqs);
    if (!page.hasMore) break;
    before = page.seqs[0];
  }
  expect(backwards).toEqual(range(1, total));
  const forwards: number[] = [];
  let after = 0;
  for (;;) {
    const page = await history({ afterSeq: after, limit: 7 });
    forwards.push(...page.seqs);
    if (!page.hasMore) break;
    after = page.seqs.at(-1) as number;
  }
  expect(forwards).toEqual(range(1, total));
});

test("getHistory needs membership", async () => {
  const error = await outsider.request({ action: "getHistory", roomId: room() }, "history");
  expect(error).toMatchObject({ type: "error", code: "NOT_A_MEMBER", action: "getHistory" });
});

test("a page that would pass the gateway's 128 KB message limit is cut short, with hasMore", async () => {
  const big = `${stack.id}-big`;
  await client.request({ action: "joinRoom", roomId: big }, "joined");
  // 40 texts of 4,000 three-byte characters are 480 KB together.
  for (let i = 1; i <= 40; i++) {
    await client.request(
      { action: "sendMessage", roomId: big, text: "€".repeat(4000), clientMsgId: `b${i}` },
      "ack",
    );
  }
  const page = await client.request(
    { action: "getHistory", roomId: big, afterSeq: 0, limit: 100 },
    "history",
  );
  expect(page.hasMore).toBe(true);
  expect(page.messages.length).toBeGreaterThan(0);
  expect(page.messages.length).toBeLessThan(40);
  expect(page.messages.map((m: Frame) => m.seq)).toEqual(range(1, page.messages.length));
  expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThanOrEqual(128 * 1024);
});
