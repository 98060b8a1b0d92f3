/**
 * What a meter reading would cost on AWS, from bench/prices.json: the run's usage, and a projection
 * to a month of 1,000 users who each behave as the run's average connection did (connected as much,
 * sending and receiving as much). And the same chat pattern priced on the alternatives the README
 * compares (AppSync Events, IoT Core, self-hosted Socket.IO), with estimates marked.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { MeterSnapshot } from "./meter";

interface Priced {
  usd?: number;
  value?: number;
  estimate?: boolean;
  source: string;
  read: string;
}

/** bench/prices.json. */
export interface Prices {
  read: string;
  hoursPerMonth: number;
  prices: Record<string, Priced>;
  alternatives: Record<string, Priced>;
}

export const PRICES_FILE = join(__dirname, "..", "..", "bench", "prices.json");

export function loadPrices(file = PRICES_FILE): Prices {
  return JSON.parse(readFileSync(file, "utf8")) as Prices;
}

function usd(table: Record<string, Priced>, name: string): number {
  const entry = table[name];
  if (entry?.usd === undefined) throw new Error(`bench/prices.json has no price ${name}`);
  return entry.usd;
}

/** One line of a bill. */
export interface CostLine {
  item: string;
  quantity: number;
  unit: string;
  usd: number;
  estimate?: boolean;
}

export interface Projection {
  /** Connections open on average during the run: the "users" the run had. */
  averageConnections: number;
  users: number;
  /** The run's usage times this is a month of `users` users. */
  scale: number;
  lines: CostLine[];
  /** The usage-priced total (API Gateway, Lambda, DynamoDB): what grows with the traffic. */
  usageUsd: number;
  /** The share of the usage-priced total that is API Gateway. */
  apiGatewayShare: number;
  /** The deployed stack's cost whatever the traffic (infra/README.md). */
  fixedUsd: number;
  pricesRead: string;
}

/**
 * Projects a month of `users` users behaving as the run's average connection did; undefined when
 * the run had no connection time to project from.
 */
export function projectMonthlyCost(m: MeterSnapshot, prices: Prices, users = 1000): Projection | undefined {
  const runMinutes = m.seconds / 60;
  if (runMinutes <= 0 || m.apiGateway.connectionMinutes <= 0) return undefined;
  const averageConnections = m.apiGateway.connectionMinutes / runMinutes;
  const scale = (users / averageConnections) * ((prices.hoursPerMonth * 60) / runMinutes);
  const p = prices.prices;
  const million = 1_000_000;
  const gb = 1024 ** 3;
  const messages = (m.apiGateway.messagesIn + m.apiGateway.messagesOut) * scale;
  const lines: CostLine[] = [
    {
      item: "API Gateway messages (32 KB units, both ways)",
      quantity: messages,
      unit: "messages",
      usd: (messages / million) * usd(p, "apiGatewayWebSocketMessagesPerMillion"),
    },
    {
      item: "API Gateway connection minutes",
      quantity: m.apiGateway.connectionMinutes * scale,
      unit: "minutes",
      usd:
        ((m.apiGateway.connectionMinutes * scale) / million) *
        usd(p, "apiGatewayWebSocketConnectionMinutesPerMillion"),
    },
    {
      item: "Lambda requests",
      quantity: m.lambda.invocations * scale,
      unit: "invocations",
      usd: ((m.lambda.invocations * scale) / million) * usd(p, "lambdaRequestsPerMillion"),
    },
    {
      item: `Lambda duration (arm64, ${m.lambda.memoryMb} MB; local wall time)`,
      quantity: m.lambda.gbSeconds * scale,
      unit: "GB-seconds",
      usd: m.lambda.gbSeconds * scale * usd(p, "lambdaGbSecondArm64"),
      estimate: true,
    },
    {
      item: "DynamoDB reads",
      quantity: m.dynamodb.readUnits * scale,
      unit: "read units",
      usd: ((m.dynamodb.readUnits * scale) / million) * usd(p, "dynamodbReadRequestUnitsPerMillion"),
      estimate: m.dynamodb.estimatedRequests > 0 || m.dynamodb.requests === 0,
    },
    {
      item: "DynamoDB writes",
      quantity: m.dynamodb.writeUnits * scale,
      unit: "write units",
      usd: ((m.dynamodb.writeUnits * scale) / million) * usd(p, "dynamodbWriteRequestUnitsPerMillion"),
      estimate: m.dynamodb.estimatedRequests > 0 || m.dynamodb.requests === 0,
    },
    {
      item: "Kafka data, were it MSK Serverless (in + out)",
      quantity: ((m.kafka.bytesIn + m.kafka.bytesOutEstimated) * scale) / gb,
      unit: "GB",
      usd:
        ((m.kafka.bytesIn * scale) / gb) * usd(p, "mskServerlessDataInPerGb") +
        ((m.kafka.bytesOutEstimated * scale) / gb) * usd(p, "mskServerlessDataOutPerGb"),
      estimate: true,
    },
  ];
  const usageLines = lines.slice(0, 6);
  const usageUsd = usageLines.reduce((a, l) => a + l.usd, 0);
  const apiGateway = (lines[0]?.usd ?? 0) + (lines[1]?.usd ?? 0);
  return {
    averageConnections,
    users,
    scale,
    lines,
    usageUsd,
    apiGatewayShare: usageUsd > 0 ? apiGateway / usageUsd : 0,
    fixedUsd: usd(p, "stackFixedPerMonth"),
    pricesRead: prices.read,
  };
}

const money = (n: number) => `$${n < 10 ? n.toFixed(2) : Math.round(n).toLocaleString("en-US")}`;
const count = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)} billion`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(1)} million`
      : Math.round(n).toLocaleString("en-US");

/** The meter, for people: one line per meter. */
export function formatMeter(m: MeterSnapshot): string[] {
  const a = m.apiGateway;
  const t = Object.entries(a.throttled)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const handlers = Object.entries(m.lambda.byHandler)
    .map(([name, u]) => `${name} ${u.invocations} (${u.gbSeconds.toFixed(2)} GB-s)`)
    .join(", ");
  return [
    `What AWS would bill for this run (${m.seconds} s):`,
    `  API Gateway: ${a.messagesIn} messages in, ${a.messagesOut} out (32 KB units; ${a.framesIn} and ${a.framesOut} frames), ` +
      `${a.connectionMinutes.toFixed(2)} connection minutes over ${a.connections} connections (at most ${a.peakConnections} at once), ` +
      `${a.managementCalls} @connections calls${t ? `; refused: ${t}` : ""}`,
    `  Lambda (${m.lambda.memoryMb} MB): ${m.lambda.invocations} invocations, ${m.lambda.gbSeconds.toFixed(2)} GB-s${handlers ? `: ${handlers}` : ""}`,
    m.dynamodb.requests > 0
      ? `  DynamoDB: ${m.dynamodb.readUnits} read units, ${m.dynamodb.writeUnits} write units over ${m.dynamodb.requests} requests${m.dynamodb.estimatedRequests > 0 ? ` (${m.dynamodb.estimatedRequests} estimated)` : ""}`
      : "  DynamoDB: not metered in this run",
    `  Kafka: ${m.kafka.records} records, ${(m.kafka.bytesIn / 1024).toFixed(1)} KiB in (out ≈ ${(m.kafka.bytesOutEstimated / 1024).toFixed(1)} KiB, estimated)`,
  ];
}

/** The projection, for people. */
export function formatProjection(p: Projection): string[] {
  return [
    `Projected month for ${p.users.toLocaleString("en-US")} users, each as the run's average connection ` +
      `(${p.averageConnections.toFixed(1)} connections on average; prices of ${p.pricesRead}, bench/prices.json):`,
    ...p.lines.map(
      (l) => `  ${l.item}: ${count(l.quantity)} ${l.unit}, ${money(l.usd)}${l.estimate ? " (estimate)" : ""}`,
    ),
    `  usage-priced total ${money(p.usageUsd)} a month (API Gateway ${Math.round(p.apiGatewayShare * 100)} %), ` +
      `plus the stack's fixed ${money(p.fixedUsd)} a month (infra/README.md)`,
  ];
}

/** A chat pattern to price on every option. */
export interface ChatPattern {
  users: number;
  hoursConnectedPerDay: number;
  messagesSentPerUserPerDay: number;
  roomSize: number;
  /** Sessions (connects) per user per day. */
  sessionsPerDay: number;
}

/** Monthly cost of the pattern on this stack and on the alternatives, by option. */
export function compareOptions(
  pattern: ChatPattern,
  prices: Prices,
): { option: string; usd: number; note: string }[] {
  const p = prices.prices;
  const alt = prices.alternatives;
  const days = prices.hoursPerMonth / 24;
  const sent = pattern.users * pattern.messagesSentPerUserPerDay * days;
  const sessions = pattern.users * pattern.sessionsPerDay * days;
  const minutes = pattern.users * pattern.hoursConnectedPerDay * 60 * days;
  const million = 1_000_000;
  // This stack: the send, each member's copy and the ack are API Gateway messages; a join and a
  // history read per session; Lambda per frame and per connect (authorizer, $connect, $disconnect).
  const apiMessages = sent * (pattern.roomSize + 2) + sessions * 4;
  const invocations = sent + sessions * 5;
  const gbSeconds = invocations * 0.03 * 0.5; // 30 ms at 512 MB: an assumption
  const reads = sent * 1 + sessions * 2;
  const writes = sent * 2 + sessions * 4;
  const ours =
    (apiMessages / million) * usd(p, "apiGatewayWebSocketMessagesPerMillion") +
    (minutes / million) * usd(p, "apiGatewayWebSocketConnectionMinutesPerMillion") +
    (invocations / million) * usd(p, "lambdaRequestsPerMillion") +
    gbSeconds * usd(p, "lambdaGbSecondArm64") +
    (reads / million) * usd(p, "dynamodbReadRequestUnitsPerMillion") +
    (writes / million) * usd(p, "dynamodbWriteRequestUnitsPerMillion");
  // AppSync Events and IoT Core: a publish and a delivery to each other member; connects and subscribes.
  const pubsubMessages = sent * pattern.roomSize + sessions * 2;
  const appSync =
    (pubsubMessages / million) * usd(alt, "appSyncEventsOperationsPerMillion") +
    (minutes / million) * usd(alt, "appSyncEventsConnectionMinutesPerMillion");
  const iot =
    (pubsubMessages / million) * usd(alt, "iotCoreMessagesPerMillion") +
    (minutes / million) * usd(alt, "iotCoreConnectionMinutesPerMillion");
  return [
    {
      option: "this stack (API Gateway, Lambda, DynamoDB usage)",
      usd: ours,
      note: `plus its fixed ${money(usd(p, "stackFixedPerMonth"))} a month (Redis, Kafka, PostgreSQL, workers, NAT)`,
    },
    {
      option: "AppSync Events",
      usd: appSync,
      note: "estimate (connection-minute price taken from AppSync GraphQL); persistence, history and ordering not included",
    },
    {
      option: "IoT Core (MQTT over WebSocket)",
      usd: iot,
      note: "persistence, history and ordering not included; rules or Lambda to store messages cost extra",
    },
    {
      option: "self-hosted Socket.IO (2 Fargate tasks, ALB, Redis adapter)",
      usd: usd(alt, "socketIoSelfHostedPerMonth"),
      note: "estimate; flat up to what two tasks carry; persistence not included",
    },
  ];
}
