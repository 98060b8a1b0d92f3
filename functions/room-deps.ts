/**
 * The ports and settings the room actions share; each is opened on first use. What joins a
 * connection to a room also reads PostgreSQL (join-deps.ts); these do not, so their handlers do not
 * bundle pg (infra/bundle.test.ts).
 */
import { config } from "../core/config";
import type { RoomsDeps } from "../core/rooms";
import { messageBus } from "../core/wiring/bus";
import { sendLedger } from "../core/wiring/ledger";
import { presenceRegistry } from "../core/wiring/presence";
import { roomDirectory } from "../core/wiring/rooms";
import { connectionStore } from "../core/wiring/store";

/** For leaving, inviting, removing, listing and marking read. */
export function roomDeps(): Omit<RoomsDeps, "history"> {
  return {
    store: connectionStore,
    bus: messageBus,
    ledger: sendLedger,
    rooms: roomDirectory,
    presence: presenceRegistry,
    presenceTimes: config.presence(),
    limits: config.rooms(),
    actionRateLimit: config.actionRateLimit(),
    connectionTtlSeconds: config.table().connectionTtlSeconds,
  };
}
