/**
 * The connection store over DynamoDB, one table:
 *
 * | item        | pk            | sk            | gsi1pk        | gsi1sk        |
 * |-------------|---------------|---------------|---------------|---------------|
 * | connection  | CONN#{connId} | META          |               |               |
 * | membership  | ROOM#{roomId} | CONN#{connId} | CONN#{connId} | ROOM#{roomId} |
 * | room seq    | SEQ#{roomId}  | META          |               |               |
 * | send record | SENT#{userId}#{clientMsgId} | META |           |               |
 * | room        | ROOM#{roomId} | META          |               |               |
 * | user's room | USER#{userId} | ROOM#{roomId} |               |               |
 *
 * A connection item also carries gsi1pk `UCONN#{userId}` and gsi1sk its connectedAt, so a user's
 * live connections are one Query on gsi1 (the per-user connection limit, notifications).
 *
 * A room's members are one paginated, strongly consistent Query on the base table (no Scan), so a
 * join is visible to the next message's fan-out. A connection's memberships are one Query on gsi1, for
 * the clean-up on disconnect. Connection and membership items carry `expiresAt` for TTL, because
 * `$disconnect` is best effort; a send record carries it for the retry window; a room's seq counter
 * never expires (a seq is never issued twice).
 */
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { config } from "../config";
import { DependencyError, RoomFullError } from "../errors";
import type {
  ConnectionRecord,
  ConnectionStore,
  Member,
  RoomDirectory,
  RoomInfo,
  RoomKind,
  RoomRole,
  SendLedger,
  SendRecord,
  UserRoom,
} from "../ports";
import { sleep } from "../retry";
import type { DynamoWire, WireItem } from "./dynamo-wire";

const connKey = (connectionId: string) => `CONN#${connectionId}`;
const roomKey = (roomId: string) => `ROOM#${roomId}`;
const META = "META";
const userConnKey = (userId: string) => `UCONN#${userId}`;
const userKey = (userId: string) => `USER#${userId}`;
const seqKey = (roomId: string) => ({ pk: `SEQ#${roomId}`, sk: META });
const sentKey = (senderId: string, clientMsgId: string) => ({
  pk: `SENT#${senderId}#${clientMsgId}`,
  sk: META,
});

/**
 * Attempts per call and each attempt's deadline, for the SDK clients and the send ledger's client
 * (DynamoWire) alike: every call answers well inside a handler's timeout.
 */
export const DYNAMO_MAX_ATTEMPTS = 3;
export const DYNAMO_ATTEMPT_TIMEOUT_MS = 2000;

/** A DynamoDB client for the configured region, or for DYNAMODB_ENDPOINT (dynalite) when set. */
export function createDynamoClient(): DynamoDBClient {
  const { region, dynamoEndpoint } = config.aws();
  return new DynamoDBClient({
    region,
    ...(dynamoEndpoint
      ? { endpoint: dynamoEndpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
    maxAttempts: DYNAMO_MAX_ATTEMPTS,
    // Every call answers well inside a handler's timeout, so a stalled DynamoDB is an INTERNAL the
    // client retries, not a Lambda that times out without a word.
    // (Without throwOnRequestTimeout the SDK only warns when the deadline passes and waits on.)
    requestHandler: {
      connectionTimeout: 1000,
      requestTimeout: DYNAMO_ATTEMPT_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
  });
}

function wrap<T>(what: string, work: () => Promise<T>): Promise<T> {
  return work().catch((cause: unknown) => {
    throw new DependencyError("dynamodb", `DynamoDB ${what} failed`, { cause });
  });
}

/** What each adapter over the table shares: the document client and strongly consistent reads. */
abstract class TableAdapter {
  protected readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    protected readonly table: string = config.table().name,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  /** Every item a Query answers, page after page. */
  protected async queryAll(
    input: Omit<QueryCommandInput, "TableName" | "ExclusiveStartKey">,
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({ ...input, TableName: this.table, ExclusiveStartKey: start }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** The item under the key, read strongly consistent, or undefined. */
  protected async getItem(key: { pk: string; sk: string }): Promise<Record<string, unknown> | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }),
    );
    return out.Item;
  }
}

export class DynamoConnectionStore extends TableAdapter implements ConnectionStore {
  putConnection(record: ConnectionRecord): Promise<void> {
    return wrap("put connection", async () => {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: connKey(record.connectionId),
            sk: META,
            gsi1pk: userConnKey(record.userId),
            gsi1sk: String(record.connectedAt).padStart(15, "0"),
            ...record,
          },
        }),
      );
    });
  }

  /** Which of the connections accept batched frames: BatchGetItem of their records, 100 keys a call. */
  batchingConnections(connectionIds: string[]): Promise<Set<string>> {
    return wrap("read connections' batch flags", async () => {
      const batching = new Set<string>();
      for (let i = 0; i < connectionIds.length; i += 100) {
        let keys: Record<string, unknown>[] | undefined = connectionIds
          .slice(i, i + 100)
          .map((id) => ({ pk: connKey(id), sk: META }));
        for (let attempt = 0; keys && keys.length > 0; attempt++) {
          if (attempt > 0) await unprocessedBackoff(attempt);
          const out: BatchGetCommandOutput = await this.doc.send(
            new BatchGetCommand({
              RequestItems: {
                [this.table]: {
                  Keys: keys,
                  ProjectionExpression: "pk, #batch",
                  ExpressionAttributeNames: { "#batch": "batch" },
                },
              },
            }),
          );
          for (const item of out.Responses?.[this.table] ?? []) {
            if (item.batch === true) batching.add((item.pk as string).slice("CONN#".length));
          }
          keys = out.UnprocessedKeys?.[this.table]?.Keys;
        }
      }
      return batching;
    });
  }

  connectionsOf(userId: string, sinceMs: number): Promise<string[]> {
    return wrap("list a user's connections", async () => {
      const items = await this.queryAll({
        IndexName: "gsi1",
        KeyConditionExpression: "gsi1pk = :u AND gsi1sk >= :since",
        ExpressionAttributeValues: {
          ":u": userConnKey(userId),
          ":since": String(Math.max(0, sinceMs)).padStart(15, "0"),
        },
      });
      return items.map((item) => (item.pk as string).slice("CONN#".length));
    });
  }

  removeConnection(connectionId: string): Promise<string[]> {
    return wrap("remove connection", async () => {
      const memberships = await this.queryAll({
        IndexName: "gsi1",
        KeyConditionExpression: "gsi1pk = :c",
        ExpressionAttributeValues: { ":c": connKey(connectionId) },
      });
      const keys = memberships.map((item) => ({ pk: item.pk as string, sk: item.sk as string }));
      await this.deleteKeys([{ pk: connKey(connectionId), sk: META }, ...keys]);
      return keys.map((k) => k.pk.slice("ROOM#".length));
    });
  }

  private async deleteKeys(keys: { pk: string; sk: string }[]): Promise<void> {
    await batchWrite(
      this.doc,
      this.table,
      keys.map((Key) => ({ DeleteRequest: { Key } })),
    );
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
      return (await this.getItem({ pk: roomKey(roomId), sk: connKey(connectionId) })) !== undefined;
    });
  }

  async *listMembers(roomId: string): AsyncIterable<Member[]> {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await wrap("list members", () =>
        this.doc.send(
          new QueryCommand({
            TableName: this.table,
            // The room's partition also holds its META item.
            KeyConditionExpression: "pk = :r AND begins_with(sk, :c)",
            ExpressionAttributeValues: { ":r": roomKey(roomId), ":c": "CONN#" },
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

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error instanceof Error && error.name === "ConditionalCheckFailedException")
  );
}

/**
 * The send ledger over the same table: each room's seq counter (an atomic ADD) and each send's record
 * (a conditional put), read strongly consistent. Two writes on every message's path, so they go out
 * over {@link DynamoWire} (signed keep-alive requests) rather than the SDK's document client.
 */
export class DynamoSendLedger implements SendLedger {
  constructor(
    private readonly wire: DynamoWire,
    private readonly table: string = config.table().name,
    /** How long a send record answers retries. */
    private readonly retryWindowSeconds = 24 * 60 * 60,
  ) {}

  nextSeq(roomId: string, seed: () => Promise<number>): Promise<number> {
    return wrap("next seq", async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const out = await this.wire.call("UpdateItem", {
            TableName: this.table,
            Key: marshall(seqKey(roomId)),
            UpdateExpression: "ADD #seq :one",
            ConditionExpression: "attribute_exists(#seq)",
            ExpressionAttributeNames: { "#seq": "seq" },
            ExpressionAttributeValues: { ":one": { N: "1" } },
            ReturnValues: "UPDATED_NEW",
          });
          return Number((out.Attributes as WireItem | undefined)?.seq?.N);
        } catch (error) {
          if (!isConditionFailure(error) || attempt > 0) throw error;
        }
        // The room was never counted here: start after what is stored elsewhere. A concurrent
        // seeder may win; either way the counter then exists and the ADD above goes through.
        const start = await seed();
        try {
          await this.wire.call("PutItem", {
            TableName: this.table,
            Item: marshall({ ...seqKey(roomId), seq: start }),
            ConditionExpression: "attribute_not_exists(pk)",
          });
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
        }
      }
    });
  }

  currentSeq(roomId: string): Promise<number | undefined> {
    return wrap("read seq", async () => {
      const item = await this.getItem(seqKey(roomId));
      return item ? Number(item.seq) : undefined;
    });
  }

  recordSend(record: SendRecord): Promise<{ recorded: true } | { recorded: false; existing: SendRecord }> {
    return wrap("record send", async () => {
      const key = sentKey(record.senderId, record.clientMsgId);
      try {
        await this.wire.call("PutItem", {
          TableName: this.table,
          Item: marshall(
            { ...key, ...record, expiresAt: Math.floor(Date.now() / 1000) + this.retryWindowSeconds },
            { removeUndefinedValues: true },
          ),
          ConditionExpression: "attribute_not_exists(pk)",
        });
        return { recorded: true as const };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const existing = await this.readSend(record.senderId, record.clientMsgId);
      if (!existing) throw new Error("a send record refused as existing could not be read back");
      // Refused by this very record: an attempt whose answer was lost had written it.
      if (existing.messageId === record.messageId) return { recorded: true as const };
      return { recorded: false as const, existing };
    });
  }

  private async readSend(senderId: string, clientMsgId: string): Promise<SendRecord | undefined> {
    const item = await this.getItem(sentKey(senderId, clientMsgId));
    if (!item) return undefined;
    return {
      senderId: String(item.senderId),
      clientMsgId: String(item.clientMsgId),
      messageId: String(item.messageId),
      roomId: String(item.roomId),
      seq: Number(item.seq),
      textDigest: String(item.textDigest),
      sentAt: String(item.sentAt),
    };
  }

  /** The item under the key, read strongly consistent, or undefined. */
  private async getItem(key: { pk: string; sk: string }): Promise<Record<string, unknown> | undefined> {
    const out = await this.wire.call("GetItem", {
      TableName: this.table,
      Key: marshall(key),
      ConsistentRead: true,
    });
    return out.Item ? unmarshall(out.Item as WireItem) : undefined;
  }
}

function userRoomOf(item: Record<string, unknown>): UserRoom {
  return {
    roomId: (item.sk as string).slice("ROOM#".length),
    kind: item.kind as RoomKind,
    role: item.role as RoomRole,
    lastReadSeq: typeof item.lastReadSeq === "number" ? item.lastReadSeq : 0,
  };
}

/** Rooms and their users over the same table; a room's member count is kept on its META item. */
export class DynamoRoomDirectory extends TableAdapter implements RoomDirectory {
  room(roomId: string): Promise<RoomInfo | undefined> {
    return wrap("read room", async () => {
      const item = await this.getItem({ pk: roomKey(roomId), sk: META });
      if (!item) return undefined;
      return {
        roomId,
        kind: item.kind as RoomKind,
        ...(typeof item.owner === "string" ? { owner: item.owner } : {}),
        memberCount: Number(item.memberCount ?? 0),
      };
    });
  }

  createRoom(
    room: { roomId: string; kind: RoomKind; owner?: string },
    users: { userId: string; role: RoomRole }[],
    maxMembers: number,
  ): Promise<boolean> {
    if (users.length > maxMembers) {
      return Promise.reject(new RoomFullError(`room ${room.roomId} would be over its limit`));
    }
    return wrap("create room", async () => {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              pk: roomKey(room.roomId),
              sk: META,
              kind: room.kind,
              owner: room.owner,
              memberCount: users.length,
              createdAt: Date.now(),
            },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
      await batchWrite(
        this.doc,
        this.table,
        users.map((u) => ({
          PutRequest: {
            Item: {
              pk: userKey(u.userId),
              sk: roomKey(room.roomId),
              kind: room.kind,
              role: u.role,
              lastReadSeq: 0,
            },
          },
        })),
      );
      return true;
    });
  }

  userRoom(userId: string, roomId: string): Promise<UserRoom | undefined> {
    return wrap("read a user's room", async () => {
      const item = await this.getItem({ pk: userKey(userId), sk: roomKey(roomId) });
      return item ? userRoomOf(item) : undefined;
    });
  }

  addUser(
    room: { roomId: string; kind: RoomKind },
    userId: string,
    role: "member" | "invited",
    maxMembers: number,
  ): Promise<UserRoom | "full"> {
    return wrap("add a user to a room", async () => {
      const key = { pk: userKey(userId), sk: roomKey(room.roomId) };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...key, kind: room.kind, role, lastReadSeq: 0 },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        // Already a user of the room: an invitee joining becomes a member; nothing is counted again.
        const out = await this.doc
          .send(
            new UpdateCommand({
              TableName: this.table,
              Key: key,
              UpdateExpression: "SET #role = :member",
              ConditionExpression: "#role = :invited AND :wanted = :member",
              ExpressionAttributeNames: { "#role": "role" },
              ExpressionAttributeValues: { ":member": "member", ":invited": "invited", ":wanted": role },
              ReturnValues: "ALL_NEW",
            }),
          )
          .catch((e: unknown) => {
            if (isConditionFailure(e)) return undefined;
            throw e;
          });
        if (out?.Attributes) return userRoomOf(out.Attributes);
        const current = await this.userRoom(userId, room.roomId);
        if (current) return current;
        throw new Error("a room user refused as existing could not be read back");
      }
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk: roomKey(room.roomId), sk: META },
            UpdateExpression: "SET kind = if_not_exists(kind, :kind) ADD memberCount :one",
            ConditionExpression: "attribute_not_exists(memberCount) OR memberCount < :max",
            ExpressionAttributeValues: { ":kind": room.kind, ":one": 1, ":max": maxMembers },
          }),
        );
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        await this.doc.send(new DeleteCommand({ TableName: this.table, Key: key }));
        return "full";
      }
      return { roomId: room.roomId, kind: room.kind, role, lastReadSeq: 0 };
    });
  }

  removeUser(roomId: string, userId: string): Promise<boolean> {
    return wrap("remove a user from a room", async () => {
      const out = await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: userKey(userId), sk: roomKey(roomId) },
          ReturnValues: "ALL_OLD",
        }),
      );
      if (!out.Attributes) return false;
      await this.doc
        .send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk: roomKey(roomId), sk: META },
            UpdateExpression: "ADD memberCount :minus",
            ConditionExpression: "attribute_exists(pk)",
            ExpressionAttributeValues: { ":minus": -1 },
          }),
        )
        .catch((e: unknown) => {
          if (!isConditionFailure(e)) throw e;
        });
      return true;
    });
  }

  userRooms(userId: string): Promise<UserRoom[]> {
    return wrap("list a user's rooms", async () => {
      const items = await this.queryAll({
        KeyConditionExpression: "pk = :u AND begins_with(sk, :r)",
        ExpressionAttributeValues: { ":u": userKey(userId), ":r": "ROOM#" },
      });
      return items.map(userRoomOf);
    });
  }

  markRead(userId: string, roomId: string, seq: number): Promise<number | undefined> {
    return wrap("mark read", async () => {
      const key = { pk: userKey(userId), sk: roomKey(roomId) };
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: key,
            UpdateExpression: "SET lastReadSeq = :s",
            ConditionExpression:
              "attribute_exists(pk) AND (attribute_not_exists(lastReadSeq) OR lastReadSeq < :s)",
            ExpressionAttributeValues: { ":s": seq },
          }),
        );
        return seq;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      return (await this.userRoom(userId, roomId))?.lastReadSeq;
    });
  }
}

/** The wait before asking DynamoDB again for what a batch call left unprocessed. */
function unprocessedBackoff(attempt: number): Promise<void> {
  return sleep(Math.min(1000, 50 * 2 ** attempt));
}

/** Writes in batches of 25, retrying what DynamoDB leaves unprocessed. */
async function batchWrite(
  doc: DynamoDBDocumentClient,
  table: string,
  requests: Record<string, unknown>[],
): Promise<void> {
  for (let i = 0; i < requests.length; i += 25) {
    let pending: Record<string, unknown>[] | undefined = requests.slice(i, i + 25);
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > 0) await unprocessedBackoff(attempt);
      if (attempt > 6) throw new Error("unprocessed writes remained after retries");
      const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
      pending = out.UnprocessedItems?.[table] as Record<string, unknown>[] | undefined;
    }
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
