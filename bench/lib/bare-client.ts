/**
 * A bare kept-alive POST client: undici's pool through its dispatcher, answering status and body,
 * with nothing of this project's (no signing, no retries). The bench's floors use it: the cheapest
 * client measured on this machine for the requests this architecture makes.
 */
import { Pool } from "undici";

export interface BareClient {
  post(
    path: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export function bareClient(origin: string, connections: number): BareClient {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const post = (path: string, headers: Record<string, string>, body: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      pool.dispatch(
        { method: "POST", path, headers, body },
        {
          onRequestStart: () => undefined,
          onResponseStart: (_c, statusCode) => {
            status = statusCode;
          },
          onResponseData: (_c, chunk) => {
            chunks.push(chunk);
          },
          onResponseEnd: () => resolve({ status, body: Buffer.concat(chunks).toString() }),
          onResponseError: (_c, error) => reject(error),
        },
      );
    });
  return { post, close: () => pool.destroy() };
}

/** The headers dynalite (and the local stack's DynamoDB) takes for a JSON-protocol call; it checks no signature. */
export function bareDynamoHeaders(operation: string): Record<string, string> {
  return {
    "content-type": "application/x-amz-json-1.0",
    "x-amz-target": `DynamoDB_20120810.${operation}`,
    "x-amz-date": "20260101T000000Z",
    authorization:
      "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
  };
}
