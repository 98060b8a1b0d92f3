/** `markRead`: how far the user has read the room; never backwards. */
import { markRead } from "../core/rooms";
import { MarkReadFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("markRead", async (body, caller) => {
  const frame = MarkReadFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "markRead" });
  const outcome = await markRead(roomDeps(), caller, frame.data.roomId, frame.data.seq);
  if (!outcome.ok) return refuse(outcome.code, "markRead");
  return reply({ type: "read", roomId: frame.data.roomId, seq: outcome.seq });
});
