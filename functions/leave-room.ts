/** `leaveRoom`: stop being a member; leaving a room not joined is not an error. */
import { leaveRoom } from "../core/chat";
import { LeaveRoomFrame } from "../core/schemas";
import { messageBus } from "../core/wiring/bus";
import { connectionStore } from "../core/wiring/store";
import { describeIssue, errorReply, reply, route } from "./respond";

export const handler = route("leaveRoom", async (body, caller) => {
  const frame = LeaveRoomFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "leaveRoom" });
  await leaveRoom({ store: connectionStore, bus: messageBus }, caller, frame.data.roomId);
  return reply({ type: "left", roomId: frame.data.roomId });
});
