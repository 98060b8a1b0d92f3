/** The ports and settings the room actions share; each is opened on first use. */
import { config } from "../core/config";
import type { RoomsDeps } from "../core/rooms";
import { messageBus } from "../core/wiring/bus";
import { messageHistory } from "../core/wiring/history";
import { sendLedger } from "../core/wiring/ledger";
import { roomDirectory } from "../core/wiring/rooms";
import { connectionStore } from "../core/wiring/store";

export function roomsDeps(): RoomsDeps {
  return {
    store: connectionStore,
    bus: messageBus,
    ledger: sendLedger,
    history: messageHistory,
    rooms: roomDirectory,
    limits: config.rooms(),
    actionRateLimit: config.actionRateLimit(),
    connectionTtlSeconds: config.table().connectionTtlSeconds,
  };
}
