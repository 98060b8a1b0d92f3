/** `leaveRoom`: stop being a member; leaving a room not joined is not an error. */
import { LeaveRoomFrame } from "../core/schemas";
import { getServices } from "../core/wiring";
import { describeIssue, errorReply, reply, route } from "./respond";

export const handler = route("leaveRoom", async (body, caller) => {
  const frame = LeaveRoomFrame.safeParse(body);
  if (!frame.success) return errorReply("BAD_REQUEST", describeIssue(frame.error), { action: "leaveRoom" });
  await (await getServices()).chat.leave(caller, frame.data.roomId);
  return reply({ type: "left", roomId: frame.data.roomId });
});
