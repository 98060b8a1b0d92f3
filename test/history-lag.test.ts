/**
 * getHistory while PostgreSQL lags behind what Redis keeps (five recent messages here): a page never
 * skips a message. Where neither PostgreSQL nor Redis holds a range yet, the page stops before it with
 * `hasMore`, and a client that pages on until `hasMore` is false ends with every acked message, in
 * order, once: first with no persister running at all, then with one stopped mid-way.
 */
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;
let client: TestClient;
const room = () => `${stack.id}-lag`;
const acked: Frame[] = [];

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 1, persisters: 0, settings: { RECENT_HISTORY_SIZE: "5" } });
  client = await TestClient.connect(stack.url, { token: await stack.token("reader") });
  await client.request({ action: "joinRoom", roomId: room() }, "joined");
});

afterAll(async () => {
  await client?.close();
  await stack?.stop();
});

async function sendMany(from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) {
    const ack = await client.request(
      { action: "sendMessage", roomId: room(), text: `message ${i}`, clientMsgId: `l${i}` },
      "ack",
    );
    expect(ack).toMatchObject({ type: "ack", seq: i });
    acked.push(ack);
  }
}

async function page(query: Record<string, unknown>): Promise<{ seqs: number[]; hasMore: boolean }> {
  const answer = await client.request({ action: "getHistory", roomId: room(), ...query }, "history");
  expect(answer.type).toBe("history");
  return { seqs: (answer.messages as Frame[]).map((m) => m.seq), hasMore: answer.hasMore };
}

/** Pages forward from `afterSeq` as a catching-up client does, until hasMore is false or `pages` run out. */
async function catchUp(
  afterSeq: number,
  limit: number,
  pages = 10,
): Promise<{ seqs: number[]; done: boolean }> {
  const seqs: number[] = [];
  let cursor = afterSeq;
  for (let i = 0; i < pages; i++) {
    const next = await page({ afterSeq: cursor, limit });
    seqs.push(...next.seqs);
    cursor = seqs.at(-1) ?? cursor;
    if (!next.hasMore) return { seqs, done: true };
  }
  return { seqs, done: false };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function persister() {
  const found = stack.workers.find((w) => w.kind === "persister" && w.child.exitCode === null);
  if (!found) throw new Error("no persister is running");
  return found;
}

test("with nothing stored yet, pages stop where the recent messages begin, and say there is more", async () => {
  await sendMany(1, 20);
  // Redis keeps 16-20; 1-15 are only in Kafka.
  expect(await page({ afterSeq: 0, limit: 50 })).toEqual({ seqs: [], hasMore: true });
  expect(await page({ limit: 50 })).toEqual({ seqs: range(16, 20), hasMore: true });
  expect(await page({ beforeSeq: 16, limit: 50 })).toEqual({ seqs: [], hasMore: true });
  expect(await page({ afterSeq: 15 })).toEqual({ seqs: range(16, 20), hasMore: false });
  const early = await catchUp(0, 100, 3);
  expect(early).toEqual({ seqs: [], done: false });

  stack.spawnWorker("persister");
  await stack.waitForRows(room(), 20);
  expect(await catchUp(0, 100)).toEqual({ seqs: range(1, 20), done: true });
  expect(await page({ limit: 50 })).toEqual({ seqs: range(1, 20), hasMore: false });
});

test("with the persister stopped mid-way, a page ends at the gap and resumes once it is stored", async () => {
  const running = persister();
  running.child.kill("SIGTERM");
  await running.exited;
  await sendMany(21, 40);
  // PostgreSQL has 1-20, Redis 36-40: 21-35 are only in Kafka.
  expect(await page({ afterSeq: 15, limit: 100 })).toEqual({ seqs: range(16, 20), hasMore: true });
  expect(await page({ afterSeq: 20, limit: 100 })).toEqual({ seqs: [], hasMore: true });
  expect(await page({ beforeSeq: 38, limit: 10 })).toEqual({ seqs: [36, 37], hasMore: true });
  expect(await page({ beforeSeq: 30, limit: 10 })).toEqual({ seqs: [], hasMore: true });
  const partial = await catchUp(0, 7, 8);
  expect(partial.seqs).toEqual(range(1, 20));
  expect(partial.done).toBe(false);

  stack.spawnWorker("persister");
  await stack.waitForRows(room(), 40);
  expect(await catchUp(0, 7)).toEqual({ seqs: range(1, 40), done: true });
  expect(await page({ beforeSeq: 38, limit: 10 })).toEqual({ seqs: range(28, 37), hasMore: true });
  expect(await page({ afterSeq: 33, limit: 100 })).toEqual({ seqs: range(34, 40), hasMore: false });
  expect(acked).toHaveLength(40);
});
