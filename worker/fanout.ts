/**
 * The fan-out worker: reads the fan-out stream of the shards it owns, and posts each message to every
 * member connection of its room through the API Gateway management API.
 *
 * The parts, each in a file of its own:
 * - fanout-leases.ts: shard ownership (leases in Redis renewed by their owner; a dead worker's shards
 *   go to the others when its leases expire), the cursor, the watermark and the started record;
 * - fanout-shard.ts: one owned shard's loop: reads entries, works each room's queue in order (rooms
 *   do not wait for each other), records what is delivered and trims it from the stream, and counts
 *   entries trimmed before they were read;
 * - fanout-delivery.ts: one outbox per connection (order per connection, batched frames for
 *   connections that accept them, fair turns between rooms, retries, 410 handling);
 * - fanout-members.ts: the bounded member cache;
 * - fanout-sweeper.ts: appends to Kafka what was accepted but never confirmed, releases held rooms.
 * This file balances shards between the live workers and wires the parts; `main` runs it.
 */

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { ManagementConnectionProbe } from "../core/adapters/connection-probe";
import { createDynamoClient, DynamoConnectionStore } from "../core/adapters/dynamo";
import { createKafka, KafkaEventLog } from "../core/adapters/kafka";
import { createManagementClient, ManagementApiGateway } from "../core/adapters/management";
import { poolTransport } from "../core/adapters/pool-transport";
import { RedisPresence } from "../core/adapters/presence";
import { RedisMessageBus, redisOptions } from "../core/adapters/redis";
import { disconnect } from "../core/chat";
import { config } from "../core/config";
import { createLogger, type Logger } from "../core/logger";
import type { ConnectionGateway, ConnectionStore, EventLog, PresenceRegistry } from "../core/ports";
import { redisPassword } from "../core/secrets";
import { Delivery, type DeliveryStats } from "./fanout-delivery";
import { ShardLeases } from "./fanout-leases";
import { MemberCache } from "./fanout-members";
import { RoomSeqs, type ShardCounts, ShardRunner } from "./fanout-shard";
import { startSweeper } from "./fanout-sweeper";
import { runWorker } from "./lifecycle";
import { emitCount, TRIMMED_METRIC } from "./metrics";
import { startPresenceReaper } from "./presence-reaper";

export { nextId } from "./fanout-entries";

export interface FanoutOptions {
  shards: number;
  /** POSTs in flight at once, over every shard. */
  concurrency: number;
  leaseMs: number;
  workerId: string;
  /** Entries read from a shard at a time. */
  batchSize?: number;
  /** Entries read and not yet delivered per shard, at most. */
  maxPending?: number;
  /** A room's entries in delivery at once, at most. */
  roomWindow?: number;
  /** How long a room's member list may be reused while its membership version is unchanged. */
  memberCacheMs?: number;
  /** Rooms and member entries the member cache holds at most. */
  memberCacheRooms?: number;
  memberCacheMembers?: number;
  /** Attempts of one post before it counts as failed. */
  postAttempts?: number;
  /** How long a connection answering 429 is retried before its frames count as failed. */
  throttleGiveUpMs?: number;
  /** The largest body of one POST carrying batched frames, in bytes. */
  maxBatchBytes?: number;
  /** Stale connections removed at once (each a few DynamoDB calls). */
  cleanupConcurrency?: number;
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
  /** Where counts that must alarm go (CloudWatch's embedded metric format on stdout by default). */
  metric?: (name: string, value: number, dimensions: Record<string, string>) => void;
}

/**
 * What the worker did: its shards' counts and its deliveries (`failed` also counts the messages
 * whose members could not be listed), and what it holds now.
 */
export interface FanoutStats extends ShardCounts, DeliveryStats {
  swept: number;
  /** Entries trimmed from the stream before they were read: never delivered. */
  trimmed: number;
  memberLists: number;
  /** Posts in flight, connections with frames to send, rooms whose turn is waiting. */
  inFlight: number;
  outboxes: number;
  waitingRooms: number;
  cachedRooms: number;
  cachedMembers: number;
  shards: number[];
}

export function createFanoutWorker(deps: FanoutDeps, options: FanoutOptions) {
  const { redis, store, bus, logger } = deps;
  const metric = deps.metric ?? emitCount;
  const leases = new ShardLeases(redis, options.workerId, options.shards, options.leaseMs);
  const members = new MemberCache(store, {
    ttlMs: options.memberCacheMs ?? 60_000,
    maxRooms: options.memberCacheRooms ?? 10_000,
    maxMembers: options.memberCacheMembers ?? 500_000,
    maxFlags: 500_000,
  });
  const counts: ShardCounts = { messages: 0, stale: 0, late: 0, unlisted: 0 };
  let swept = 0;
  let trimmed = 0;

  // Stale connections: each is removed once, a few at a time, whatever number of rooms and posts
  // find it gone at once (a mass disconnect).
  const cleanupConcurrency = options.cleanupConcurrency ?? 4;
  const dropping = new Set<string>();
  const toDrop: string[] = [];
  let cleaning = 0;
  const cleanNext = () => {
    while (cleaning < cleanupConcurrency && toDrop.length > 0) {
      const connectionId = toDrop.shift() as string;
      cleaning++;
      const { presence } = deps;
      disconnect(
        {
          store: async () => store,
          bus: async () => bus,
          ...(presence ? { presence: async () => presence.registry, presenceTimes: presence.times } : {}),
        },
        connectionId,
      )
        .then(
          (rooms) => logger.info({ connectionId, rooms: rooms.length }, "removed a stale connection"),
          (err: unknown) =>
            logger.warn({ connectionId, err }, "could not remove a stale connection; its TTL will"),
        )
        .finally(() => {
          cleaning--;
          dropping.delete(connectionId);
          cleanNext();
        });
    }
  };
  const delivery = new Delivery(
    deps.gateway,
    {
      concurrency: options.concurrency,
      attempts: options.postAttempts ?? 4,
      throttleGiveUpMs: options.throttleGiveUpMs ?? 60_000,
      maxBatchBytes: options.maxBatchBytes ?? 32 * 1024,
    },
    {
      gone(connectionId) {
        members.dropConnection(connectionId);
        if (dropping.has(connectionId)) return;
        dropping.add(connectionId);
        toDrop.push(connectionId);
        cleanNext();
      },
      failed(connectionId, err) {
        logger.warn({ connectionId, err }, "delivery failed after retries");
      },
    },
  );
  const shardContext = {
    leases,
    newReader: deps.newReader,
    members,
    delivery,
    lastSeq: new RoomSeqs(),
    counts,
    logger,
    options: {
      batchSize: options.batchSize ?? 200,
      maxPending: options.maxPending ?? 5000,
      roomWindow: options.roomWindow ?? 64,
      listAttempts: options.postAttempts ?? 4,
      handoverMs: Math.max(500, Math.floor(options.leaseMs / 2)),
    },
    onTrimmed(shard: number, count: number) {
      trimmed += count;
      logger.error(
        { shard, count },
        "fan-out entries were trimmed from the stream before they were delivered; their rooms' clients see a gap",
      );
      metric(TRIMMED_METRIC, count, { Service: "fanout" });
    },
  };
  const runners = new Map<number, ShardRunner>();
  const loops = new Map<number, Promise<void>>();
  const owned = () => [...runners.values()].filter((r) => r.owned).map((r) => r.shard);
  let stopping = false;
  let ticker: NodeJS.Timeout | undefined;
  let stopSweeper: (() => void) | undefined;
  let ticking: Promise<void> = Promise.resolve();

  const stats = (): FanoutStats => {
    const usage = members.usage();
    return {
      ...counts,
      delivered: delivery.stats.delivered,
      posts: delivery.stats.posts,
      batched: delivery.stats.batched,
      gone: delivery.stats.gone,
      failed: delivery.stats.failed + counts.unlisted,
      retried: delivery.stats.retried,
      swept,
      trimmed,
      memberLists: members.lists,
      ...delivery.load(),
      cachedRooms: usage.rooms,
      cachedMembers: usage.members,
      shards: owned().sort((a, b) => a - b),
    };
  };

  function run(shard: number): void {
    const runner = new ShardRunner(shardContext, shard);
    runners.set(shard, runner);
    loops.set(
      shard,
      runner.run().finally(async () => {
        runners.delete(shard);
        loops.delete(shard);
        await leases.release(shard).catch(() => undefined);
      }),
    );
  }

  async function balance(): Promise<void> {
    // Renewals go out together (one pipelined round trip), ahead of anything slower.
    const held = owned();
    const [live, renewed] = await Promise.all([
      leases.heartbeat(),
      Promise.all(held.map((shard) => leases.renew(shard))),
    ]);
    held.forEach((shard, i) => {
      if (!renewed[i]) {
        logger.warn({ shard }, "lease expired before renewal");
        const runner = runners.get(shard);
        if (runner) runner.owned = false;
      }
    });
    const fair = Math.ceil(options.shards / live);
    const mine = owned();
    if (mine.length > fair) {
      // Hand the surplus over: each loop lets its deliveries finish (bounded), then releases the lease.
      for (const shard of mine.slice(fair)) {
        const runner = runners.get(shard);
        if (runner) runner.owned = false;
      }
    } else if (mine.length < fair) {
      let count = mine.length;
      const order = [...Array(options.shards).keys()].sort(() => Math.random() - 0.5);
      for (const shard of order) {
        if (count >= fair || stopping) break;
        if (loops.has(shard)) continue;
        if (await leases.tryAcquire(shard)) {
          count++;
          run(shard);
        }
      }
    }
  }

  return {
    stats,
    async start(): Promise<void> {
      await balance();
      const every = Math.max(100, Math.floor(options.leaseMs / 3));
      ticker = setInterval(() => {
        ticking = ticking.then(balance).catch((err) => logger.error({ err }, "balancing failed"));
      }, every);
      stopSweeper = startSweeper({
        redis,
        bus,
        log: deps.log,
        logger,
        workerId: options.workerId,
        sweepAfterMs: options.sweepAfterMs ?? 10_000,
        releaseHeldMs: options.releaseHeldMs ?? 2_000,
        onSwept: (n) => {
          swept += n;
        },
      });
      logger.info({ workerId: options.workerId, shards: stats().shards }, "fan-out worker started");
    },
    /** Finishes the deliveries in flight (bounded), hands its shards back and leaves. */
    async stop(): Promise<void> {
      stopping = true;
      clearInterval(ticker);
      stopSweeper?.();
      await ticking;
      for (const runner of runners.values()) runner.owned = false;
      await Promise.all(loops.values());
      delivery.close();
      await leases.leave().catch(() => undefined);
      logger.info({ ...stats() }, "fan-out worker stopped");
    },
  };
}

async function main(): Promise<void> {
  const logger = createLogger("fanout");
  const fanout = config.fanout();
  const redis = new Redis(config.redis().url, redisOptions(await redisPassword()));
  const kafkaLog = new KafkaEventLog(createKafka());
  const store = new DynamoConnectionStore(createDynamoClient());
  // Both define their scripts on the client before either sends a command.
  const bus = new RedisMessageBus(redis);
  const presence = { registry: new RedisPresence(redis), times: config.presence() };
  const workerId = fanout.workerId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const worker = createFanoutWorker(
    {
      redis,
      newReader: () => redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null }),
      store,
      gateway: new ManagementApiGateway(createManagementClient(), { transport: poolTransport }),
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
  let probe: ManagementConnectionProbe | undefined;
  let reaper: { stop: () => Promise<void> } | undefined;
  await runWorker({
    logger,
    healthPort: fanout.healthPort,
    status: "delivering",
    start: async () => {
      await worker.start();
      reaper = startPresenceReaper({
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
    },
    stop: async () => {
      await Promise.all([worker.stop(), reaper?.stop()]);
    },
    close: async () => {
      await kafkaLog.disconnect();
      redis.disconnect();
    },
    report: () => worker.stats(),
  });
}

if (require.main === module) {
  main().catch((err) => {
    createLogger("fanout").fatal({ err }, "fan-out worker could not start");
    process.exit(1);
  });
}
