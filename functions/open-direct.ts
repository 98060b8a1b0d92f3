/** `openDirect`: the direct room of the caller and another user, the same whichever opens it. */
import { openDirect } from "../core/rooms";
import { OpenDirectFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { joinDeps } from "./join-deps";

export const handler = route("openDirect", async (body, caller) => {
  const frame = OpenDirectFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "openDirect" });
  const outcome = await openDirect(joinDeps(), caller, frame.data.userId);
  if (!outcome.ok)
    return refuse(outcome.code, "openDirect", "message" in outcome ? outcome.message : undefined);
  return reply({ type: "direct", roomId: outcome.roomId, userId: frame.data.userId });
});
