/** The room actions' ports, with PostgreSQL: a room the ledger never counted starts after its highest stored seq. */
import type { RoomsDeps } from "../core/rooms";
import { messageHistory } from "../core/wiring/history";
import { roomDeps } from "./room-deps";

/** For what joins a connection to a room or reads its history. */
export function joinDeps(): RoomsDeps {
  return { ...roomDeps(), history: messageHistory };
}
