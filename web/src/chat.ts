/**
 * The chat session of one signed-in user: one reconnecting WebSocket (partysocket, its send buffer
 * off: a new connection has joined no rooms, so frames meant for the old one must not replay), the
 * rooms and their messages, and the messages of ours not yet acknowledged. It knows nothing of the
 * page: the UI subscribes and reads its state.
 *
 * What it guarantees a person: a message shows once, in seq order, whatever the network does (kept
 * per room by seq; a gap is filled with getHistory afterSeq; after a reconnect, `resume` brings every
 * room back from the last seq seen, or joinRoom + getHistory afterSeq where the server has no
 * `resume`); an own message stays pending until its ack, and is sent again with the same clientMsgId
 * after INTERNAL, RATE_LIMITED, a missing ack or a reconnect, so the server stores it once. A ping every
 * few minutes keeps API Gateway's idle timeout away, and the connection is renewed before its 2-hour
 * cap without the person seeing it.
 */
import ReconnectingWebSocket from "partysocket/ws";
import {
  type ChatMessage,
  errorSentence,
  isChatMessage,
  parseFrames,
  RETRIABLE_SEND_ERRORS,
  type RoomKind,
  type ServerFrame,
  tokenClaims,
} from "./protocol";

/** API Gateway closes connections idle 10 minutes: a ping well inside that. */
export const PING_INTERVAL_MS = 4 * 60 * 1000;
/** API Gateway closes every connection at 2 hours: renew it before, at a moment of our choosing. */
export const RENEW_AFTER_MS = 115 * 60 * 1000;
/** A send without an ack after this is sent again (same clientMsgId). */
export const ACK_TIMEOUT_MS = 8000;
/** A history request without an answer after this is asked again. */
const HISTORY_TIMEOUT_MS = 10_000;
/** Messages a page of history holds. */
export const PAGE = 50;
/** At most this many rooms in one resume frame (the protocol's bound). */
const RESUME_BATCH = 50;
/** A planned or gateway-initiated reconnect shows as "Reconnecting…" only if it takes longer. */
const QUIET_RECONNECT_MS = 3000;
/** Typing is forwarded at most every 2 s per user and room; sending more often is waste. */
const TYPING_EVERY_MS = 2000;
/** How long "… is typing" shows without a new typing frame. */
const TYPING_SHOWN_MS = 3500;

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "expired";

export interface PendingMessage {
  clientMsgId: string;
  roomId: string;
  text: string;
  /** sending: waiting for its ack (sent, or to be sent once connected); failed: will not be sent. */
  state: "sending" | "failed";
  error?: string;
  attempts: number;
  /** When it was last written to the socket (0: not on this connection). */
  sentAt: number;
  /** Not before this (backoff after INTERNAL or RATE_LIMITED). */
  retryAt: number;
  /** The seq of our own copy when it arrived before the ack (the pending entry is then hidden). */
  seenSeq?: number;
}

type HistoryKind = "newest" | "after" | "before";

interface HistoryRequest {
  kind: HistoryKind;
  /** For "after": the seq asked after; for "before": the seq asked before. */
  seq: number;
  at: number;
}

export interface Room {
  id: string;
  kind: RoomKind;
  /** Direct rooms: the other user. */
  peer?: string;
  /** This connection receives the room's messages. */
  joined: boolean;
  messages: Map<number, ChatMessage>;
  /** Messages are newest-page loaded: `base`..`contig` are all known (gaps the server has too). */
  loaded: boolean;
  base: number;
  contig: number;
  hasOlder: boolean;
  /** The room's newest seq as far as known, and the user's read position. */
  lastSeq: number;
  lastReadSeq: number;
  /** Who is online in the room (user id → name), when the server tells presence. */
  online: Map<string, string>;
  typing: Map<string, { name: string; until: number }>;
  history?: HistoryRequest;
  historyQueue: HistoryRequest[];
  /** Set while a markRead is on its way, so one at a time goes. */
  readSent: number;
}

export interface ChatOptions {
  /** The WebSocket URL of the stage (ws:// or wss://). */
  url: string;
  token: string;
  /** Gives a new token when the current one has expired; absent: the session ends instead. */
  renewToken?: () => Promise<string>;
  /** How often to ping; default PING_INTERVAL_MS (tests shorten it with the gateway's idle timeout). */
  pingIntervalMs?: number;
  /** Where pending messages and direct-room peers survive a reload (sessionStorage in the page). */
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem">;
}

let counter = 0;
function newClientMsgId(): string {
  const random =
    typeof crypto !== "undefined" && "randomUUID" in crypto
      ? crypto.randomUUID().replace(/-/g, "")
      : Math.random().toString(36).slice(2);
  return `w${Date.now().toString(36)}${(++counter).toString(36)}${random.slice(0, 16)}`;
}

export class ChatSession {
  readonly userId: string;
  readonly userName: string;
  state: ConnectionState = "connecting";
  rooms = new Map<string, Room>();
  pending: PendingMessage[] = [];
  active: string | undefined;
  /** The last sentence for the person (an error, an invitation). */
  notice: { text: string; at: number } | undefined;
  /** False once the server answered UNKNOWN_ACTION (an older server): fall back or hide. */
  supports = { resume: true, presence: true, typing: true };

  private token: string;
  private ws: ReconnectingWebSocket;
  private listeners = new Set<() => void>();
  private notifyQueued = false;
  private timers: ReturnType<typeof setInterval>[] = [];
  private connectedAt = 0;
  private quietUntil = 0;
  private reconnectShowTimer: ReturnType<typeof setTimeout> | undefined;
  private lastTypingSent = new Map<string, number>();
  /** Rooms the person asked to join, oldest first, to place a joinRoom error. */
  private joinsAsked: string[] = [];
  private closed = false;

  constructor(private readonly opts: ChatOptions) {
    this.token = opts.token;
    const claims = tokenClaims(opts.token);
    if (!claims) throw new Error("That is not a token: paste the whole token npm run token:aws printed.");
    this.userId = claims.sub;
    this.userName = claims.name ?? claims.sub;
    this.restore();
    this.ws = new ReconnectingWebSocket(() => this.connectUrl(), [], {
      maxEnqueuedMessages: 0,
      minReconnectionDelay: 300 + Math.random() * 700,
      maxReconnectionDelay: 10_000,
      reconnectionDelayGrowFactor: 1.5,
      connectionTimeout: 10_000,
    });
    this.ws.addEventListener("open", () => this.onOpen());
    this.ws.addEventListener("close", (e) => this.onClose(e.code));
    this.ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") for (const frame of parseFrames(e.data)) this.onFrame(frame);
    });
    this.timers.push(
      setInterval(() => this.send({ action: "ping" }), opts.pingIntervalMs ?? PING_INTERVAL_MS),
    );
    this.timers.push(setInterval(() => this.tick(), 1000));
  }

  /** Calls `fn` after every change (batched to one call per task). */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.reconnectShowTimer);
    this.ws.close(1000, "signed out");
  }

  // --- what the person does -------------------------------------------------------------------

  /** Joins (or opens) a public room by name. */
  join(roomId: string): void {
    const room = this.room(roomId, "public");
    this.active = roomId;
    this.joinsAsked.push(roomId);
    if (room.joined) this.ensureLoaded(room);
    else this.send({ action: "joinRoom", roomId });
    this.changed();
  }

  createPrivate(roomId: string, members: string[]): void {
    this.send({ action: "createRoom", roomId, ...(members.length > 0 ? { members } : {}) });
  }

  invite(roomId: string, userId: string): void {
    this.send({ action: "invite", roomId, userId });
  }

  openDirect(userId: string): void {
    this.send({ action: "openDirect", userId });
  }

  leave(roomId: string): void {
    this.send({ action: "leaveRoom", roomId });
    this.rooms.delete(roomId);
    this.pending = this.pending.filter((p) => p.roomId !== roomId);
    if (this.active === roomId) this.active = undefined;
    this.persist();
    this.changed();
  }

  select(roomId: string): void {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.active = roomId;
    this.ensureLoaded(room);
    if (room.joined && this.supports.presence) this.send({ action: "getPresence", roomId });
    this.changed();
  }

  sendMessage(roomId: string, text: string): void {
    const p: PendingMessage = {
      clientMsgId: newClientMsgId(),
      roomId,
      text,
      state: "sending",
      attempts: 0,
      sentAt: 0,
      retryAt: 0,
    };
    this.pending.push(p);
    this.persist();
    this.trySend(p);
    this.changed();
  }

  discard(clientMsgId: string): void {
    this.pending = this.pending.filter((p) => p.clientMsgId !== clientMsgId);
    this.persist();
    this.changed();
  }

  /** The person typed in the room's message field. */
  typing(roomId: string): void {
    const room = this.rooms.get(roomId);
    if (!room?.joined || !this.supports.typing) return;
    const now = Date.now();
    if (now - (this.lastTypingSent.get(roomId) ?? 0) < TYPING_EVERY_MS) return;
    this.lastTypingSent.set(roomId, now);
    this.send({ action: "typing", roomId });
  }

  /** Asks for the page of messages before the oldest shown. */
  loadOlder(roomId: string): void {
    const room = this.rooms.get(roomId);
    if (!room?.loaded || !room.hasOlder || room.history || room.historyQueue.length > 0) return;
    this.requestHistory(room, { kind: "before", seq: room.base, at: 0 });
  }

  /** The room is on screen: its messages up to the newest shown are read. */
  markViewed(roomId: string): void {
    const room = this.rooms.get(roomId);
    if (!room?.joined) return;
    const newest = this.newestSeq(room);
    if (newest > room.lastReadSeq && room.readSent < newest) {
      room.readSent = newest;
      room.lastReadSeq = newest;
      this.send({ action: "markRead", roomId, seq: newest });
      this.changed();
    }
  }

  // --- what the UI reads ----------------------------------------------------------------------

  unread(room: Room): number {
    return Math.max(0, Math.max(room.lastSeq, this.newestSeq(room)) - room.lastReadSeq);
  }

  /** The room's messages in seq order. */
  messagesOf(room: Room): ChatMessage[] {
    return [...room.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Own messages of the room not yet acknowledged (and not already shown by their own copy). */
  pendingOf(roomId: string): PendingMessage[] {
    return this.pending.filter((p) => p.roomId === roomId && p.seenSeq === undefined);
  }

  typingIn(room: Room): string[] {
    const now = Date.now();
    return [...room.typing.entries()]
      .filter(([userId, t]) => t.until > now && userId !== this.userId)
      .map(([, t]) => t.name);
  }

  title(room: Room): string {
    if (room.kind === "direct") return room.peer ? `@${room.peer}` : "Direct message";
    return room.id;
  }

  // --- connection -----------------------------------------------------------------------------

  private async connectUrl(): Promise<string> {
    const claims = tokenClaims(this.token);
    if (claims && claims.exp * 1000 < Date.now() + 30_000) {
      if (!this.opts.renewToken) {
        this.state = "expired";
        this.changed();
        this.ws.close(1000, "token expired");
        throw new Error("token expired");
      }
      this.token = await this.opts.renewToken();
    }
    const sep = this.opts.url.includes("?") ? "&" : "?";
    return `${this.opts.url}${sep}batch=1&token=${encodeURIComponent(this.token)}`;
  }

  private onOpen(): void {
    clearTimeout(this.reconnectShowTimer);
    this.connectedAt = Date.now();
    this.state = "connected";
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.history = undefined;
      room.historyQueue = [];
      room.readSent = 0;
    }
    for (const p of this.pending) p.sentAt = 0;
    this.send({ action: "listRooms" });
    this.changed();
  }

  private onClose(code: number): void {
    if (this.closed || this.state === "expired") return;
    for (const room of this.rooms.values()) room.joined = false;
    // The gateway going away (1001, as at the 2-hour cap) or a renewal of ours: reconnecting is
    // routine and fast; say so only if it is not.
    const quiet = Date.now() < this.quietUntil || code === 1001;
    clearTimeout(this.reconnectShowTimer);
    if (quiet) {
      this.reconnectShowTimer = setTimeout(() => {
        if (this.ws.readyState !== 1) {
          this.state = "reconnecting";
          this.changed();
        }
      }, QUIET_RECONNECT_MS);
    } else {
      this.state = "reconnecting";
      this.changed();
    }
  }

  private send(frame: Record<string, unknown>): boolean {
    if (this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  private tick(): void {
    const now = Date.now();
    if (this.state === "connected" && now - this.connectedAt > RENEW_AFTER_MS) {
      this.quietUntil = now + QUIET_RECONNECT_MS;
      this.connectedAt = now;
      this.ws.reconnect(1000, "renewing before the 2-hour limit");
      return;
    }
    for (const p of this.pending) {
      if (p.state !== "sending") continue;
      const due = p.sentAt === 0 ? now >= p.retryAt : now - p.sentAt > ACK_TIMEOUT_MS;
      if (due) this.trySend(p);
    }
    for (const room of this.rooms.values()) {
      if (room.history && now - room.history.at > HISTORY_TIMEOUT_MS) {
        const again = room.history;
        room.history = undefined;
        if (room.joined) this.requestHistory(room, again);
      }
      let expired = false;
      for (const [userId, t] of room.typing) {
        if (t.until <= now) {
          room.typing.delete(userId);
          expired = true;
        }
      }
      if (expired) this.changed();
    }
  }

  // --- frames ---------------------------------------------------------------------------------

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case "rooms":
        this.onRooms(f);
        return;
      case "joined":
        this.onJoined(f);
        return;
      case "history":
        this.onHistory(f);
        return;
      case "resumed":
        this.onResumed(f);
        return;
      case "message":
        if (isChatMessage(f)) this.onMessage(f, true);
        return;
      case "ack":
        this.onAck(f);
        return;
      case "error":
        this.onError(f);
        return;
      case "created": {
        const room = this.room(f.roomId, "private");
        room.kind = "private";
        room.joined = true;
        this.active = room.id;
        this.ensureLoaded(room);
        this.changed();
        return;
      }
      case "invited":
        if (f.userId === this.userId) {
          if (!this.rooms.has(f.roomId)) this.say(`You were invited to ${f.roomId}.`);
          const room = this.room(f.roomId, "private");
          room.kind = "private";
          this.enter([room]);
        } else {
          this.say(`Invited ${f.userId} to ${f.roomId}.`);
        }
        this.changed();
        return;
      case "direct": {
        const room = this.room(f.roomId, "direct");
        room.kind = "direct";
        room.peer = f.userId;
        this.persist();
        if (this.pendingDirect === f.userId) {
          // The opener is joined already.
          this.pendingDirect = undefined;
          room.joined = true;
          this.active = room.id;
          this.ensureLoaded(room);
        } else if (!room.joined) {
          this.enter([room]);
        }
        this.changed();
        return;
      }
      case "removed":
        if (f.userId === this.userId) {
          this.rooms.delete(f.roomId);
          if (this.active === f.roomId) this.active = undefined;
          this.say(`You were removed from ${f.roomId}.`);
        } else {
          this.say(`Removed ${f.userId} from ${f.roomId}.`);
        }
        this.changed();
        return;
      case "left":
        return;
      case "read": {
        const room = this.rooms.get(f.roomId);
        if (room && typeof f.seq === "number") room.lastReadSeq = Math.max(room.lastReadSeq, f.seq);
        this.changed();
        return;
      }
      case "presenceList": {
        const room = this.rooms.get(f.roomId);
        if (!room || !Array.isArray(f.users)) return;
        room.online = new Map(
          (f.users as { userId: string; name?: string }[]).map((u) => [u.userId, u.name ?? u.userId]),
        );
        this.changed();
        return;
      }
      case "presence": {
        const room = this.rooms.get(f.roomId);
        if (!room || typeof f.userId !== "string") return;
        if (f.state === "online") room.online.set(f.userId, f.name ?? f.userId);
        else if (f.state === "offline") room.online.delete(f.userId);
        this.changed();
        return;
      }
      case "typing": {
        const room = this.rooms.get(f.roomId);
        if (!room || typeof f.userId !== "string" || f.userId === this.userId) return;
        room.typing.set(f.userId, { name: f.name ?? f.userId, until: Date.now() + TYPING_SHOWN_MS });
        this.changed();
        return;
      }
      default:
        return; // pong, and types a newer server adds
    }
  }

  private pendingDirect: string | undefined;

  /** Opens the direct room with `userId` (the answer makes it the active room). */
  openDirectWith(userId: string): void {
    this.pendingDirect = userId;
    this.openDirect(userId);
  }

  private onRooms(f: ServerFrame): void {
    if (!Array.isArray(f.rooms)) return;
    const listed = f.rooms as { roomId: string; kind: RoomKind; lastSeq: number; lastReadSeq: number }[];
    for (const r of listed) {
      const room = this.room(r.roomId, r.kind);
      room.kind = r.kind;
      room.lastSeq = Math.max(room.lastSeq, r.lastSeq ?? 0);
      room.lastReadSeq = Math.max(room.lastReadSeq, r.lastReadSeq ?? 0);
    }
    // Rooms of ours the server does not list (joined in this page while the answer was on its way)
    // are entered as well: a join is idempotent.
    this.enter([...this.rooms.values()]);
    this.changed();
  }

  /** Joins rooms on this connection, from where this page left them: `resume`, or the fallback. */
  private enter(rooms: Room[]): void {
    if (rooms.length === 0) return;
    if (!this.supports.resume) {
      for (const room of rooms) this.send({ action: "joinRoom", roomId: room.id });
      return;
    }
    for (let i = 0; i < rooms.length; i += RESUME_BATCH) {
      const batch = rooms.slice(i, i + RESUME_BATCH);
      const now = Date.now();
      const list = batch.map((room) => {
        // A room never shown needs no old messages now: from its newest seq on.
        const afterSeq = room.loaded ? room.contig : room.lastSeq;
        room.history = { kind: "after", seq: afterSeq, at: now };
        return { roomId: room.id, afterSeq };
      });
      this.send({ action: "resume", rooms: list, limit: 100 });
    }
  }

  private onJoined(f: ServerFrame): void {
    const room = this.room(f.roomId, "public");
    room.joined = true;
    if (typeof f.lastSeq === "number") room.lastSeq = Math.max(room.lastSeq, f.lastSeq);
    if (typeof f.lastReadSeq === "number") room.lastReadSeq = Math.max(room.lastReadSeq, f.lastReadSeq);
    // Without resume (or a plain join), catch up here; with resume its history follows by itself.
    if (!room.history) {
      if (room.loaded) this.requestHistory(room, { kind: "after", seq: room.contig, at: 0 });
      else if (this.active === room.id) this.ensureLoaded(room);
    }
    if (this.active === room.id && this.supports.presence)
      this.send({ action: "getPresence", roomId: room.id });
    this.flushPending(room.id);
    this.changed();
  }

  private onResumed(f: ServerFrame): void {
    const failed = Array.isArray(f.failed) ? (f.failed as { roomId: string; code: string }[]) : [];
    for (const { roomId, code } of failed) {
      const room = this.rooms.get(roomId);
      if (!room) continue;
      room.history = undefined;
      if (code === "FORBIDDEN") {
        this.rooms.delete(roomId);
        if (this.active === roomId) this.active = undefined;
        this.say(`You can no longer enter ${roomId}.`);
      } else {
        // Transient (rate limited, internal): try this room again shortly.
        setTimeout(() => this.ws.readyState === 1 && !room.joined && this.enter([room]), 1500);
      }
    }
    this.changed();
  }

  private ensureLoaded(room: Room): void {
    if (room.loaded || !room.joined || room.history || room.historyQueue.length > 0) return;
    this.requestHistory(room, { kind: "newest", seq: 0, at: 0 });
  }

  private requestHistory(room: Room, req: HistoryRequest): void {
    if (room.history) {
      room.historyQueue.push(req);
      return;
    }
    room.history = { ...req, at: Date.now() };
    const frame: Record<string, unknown> = { action: "getHistory", roomId: room.id, limit: PAGE };
    if (req.kind === "after") frame.afterSeq = req.seq;
    if (req.kind === "before") frame.beforeSeq = req.seq;
    if (!this.send(frame)) room.history = undefined;
  }

  private onHistory(f: ServerFrame): void {
    const room = this.rooms.get(f.roomId);
    if (!room || !Array.isArray(f.messages)) return;
    const messages = (f.messages as unknown[]).filter(isChatMessage);
    const req = room.history;
    room.history = undefined;
    for (const m of messages) this.onMessage(m, false);
    const seqs = messages.map((m) => m.seq);
    const max = seqs.length > 0 ? Math.max(...seqs) : 0;
    const min = seqs.length > 0 ? Math.min(...seqs) : 0;
    const hasMore = f.hasMore === true;
    if (req?.kind === "newest") {
      // Everything up to now is in this page (or before it).
      room.loaded = true;
      room.base = seqs.length > 0 ? min : room.lastSeq + 1;
      room.contig = Math.max(room.contig, max, seqs.length > 0 ? 0 : room.lastSeq);
      room.hasOlder = hasMore;
    } else if (req?.kind === "after") {
      // Everything after the seq asked, up to the newest returned, is in this page.
      if (room.loaded) room.contig = Math.max(room.contig, max, req.seq);
      if (hasMore) {
        room.historyQueue.unshift({ kind: "after", seq: room.loaded ? room.contig : max, at: 0 });
      }
    } else if (req?.kind === "before") {
      if (seqs.length > 0) room.base = Math.min(room.base, min);
      room.hasOlder = hasMore && seqs.length > 0;
    }
    this.advance(room);
    const next = room.historyQueue.shift();
    if (next) this.requestHistory(room, next);
    else if (this.active === room.id) this.ensureLoaded(room);
    this.changed();
  }

  /** Moves `contig` over the messages that follow it; asks for the rest when some are missing. */
  private advance(room: Room): void {
    if (!room.loaded) return;
    while (room.messages.has(room.contig + 1)) room.contig++;
    const newest = this.newestSeq(room);
    if (newest > room.contig && !room.history && room.historyQueue.length === 0 && room.joined) {
      this.requestHistory(room, { kind: "after", seq: room.contig, at: 0 });
    }
  }

  private onMessage(m: ChatMessage, live: boolean): void {
    const room = this.rooms.get(m.roomId);
    if (!room) return;
    room.messages.set(m.seq, {
      roomId: m.roomId,
      messageId: m.messageId,
      seq: m.seq,
      senderId: m.senderId,
      ...(m.senderName !== undefined ? { senderName: m.senderName } : {}),
      text: m.text,
      sentAt: m.sentAt,
    });
    room.lastSeq = Math.max(room.lastSeq, m.seq);
    if (m.senderId === this.userId) {
      // Our own copy before its ack: show the message, not also the pending entry.
      const p = this.pending.find(
        (x) => x.roomId === m.roomId && x.text === m.text && x.seenSeq === undefined && x.attempts > 0,
      );
      if (p) p.seenSeq = m.seq;
    }
    if (room.kind === "direct" && !room.peer && m.senderId !== this.userId) {
      room.peer = m.senderId;
      this.persist();
    }
    room.typing.delete(m.senderId);
    if (live) {
      this.advance(room);
      this.changed();
    }
  }

  private onAck(f: ServerFrame): void {
    const i = this.pending.findIndex((p) => p.clientMsgId === f.clientMsgId);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    const room = this.rooms.get(f.roomId);
    if (p && room && typeof f.seq === "number" && !room.messages.has(f.seq)) {
      // Shown at once; our own copy (with the server's time) replaces it when it comes.
      room.messages.set(f.seq, {
        roomId: p.roomId,
        messageId: String(f.messageId),
        seq: f.seq,
        senderId: this.userId,
        senderName: this.userName,
        text: p.text,
        sentAt: new Date().toISOString(),
      });
      room.lastSeq = Math.max(room.lastSeq, f.seq);
    }
    this.persist();
    this.changed();
  }

  private onError(f: ServerFrame): void {
    const code = String(f.code ?? "");
    const action = typeof f.action === "string" ? f.action : undefined;
    if (code === "UNKNOWN_ACTION") {
      // An older server: fall back quietly.
      if (action === "resume") {
        this.supports.resume = false;
        const rooms = [...this.rooms.values()].filter((r) => !r.joined);
        for (const r of rooms) r.history = undefined;
        this.enter(rooms);
        return;
      }
      if (action === "getPresence") {
        this.supports.presence = false;
        return;
      }
      if (action === "typing") {
        this.supports.typing = false;
        return;
      }
    }
    if (action === "sendMessage" && typeof f.clientMsgId === "string") {
      const p = this.pending.find((x) => x.clientMsgId === f.clientMsgId);
      if (!p) return;
      if (RETRIABLE_SEND_ERRORS.has(code)) {
        // Sent again with the same clientMsgId: the server stores it once.
        p.sentAt = 0;
        p.retryAt = Date.now() + Math.min(8000, 500 * 2 ** Math.min(p.attempts, 4)) * (0.5 + Math.random());
        if (code === "NOT_A_MEMBER") {
          const room = this.rooms.get(p.roomId);
          if (room) {
            room.joined = false;
            this.enter([room]);
          }
        }
        if (code === "RATE_LIMITED") this.say(errorSentence(code, action, f.message));
      } else {
        p.state = "failed";
        p.error = errorSentence(code, action, f.message);
        this.say(p.error);
        this.persist();
      }
      this.changed();
      return;
    }
    if (action === "resume" || action === "listRooms") {
      // Transient: try again shortly.
      setTimeout(() => this.send({ action: "listRooms" }), 1500);
      return;
    }
    if (action === "getHistory") {
      // The answer does not name the room: let the timeout ask again.
      return;
    }
    if (action === "joinRoom") {
      const roomId = this.joinsAsked.shift();
      const room = roomId ? this.rooms.get(roomId) : undefined;
      if (room && !room.joined && (code === "FORBIDDEN" || code === "ROOM_FULL")) {
        this.rooms.delete(room.id);
        if (this.active === room.id) this.active = undefined;
      }
    }
    if (action === "markRead" || action === "typing" || action === "getPresence") return;
    this.say(errorSentence(code, action, f.message));
    this.changed();
  }

  // --- helpers --------------------------------------------------------------------------------

  private trySend(p: PendingMessage): void {
    const room = this.rooms.get(p.roomId);
    if (!room?.joined || p.state !== "sending" || Date.now() < p.retryAt) return;
    if (this.send({ action: "sendMessage", roomId: p.roomId, text: p.text, clientMsgId: p.clientMsgId })) {
      p.attempts++;
      p.sentAt = Date.now();
    }
  }

  private flushPending(roomId: string): void {
    for (const p of this.pending) if (p.roomId === roomId && p.sentAt === 0) this.trySend(p);
  }

  private newestSeq(room: Room): number {
    let newest = 0;
    for (const seq of room.messages.keys()) if (seq > newest) newest = seq;
    return newest;
  }

  private room(roomId: string, kind: RoomKind): Room {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = {
        id: roomId,
        kind,
        joined: false,
        messages: new Map(),
        loaded: false,
        base: 0,
        contig: 0,
        hasOlder: false,
        lastSeq: 0,
        lastReadSeq: 0,
        online: new Map(),
        typing: new Map(),
        historyQueue: [],
        readSent: 0,
      };
      const peer = this.peers()[roomId];
      if (peer) room.peer = peer;
      this.rooms.set(roomId, room);
    }
    return room;
  }

  private say(text: string): void {
    this.notice = { text, at: Date.now() };
  }

  private changed(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      for (const fn of this.listeners) fn();
    });
  }

  private key(what: string): string {
    return `chat.${what}.${this.userId}`;
  }

  private peers(): Record<string, string> {
    try {
      return JSON.parse(this.opts.storage?.getItem(this.key("peers")) ?? "{}") as Record<string, string>;
    } catch {
      return {};
    }
  }

  /** Keeps pending messages (sent again after a reload, same clientMsgId) and direct-room peers. */
  private persist(): void {
    const storage = this.opts.storage;
    if (!storage) return;
    const peers = this.peers();
    for (const room of this.rooms.values()) if (room.peer) peers[room.id] = room.peer;
    storage.setItem(this.key("peers"), JSON.stringify(peers));
    const kept = this.pending.map(({ clientMsgId, roomId, text, state, error }) => ({
      clientMsgId,
      roomId,
      text,
      state,
      error,
    }));
    if (kept.length > 0) storage.setItem(this.key("pending"), JSON.stringify(kept));
    else storage.removeItem(this.key("pending"));
  }

  private restore(): void {
    try {
      const kept = JSON.parse(this.opts.storage?.getItem(this.key("pending")) ?? "[]") as PendingMessage[];
      this.pending = kept.map((p) => ({ ...p, attempts: 1, sentAt: 0, retryAt: 0 }));
    } catch {
      this.pending = [];
    }
  }
}
