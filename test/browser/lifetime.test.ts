/**
 * API Gateway's limits on a connection, shortened to seconds. The 2-hour cap: the gateway closes the
 * page's socket again and again while two people talk, and the page comes back each time without
 * showing "Reconnecting…" and without losing or doubling a message. The idle timeout: a page nobody
 * uses keeps its one socket, because it pings (here every second, as the timeout is 2.5 seconds; the
 * page's default is every 4 minutes against API Gateway's 10).
 */
import { joinRoom, say, signIn, waitForExactly, waitForNoPending, webSessionPerFile } from "./browser";

const LIFETIME_MS = 6000;
const IDLE_MS = 2500;

const web = webSessionPerFile({ maxLifetimeMs: LIFETIME_MS, idleTimeoutMs: IDLE_MS, pingSeconds: 1 });
const { room } = web;

test("the connection's lifetime cap passes unnoticed: no Reconnecting…, no gap, no duplicate", async () => {
  const r = room("cap");
  const alice = await signIn(web.browser, web.url, "la");
  // Every state the status element shows from now on.
  // (A string, not a function: this project's type check has no DOM library.)
  await alice.evaluate(`(() => {
    const status = document.querySelector('[role="status"]');
    window.seenStates = [];
    new MutationObserver(() => window.seenStates.push(status.textContent)).observe(status, {
      childList: true, characterData: true, subtree: true,
    });
  })()`);
  let sockets = 0;
  alice.on("websocket", () => sockets++);
  await joinRoom(alice, r);
  const bob = await signIn(web.browser, web.url, "lb");
  await joinRoom(bob, r);

  const texts: string[] = [];
  // Talk across at least two caps of each connection (three lifetimes).
  const until = Date.now() + 3 * LIFETIME_MS;
  for (let i = 1; Date.now() < until || sockets < 2; i++) {
    const text = `line ${i}`;
    texts.push(text);
    const speaker = i % 2 === 0 ? alice : bob;
    await say(speaker, text);
    // Acknowledged before the next is said, so the server's order is the order said.
    await waitForNoPending(speaker);
    await waitForExactly(alice, texts, () => true);
  }
  await waitForExactly(bob, texts, () => true);
  expect(sockets).toBeGreaterThanOrEqual(2);
  const seen = (await alice.evaluate("window.seenStates")) as string[];
  expect(seen.filter((s) => s !== "Connected")).toEqual([]);
  await alice.context().close();
  await bob.context().close();
});

test("a quiet page is never closed for idling: its pings keep each connection until the lifetime cap", async () => {
  const r = room("quiet");
  const lives: { opened: number; closed?: number }[] = [];
  const alice = await signIn(web.browser, web.url, "qa", (page) =>
    page.on("websocket", (ws) => {
      const life: { opened: number; closed?: number } = { opened: Date.now() };
      lives.push(life);
      ws.on("close", () => {
        life.closed = Date.now();
      });
    }),
  );
  await joinRoom(alice, r);
  // Nobody types for twice the idle timeout.
  await alice.waitForTimeout(IDLE_MS * 2);
  const bob = await signIn(web.browser, web.url, "qb");
  await joinRoom(bob, r);
  await say(bob, "still with me?");
  await waitForExactly(alice, ["still with me?"], () => true);
  // Every connection that closed lived to the cap; none was closed for idling.
  const early = lives.filter((l) => l.closed !== undefined && l.closed - l.opened < LIFETIME_MS - 500);
  expect(early).toEqual([]);
  expect(lives.length).toBeGreaterThan(0);
  await alice.context().close();
  await bob.context().close();
});
