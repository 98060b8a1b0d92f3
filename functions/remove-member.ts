/** `removeMember`: the owner removes a user; its connections get `removed` and nothing more of the room. */
import { removeMember } from "../core/rooms";
import { RemoveMemberFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("removeMember", async (body, caller) => {
  const frame = RemoveMemberFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "removeMember" });
  const outcome = await removeMember(roomDeps(), caller, frame.data.roomId, frame.data.userId);
  if (!outcome.ok)
    return refuse(outcome.code, "removeMember", "message" in outcome ? outcome.message : undefined);
  return reply({ type: "removed", roomId: frame.data.roomId, userId: frame.data.userId });
});
