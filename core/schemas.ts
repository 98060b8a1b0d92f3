/**
 * The schemas at every boundary: client frames (PROTOCOL.md), the message that travels through
 * Redis and Kafka, and the server frames. Producers and consumers import the same schema, and the
 * TypeScript types are derived from it.
 */
import type { MessageFrame } from "./protocol";
import * as z from "./zod";

export * from "./protocol";

import { ROOM_ID_PATTERN, USER_ID_PATTERN } from "./protocol";

export const CLIENT_MSG_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_TEXT_CODE_POINTS = 4000;
export const MAX_NAME_LENGTH = 64;
export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 100;

const roomId = z
  .string()
  .check(z.regex(ROOM_ID_PATTERN, "roomId must be 1-64 characters of A-Z a-z 0-9 _ . : -"));
const clientMsgId = z
  .string()
  .check(z.regex(CLIENT_MSG_ID_PATTERN, "clientMsgId must be 1-64 characters of A-Z a-z 0-9 _ -"));
const seqBound = z
  .number()
  .check(
    z.int("must be an integer"),
    z.minimum(0, "must not be negative"),
    z.maximum(Number.MAX_SAFE_INTEGER),
  );

const historyLimit = z
  .number()
  .check(z.int("limit must be an integer"), z.minimum(1), z.maximum(HISTORY_MAX_LIMIT));

/** Counts Unicode code points, as PROTOCOL.md measures `text`. */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export const JoinRoomFrame = z.object({ action: z.literal("joinRoom"), roomId });
export const LeaveRoomFrame = z.object({ action: z.literal("leaveRoom"), roomId });
/** `text` length is checked apart from the schema: over 4,000 code points is TOO_LARGE, not BAD_REQUEST. */
export const SendMessageFrame = z.object({
  action: z.literal("sendMessage"),
  roomId,
  clientMsgId,
  text: z.string().check(
    z.refine((t) => t.length > 0 && t.trim().length > 0, "text must hold something other than white space"),
    z.refine((t) => t.isWellFormed(), "text must be well-formed Unicode (no lone surrogates)"),
    // PostgreSQL text cannot hold U+0000: such a message would be acked, then dead-lettered, never stored.
    z.refine((t) => !t.includes("\u0000"), "text must not contain the NUL character (U+0000)"),
  ),
});
export const GetHistoryFrame = z
  .object({
    action: z.literal("getHistory"),
    roomId,
    afterSeq: z.optional(seqBound),
    beforeSeq: z.optional(seqBound),
    limit: z.optional(historyLimit),
  })
  .check(
    z.refine(
      (f) => f.afterSeq === undefined || f.beforeSeq === undefined,
      "give afterSeq or beforeSeq, not both",
    ),
  );

const userId = z
  .string()
  .check(z.regex(USER_ID_PATTERN, "userId must be 1-64 characters of A-Z a-z 0-9 _ . @ -"));
/** Most initial members `createRoom` takes. */
export const MAX_INITIAL_MEMBERS = 100;
export const CreateRoomFrame = z.object({
  action: z.literal("createRoom"),
  roomId,
  members: z.optional(
    z.array(userId).check(z.maxLength(MAX_INITIAL_MEMBERS, "members holds at most 100 user ids")),
  ),
});
export const InviteFrame = z.object({ action: z.literal("invite"), roomId, userId });
export const RemoveMemberFrame = z.object({ action: z.literal("removeMember"), roomId, userId });
export const OpenDirectFrame = z.object({ action: z.literal("openDirect"), userId });
export const ListRoomsFrame = z.object({ action: z.literal("listRooms") });
export const MarkReadFrame = z.object({ action: z.literal("markRead"), roomId, seq: seqBound });
/** Most rooms one `resume` takes. */
export const MAX_RESUME_ROOMS = 50;
export const ResumeFrame = z.object({
  action: z.literal("resume"),
  rooms: z
    .array(z.object({ roomId, afterSeq: seqBound }))
    .check(z.maxLength(MAX_RESUME_ROOMS, "rooms holds at most 50 rooms")),
  limit: z.optional(historyLimit),
});
export const GetPresenceFrame = z.object({ action: z.literal("getPresence"), roomId });
export const TypingFrame = z.object({ action: z.literal("typing"), roomId });

export type JoinRoomFrame = z.infer<typeof JoinRoomFrame>;
export type LeaveRoomFrame = z.infer<typeof LeaveRoomFrame>;
export type SendMessageFrame = z.infer<typeof SendMessageFrame>;
export type GetHistoryFrame = z.infer<typeof GetHistoryFrame>;

/** A chat message as the server accepted it: the Redis stream entry, the Kafka record, the stored row. */
export const ChatMessage = z.object({
  messageId: z.string().check(z.minLength(1), z.maxLength(64)),
  roomId,
  seq: z.number().check(z.int(), z.positive()),
  senderId: z.string().check(z.regex(USER_ID_PATTERN)),
  senderName: z.optional(z.string().check(z.maxLength(MAX_NAME_LENGTH))),
  text: z.string().check(z.minLength(1)),
  sentAt: z.iso.datetime(),
  clientMsgId,
});
export type ChatMessage = z.infer<typeof ChatMessage>;

/** What a retry of a send is answered with: Redis's retry record (`k`), the ledger's record in part. */
export const SentRecord = z.object({
  messageId: z.string().check(z.minLength(1), z.maxLength(64)),
  roomId,
  seq: z.number().check(z.int(), z.positive()),
  textDigest: z.string(),
});

/**
 * A fan-out stream entry that is not a message: a frame for some connections (`connectionIds`) or for
 * every member connection of the room but `except` (`room`). `forget`: list the members again first;
 * `dropAfter` (epoch ms): too late after it.
 */
export const FanoutNotice = z
  .object({
    roomId,
    frame: z.record(z.string(), z.unknown()),
    connectionIds: z.optional(z.array(z.string())),
    room: z.optional(z.literal(true)),
    except: z.optional(z.string()),
    forget: z.optional(z.boolean()),
    dropAfter: z.optional(z.number()),
  })
  .check(
    z.refine(
      (n) => n.connectionIds !== undefined || n.room === true,
      "a notice names its connections or its room",
    ),
  );
export type FanoutNotice = z.infer<typeof FanoutNotice>;

/** The Kafka record value on the messages topic. `v` lets consumers refuse what they do not know. */
export const MessageRecord = z.object({ v: z.literal(1), message: ChatMessage });
export type MessageRecord = z.infer<typeof MessageRecord>;

/** Token claims (PROTOCOL.md, Connecting). */
export const TokenClaims = z.object({
  sub: z.string().check(z.regex(USER_ID_PATTERN, "sub must be 1-64 characters of A-Z a-z 0-9 _ . @ -")),
  // The name is stored with every message: what PostgreSQL cannot hold byte for byte is refused here,
  // at the upgrade, rather than acked and dead-lettered later.
  name: z.optional(
    z.string().check(
      z.maxLength(MAX_NAME_LENGTH),
      z.refine((t) => t.isWellFormed(), "name must be well-formed Unicode (no lone surrogates)"),
      z.refine((t) => !t.includes("\u0000"), "name must not contain the NUL character (U+0000)"),
    ),
  ),
  exp: z.number().check(z.int()),
});
export type TokenClaims = z.infer<typeof TokenClaims>;

export function toMessageFrame(m: ChatMessage): MessageFrame {
  const frame: MessageFrame = {
    type: "message",
    roomId: m.roomId,
    messageId: m.messageId,
    seq: m.seq,
    senderId: m.senderId,
    text: m.text,
    sentAt: m.sentAt,
  };
  if (m.senderName !== undefined) frame.senderName = m.senderName;
  return frame;
}
