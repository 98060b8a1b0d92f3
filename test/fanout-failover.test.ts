/**
 * Two fan-out workers and two persisters share the work; one fan-out worker is killed (SIGKILL)
 * mid-stream. No client receives a message twice or out of order, every gap left by the dead worker
 * is filled by getHistory afterSeq, and PostgreSQL holds every acked message exactly once.
 */
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

let stack: TestStack;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({ fanoutWorkers: 2, persisters: 2 });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

/** Fills a client's gaps with getHistory afterSeq, as a client that sees a gap does. */
async function catchUp(client: TestClient, roomId: string, lastSeq: number): Promise<Frame[]> {
  const bySeq = new Map<number, Frame>(client.messages(roomId).map((m) => [m.seq, m]));
  let after = 0;
  while (after < lastSeq) {
    if (bySeq.has(after + 1)) {
      after++;
      continue;
    }
    const page = await client.request(
      { action: "getHistory", roomId, afterSeq: after, limit: 100 },
      "history",
    );
    expect(page.type).toBe("history");
    for (const m of page.messages as Frame[]) if (!bySeq.has(m.seq)) bySeq.set(m.seq, m);
    if (!bySeq.has(after + 1)) throw new Error(`seq ${after + 1} of ${roomId} is in no history page`);
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

test("a fan-out worker killed mid-stream: no duplicate, no out-of-order delivery, every gap fillable, rows exact", async () => {
  const rooms = [0, 1, 2, 3].map((i) => `${stack.id}-fo-${i}`);
  const members: TestClient[][] = [];
  for (const [i, room] of rooms.entries()) {
    const list: TestClient[] = [];
    for (let j = 0; j < 3; j++) {
      const client = await TestClient.connect(stack.url, { token: await stack.token(`f${i}${j}`) });
      clients.push(client);
      await client.request({ action: "joinRoom", roomId: room }, "joined");
      list.push(client);
    }
    members.push(list);
  }

  const perRoom = 60;
  const acks = new Map<string, Map<number, Frame>>(rooms.map((r) => [r, new Map()]));
  let sent = 0;
  const victim = stack.workers.find((w) => w.kind === "fanout");
  if (!victim) throw new Error("no fan-out worker");
  let killedAt = -1;
  await Promise.all(
    rooms.map(async (room, i) => {
      const sender = members[i]?.[0] as TestClient;
      for (let k = 0; k < perRoom; k++) {
        const ack = await sender.request(
          { action: "sendMessage", roomId: room, text: `n${k}`, clientMsgId: `k${k}` },
          "ack",
          20_000,
        );
        expect(ack.type).toBe("ack");
        acks.get(room)?.set(ack.seq, ack);
        if (++sent === Math.floor((rooms.length * perRoom) / 3)) {
          victim.child.kill("SIGKILL");
          killedAt = sent;
        }
      }
    }),
  );
  expect(killedAt).toBeGreaterThan(0);
  expect(await victim.exited).toBe("SIGKILL");

  let gaps = 0;
  for (const [i, room] of rooms.entries()) {
    const acked = acks.get(room) as Map<number, Frame>;
    expect([...acked.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: perRoom }, (_, k) => k + 1));
    for (const client of members[i] ?? []) {
      // The survivor takes the dead worker's shards within its lease (1.5 s here) and delivers the rest.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && (client.messages(room).at(-1)?.seq ?? 0) < perRoom) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const received = client.messages(room).map((m) => m.seq as number);
      expect(new Set(received).size).toBe(received.length);
      expect([...received].sort((a, b) => a - b)).toEqual(received);
      expect(received.at(-1)).toBe(perRoom);
      gaps += perRoom - received.length;
      const complete = await catchUp(client, room, perRoom);
      expect(complete.map((m) => m.seq)).toEqual(Array.from({ length: perRoom }, (_, k) => k + 1));
      for (const m of complete) expect(m.messageId).toBe(acked.get(m.seq)?.messageId);
    }
    await stack.waitForRows(room, perRoom);
    const rows = await stack.rows(room);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: perRoom }, (_, k) => k + 1));
    expect(rows.map((r) => r.messageId)).toEqual(rows.map((r) => acked.get(r.seq)?.messageId));
  }
  process.stderr.write(
    `fan-out failover: killed one of two workers after ${killedAt} of ${rooms.length * perRoom} messages; ` +
      `${gaps} deliveries were left to getHistory\n`,
  );
});
