/** `getPresence`: the users shown in a room the connection joined. */
import { getPresence } from "../core/presence";
import { GetPresenceFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("getPresence", async (body, caller) => {
  const frame = GetPresenceFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "getPresence" });
  const outcome = await getPresence(roomDeps(), caller, frame.data.roomId);
  if (!outcome.ok) return refuse(outcome.code, "getPresence");
  return reply({
    type: "presenceList",
    roomId: frame.data.roomId,
    users: outcome.users,
    count: outcome.users.length,
  });
});
