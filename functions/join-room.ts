/** `joinRoom`: become a member of the room; answers the room's newest seq. */
import { JoinRoomFrame } from "../core/schemas";
import { getServices } from "../core/wiring";
import { describeIssue, errorReply, reply, route } from "./respond";

export const handler = route("joinRoom", async (body, caller) => {
  const frame = JoinRoomFrame.safeParse(body);
  if (!frame.success) return errorReply("BAD_REQUEST", describeIssue(frame.error), { action: "joinRoom" });
  const { lastSeq } = await (await getServices()).chat.join(caller, frame.data.roomId);
  return reply({ type: "joined", roomId: frame.data.roomId, lastSeq });
});
