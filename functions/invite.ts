/** `invite`: the owner of a private room invites a user; the invitee's connections are told. */
import { invite } from "../core/rooms";
import { InviteFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("invite", async (body, caller) => {
  const frame = InviteFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "invite" });
  const outcome = await invite(roomDeps(), caller, frame.data.roomId, frame.data.userId);
  if (!outcome.ok) return refuse(outcome.code, "invite", "message" in outcome ? outcome.message : undefined);
  return reply({ type: "invited", roomId: frame.data.roomId, userId: frame.data.userId });
});
