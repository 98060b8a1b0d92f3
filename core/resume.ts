/**
 * `resume` (PROTOCOL.md v1.1): a connection that reconnected rejoins its rooms in one action and
 * receives what it missed in each. Every room answers `joined`, then `history` with the messages
 * after the client's seq up to where the fan-out takes over (the seq the membership recorded), so
 * the two together leave no gap and hold no message twice. The fan-out may push a room's newer
 * messages before its `history` frame arrives: clients place messages by seq.
 */
import { type Caller, type ChatDeps, enterRoom, fitPage, type JoinDeps, metered, pageForward } from "./chat";
import { HISTORY_DEFAULT_LIMIT, type ServerFrame } from "./schemas";

/** Rooms resumed at once: each costs a few DynamoDB and Redis calls. */
const PARALLEL_ROOMS = 5;

export type ResumeDeps = JoinDeps & Pick<ChatDeps, "gateway">;

export type ResumeFailure = { roomId: string; code: "FORBIDDEN" | "ROOM_FULL" | "INTERNAL" };

export interface ResumeRequest {
  rooms: { roomId: string; afterSeq: number }[];
  limit?: number;
}

/**
 * Rejoins each room and posts its `joined` and `history` frames to the caller's connection; answers
 * what the final `resumed` frame says. Draws one token from the allowance for the whole action.
 */
export async function resume(
  deps: ResumeDeps,
  caller: Caller,
  request: ResumeRequest,
  onError: (roomId: string, error: unknown) => void = () => undefined,
): Promise<
  { ok: true; rooms: string[]; failed: ResumeFailure[]; gone: boolean } | { ok: false; code: "RATE_LIMITED" }
> {
  if (!(await metered(deps, caller))) return { ok: false, code: "RATE_LIMITED" };
  const limit = request.limit ?? HISTORY_DEFAULT_LIMIT;
  // The first occurrence of a room counts.
  const seen = new Set<string>();
  const queue = request.rooms.filter((r) => !seen.has(r.roomId) && seen.add(r.roomId));
  const asked = new Map(queue.map((r, i) => [r.roomId, i]));
  const inAskedOrder = (a: string, b: string) => (asked.get(a) ?? 0) - (asked.get(b) ?? 0);
  const gateway = await deps.gateway();
  const resumed: string[] = [];
  const failed: ResumeFailure[] = [];
  let gone = false;

  const post = async (frame: ServerFrame) => {
    if (gone) return;
    if ((await gateway.post(caller.connectionId, JSON.stringify(frame))) === "gone") gone = true;
  };

  const one = async ({ roomId, afterSeq }: { roomId: string; afterSeq: number }) => {
    try {
      const entered = await enterRoom(deps, caller, roomId);
      if (!entered.ok) {
        failed.push({ roomId, code: entered.code === "ROOM_FULL" ? "ROOM_FULL" : "FORBIDDEN" });
        return;
      }
      await post({ type: "joined", roomId, lastSeq: entered.lastSeq, lastReadSeq: entered.lastReadSeq });
      // History ends where the fan-out begins: the seq the membership recorded.
      const until = entered.joinedSeq;
      let messages: Awaited<ReturnType<typeof pageForward>>["messages"] = [];
      let hasMore = false;
      if (afterSeq < until) {
        const found = await pageForward(deps, roomId, afterSeq, limit + 1);
        const inRange = found.messages.filter((m) => m.seq <= until);
        hasMore = inRange.length > limit || (found.lagging && (inRange.at(-1)?.seq ?? afterSeq) < until);
        messages = inRange.slice(0, limit);
      }
      const fitted = fitPage(messages, true);
      await post({ type: "history", roomId, messages: fitted.frames, hasMore: hasMore || fitted.cut });
      resumed.push(roomId);
    } catch (error) {
      onError(roomId, error);
      failed.push({ roomId, code: "INTERNAL" });
    }
  };

  await Promise.all(
    Array.from({ length: Math.min(PARALLEL_ROOMS, queue.length) }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await one(next);
    }),
  );
  // Rooms are resumed a few at once; the answer lists them as they were asked for.
  resumed.sort(inAskedOrder);
  failed.sort((a, b) => inAskedOrder(a.roomId, b.roomId));
  return { ok: true, rooms: resumed, failed, gone };
}
