/**
 * The protocol's names and server frames, with no dependency: the handlers that only answer
 * (ping, $default) and the web client import this alone and stay small. The schemas that parse
 * frames are in schemas.ts.
 */

export const USER_ID_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The actions of PROTOCOL.md's client frame table. */
export const ACTIONS = [
  "joinRoom",
  "leaveRoom",
  "sendMessage",
  "getHistory",
  "ping",
  // v1.1: rooms you may enter
  "createRoom",
  "invite",
  "removeMember",
  "openDirect",
  "listRooms",
  "markRead",
  // v1.1: coming back, presence, typing
  "resume",
  "getPresence",
  "typing",
] as const;
export type Action = (typeof ACTIONS)[number];

export const ERROR_CODES = [
  "BAD_REQUEST",
  "UNKNOWN_ACTION",
  "NOT_A_MEMBER",
  "TOO_LARGE",
  "RATE_LIMITED",
  "INTERNAL",
  // v1.1
  "CONFLICT",
  "FORBIDDEN",
  "ROOM_FULL",
  "ROOM_EXISTS",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type ServerFrame =
  | { type: "joined"; roomId: string; lastSeq: number; lastReadSeq: number }
  | { type: "created"; roomId: string }
  | { type: "invited"; roomId: string; userId: string }
  | { type: "removed"; roomId: string; userId: string }
  | { type: "direct"; roomId: string; userId: string }
  | {
      type: "rooms";
      rooms: {
        roomId: string;
        kind: "public" | "private" | "direct";
        lastSeq: number;
        lastReadSeq: number;
      }[];
    }
  | { type: "read"; roomId: string; seq: number }
  | { type: "resumed"; rooms: string[]; failed: { roomId: string; code: ErrorCode }[] }
  | { type: "presenceList"; roomId: string; users: { userId: string; name?: string }[]; count: number }
  | { type: "presence"; roomId: string; userId: string; name?: string; state: "online" | "offline" }
  | { type: "typing"; roomId: string; userId: string; name?: string }
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
