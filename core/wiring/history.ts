/** The message history port (PostgreSQL, through pg): reads of stored messages and a room's highest seq. */
import { createMessageHistory } from "../adapters/message-history";
import type { MessageHistory } from "../ports";
import { databaseUrl } from "../secrets";
import { service } from "./services";

export const messageHistory = service<MessageHistory>(
  async () => createMessageHistory(await databaseUrl()),
  (history) => history.disconnect(),
);
