/**
 * A local stack for one test file: its own gateway and workers over the services the global set-up
 * started, isolated from other files by its own table, topics, consumer group and Redis key prefix.
 */
import { randomBytes } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { Client } from "pg";
import { signToken } from "../../core/auth";
import { isolatedNames } from "../../local/isolation";
import { type RunningStack, type StackOptions, startStack } from "../../local/stack";
import { TestClient } from "./client";

export interface TestStack extends RunningStack {
  /** Unique to this stack: prefix room ids with it. */
  id: string;
  token(userId: string, name?: string): Promise<string>;
  /** Items of the table under a partition key. */
  items(pk: string): Promise<Record<string, unknown>[]>;
  item(pk: string, sk: string): Promise<Record<string, unknown> | undefined>;
  /** A room's membership items (its partition also holds the room's META item). */
  memberships(roomId: string): Promise<Record<string, unknown>[]>;
  /** Writes items to the table as they are (to stage a record the app would not write itself). */
  putItems(items: Record<string, unknown>[]): Promise<void>;
  /** Rows of the messages table for rooms of this stack. */
  rows(roomId: string): Promise<{ messageId: string; seq: number; text: string; senderId: string }[]>;
  /** Waits until the room has `count` rows in PostgreSQL. */
  waitForRows(roomId: string, count: number, timeoutMs?: number): Promise<void>;
}

export async function startTestStack(opts: StackOptions = {}): Promise<TestStack> {
  const id = `t${randomBytes(4).toString("hex")}`;
  const stack = await startStack({
    port: 0,
    idleTimeoutMs: opts.idleTimeoutMs,
    maxLifetimeMs: opts.maxLifetimeMs,
    fanoutWorkers: opts.fanoutWorkers,
    persisters: opts.persisters,
    httpHandler: opts.httpHandler,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
    settings: {
      ...isolatedNames(id),
      KAFKA_PARTITIONS: "4",
      FANOUT_SHARDS: "8",
      FANOUT_LEASE_MS: "1500",
      ...opts.settings,
    },
  });
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: "us-east-1",
      endpoint: stack.env.DYNAMODB_ENDPOINT,
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    }),
  );
  const table = stack.env.TABLE_NAME as string;
  const pg = new Client({ connectionString: stack.env.DATABASE_URL });
  await pg.connect();
  const rows = async (roomId: string) =>
    (
      await pg.query(
        'select message_id as "messageId", seq::int as seq, text, sender_id as "senderId" from messages where room_id = $1 order by seq',
        [roomId],
      )
    ).rows;
  const items = async (pk: string) =>
    (
      await doc.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: "pk = :p",
          ExpressionAttributeValues: { ":p": pk },
        }),
      )
    ).Items ?? [];
  return {
    ...stack,
    id,
    token: (userId, name) => signToken(stack.env.JWT_SECRET as string, userId, { name }),
    items,
    memberships: async (roomId) =>
      (await items(`ROOM#${roomId}`)).filter((item) => String(item.sk).startsWith("CONN#")),
    item: async (pk, sk) => (await doc.send(new GetCommand({ TableName: table, Key: { pk, sk } }))).Item,
    putItems: async (items) => {
      for (const Item of items) await doc.send(new PutCommand({ TableName: table, Item }));
    },
    rows,
    async waitForRows(roomId, count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while ((await rows(roomId)).length < count && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
    },
    async stop() {
      await pg.end();
      await stack.stop();
    },
  };
}

/**
 * The usual set-up of a test file: one stack started before its tests and stopped after them, and
 * clients that close with it.
 */
export function stackPerFile(opts: StackOptions = {}) {
  let started: TestStack | undefined;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    started = await startTestStack(opts);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await started?.stop();
  });
  const stack = (): TestStack => {
    if (!started) throw new Error("the stack is started in beforeAll; use it inside a test");
    return started;
  };
  return {
    stack,
    /** A connection of the user, with a token the stack accepts. */
    async connect(userId: string, name?: string): Promise<TestClient> {
      const client = await TestClient.connect(stack().url, { token: await stack().token(userId, name) });
      clients.push(client);
      return client;
    },
    /** A room id of this stack's own. */
    room: (name: string) => `${stack().id}-${name}`,
  };
}
