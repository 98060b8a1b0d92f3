/** `getHistory`: a page of the room's messages in ascending seq; membership required. */
import { getHistory } from "../core/chat";
import { GetHistoryFrame } from "../core/schemas";
import { messageBus } from "../core/wiring/bus";
import { messageHistory } from "../core/wiring/history";
import { connectionStore } from "../core/wiring/store";
import { describeIssue, errorReply, reply, route } from "./respond";

export const handler = route("getHistory", async (body, caller) => {
  const frame = GetHistoryFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "getHistory" });
  const outcome = await getHistory(
    { store: connectionStore, bus: messageBus, history: messageHistory },
    caller,
    frame.data,
  );
  if (!outcome.ok) {
    return errorReply("NOT_A_MEMBER", "Join the room before reading its history.", { action: "getHistory" });
  }
  return reply({
    type: "history",
    roomId: frame.data.roomId,
    messages: outcome.messages,
    hasMore: outcome.hasMore,
  });
});
