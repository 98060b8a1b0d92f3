/** `createRoom`: a private room owned by the caller, who is joined; `members` are invited. */
import { createRoom } from "../core/rooms";
import { CreateRoomFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { joinDeps } from "./join-deps";

export const handler = route("createRoom", async (body, caller) => {
  const frame = CreateRoomFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "createRoom" });
  const outcome = await createRoom(joinDeps(), caller, frame.data.roomId, frame.data.members);
  if (!outcome.ok)
    return refuse(outcome.code, "createRoom", "message" in outcome ? outcome.message : undefined);
  return reply({ type: "created", roomId: frame.data.roomId });
});
