/**
 * The schemas at every boundary: client frames (PROTOCOL.md), the message that travels through
 * Redis and Kafka, and the server frames. Producers and consumers import the same schema, and the
 * TypeScript types are derived from it.
 */
import { z } from "zod";

export const USER_ID_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
export const CLIENT_MSG_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_TEXT_CODE_POINTS = 4000;
export const MAX_NAME_LENGTH = 64;
export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 100;

/** The actions of PROTOCOL.md's client frame table. */
export const ACTIONS = ["joinRoom", "leaveRoom", "sendMessage", "getHistory", "ping"] as const;
export type Action = (typeof ACTIONS)[number];

const roomId = z.string().regex(ROOM_ID_PATTERN, "roomId must be 1-64 characters of A-Z a-z 0-9 _ . : -");
const clientMsgId = z
  .string()
  .regex(CLIENT_MSG_ID_PATTERN, "clientMsgId must be 1-64 characters of A-Z a-z 0-9 _ -");
const seqBound = z
  .number()
  .int("must be an integer")
  .min(0, "must not be negative")
  .max(Number.MAX_SAFE_INTEGER);

/** Counts Unicode code points, as PROTOCOL.md measures `text`. */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export const JoinRoomFrame = z.object({ action: z.literal("joinRoom"), roomId });
export const LeaveRoomFrame = z.object({ action: z.literal("leaveRoom"), roomId });
export const PingFrame = z.object({ action: z.literal("ping") });
/** `text` length is checked apart from the schema: over 4,000 code points is TOO_LARGE, not BAD_REQUEST. */
export const SendMessageFrame = z.object({
  action: z.literal("sendMessage"),
  roomId,
  clientMsgId,
  text: z
    .string()
    .refine((t) => t.length > 0 && t.trim().length > 0, "text must hold something other than white space")
    .refine((t) => t.isWellFormed(), "text must be well-formed Unicode (no lone surrogates)")
    // PostgreSQL text cannot hold U+0000: such a message would be acked, then dead-lettered, never stored.
    .refine((t) => !t.includes("\u0000"), "text must not contain the NUL character (U+0000)"),
});
export const GetHistoryFrame = z
  .object({
    action: z.literal("getHistory"),
    roomId,
    afterSeq: seqBound.optional(),
    beforeSeq: seqBound.optional(),
    limit: z.number().int("limit must be an integer").min(1).max(HISTORY_MAX_LIMIT).optional(),
  })
  .refine((f) => f.afterSeq === undefined || f.beforeSeq === undefined, {
    message: "give afterSeq or beforeSeq, not both",
  });

export type JoinRoomFrame = z.infer<typeof JoinRoomFrame>;
export type LeaveRoomFrame = z.infer<typeof LeaveRoomFrame>;
export type SendMessageFrame = z.infer<typeof SendMessageFrame>;
export type GetHistoryFrame = z.infer<typeof GetHistoryFrame>;

/** A chat message as the server accepted it: the Redis stream entry, the Kafka record, the stored row. */
export const ChatMessage = z.object({
  messageId: z.string().min(1).max(64),
  roomId,
  seq: z.number().int().positive(),
  senderId: z.string().regex(USER_ID_PATTERN),
  senderName: z.string().max(MAX_NAME_LENGTH).optional(),
  text: z.string().min(1),
  sentAt: z.iso.datetime(),
  clientMsgId,
});
export type ChatMessage = z.infer<typeof ChatMessage>;

/** The Kafka record value on the messages topic. `v` lets consumers refuse what they do not know. */
export const MessageRecord = z.object({ v: z.literal(1), message: ChatMessage });
export type MessageRecord = z.infer<typeof MessageRecord>;

/** Token claims (PROTOCOL.md, Connecting). */
export const TokenClaims = z.object({
  sub: z.string().regex(USER_ID_PATTERN, "sub must be 1-64 characters of A-Z a-z 0-9 _ . @ -"),
  name: z.string().max(MAX_NAME_LENGTH).optional(),
  exp: z.number().int(),
});
export type TokenClaims = z.infer<typeof TokenClaims>;

export const ERROR_CODES = [
  "BAD_REQUEST",
  "UNKNOWN_ACTION",
  "NOT_A_MEMBER",
  "TOO_LARGE",
  "RATE_LIMITED",
  "INTERNAL",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type ServerFrame =
  | { type: "joined"; roomId: string; lastSeq: number }
  | { type: "left"; roomId: string }
  | { type: "ack"; roomId: string; clientMsgId: string; messageId: string; seq: number }
  | { type: "history"; roomId: string; messages: MessageFrame[]; hasMore: boolean }
  | { type: "pong" }
  | MessageFrame
  | ErrorFrame;

export interface MessageFrame {
  type: "message";
  roomId: string;
  messageId: string;
  seq: number;
  senderId: string;
  senderName?: string;
  text: string;
  sentAt: string;
}

export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  action?: string;
  clientMsgId?: string;
}

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
