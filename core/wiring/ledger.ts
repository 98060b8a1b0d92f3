/** The send ledger port (DynamoDB): each room's seq counter and each send's record. */
import { DynamoSendLedger } from "../adapters/dynamo";
import { DynamoWire } from "../adapters/dynamo-wire";
import type { SendLedger } from "../ports";
import { service, serviceOverrides } from "./services";
import { dynamoClient } from "./store";

/** The ledger's client: signed keep-alive requests, with the SDK client's credentials and endpoint. */
const dynamoWire = service(
  async () => {
    const wire = DynamoWire.from(await dynamoClient());
    return serviceOverrides().dynamoWire?.(wire) ?? wire;
  },
  async (wire) => wire.destroy(),
);

export const sendLedger = service<SendLedger>(async () => new DynamoSendLedger(await dynamoWire()));
