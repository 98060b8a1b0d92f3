/**
 * The fan-out's memory of who is in a room: each room's member connections, listed from the
 * connection store and reused while the room's membership version is unchanged.
 *
 * - Bounded: least recently used rooms are evicted past `maxRooms` rooms or `maxMembers` member
 *   entries in all, and an entry older than `ttlMs` is listed again.
 * - A connection found gone costs O(rooms it is cached in): an index from connection to rooms.
 * - One listing per room at a time: callers asking while a listing runs share it, and a listing at a
 *   newer version serves every message queued behind it (see `members`), so a burst of membership
 *   changes (a mass disconnect bumps the version once per connection) costs at most one listing at
 *   a time per room, not one per change.
 * - A connection found gone is left out of later listings (its records may outlive it a while).
 * - Which connections accept batched frames (`batch=1` at `$connect`) is asked of the store once per
 *   connection and remembered (bounded too): it never changes during a connection's life.
 */
import type { ConnectionStore, Member } from "../core/ports";

/** A member connection as the delivery needs it. */
export interface Recipient {
  connectionId: string;
  /** The room's newest seq when it joined: it receives the messages after it. */
  joinedSeq: number;
  /** Accepts several frames in one WebSocket frame, separated by "\n" (PROTOCOL.md, batched frames). */
  batch: boolean;
}

export interface MemberCacheOptions {
  /** How long a listing is reused while the version is unchanged. */
  ttlMs: number;
  /** Rooms cached at most. */
  maxRooms: number;
  /** Member entries cached at most, over every room. */
  maxMembers: number;
  /** Connections whose batch flag is remembered at most. */
  maxFlags: number;
}

interface Cached {
  version: string;
  at: number;
  members: Map<string, Recipient>;
}

/** Versions are Redis counters; an unknown shape compares as unequal (listed again). */
function newer(a: string, b: string): boolean {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) ? x > y : a !== b;
}

export class MemberCache {
  private readonly rooms = new Map<string, Cached>();
  private readonly roomsOf = new Map<string, Set<string>>();
  private readonly listing = new Map<string, { version: string; done: Promise<Cached> }>();
  private readonly flags = new Map<string, boolean>();
  /**
   * Connections found gone, while their records may still be listed (their clean-up is queued):
   * left out of listings, so a mass disconnect costs one post each, not one per message. API
   * Gateway never reuses a connection id.
   */
  private readonly gone = new Set<string>();
  private size = 0;
  /** Listings made (each one paginated Query of the room). */
  lists = 0;

  constructor(
    private readonly store: ConnectionStore,
    private readonly options: MemberCacheOptions,
  ) {}

  /** How much is cached: rooms, member entries, remembered batch flags. */
  usage(): { rooms: number; members: number; flags: number } {
    return { rooms: this.rooms.size, members: this.size, flags: this.flags.size };
  }

  /**
   * The room's members as of membership version `version` or later. A listing taken at a later
   * version is right for an earlier message too: a connection that joined since has a `joinedSeq`
   * at or past that message's seq (so the caller's filter leaves it out), and one that left since
   * has left.
   */
  async members(roomId: string, version: string): Promise<Map<string, Recipient>> {
    const cached = this.rooms.get(roomId);
    if (cached && !newer(version, cached.version) && Date.now() - cached.at < this.options.ttlMs) {
      // Most recently used last: Map keeps insertion order.
      this.rooms.delete(roomId);
      this.rooms.set(roomId, cached);
      return cached.members;
    }
    const running = this.listing.get(roomId);
    if (running && !newer(version, running.version)) return (await running.done).members;
    if (running) await running.done.catch(() => undefined);
    const again = this.listing.get(roomId);
    if (again && !newer(version, again.version)) return (await again.done).members;
    const done = this.list(roomId, version);
    this.listing.set(roomId, { version, done });
    try {
      return (await done).members;
    } finally {
      if (this.listing.get(roomId)?.done === done) this.listing.delete(roomId);
    }
  }

  /** Lists the room again before its next message (an invitation, a removal). */
  forget(roomId: string): void {
    this.evict(roomId);
  }

  /** Removes a connection found gone from every cached room it is in; answers how many. */
  dropConnection(connectionId: string): number {
    const rooms = this.roomsOf.get(connectionId);
    this.flags.delete(connectionId);
    this.gone.add(connectionId);
    if (this.gone.size > this.options.maxFlags) this.gone.delete(this.gone.values().next().value as string);
    if (!rooms) return 0;
    this.roomsOf.delete(connectionId);
    for (const roomId of rooms) {
      if (this.rooms.get(roomId)?.members.delete(connectionId)) this.size--;
    }
    return rooms.size;
  }

  private async list(roomId: string, version: string): Promise<Cached> {
    this.lists++;
    const found: Member[] = [];
    for await (const page of this.store.listMembers(roomId))
      for (const m of page) if (!this.gone.has(m.connectionId)) found.push(m);
    const unknown = found.filter((m) => !this.flags.has(m.connectionId)).map((m) => m.connectionId);
    if (unknown.length > 0 && this.store.batchingConnections) {
      const batching = await this.store.batchingConnections(unknown);
      for (const id of unknown) this.remember(id, batching.has(id));
    }
    const members = new Map<string, Recipient>();
    for (const m of found) {
      members.set(m.connectionId, {
        connectionId: m.connectionId,
        joinedSeq: m.joinedSeq,
        batch: this.flags.get(m.connectionId) === true,
      });
    }
    this.evict(roomId);
    const entry: Cached = { version, at: Date.now(), members };
    this.rooms.set(roomId, entry);
    this.size += members.size;
    for (const id of members.keys()) {
      let rooms = this.roomsOf.get(id);
      if (!rooms) {
        rooms = new Set();
        this.roomsOf.set(id, rooms);
      }
      rooms.add(roomId);
    }
    // The room just listed stays even when it alone is over the bound: a message is being sent to it.
    while (
      (this.rooms.size > this.options.maxRooms || this.size > this.options.maxMembers) &&
      this.rooms.size > 1
    ) {
      const oldest = this.rooms.keys().next().value as string;
      if (oldest === roomId) break;
      this.evict(oldest);
    }
    return entry;
  }

  private remember(connectionId: string, batch: boolean): void {
    this.flags.set(connectionId, batch);
    if (this.flags.size > this.options.maxFlags) this.flags.delete(this.flags.keys().next().value as string);
  }

  private evict(roomId: string): void {
    const cached = this.rooms.get(roomId);
    if (!cached) return;
    this.rooms.delete(roomId);
    this.size -= cached.members.size;
    for (const id of cached.members.keys()) {
      const rooms = this.roomsOf.get(id);
      rooms?.delete(roomId);
      if (rooms?.size === 0) this.roomsOf.delete(id);
    }
  }
}
