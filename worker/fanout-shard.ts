/**
 * One shard's loop, while this worker holds its lease: read the shard's stream, hand each entry to
 * its room, and record how far delivery is complete.
 *
 * - Rooms do not wait for each other: each room has its own queue, worked in order, and the loop
 *   keeps reading while a room is slow (many members, a stalled connection, retries in backoff).
 *   What is read but not yet delivered is bounded (`maxPending` entries per shard, `roomWindow`
 *   messages per room in delivery at once).
 * - Order: a room's entries are handed to the delivery in seq order, and each connection's frames go
 *   out in the order they were handed over (fanout-delivery.ts). A room's next message does not wait
 *   for its last one to reach every member.
 * - No double delivery: each entry is claimed as started before its frames go out, only while this
 *   worker holds the lease. The cursor and the watermark (the newest entry with every entry up to it
 *   delivered) are recorded together, fenced by the lease too, at most every `SYNC_MS` and not on
 *   every read: entries read since the last record are read again by the next owner, whose claims
 *   skip what had started. A new owner also finishes the entries between the watermark and the
 *   cursor that had not started, and skips those that had (a gap their clients fill with
 *   getHistory). Entries up to the watermark are trimmed from the stream.
 * - Loss is counted, never silent: entries trimmed from the stream before any owner read them
 *   (fanout-leases.ts) are reported through `onTrimmed`.
 */
import type { Redis } from "ioredis";
import { keys } from "../core/adapters/redis";
import type { Logger } from "../core/logger";
import { backoffMs, sleep } from "../core/retry";
import { toMessageFrame } from "../core/schemas";
import type { Delivery } from "./fanout-delivery";
import { type Entry, type MessageEntry, type NoticeEntry, parseEntry } from "./fanout-entries";
import type { ShardLeases } from "./fanout-leases";
import type { MemberCache, Recipient } from "./fanout-members";

/** What a shard's loop counts; the worker's stats add them up. */
export interface ShardCounts {
  messages: number;
  /** Entries at or below a seq already delivered in their room (a stream that went back), not sent. */
  stale: number;
  /** Notices (typing) that reached the worker after their `dropAfter`, dropped. */
  late: number;
  /** Messages whose members could not be listed after retries. */
  unlisted: number;
}

export interface ShardOptions {
  batchSize: number;
  /** Entries read and not yet delivered, at most, before the loop waits. */
  maxPending: number;
  /** A room's entries in delivery at once, at most. */
  roomWindow: number;
  /** Attempts to list a room's members before its message counts as failed. */
  listAttempts: number;
  /** How long a shard being handed over waits for its deliveries before it lets go. */
  handoverMs: number;
}

export interface ShardContext {
  leases: ShardLeases;
  /** A new connection for the shard's blocking reads. */
  newReader: () => Redis;
  members: MemberCache;
  delivery: Delivery;
  /** The highest seq delivered per room, over every shard of this worker. */
  lastSeq: RoomSeqs;
  counts: ShardCounts;
  logger: Logger;
  options: ShardOptions;
  onTrimmed(shard: number, count: number): void;
}

/**
 * The highest seq this worker delivered per room (the most recently active rooms): a seq at or below
 * it is not delivered again, so a stream that went back (a Redis that lost its newest writes)
 * neither doubles nor reorders what connections receive.
 */
export class RoomSeqs {
  private readonly seqs = new Map<string, number>();
  constructor(private readonly maxRooms = 100_000) {}
  get(roomId: string): number | undefined {
    return this.seqs.get(roomId);
  }
  set(roomId: string, seq: number): void {
    this.seqs.delete(roomId);
    this.seqs.set(roomId, seq);
    if (this.seqs.size > this.maxRooms) this.seqs.delete(this.seqs.keys().next().value as string);
  }
}

function versionOf(entry: Entry | undefined): string | undefined {
  if (!entry) return undefined;
  if (entry.kind === "message") return entry.membershipVersion;
  return Array.isArray(entry.to) ? undefined : entry.to.membershipVersion;
}

/** The highest membership version among an entry and those queued behind it in its room. */
function newestVersion(entry: Entry, ...behind: Pending[][]): string {
  let newest = versionOf(entry) ?? "0";
  for (const list of behind) {
    for (const p of list) {
      const v = versionOf(p.entry);
      if (v !== undefined && Number(v) > Number(newest)) newest = v;
    }
  }
  return newest;
}

/**
 * How long the cursor and watermark may go unrecorded. Recording them costs a Redis call; on every
 * read it cost one a message at a moderate rate. What waits meanwhile is the stream's trim, and, after
 * a failover, entries the next owner reads again and skips by their claims.
 */
export const SYNC_MS = 200;

/** An entry handed to the delivery: `out` settles once every frame of it is out. */
interface Handed {
  out: Promise<void>;
}
const NOTHING: Handed = { out: Promise.resolve() };

interface Pending {
  id: string;
  entry: Entry | undefined;
  done: boolean;
}

interface RoomQueue {
  queue: Pending[];
  flight: Promise<void>[];
}

export class ShardRunner {
  /** False once the worker hands the shard over or stops: the loop finishes and lets go. */
  owned = true;
  /** The lease was lost: nothing more may be claimed or recorded. */
  private lost = false;
  private readonly order: Pending[] = [];
  private readonly rooms = new Map<string, RoomQueue>();
  private cursor = "";
  /** The cursor as last recorded in Redis, and the entries read since (for the check of trimmed ones). */
  private recordedCursor: string | undefined;
  private unrecordedReads = 0;
  private watermark: string | undefined;
  /** Entries that passed the watermark since the last sync, to leave the started record. */
  private passed: string[] = [];
  private syncing: Promise<boolean> = Promise.resolve(true);
  private syncTimer: NodeJS.Timeout | undefined;
  private progressed: (() => void) | undefined;
  private lastTrimCheck = 0;

  constructor(
    private readonly ctx: ShardContext,
    readonly shard: number,
  ) {}

  /** Entries read and not yet delivered. */
  pending(): number {
    return this.order.length;
  }

  async run(): Promise<void> {
    const { leases, logger, options } = this.ctx;
    const reader = this.ctx.newReader();
    const stream = keys.stream(this.shard);
    try {
      const stored = await leases.cursor(this.shard);
      // A shard never read before starts at recent entries: older ones are history's job.
      this.cursor = stored ?? `${Date.now() - 30_000}-0`;
      this.recordedCursor = stored ?? undefined;
      this.watermark = stored ? undefined : this.cursor;
      const unfinished = stored ? await leases.unfinished(this.shard) : undefined;
      if (unfinished) {
        this.watermark = unfinished.start;
        const rest = unfinished.entries.filter(([id]) => !unfinished.started.has(id));
        if (unfinished.entries.length > 0)
          logger.info(
            { shard: this.shard, entries: rest.length, skipped: unfinished.entries.length - rest.length },
            "finishing the entries the shard's previous owner left",
          );
        for (const [id, fields] of unfinished.entries) {
          const skip = unfinished.started.has(id);
          this.take(id, skip ? undefined : fields);
        }
        this.advanceWatermark();
      }
      while (this.owned && !this.lost) {
        if (this.order.length >= options.maxPending) {
          await this.progress(1000);
          continue;
        }
        const reply = (await reader.xread(
          "COUNT",
          options.batchSize,
          "BLOCK",
          1000,
          "STREAMS",
          stream,
          this.cursor,
        )) as [string, [string, string[]][]][] | null;
        const batch = reply?.[0]?.[1] ?? [];
        if (batch.length > 0) {
          // The cursor is recorded later, with the watermark (SYNC_MS): each entry's claim is the
          // fence against a lost lease, and entries read past the recorded cursor are read again by
          // the next owner, whose claims skip what began.
          this.cursor = batch[batch.length - 1]?.[0] as string;
          this.unrecordedReads += batch.length;
          for (const [id, fields] of batch) this.take(id, fields);
          this.advanceWatermark();
          this.syncSoon();
        } else if (!(await this.sync())) {
          break;
        }
        if (batch.length < options.batchSize && Date.now() - this.lastTrimCheck > 1000) {
          this.lastTrimCheck = Date.now();
          // The check counts the entries read as recorded: record them first.
          if (!(await this.sync())) break;
          const trimmed = await leases.trimmedUnread(this.shard, this.cursor);
          if (trimmed > 0) this.ctx.onTrimmed(this.shard, trimmed);
        }
      }
      // Handing over or stopping: the deliveries under way finish (bounded), then the rest is the
      // next owner's.
      const until = Date.now() + options.handoverMs;
      while (this.order.length > 0 && !this.lost && Date.now() < until)
        await this.progress(until - Date.now());
      await this.sync();
    } catch (err) {
      logger.error({ shard: this.shard, err }, "shard loop failed; the shard will be taken again");
    } finally {
      this.lost = true;
      clearTimeout(this.syncTimer);
      reader.disconnect();
    }
  }

  /** Adds an entry read from the stream; `fields` undefined: it started under a previous owner. */
  private take(id: string, fields: string[] | undefined): void {
    const entry = fields ? parseEntry(fields, this.ctx.logger) : undefined;
    const pending: Pending = { id, entry, done: entry === undefined };
    this.order.push(pending);
    if (!entry) return;
    let room = this.rooms.get(entry.roomId);
    if (!room) {
      room = { queue: [], flight: [] };
      this.rooms.set(entry.roomId, room);
      room.queue.push(pending);
      void this.drain(entry.roomId, room);
    } else {
      room.queue.push(pending);
    }
  }

  /** Works a room's queue in order until it is empty. */
  private async drain(roomId: string, room: RoomQueue): Promise<void> {
    const { leases, options, logger } = this.ctx;
    try {
      while (room.queue.length > 0 && !this.lost) {
        const group = room.queue.splice(0, 16);
        // A worker whose lease lapsed (a stall) must stop: the new owner finishes what is left,
        // and two deliverers would post the same message twice.
        const claims = await leases.claim(
          this.shard,
          group.map((p) => p.id),
        );
        if (!claims) {
          logger.warn(
            { shard: this.shard },
            "the shard's lease passed to another worker; leaving the rest to it",
          );
          this.lost = true;
          break;
        }
        for (const [i, p] of group.entries()) {
          if (!claims[i] || !p.entry) {
            this.finish(p);
            continue;
          }
          while (room.flight.length >= options.roomWindow) await room.flight.shift();
          // One listing at the newest version queued serves every entry up to it (fanout-members.ts).
          const version = newestVersion(p.entry, group.slice(i + 1), room.queue);
          const sent = await this.dispatch(p.entry, version).catch((err: unknown) => {
            logger.error({ shard: this.shard, roomId, err }, "could not fan out an entry");
          });
          const done = (sent?.out ?? Promise.resolve()).then(() => this.finish(p));
          room.flight.push(done);
          void done.then(() => {
            const at = room.flight.indexOf(done);
            if (at >= 0) room.flight.splice(at, 1);
          });
        }
      }
    } finally {
      if (this.rooms.get(roomId) === room) this.rooms.delete(roomId);
      // Entries that arrived after the last look (the room was deleted above) start a new queue.
      if (room.queue.length > 0 && !this.lost) {
        const again: RoomQueue = { queue: room.queue, flight: [] };
        this.rooms.set(roomId, again);
        void this.drain(roomId, again);
      }
    }
  }

  /**
   * Resolves members and hands the entry's frames over; `out` settles once they are all out (a
   * promise in an object: an async function would wait for a promise it returned).
   */
  private async dispatch(entry: Entry, version: string): Promise<Handed> {
    return entry.kind === "notice" ? this.notice(entry, version) : this.message(entry, version);
  }

  private async notice(entry: NoticeEntry, version: string): Promise<Handed> {
    const { members, delivery } = this.ctx;
    if (entry.forget) members.forget(entry.roomId);
    if (entry.dropAfter !== undefined && Date.now() > entry.dropAfter) {
      this.ctx.counts.late++;
      return NOTHING;
    }
    const { to } = entry;
    let recipients: Iterable<Recipient | string>;
    if (Array.isArray(to)) recipients = to;
    else {
      const all = await this.listed(entry.roomId, version);
      if (!all) return NOTHING;
      recipients = [...all.values()].filter((m) => m.connectionId !== to.except);
    }
    return { out: delivery.send(entry.roomId, recipients, JSON.stringify(entry.frame)) };
  }

  private async message(entry: MessageEntry, version: string): Promise<Handed> {
    const { lastSeq, delivery, counts } = this.ctx;
    const { roomId, seq } = entry.message;
    const last = lastSeq.get(roomId);
    if (last !== undefined && seq <= last) {
      counts.stale++;
      return NOTHING;
    }
    const all = await this.listed(roomId, version);
    if (!all) return NOTHING;
    const recipients: Recipient[] = [];
    for (const m of all.values()) if (m.joinedSeq < seq) recipients.push(m);
    lastSeq.set(roomId, seq);
    counts.messages++;
    return { out: delivery.send(roomId, recipients, JSON.stringify(toMessageFrame(entry.message))) };
  }

  /** The room's members, retried with backoff (the room waits, to keep its order); undefined: gave up. */
  private async listed(roomId: string, version: string): Promise<Map<string, Recipient> | undefined> {
    const { members, options, logger, counts } = this.ctx;
    for (let attempt = 0; ; attempt++) {
      try {
        return await members.members(roomId, version);
      } catch (err) {
        if (this.lost || !this.owned || attempt + 1 >= options.listAttempts) {
          counts.unlisted++;
          logger.error({ roomId, err }, "could not list a room's members; its entry is not delivered");
          return undefined;
        }
        await sleep(backoffMs(attempt, 100));
      }
    }
  }

  private finish(p: Pending): void {
    p.done = true;
    if (this.order[0] === p) {
      this.advanceWatermark();
      // Trim soon after delivery, not only at the next read.
      this.syncSoon();
    }
    const wake = this.progressed;
    this.progressed = undefined;
    wake?.();
  }

  private advanceWatermark(): void {
    while (this.order.length > 0 && (this.order[0] as Pending).done) {
      const p = this.order.shift() as Pending;
      this.watermark = p.id;
      this.passed.push(p.id);
    }
  }

  /** Resolves once an entry finished, or after `ms`. */
  private progress(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, ms));
      this.progressed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Records the cursor and the watermark within SYNC_MS (one timer for both). */
  private syncSoon(): void {
    this.syncTimer ??= setTimeout(() => {
      this.syncTimer = undefined;
      if (!this.lost)
        this.sync().catch((err: unknown) =>
          this.ctx.logger.warn({ err }, "recording delivery progress failed"),
        );
    }, SYNC_MS);
  }

  /**
   * Records the cursor (with the entries read since it was last recorded) and the watermark, one call
   * at a time, when either moved; false when the lease is lost.
   */
  private sync(): Promise<boolean> {
    this.syncing = this.syncing
      .catch(() => false)
      .then(async () => {
        if (this.lost) return false;
        const { cursor, passed } = this;
        const read = this.unrecordedReads;
        if (cursor === this.recordedCursor && passed.length === 0 && read === 0) return true;
        this.passed = [];
        this.unrecordedReads -= read;
        const ok = await this.ctx.leases
          .advance(this.shard, cursor, read, this.watermark, passed)
          .catch((err: unknown) => {
            this.passed = passed.concat(this.passed);
            this.unrecordedReads += read;
            throw err;
          });
        if (ok) this.recordedCursor = cursor;
        if (!ok) {
          this.ctx.logger.warn(
            { shard: this.shard },
            "lost the lease of a shard; leaving its entries to the new owner",
          );
          this.lost = true;
        }
        return ok;
      });
    return this.syncing;
  }
}
