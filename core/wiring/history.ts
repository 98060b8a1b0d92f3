/**
 * The message history port (PostgreSQL, through pg): reads of stored messages and a room's highest
 * seq. The handlers that hold it need it only now and then (a page older than Redis keeps, a room
 * Redis has lost), so pg is loaded on first use rather than at the handler's cold start.
 */
import type { MessageHistory } from "../ports";
import { databaseUrl } from "../secrets";
import { service } from "./services";

export const messageHistory = service<MessageHistory>(
  async () => {
    const { createMessageHistory } =
      require("../adapters/message-history") as typeof import("../adapters/message-history");
    return createMessageHistory(await databaseUrl());
  },
  (history) => history.disconnect(),
);
