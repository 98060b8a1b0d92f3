/**
 * Presence and typing (PROTOCOL.md v1.1): who is in a room, and who is typing there. Presence counts
 * a user's connections that joined the room; a user whose last connection went away without leaving
 * stays shown for the grace, so a reconnect does not flap. `$disconnect` may never come (API Gateway
 * sends it best-effort): a connection idle past the gateway's idle timeout is asked of API Gateway
 * (GetConnection), and one that is gone is cleaned up like a `$disconnect`. Typing is throttled per
 * user and room, goes through the room's fan-out stream (never Kafka, never stored) and is dropped
 * when it would arrive late.
 */
import { type Caller, type ChatDeps, disconnect, isMember, metered, notJoined, presenceFrame } from "./chat";
import type { ConnectionProbe, PresenceUser } from "./ports";

/** At most one typing event per user and room in this window. */
export const TYPING_EVERY_MS = 2000;
/** A typing event older than this is dropped rather than delivered. */
export const TYPING_STALE_MS = 3000;

export type PresenceDeps = Pick<ChatDeps, "store" | "bus" | "rooms" | "presence" | "actionRateLimit" | "now">;

type Refused = { ok: false; code: "FORBIDDEN" | "NOT_A_MEMBER" | "RATE_LIMITED" };

/** The users shown in a room the connection joined. */
export async function getPresence(
  deps: PresenceDeps,
  caller: Caller,
  roomId: string,
): Promise<{ ok: true; users: PresenceUser[] } | Refused> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  if (!(await isMember(deps, caller.connectionId, roomId))) return notJoined(deps, caller.userId, roomId);
  return { ok: true, users: await (await deps.presence()).list(roomId) };
}

/**
 * Shows the other member connections that the caller is typing: at most once per
 * TYPING_EVERY_MS per user and room (`shown: false` for the rest). A caller over its allowance is
 * not shown either: typing is never answered, so it is dropped, not refused.
 */
export async function typing(
  deps: PresenceDeps,
  caller: Caller,
  roomId: string,
): Promise<{ ok: true; shown: boolean } | Refused> {
  if (!(await isMember(deps, caller.connectionId, roomId))) return notJoined(deps, caller.userId, roomId);
  if (!(await metered(deps, caller))) return { ok: true, shown: false };
  const presence = await deps.presence();
  if (!(await presence.mayShowTyping(roomId, caller.userId, TYPING_EVERY_MS)))
    return { ok: true, shown: false };
  const frame = {
    type: "typing",
    roomId,
    userId: caller.userId,
    ...(caller.name !== undefined ? { name: caller.name } : {}),
  };
  const now = (deps.now ?? Date.now)();
  await (await deps.bus()).announce(roomId, frame, {
    except: caller.connectionId,
    dropAfter: now + TYPING_STALE_MS,
  });
  return { ok: true, shown: true };
}

export type ReapDeps = Pick<ChatDeps, "store" | "bus" | "presence" | "presenceTimes" | "now"> & {
  probe: () => Promise<ConnectionProbe>;
};

/**
 * One round of presence upkeep: announces the users whose grace ended, and asks API Gateway about
 * connections idle past its idle timeout (their `$disconnect` may have been lost): one that is gone
 * is cleaned up as `$disconnect` would have, one that lives is asked again when it could next be
 * idle that long. Answers what it did.
 */
export async function reapPresence(
  deps: ReapDeps,
  max = 100,
): Promise<{ offline: number; gone: number; alive: number }> {
  const [presence, bus] = await Promise.all([deps.presence(), deps.bus()]);
  let gone = 0;
  let alive = 0;
  const idleMs = deps.presenceTimes.idleSeconds * 1000;
  const suspects = await presence.suspects(max);
  if (suspects.length > 0) {
    const probe = await deps.probe();
    for (const connectionId of suspects) {
      const last = await probe.lastActive(connectionId);
      if (last === "gone") {
        await disconnect(deps, connectionId);
        gone++;
      } else {
        const now = (deps.now ?? Date.now)();
        await presence.recheck(connectionId, Math.max(1000, last + idleMs - now + 1000));
        alive++;
      }
    }
  }
  const expired = await presence.expired(max);
  for (const { roomId, user } of expired) await bus.announce(roomId, presenceFrame(roomId, user, "offline"));
  return { offline: expired.length, gone, alive };
}
