/**
 * Posting frames to connections through the management API, one outbox per connection.
 *
 * - Order per connection: an outbox has at most one POST in flight; frames queued behind it go out
 *   after it, in the order they were queued. Nothing here orders one connection against another, so
 *   a room's next message need not wait for the slowest member of its last one.
 * - Batching: while a POST to a connection is in flight, its next frames wait; a connection that
 *   accepts batched frames (`batch=1`) then receives all that wait in one POST, joined by "\n" (on
 *   AWS a POST's body becomes one WebSocket frame as it is). Others receive one frame per POST.
 * - Fairness: at most `concurrency` POSTs are in flight; free slots go to rooms in turn, one
 *   connection at a time, so a room of thousands does not queue a small room's members behind all
 *   of its own.
 * - Failures: 410 drops the connection (every frame queued for it settles); 429 (the account's rate,
 *   the client's full buffer) is retried with capped, jittered backoff for up to `throttleGiveUpMs`;
 *   other failures `attempts` times. A connection waiting out a backoff holds no slot.
 */

import type { ConnectionGateway } from "../core/ports";
import { backoffMs } from "../core/retry";
import type { Recipient } from "./fanout-members";

export interface DeliveryOptions {
  /** POSTs in flight at once, over every connection. */
  concurrency: number;
  /** Attempts of a POST that fails other than by throttling, before its frames count as failed. */
  attempts: number;
  /** How long a throttled connection is retried before its frames count as failed. */
  throttleGiveUpMs: number;
  /** The largest body of a batched POST, in bytes (a single larger frame still goes, alone). */
  maxBatchBytes: number;
}

export interface DeliveryStats {
  /** Frames that reached a connection. */
  delivered: number;
  /** POSTs answered 200 (one may carry several frames). */
  posts: number;
  /** Frames that went out in a POST with others. */
  batched: number;
  gone: number;
  failed: number;
  retried: number;
}

export interface DeliveryHooks {
  /** A connection answered 410: remove its records. */
  gone(connectionId: string): void;
  failed(connectionId: string, error: unknown): void;
}

/** One frame's way to one connection; `settle` is told once, whatever happened. */
interface Frame {
  data: string;
  room: string;
  settle: () => void;
}

interface Outbox {
  connectionId: string;
  batch: boolean;
  queue: Frame[];
  /** The frames of the POST in flight or waiting out a backoff. */
  sending: Frame[] | undefined;
  body: string;
  attempt: number;
  throttledSince: number | undefined;
  throttles: number;
  /** Waiting for a slot (in a room's turn). */
  ready: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** A first-in, first-out queue with O(1) shift. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

const isThrottle = (err: unknown) => {
  const e = err as { name?: string; throttled?: boolean; $metadata?: { httpStatusCode?: number } };
  return (
    e?.throttled === true || e?.name === "LimitExceededException" || e?.$metadata?.httpStatusCode === 429
  );
};

export class Delivery {
  readonly stats: DeliveryStats = { delivered: 0, posts: 0, batched: 0, gone: 0, failed: 0, retried: 0 };
  private readonly outboxes = new Map<string, Outbox>();
  /** Each room's connections waiting for a slot, and the rooms in turn. */
  private readonly waiting = new Map<string, Fifo<Outbox>>();
  private readonly turns = new Fifo<string>();
  private active = 0;

  constructor(
    private readonly gateway: ConnectionGateway,
    private readonly options: DeliveryOptions,
    private readonly hooks: DeliveryHooks,
  ) {}

  /** Connections with frames queued or in flight. */
  pendingConnections(): number {
    return this.outboxes.size;
  }

  /**
   * Queues `data` for every recipient, behind what each has queued already; resolves once every one
   * of them has received it, been found gone, or failed.
   */
  send(room: string, recipients: Iterable<Recipient | string>, data: string): Promise<void> {
    let left = 1;
    let resolve!: () => void;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    const settle = () => {
      if (--left === 0) resolve();
    };
    for (const r of recipients) {
      left++;
      const { connectionId, batch } = typeof r === "string" ? { connectionId: r, batch: false } : r;
      let box = this.outboxes.get(connectionId);
      if (!box) {
        box = {
          connectionId,
          batch,
          queue: [],
          sending: undefined,
          body: "",
          attempt: 0,
          throttledSince: undefined,
          throttles: 0,
          ready: false,
          timer: undefined,
        };
        this.outboxes.set(connectionId, box);
      } else if (typeof r !== "string") box.batch = batch;
      box.queue.push({ data, room, settle });
      if (!box.sending && !box.ready) this.wait(box, room);
    }
    settle();
    this.pump();
    return done;
  }

  private wait(box: Outbox, room: string): void {
    box.ready = true;
    let fifo = this.waiting.get(room);
    if (!fifo) {
      fifo = new Fifo();
      this.waiting.set(room, fifo);
      this.turns.push(room);
    }
    fifo.push(box);
  }

  private pump(): void {
    while (this.active < this.options.concurrency && this.turns.length > 0) {
      const room = this.turns.shift() as string;
      const fifo = this.waiting.get(room) as Fifo<Outbox>;
      const box = fifo.shift() as Outbox;
      if (fifo.length > 0) this.turns.push(room);
      else this.waiting.delete(room);
      box.ready = false;
      if (this.outboxes.get(box.connectionId) !== box) continue;
      this.start(box);
    }
  }

  private start(box: Outbox): void {
    if (!box.sending) {
      const first = box.queue.shift();
      if (!first) {
        this.outboxes.delete(box.connectionId);
        return;
      }
      const frames = [first];
      let bytes = Buffer.byteLength(first.data);
      if (box.batch) {
        while (box.queue.length > 0) {
          const next = box.queue[0] as Frame;
          const size = Buffer.byteLength(next.data) + 1;
          if (bytes + size > this.options.maxBatchBytes) break;
          frames.push(box.queue.shift() as Frame);
          bytes += size;
        }
      }
      box.sending = frames;
      box.body = frames.length === 1 ? first.data : frames.map((f) => f.data).join("\n");
      box.attempt = 0;
      box.throttledSince = undefined;
      box.throttles = 0;
    }
    this.active++;
    this.gateway.post(box.connectionId, box.body).then(
      (outcome) => {
        this.active--;
        if (outcome === "gone") this.gone(box);
        else this.sent(box);
        this.pump();
      },
      (err: unknown) => {
        this.active--;
        this.failed(box, err);
        this.pump();
      },
    );
  }

  private sent(box: Outbox): void {
    const frames = box.sending as Frame[];
    box.sending = undefined;
    this.stats.posts++;
    this.stats.delivered += frames.length;
    if (frames.length > 1) this.stats.batched += frames.length;
    for (const f of frames) f.settle();
    this.next(box);
  }

  private gone(box: Outbox): void {
    this.stats.gone++;
    this.outboxes.delete(box.connectionId);
    for (const f of box.sending ?? []) f.settle();
    for (const f of box.queue.splice(0)) f.settle();
    box.sending = undefined;
    this.hooks.gone(box.connectionId);
  }

  private failed(box: Outbox, err: unknown): void {
    const frames = box.sending as Frame[];
    let delay: number | undefined;
    if (isThrottle(err)) {
      box.throttledSince ??= Date.now();
      if (Date.now() - box.throttledSince < this.options.throttleGiveUpMs)
        delay = backoffMs(Math.min(box.throttles++, 6), 50, 1000);
    } else if (++box.attempt < this.options.attempts) {
      delay = backoffMs(box.attempt - 1);
    }
    if (delay !== undefined) {
      this.stats.retried++;
      box.timer = setTimeout(() => {
        box.timer = undefined;
        if (this.outboxes.get(box.connectionId) === box) {
          this.wait(box, frames[0]?.room ?? "");
          this.pump();
        }
      }, delay);
      return;
    }
    this.stats.failed += frames.length;
    this.hooks.failed(box.connectionId, err);
    box.sending = undefined;
    for (const f of frames) f.settle();
    this.next(box);
  }

  private next(box: Outbox): void {
    const head = box.queue[0];
    if (head) this.wait(box, head.room);
    else this.outboxes.delete(box.connectionId);
  }

  /** What is under way: posts in flight, connections with frames to send, rooms with one waiting. */
  load(): { inFlight: number; outboxes: number; waitingRooms: number } {
    return { inFlight: this.active, outboxes: this.outboxes.size, waitingRooms: this.waiting.size };
  }

  /** Stops retry timers (shutdown); frames still queued stay unsettled. */
  close(): void {
    for (const box of this.outboxes.values()) clearTimeout(box.timer);
  }
}
