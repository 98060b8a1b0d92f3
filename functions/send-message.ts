/** `sendMessage`: validate, admit, issue the seq and record the send, publish, append to Kafka, then ack. */
import { sendMessage } from "../core/chat";
import { config } from "../core/config";
import { codePointLength, MAX_TEXT_CODE_POINTS, SendMessageFrame } from "../core/schemas";
import { messageBus } from "../core/wiring/bus";
import { messageHistory } from "../core/wiring/history";
import { sendLedger } from "../core/wiring/ledger";
import { eventLog } from "../core/wiring/log";
import { roomDirectory } from "../core/wiring/rooms";
import { connectionStore } from "../core/wiring/store";
import { describeIssue, errorReply, reply, route } from "./handler";

const ERRORS = {
  NOT_A_MEMBER: "Join the room before sending to it.",
  RATE_LIMITED: "Too many messages: slow down and retry with the same clientMsgId.",
  CONFLICT: "This clientMsgId was already used for another message; give each new message a new clientMsgId.",
  FORBIDDEN: "You may not enter this room.",
} as const;

export const handler = route("sendMessage", async (body, caller) => {
  const echo = { action: "sendMessage", clientMsgId: body.clientMsgId };
  if (typeof body.text === "string" && codePointLength(body.text) > MAX_TEXT_CODE_POINTS) {
    return errorReply("TOO_LARGE", `The text is longer than ${MAX_TEXT_CODE_POINTS} characters.`, echo);
  }
  const frame = SendMessageFrame.safeParse(body);
  if (!frame.success) return errorReply("BAD_REQUEST", describeIssue(frame.error, body), echo);
  const outcome = await sendMessage(
    {
      store: connectionStore,
      bus: messageBus,
      ledger: sendLedger,
      log: eventLog,
      history: messageHistory,
      rooms: roomDirectory,
      rateLimit: config.rateLimit(),
    },
    caller,
    frame.data,
  );
  if (!outcome.ok) return errorReply(outcome.code, ERRORS[outcome.code], echo);
  return reply({
    type: "ack",
    roomId: frame.data.roomId,
    clientMsgId: frame.data.clientMsgId,
    messageId: outcome.messageId,
    seq: outcome.seq,
  });
});
