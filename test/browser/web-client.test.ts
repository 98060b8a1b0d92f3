/**
 * The web client in a real Chromium against the local stack (real Redis, Kafka, PostgreSQL and
 * dynalite): two people chat, a reload keeps the history, older messages come in on scrolling up,
 * private rooms with an invitation, a direct message with its unread count, a refused room, keyboard
 * use, and axe-core's verdict. It also takes the README's screenshot.
 */
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { TestClient } from "../support/client";
import type { TestStack } from "../support/stack";
import {
  closePages,
  connected,
  joinRoom,
  launchBrowser,
  log,
  logTexts,
  SHOWN_MS,
  say,
  seriousViolations,
  signIn,
  startWebStack,
  submit,
  waitForExactly,
  waitForLog,
  waitForNoPending,
} from "./browser";

const SCREENSHOT = join(__dirname, "..", "..", "docs", "web-client.png");

let stack: TestStack;
let browser: Browser;
let url: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  [stack, browser] = await Promise.all([startWebStack(), launchBrowser()]);
  url = `http://127.0.0.1:${stack.gateway.port}/`;
});

afterEach(() => closePages());

afterAll(async () => {
  await browser?.close();
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

const room = (name: string) => `${stack.id}-${name}`;
const user = (name: string) => `${name}-${stack.id}`;

test("the page, the sign-in and the static files are served on the WebSocket's port; the management API is not shadowed", async () => {
  const page = await fetch(url);
  expect(page.status).toBe(200);
  expect(page.headers.get("content-type")).toMatch(/text\/html/);
  expect(await page.text()).toContain('<script type="module" src="app.js">');
  const config = await (await fetch(`${url}config.json`)).json();
  expect(config).toEqual({ url: stack.url, signIn: "local" });
  const bad = await fetch(`${url}local/token`, {
    method: "POST",
    body: JSON.stringify({ name: "no spaces allowed" }),
  });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: string }).error).toMatch(/no spaces/);
  const good = await fetch(`${url}local/token`, { method: "POST", body: JSON.stringify({ name: "carol" }) });
  expect(good.status).toBe(200);
  const { token } = (await good.json()) as { token: string };
  const client = await TestClient.connect(stack.url, { token });
  clients.push(client);
  expect(await client.request({ action: "ping" }, "pong")).toEqual({ type: "pong" });
  // The management API answers as before: an unknown connection is 410 Gone, not the page.
  const gone = await fetch(`${stack.managementEndpoint}/@connections/nope`, { method: "GET" });
  expect(gone.status).not.toBe(200);
  expect(await gone.text()).not.toContain("<html");
});

test("two people chat in a room, by keyboard alone; axe-core finds nothing serious; the README's screenshot", async () => {
  // Plain names for the screenshot: users are this stack's own; room ids must be unique on the
  // PostgreSQL all stacks share.
  const lobby = `release-${stack.id.slice(1, 5)}`;
  const design = `design-${stack.id.slice(1, 5)}`;
  const alice = await signIn(browser, url, "alice");
  expect(await seriousViolations(alice)).toEqual([]);
  await joinRoom(alice, design);
  await joinRoom(alice, lobby);
  const bob = await signIn(browser, url, "bob");
  // Bob uses the keyboard only: Tab to the Room field, type, Enter; then to the message field.
  await bob.getByLabel("Room", { exact: true }).focus();
  await bob.keyboard.type(lobby);
  await bob.keyboard.press("Enter");
  await bob.getByRole("heading", { name: lobby, exact: true }).waitFor({ timeout: SHOWN_MS });

  await say(alice, "Hi Bob, is the release still on for Friday?");
  await waitForExactly(bob, ["Hi Bob, is the release still on for Friday?"], () => true);
  await bob.getByLabel("Message", { exact: true }).focus();
  await bob.keyboard.type("Yes: the build is green, and the notes are in the doc.");
  await bob.keyboard.press("Enter");
  await waitForNoPending(bob);
  await say(alice, "Great, I will tell the team.");
  const conversation = [
    "Hi Bob, is the release still on for Friday?",
    "Yes: the build is green, and the notes are in the doc.",
    "Great, I will tell the team.",
  ];
  await waitForExactly(alice, conversation, () => true);
  await waitForExactly(bob, conversation, () => true);

  // Each message names its sender and time.
  const first = log(bob).getByRole("listitem").first();
  expect(await first.textContent()).toContain("alice");
  expect(await first.locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
  // Nothing shows as pending once acknowledged.
  await waitForNoPending(alice);

  // Another room of Alice's gets a message: her room list counts it.
  await joinRoom(bob, design);
  await say(bob, "The mockups are up.");
  await alice
    .getByRole("navigation", { name: "Rooms" })
    .getByRole("button", { name: new RegExp(design) })
    .getByText("1 unread")
    .waitFor({ timeout: SHOWN_MS });
  await bob
    .getByRole("navigation", { name: "Rooms" })
    .getByRole("button", { name: new RegExp(lobby) })
    .click();
  await bob.getByRole("heading", { name: lobby, exact: true }).waitFor({ timeout: SHOWN_MS });

  expect(await seriousViolations(alice)).toEqual([]);
  expect(await seriousViolations(bob)).toEqual([]);
  await alice.screenshot({ path: SCREENSHOT });

  // A reload keeps the signed-in person, the room and its history.
  await alice.reload();
  await connected(alice);
  await alice.getByRole("heading", { name: lobby, exact: true }).waitFor({ timeout: SHOWN_MS });
  await waitForExactly(alice, conversation, () => true);
  await say(bob, "Still there after the reload?");
  await waitForExactly(alice, [...conversation, "Still there after the reload?"], () => true);
  await alice.context().close();
  await bob.context().close();
});

test("older history comes in on scrolling up, each message once and in order", async () => {
  const busy = room("busy");
  // 70 messages from seven people (ten each, within the per-user burst).
  for (let u = 0; u < 7; u++) {
    const c = await TestClient.connect(stack.url, { token: await stack.token(user(`w${u}`)) });
    clients.push(c);
    await c.request({ action: "joinRoom", roomId: busy }, "joined");
    for (let i = 0; i < 10; i++) {
      const n = u * 10 + i + 1;
      const frame = { action: "sendMessage", roomId: busy, text: `m${n}`, clientMsgId: `m${n}` };
      // A transient INTERNAL (or RATE_LIMITED) is retried with the same clientMsgId, as a client must.
      let answer = await c.request(frame, "ack");
      for (
        let tries = 0;
        answer.type === "error" && /INTERNAL|RATE_LIMITED/.test(answer.code) && tries < 5;
        tries++
      ) {
        await new Promise((r) => setTimeout(r, 500));
        answer = await c.request(frame, "ack");
      }
      expect(answer).toMatchObject({ type: "ack", clientMsgId: `m${n}` });
    }
  }
  const all = Array.from({ length: 70 }, (_, i) => `m${i + 1}`);
  const reader = await signIn(browser, url, user("reader"));
  await joinRoom(reader, busy);
  // The newest page first.
  await waitForLog(reader, (t) => t.includes("m70") && t.length >= 20, "the newest messages");
  expect(await logTexts(reader)).not.toContain("m1");
  // Scroll to the top until the start of the room shows.
  const deadline = Date.now() + SHOWN_MS;
  while (!(await logTexts(reader)).includes("m1") && Date.now() < deadline) {
    await log(reader).evaluate((el) => {
      el.scrollTop = 0;
    });
    await reader.waitForTimeout(200);
  }
  await waitForExactly(reader, all, (t) => /^m\d+$/.test(t));
  await reader.getByText(/^The start of /).waitFor({ timeout: SHOWN_MS });
  await reader.context().close();
});

test("a private room with an invitation, a refused outsider, and a direct message with its unread count", async () => {
  const plans = room("plans");
  const alice = await signIn(browser, url, user("pa"));
  const bob = await signIn(browser, url, user("pb"));
  const carol = await signIn(browser, url, user("pc"));

  await submit(alice, "New private room", plans, "Create");
  await alice.getByRole("heading", { name: plans, exact: true }).waitFor({ timeout: SHOWN_MS });
  await submit(alice, "Invite user", user("pb"), "Invite");
  await alice
    .getByRole("alert")
    .getByText(`Invited ${user("pb")} to ${plans}.`)
    .waitFor({ timeout: SHOWN_MS });
  await say(alice, "Only for us two");

  // Bob is told at once, and finds the room in his list.
  await bob.getByRole("alert").getByText(`You were invited to ${plans}.`).waitFor({ timeout: SHOWN_MS });
  await bob
    .getByRole("navigation", { name: "Rooms" })
    .getByRole("button", { name: new RegExp(plans) })
    .click();
  await waitForExactly(bob, ["Only for us two"], () => true);
  await say(bob, "Agreed");
  await waitForExactly(alice, ["Only for us two", "Agreed"], () => true);

  // Carol guesses the name: refused with a sentence, and nothing of the room reaches her.
  await submit(carol, "Room", plans, "Join");
  await carol
    .getByRole("alert")
    .getByText(/You may not enter that room/)
    .waitFor({ timeout: SHOWN_MS });
  expect(await carol.getByRole("navigation", { name: "Rooms" }).getByText(plans).count()).toBe(0);
  expect(await logTexts(carol)).toEqual([]);

  // A direct message: Bob sees it in his list with an unread count, then reads it.
  await submit(alice, "Direct message to", user("pb"), "Open");
  await alice.getByRole("heading", { name: `@${user("pb")}`, exact: true }).waitFor({ timeout: SHOWN_MS });
  await say(alice, "A word in private");
  const dm = bob
    .getByRole("navigation", { name: "Rooms" })
    .getByRole("button", { name: new RegExp(`@${user("pa")}`) });
  await dm.getByText("1 unread").waitFor({ timeout: SHOWN_MS });
  await dm.click();
  await waitForExactly(bob, ["A word in private"], () => true);
  await dm.getByText(/unread/).waitFor({ state: "detached", timeout: SHOWN_MS });
  await say(bob, "Heard");
  await waitForExactly(alice, ["A word in private", "Heard"], () => true);
  for (const p of [alice, bob, carol]) await p.context().close();
});

test("the sign-in page passes axe-core, and a name the protocol refuses is refused with a sentence", async () => {
  const context = await browser.newContext();
  const page: Page = await context.newPage();
  await page.goto(url);
  await page.getByLabel("Name", { exact: true }).waitFor({ timeout: SHOWN_MS });
  expect(await seriousViolations(page)).toEqual([]);
  await submit(page, "Name", "two words", "Sign in");
  await page
    .getByRole("alert")
    .getByText(/no spaces/)
    .waitFor({ timeout: SHOWN_MS });
  await context.close();
});
