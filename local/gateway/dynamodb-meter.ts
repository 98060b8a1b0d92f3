/**
 * DynamoDB's read and write units, counted for the meter two ways with one rule: ask for them
 * (ReturnConsumedCapacity TOTAL, when the caller did not), read ConsumedCapacity from the answer and
 * pass the answer on unchanged; an answer that carries none is counted as one unit per item (an
 * estimate, marked so in the meter).
 *
 * - {@link meterDynamoClient}: a middleware on the handlers' own clients (local/lambda/metering.ts):
 *   no extra hop on the path a message takes. The send ledger's client (DynamoWire) is observed the
 *   same way, by {@link meterDynamoWire}.
 * - {@link startDynamoMeterProxy}: a counting proxy in front of dynalite for the workers, which run in
 *   processes of their own and reach it through DYNAMODB_ENDPOINT as they would reach DynamoDB.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoWire } from "../../core/adapters/dynamo-wire";
import type { Meter } from "./meter";

const READS = new Set(["GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"]);
const WRITES = new Set(["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"]);

/** A running proxy. */
export interface DynamoMeterProxy {
  /** http://127.0.0.1:PORT: the endpoint to give the handlers and workers. */
  url: string;
  stop(): Promise<void>;
}

interface Capacity {
  CapacityUnits?: number;
}

function unitsOf(answer: unknown): number | undefined {
  const consumed = (answer as { ConsumedCapacity?: Capacity | Capacity[] } | undefined)?.ConsumedCapacity;
  if (consumed === undefined) return undefined;
  const list = Array.isArray(consumed) ? consumed : [consumed];
  return list.reduce((sum, c) => sum + (c.CapacityUnits ?? 0), 0);
}

/** Items a batch request touches, for the estimate when its answer says nothing of its capacity. */
function itemsOf(request: Record<string, unknown>): number {
  const items = request.RequestItems as Record<string, unknown[] | { Keys?: unknown[] }> | undefined;
  if (items) {
    let n = 0;
    for (const value of Object.values(items))
      n += Array.isArray(value) ? value.length : (value.Keys?.length ?? 1);
    return Math.max(1, n);
  }
  const transact = request.TransactItems as unknown[] | undefined;
  return Math.max(1, transact?.length ?? 1);
}

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

/** Which of the meter's kinds an operation is, or undefined for one that is not billed per unit. */
function kindOf(operation: string): "read" | "write" | undefined {
  return READS.has(operation) ? "read" : WRITES.has(operation) ? "write" : undefined;
}

/** Counts every billed request `client` makes into `meter`; answers the same client. */
export function meterDynamoClient(client: DynamoDBClient, meter: Pick<Meter, "dynamodb">): DynamoDBClient {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = String(context.commandName ?? "").replace(/Command$/, "");
      const kind = kindOf(operation);
      if (!kind) return next(args);
      const input = args.input as Record<string, unknown>;
      const forced = input.ReturnConsumedCapacity === undefined;
      const result = await next(
        forced ? { ...args, input: { ...input, ReturnConsumedCapacity: "TOTAL" } } : args,
      );
      const units = unitsOf(result.output);
      meter.dynamodb(operation, kind, units, units === undefined ? itemsOf(input) : 1);
      if (forced) delete (result.output as { ConsumedCapacity?: unknown }).ConsumedCapacity;
      return result;
    },
    { step: "initialize", name: "localCapacityMeter" },
  );
  return client;
}

/** Counts every call the send ledger's client makes into `meter`; answers the same client. */
export function meterDynamoWire(wire: DynamoWire, meter: Pick<Meter, "dynamodb">): DynamoWire {
  return wire.observe((operation, units) => {
    meter.dynamodb(operation, kindOf(operation) ?? "write", units, 1);
  });
}

/** Starts the proxy in front of `target` (dynalite's endpoint), counting into `meter`. */
export async function startDynamoMeterProxy(target: string, meter: Meter): Promise<DynamoMeterProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = await readAll(req);
    const operation = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
    const kind = kindOf(operation);
    // Asked for by us (the common case): spliced in as text, to spare a parse of every request.
    let forced = false;
    if (kind && body[0] === 0x7b && !body.includes("ReturnConsumedCapacity")) {
      const empty = /^\{\s*\}$/.test(body.toString());
      body = empty
        ? Buffer.from('{"ReturnConsumedCapacity":"TOTAL"}')
        : Buffer.concat([Buffer.from('{"ReturnConsumedCapacity":"TOTAL",'), body.subarray(1)]);
      forced = true;
    }
    const headers = { ...req.headers, "content-length": String(body.length), host: upstream.host };
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const out = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent },
        resolve,
      );
      out.on("error", reject);
      out.end(body);
    });
    const answerBody = await readAll(answer);
    if (kind && answer.statusCode === 200) {
      let units: number | undefined;
      if (forced) {
        // Only TOTAL entries are in the answer: their CapacityUnits are numbers, an item's are maps.
        const found = [...answerBody.toString().matchAll(/"CapacityUnits":(\d+(?:\.\d+)?)/g)];
        units = found.length > 0 ? found.reduce((a, m) => a + Number(m[1]), 0) : undefined;
      } else {
        try {
          units = unitsOf(JSON.parse(answerBody.toString()));
        } catch {
          units = undefined;
        }
      }
      let estimate = 1;
      if (units === undefined) {
        try {
          estimate = itemsOf(JSON.parse(body.toString()) as Record<string, unknown>);
        } catch {
          estimate = 1;
        }
      }
      meter.dynamodb(operation, kind, units, estimate);
    }
    res.writeHead(answer.statusCode ?? 500, answer.headers);
    res.end(answerBody);
  }

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    serve(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/x-amz-json-1.0" });
      res.end('{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"proxy failed"}');
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
