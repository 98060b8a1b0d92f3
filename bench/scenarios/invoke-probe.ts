/**
 * Run in a process of its own by coldstart.ts: requires each handler bundle, invokes it once to open
 * its connections, then times warm invocations against the local services. Prints one JSON line.
 * Argument: the bundles' directory. The environment names the services, table, topic and secret.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createDynamoClient, ensureTable } from "../../core/adapters/dynamo";
import { createKafka, ensureTopics } from "../../core/adapters/kafka";
import { signToken } from "../../core/auth";
import { migrate } from "../../prisma/migrate";

type Handler = (
  event: unknown,
  context: unknown,
) => Promise<{ statusCode?: number; body?: string } | unknown>;

const context = {
  functionName: "bench",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:bench",
  memoryLimitInMB: "1024",
  awsRequestId: "bench",
  logGroupName: "bench",
  logStreamName: "bench",
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => 29_000,
};

async function main(): Promise<void> {
  const dir = process.argv[2] as string;
  const runs = Number(process.argv[3] ?? 20);
  // The table, topics and schema the handlers expect, as the local stack creates them: a join of a
  // room Redis does not know reads the room's highest seq from PostgreSQL.
  await ensureTable(createDynamoClient(), process.env.TABLE_NAME as string);
  await ensureTopics(createKafka());
  await migrate(process.env.DATABASE_URL as string);
  const connectionId = `bench${Date.now()}=`;
  const userId = "bench-user";
  const roomId = `bench-room-${Date.now()}`;
  const authorizer = { principalId: userId, userId, name: "Bench" };
  const token = await signToken(process.env.JWT_SECRET as string, userId, { name: "Bench" });
  let n = 0;
  const event = (routeKey: string, eventType: string, body?: unknown) => ({
    requestContext: { connectionId, routeKey, eventType, requestId: `r${++n}`, authorizer, stage: "bench" },
    ...(body === undefined ? {} : { body: JSON.stringify(body), isBase64Encoded: false }),
  });
  const cases: [string, () => unknown][] = [
    [
      "authorizer",
      () => ({
        type: "REQUEST",
        methodArn: "arn:aws:execute-api:us-east-1:000000000000:api/bench/$connect",
        queryStringParameters: {
          token,
        },
        requestContext: { connectionId },
      }),
    ],
    ["connect", () => event("$connect", "CONNECT")],
    ["join-room", () => event("joinRoom", "MESSAGE", { action: "joinRoom", roomId })],
    [
      "send-message",
      () =>
        event("sendMessage", "MESSAGE", {
          action: "sendMessage",
          roomId,
          text: "hello",
          clientMsgId: `c${n}`,
        }),
    ],
    ["get-history", () => event("getHistory", "MESSAGE", { action: "getHistory", roomId, limit: 50 })],
    ["ping", () => event("ping", "MESSAGE", { action: "ping" })],
    ["default", () => event("$default", "MESSAGE", { action: "nope" })],
    ["leave-room", () => event("leaveRoom", "MESSAGE", { action: "leaveRoom", roomId })],
    [
      "disconnect",
      () => ({
        ...event("$disconnect", "DISCONNECT"),
        requestContext: { ...event("$disconnect", "DISCONNECT").requestContext, disconnectStatusCode: 1000 },
      }),
    ],
  ];
  const results: Record<string, { firstMs: number; warmMs: number[]; answer: string }> = {};
  const only = process.argv[4]?.split(",");
  for (const [name, make] of cases) {
    if (only && !only.includes(name)) continue;
    const handler = (require(join(dir, "functions", name, "index.js")) as { handler: Handler }).handler;
    const t0 = performance.now();
    await handler(make(), context);
    const firstMs = performance.now() - t0;
    const warmMs: number[] = [];
    let last: unknown;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      last = await handler(make(), context);
      warmMs.push(performance.now() - t);
    }
    const body = (last as { body?: string })?.body;
    const parsed = body
      ? (JSON.parse(body) as { type?: string; code?: string; message?: string })
      : undefined;
    const answer = parsed
      ? [parsed.type, parsed.code, parsed.message].filter(Boolean).join(": ")
      : JSON.stringify(last).slice(0, 40);
    results[name] = { firstMs, warmMs, answer };
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
  // The bundles' Redis and Kafka clients keep the loop alive; this process has nothing left to do.
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
