/**
 * The chat domain through its ports, with in-memory fakes at each port's edge: the rules that do not
 * depend on a real Redis, DynamoDB, Kafka or PostgreSQL (those are the integration tests' job).
 */
import { createHash } from "node:crypto";
import { type ChatDeps, getHistory, joinRoom, leaveRoom, newMessageId, sendMessage } from "./chat";
import type {
  AdmitOutcome,
  ConnectionGateway,
  ConnectionStore,
  EventLog,
  MessageBus,
  MessageHistory,
  PresenceRegistry,
  PresenceUser,
  RoomDirectory,
  RoomInfo,
  RoomKind,
  RoomRole,
  SendLedger,
  SendRecord,
  UserRoom,
} from "./ports";
import { getPresence, TYPING_STALE_MS, typing } from "./presence";
import { resume } from "./resume";
import { createRoom, directRoomId, invite, listRooms, markRead, openDirect, removeMember } from "./rooms";
import type { ChatMessage } from "./schemas";

/** A ledger in memory: one counter per room, one record per (sender, clientMsgId). */
class FakeLedger implements SendLedger {
  counters = new Map<string, number>();
  sends = new Map<string, SendRecord>();
  /** Called between reading and answering currentSeq: lets a test accept a message in between. */
  onRead: (() => void) | undefined;
  async nextSeq(roomId: string, seed: () => Promise<number>): Promise<number> {
    const next = (this.counters.get(roomId) ?? (await seed())) + 1;
    this.counters.set(roomId, next);
    return next;
  }
  async currentSeq(roomId: string): Promise<number | undefined> {
    const value = this.counters.get(roomId);
    this.onRead?.();
    return value;
  }
  async recordSend(record: SendRecord) {
    const existing = this.sends.get(`${record.senderId}/${record.clientMsgId}`);
    if (existing) return { recorded: false as const, existing };
    this.sends.set(`${record.senderId}/${record.clientMsgId}`, record);
    return { recorded: true as const };
  }
}

/** A bus in memory: admits everything (or what `limited` says), remembers nothing unless told. */
class FakeBus implements MessageBus {
  published: { message: ChatMessage; retry: boolean }[] = [];
  skipped: number[] = [];
  logged: string[] = [];
  members = new Set<string>();
  recent: ChatMessage[] = [];
  limited = false;
  cached: AdmitOutcome | undefined;
  async admit(
    sender: { connectionId: string },
    _clientMsgId: string,
    _rate: unknown,
    memberOf?: string,
  ): Promise<AdmitOutcome> {
    if (memberOf !== undefined && !this.members.has(`${memberOf}/${sender.connectionId}`))
      return { status: "unknown-member" };
    if (this.cached) return this.cached;
    return this.limited ? { status: "rate-limited" } : { status: "admitted" };
  }
  async publish(message: ChatMessage, _digest: string, retry = false) {
    this.published.push({ message, retry });
  }
  async skip(_roomId: string, seq: number) {
    this.skipped.push(seq);
  }
  async markLogged(senderId: string, clientMsgId: string) {
    this.logged.push(`${senderId}/${clientMsgId}`);
  }
  async startAt() {}
  notified: { roomId: string; connectionIds: string[]; frame: object }[] = [];
  async notify(roomId: string, connectionIds: string[], frame: object) {
    this.notified.push({ roomId, connectionIds, frame });
  }
  announced: { roomId: string; frame: object; options?: { except?: string; dropAfter?: number } }[] = [];
  async announce(roomId: string, frame: object, options?: { except?: string; dropAfter?: number }) {
    this.announced.push({ roomId, frame, ...(options ? { options } : {}) });
  }
  async meter() {
    return !this.limited;
  }
  async publishedSeq() {
    return undefined;
  }
  async knownMember(roomId: string, connectionId: string) {
    return this.members.has(`${roomId}/${connectionId}`);
  }
  async rememberMember(roomId: string, connectionId: string) {
    this.members.add(`${roomId}/${connectionId}`);
  }
  async forgetMember() {}
  async bumpMembership() {}
  async recentFloor() {
    return this.recent[0]?.seq;
  }
  async recentRange(
    _roomId: string,
    after: number,
    before: number,
    limit: number,
    from: "oldest" | "newest",
  ) {
    const inRange = this.recent.filter((m) => m.seq > after && m.seq < before);
    return from === "oldest" ? inRange.slice(0, limit) : inRange.slice(-limit);
  }
}

class FakeLog implements EventLog {
  appended: ChatMessage[] = [];
  async append(messages: ChatMessage[]) {
    this.appended.push(...messages);
  }
  async disconnect() {}
}

class FakeHistory implements MessageHistory {
  stored: ChatMessage[] = [];
  async range(_roomId: string, q: { afterSeq?: number; beforeSeq?: number; limit: number }) {
    if (q.afterSeq !== undefined)
      return this.stored.filter((m) => m.seq > (q.afterSeq ?? 0)).slice(0, q.limit);
    return this.stored.filter((m) => m.seq < (q.beforeSeq ?? Number.POSITIVE_INFINITY)).slice(-q.limit);
  }
  async maxSeq() {
    return this.stored.at(-1)?.seq ?? 0;
  }
  async disconnect() {}
}

/** Rooms in memory, with the same rules as the DynamoDB directory. */
class FakeRooms implements RoomDirectory {
  rooms = new Map<string, RoomInfo>();
  users = new Map<string, UserRoom>();
  async room(roomId: string) {
    return this.rooms.get(roomId);
  }
  async createRoom(
    room: { roomId: string; kind: RoomKind; owner?: string },
    users: { userId: string; role: RoomRole }[],
  ) {
    if (this.rooms.has(room.roomId)) return false;
    this.rooms.set(room.roomId, { ...room, memberCount: users.length });
    for (const u of users)
      this.users.set(`${u.userId}/${room.roomId}`, {
        roomId: room.roomId,
        kind: room.kind,
        role: u.role,
        lastReadSeq: 0,
      });
    return true;
  }
  async userRoom(userId: string, roomId: string) {
    return this.users.get(`${userId}/${roomId}`);
  }
  async addUser(
    room: { roomId: string; kind: RoomKind },
    userId: string,
    role: "member" | "invited",
    max: number,
  ) {
    const key = `${userId}/${room.roomId}`;
    const current = this.users.get(key);
    if (current) {
      if (current.role === "invited" && role === "member") current.role = "member";
      return current;
    }
    const info = this.rooms.get(room.roomId) ?? { roomId: room.roomId, kind: room.kind, memberCount: 0 };
    if (info.memberCount >= max) return "full" as const;
    this.rooms.set(room.roomId, { ...info, memberCount: info.memberCount + 1 });
    const added = { roomId: room.roomId, kind: room.kind, role, lastReadSeq: 0 };
    this.users.set(key, added);
    return added;
  }
  async removeUser(roomId: string, userId: string) {
    return this.users.delete(`${userId}/${roomId}`);
  }
  async userRooms(userId: string) {
    return [...this.users].filter(([k]) => k.startsWith(`${userId}/`)).map(([, v]) => v);
  }
  async markRead(userId: string, roomId: string, seq: number) {
    const u = this.users.get(`${userId}/${roomId}`);
    if (!u) return undefined;
    u.lastReadSeq = Math.max(u.lastReadSeq, seq);
    return u.lastReadSeq;
  }
}

/** Presence in memory, with the same counting as the Redis registry; time passes when a test says. */
class FakePresence implements PresenceRegistry {
  connections = new Map<string, PresenceUser>();
  counts = new Map<string, number>();
  names = new Map<string, string | undefined>();
  due = new Map<string, number>();
  typingUntil = new Map<string, number>();
  clock = 0;
  async enter(roomId: string, connectionId: string, user: PresenceUser) {
    const key = `${roomId}/${connectionId}`;
    this.names.set(`${roomId}/${user.userId}`, user.name);
    if (this.connections.has(key)) return false;
    this.connections.set(key, user);
    const userKey = `${roomId}/${user.userId}`;
    const count = (this.counts.get(userKey) ?? 0) + 1;
    this.counts.set(userKey, count);
    const within = this.due.delete(userKey);
    return count === 1 && !within;
  }
  async leave(roomId: string, connectionId: string, graceMs: number) {
    const user = this.connections.get(`${roomId}/${connectionId}`);
    if (!user) return undefined;
    this.connections.delete(`${roomId}/${connectionId}`);
    const userKey = `${roomId}/${user.userId}`;
    const count = (this.counts.get(userKey) ?? 1) - 1;
    this.counts.set(userKey, count);
    if (count > 0) return undefined;
    if (graceMs > 0) {
      this.due.set(userKey, this.clock + graceMs);
      return undefined;
    }
    this.counts.delete(userKey);
    return user;
  }
  async leaveAll(connectionId: string, graceMs: number) {
    for (const key of [...this.connections.keys()]) {
      const [roomId, id] = key.split("/") as [string, string];
      if (id === connectionId) await this.leave(roomId, id, graceMs);
    }
  }
  async list(roomId: string) {
    return [...this.counts.keys()]
      .filter((k) => k.startsWith(`${roomId}/`))
      .map((k) => k.slice(roomId.length + 1))
      .sort()
      .map((userId) => {
        const name = this.names.get(`${roomId}/${userId}`);
        return name === undefined ? { userId } : { userId, name };
      });
  }
  async expired() {
    const out: { roomId: string; user: PresenceUser }[] = [];
    for (const [key, at] of this.due) {
      if (at > this.clock) continue;
      this.due.delete(key);
      if ((this.counts.get(key) ?? 0) > 0) continue;
      this.counts.delete(key);
      const [roomId, userId] = key.split("/") as [string, string];
      out.push({ roomId, user: { userId } });
    }
    return out;
  }
  async suspects() {
    return [];
  }
  async recheck() {}
  async mayShowTyping(roomId: string, userId: string, everyMs: number) {
    const key = `${roomId}/${userId}`;
    if ((this.typingUntil.get(key) ?? -1) > this.clock) return false;
    this.typingUntil.set(key, this.clock + everyMs);
    return true;
  }
}

/** The management API in memory: what was posted to each connection, in order. */
class FakeGateway implements ConnectionGateway {
  posted: { connectionId: string; frame: { type: string; [k: string]: unknown } }[] = [];
  async post(connectionId: string, data: string) {
    this.posted.push({ connectionId, frame: JSON.parse(data) });
    return "ok" as const;
  }
  async close() {}
}

/** Memberships in memory; every connection is a member of room "r" from the start. */
function memoryStore(): ConnectionStore {
  const joined = new Set<string>();
  return {
    putConnection: async () => undefined,
    connectionsOf: async () => [],
    removeConnection: async () => [],
    joinRoom: async (connectionId, roomId) => {
      joined.add(`${roomId}/${connectionId}`);
    },
    leaveRoom: async (connectionId, roomId) => {
      joined.delete(`${roomId}/${connectionId}`);
    },
    isMember: async (connectionId, roomId) => roomId === "r" || joined.has(`${roomId}/${connectionId}`),
    listMembers: async function* () {},
  };
}

function world() {
  const ledger = new FakeLedger();
  const bus = new FakeBus();
  const log = new FakeLog();
  const history = new FakeHistory();
  let ids = 0;
  const rooms = new FakeRooms();
  const store = memoryStore();
  const presence = new FakePresence();
  const gateway = new FakeGateway();
  const deps: ChatDeps = {
    store: async () => store,
    bus: async () => bus,
    ledger: async () => ledger,
    log: async () => log,
    history: async () => history,
    rooms: async () => rooms,
    presence: async () => presence,
    gateway: async () => gateway,
    presenceTimes: { graceSeconds: 30, idleSeconds: 600 },
    rateLimit: { scope: "connection", perSecond: 20, burst: 40 },
    actionRateLimit: { scope: "user", perSecond: 10, burst: 30 },
    limits: { maxMembers: 3, maxConnectionsPerUser: 10 },
    connectionTtlSeconds: 60,
    newId: () => `m${++ids}`,
    now: () => Date.UTC(2026, 11, 2),
  };
  return { ledger, bus, log, history, rooms, store, presence, gateway, deps };
}

const alice = { connectionId: "c1", userId: "alice", name: "Alice" };
const frame = (roomId: string, text: string, clientMsgId: string) =>
  ({ action: "sendMessage", roomId, text, clientMsgId }) as const;

describe("sendMessage", () => {
  test("issues seqs from the ledger, publishes, appends, then acks", async () => {
    const { deps, bus, log, ledger } = world();
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toEqual({
      ok: true,
      messageId: "m1",
      seq: 1,
    });
    expect(await sendMessage(deps, alice, frame("r", "two", "b"))).toEqual({
      ok: true,
      messageId: "m2",
      seq: 2,
    });
    expect(bus.published.map((p) => [p.message.seq, p.retry])).toEqual([
      [1, false],
      [2, false],
    ]);
    expect(log.appended.map((m) => m.text)).toEqual(["one", "two"]);
    expect(bus.logged).toEqual(["alice/a", "alice/b"]);
    expect(ledger.counters.get("r")).toBe(2);
  });

  test("a retry the ledger knows (Redis forgot it) answers its first ack, skips the seq it drew, and goes out only as a retry", async () => {
    const { deps, bus, log } = world();
    const first = await sendMessage(deps, alice, frame("r", "one", "a"));
    const again = await sendMessage(deps, alice, frame("r", "one", "a"));
    expect(again).toEqual(first);
    expect(bus.skipped).toEqual([2]);
    expect(await sendMessage(deps, alice, frame("r", "two", "b"))).toMatchObject({ ok: true, seq: 3 });
    expect(bus.published.map((p) => [p.message.seq, p.retry])).toEqual([
      [1, false],
      [1, true],
      [3, false],
    ]);
    expect(log.appended.map((m) => m.messageId)).toEqual(["m1", "m1", "m3"]);
  });

  test("a clientMsgId reused for another room or another text is a CONFLICT, and nothing is sent", async () => {
    const { deps, bus, log } = world();
    await sendMessage(deps, alice, frame("r", "one", "a"));
    await joinRoom(deps, alice, "s");
    expect(await sendMessage(deps, alice, frame("s", "one", "a"))).toEqual({ ok: false, code: "CONFLICT" });
    expect(await sendMessage(deps, alice, frame("r", "other", "a"))).toEqual({ ok: false, code: "CONFLICT" });
    expect(bus.published).toHaveLength(1);
    expect(log.appended).toHaveLength(1);
    // The refused reuse drew seq 1 of room s, skipped. Another user may use the same id.
    const bob = { connectionId: "c2", userId: "bob" };
    await joinRoom(deps, bob, "s");
    expect(await sendMessage(deps, bob, frame("s", "one", "a"))).toMatchObject({ ok: true, seq: 2 });
  });

  test("a retry Redis remembers is answered from Redis, appending only what Kafka never confirmed", async () => {
    const { deps, bus, log, ledger } = world();
    const pending: ChatMessage = {
      messageId: "m9",
      roomId: "r",
      seq: 9,
      senderId: "alice",
      text: "one",
      sentAt: "2026-12-02T00:00:00.000Z",
      clientMsgId: "a",
    };
    const digest = "mX6yO9bLckFq1Kz8Sc7cXw"; // not the digest of "one": answers CONFLICT
    bus.cached = { status: "duplicate", sent: { messageId: "m9", roomId: "r", seq: 9, textDigest: digest } };
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toEqual({ ok: false, code: "CONFLICT" });

    const real = createHash("sha256").update("one").digest("base64url").slice(0, 22);
    bus.cached = {
      status: "duplicate",
      sent: { messageId: "m9", roomId: "r", seq: 9, textDigest: real },
      unlogged: pending,
    };
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toEqual({
      ok: true,
      messageId: "m9",
      seq: 9,
    });
    expect(log.appended).toEqual([pending]);
    bus.cached = { status: "duplicate", sent: { messageId: "m9", roomId: "r", seq: 9, textDigest: real } };
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toEqual({
      ok: true,
      messageId: "m9",
      seq: 9,
    });
    expect(log.appended).toHaveLength(1);
    expect(ledger.counters.size).toBe(0);
  });

  test("a rate-limited send draws no seq and touches no ledger; its retry is answered once allowed", async () => {
    const { deps, bus, ledger } = world();
    await sendMessage(deps, alice, frame("r", "one", "a"));
    bus.limited = true;
    let writes = 0;
    const recordSend = ledger.recordSend.bind(ledger);
    ledger.recordSend = (...args) => {
      writes++;
      return recordSend(...args);
    };
    expect(await sendMessage(deps, alice, frame("r", "two", "b"))).toEqual({
      ok: false,
      code: "RATE_LIMITED",
    });
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toEqual({
      ok: false,
      code: "RATE_LIMITED",
    });
    expect(writes).toBe(0);
    bus.limited = false;
    // This bus remembers nothing, so the ledger refuses the retry and its drawn seq is skipped.
    expect(await sendMessage(deps, alice, frame("r", "one", "a"))).toMatchObject({ ok: true, seq: 1 });
    expect(ledger.counters.get("r")).toBe(2);
    expect(bus.skipped).toEqual([2]);
  });

  test("a room the ledger never counted starts after the highest stored seq", async () => {
    const { deps, history } = world();
    history.stored = [1, 2, 3].map((seq) => ({
      messageId: `old${seq}`,
      roomId: "r",
      seq,
      senderId: "bob",
      text: "old",
      sentAt: "2026-12-01T00:00:00.000Z",
      clientMsgId: `o${seq}`,
    }));
    expect(await sendMessage(deps, alice, frame("r", "new", "a"))).toMatchObject({ seq: 4 });
  });
});

describe("joinRoom", () => {
  test("answers the seq read after the membership is recorded, and records the one read before", async () => {
    const { deps, ledger, store } = world();
    ledger.counters.set("r", 5);
    let reads = 0;
    // A message is accepted while the join is under way: after the first read of the seq.
    ledger.onRead = () => {
      if (++reads === 1) ledger.counters.set("r", 6);
    };
    const recorded: number[] = [];
    const watching: ConnectionStore = {
      ...store,
      joinRoom: async (_c, _r, _u, _e, joinedSeq) => {
        recorded.push(joinedSeq ?? 0);
      },
    };
    const answer = await joinRoom(
      { ...deps, store: async () => watching, connectionTtlSeconds: 60 },
      alice,
      "r",
    );
    expect(recorded).toEqual([5]);
    expect(answer).toEqual({ ok: true, lastSeq: 6, lastReadSeq: 0 });
  });
});

describe("access", () => {
  test("a private room takes its owner and invitees only, a public room anyone up to its limit", async () => {
    const { deps, rooms, bus } = world();
    await rooms.createRoom({ roomId: "p", kind: "private", owner: "owner" }, [
      { userId: "owner", role: "owner" },
      { userId: "alice", role: "invited" },
    ]);
    const mallory = { connectionId: "c9", userId: "mallory" };
    expect(await joinRoom(deps, mallory, "p")).toEqual({ ok: false, code: "FORBIDDEN" });
    expect(await sendMessage(deps, mallory, frame("p", "hi", "m1"))).toEqual({
      ok: false,
      code: "FORBIDDEN",
    });
    expect(await getHistory(deps, mallory, { action: "getHistory", roomId: "p" })).toEqual({
      ok: false,
      code: "FORBIDDEN",
    });
    expect(await joinRoom(deps, alice, "p")).toMatchObject({ ok: true });
    expect((await rooms.userRoom("alice", "p"))?.role).toBe("member");
    // The direct prefix is no one's to take as a public room.
    expect(await joinRoom(deps, alice, "dm.someone")).toEqual({ ok: false, code: "FORBIDDEN" });
    // A public room of three member users refuses a fourth.
    for (const userId of ["u1", "u2", "u3"]) {
      expect(await joinRoom(deps, { connectionId: userId, userId }, "pub")).toMatchObject({ ok: true });
    }
    expect(await joinRoom(deps, { connectionId: "u4", userId: "u4" }, "pub")).toEqual({
      ok: false,
      code: "ROOM_FULL",
    });
    bus.limited = true;
    expect(await joinRoom(deps, alice, "pub2")).toEqual({ ok: false, code: "RATE_LIMITED" });
  });
});

describe("getHistory", () => {
  const message = (seq: number): ChatMessage => ({
    messageId: `m${seq}`,
    roomId: "r",
    seq,
    senderId: "bob",
    text: `t${seq}`,
    sentAt: "2026-12-02T00:00:00.000Z",
    clientMsgId: `c${seq}`,
  });

  test("stops with hasMore where PostgreSQL has not caught up with Redis's window, forwards and back", async () => {
    const { deps, bus, history } = world();
    bus.members.add("r/c1");
    history.stored = [1, 2, 3].map(message);
    bus.recent = [8, 9, 10].map(message);
    const page = (q: { afterSeq?: number; beforeSeq?: number; limit?: number }) =>
      getHistory(deps, alice, { action: "getHistory", roomId: "r", ...q });
    const seqs = async (q: Parameters<typeof page>[0]) => {
      const out = await page(q);
      if (!out.ok) throw new Error(out.code);
      return { seqs: out.messages.map((m) => m.seq), hasMore: out.hasMore };
    };
    expect(await seqs({ afterSeq: 0, limit: 10 })).toEqual({ seqs: [1, 2, 3], hasMore: true });
    expect(await seqs({ afterSeq: 3, limit: 10 })).toEqual({ seqs: [], hasMore: true });
    expect(await seqs({ afterSeq: 7, limit: 10 })).toEqual({ seqs: [8, 9, 10], hasMore: false });
    expect(await seqs({ limit: 10 })).toEqual({ seqs: [8, 9, 10], hasMore: true });
    expect(await seqs({ beforeSeq: 8, limit: 10 })).toEqual({ seqs: [], hasMore: true });

    // Once stored, the same pages are whole.
    history.stored = [1, 2, 3, 4, 5, 6, 7, 8].map(message);
    expect(await seqs({ afterSeq: 0, limit: 10 })).toEqual({ seqs: range(1, 10), hasMore: false });
    expect(await seqs({ limit: 10 })).toEqual({ seqs: range(1, 10), hasMore: false });
  });

  test("a seq that carries no message is no gap once PostgreSQL has passed it", async () => {
    const { deps, bus, history } = world();
    bus.members.add("r/c1");
    history.stored = [1, 2, 4, 5].map(message);
    bus.recent = [4, 5].map(message);
    const out = await getHistory(deps, alice, { action: "getHistory", roomId: "r", limit: 10 });
    expect(out).toMatchObject({ ok: true, hasMore: false });
    if (out.ok) expect(out.messages.map((m) => m.seq)).toEqual([1, 2, 4, 5]);
  });
});

const stored = (seq: number): ChatMessage => ({
  messageId: `m${seq}`,
  roomId: "r",
  seq,
  senderId: "bob",
  text: `text ${seq}`,
  sentAt: "2026-12-02T00:00:00.000Z",
  clientMsgId: `b${seq}`,
});

describe("resume", () => {
  test("each room answers joined, then the messages after the client's seq up to where the fan-out takes over", async () => {
    const { deps, history, ledger, gateway, rooms } = world();
    history.stored = range(1, 8).map(stored);
    ledger.counters.set("r", 8);
    await rooms.createRoom({ roomId: "p", kind: "private", owner: "owner" }, [
      { userId: "owner", role: "owner" },
    ]);
    // A message accepted while the membership is written is the fan-out's, not history's.
    ledger.onRead = () => {
      ledger.onRead = undefined;
      ledger.counters.set("r", 9);
    };
    const out = await resume(deps, alice, {
      rooms: [
        { roomId: "r", afterSeq: 5 },
        { roomId: "p", afterSeq: 0 },
        { roomId: "r", afterSeq: 0 },
      ],
    });
    expect(out).toEqual({
      ok: true,
      rooms: ["r"],
      failed: [{ roomId: "p", code: "FORBIDDEN" }],
      gone: false,
    });
    const frames = gateway.posted.map((p) => p.frame);
    expect(frames.map((f) => f.type)).toEqual(["joined", "history"]);
    expect(frames[0]).toMatchObject({ roomId: "r", lastSeq: 9 });
    expect(frames[1]).toMatchObject({ roomId: "r", hasMore: false });
    const messages = (frames[1]?.messages ?? []) as { seq: number }[];
    expect(messages.map((m) => m.seq)).toEqual([6, 7, 8]);
  });

  test("a long absence answers the oldest page with hasMore; the whole action draws one token", async () => {
    const { deps, history, ledger, gateway, bus } = world();
    history.stored = range(1, 30).map(stored);
    ledger.counters.set("r", 30);
    const out = await resume(deps, alice, { rooms: [{ roomId: "r", afterSeq: 0 }], limit: 10 });
    expect(out).toMatchObject({ ok: true, rooms: ["r"] });
    const page = gateway.posted[1]?.frame as unknown as { messages: { seq: number }[]; hasMore: boolean };
    expect(page.messages.map((m) => m.seq)).toEqual(range(1, 10));
    expect(page.hasMore).toBe(true);
    bus.limited = true;
    expect(await resume(deps, alice, { rooms: [{ roomId: "r", afterSeq: 0 }] })).toEqual({
      ok: false,
      code: "RATE_LIMITED",
    });
  });
});

describe("presence", () => {
  const online = (roomId: string, userId: string, state: string) =>
    expect.objectContaining({ roomId, frame: expect.objectContaining({ type: "presence", userId, state }) });

  test("a user is online with its first connection in a room and offline when its last one leaves", async () => {
    const { deps, bus } = world();
    const phone = { ...alice, connectionId: "c2" };
    await joinRoom(deps, alice, "s");
    await joinRoom(deps, phone, "s");
    expect(bus.announced).toEqual([online("s", "alice", "online")]);
    expect(await getPresence(deps, alice, "s")).toEqual({
      ok: true,
      users: [{ userId: "alice", name: "Alice" }],
    });
    await leaveRoom(deps, alice, "s");
    expect(bus.announced).toHaveLength(1);
    await leaveRoom(deps, phone, "s");
    expect(bus.announced).toEqual([online("s", "alice", "online"), online("s", "alice", "offline")]);
    const bob = { connectionId: "c3", userId: "bob" };
    await joinRoom(deps, bob, "s");
    expect(await getPresence(deps, bob, "s")).toEqual({ ok: true, users: [{ userId: "bob" }] });
  });

  test("typing is shown to the others once per window and carries when it becomes too late", async () => {
    const { deps, bus, presence } = world();
    await joinRoom(deps, alice, "s");
    bus.announced = [];
    expect(await typing(deps, alice, "s")).toEqual({ ok: true, shown: true });
    expect(await typing(deps, alice, "s")).toEqual({ ok: true, shown: false });
    presence.clock += 2001;
    expect(await typing(deps, alice, "s")).toEqual({ ok: true, shown: true });
    expect(bus.announced).toHaveLength(2);
    expect(bus.announced[0]).toMatchObject({
      roomId: "s",
      frame: { type: "typing", roomId: "s", userId: "alice", name: "Alice" },
      options: { except: "c1", dropAfter: Date.UTC(2026, 11, 2) + TYPING_STALE_MS },
    });
    expect(await typing(deps, { connectionId: "c7", userId: "eve" }, "s")).toEqual({
      ok: false,
      code: "NOT_A_MEMBER",
    });
  });
});

describe("rooms", () => {
  const bob = { connectionId: "c2", userId: "bob" };
  const eve = { connectionId: "c3", userId: "eve" };

  test("a private room: its owner creates and invites, only the owner may invite or remove", async () => {
    const { deps, bus, rooms } = world();
    expect(await createRoom(deps, alice, "plans", ["bob"])).toMatchObject({ ok: true, lastSeq: 0 });
    expect(await createRoom(deps, eve, "plans")).toEqual({ ok: false, code: "ROOM_EXISTS" });
    expect((await rooms.userRoom("bob", "plans"))?.role).toBe("invited");
    expect(await invite(deps, eve, "plans", "eve")).toEqual({ ok: false, code: "FORBIDDEN" });
    expect(await joinRoom(deps, eve, "plans")).toEqual({ ok: false, code: "FORBIDDEN" });
    expect(await joinRoom(deps, bob, "plans")).toMatchObject({ ok: true });
    expect(await removeMember(deps, bob, "plans", "alice")).toEqual({ ok: false, code: "FORBIDDEN" });
    expect(await removeMember(deps, alice, "plans", "alice")).toMatchObject({
      ok: false,
      code: "BAD_REQUEST",
    });
    expect(await removeMember(deps, alice, "plans", "bob")).toEqual({ ok: true });
    expect(await rooms.userRoom("bob", "plans")).toBeUndefined();
    // The removal goes out in order with the room's messages, and the fan-out lists members again.
    expect(bus.notified.at(-1)).toMatchObject({ roomId: "plans", frame: { type: "removed", userId: "bob" } });
    // The direct prefix is no one's to take.
    expect(await createRoom(deps, alice, "dm.mine")).toEqual({ ok: false, code: "FORBIDDEN" });
  });

  test("a direct room is one per pair, whichever opens it, and closed to a third user", async () => {
    const { deps } = world();
    const opened = await openDirect(deps, alice, "bob");
    expect(opened).toMatchObject({ ok: true, roomId: directRoomId("alice", "bob") });
    expect(await openDirect(deps, bob, "alice")).toMatchObject({
      ok: true,
      roomId: directRoomId("bob", "alice"),
    });
    expect(await openDirect(deps, alice, "alice")).toMatchObject({ ok: false, code: "BAD_REQUEST" });
    expect(await joinRoom(deps, eve, directRoomId("alice", "bob"))).toEqual({ ok: false, code: "FORBIDDEN" });
  });

  test("listRooms follows the user; markRead never goes backwards", async () => {
    const { deps, ledger } = world();
    await joinRoom(deps, alice, "lobby");
    await createRoom(deps, bob, "team", ["alice"]);
    ledger.counters.set("lobby", 7);
    const phone = { ...alice, connectionId: "c9" };
    const listed = await listRooms(deps, phone);
    expect(listed.ok && [...listed.rooms].sort((a, b) => a.roomId.localeCompare(b.roomId))).toEqual([
      { roomId: "lobby", kind: "public", lastSeq: 7, lastReadSeq: 0 },
      { roomId: "team", kind: "private", lastSeq: 0, lastReadSeq: 0 },
    ]);
    expect(await markRead(deps, alice, "lobby", 5)).toEqual({ ok: true, seq: 5 });
    expect(await markRead(deps, alice, "lobby", 3)).toEqual({ ok: true, seq: 5 });
    expect(await markRead(deps, eve, "team", 1)).toMatchObject({ ok: false, code: "FORBIDDEN" });
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe("newMessageId", () => {
  test("is a ULID, unique, in time order across milliseconds, with every character in use", async () => {
    const ids = new Set<string>();
    const seen = new Set<string>();
    let previous = "";
    for (let i = 0; i < 5000; i++) {
      const id = newMessageId();
      expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      ids.add(id);
      for (const c of id.slice(10)) seen.add(c);
      if (i % 1000 === 0) {
        await new Promise((resolve) => setTimeout(resolve, 2));
        expect(id.slice(0, 10) >= previous.slice(0, 10)).toBe(true);
        previous = id;
      }
    }
    expect(ids.size).toBe(5000);
    expect(seen.size).toBe(32);
  });
});
