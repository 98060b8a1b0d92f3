/**
 * What AWS would bill for the traffic the emulator carries, counted where the local stack can see
 * it: API Gateway messages (each frame in either direction, in 32 KB units) and connection minutes;
 * Lambda invocations and GB-seconds by handler; DynamoDB read and write units (from the counting
 * proxy in front of DynamoDB, dynamodb-meter.ts); bytes appended to Kafka.
 *
 * Prices are not here: cost.ts applies bench/prices.json to a snapshot.
 */

/** API Gateway bills a WebSocket message per 32 KB (a 33 KB frame is two messages). */
export const BILLING_UNIT_BYTES = 32 * 1024;

/** What a throttle or bound refused, by kind. */
export type ThrottleKind =
  /** A client frame or upgrade over the account's rate. */
  | "account"
  /** An `@connections` call over the account's rate (the same bucket). */
  | "accountCallbacks"
  | "route"
  | "newConnections"
  | "clientBuffer"
  /** A frame past Lambda's concurrency. */
  | "concurrency"
  | "connectionQueue"
  | "disconnectDropped";

export interface HandlerUsage {
  invocations: number;
  /** Billed duration: each invocation's wall time rounded up to the millisecond. */
  ms: number;
  gbSeconds: number;
}

/** One reading of the meter. */
export interface MeterSnapshot {
  startedAt: string;
  endedAt: string;
  seconds: number;
  apiGateway: {
    /** Billed messages: frames from clients, in 32 KB units. */
    messagesIn: number;
    /** Billed messages: frames to clients (route responses, posts, error frames), in 32 KB units. */
    messagesOut: number;
    framesIn: number;
    framesOut: number;
    bytesIn: number;
    bytesOut: number;
    /** Connection minutes: every connection's open time, to the second, in minutes. */
    connectionMinutes: number;
    connections: number;
    /** The most connections open at once. */
    peakConnections: number;
    /** `@connections` calls (POST, GET, DELETE), including refused ones. */
    managementCalls: number;
    throttled: Record<ThrottleKind, number>;
  };
  lambda: {
    memoryMb: number;
    invocations: number;
    gbSeconds: number;
    byHandler: Record<string, HandlerUsage>;
  };
  dynamodb: {
    /** Requests seen by the counting proxy; 0 when it did not run. */
    requests: number;
    readUnits: number;
    writeUnits: number;
    /** Requests whose answer carried no ConsumedCapacity, counted as one unit per item (an estimate). */
    estimatedRequests: number;
    byOperation: Record<string, { requests: number; readUnits: number; writeUnits: number }>;
  };
  kafka: {
    /** Records appended by the handlers (the fan-out's sweeper appends rarely, in its own process). */
    records: number;
    /** Key and value bytes of those records (what MSK counts as data in, before protocol overhead). */
    bytesIn: number;
    /** bytesIn × consumer groups (the persister's): an estimate, the consumers run elsewhere. */
    bytesOutEstimated: number;
  };
}

const units = (bytes: number) => Math.max(1, Math.ceil(bytes / BILLING_UNIT_BYTES));

/** The counters; one per emulator (the local stack shares it with its DynamoDB proxy and Kafka wrapper). */
export class Meter {
  private readonly started = Date.now();
  private messagesIn = 0;
  private messagesOut = 0;
  private framesIn = 0;
  private framesOut = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private closedMs = 0;
  private readonly open = new Map<string, number>();
  private connections = 0;
  private peakConnections = 0;
  private managementCalls = 0;
  private readonly throttled: Record<ThrottleKind, number> = {
    account: 0,
    accountCallbacks: 0,
    route: 0,
    newConnections: 0,
    clientBuffer: 0,
    concurrency: 0,
    connectionQueue: 0,
    disconnectDropped: 0,
  };
  private readonly handlers = new Map<string, HandlerUsage>();
  private readonly dynamo: MeterSnapshot["dynamodb"] = {
    requests: 0,
    readUnits: 0,
    writeUnits: 0,
    estimatedRequests: 0,
    byOperation: {},
  };
  private kafkaRecords = 0;
  private kafkaBytes = 0;

  constructor(
    private readonly lambdaMemoryMb = 512,
    /** Consumer groups reading the topic (the persisters'), for the bytes-out estimate. */
    private readonly kafkaConsumerGroups = 1,
  ) {}

  frameIn(bytes: number): void {
    this.framesIn++;
    this.bytesIn += bytes;
    this.messagesIn += units(bytes);
  }

  frameOut(bytes: number): void {
    this.framesOut++;
    this.bytesOut += bytes;
    this.messagesOut += units(bytes);
  }

  connectionOpened(connectionId: string, at = Date.now()): void {
    this.open.set(connectionId, at);
    this.connections++;
    this.peakConnections = Math.max(this.peakConnections, this.open.size);
  }

  connectionClosed(connectionId: string, at = Date.now()): void {
    const since = this.open.get(connectionId);
    if (since === undefined) return;
    this.open.delete(connectionId);
    this.closedMs += at - since;
  }

  managementCall(): void {
    this.managementCalls++;
  }

  throttle(kind: ThrottleKind): void {
    this.throttled[kind]++;
  }

  /** One Lambda invocation of `handler` that ran `ms` milliseconds. */
  invocation(handler: string, ms: number): void {
    const billedMs = Math.max(1, Math.ceil(ms));
    const usage = this.handlers.get(handler) ?? { invocations: 0, ms: 0, gbSeconds: 0 };
    usage.invocations++;
    usage.ms += billedMs;
    usage.gbSeconds += (billedMs / 1000) * (this.lambdaMemoryMb / 1024);
    this.handlers.set(handler, usage);
  }

  /** One DynamoDB request; `consumed` undefined when the answer did not say (then `estimate` units). */
  dynamodb(operation: string, kind: "read" | "write", consumed: number | undefined, estimate = 1): void {
    const n = consumed ?? estimate;
    if (consumed === undefined) this.dynamo.estimatedRequests++;
    this.dynamo.requests++;
    const op = this.dynamo.byOperation[operation] ?? { requests: 0, readUnits: 0, writeUnits: 0 };
    this.dynamo.byOperation[operation] = op;
    op.requests++;
    if (kind === "read") {
      this.dynamo.readUnits += n;
      op.readUnits += n;
    } else {
      this.dynamo.writeUnits += n;
      op.writeUnits += n;
    }
  }

  kafkaAppend(records: number, bytes: number): void {
    this.kafkaRecords += records;
    this.kafkaBytes += bytes;
  }

  snapshot(now = Date.now()): MeterSnapshot {
    let openMs = 0;
    for (const since of this.open.values()) openMs += now - since;
    const byHandler: Record<string, HandlerUsage> = {};
    let invocations = 0;
    let gbSeconds = 0;
    for (const [name, usage] of [...this.handlers].sort(([a], [b]) => a.localeCompare(b))) {
      byHandler[name] = { ...usage, gbSeconds: round(usage.gbSeconds, 4) };
      invocations += usage.invocations;
      gbSeconds += usage.gbSeconds;
    }
    return {
      startedAt: new Date(this.started).toISOString(),
      endedAt: new Date(now).toISOString(),
      seconds: round((now - this.started) / 1000, 1),
      apiGateway: {
        messagesIn: this.messagesIn,
        messagesOut: this.messagesOut,
        framesIn: this.framesIn,
        framesOut: this.framesOut,
        bytesIn: this.bytesIn,
        bytesOut: this.bytesOut,
        connectionMinutes: round((this.closedMs + openMs) / 60_000, 4),
        connections: this.connections,
        peakConnections: this.peakConnections,
        managementCalls: this.managementCalls,
        throttled: { ...this.throttled },
      },
      lambda: { memoryMb: this.lambdaMemoryMb, invocations, gbSeconds: round(gbSeconds, 4), byHandler },
      dynamodb: {
        ...this.dynamo,
        readUnits: round(this.dynamo.readUnits, 1),
        writeUnits: round(this.dynamo.writeUnits, 1),
        byOperation: structuredClone(this.dynamo.byOperation),
      },
      kafka: {
        records: this.kafkaRecords,
        bytesIn: this.kafkaBytes,
        bytesOutEstimated: this.kafkaBytes * this.kafkaConsumerGroups,
      },
    };
  }
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
