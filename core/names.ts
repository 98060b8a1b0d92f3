/**
 * The names the application and its infrastructure must agree on. Each is a setting of its own
 * (core/config.ts); these are the defaults, written here once for the app, the local stack and the
 * CDK app alike.
 */
export const DEFAULT_NAMES = {
  messagesTopic: "chat.messages",
  deadLetterTopic: "chat.messages.dlq",
  persisterGroupId: "chat-persister",
} as const;
