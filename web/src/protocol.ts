/**
 * The wire protocol as the browser sees it (docs/PROTOCOL.md v1.1): the frames the client reads, the
 * sentences it shows for errors, and the limits it checks before sending. Frames are checked field by
 * field where they are used; a frame of an unknown type is ignored, as the protocol only adds.
 */

import type { MessageFrame } from "../../core/protocol";

export { ROOM_ID_PATTERN, USER_ID_PATTERN } from "../../core/protocol";

export type RoomKind = "public" | "private" | "direct";

/** A message as the client keeps it: the server's message frame without its `type`. */
export type ChatMessage = Omit<MessageFrame, "type">;

/** A server frame: an object with a `type`; the rest is read where it is used. */
// biome-ignore lint/suspicious/noExplicitAny: frames are JSON of many shapes, read field by field
export type ServerFrame = { type: string } & Record<string, any>;

/** Parses one WebSocket message: one frame, or several separated by "\n" (connected with batch=1). */
export function parseFrames(data: string): ServerFrame[] {
  const frames: ServerFrame[] = [];
  for (const line of data.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === "object" && typeof (value as { type?: unknown }).type === "string") {
        frames.push(value as ServerFrame);
      }
    } catch {
      // Not JSON: nothing this client can act on (the gateway's throttle frame is JSON too).
    }
  }
  return frames;
}

export function isChatMessage(f: unknown): f is ChatMessage {
  const m = f as Partial<ChatMessage> | null;
  return (
    !!m &&
    typeof m.roomId === "string" &&
    typeof m.seq === "number" &&
    Number.isInteger(m.seq) &&
    typeof m.senderId === "string" &&
    typeof m.text === "string" &&
    typeof m.messageId === "string" &&
    typeof m.sentAt === "string"
  );
}

/** Error codes whose retry with the same clientMsgId may succeed. */
export const RETRIABLE_SEND_ERRORS = new Set(["INTERNAL", "RATE_LIMITED", "NOT_A_MEMBER"]);

/** The sentence shown for an error frame: ours for the codes a person meets, else the server's. */
export function errorSentence(
  code: string,
  action: string | undefined,
  serverMessage: string | undefined,
): string {
  switch (code) {
    case "RATE_LIMITED":
      return action === "sendMessage"
        ? "You are sending messages too fast; yours will be sent again in a moment."
        : "Too many requests in a short time; trying again in a moment.";
    case "TOO_LARGE":
      return "That message is too long: a message holds at most 4,000 characters.";
    case "FORBIDDEN":
      if (action === "invite" || action === "removeMember") {
        return "Only the room's owner may invite or remove members.";
      }
      return "You may not enter that room: it is private and you were not invited, or it is someone else's direct room.";
    case "ROOM_FULL":
      return "That room is full.";
    case "ROOM_EXISTS":
      return "A room of that name exists already; choose another name.";
    case "CONFLICT":
      return "That message could not be sent: its id was used for another message.";
    case "INTERNAL":
      return "The server had a passing problem; trying again.";
    default:
      return serverMessage || "Something went wrong.";
  }
}

/** The claims of a token, read without checking the signature (the server checks it). */
export function tokenClaims(token: string): { sub: string; name?: string; exp: number } | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as {
      sub?: unknown;
      name?: unknown;
      exp?: unknown;
    };
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return undefined;
    return {
      sub: claims.sub,
      exp: claims.exp,
      ...(typeof claims.name === "string" ? { name: claims.name } : {}),
    };
  } catch {
    return undefined;
  }
}
