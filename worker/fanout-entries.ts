/**
 * The entries of a fan-out stream, as the publish side writes them (core/adapters/redis.ts): a chat
 * message (`m`, with the room's membership version `v`), or a notice (`c`): a frame for some
 * connections of a room, in order with the room's messages.
 */
import type { Logger } from "../core/logger";
import { type ChatMessage, ChatMessage as ChatMessageSchema, FanoutNotice } from "../core/schemas";
import { compiledOnFirstUse } from "../core/zod";

/** The stream entry's message schema, compiled: every entry the worker reads is parsed with it. */
const chatMessage = compiledOnFirstUse(ChatMessageSchema);
/** The notice entry's schema: what the bus wrote (core/adapters/redis.ts) is what is read. */
const fanoutNotice = compiledOnFirstUse(FanoutNotice);

/** A message of a room, for its members. */
export interface MessageEntry {
  kind: "message";
  roomId: string;
  message: ChatMessage;
  membershipVersion: string;
}

/**
 * A frame for some connections, in order with the room's messages: for `connectionIds` (an
 * invitation, a removal) or for every member connection but `except` (presence, typing). `forget`:
 * list the room's members again before the next message; `dropAfter` (epoch ms): too late after it.
 */
export interface NoticeEntry {
  kind: "notice";
  roomId: string;
  to: string[] | { room: true; except?: string; membershipVersion: string };
  frame: object;
  forget: boolean;
  dropAfter?: number;
}

export type Entry = MessageEntry | NoticeEntry;

/** The smallest stream entry id after `id` ("ms-seq"). */
export function nextId(id: string): string {
  const [ms, seq] = id.split("-");
  return `${ms}-${Number(seq ?? 0) + 1}`;
}

/** Parses a stream entry's fields; a malformed entry is logged and answers undefined (dropped). */
export function parseEntry(fields: string[], logger: Logger): Entry | undefined {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
  try {
    if (record.c !== undefined) {
      const c = fanoutNotice().parse(JSON.parse(record.c));
      return {
        kind: "notice",
        roomId: c.roomId,
        to: c.connectionIds ?? {
          room: true,
          membershipVersion: record.v ?? "0",
          ...(c.except !== undefined ? { except: c.except } : {}),
        },
        frame: c.frame,
        forget: c.forget === true,
        ...(c.dropAfter !== undefined ? { dropAfter: c.dropAfter } : {}),
      };
    }
    const message = chatMessage().parse(JSON.parse(record.m ?? ""));
    return { kind: "message", roomId: message.roomId, message, membershipVersion: record.v ?? "0" };
  } catch (err) {
    logger.error({ err }, "dropped a malformed fan-out entry");
    return undefined;
  }
}
