/**
 * Rooms you may enter (PROTOCOL.md v1.1): private rooms with invitations, direct rooms for a pair of
 * users, the rooms that follow a user from device to device, and read positions. Access is decided
 * here, on the server, for every action; the client's word is never taken for it.
 */
import { createHash } from "node:crypto";
import {
  type Caller,
  type ChatDeps,
  DIRECT_PREFIX,
  type JoinConnectionDeps,
  joinConnection,
  leavePresence,
  metered,
  openConnections,
  type Refusal,
} from "./chat";
import { RoomFullError } from "./errors";
import type { RoomKind } from "./ports";

export type RoomsDeps = JoinConnectionDeps & Pick<ChatDeps, "rooms" | "limits" | "actionRateLimit">;
/** What the owner's actions take: no seq is read, so no PostgreSQL. */
export type OwnerDeps = Pick<
  ChatDeps,
  "store" | "bus" | "rooms" | "presence" | "limits" | "actionRateLimit" | "now"
>;
export type ListDeps = Pick<ChatDeps, "bus" | "rooms" | "ledger" | "actionRateLimit">;
export type ReadDeps = Pick<ChatDeps, "bus" | "rooms" | "actionRateLimit">;

type Done<T> =
  | ({ ok: true } & T)
  | Refusal
  | { ok: false; code: "ROOM_EXISTS" | "BAD_REQUEST"; message?: string };

/** The direct room of a pair of users: the same id whichever of the two asks. */
export function directRoomId(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a];
  return `${DIRECT_PREFIX}${createHash("sha256").update(`${x}\n${y}`).digest("base64url").slice(0, 32)}`;
}

/** Tells each open connection of each user, through the room's fan-out stream. */
async function tell(
  deps: Pick<ChatDeps, "store" | "bus" | "now">,
  roomId: string,
  userIds: string[],
  frame: object,
): Promise<void> {
  const connections = (await Promise.all(userIds.map((u) => openConnections(deps, u)))).flat();
  await (await deps.bus()).notify(roomId, connections, frame);
}

/**
 * Creates a private room owned by the caller, who is joined; `members` are invited (and told, on
 * their open connections). ROOM_EXISTS when the id was ever used, public rooms included.
 */
export async function createRoom(
  deps: RoomsDeps,
  caller: Caller,
  roomId: string,
  members: string[] = [],
): Promise<Done<{ lastSeq: number }>> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  if (roomId.startsWith(DIRECT_PREFIX)) return { ok: false, code: "FORBIDDEN" };
  const invited = [...new Set(members)].filter((u) => u !== caller.userId);
  const rooms = await deps.rooms();
  // A public room used before rooms had records has a seq, and is no one's to take.
  if ((await (await deps.ledger()).currentSeq(roomId)) !== undefined)
    return { ok: false, code: "ROOM_EXISTS" };
  let created: boolean;
  try {
    created = await rooms.createRoom(
      { roomId, kind: "private", owner: caller.userId },
      [
        { userId: caller.userId, role: "owner" },
        ...invited.map((userId) => ({ userId, role: "invited" as const })),
      ],
      deps.limits.maxMembers,
    );
  } catch (error) {
    if (error instanceof RoomFullError) return { ok: false, code: "ROOM_FULL" };
    throw error;
  }
  if (!created) return { ok: false, code: "ROOM_EXISTS" };
  const { lastSeq } = await joinConnection(deps, caller, roomId);
  for (const userId of invited) await tell(deps, roomId, [userId], { type: "invited", roomId, userId });
  return { ok: true, lastSeq };
}

/** An owner-only action's gate: metered, and only on a private room the caller owns. */
async function ownedRoom(deps: OwnerDeps, caller: Caller, roomId: string): Promise<{ ok: true } | Refusal> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  const room = await (await deps.rooms()).room(roomId);
  if (room?.kind !== "private" || room.owner !== caller.userId) return { ok: false, code: "FORBIDDEN" };
  return { ok: true };
}

/** The owner invites a user into its private room; the invitee's open connections are told. */
export async function invite(
  deps: OwnerDeps,
  caller: Caller,
  roomId: string,
  userId: string,
): Promise<Done<object>> {
  const owned = await ownedRoom(deps, caller, roomId);
  if (!owned.ok) return owned;
  if (userId === caller.userId) return { ok: true };
  const standing = await (await deps.rooms()).addUser(
    { roomId, kind: "private" },
    userId,
    "invited",
    deps.limits.maxMembers,
  );
  if (standing === "full") return { ok: false, code: "ROOM_FULL" };
  await tell(deps, roomId, [userId], { type: "invited", roomId, userId });
  return { ok: true };
}

/**
 * The owner removes a user from its private room: the user's records of the room go, its
 * connections stop receiving the room at once, and are told with a `removed` frame that the
 * fan-out sends in order with the room's messages, after which it delivers them nothing more.
 */
export async function removeMember(
  deps: OwnerDeps,
  caller: Caller,
  roomId: string,
  userId: string,
): Promise<Done<object>> {
  const owned = await ownedRoom(deps, caller, roomId);
  if (!owned.ok) return owned;
  if (userId === caller.userId) {
    return { ok: false, code: "BAD_REQUEST", message: "The owner cannot remove itself from its room." };
  }
  await (await deps.rooms()).removeUser(roomId, userId);
  const connections = await openConnections(deps, userId);
  const [store, bus] = await Promise.all([deps.store(), deps.bus()]);
  for (const connectionId of connections) {
    await bus.forgetMember([roomId], connectionId);
    await store.leaveRoom(connectionId, roomId);
  }
  await bus.bumpMembership([roomId]);
  await bus.notify(roomId, connections, { type: "removed", roomId, userId }, true);
  // After `removed`, so the removed connections receive nothing more of the room, not even this.
  for (const connectionId of connections) await leavePresence(deps, roomId, connectionId);
  return { ok: true };
}

/**
 * Opens (or reopens) the direct room of the caller and `userId`: the same room whichever of the two
 * opens it, the opener joined, the other user's open connections told.
 */
export async function openDirect(
  deps: RoomsDeps,
  caller: Caller,
  userId: string,
): Promise<Done<{ roomId: string; lastSeq: number }>> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  if (userId === caller.userId) {
    return { ok: false, code: "BAD_REQUEST", message: "A direct room is between two different users." };
  }
  const roomId = directRoomId(caller.userId, userId);
  const rooms = await deps.rooms();
  const existing = await rooms.room(roomId);
  if (existing && existing.kind !== "direct") return { ok: false, code: "FORBIDDEN" };
  if (!existing) {
    // Both may open it at once: whichever creates it, the other finds it.
    await rooms.createRoom(
      { roomId, kind: "direct" },
      [
        { userId: caller.userId, role: "member" },
        { userId, role: "member" },
      ],
      deps.limits.maxMembers,
    );
  }
  // A user who left its direct room comes back to it.
  for (const u of [caller.userId, userId]) {
    if (!(await rooms.userRoom(u, roomId))) await rooms.addUser({ roomId, kind: "direct" }, u, "member", 2);
  }
  const { lastSeq } = await joinConnection(deps, caller, roomId);
  await tell(deps, roomId, [userId], { type: "direct", roomId, userId: caller.userId });
  return { ok: true, roomId, lastSeq };
}

export interface ListedRoom {
  roomId: string;
  kind: RoomKind;
  lastSeq: number;
  lastReadSeq: number;
}

/** The caller's rooms, from any of its connections: joined until left, and invited to. */
export async function listRooms(deps: ListDeps, caller: Caller): Promise<Done<{ rooms: ListedRoom[] }>> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  const [rooms, ledger] = await Promise.all([deps.rooms(), deps.ledger()]);
  const mine = await rooms.userRooms(caller.userId);
  const listed = await Promise.all(
    mine.map(async (r) => ({
      roomId: r.roomId,
      kind: r.kind,
      lastSeq: (await ledger.currentSeq(r.roomId)) ?? 0,
      lastReadSeq: r.lastReadSeq,
    })),
  );
  return { ok: true, rooms: listed };
}

/** Records how far the user has read the room; it never goes backwards. */
export async function markRead(
  deps: ReadDeps,
  caller: Caller,
  roomId: string,
  seq: number,
): Promise<Done<{ seq: number }>> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  const stored = await (await deps.rooms()).markRead(caller.userId, roomId, seq);
  if (stored === undefined) return { ok: false, code: "FORBIDDEN" };
  return { ok: true, seq: stored };
}
