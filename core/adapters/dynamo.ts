/**
 * The connection store over DynamoDB, one table:
 *
 * | item        | pk            | sk            | gsi1pk        | gsi1sk        |
 * |-------------|---------------|---------------|---------------|---------------|
 * | connection  | CONN#{connId} | META          |               |               |
 * | membership  | ROOM#{roomId} | CONN#{connId} | CONN#{connId} | ROOM#{roomId} |
 *
 * A room's members are one paginated, strongly consistent Query on the base table (no Scan), so a
 * join is visible to the next message's fan-out. A connection's memberships are one Query on gsi1, for
 * the clean-up on disconnect. Every item carries `expiresAt` for TTL, because `$disconnect` is best
 * effort.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionRecord, ConnectionStore, Member } from "../ports";

const connKey = (connectionId: string) => `CONN#${connectionId}`;
const roomKey = (roomId: string) => `ROOM#${roomId}`;
const META = "META";

/** A DynamoDB client for the configured region, or for DYNAMODB_ENDPOINT (dynalite) when set. */
export function createDynamoClient(): DynamoDBClient {
  const { region, dynamoEndpoint } = config.aws();
  return new DynamoDBClient({
    region,
    ...(dynamoEndpoint
      ? { endpoint: dynamoEndpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
    maxAttempts: 3,
  });
}

function wrap<T>(what: string, work: () => Promise<T>): Promise<T> {
  return work().catch((cause: unknown) => {
    throw new DependencyError("dynamodb", `DynamoDB ${what} failed`, { cause });
  });
}

export class DynamoConnectionStore implements ConnectionStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly table: string = config.table().name,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  putConnection(record: ConnectionRecord): Promise<void> {
    return wrap("put connection", async () => {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: connKey(record.connectionId), sk: META, ...record },
        }),
      );
    });
  }

  getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    return wrap("get connection", async () => {
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.table,
          Key: { pk: connKey(connectionId), sk: META },
          ConsistentRead: true,
        }),
      );
      if (!out.Item) return undefined;
      const { connectionId: id, userId, name, connectedAt, expiresAt } = out.Item;
      return { connectionId: id, userId, name, connectedAt, expiresAt } as ConnectionRecord;
    });
  }

  removeConnection(connectionId: string): Promise<string[]> {
    return wrap("remove connection", async () => {
      const rooms: string[] = [];
      const keys: { pk: string; sk: string }[] = [{ pk: connKey(connectionId), sk: META }];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await this.doc.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: "gsi1",
            KeyConditionExpression: "gsi1pk = :c",
            ExpressionAttributeValues: { ":c": connKey(connectionId) },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) {
          keys.push({ pk: item.pk as string, sk: item.sk as string });
          rooms.push((item.pk as string).slice("ROOM#".length));
        }
        start = page.LastEvaluatedKey;
      } while (start);
      await this.deleteKeys(keys);
      return rooms;
    });
  }

  private async deleteKeys(keys: { pk: string; sk: string }[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 25) {
      let requests: Record<string, unknown>[] | undefined = keys
        .slice(i, i + 25)
        .map((Key) => ({ DeleteRequest: { Key } }));
      for (let attempt = 0; requests && requests.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
        if (attempt > 6) throw new Error("unprocessed deletes remained after retries");
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: requests } }));
        requests = out.UnprocessedItems?.[this.table] as Record<string, unknown>[] | undefined;
      }
    }
  }

  joinRoom(
    connectionId: string,
    roomId: string,
    userId: string,
    expiresAt: number,
    joinedSeq = 0,
  ): Promise<void> {
    return wrap("join room", async () => {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: roomKey(roomId),
            sk: connKey(connectionId),
            gsi1pk: connKey(connectionId),
            gsi1sk: roomKey(roomId),
            userId,
            joinedSeq,
            expiresAt,
          },
        }),
      );
    });
  }

  leaveRoom(connectionId: string, roomId: string): Promise<void> {
    return wrap("leave room", async () => {
      await this.doc.send(
        new DeleteCommand({ TableName: this.table, Key: { pk: roomKey(roomId), sk: connKey(connectionId) } }),
      );
    });
  }

  isMember(connectionId: string, roomId: string): Promise<boolean> {
    return wrap("membership check", async () => {
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.table,
          Key: { pk: roomKey(roomId), sk: connKey(connectionId) },
          ConsistentRead: true,
          ProjectionExpression: "pk",
        }),
      );
      return out.Item !== undefined;
    });
  }

  async *listMembers(roomId: string): AsyncIterable<Member[]> {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await wrap("list members", () =>
        this.doc.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: "pk = :r",
            ExpressionAttributeValues: { ":r": roomKey(roomId) },
            ProjectionExpression: "sk, joinedSeq",
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        ),
      );
      yield (page.Items ?? []).map((item) => ({
        connectionId: (item.sk as string).slice("CONN#".length),
        joinedSeq: typeof item.joinedSeq === "number" ? item.joinedSeq : 0,
      }));
      start = page.LastEvaluatedKey;
    } while (start);
  }
}

/**
 * Creates the table when it does not exist (the local stack; on AWS the CDK stack owns it). TTL is
 * set by the CDK stack: dynalite does not implement UpdateTimeToLive.
 */
export async function ensureTable(
  client: DynamoDBClient,
  table: string = config.table().name,
): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "sk", AttributeType: "S" },
          { AttributeName: "gsi1pk", AttributeType: "S" },
          { AttributeName: "gsi1sk", AttributeType: "S" },
        ],
        KeySchema: [
          { AttributeName: "pk", KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: "gsi1",
            KeySchema: [
              { AttributeName: "gsi1pk", KeyType: "HASH" },
              { AttributeName: "gsi1sk", KeyType: "RANGE" },
            ],
            Projection: { ProjectionType: "KEYS_ONLY" },
          },
        ],
      }),
    );
  } catch (error) {
    // Another process created it between our describe and create.
    if (!(error instanceof Error && error.name === "ResourceInUseException")) throw error;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1 }, { TableName: table });
}
