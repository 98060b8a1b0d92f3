/** `typing`: shown to the room's other connections (throttled, never answered unless refused). */
import { typing } from "../core/presence";
import { TypingFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, route } from "./handler";
import { roomDeps } from "./room-deps";

export const handler = route("typing", async (body, caller) => {
  const frame = TypingFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "typing" });
  const outcome = await typing(roomDeps(), caller, frame.data.roomId);
  if (!outcome.ok) return refuse(outcome.code, "typing");
  return { statusCode: 200 };
});
