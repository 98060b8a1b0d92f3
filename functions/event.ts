/**
 * The shapes of API Gateway WebSocket events and results that the handlers read, kept to what they
 * use, so that the domain never depends on Lambda's types.
 */

export interface AuthorizerContext {
  principalId?: string;
  userId?: string;
  name?: string;
}

export interface WebSocketEvent {
  requestContext: {
    connectionId: string;
    routeKey: string;
    eventType: "CONNECT" | "MESSAGE" | "DISCONNECT";
    requestId: string;
    authorizer?: AuthorizerContext;
    disconnectStatusCode?: number;
    disconnectReason?: string;
  };
  body?: string | null;
  isBase64Encoded?: boolean;
  /** `$connect` only: the upgrade request's query string (`batch=1` asks for batched frames). */
  queryStringParameters?: Record<string, string | undefined> | null;
}

export interface AuthorizerEvent {
  type: "REQUEST";
  methodArn: string;
  headers?: Record<string, string | undefined> | null;
  queryStringParameters?: Record<string, string | undefined> | null;
  requestContext?: { connectionId?: string; routeKey?: string };
}

export interface AuthorizerResult {
  principalId: string;
  policyDocument: {
    Version: "2012-10-17";
    Statement: { Action: "execute-api:Invoke"; Effect: "Allow" | "Deny"; Resource: string }[];
  };
  context: Record<string, string | number | boolean>;
}

export interface HandlerResult {
  statusCode: number;
  body?: string;
}
