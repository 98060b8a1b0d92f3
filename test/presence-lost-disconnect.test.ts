/**
 * Presence when API Gateway's `$disconnect` never comes (it is best-effort): here the emulator drops
 * every one (GATEWAY_DISCONNECT_DROP=1) and closes connections after a short idle timeout and a
 * short lifetime cap, as AWS does after 10 minutes and 2 hours. Presence must neither keep ghosts
 * nor flap: a connection gone without `$disconnect` is found by asking API Gateway once it has been
 * idle that long, and a client that comes back within the grace shows no `offline`.
 */

import { sleep } from "../core/retry";
import type { Frame, TestClient } from "./support/client";
import { stackPerFile } from "./support/stack";

const IDLE_MS = 4000;
const LIFETIME_MS = 20_000;
const GRACE_SECONDS = 2;

const { connect, room } = stackPerFile({
  fanoutWorkers: 1,
  persisters: 0,
  idleTimeoutMs: IDLE_MS,
  maxLifetimeMs: LIFETIME_MS,
  settings: { GATEWAY_DISCONNECT_DROP: "1", PRESENCE_GRACE_SECONDS: String(GRACE_SECONDS) },
});

/** Keeps a client from idling, as a client's periodic ping does. */
function keepAlive(client: TestClient): () => void {
  const timer = setInterval(() => client.send({ action: "ping" }), IDLE_MS / 4);
  return () => clearInterval(timer);
}

const states = (client: TestClient, roomId: string, userId: string) =>
  client.frames
    .filter((f) => f.type === "presence" && f.roomId === roomId && f.userId === userId)
    .map((f) => f.state);

async function shown(client: TestClient, roomId: string): Promise<string[]> {
  const list = await client.request({ action: "getPresence", roomId }, "presenceList");
  return (list.users as Frame[]).map((u) => u.userId);
}

test("a socket killed without a close, whose $disconnect is lost, goes offline once found gone; no ghost", async () => {
  const id = room("killed");
  const watcher = await connect("ld-watch");
  const stop = keepAlive(watcher);
  try {
    await watcher.request({ action: "joinRoom", roomId: id }, "joined");
    const victim = await connect("ld-victim");
    await victim.request({ action: "joinRoom", roomId: id }, "joined");
    await watcher.next((f) => f.type === "presence" && f.userId === "ld-victim" && f.state === "online");
    const killedAt = Date.now();
    victim.terminate();
    const offline = await watcher.next(
      (f) => f.type === "presence" && f.userId === "ld-victim" && f.state === "offline",
      IDLE_MS + GRACE_SECONDS * 1000 + 15_000,
    );
    expect(offline).toMatchObject({ roomId: id });
    // Not before the grace: it is counted from when the connection was found gone.
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(GRACE_SECONDS * 1000);
    expect(await shown(watcher, id)).toEqual(["ld-watch"]);
  } finally {
    stop();
  }
});

test("a connection that pings stays shown past the idle timeout; one left idle is closed and goes offline", async () => {
  const id = room("idle");
  const active = await connect("ld-active");
  const stop = keepAlive(active);
  try {
    await active.request({ action: "joinRoom", roomId: id }, "joined");
    const idle = await connect("ld-idle");
    await idle.request({ action: "joinRoom", roomId: id }, "joined");
    // The gateway closes the idle one; its $disconnect is dropped.
    expect((await idle.closed).code).toBe(1001);
    await active.next(
      (f) => f.type === "presence" && f.userId === "ld-idle" && f.state === "offline",
      IDLE_MS + GRACE_SECONDS * 1000 + 15_000,
    );
    // Well past the idle timeout, the pinging connection is still there and still shown.
    await sleep(IDLE_MS);
    expect(await shown(active, id)).toEqual(["ld-active"]);
    expect(states(active, id, "ld-active")).not.toContain("offline");
  } finally {
    stop();
  }
});

test("across the lifetime cap: the client reconnects and resumes within the grace, and no one sees it flap", async () => {
  const id = room("cap");
  let client = await connect("ld-capped");
  let stop = keepAlive(client);
  const connectedAt = Date.now();
  await client.request({ action: "joinRoom", roomId: id }, "joined");
  // The watcher comes later, so that its own connection outlives the observation below.
  await sleep(LIFETIME_MS / 2);
  const watcher = await connect("ld-watch2");
  const stopWatcher = keepAlive(watcher);
  try {
    await watcher.request({ action: "joinRoom", roomId: id }, "joined");
    expect(await shown(watcher, id)).toEqual(["ld-capped", "ld-watch2"]);
    // The gateway ends the connection at its lifetime cap ($disconnect lost); the client is back at once.
    expect((await client.closed).code).toBe(1001);
    expect(Date.now() - connectedAt).toBeGreaterThanOrEqual(LIFETIME_MS - 500);
    stop();
    client = await connect("ld-capped");
    stop = keepAlive(client);
    const resumed = await client.request(
      { action: "resume", rooms: [{ roomId: id, afterSeq: 0 }] },
      "resumed",
    );
    expect(resumed).toMatchObject({ rooms: [id], failed: [] });
    // The old connection is found gone and its grace passes; the user never shows offline.
    await sleep(IDLE_MS + GRACE_SECONDS * 1000 + 2500);
    expect(states(watcher, id, "ld-capped")).toEqual([]);
    expect(await shown(watcher, id)).toEqual(["ld-capped", "ld-watch2"]);
  } finally {
    stop();
    stopWatcher();
  }
});
