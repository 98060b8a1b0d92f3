/** `listRooms`: the caller's rooms, from any of its connections. */
import { listRooms } from "../core/rooms";
import { ListRoomsFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("listRooms", async (body, caller) => {
  const frame = ListRoomsFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "listRooms" });
  const outcome = await listRooms(roomDeps(), caller);
  if (!outcome.ok) return refuse(outcome.code, "listRooms");
  return reply({ type: "rooms", rooms: outcome.rooms });
});
