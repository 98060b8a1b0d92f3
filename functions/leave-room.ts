/** `leaveRoom`: stop being a member; leaving a room not joined is not an error. */
import { leaveRoom } from "../core/chat";
import { LeaveRoomFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("leaveRoom", async (body, caller) => {
  const frame = LeaveRoomFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "leaveRoom" });
  const outcome = await leaveRoom(roomDeps(), caller, frame.data.roomId);
  if (!outcome.ok) return refuse(outcome.code, "leaveRoom");
  return reply({ type: "left", roomId: frame.data.roomId });
});
