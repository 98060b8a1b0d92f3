/** `getHistory`: a page of the room's messages in ascending seq; membership required. */
import { getHistory } from "../core/chat";
import { GetHistoryFrame } from "../core/schemas";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { joinDeps } from "./join-deps";

export const handler = route("getHistory", async (body, caller) => {
  const frame = GetHistoryFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "getHistory" });
  const outcome = await getHistory(joinDeps(), caller, frame.data);
  if (!outcome.ok) {
    return outcome.code === "NOT_A_MEMBER"
      ? refuse("NOT_A_MEMBER", "getHistory", "Join the room before reading its history.")
      : refuse(outcome.code, "getHistory");
  }
  return reply({
    type: "history",
    roomId: frame.data.roomId,
    messages: outcome.messages,
    hasMore: outcome.hasMore,
  });
});
