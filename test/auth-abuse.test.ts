/**
 * Auth and abuse: tokens that are expired, not yet valid, badly signed, `alg: none`, of another
 * algorithm, oversized, for an empty `sub` or with a name that cannot be stored are refused with 401 and leave no record; a client cannot
 * send as another user nor read a room its connection has not joined; the rate limit, scoped to the
 * user here, holds across several connections of one user; and a flood from one connection does not
 * hold up another user's messages.
 */
import { generateKeyPairSync } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { refusedStatus, TestClient } from "./support/client";
import { startTestStack, type TestStack } from "./support/stack";
import { craftToken, now } from "./support/tokens";

const PER_SECOND = 5;
const BURST = 10;
const settingKeys = ["RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "RATE_LIMIT_SCOPE"];
const savedEnv = Object.fromEntries(settingKeys.map((k) => [k, process.env[k]]));

let stack: TestStack;
let secret: string;
let scanCount: () => Promise<number>;
const clients: TestClient[] = [];

beforeAll(async () => {
  stack = await startTestStack({
    fanoutWorkers: 1,
    persisters: 1,
    settings: {
      RATE_LIMIT_PER_SECOND: String(PER_SECOND),
      RATE_LIMIT_BURST: String(BURST),
      RATE_LIMIT_SCOPE: "user",
    },
  });
  secret = stack.env.JWT_SECRET as string;
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: "us-east-1",
      endpoint: stack.env.DYNAMODB_ENDPOINT,
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    }),
  );
  scanCount = async () =>
    (await doc.send(new ScanCommand({ TableName: stack.env.TABLE_NAME, Select: "COUNT" }))).Count ?? 0;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function connect(userId: string): Promise<TestClient> {
  const client = await TestClient.connect(stack.url, { token: await stack.token(userId) });
  clients.push(client);
  return client;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

async function badTokens(): Promise<[string, string][]> {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const valid = await craftToken({ sub: "mallory", exp: now() + 3600 }, secret);
  const [h, p] = valid.split(".");
  const forged = b64({ sub: "admin", exp: now() + 3600 });
  return [
    ["expired", await craftToken({ sub: "mallory", exp: now() - 5 }, secret)],
    [
      "not yet valid (nbf)",
      await craftToken({ sub: "mallory", exp: now() + 7200, nbf: now() + 3600 }, secret),
    ],
    ["signed with another secret", await craftToken({ sub: "mallory", exp: now() + 3600 }, `${secret}x`)],
    ["payload changed after signing", `${h}.${forged}.${valid.split(".")[2]}`],
    ["signature removed", `${h}.${p}.`],
    ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "mallory", exp: now() + 3600 })}.`],
    ["alg None, signature kept", `${b64({ alg: "None", typ: "JWT" })}.${p}.${valid.split(".")[2]}`],
    ["HS384 with the right secret", await craftToken({ sub: "mallory", exp: now() + 3600 }, secret, "HS384")],
    ["HS512 with the right secret", await craftToken({ sub: "mallory", exp: now() + 3600 }, secret, "HS512")],
    ["RS256", await craftToken({ sub: "mallory", exp: now() + 3600 }, privateKey, "RS256")],
    [
      "oversized (valid signature, 8 KB)",
      await craftToken({ sub: "mallory", exp: now() + 3600, pad: "x".repeat(8192) }, secret),
    ],
    ["empty sub", await craftToken({ sub: "", exp: now() + 3600 }, secret)],
    ["no sub", await craftToken({ exp: now() + 3600 }, secret)],
    ["sub out of its pattern", await craftToken({ sub: "a b/../c", exp: now() + 3600 }, secret)],
    ["no exp", await craftToken({ sub: "mallory" }, secret)],
    // PROTOCOL.md v1.1: a name PostgreSQL could not store byte for byte would make every message
    // acked and never stored.
    ["name with NUL", await craftToken({ sub: "mallory", name: "Mal\u0000lory", exp: now() + 3600 }, secret)],
    [
      "name with a lone surrogate",
      await craftToken({ sub: "mallory", name: "Mal\ud800lory", exp: now() + 3600 }, secret),
    ],
    [
      "name over 64 characters",
      await craftToken({ sub: "mallory", name: "m".repeat(65), exp: now() + 3600 }, secret),
    ],
    ["not a JWT", "not.a.jwt"],
    ["empty", ""],
  ];
}

test("bad tokens are refused with 401, by query and by header, and no record is written", async () => {
  const before = await scanCount();
  const tokens = await badTokens();
  for (const [why, token] of tokens) {
    const byQuery = token === "" ? await refusedStatus(stack.url) : await refusedStatus(stack.url, { token });
    const byHeader = await refusedStatus(stack.url, { header: `Bearer ${token}` });
    expect({ why, byQuery, byHeader }).toEqual({ why, byQuery: 401, byHeader: 401 });
  }
  expect(await scanCount()).toBe(before);
  // A token with a valid HS256 signature under 4 KB is accepted (and recorded): the refusals above
  // are for cause, and the count above could have seen a record.
  const ok = await connect("mallory");
  expect((await ok.request({ action: "ping" }, "pong")).type).toBe("pong");
  expect(await scanCount()).toBe(before + 1);
  await ok.close();
  process.stderr.write(
    `auth abuse: ${tokens.length} bad tokens × 2 ways refused with 401, 0 records written\n`,
  );
});

test("a client cannot send as another user", async () => {
  const room = `${stack.id}-imp`;
  const mallory = await connect("mallory");
  const alice = await connect("alice");
  await mallory.request({ action: "joinRoom", roomId: room }, "joined");
  await alice.request({ action: "joinRoom", roomId: room }, "joined");
  const ack = await mallory.request(
    {
      action: "sendMessage",
      roomId: room,
      text: "I am alice",
      clientMsgId: "imp1",
      senderId: "alice",
      senderName: "Alice",
      userId: "alice",
      messageId: "forged",
      seq: 999,
      sentAt: "2000-01-01T00:00:00.000Z",
    },
    "ack",
  );
  expect(ack.type).toBe("ack");
  expect(ack.messageId).not.toBe("forged");
  const seen = await alice.next((f) => f.type === "message" && f.roomId === room);
  expect(seen).toMatchObject({ senderId: "mallory", seq: 1, messageId: ack.messageId });
  expect(seen.senderName).toBeUndefined();
  expect(seen.sentAt).not.toBe("2000-01-01T00:00:00.000Z");
  // The same clientMsgId from another user is that user's own message, not a retry of mallory's.
  const aliceAck = await alice.request(
    { action: "sendMessage", roomId: room, text: "me", clientMsgId: "imp1" },
    "ack",
  );
  expect(aliceAck.messageId).not.toBe(ack.messageId);
  await stack.waitForRows(room, 2);
  expect((await stack.rows(room)).map((r) => r.senderId)).toEqual(["mallory", "alice"]);
});

test("a connection cannot read or write a room it has not joined, even one its user joined elsewhere", async () => {
  const room = `${stack.id}-private`;
  const owner = await connect("owner");
  const ownerOther = await connect("owner");
  const outsider = await connect("outsider");
  await owner.request({ action: "joinRoom", roomId: room }, "joined");
  await owner.request({ action: "sendMessage", roomId: room, text: "secret", clientMsgId: "s1" }, "ack");
  for (const c of [outsider, ownerOther]) {
    const history = await c.request({ action: "getHistory", roomId: room }, "history");
    expect(history).toMatchObject({ type: "error", code: "NOT_A_MEMBER" });
    const back = await c.request({ action: "getHistory", roomId: room, afterSeq: 0 }, "history");
    expect(back).toMatchObject({ type: "error", code: "NOT_A_MEMBER" });
    const send = await c.request(
      { action: "sendMessage", roomId: room, text: "x", clientMsgId: "o1" },
      "ack",
    );
    expect(send).toMatchObject({ type: "error", code: "NOT_A_MEMBER", clientMsgId: "o1" });
  }
  // Leaving takes the right away again.
  await outsider.request({ action: "joinRoom", roomId: room }, "joined");
  await outsider.request({ action: "leaveRoom", roomId: room }, "left");
  await owner.request({ action: "sendMessage", roomId: room, text: "after", clientMsgId: "s2" }, "ack");
  expect(await outsider.request({ action: "getHistory", roomId: room }, "history")).toMatchObject({
    code: "NOT_A_MEMBER",
  });
  await new Promise((r) => setTimeout(r, 500));
  const leaked = [outsider, ownerOther].flatMap((c) => c.frames.filter((f) => f.type === "message"));
  expect(leaked.map((f) => f.seq)).toEqual([]);
  await stack.waitForRows(room, 2);
  expect((await stack.rows(room)).map((r) => r.text)).toEqual(["secret", "after"]);
});

test("the per-user rate limit holds across connections; a flood does not hold up another user", async () => {
  const room = `${stack.id}-flood`;
  const flooders = await Promise.all([0, 1, 2].map(() => connect("flooder")));
  const calm = await connect("calm");
  for (const c of [...flooders, calm]) await c.request({ action: "joinRoom", roomId: room }, "joined");

  // Baseline of the calm user's ack time, with no flood.
  const timed = async (k: number) => {
    const t = Date.now();
    const a = await calm.request(
      { action: "sendMessage", roomId: room, text: `c${k}`, clientMsgId: `c${k}` },
      "ack",
    );
    return { a, ms: Date.now() - t };
  };
  const baseline: number[] = [];
  for (let k = 0; k < 5; k++) {
    const { a, ms } = await timed(k);
    expect(a.type).toBe("ack");
    baseline.push(ms);
    await new Promise((r) => setTimeout(r, 1000 / PER_SECOND));
  }

  const started = Date.now();
  let n = 0;
  const floodAnswers = flooders.map((c) => {
    const answers: Promise<string>[] = [];
    for (let k = 0; k < 150; k++) {
      const clientMsgId = `f${n++}`;
      answers.push(
        c
          .request({ action: "sendMessage", roomId: room, text: "flood", clientMsgId }, "ack", 60_000)
          .then((f) => (f.type === "ack" ? "ack" : String(f.code))),
      );
    }
    return Promise.all(answers);
  });
  const during: number[] = [];
  for (let k = 5; k < 15; k++) {
    const { a, ms } = await timed(k);
    expect(a).toMatchObject({ type: "ack" });
    during.push(ms);
    await new Promise((r) => setTimeout(r, 1000 / PER_SECOND));
  }
  const all = (await Promise.all(floodAnswers)).flat();
  const elapsed = (Date.now() - started) / 1000;
  const acked = all.filter((a) => a === "ack").length;
  const limited = all.filter((a) => a === "RATE_LIMITED").length;
  expect(acked + limited).toBe(all.length);
  // One bucket for the user across its three connections: the burst plus the refill, not three times it.
  expect(acked).toBeLessThanOrEqual(BURST + Math.ceil(PER_SECOND * elapsed) + 1);
  expect(limited).toBeGreaterThan(0);
  const p = (xs: number[], q: number) =>
    [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;
  process.stderr.write(
    `auth abuse: flood of ${all.length} sends from 3 connections of one user in ${elapsed.toFixed(1)} s: ${acked} acked, ${limited} RATE_LIMITED; ` +
      `another user's ack p50/max ${p(baseline, 0.5)}/${Math.max(...baseline)} ms before, ${p(during, 0.5)}/${Math.max(...during)} ms during\n`,
  );
  // Not a speed test: a bound far above the normal few milliseconds, that a flood queued ahead of the
  // calm user's frames (or a shared bucket) would break.
  expect(Math.max(...during)).toBeLessThan(2000);
});
