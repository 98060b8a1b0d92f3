/**
 * The fan-out worker: reads the fan-out stream of the shards it owns, and posts each message to every
 * member connection of its room through the API Gateway management API.
 *
 * - Order: a room maps to one shard and a shard to one owner, which delivers a room's messages one
 *   after another; different rooms go out in parallel, bounded by `concurrency`.
 * - No double delivery: the owner moves the shard's cursor past a batch (fenced by its lease) before
 *   delivering it, and records each entry as started before posting it. A new owner finishes the
 *   batch its previous owner died in, skipping the entries that had started: those (at most one per
 *   room) may have reached some connections and not others, a gap their clients fill with
 *   getHistory. Nothing is ever delivered twice.
 * - Take-over: leases expire `leaseMs` after a worker stops renewing them; the others take its shards.
 * - Stale connections: a 410 removes the connection's records. Other failures are retried with
 *   capped, jittered backoff, then counted as failed.
 * - Messages accepted by Redis whose Kafka append was never confirmed (the sender's handler died
 *   between the two) are appended by a sweeper that one worker at a time runs, so every message that
 *   was delivered is also stored.
 * - A room whose stream waits for a seq that never came (its sender died between the ledger and
 *   Redis) is released after `releaseHeldMs`: its later messages go out, and the gap is a client's
 *   getHistory away.
 * - Delivered entries are trimmed from the stream, so its memory is what is still to deliver.
 */

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { ManagementConnectionProbe } from "../core/adapters/connection-probe";
import { createDynamoClient, DynamoConnectionStore } from "../core/adapters/dynamo";
import { createKafka, KafkaEventLog } from "../core/adapters/kafka";
import { createManagementClient, ManagementApiGateway } from "../core/adapters/management";
import { RedisPresence } from "../core/adapters/presence";
import { keys, RedisMessageBus, redisOptions } from "../core/adapters/redis";
import { disconnect } from "../core/chat";
import { config } from "../core/config";
import { createLogger, type Logger } from "../core/logger";
import type { ConnectionGateway, ConnectionStore, EventLog, Member, PresenceRegistry } from "../core/ports";
import { type ChatMessage, ChatMessage as ChatMessageSchema, toMessageFrame } from "../core/schemas";
import { redisPassword } from "../core/secrets";
import { compiledOnFirstUse } from "../core/zod";
import { ShardLeases } from "./fanout-leases";
import { serveHealth } from "./health";
import { onShutdown } from "./lifecycle";
import { startPresenceReaper } from "./presence-reaper";

/** The stream entry's message schema, compiled: every entry the worker reads is parsed with it. */
const chatMessage = compiledOnFirstUse(ChatMessageSchema);

export interface FanoutOptions {
  shards: number;
  concurrency: number;
  leaseMs: number;
  workerId: string;
  /** Entries read from a shard at a time. */
  batchSize?: number;
  /** How long a room's member list may be reused while its membership version is unchanged. */
  memberCacheMs?: number;
  /** Attempts of one post before it counts as failed. */
  postAttempts?: number;
  /** Accepted messages older than this without a confirmed Kafka append are appended by the sweeper. */
  sweepAfterMs?: number;
  /** How long a room's stream waits for a missing seq before its later messages go out anyway. */
  releaseHeldMs?: number;
}

export interface FanoutDeps {
  redis: Redis;
  /** A new connection for one shard's blocking reads. */
  newReader: () => Redis;
  store: ConnectionStore;
  gateway: ConnectionGateway;
  bus: RedisMessageBus;
  /** Where the sweeper appends; without it there is no sweeper. */
  log?: EventLog;
  /** Presence, which a connection found gone leaves (after its grace) as on `$disconnect`. */
  presence?: { registry: PresenceRegistry; times: { graceSeconds: number; idleSeconds: number } };
  logger: Logger;
}

export interface FanoutStats {
  delivered: number;
  gone: number;
  failed: number;
  retried: number;
  messages: number;
  /** Entries at or below a seq already delivered in their room (a stream that went back), not sent. */
  stale: number;
  /** Notices (typing) that reached the worker after their `dropAfter`, dropped. */
  late: number;
  swept: number;
  shards: number[];
}

/** A message of a room, for its members. */
interface MessageEntry {
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
interface NoticeEntry {
  kind: "notice";
  roomId: string;
  to: string[] | { room: true; except?: string; membershipVersion: string };
  frame: object;
  forget: boolean;
  dropAfter?: number;
}

type Entry = MessageEntry | NoticeEntry;

/** A counting semaphore: at most `limit` posts in flight across every shard of this worker. */
function semaphore(limit: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(work: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await work();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The smallest stream entry id after `id` ("ms-seq"). */
export function nextId(id: string): string {
  const [ms, seq] = id.split("-");
  return `${ms}-${Number(seq ?? 0) + 1}`;
}

/** Capped exponential backoff with full jitter. */
export function backoffMs(attempt: number, baseMs = 50, capMs = 2000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}

export function createFanoutWorker(deps: FanoutDeps, options: FanoutOptions) {
  const { redis, store, gateway, bus, logger } = deps;
  const batchSize = options.batchSize ?? 200;
  const memberCacheMs = options.memberCacheMs ?? 60_000;
  const postAttempts = options.postAttempts ?? 4;
  const sweepAfterMs = options.sweepAfterMs ?? 10_000;
  const releaseHeldMs = options.releaseHeldMs ?? 2_000;
  const leases = new ShardLeases(redis, options.workerId, options.shards, options.leaseMs);
  const limit = semaphore(options.concurrency);
  const owned = new Set<number>();
  const loops = new Map<number, Promise<void>>();
  const members = new Map<string, { version: string; at: number; ids: Member[] }>();
  /**
   * The highest seq this worker delivered per room (the most recently active rooms): a seq at or
   * below it is not delivered again, so a stream that went back (a Redis that lost its newest
   * writes) neither doubles nor reorders what connections receive.
   */
  const delivered = new Map<string, number>();
  const DELIVERED_ROOMS = 100_000;
  const stats: FanoutStats = {
    delivered: 0,
    gone: 0,
    failed: 0,
    retried: 0,
    messages: 0,
    stale: 0,
    late: 0,
    swept: 0,
    shards: [],
  };
  let stopping = false;
  let ticker: NodeJS.Timeout | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let releaser: NodeJS.Timeout | undefined;
  let ticking: Promise<void> = Promise.resolve();

  async function membersOf(roomId: string, version: string): Promise<Member[]> {
    const cached = members.get(roomId);
    if (cached && cached.version === version && Date.now() - cached.at < memberCacheMs) return cached.ids;
    const ids: Member[] = [];
    for await (const page of store.listMembers(roomId)) ids.push(...page);
    members.set(roomId, { version, at: Date.now(), ids });
    return ids;
  }

  async function dropConnection(connectionId: string): Promise<void> {
    stats.gone++;
    for (const entry of members.values())
      entry.ids = entry.ids.filter((m) => m.connectionId !== connectionId);
    try {
      const { presence } = deps;
      const rooms = await disconnect(
        {
          store: async () => store,
          bus: async () => bus,
          ...(presence ? { presence: async () => presence.registry, presenceTimes: presence.times } : {}),
        },
        connectionId,
      );
      logger.info({ connectionId, rooms: rooms.length }, "removed a stale connection");
    } catch (err) {
      logger.warn({ connectionId, err }, "could not remove a stale connection; its TTL will");
    }
  }

  async function post(connectionId: string, data: string): Promise<void> {
    // 429 LimitExceededException (the account's request rate, which every API of the account shares,
    // or the client's full buffer) is not a failure: back off (capped, jittered) and post again, so
    // nothing is dropped, and the room's next message waits for this one, so its order holds. Only a
    // client that stays full for THROTTLE_GIVE_UP_MS is given up on, so that it cannot stall its room
    // for good: its client fills the gap with getHistory, as after any failed delivery.
    const THROTTLE_GIVE_UP_MS = 60_000;
    let throttledSince: number | undefined;
    let throttles = 0;
    for (let attempt = 0; ; ) {
      try {
        if ((await gateway.post(connectionId, data)) === "gone") return dropConnection(connectionId);
        stats.delivered++;
        return;
      } catch (err) {
        const e = err as { name?: string; throttled?: boolean; $metadata?: { httpStatusCode?: number } };
        if (
          e?.throttled === true ||
          e?.name === "LimitExceededException" ||
          e?.$metadata?.httpStatusCode === 429
        ) {
          throttledSince ??= Date.now();
          if (Date.now() - throttledSince < THROTTLE_GIVE_UP_MS) {
            stats.retried++;
            await sleep(backoffMs(Math.min(throttles++, 6), 50, 1000));
            continue;
          }
        }
        if (++attempt >= postAttempts) {
          stats.failed++;
          logger.warn({ connectionId, err }, "delivery failed after retries");
          return;
        }
        stats.retried++;
        await sleep(backoffMs(attempt - 1));
      }
    }
  }

  async function deliver(entry: MessageEntry): Promise<void> {
    const { roomId, seq } = entry.message;
    const last = delivered.get(roomId);
    if (last !== undefined && seq <= last) {
      stats.stale++;
      return;
    }
    const ids = await membersOf(roomId, entry.membershipVersion);
    const data = JSON.stringify(toMessageFrame(entry.message));
    await Promise.all(
      ids.filter((m) => m.joinedSeq < seq).map((m) => limit(() => post(m.connectionId, data))),
    );
    delivered.delete(roomId);
    delivered.set(roomId, seq);
    if (delivered.size > DELIVERED_ROOMS) delivered.delete(delivered.keys().next().value as string);
    stats.messages++;
  }

  async function notice(entry: NoticeEntry): Promise<void> {
    if (entry.forget) members.delete(entry.roomId);
    if (entry.dropAfter !== undefined && Date.now() > entry.dropAfter) {
      stats.late++;
      return;
    }
    const { to } = entry;
    const ids = Array.isArray(to)
      ? to
      : (await membersOf(entry.roomId, to.membershipVersion))
          .map((m) => m.connectionId)
          .filter((id) => id !== to.except);
    const data = JSON.stringify(entry.frame);
    await Promise.all(ids.map((id) => limit(() => post(id, data))));
  }

  async function deliverWithRetry(entry: MessageEntry): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await deliver(entry);
      } catch (err) {
        // Listing the members failed (DynamoDB); the room waits, to keep its order.
        if (stopping || attempt + 1 >= postAttempts) {
          stats.failed++;
          logger.error(
            { roomId: entry.message.roomId, seq: entry.message.seq, err },
            "could not fan out a message",
          );
          return;
        }
        await sleep(backoffMs(attempt, 100));
      }
    }
  }

  function parse(fields: string[]): Entry | undefined {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
    try {
      if (record.c !== undefined) {
        const c = JSON.parse(record.c) as {
          roomId?: unknown;
          connectionIds?: unknown;
          room?: unknown;
          except?: unknown;
          frame?: unknown;
          forget?: unknown;
          dropAfter?: unknown;
        };
        if (
          typeof c.roomId !== "string" ||
          (!Array.isArray(c.connectionIds) && c.room !== true) ||
          typeof c.frame !== "object" ||
          c.frame === null
        ) {
          throw new Error("a notice entry lacks its room, connections or frame");
        }
        return {
          kind: "notice",
          roomId: c.roomId,
          to: Array.isArray(c.connectionIds)
            ? c.connectionIds.filter((id): id is string => typeof id === "string")
            : {
                room: true,
                membershipVersion: record.v ?? "0",
                ...(typeof c.except === "string" ? { except: c.except } : {}),
              },
          frame: c.frame,
          forget: c.forget === true,
          ...(typeof c.dropAfter === "number" ? { dropAfter: c.dropAfter } : {}),
        };
      }
      const message = chatMessage().parse(JSON.parse(record.m ?? ""));
      return { kind: "message", roomId: message.roomId, message, membershipVersion: record.v ?? "0" };
    } catch (err) {
      logger.error({ err }, "dropped a malformed fan-out entry");
      return undefined;
    }
  }

  async function deliverBatch(shard: number, batch: [string, string[]][]): Promise<void> {
    const rooms = new Map<string, (Entry & { id: string })[]>();
    for (const [id, fields] of batch) {
      const parsed = parse(fields);
      if (!parsed) continue;
      const entry = { ...parsed, id };
      const list = rooms.get(entry.roomId);
      if (list) list.push(entry);
      else rooms.set(entry.roomId, [entry]);
    }
    await Promise.all(
      [...rooms.values()].map(async (list) => {
        for (const entry of list) {
          // A worker whose lease lapsed while it delivered (a stall) must stop: the new owner
          // finishes the batch, and two deliverers would post the same message twice.
          if (!(await leases.claim(shard, entry.id))) {
            logger.warn(
              { shard },
              "the shard's lease passed to another worker mid-batch; leaving the rest to it",
            );
            return;
          }
          if (entry.kind === "notice") await notice(entry);
          else await deliverWithRetry(entry);
        }
      }),
    );
  }

  async function runShard(shard: number): Promise<void> {
    const reader = deps.newReader();
    const stream = keys.stream(shard);
    try {
      // A shard never read before starts at recent entries: older ones are history's job.
      let cursor = (await leases.cursor(shard)) ?? `${Date.now() - 30_000}-0`;
      const unfinished = await leases.unfinished(shard);
      if (unfinished && unfinished.entries.length > 0) {
        const rest = unfinished.entries.filter(([id]) => !unfinished.started.has(id));
        logger.info(
          { shard, entries: rest.length, skipped: unfinished.entries.length - rest.length },
          "finishing the batch the shard's previous owner left",
        );
        await deliverBatch(shard, rest);
      }
      while (owned.has(shard) && !stopping) {
        const reply = (await reader.xread("COUNT", batchSize, "BLOCK", 1000, "STREAMS", stream, cursor)) as
          | [string, [string, string[]][]][]
          | null;
        const batch = reply?.[0]?.[1];
        if (!batch || batch.length === 0) continue;
        const last = batch[batch.length - 1]?.[0] as string;
        if (!(await leases.advance(shard, last))) {
          logger.warn({ shard }, "lost the lease of a shard; leaving its batch to the new owner");
          owned.delete(shard);
          break;
        }
        cursor = last;
        await deliverBatch(shard, batch);
        // Every entry up to the cursor is delivered: only what is still to deliver stays. (Exact, not
        // `~`: on a full Redis this is what frees the memory, and it runs there too.)
        await deps.redis.xtrim(stream, "MINID", "=", nextId(last));
      }
    } catch (err) {
      logger.error({ shard, err }, "shard loop failed; the shard will be taken again");
      owned.delete(shard);
    } finally {
      reader.disconnect();
      if (!owned.has(shard)) await leases.release(shard).catch(() => undefined);
      loops.delete(shard);
    }
  }

  async function balance(): Promise<void> {
    // Renewals go out together (one pipelined round trip), ahead of anything slower.
    const held = [...owned];
    const [live, renewed] = await Promise.all([
      leases.heartbeat(),
      Promise.all(held.map((shard) => leases.renew(shard))),
    ]);
    held.forEach((shard, i) => {
      if (!renewed[i]) {
        logger.warn({ shard }, "lease expired before renewal");
        owned.delete(shard);
      }
    });
    const fair = Math.ceil(options.shards / live);
    if (owned.size > fair) {
      // Hand the surplus over: each loop finishes its batch, then releases the lease.
      for (const shard of [...owned].slice(fair)) owned.delete(shard);
    } else if (owned.size < fair) {
      const order = [...Array(options.shards).keys()].sort(() => Math.random() - 0.5);
      for (const shard of order) {
        if (owned.size >= fair) break;
        if (owned.has(shard) || loops.has(shard)) continue;
        if (await leases.tryAcquire(shard)) {
          owned.add(shard);
          loops.set(shard, runShard(shard));
        }
      }
    }
    stats.shards = [...owned].sort((a, b) => a - b);
  }

  async function sweep(log: EventLog): Promise<void> {
    const lease = "fanout:sweeper";
    const mine =
      (await redis.set(lease, options.workerId, "PX", sweepAfterMs, "NX")) === "OK" ||
      (await redis.get(lease)) === options.workerId;
    if (!mine) return;
    await redis.pexpire(lease, sweepAfterMs);
    const pending = await bus.unloggedSince(sweepAfterMs);
    if (pending.length === 0) return;
    await log.append(pending);
    for (const m of pending) await bus.markLogged(m.senderId, m.clientMsgId);
    stats.swept += pending.length;
    logger.warn(
      { count: pending.length },
      "appended accepted messages whose Kafka append was never confirmed",
    );
  }

  return {
    stats: (): FanoutStats => ({ ...stats, shards: [...stats.shards] }),
    async start(): Promise<void> {
      await balance();
      const every = Math.max(100, Math.floor(options.leaseMs / 3));
      ticker = setInterval(() => {
        ticking = ticking.then(balance).catch((err) => logger.error({ err }, "balancing failed"));
      }, every);
      releaser = setInterval(
        () => {
          void bus
            .releaseHeld(releaseHeldMs)
            .then((n) => {
              if (n > 0) logger.warn({ rooms: n }, "released rooms that waited for a seq that never came");
            })
            .catch((err) => logger.error({ err }, "releasing held rooms failed"));
        },
        Math.max(200, Math.floor(releaseHeldMs / 2)),
      );
      if (deps.log) {
        const log = deps.log;
        sweeper = setInterval(
          () => {
            void sweep(log).catch((err) => logger.error({ err }, "sweep failed"));
          },
          Math.max(500, Math.floor(sweepAfterMs / 2)),
        );
      }
      logger.info({ workerId: options.workerId, shards: stats.shards }, "fan-out worker started");
    },
    /** Finishes the batches in flight, hands its shards back and leaves. */
    async stop(): Promise<void> {
      stopping = true;
      clearInterval(ticker);
      clearInterval(sweeper);
      clearInterval(releaser);
      await ticking;
      owned.clear();
      await Promise.all(loops.values());
      await leases.leave().catch(() => undefined);
      logger.info({ ...stats }, "fan-out worker stopped");
    },
  };
}

async function main(): Promise<void> {
  const logger = createLogger("fanout");
  const fanout = config.fanout();
  const redis = new Redis(config.redis().url, redisOptions(await redisPassword()));
  const kafkaLog = new KafkaEventLog(createKafka());
  const store = new DynamoConnectionStore(createDynamoClient());
  const bus = new RedisMessageBus(redis);
  const presence = { registry: new RedisPresence(redis), times: config.presence() };
  const workerId = fanout.workerId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const worker = createFanoutWorker(
    {
      redis,
      newReader: () => redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null }),
      store,
      gateway: new ManagementApiGateway(createManagementClient()),
      bus,
      log: kafkaLog,
      presence,
      logger,
    },
    {
      shards: fanout.shards,
      concurrency: fanout.concurrency,
      leaseMs: fanout.leaseMs,
      sweepAfterMs: fanout.sweepAfterMs,
      workerId,
    },
  );
  let running = true;
  const port = config.persister().healthPort;
  const health =
    port !== undefined
      ? await serveHealth(port, () => ({ ok: running, status: running ? "delivering" : "stopping" }))
      : undefined;
  await worker.start();
  let probe: ManagementConnectionProbe | undefined;
  const reaper = startPresenceReaper({
    redis,
    logger,
    workerId,
    store: async () => store,
    bus: async () => bus,
    presence: async () => presence.registry,
    presenceTimes: presence.times,
    probe: async () =>
      (probe ??= new ManagementConnectionProbe(createManagementClient(config.management().endpoint, 4))),
  });
  const report = setInterval(() => logger.info(worker.stats(), "fan-out stats"), 30_000);
  const shutdown = async (signal: string) => {
    if (!running) return;
    running = false;
    logger.info({ signal }, "stopping");
    clearInterval(report);
    await Promise.all([worker.stop(), reaper.stop()]);
    await kafkaLog.disconnect();
    redis.disconnect();
    health?.close();
    process.exit(0);
  };
  onShutdown((signal) => void shutdown(signal));
}

if (require.main === module) {
  main().catch((err) => {
    createLogger("fanout").fatal({ err }, "fan-out worker could not start");
    process.exit(1);
  });
}
