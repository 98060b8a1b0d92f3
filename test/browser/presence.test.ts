/**
 * PROTOCOL.md v1.1's presence, typing and resume as a person sees them in the web client (a real
 * Chromium against the local stack): who is online, "… is typing", someone leaving, and a page that
 * comes back after a dropped network with one `resume` from the last seq it saw rather than joins.
 */
import type { Page } from "playwright-core";
import {
  connected,
  joinRoom,
  pairBehindProxy,
  recordFrames,
  SHOWN_MS,
  sayAndWait,
  signIn,
  stateIs,
  waitForExactly,
  webSessionPerFile,
} from "./browser";

const web = webSessionPerFile({ settings: { PRESENCE_GRACE_SECONDS: "1" }, proxy: true });
const { room } = web;
const online = (page: Page) => page.getByText(/^Online: /);

test("who is online, who is typing, and who left", async () => {
  const r = room("presence");
  const alice = await signIn(web.browser, web.url, "oa");
  await joinRoom(alice, r);
  const bob = await signIn(web.browser, web.url, "ob");
  await joinRoom(bob, r);
  await online(alice)
    .filter({ hasText: /\bob\b/ })
    .waitFor({ timeout: SHOWN_MS });
  await online(bob)
    .filter({ hasText: /\boa\b/ })
    .waitFor({ timeout: SHOWN_MS });

  await bob.getByLabel("Message", { exact: true }).pressSequentially("thinking about it", { delay: 20 });
  await alice.getByText("ob is typing…").waitFor({ timeout: SHOWN_MS });
  await bob.getByLabel("Message", { exact: true }).press("Enter");
  await waitForExactly(alice, ["thinking about it"], () => true);
  await alice.getByText("ob is typing…").waitFor({ state: "detached", timeout: SHOWN_MS });

  await bob.context().close();
  await online(alice)
    .filter({ hasText: /\bob\b/ })
    .waitFor({ state: "detached", timeout: SHOWN_MS });
  await online(alice)
    .filter({ hasText: /\boa\b/ })
    .waitFor({ timeout: SHOWN_MS });
  await alice.context().close();
});

test("after a dropped network the page sends one resume from the last seq it saw, not joins", async () => {
  const r = room("resume");
  const { sent, received, watch } = recordFrames();
  const { alice, bob } = await pairBehindProxy(web, r, ["ra", "rb"], watch);
  const texts = ["one", "two", "three"];
  for (const t of texts) await sayAndWait(bob, t);
  await waitForExactly(alice, texts, () => true);
  const before = sent.length;

  web.proxy.drop();
  await sayAndWait(bob, "four");
  await stateIs(alice, "Reconnecting…");
  await sayAndWait(bob, "five");
  await waitForExactly(bob, [...texts, "four", "five"], () => true);
  web.proxy.pass();
  await connected(alice);
  await waitForExactly(alice, [...texts, "four", "five"], () => true);

  const after = sent.slice(before);
  const resume = after.find((f) => f.action === "resume") as {
    rooms: { roomId: string; afterSeq: number }[];
  };
  expect(resume).toBeDefined();
  expect(resume.rooms).toContainEqual({ roomId: r, afterSeq: 3 });
  expect(after.filter((f) => f.action === "joinRoom")).toEqual([]);
  expect(received).toContainEqual(
    expect.objectContaining({ type: "resumed", rooms: expect.arrayContaining([r]) }),
  );
  await alice.context().close();
  await bob.context().close();
});
