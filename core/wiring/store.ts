/** The connection store port (DynamoDB): the only one `$connect` needs. The AWS SDK is the Lambda runtime's. */
import { createDynamoClient, DynamoConnectionStore } from "../adapters/dynamo";
import type { ConnectionStore } from "../ports";
import { service, serviceOverrides } from "./services";

/** One DynamoDB client per process, for the store and the ledger alike. */
export const dynamoClient = service(async () => {
  const client = createDynamoClient();
  return serviceOverrides().dynamo?.(client) ?? client;
});

export const connectionStore = service<ConnectionStore>(
  async () => new DynamoConnectionStore(await dynamoClient()),
);
