import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { DynamoWire } from "../../core/adapters/dynamo-wire";
import { startDynamo } from "../services";
import { compareOptions, formatMeter, formatProjection, loadPrices, projectMonthlyCost } from "./cost";
import { meterDynamoClient, meterDynamoWire, startDynamoMeterProxy } from "./dynamodb-meter";
import { Meter } from "./meter";

describe("Meter", () => {
  test("messages in 32 KB units, connection minutes, GB-seconds at the set memory", () => {
    const meter = new Meter(512);
    meter.frameIn(100);
    meter.frameOut(32 * 1024);
    meter.frameOut(32 * 1024 + 1);
    meter.connectionOpened("a", 0);
    meter.connectionClosed("a", 90_000);
    meter.invocation("sendMessage", 99.2);
    const m = meter.snapshot();
    expect(m.apiGateway).toMatchObject({ messagesIn: 1, messagesOut: 3, framesOut: 2 });
    expect(m.apiGateway.connectionMinutes).toBe(1.5);
    expect(m.lambda.byHandler.sendMessage).toEqual({ invocations: 1, ms: 100, gbSeconds: 0.05 });
  });
});

describe("cost", () => {
  test("a projection scales the run to a month of 1,000 users like its average connection", () => {
    const meter = new Meter(512);
    // 10 connections for a minute: 10 connection minutes; 22 messages for each of 10 sends.
    for (let i = 0; i < 10; i++) {
      meter.connectionOpened(`c${i}`, Date.now() - 60_000);
      meter.connectionClosed(`c${i}`, Date.now());
    }
    for (let i = 0; i < 220; i++) meter.frameOut(300);
    const reading = { ...meter.snapshot(), seconds: 60 };
    const p = projectMonthlyCost(reading, loadPrices());
    expect(p).toBeDefined();
    if (!p) return;
    expect(p.averageConnections).toBeCloseTo(10, 1);
    // 22 messages per connection-minute, for 1,000 users × 43,800 minutes a month.
    expect(p.lines[0]?.quantity).toBeCloseTo(22 * 1000 * 43_800, -3);
    expect(p.lines[1]?.quantity).toBeCloseTo(1000 * 43_800, -3);
    expect(formatProjection(p).join("\n")).toMatch(/API Gateway/);
    expect(formatMeter(reading)[0]).toMatch(/What AWS would bill/);
  });

  test("the alternatives are priced from the same file, estimates marked", () => {
    const rows = compareOptions(
      {
        users: 1000,
        hoursConnectedPerDay: 8,
        messagesSentPerUserPerDay: 100,
        roomSize: 20,
        sessionsPerDay: 2,
      },
      loadPrices(),
    );
    expect(rows.map((r) => r.option)).toHaveLength(4);
    for (const r of rows) expect(r.usd).toBeGreaterThan(0);
  });
});

const localClient = (endpoint: string) =>
  new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });

const createTable = (client: DynamoDBClient) =>
  client.send(
    new CreateTableCommand({
      TableName: "metered",
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );

/** The units of one put of 1.5 KB and one strongly consistent read of it, from DynamoDB's own answers. */
function expectOnePutOneGetCounted(meter: Meter): void {
  const m = meter.snapshot().dynamodb;
  // 1.5 KB written: 2 write units; read strongly consistent under 4 KB: 1 read unit.
  expect(m.byOperation.PutItem).toEqual({ requests: 1, readUnits: 0, writeUnits: 2 });
  expect(m.byOperation.GetItem).toEqual({ requests: 1, readUnits: 1, writeUnits: 0 });
  expect(m.estimatedRequests).toBe(0);
}

describe("DynamoDB counting proxy", () => {
  test("read and write units from DynamoDB's own ConsumedCapacity, the answers unchanged", async () => {
    const dynamo = await startDynamo();
    const meter = new Meter();
    const proxy = await startDynamoMeterProxy(dynamo.url, meter);
    const raw = localClient(proxy.url);
    const doc = DynamoDBDocumentClient.from(raw);
    try {
      await createTable(raw);
      await doc.send(new PutCommand({ TableName: "metered", Item: { pk: "a", text: "x".repeat(1500) } }));
      const got = await doc.send(
        new GetCommand({ TableName: "metered", Key: { pk: "a" }, ConsistentRead: true }),
      );
      expect(got.Item?.pk).toBe("a");
      expectOnePutOneGetCounted(meter);
    } finally {
      raw.destroy();
      await proxy.stop();
      await dynamo.stop();
    }
  });
});

describe("DynamoDB counting middleware", () => {
  test("counts the units of this process's own client, and answers what it would answer unmetered", async () => {
    const dynamo = await startDynamo();
    const meter = new Meter();
    const raw = meterDynamoClient(localClient(dynamo.url), meter);
    const doc = DynamoDBDocumentClient.from(raw);
    try {
      await createTable(raw);
      const put = { TableName: "metered", Item: { pk: "a", text: "x".repeat(1500) } };
      await doc.send(new PutCommand(put));
      const got = await doc.send(
        new GetCommand({ TableName: "metered", Key: { pk: "a" }, ConsistentRead: true }),
      );
      expect(got.Item?.pk).toBe("a");
      expect(got.ConsumedCapacity).toBeUndefined();
      expect(put).not.toHaveProperty("ReturnConsumedCapacity");
      const asked = await doc.send(
        new GetCommand({ TableName: "metered", Key: { pk: "a" }, ReturnConsumedCapacity: "TOTAL" }),
      );
      expect(asked.ConsumedCapacity?.CapacityUnits).toBe(0.5);
      const m = meter.snapshot().dynamodb;
      expect(m.byOperation.PutItem).toEqual({ requests: 1, readUnits: 0, writeUnits: 2 });
      expect(m.byOperation.GetItem).toEqual({ requests: 2, readUnits: 1.5, writeUnits: 0 });
      expect(m.byOperation.CreateTable).toBeUndefined();
      expect(m.estimatedRequests).toBe(0);
    } finally {
      raw.destroy();
      await dynamo.stop();
    }
  });
});

describe("DynamoDB counting of the send ledger's client", () => {
  test("counts the units of each call the ledger's client makes, and hands back the answer as asked", async () => {
    const dynamo = await startDynamo();
    const meter = new Meter();
    const raw = localClient(dynamo.url);
    const wire = meterDynamoWire(
      new DynamoWire({
        endpoint: new URL(dynamo.url),
        region: "us-east-1",
        credentials: async () => ({ accessKeyId: "local", secretAccessKey: "local" }),
      }),
      meter,
    );
    try {
      await createTable(raw);
      await wire.call("PutItem", {
        TableName: "metered",
        Item: { pk: { S: "a" }, text: { S: "x".repeat(1500) } },
      });
      const got = await wire.call("GetItem", {
        TableName: "metered",
        Key: { pk: { S: "a" } },
        ConsistentRead: true,
      });
      expect(got).toEqual({ Item: { pk: { S: "a" }, text: { S: "x".repeat(1500) } } });
      expectOnePutOneGetCounted(meter);
    } finally {
      wire.destroy();
      raw.destroy();
      await dynamo.stop();
    }
  });
});
