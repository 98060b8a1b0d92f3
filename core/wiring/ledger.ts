/** The send ledger port (DynamoDB): each room's seq counter and each send's record. */
import { DynamoSendLedger } from "../adapters/dynamo";
import type { SendLedger } from "../ports";
import { service } from "./services";
import { dynamoClient } from "./store";

export const sendLedger = service<SendLedger>(async () => new DynamoSendLedger(await dynamoClient()));
