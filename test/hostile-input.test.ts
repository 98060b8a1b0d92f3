/**
 * Hostile input, property-based: at least 10,000 generated client frames (malformed JSON, wrong types,
 * missing and extra fields, huge strings, deep nesting, `__proto__` and `constructor` keys, control,
 * right-to-left and combining characters, lone surrogates) go through real connections. Each one must
 * get PROTOCOL.md's answer, computed here by an oracle written from PROTOCOL.md rather than from the
 * handlers; nothing may crash; nothing invalid may be stored; and the text PostgreSQL stores is
 * byte-for-byte the text that was sent. Frames over 32 KB, invalid UTF-8 and binary frames close their
 * connection, and the gateway goes on serving the others.
 *
 * HOSTILE_FRAMES (default 10,000) and HOSTILE_SEED (default random, printed) replay a run.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import WebSocket from "ws";
import { type Frame, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";

const FRAMES = Number(process.env.HOSTILE_FRAMES ?? 10_000);
const SEED = Number(process.env.HOSTILE_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Connections driven at once: the frames in flight over the whole run. */
const CONNECTIONS = 64;
/**
 * Frames in flight per connection. API Gateway invokes a connection's frames concurrently (as the
 * emulator does), so answers may come in any order and a join may race the send after it: each frame
 * waits for the answer of the one before, which keeps the oracle's state and the pairing exact.
 */
const WINDOW = 1;

const ACTIONS = [
  "joinRoom",
  "leaveRoom",
  "sendMessage",
  "getHistory",
  "ping",
  // v1.1
  "createRoom",
  "invite",
  "removeMember",
  "openDirect",
  "listRooms",
  "markRead",
  "getPresence",
  // `resume` (several frames) and `typing` (none) do not answer one frame per frame, which this
  // harness pairs; test/resume.test.ts and test/presence.test.ts check their bad input.
];
const ROOM = /^[A-Za-z0-9_.:-]{1,64}$/;
const USER = /^[A-Za-z0-9_.@-]{1,64}$/;
const CLIENT_MSG_ID = /^[A-Za-z0-9_-]{1,64}$/;

let stack: TestStack;
const settingKeys = [
  "RATE_LIMIT_PER_SECOND",
  "RATE_LIMIT_BURST",
  "ACTION_RATE_LIMIT_PER_SECOND",
  "ACTION_RATE_LIMIT_BURST",
];
const savedEnv = Object.fromEntries(settingKeys.map((k) => [k, process.env[k]]));

beforeAll(async () => {
  // Rate limits high: this suite is about what frames say, not how fast they come.
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    settings: {
      RATE_LIMIT_PER_SECOND: "1000000",
      RATE_LIMIT_BURST: "1000000",
      ACTION_RATE_LIMIT_PER_SECOND: "1000000",
      ACTION_RATE_LIMIT_BURST: "1000000",
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  // startStack copies its settings into process.env; the next file in this worker must not see ours.
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** What PROTOCOL.md says the answer to a frame is. */
type Expected =
  | {
      type:
        | "pong"
        | "joined"
        | "left"
        | "history"
        | "ack"
        | "created"
        | "invited"
        | "removed"
        | "direct"
        | "rooms"
        | "read"
        | "presenceList";
    }
  | { type: "error"; code: string; action?: string; clientMsgId?: string };

const codePoints = (s: string) => [...s].length;
const isWellFormed = (s: string) => !/\p{Surrogate}/u.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ""));
const isSeqBound = (v: unknown) =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;

/** What a connection's frames have made of the rooms, as far as the oracle needs to know. */
interface RoomState {
  userId: string;
  /** Rooms this connection has joined (and not left since). */
  joined: Set<string>;
  /** Rooms that exist because this connection joined or created them: createRoom is ROOM_EXISTS. */
  seen: Set<string>;
  /** Private rooms this connection's user created. */
  owned: Set<string>;
  /** The room and text of each clientMsgId this user's sends were acked under. */
  sends: Map<string, { roomId: string; text: string }>;
}

/** The answer PROTOCOL.md gives a frame, for a connection in the given state (which it updates). */
function oracle(raw: string, state: RoomState): Expected {
  const { joined } = state;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { type: "error", code: "BAD_REQUEST" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { type: "error", code: "BAD_REQUEST" };
  }
  const f = value as Record<string, unknown>;
  const action = Object.hasOwn(f, "action") ? f.action : undefined;
  if (typeof action !== "string" || !ACTIONS.includes(action)) {
    return typeof action === "string"
      ? { type: "error", code: "UNKNOWN_ACTION", action }
      : { type: "error", code: "UNKNOWN_ACTION" };
  }
  const bad = (code = "BAD_REQUEST"): Expected => ({
    type: "error",
    code,
    action,
    ...(typeof f.clientMsgId === "string" ? { clientMsgId: f.clientMsgId } : {}),
  });
  const roomOk = typeof f.roomId === "string" && ROOM.test(f.roomId);
  switch (action) {
    case "ping":
      return { type: "pong" };
    case "joinRoom":
      if (!roomOk) return bad();
      if ((f.roomId as string).startsWith("dm.") && !state.seen.has(f.roomId as string))
        return bad("FORBIDDEN");
      joined.add(f.roomId as string);
      state.seen.add(f.roomId as string);
      return { type: "joined" };
    case "leaveRoom":
      if (!roomOk) return bad();
      joined.delete(f.roomId as string);
      return { type: "left" };
    case "listRooms":
      return { type: "rooms" };
    case "getPresence":
      if (!roomOk) return bad();
      return joined.has(f.roomId as string) ? { type: "presenceList" } : bad("NOT_A_MEMBER");
    case "markRead":
      if (!roomOk || !isSeqBound(f.seq)) return bad();
      // A user's read position is kept for the rooms it is in: joined, or its own.
      return joined.has(f.roomId as string) || state.owned.has(f.roomId as string)
        ? { type: "read" }
        : bad("FORBIDDEN");
    case "createRoom": {
      const members = f.members;
      const membersOk =
        members === undefined ||
        (Array.isArray(members) &&
          members.length <= 100 &&
          members.every((m) => typeof m === "string" && USER.test(m)));
      if (!roomOk || !membersOk) return bad();
      const id = f.roomId as string;
      if (id.startsWith("dm.")) return bad("FORBIDDEN");
      if (state.seen.has(id)) return bad("ROOM_EXISTS");
      state.seen.add(id);
      state.owned.add(id);
      joined.add(id);
      return { type: "created" };
    }
    case "invite":
    case "removeMember": {
      const userOk = typeof f.userId === "string" && USER.test(f.userId);
      if (!roomOk || !userOk) return bad();
      if (!state.owned.has(f.roomId as string)) return bad("FORBIDDEN");
      if (action === "invite") return { type: "invited" };
      return f.userId === state.userId ? bad() : { type: "removed" };
    }
    case "openDirect": {
      const userOk = typeof f.userId === "string" && USER.test(f.userId);
      if (!userOk || f.userId === state.userId) return bad();
      return { type: "direct" };
    }
    case "getHistory": {
      const opt = (k: string, ok: (v: unknown) => boolean) => !Object.hasOwn(f, k) || ok(f[k]);
      const limitOk = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 100;
      if (!roomOk || !opt("afterSeq", isSeqBound) || !opt("beforeSeq", isSeqBound) || !opt("limit", limitOk))
        return bad();
      if (Object.hasOwn(f, "afterSeq") && Object.hasOwn(f, "beforeSeq")) return bad();
      if (!joined.has(f.roomId as string)) return bad("NOT_A_MEMBER");
      return { type: "history" };
    }
    default: {
      // sendMessage
      const { text } = f;
      if (typeof text === "string" && codePoints(text) > 4000) return bad("TOO_LARGE");
      const idOk = typeof f.clientMsgId === "string" && CLIENT_MSG_ID.test(f.clientMsgId);
      const textOk =
        typeof text === "string" &&
        text.trim().length > 0 &&
        isWellFormed(text) &&
        // PostgreSQL text cannot hold U+0000, so a message holding it could never be stored.
        !text.includes("\u0000");
      if (!roomOk || !idOk || !textOk) return bad();
      if (!joined.has(f.roomId as string)) return bad("NOT_A_MEMBER");
      // A generated id can repeat: the same room and text is a retry (its first ack again),
      // anything else a reuse.
      const first = state.sends.get(f.clientMsgId as string);
      if (first) return first.roomId === f.roomId && first.text === text ? { type: "ack" } : bad("CONFLICT");
      state.sends.set(f.clientMsgId as string, { roomId: f.roomId as string, text });
      return { type: "ack" };
    }
  }
}

// ---- generators ------------------------------------------------------------------------------

const nasty = fc.constantFrom(
  "\u0000",
  "\u0007",
  "\u001b[2J",
  "\u007f",
  "\u202e", // right-to-left override
  "\u200f",
  "\u2067",
  "\u0301\u0301\u0301", // combining acute accents
  "Z\u0351\u0364\u036b",
  "\ufeff",
  "\u2028",
  "\ud83d\ude00",
  "\ud800", // lone high surrogate
  "\udfff", // lone low surrogate
  "\u00a0",
  "\u3000",
  "\t\n\r",
  "שלום",
  "مرحبا",
  '"\\',
  "</script>",
  "%00",
  "'; DROP TABLE messages; --",
);
const textArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 60 }) },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.oneof(nasty, fc.string({ maxLength: 4 })), { minLength: 1, maxLength: 12 })
      .map((a) => a.join("")),
  },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\t\n", "\u3000\u00a0", "   x   ") },
  // Near and over the 4,000 code point limit, in 1- to 4-byte characters.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 3990, max: 4010 }), fc.constantFrom("a", "é", "€", "\ud83d\ude00", "\u0000"))
      .map(([n, c]) => `x${c.repeat(n - 1)}`),
  },
);

interface Context {
  /** The connection's user: inviting itself or opening a direct room with itself. */
  user: string;
  /** Rooms this connection owns and joined at the start. */
  own: string;
  other: string;
  counter: { n: number };
}

const roomArb = (ctx: Context) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constant(ctx.own) },
    { weight: 1, arbitrary: fc.constant(ctx.other) },
    {
      weight: 1,
      arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/).map((s) => `${ctx.own}x${s}`.slice(0, 64)),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 70 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("", "a".repeat(65), "room with space", "__proto__", "constructor"),
    },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string())) },
  );

const createRoomArb = (ctx: Context) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(ctx.own) },
    {
      weight: 6,
      arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,20}$/).map((s) => `${ctx.own}x${s}`.slice(0, 64)),
    },
    { weight: 1, arbitrary: fc.constantFrom("", "a".repeat(65), "dm.squat", "room with space") },
  );

const clientMsgIdArb = (ctx: Context) =>
  fc.oneof(
    // Unique valid ids; the other two may repeat (the oracle answers a repeat as a retry or a reuse).
    { weight: 8, arbitrary: fc.constant(null).map(() => `h${ctx.counter.n++}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 70 }) },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.constant("a".repeat(65))) },
  );

const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant(undefined), // leaves the field out
);

/** Key/value entries of a frame object; serialized by hand so `__proto__` stays a plain key. */
type Entries = [string, unknown][];

const field = (key: string, arb: fc.Arbitrary<unknown>, missing = 1): fc.Arbitrary<Entries> =>
  fc.oneof(
    { weight: 10, arbitrary: arb.map((v): Entries => [[key, v]]) },
    { weight: missing, arbitrary: fc.constant<Entries>([]) },
    { weight: 1, arbitrary: anyValue.map((v): Entries => (v === undefined ? [] : [[key, v]])) },
  );

const extras: fc.Arbitrary<Entries> = fc.array(
  fc.tuple(
    fc.oneof(
      fc.constantFrom(
        "__proto__",
        "constructor",
        "prototype",
        "toString",
        "hasOwnProperty",
        "senderId",
        "seq",
        "messageId",
      ),
      fc.string({ maxLength: 10 }),
    ),
    fc.jsonValue({ maxDepth: 2 }),
  ),
  { maxLength: 3 },
);

const actionArb = fc.oneof(
  // Mostly sendMessage, so that thousands of hostile texts reach the store.
  { weight: 20, arbitrary: fc.constant("sendMessage") },
  { weight: 10, arbitrary: fc.constantFrom(...ACTIONS) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "$default",
      "$connect",
      "$disconnect",
      "__proto__",
      "constructor",
      "toString",
      "SENDMESSAGE",
      "",
    ),
  },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.constant("ping"))) },
);

function objectFrame(ctx: Context): fc.Arbitrary<string> {
  return fc
    .tuple(
      actionArb.chain((action) => {
        const a: Entries = [["action", action]];
        const seqArb = fc.oneof(fc.nat(200), fc.integer({ min: -5, max: -1 }), fc.double(), fc.constant("3"));
        return fc
          .tuple(
            fc.constant(a),
            // A room another connection could create privately would make its joins FORBIDDEN at an
            // order the oracle cannot know: createRoom names rooms of this connection's own.
            field("roomId", action === "createRoom" ? createRoomArb(ctx) : roomArb(ctx)),
            action === "sendMessage" || typeof action !== "string"
              ? field("text", textArb)
              : fc.constant<Entries>([]),
            action === "sendMessage" || typeof action !== "string"
              ? field("clientMsgId", clientMsgIdArb(ctx))
              : fc.constant<Entries>([]),
            action === "createRoom"
              ? field(
                  "members",
                  fc.oneof(
                    fc.array(fc.stringMatching(/^[A-Za-z0-9_.@-]{1,12}$/), { maxLength: 4 }),
                    fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
                    fc.constant(Array.from({ length: 101 }, (_, k) => `m${k}`)),
                  ),
                  4,
                )
              : action === "invite" || action === "removeMember" || action === "openDirect"
                ? field(
                    "userId",
                    fc.oneof(
                      { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.@-]{1,12}$/) },
                      { weight: 1, arbitrary: fc.string({ maxLength: 70 }) },
                      // Not another connection's user: its invitations would be frames the oracle does not expect.
                      { weight: 1, arbitrary: fc.constantFrom(ctx.user, "", "a b") },
                    ),
                  )
                : action === "markRead"
                  ? field("seq", seqArb)
                  : fc.constant<Entries>([]),
            action === "getHistory"
              ? fc
                  .tuple(
                    field("afterSeq", seqArb, 6),
                    field("beforeSeq", seqArb, 8),
                    field(
                      "limit",
                      fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: -2, max: 200 })),
                      3,
                    ),
                  )
                  .map(([x, y, z]) => [...x, ...y, ...z])
              : fc.constant<Entries>([]),
          )
          .map((parts) => parts.flat() as Entries);
      }),
      extras,
      fc.boolean(),
    )
    .map(([entries, more, shuffle]) => {
      const all = [...entries, ...more];
      if (shuffle) all.reverse();
      return `{${all.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
    });
}

const rawFrame: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.constantFrom(
    "",
    "{",
    "}",
    "null",
    "[]",
    "{}",
    '{"action":',
    '{"action":"ping"',
    "\u0000",
    "{'action':'ping'}",
    '{"action":"ping"}garbage',
  ),
  // Deep nesting, under the 32 KB frame limit.
  fc
    .integer({ min: 100, max: 10_000 })
    .map((d) => `{"action":"sendMessage","roomId":${"[".repeat(d)}${"]".repeat(d)}}`),
  fc.integer({ min: 100, max: 5_000 }).map((d) => `${'{"a":'.repeat(d)}1${"}".repeat(d)}`),
);

const frameArb = (ctx: Context) =>
  fc.oneof({ weight: 9, arbitrary: objectFrame(ctx) }, { weight: 1, arbitrary: rawFrame });

// ---- the run ---------------------------------------------------------------------------------

interface Sent {
  raw: string;
  expected: Expected;
  text?: string;
  roomId?: string;
}

function matches(answer: Frame, expected: Expected): boolean {
  if (answer.type !== expected.type) return false;
  if (expected.type === "error") {
    if (answer.code !== expected.code || typeof answer.message !== "string") return false;
    if (answer.action !== expected.action) return false;
    if (answer.clientMsgId !== expected.clientMsgId) return false;
  }
  if (expected.type === "ack")
    return typeof answer.messageId === "string" && Number.isInteger(answer.seq) && answer.seq > 0;
  return true;
}

/** Sends the frames in order over one connection, each after the answer to the one before (WINDOW 1). */
async function drive(client: TestClient, frames: string[], state: RoomState) {
  const sent: Sent[] = [];
  const answers: Frame[] = [];
  let waiting: (() => void) | undefined;
  client.ws.on("message", (data) => {
    let f: Frame;
    try {
      f = JSON.parse(data.toString()) as Frame;
    } catch {
      f = { unparsed: data.toString() };
    }
    // Events of the rooms it joined, not answers to its frames.
    if (f.type === "message" || f.type === "presence") return;
    answers.push(f);
    waiting?.();
  });
  for (const raw of frames) {
    while (sent.length - answers.length >= WINDOW) {
      await new Promise<void>((r) => {
        waiting = r;
        setTimeout(r, 5_000);
      });
      if (client.ws.readyState !== WebSocket.OPEN) throw new Error("the connection closed mid-run");
    }
    const expected = oracle(raw, state);
    let text: string | undefined;
    let roomId: string | undefined;
    if (expected.type === "ack") {
      const f = JSON.parse(raw) as { text: string; roomId: string };
      text = f.text;
      roomId = f.roomId;
    }
    sent.push({ raw, expected, text, roomId });
    client.send(raw);
  }
  const deadline = Date.now() + 60_000;
  while (answers.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return { sent, answers };
}

test(`${FRAMES} generated frames get PROTOCOL.md's answers; stored text is byte-for-byte what was sent`, async () => {
  process.stderr.write(`hostile input: seed ${SEED} (HOSTILE_SEED=${SEED} replays this run)\n`);
  const clients: TestClient[] = [];
  const contexts: Context[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const client = await TestClient.connect(stack.url, { token: await stack.token(`hostile${i}`) });
    const ctx = {
      user: `hostile${i}`,
      own: `${stack.id}-h${i}`,
      other: `${stack.id}-h${(i + 1) % CONNECTIONS}`,
      counter: { n: 0 },
    };
    await client.request({ action: "joinRoom", roomId: ctx.own }, "joined");
    clients.push(client);
    contexts.push(ctx);
  }
  const perConnection = Math.ceil(FRAMES / CONNECTIONS);
  const runs = await Promise.all(
    clients.map((client, i) => {
      const ctx = contexts[i] as Context;
      const frames = fc.sample(frameArb(ctx), { numRuns: perConnection, seed: SEED + i });
      return drive(client, frames, {
        userId: `hostile${i}`,
        joined: new Set([ctx.own]),
        seen: new Set([ctx.own, ctx.other]),
        owned: new Set(),
        sends: new Map(),
      });
    }),
  );

  const mismatches: string[] = [];
  const acked = new Map<string, { text: string; roomId: string; userId: string }>();
  const counts: Record<string, number> = {};
  let total = 0;
  for (const [i, { sent, answers }] of runs.entries()) {
    expect(answers.length).toBe(sent.length);
    for (const [k, s] of sent.entries()) {
      total++;
      const answer = answers[k] as Frame;
      const label = s.expected.type === "error" ? s.expected.code : s.expected.type;
      counts[label] = (counts[label] ?? 0) + 1;
      if (!matches(answer, s.expected)) {
        mismatches.push(
          `frame ${JSON.stringify(s.raw.slice(0, 300))} expected ${JSON.stringify(s.expected)} got ${JSON.stringify(answer).slice(0, 300)}`,
        );
      } else if (s.expected.type === "ack") {
        acked.set(answer.messageId, {
          text: s.text as string,
          roomId: s.roomId as string,
          userId: `hostile${i}`,
        });
      }
    }
  }
  process.stderr.write(
    `hostile input: ${total} frames, answers ${JSON.stringify(counts)}, ${mismatches.length} mismatches\n`,
  );
  for (const m of mismatches.slice(0, 30)) process.stderr.write(`hostile input mismatch: ${m}\n`);
  expect(mismatches.slice(0, 5)).toEqual([]);
  expect(total).toBeGreaterThanOrEqual(FRAMES);
  for (const c of clients) expect(c.ws.readyState).toBe(WebSocket.OPEN);

  // Stored: exactly the acked messages, each once, its text byte-for-byte what was sent.
  const rooms = new Set([...acked.values()].map((a) => a.roomId));
  const perRoom = new Map<string, number>();
  for (const a of acked.values()) perRoom.set(a.roomId, (perRoom.get(a.roomId) ?? 0) + 1);
  let stored = 0;
  let bytes = 0;
  for (const room of rooms) {
    await stack.waitForRows(room, perRoom.get(room) ?? 0, 60_000);
    // A room named by a generated string (not this stack's prefix) may hold other runs' or files'
    // rows in the shared database: only this run's acked ones are counted there.
    const ours = room.startsWith(stack.id);
    const rows = (await stack.rows(room)).filter((r) => ours || acked.has(r.messageId));
    expect(rows.length).toBe(perRoom.get(room));
    for (const row of rows) {
      const a = acked.get(row.messageId);
      expect(a).toBeDefined();
      expect(Buffer.from(row.text, "utf8").equals(Buffer.from(a?.text ?? "", "utf8"))).toBe(true);
      expect(row.senderId).toBe(a?.userId);
      stored++;
      bytes += Buffer.byteLength(row.text);
    }
    if (ours) expect(rows.map((r) => r.seq)).toEqual(rows.map((_, k) => k + 1));
  }
  expect(stored).toBe(acked.size);
  // Rooms that only ever got refused frames hold nothing.
  for (const ctx of contexts) {
    if (!rooms.has(ctx.own)) expect(await stack.rows(ctx.own)).toEqual([]);
  }
  // getHistory answers the same bytes as PostgreSQL.
  // A fresh connection: the driven ones hold thousands of unconsumed error frames.
  const first = await TestClient.connect(stack.url, { token: await stack.token("reader") });
  clients.push(first);
  const firstRoom = [...rooms][0] as string;
  await first.request({ action: "joinRoom", roomId: firstRoom }, "joined");
  const page = await first.request(
    { action: "getHistory", roomId: firstRoom, afterSeq: 0, limit: 100 },
    "history",
  );
  expect(page.type).toBe("history");
  for (const m of page.messages as Frame[]) expect(m.text).toBe(acked.get(m.messageId)?.text);
  process.stderr.write(`hostile input: ${acked.size} acked, ${stored} stored (${bytes} bytes), 0 altered\n`);
  writeFileSync(
    join(__dirname, "faults", "hostile-input.json"),
    `${JSON.stringify({ seed: SEED, frames: total, answers: counts, mismatches: mismatches.length, acked: acked.size, stored }, null, 2)}\n`,
  );
  await Promise.all(clients.map((c) => c.close()));
}, 600_000);

/** Opens a raw ws connection (the TestClient would not let us send bad bytes). */
async function raw(): Promise<WebSocket> {
  const ws = new WebSocket(`${stack.url}?token=${encodeURIComponent(await stack.token("rawsender"))}`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

const closeOf = (ws: WebSocket) =>
  new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));

test("frames over 32 KB close with 1009; invalid UTF-8 and binary frames close; the gateway serves on", async () => {
  const room = `${stack.id}-closers`;
  const big = fc.sample(fc.integer({ min: 32 * 1024 + 1, max: 200 * 1024 }), { numRuns: 5, seed: SEED });
  for (const size of big) {
    const ws = await raw();
    const closed = closeOf(ws);
    const text = "a".repeat(size);
    ws.send(JSON.stringify({ action: "sendMessage", roomId: room, clientMsgId: `big${size}`, text }));
    expect(await closed).toBe(1009);
  }
  // A text frame whose bytes are not UTF-8.
  for (const bytes of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]) {
    const ws = await raw();
    const closed = closeOf(ws);
    ws.send(Buffer.concat([Buffer.from('{"action":"ping","x":"'), Buffer.from(bytes), Buffer.from('"}')]), {
      binary: false,
    });
    expect(await closed).toBe(1007);
  }
  const bin = await raw();
  const binClosed = closeOf(bin);
  bin.send(Buffer.from('{"action":"ping"}'), { binary: true });
  expect(await binClosed).toBe(1003);
  // Still serving, and nothing was stored.
  const client = await TestClient.connect(stack.url, { token: await stack.token("after") });
  expect((await client.request({ action: "ping" }, "pong")).type).toBe("pong");
  await client.close();
  expect(await stack.rows(room)).toEqual([]);
});
