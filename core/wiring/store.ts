/** The connection store port (DynamoDB): the only one `$connect` needs. The AWS SDK is the Lambda runtime's. */
import { createDynamoClient, DynamoConnectionStore } from "../adapters/dynamo";
import type { ConnectionStore } from "../ports";
import { service } from "./services";

/** One DynamoDB client per process, for the store and the ledger alike. */
export const dynamoClient = service(async () => createDynamoClient());

export const connectionStore = service<ConnectionStore>(
  async () => new DynamoConnectionStore(await dynamoClient()),
);
