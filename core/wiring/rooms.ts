/** The room directory port (DynamoDB): rooms, the users who may enter them, read positions. */
import { DynamoRoomDirectory } from "../adapters/dynamo";
import type { RoomDirectory } from "../ports";
import { service } from "./services";
import { dynamoClient } from "./store";

export const roomDirectory = service<RoomDirectory>(
  async () => new DynamoRoomDirectory(await dynamoClient()),
);
