import type { KafkaMessage } from "kafkajs";
import pino from "pino";
import { BatchAbandonedError, type BatchOutcome } from "./persister-batch";
import {
  type BatchPayload,
  CoalescedCommits,
  CommitTracker,
  type FetchedBatch,
  offsetAfter,
} from "./persister-commits";

const silent = pino({ level: "silent" });
const stored: BatchOutcome = { written: 1, duplicates: 0, deadLettered: 0 };

function batch(partition: number, first: number, last: number): FetchedBatch {
  const messages = [];
  for (let o = first; o <= last; o++) messages.push({ offset: String(o) } as KafkaMessage);
  return {
    topic: "messages",
    partition,
    messages,
    firstOffset: () => String(first),
    lastOffset: () => String(last),
  };
}

function payload(b: FetchedBatch, resolved: string[] = []): BatchPayload {
  return {
    batch: b,
    resolveOffset: (offset) => void resolved.push(offset),
    heartbeat: async () => undefined,
    isStale: () => false,
  };
}

function deferred() {
  let resolve: () => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A tracker whose store waits until the test settles each batch. */
function tracker(ahead?: number) {
  const events: string[] = [];
  const gates = new Map<FetchedBatch, ReturnType<typeof deferred>>();
  const gate = (b: FetchedBatch) => {
    if (!gates.has(b)) gates.set(b, deferred());
    return gates.get(b) as ReturnType<typeof deferred>;
  };
  const t = new CommitTracker({
    consumer: {
      commitOffsets: async (offsets) => {
        for (const o of offsets) events.push(`commit ${o.partition}@${o.offset}`);
      },
      seek: (to) => void events.push(`seek ${to.partition}@${to.offset}`),
    },
    logger: silent,
    store: async (b) => {
      events.push(`store ${b.partition}:${b.firstOffset()}`);
      await gate(b).promise;
      return stored;
    },
    ...(ahead !== undefined ? { ahead } : {}),
  });
  return { t, events, gate };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("offsetAfter", () => {
  test("the commit names the next offset to read, past 2^53 too", () => {
    expect(offsetAfter("41")).toBe("42");
    expect(offsetAfter("9007199254740993")).toBe("9007199254740994");
  });
});

describe("CommitTracker", () => {
  test("eachBatch returns before the write; the fetch position moves on at once, the commit only after the store", async () => {
    const { t, events, gate } = tracker();
    const resolved: string[] = [];
    const b = batch(0, 10, 12);
    await t.eachBatch(payload(b, resolved));
    await settle();
    expect(resolved).toEqual(["12"]);
    expect(events).toEqual(["store 0:10"]);
    gate(b).resolve();
    await t.drained();
    expect(events).toEqual(["store 0:10", "commit 0@13"]);
  });

  test("a partition's batches are stored and committed in fetch order; partitions do not wait for each other", async () => {
    const { t, events, gate } = tracker();
    const a1 = batch(0, 0, 1);
    const a2 = batch(0, 2, 3);
    const b1 = batch(1, 0, 4);
    await t.eachBatch(payload(a1));
    await t.eachBatch(payload(a2));
    await t.eachBatch(payload(b1));
    await settle();
    expect(events).toEqual(["store 0:0", "store 1:0"]);
    gate(a2).resolve();
    gate(b1).resolve();
    await settle();
    expect(events).toEqual(["store 0:0", "store 1:0", "commit 1@5"]);
    gate(a1).resolve();
    await t.drained();
    expect(events).toEqual(["store 0:0", "store 1:0", "commit 1@5", "commit 0@2", "store 0:2", "commit 0@4"]);
  });

  test("eachBatch waits once its partition is more than `ahead` batches behind", async () => {
    const { t, gate } = tracker(1);
    const first = batch(0, 0, 0);
    await t.eachBatch(payload(first));
    let returned = false;
    const next = batch(0, 1, 1);
    const second = t.eachBatch(payload(next)).then(() => {
      returned = true;
    });
    await settle();
    expect(returned).toBe(false);
    gate(first).resolve();
    await second;
    expect(returned).toBe(true);
    gate(next).resolve();
    await t.drained();
  });

  test("a failed batch is fetched again from its first offset, and the batches queued behind it are dropped", async () => {
    const { t, events, gate } = tracker();
    const failing = batch(0, 5, 6);
    await t.eachBatch(payload(failing));
    await t.eachBatch(payload(batch(0, 7, 8)));
    gate(failing).reject(new Error("database gone"));
    await t.drained();
    expect(events).toEqual(["store 0:5", "seek 0@5"]);
    // The refetched batch is stored as any other.
    const again = batch(0, 5, 6);
    await t.eachBatch(payload(again));
    gate(again).resolve();
    await t.drained();
    expect(events.slice(2)).toEqual(["store 0:5", "commit 0@7"]);
  });

  test("a batch abandoned on shutdown is neither committed nor sought back: the group redelivers it", async () => {
    const { t, events, gate } = tracker();
    const b = batch(0, 0, 0);
    await t.eachBatch(payload(b));
    gate(b).reject(new BatchAbandonedError("insert failed during shutdown"));
    await t.drained();
    expect(events).toEqual(["store 0:0"]);
  });

  test("empty and stale batches are not queued", async () => {
    const { t, events } = tracker();
    const resolved: string[] = [];
    await t.eachBatch(payload({ ...batch(0, 0, 0), messages: [] }, resolved));
    await t.eachBatch({ ...payload(batch(0, 0, 0), resolved), isStale: () => true });
    await t.drained();
    expect(events).toEqual([]);
    expect(resolved).toEqual([]);
  });
});

test("commits asked for while one is in flight go in the next request together, the highest offset of each partition", async () => {
  const requests: { partition: number; offset: string }[][] = [];
  const inFlight: ReturnType<typeof deferred>[] = [];
  const commits = new CoalescedCommits({
    commitOffsets: async (offsets) => {
      requests.push(offsets.map(({ partition, offset }) => ({ partition, offset })));
      const d = deferred();
      inFlight.push(d);
      await d.promise;
    },
  });
  const first = commits.commit("messages", 0, "10");
  const queued = [
    commits.commit("messages", 1, "5"),
    commits.commit("messages", 2, "7"),
    commits.commit("messages", 1, "9"),
  ];
  expect(requests).toEqual([[{ partition: 0, offset: "10" }]]);
  inFlight[0]?.resolve();
  await first;
  await new Promise((r) => setImmediate(r));
  expect(requests[1]).toEqual([
    { partition: 1, offset: "9" },
    { partition: 2, offset: "7" },
  ]);
  inFlight[1]?.resolve();
  await Promise.all(queued);
  expect(requests).toHaveLength(2);
});

test("a commit request that fails fails every commit it carried, and the next ones still go", async () => {
  let calls = 0;
  const commits = new CoalescedCommits({
    commitOffsets: async () => {
      calls++;
      if (calls === 1) throw new Error("not the coordinator");
    },
  });
  await expect(commits.commit("messages", 0, "3")).rejects.toThrow("not the coordinator");
  await expect(commits.commit("messages", 0, "4")).resolves.toBeUndefined();
  expect(calls).toBe(2);
});
