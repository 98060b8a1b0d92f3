/**
 * Helpers for the browser tests: a real Chromium (Debian's, driven by playwright-core; no browser
 * downloads), a local stack whose gateway port also serves the web client (as `npm run dev` does),
 * and people: each its own browser context (its own storage), signed in by name through the page.
 * Everything is found by role and label, as a person finds it; waits are on what the page shows.
 */
import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import type { StackOptions } from "../../local/stack";
import { createWebHandler } from "../../local/web";
import { startTestStack, type TestStack } from "../support/stack";
import { TcpProxy } from "../support/tcp-proxy";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH.`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
}

/** A test stack whose gateway serves the web client and the local sign-in, as `npm run dev` does. */
export async function startWebStack(opts: StackOptions & { pingSeconds?: number } = {}): Promise<TestStack> {
  let secret = "";
  const httpHandler = await createWebHandler({
    stage: process.env.STAGE ?? "dev",
    secret: () => secret,
    pingSeconds: opts.pingSeconds,
  });
  const stack = await startTestStack({ ...opts, httpHandler });
  secret = stack.env.JWT_SECRET as string;
  return stack;
}

/** What a browser test file works with; filled in before its first test. */
export interface WebSession {
  stack: TestStack;
  browser: Browser;
  /** The web client's address. */
  url: string;
  /** A TCP proxy in front of the gateway that the test can cut (with `proxy: true`). */
  proxy: TcpProxy;
  /** A room id of this stack's own. */
  room(name: string): string;
}

/**
 * The set-up of a browser test file: a web stack and a Chromium started before its tests (and, with
 * `proxy`, a proxy to the gateway), its pages closed after each test, everything stopped after all.
 */
export function webSessionPerFile(
  opts: StackOptions & { pingSeconds?: number; proxy?: boolean } = {},
): WebSession {
  const { proxy: withProxy, ...stackOptions } = opts;
  const session = { room: (name: string) => `${session.stack.id}-${name}` } as WebSession;
  beforeAll(async () => {
    [session.stack, session.browser] = await Promise.all([startWebStack(stackOptions), launchBrowser()]);
    session.url = `http://127.0.0.1:${session.stack.gateway.port}/`;
    if (withProxy)
      session.proxy = await TcpProxy.start({ host: "127.0.0.1", port: session.stack.gateway.port });
  });
  afterEach(async () => {
    session.proxy?.pass();
    await closePages();
  });
  afterAll(async () => {
    await session.browser?.close();
    await session.proxy?.close();
    await session.stack?.stop();
  });
  return session;
}

/**
 * Two people in `roomId`: the first reaches the gateway through the session's proxy (so the test can
 * cut its network) and is watched by `watch` from its first socket, the second directly.
 */
export async function pairBehindProxy(
  session: WebSession,
  roomId: string,
  names: [string, string],
  watch?: (page: Page) => void,
): Promise<{ alice: Page; bob: Page }> {
  const alice = await signIn(session.browser, `http://127.0.0.1:${session.proxy.port}/`, names[0], watch);
  await joinRoom(alice, roomId);
  const bob = await signIn(session.browser, session.url, names[1]);
  await joinRoom(bob, roomId);
  return { alice, bob };
}

/** The frames a page sends and receives on all its WebSockets, parsed (pass `watch` to signIn). */
export function recordFrames() {
  const sent: Record<string, unknown>[] = [];
  const received: Record<string, unknown>[] = [];
  let sockets = 0;
  const watch = (page: Page) =>
    page.on("websocket", (ws) => {
      sockets++;
      ws.on("framesent", ({ payload }) => sent.push(JSON.parse(String(payload))));
      ws.on("framereceived", ({ payload }) => {
        for (const line of String(payload).split("\n")) if (line) received.push(JSON.parse(line));
      });
    });
  return { sent, received, sockets: () => sockets, watch };
}

/** How long a test waits for something the page should show. */
export const SHOWN_MS = 30_000;

/** Every browser context signIn opened and nobody closed yet. */
const contexts = new Set<BrowserContext>();

/** Closes the pages a test left open (a failed test's too, so they do not load the next one). */
export async function closePages(): Promise<void> {
  await Promise.all([...contexts].map((c) => c.close().catch(() => undefined)));
  contexts.clear();
}

/**
 * Opens the client at `url` in a fresh context and signs in as `name`; `before` runs on the page
 * before it loads (to watch its sockets from the first).
 */
export async function signIn(
  browser: Browser,
  url: string,
  name: string,
  before?: (page: Page) => void,
): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  contexts.add(context);
  context.on("close", () => contexts.delete(context));
  const page = await context.newPage();
  before?.(page);
  await page.goto(url);
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await connected(page);
  return page;
}

/** Waits until the connection state reads `text`. */
export async function stateIs(page: Page, text: string | RegExp, timeout = SHOWN_MS): Promise<void> {
  await page
    .getByRole("status")
    .filter({ hasText: typeof text === "string" ? new RegExp(`^${text}$`) : text })
    .waitFor({ timeout });
}

export const connected = (page: Page) => stateIs(page, "Connected");

/** Types into the labelled field and presses the button. */
export async function submit(page: Page, label: string, value: string, button: string): Promise<void> {
  await page.getByLabel(label, { exact: true }).fill(value);
  await page.getByRole("button", { name: button, exact: true }).click();
}

export async function joinRoom(page: Page, roomId: string): Promise<void> {
  await submit(page, "Room", roomId, "Join");
  await page.getByRole("heading", { name: roomId, exact: true }).waitFor({ timeout: SHOWN_MS });
}

/** Types a message and presses Enter, as a person does. */
export async function say(page: Page, text: string): Promise<void> {
  const field = page.getByLabel("Message", { exact: true });
  await field.fill(text);
  await field.press("Enter");
}

export const log = (page: Page): Locator => page.getByRole("log");

/** The texts of the messages in the log, top to bottom (pending ones included). */
export function logTexts(page: Page): Promise<string[]> {
  return log(page).getByRole("listitem").locator("p.text").allTextContents();
}

/** Waits until `check` holds for the log's texts; fails with the last texts seen. */
export async function waitForLog(
  page: Page,
  check: (texts: string[]) => boolean,
  what: string,
  timeout = SHOWN_MS,
): Promise<string[]> {
  const deadline = Date.now() + timeout;
  let texts: string[] = [];
  while (Date.now() < deadline) {
    texts = await logTexts(page);
    if (check(texts)) return texts;
    await page.waitForTimeout(100);
  }
  throw new Error(`the log never showed ${what}; it showed ${JSON.stringify(texts.slice(-30))}`);
}

/** Waits until the log holds exactly `expected` among the texts that `mine` selects, in that order. */
export function waitForExactly(
  page: Page,
  expected: string[],
  mine: (t: string) => boolean,
): Promise<string[]> {
  return waitForLog(
    page,
    (texts) => JSON.stringify(texts.filter(mine)) === JSON.stringify(expected),
    `exactly ${JSON.stringify(expected)}`,
  );
}

/** Waits until no message of the page shows as pending ("Sending…"). */
export async function waitForNoPending(page: Page, timeout = SHOWN_MS): Promise<void> {
  const pending = log(page).getByText("Sending…");
  const deadline = Date.now() + timeout;
  while ((await pending.count()) > 0) {
    if (Date.now() > deadline) throw new Error(`${await pending.count()} messages still pending`);
    await page.waitForTimeout(100);
  }
}

/**
 * Says `text` and waits until the server acknowledged it: what a test does before the next message
 * when it expects the order said (two frames of one connection are two concurrent invocations, and
 * the server's order, which the page shows, may differ from the order sent).
 */
export async function sayAndWait(page: Page, text: string): Promise<void> {
  await say(page, text);
  await waitForLog(page, (t) => t.includes(text), `"${text}"`);
  await waitForNoPending(page);
}

/** Runs axe-core in the page and returns its serious and critical violations. */
export async function seriousViolations(
  page: Page,
): Promise<{ id: string; impact: string; nodes: string[] }[]> {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  // A string, not a function: this project's type check has no DOM library.
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ["violations"] }).then((r) =>
    r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => ({
      id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")),
    })))`)) as { id: string; impact: string; nodes: string[] }[];
  return violations;
}
