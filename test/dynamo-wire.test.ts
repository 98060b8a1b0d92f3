/**
 * The send ledger's DynamoDB client (core/adapters/dynamo-wire.ts) against dynalite (DYNAMODB_ENDPOINT
 * from the global set-up), directly and through faults DynamoDB really has:
 * - answers lost after the write went through (test/support/tcp-proxy.ts "drop"): the retry finds the
 *   ledger's own record, so the send is recorded once and answered as recorded, not as a retry of
 *   another send;
 * - a stalled endpoint: every attempt ends at its deadline, and the call fails retriable within
 *   attempts × deadline (plus backoff);
 * - throttling (ProvisionedThroughputExceededException) and a 500: retried, then through;
 * - a request DynamoDB refuses (ValidationException): one attempt, the error named as the SDK names it;
 * - the meter's observer: told of the units each call consumed, the answer handed back without them.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { DynamoSendLedger, ensureTable } from "../core/adapters/dynamo";
import { DynamoWire, DynamoWireError } from "../core/adapters/dynamo-wire";
import { DependencyError } from "../core/errors";
import type { SendRecord } from "../core/ports";
import { TcpProxy } from "./support/tcp-proxy";

jest.setTimeout(60_000);

const endpoint = process.env.DYNAMODB_ENDPOINT ?? "";
if (!endpoint)
  throw new Error("DYNAMODB_ENDPOINT is not set: the integration global set-up must start dynalite");
const target = new URL(endpoint);
const table = `wire-${process.pid}-${Date.now().toString(36)}`;
const credentials = async () => ({ accessKeyId: "local", secretAccessKey: "local" });
const sdk = new DynamoDBClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
});
const opened: DynamoWire[] = [];

function wireTo(url: string, attemptTimeoutMs = 2000, maxAttempts = 3): DynamoWire {
  const wire = new DynamoWire({
    endpoint: new URL(url),
    region: "us-east-1",
    credentials,
    attemptTimeoutMs,
    maxAttempts,
  });
  opened.push(wire);
  return wire;
}

/** An HTTP front for dynalite that answers the first `refusals` requests itself with `status` and `type`. */
async function refusingFront(
  refusals: number,
  status: number,
  type: string,
): Promise<{ url: string; seen: () => number; server: Server }> {
  let seen = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen++;
      if (seen <= refusals) {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.0" });
        res.end(
          JSON.stringify({
            __type: `com.amazonaws.dynamodb.v20120810#${type}`,
            message: "refused by the test",
          }),
        );
        return;
      }
      const out = request(
        { host: target.hostname, port: target.port, method: "POST", path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 500, answer.headers);
          answer.pipe(res);
        },
      );
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen: () => seen, server };
}

const record = (clientMsgId: string, messageId: string, seq = 1): SendRecord => ({
  senderId: "u1",
  clientMsgId,
  messageId,
  roomId: "r1",
  seq,
  textDigest: "d",
  sentAt: new Date().toISOString(),
});

beforeAll(async () => {
  await ensureTable(sdk, table);
});

afterAll(() => {
  for (const wire of opened) wire.destroy();
  sdk.destroy();
});

test("the ledger's seqs and records go through, as the SDK reads them back", async () => {
  const ledger = new DynamoSendLedger(wireTo(endpoint), table);
  const seqs: number[] = [];
  for (let i = 0; i < 5; i++) seqs.push(await ledger.nextSeq("room-a", async () => 100));
  expect(seqs).toEqual([101, 102, 103, 104, 105]);
  expect(await ledger.currentSeq("room-a")).toBe(105);
  expect(await ledger.currentSeq("room-never")).toBeUndefined();

  expect(await ledger.recordSend(record("c1", "m1"))).toEqual({ recorded: true });
  const again = await ledger.recordSend(record("c1", "m2", 2));
  expect(again).toEqual({ recorded: false, existing: expect.objectContaining({ messageId: "m1", seq: 1 }) });
  const read = await sdk.send(
    new GetItemCommand({
      TableName: table,
      Key: { pk: { S: "SENT#u1#c1" }, sk: { S: "META" } },
      ConsistentRead: true,
    }),
  );
  expect(read.Item?.messageId?.S).toBe("m1");
  expect(Number(read.Item?.expiresAt?.N)).toBeGreaterThan(Date.now() / 1000);
});

test("a record whose answer was lost is found on the retry as this send's own, recorded once", async () => {
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
  try {
    const ledger = new DynamoSendLedger(wireTo(`http://127.0.0.1:${proxy.port}`), table);
    proxy.drop();
    const first = ledger.recordSend(record("lost-1", "m-lost"));
    // The put reached dynalite, its answer was cut; the retry goes through once the proxy passes.
    await waitFor(() => proxy.counts.dropped >= 1);
    proxy.pass();
    expect(await first).toEqual({ recorded: true });
    // Another send with the same clientMsgId is still told it is a retry of the first.
    const other = await ledger.recordSend(record("lost-1", "m-other", 9));
    expect(other).toEqual({ recorded: false, existing: expect.objectContaining({ messageId: "m-lost" }) });
  } finally {
    await proxy.close();
  }
});

test("a stalled DynamoDB fails each attempt at its deadline, and the call fails retriable soon after", async () => {
  const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
  try {
    const ledger = new DynamoSendLedger(wireTo(`http://127.0.0.1:${proxy.port}`, 300, 3), table);
    proxy.stall();
    const started = Date.now();
    const error = await ledger.nextSeq("room-stalled", async () => 0).catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(error).toBeInstanceOf(DependencyError);
    expect((error as DependencyError).retriable).toBe(true);
    expect(((error as Error).cause as DynamoWireError).name).toBe("TimeoutError");
    // Three attempts of 300 ms and two backoffs of at most 100 and 200 ms, with slack for a busy machine.
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(900 + 300 + 1500);
  } finally {
    proxy.pass();
    await proxy.close();
  }
});

test.each([
  [400, "ProvisionedThroughputExceededException"],
  [500, "InternalServerError"],
])("an answer %i %s is retried, and the call goes through", async (status, type) => {
  const front = await refusingFront(2, status, type);
  try {
    const out = await wireTo(front.url).call("UpdateItem", {
      TableName: table,
      Key: { pk: { S: `SEQ#retried-${status}` }, sk: { S: "META" } },
      UpdateExpression: "ADD #seq :one",
      ExpressionAttributeNames: { "#seq": "seq" },
      ExpressionAttributeValues: { ":one": { N: "1" } },
      ReturnValues: "UPDATED_NEW",
    });
    expect(out.Attributes).toEqual({ seq: { N: "1" } });
    expect(front.seen()).toBe(3);
  } finally {
    front.server.close();
  }
});

test("a request DynamoDB refuses is tried once and named as the SDK names it", async () => {
  const front = await refusingFront(0, 200, "unused");
  try {
    const error = await wireTo(front.url)
      .call("GetItem", { TableName: table, Key: { nope: { S: "x" } } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DynamoWireError);
    expect((error as DynamoWireError).name).toBe("ValidationException");
    expect((error as DynamoWireError).retriable).toBe(false);
    expect(front.seen()).toBe(1);
  } finally {
    front.server.close();
  }
});

test("an observer is told each call's units; the answer comes back as asked", async () => {
  const told: [string, number | undefined][] = [];
  const wire = wireTo(endpoint).observe((operation, units) => told.push([operation, units]));
  const key = { pk: { S: "SEQ#observed" }, sk: { S: "META" } };
  await wire.call("PutItem", { TableName: table, Item: { ...key, seq: { N: "1" } } });
  const out = await wire.call("GetItem", { TableName: table, Key: key, ConsistentRead: true });
  expect(out).toEqual({ Item: { ...key, seq: { N: "1" } } });
  expect(told).toEqual([
    ["PutItem", 1],
    ["GetItem", 1],
  ]);
});

async function waitFor(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}
