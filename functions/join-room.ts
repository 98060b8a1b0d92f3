/** `joinRoom`: become a member of a room the user may enter; answers its newest seq and the user's read position. */
import { joinRoom } from "../core/chat";
import { JoinRoomFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { joinDeps } from "./join-deps";

export const handler = route("joinRoom", async (body, caller) => {
  const frame = JoinRoomFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "joinRoom" });
  const outcome = await joinRoom(joinDeps(), caller, frame.data.roomId);
  if (!outcome.ok) return refuse(outcome.code, "joinRoom");
  return reply({
    type: "joined",
    roomId: frame.data.roomId,
    lastSeq: outcome.lastSeq,
    lastReadSeq: outcome.lastReadSeq,
  });
});
