/** `joinRoom`: become a member of the room; answers the room's newest seq. */
import { joinRoom } from "../core/chat";
import { config } from "../core/config";
import { JoinRoomFrame } from "../core/schemas";
import { messageBus } from "../core/wiring/bus";
import { messageHistory } from "../core/wiring/history";
import { sendLedger } from "../core/wiring/ledger";
import { connectionStore } from "../core/wiring/store";
import { describeIssue, errorReply, reply, route } from "./respond";

export const handler = route("joinRoom", async (body, caller) => {
  const frame = JoinRoomFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "joinRoom" });
  const { lastSeq } = await joinRoom(
    {
      store: connectionStore,
      bus: messageBus,
      ledger: sendLedger,
      history: messageHistory,
      connectionTtlSeconds: config.table().connectionTtlSeconds,
    },
    caller,
    frame.data.roomId,
  );
  return reply({ type: "joined", roomId: frame.data.roomId, lastSeq });
});
