/** The connection store port (DynamoDB): the only one `$connect` needs. The AWS SDK is the Lambda runtime's. */
import { createDynamoClient, DynamoConnectionStore } from "../adapters/dynamo";
import type { ConnectionStore } from "../ports";
import { service } from "./services";

export const connectionStore = service<ConnectionStore>(
  async () => new DynamoConnectionStore(createDynamoClient()),
);
