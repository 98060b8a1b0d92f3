/**
 * The architecture's floor, gateway side: the least a program can do and still take the path
 * DESIGN.md gives a message, with none of this project's code on it. One WebSocket server and, in
 * the same process as API Gateway and the handlers share a machine locally, a handler that for each
 * sendMessage makes the calls the architecture cannot do without, one after another:
 *
 * 1. Redis: is the sender a member of the room (SISMEMBER)?
 * 2. DynamoDB: the room's next seq (UpdateItem ADD, on a bare kept-alive HTTP client);
 * 3. Redis: the message on the fan-out's stream (XADD);
 * 4. Kafka: the message appended, acks from every in-sync replica, one record a request (a Lambda
 *    invocation sends its own);
 *
 * then acks. `POST /@connections/{id}` writes the body to that connection (410 when it is gone),
 * as API Gateway's management API does. What it leaves out is this project's on purpose: no
 * authorizer, no send ledger (retries are not recognized), no rate limit, no history, no
 * persister, no Lambda context or integration timeout, no signatures checked.
 *
 * Speaks the plain protocol of the bench's ceiling (`?user=`, joinRoom, sendMessage). Uses
 * REDIS_URL, KAFKA_BROKERS, DYNAMODB_ENDPOINT and FLOOR_ID (a prefix for its keys, table and topic).
 * Prints `BENCH_READY {"url","management"}`; SIGTERM stops it.
 */
import "../../core/adapters/kafka-request-queue";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import { type WebSocket, WebSocketServer } from "ws";
import { createDynamoClient, ensureTable } from "../../core/adapters/dynamo";
import { bareClient, bareDynamoHeaders } from "../lib/bare-client";
import { floorKeys } from "./floor-keys";
import { plainFrame, plainUser, requiredEnv, serve, stopOnSignalOrParent } from "./lifecycle";

async function main(): Promise<void> {
  const keys = floorKeys(requiredEnv("FLOOR_ID"));
  const dynamoEndpoint = new URL(requiredEnv("DYNAMODB_ENDPOINT"));
  await ensureTable(createDynamoClient(), keys.table);
  const kafka = new Kafka({
    clientId: "bench-floor",
    brokers: requiredEnv("KAFKA_BROKERS").split(","),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: keys.topic, numPartitions: 6 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const redis = new Redis(requiredEnv("REDIS_URL"));
  const dynamo = bareClient(dynamoEndpoint.origin, 16);

  const nextSeq = async (roomId: string): Promise<number> => {
    const answer = await dynamo.post(
      "/",
      bareDynamoHeaders("UpdateItem"),
      JSON.stringify({
        TableName: keys.table,
        Key: { pk: { S: `ROOM#${roomId}` }, sk: { S: "SEQ" } },
        UpdateExpression: "ADD seq :one",
        ExpressionAttributeValues: { ":one": { N: "1" } },
        ReturnValues: "UPDATED_NEW",
      }),
    );
    if (answer.status !== 200) throw new Error(`UpdateItem answered ${answer.status}`);
    return Number((JSON.parse(answer.body) as { Attributes: { seq: { N: string } } }).Attributes.seq.N);
  };

  const connections = new Map<string, WebSocket>();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  wss.on("connection", (ws, req) => {
    const userId = plainUser(req);
    const connectionId = randomBytes(8).toString("base64url");
    connections.set(connectionId, ws);
    ws.on("close", () => connections.delete(connectionId));
    ws.on("message", (data) => {
      const frame = plainFrame(data);
      if (!frame) return;
      const roomId = frame.roomId ?? "";
      if (frame.action === "joinRoom") {
        void redis.sadd(keys.members(roomId), connectionId).then(
          () => ws.send(JSON.stringify({ type: "joined", roomId, lastSeq: 0 })),
          () => ws.send(JSON.stringify({ type: "error", action: "joinRoom", code: "INTERNAL" })),
        );
      } else if (frame.action === "sendMessage") {
        void send(ws, connectionId, userId, roomId, frame).catch(() =>
          ws.send(JSON.stringify({ type: "error", code: "INTERNAL", clientMsgId: frame.clientMsgId })),
        );
      }
    });
  });

  async function send(
    ws: WebSocket,
    connectionId: string,
    userId: string,
    roomId: string,
    frame: { text?: string; clientMsgId?: string },
  ): Promise<void> {
    if ((await redis.sismember(keys.members(roomId), connectionId)) !== 1) {
      ws.send(JSON.stringify({ type: "error", code: "NOT_A_MEMBER", clientMsgId: frame.clientMsgId }));
      return;
    }
    const seq = await nextSeq(roomId);
    const messageId = randomBytes(8).toString("hex");
    const message = JSON.stringify({
      type: "message",
      roomId,
      messageId,
      seq,
      senderId: userId,
      text: frame.text,
      sentAt: new Date().toISOString(),
    });
    await redis.xadd(keys.stream, "*", "room", roomId, "frame", message);
    await producer.send({ topic: keys.topic, acks: -1, messages: [{ key: roomId, value: message }] });
    ws.send(JSON.stringify({ type: "ack", roomId, clientMsgId: frame.clientMsgId, messageId, seq }));
  }

  const management = createServer((req, res) => {
    const id = decodeURIComponent(/^\/@connections\/([^/?]+)/.exec(req.url ?? "")?.[1] ?? "");
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const ws = connections.get(id);
      if (req.method !== "POST" || !ws) {
        res.writeHead(410).end();
        return;
      }
      ws.send(Buffer.concat(chunks).toString());
      res.writeHead(200).end();
    });
  });
  management.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => management.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => (wss.address() ? resolve() : wss.once("listening", resolve)));
  const wsPort = (wss.address() as AddressInfo).port;
  const mgmtPort = (management.address() as AddressInfo).port;
  process.stdout.write(
    `BENCH_READY ${JSON.stringify({ url: `ws://127.0.0.1:${wsPort}/`, management: `http://127.0.0.1:${mgmtPort}` })}\n`,
  );
  const stop = () => {
    wss.close();
    management.close();
    void Promise.allSettled([producer.disconnect(), dynamo.close()]).then(() => {
      redis.disconnect();
      process.exit(0);
    });
  };
  stopOnSignalOrParent(stop);
}

serve("the floor's gateway", main);
