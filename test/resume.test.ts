/**
 * `resume` (PROTOCOL.md v1.1) with real clients against the local stack: a client that reconnects
 * rejoins its rooms in one action and ends gap-free (no message missing, none twice, each room in seq
 * order), also in a reconnect storm while others keep sending, and is refused the rooms it may not
 * enter.
 */

import { sleep } from "../core/retry";
import type { Frame, TestClient } from "./support/client";
import { stackPerFile } from "./support/stack";

const session = stackPerFile({ fanoutWorkers: 1, persisters: 1 });
const { room } = session;

async function connect(userId: string): Promise<TestClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await session.connect(userId);
    } catch (error) {
      // A storm of reconnects may meet the gateway's new-connection throttle: back off and retry.
      if (attempt >= 20) throw error;
      await sleep(100 + Math.random() * 200);
    }
  }
}

/** The seqs of a room a connection received, live and in history frames, in arrival order. */
function seqsOf(client: TestClient, roomId: string): number[] {
  const out: number[] = [];
  for (const f of client.frames) {
    if (f.roomId !== roomId) continue;
    if (f.type === "message") out.push(f.seq);
    if (f.type === "history") out.push(...(f.messages as Frame[]).map((m) => m.seq));
  }
  return out;
}

const liveSeqs = (client: TestClient, roomId: string) =>
  client.frames.filter((f) => f.type === "message" && f.roomId === roomId).map((f) => f.seq as number);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function sendAll(sender: TestClient, roomId: string, count: number, tag: string): Promise<number> {
  let last = 0;
  for (let i = 0; i < count; i++) {
    const ack = await sender.request(
      { action: "sendMessage", roomId, text: `${tag} ${i}`, clientMsgId: `${tag}-${i}` },
      "ack",
    );
    expect(ack.type).toBe("ack");
    last = ack.seq;
  }
  return last;
}

test("resume answers joined then the missed history per room, then resumed with what failed", async () => {
  const [r1, r2, secret] = [room("one"), room("two"), room("secret")];
  const bob = await connect("rs-bob");
  const owner = await connect("rs-owner");
  await owner.request({ action: "createRoom", roomId: secret }, "created");
  let alice = await connect("rs-alice");
  for (const id of [r1, r2]) {
    await bob.request({ action: "joinRoom", roomId: id }, "joined");
    await alice.request({ action: "joinRoom", roomId: id }, "joined");
    await sendAll(bob, id, 5, `before-${id}`);
  }
  await alice.waitForMessages(r2, 5);
  await alice.close();
  const last1 = await sendAll(bob, r1, 7, "away1");
  const last2 = await sendAll(bob, r2, 3, "away2");

  alice = await connect("rs-alice");
  const resumed = await alice.request(
    {
      action: "resume",
      rooms: [
        { roomId: r1, afterSeq: 5 },
        { roomId: r2, afterSeq: 5 },
        { roomId: secret, afterSeq: 0 },
      ],
    },
    "resumed",
  );
  expect(resumed).toEqual({
    type: "resumed",
    rooms: [r1, r2],
    failed: [{ roomId: secret, code: "FORBIDDEN" }],
  });
  for (const [id, last] of [
    [r1, last1],
    [r2, last2],
  ] as const) {
    const frames = alice.frames.filter((f) => f.roomId === id);
    expect(frames.map((f) => f.type)).toEqual(["joined", "history"]);
    expect(frames[0]).toMatchObject({ lastSeq: last, lastReadSeq: 0 });
    expect(frames[1]).toMatchObject({ hasMore: false });
    expect(seqsOf(alice, id)).toEqual(range(6, last));
  }
  // Nothing of the private room reached the outsider.
  expect(alice.frames.filter((f) => f.roomId === secret && f.type !== "error")).toEqual([]);
  // Joined again: live messages follow.
  await bob.request({ action: "sendMessage", roomId: r1, text: "live", clientMsgId: "live" }, "ack");
  await alice.next((f) => f.type === "message" && f.text === "live");
});

test("a bad resume frame answers BAD_REQUEST with a sentence", async () => {
  const client = await connect("rs-bad");
  const tooMany = Array.from({ length: 51 }, (_, i) => ({ roomId: room(`many${i}`), afterSeq: 0 }));
  for (const frame of [
    { action: "resume" },
    { action: "resume", rooms: tooMany },
    { action: "resume", rooms: [{ roomId: "bad room", afterSeq: 0 }] },
    { action: "resume", rooms: [{ roomId: room("x"), afterSeq: -1 }] },
    { action: "resume", rooms: [], limit: 500 },
  ]) {
    const answer = await client.request(frame, "resumed");
    expect(answer).toMatchObject({ type: "error", code: "BAD_REQUEST", action: "resume" });
    expect(answer.message).toMatch(/\w+ \w+/);
  }
  expect(await client.request({ action: "resume", rooms: [] }, "resumed")).toEqual({
    type: "resumed",
    rooms: [],
    failed: [],
  });
});

test("a reconnect storm while others keep sending: every client ends gap-free, nothing twice, in order", async () => {
  const ROOMS = 3;
  const CLIENTS = 16;
  const ids = Array.from({ length: ROOMS }, (_, i) => room(`storm${i}`));
  const senders = await Promise.all(ids.map((_, i) => connect(`st-sender${i}`)));
  await Promise.all(
    senders.map((s, i) => s.request({ action: "joinRoom", roomId: ids[i] as string }, "joined")),
  );
  const users = Array.from({ length: CLIENTS }, (_, i) => `st-user${i}`);
  const first = await Promise.all(users.map((u) => connect(u)));
  await Promise.all(
    first.map(async (c) => {
      for (const id of ids)
        expect(await c.request({ action: "joinRoom", roomId: id }, "joined", 30_000)).toMatchObject({
          type: "joined",
        });
    }),
  );

  // Each sender keeps sending to its room (about 10 a second) until told to stop, retrying a send
  // that was not answered or answered INTERNAL with the same clientMsgId, as clients do.
  let sending = true;
  const lastAcked = ids.map(() => 0);
  const acked = ids.map(() => new Set<number>());
  const sendOnce = async (r: number, i: number): Promise<Frame> => {
    const frame = {
      action: "sendMessage",
      roomId: ids[r] as string,
      text: `storm ${i}`,
      clientMsgId: `s${r}-${i}`,
    };
    for (let attempt = 0; ; attempt++) {
      const answer = await (senders[r] as TestClient).request(frame, "ack", 30_000).catch(() => undefined);
      if (answer?.type === "ack") return answer;
      if (attempt >= 5)
        throw new Error(`send ${frame.clientMsgId} was never acked: ${JSON.stringify(answer)}`);
      await sleep(200);
    }
  };
  const loops = senders.map(async (_sender, r) => {
    for (let i = 0; sending; i++) {
      const { seq } = await sendOnce(r, i);
      lastAcked[r] = seq;
      acked[r]?.add(seq);
      await sleep(100);
    }
  });
  await sleep(1500);

  // Every client loses its network at once and comes straight back, resuming from what it has.
  const second = await Promise.all(
    first.map(async (old, i) => {
      old.terminate();
      await old.closed;
      const client = await connect(users[i] as string);
      const rooms = ids.map((id) => {
        const seen = seqsOf(old, id);
        let afterSeq = 0;
        while (seen.includes(afterSeq + 1)) afterSeq++;
        return { roomId: id, afterSeq };
      });
      const resumed = await client.request({ action: "resume", rooms, limit: 100 }, "resumed", 30_000);
      expect(resumed).toMatchObject({ type: "resumed", failed: [] });
      return client;
    }),
  );
  await sleep(2000);
  sending = false;
  await Promise.all(loops);

  for (let i = 0; i < CLIENTS; i++) {
    const [old, now] = [first[i] as TestClient, second[i] as TestClient];
    for (let r = 0; r < ROOMS; r++) {
      const id = ids[r] as string;
      const last = lastAcked[r] as number;
      await now.waitForMessages(id, 1);
      // Live messages reach the new connection up to the last one acked.
      const deadline = Date.now() + 20_000;
      while (!seqsOf(now, id).includes(last) && Date.now() < deadline) await sleep(50);
      const before = seqsOf(old, id);
      let kept = 0;
      while (before.includes(kept + 1)) kept++;
      const after = seqsOf(now, id);
      // What the client keeps: the old connection's gap-free prefix, then what resume and live brought.
      const all = [...before.filter((s) => s <= kept), ...after];
      expect({ user: users[i], room: r, seqs: [...all].sort((a, b) => a - b) }).toEqual({
        user: users[i],
        room: r,
        // Every acked message, each once (a seq carries no message only where two copies of a retry raced).
        seqs: [...(acked[r] as Set<number>)].sort((a, b) => a - b),
      });
      // Each connection received a room's live messages in seq order.
      for (const live of [liveSeqs(old, id), liveSeqs(now, id)]) {
        expect(live).toEqual([...live].sort((a, b) => a - b));
      }
    }
  }
}, 120_000);
