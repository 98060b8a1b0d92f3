/**
 * The web client when the network and the server push back, in a real Chromium against the local
 * stack: one person's page reaches the gateway through a TCP proxy the test can cut, so its socket
 * dies as on a lost network while the other person keeps sending; a send whose ack was lost is sent
 * again with the same clientMsgId and stored and shown once; RATE_LIMITED and TOO_LARGE are told as
 * sentences, and rate-limited sends still arrive, once each.
 */
import {
  connected,
  joinRoom,
  log,
  logTexts,
  pairBehindProxy,
  recordFrames,
  SHOWN_MS,
  say,
  sayAndWait,
  signIn,
  stateIs,
  waitForExactly,
  waitForLog,
  waitForNoPending,
  webSessionPerFile,
} from "./browser";

const BURST = 4;

/** Waits until `check` holds, polling; fails naming `what` after SHOWN_MS. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + SHOWN_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`waited ${SHOWN_MS} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const web = webSessionPerFile({
  settings: { RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: String(BURST) },
  proxy: true,
});
const { room } = web;

test("a dropped network: the page says Reconnecting…, comes back and shows every message once, in order, while the other person kept sending", async () => {
  const r = room("drop");
  const frames = recordFrames();
  const { alice, bob } = await pairBehindProxy(web, r, ["na", "nb"], frames.watch);
  const texts: string[] = [];
  const bobSays = async (text: string) => {
    texts.push(text);
    await sayAndWait(bob, text);
  };
  await bobSays("before the outage");
  await waitForExactly(alice, texts, () => true);

  // From now on every answer to Alice's page cuts its connection: the next message kills the socket,
  // and every reconnection dies at its upgrade.
  web.proxy.drop();
  await bobSays("during 1");
  await stateIs(alice, "Reconnecting…");
  for (let i = 2; i <= 6; i++) await bobSays(`during ${i}`);
  expect(await logTexts(alice)).not.toContain("during 6");
  // The network is back; Bob does not wait for Alice.
  web.proxy.pass();
  for (let i = 1; i <= 3; i++) await bobSays(`after ${i}`);
  await connected(alice);
  await waitForExactly(alice, texts, () => true);
  // Alice's page reconnected on new sockets and resumed from the last seq it had seen.
  expect(frames.sockets()).toBeGreaterThan(1);
  const entries = frames.sent.filter((f) => f.action === "resume" || f.action === "joinRoom");
  expect(entries.length).toBeGreaterThan(1);
  await say(alice, "back");
  texts.push("back");
  await waitForExactly(bob, texts, () => true);
  await alice.context().close();
  await bob.context().close();
});

test("a send whose ack was lost is sent again with the same clientMsgId: stored once, shown once", async () => {
  const r = room("retry");
  const frames = recordFrames();
  const { alice, bob } = await pairBehindProxy(web, r, ["ra", "rb"], frames.watch);
  await sayAndWait(alice, "first");
  await waitForExactly(bob, ["first"], () => true);
  // Nothing may still be on its way to Alice when the proxy starts cutting, or it would cut her
  // connection before her send goes out: her own copy of "first", Bob's presence, and the answer to
  // each request her page sent (the markRead of "first").
  await until(
    () =>
      frames.received.some((f) => f.type === "message" && f.text === "first") &&
      frames.received.some((f) => f.type === "presence" && f.state === "online" && f.name === "rb") &&
      frames.sent.filter((f) => f.action === "markRead").length ===
        frames.received.filter((f) => f.type === "read").length,
    "Alice's page to have every frame on its way to it",
  );

  // The request reaches the server; the answer is lost with the connection.
  web.proxy.drop();
  await say(alice, "exactly once");
  await stateIs(alice, "Reconnecting…");
  await log(alice).getByText("Sending…").waitFor({ timeout: SHOWN_MS });
  await web.stack.waitForRows(r, 2);
  expect((await web.stack.rows(r)).map((row) => row.text)).toEqual(["first", "exactly once"]);

  web.proxy.pass();
  await connected(alice);
  await waitForNoPending(alice);
  await waitForExactly(alice, ["first", "exactly once"], () => true);
  await waitForExactly(bob, ["first", "exactly once"], () => true);
  // It was sent twice (or more), always with one clientMsgId, and acknowledged.
  const sends = frames.sent.filter((f) => f.action === "sendMessage" && f.text === "exactly once");
  expect(sends.length).toBeGreaterThan(1);
  expect(new Set(sends.map((f) => f.clientMsgId)).size).toBe(1);
  expect(frames.received).toContainEqual(
    expect.objectContaining({ type: "ack", clientMsgId: sends[0]?.clientMsgId, seq: 2 }),
  );
  expect((await web.stack.rows(r)).map((row) => row.text)).toEqual(["first", "exactly once"]);
  await alice.context().close();
  await bob.context().close();
});

test("RATE_LIMITED and TOO_LARGE are told as sentences; the rate-limited messages still arrive, once each", async () => {
  const r = room("limits");
  const frames = recordFrames();
  const carol = await signIn(web.browser, web.url, "lc", frames.watch);
  await joinRoom(carol, r);
  const count = BURST + 8;
  const burst = Array.from({ length: count }, (_, i) => `burst ${i + 1}`);
  for (const text of burst) await say(carol, text);
  await carol
    .getByRole("alert")
    .getByText(/sending messages too fast/)
    .waitFor({ timeout: SHOWN_MS });
  await waitForNoPending(carol);
  await waitForLog(
    carol,
    (t) =>
      JSON.stringify(t.filter((x) => x.startsWith("burst ")).sort()) === JSON.stringify([...burst].sort()),
    "each burst message once",
  );
  expect(frames.received.some((f) => f.type === "error" && f.code === "RATE_LIMITED")).toBe(true);
  await web.stack.waitForRows(r, count);
  const stored = (await web.stack.rows(r)).map((row) => row.text);
  expect([...stored].sort()).toEqual([...burst].sort());
  // Shown in the server's order (seq), which is the order stored.
  expect((await logTexts(carol)).filter((t) => t.startsWith("burst "))).toEqual(stored);

  await say(carol, "x".repeat(4001));
  await carol
    .getByRole("alert")
    .getByText(/too long: a message holds at most 4,000 characters/)
    .waitFor({
      timeout: SHOWN_MS,
    });
  const failed = log(carol)
    .getByRole("listitem")
    .filter({ hasText: /^.*Not sent:/ });
  await failed.waitFor({ timeout: SHOWN_MS });
  await failed.getByRole("button", { name: "Discard" }).click();
  await failed.waitFor({ state: "detached", timeout: SHOWN_MS });
  await carol.context().close();
});
