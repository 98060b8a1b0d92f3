/**
 * The connection gateway port over API Gateway's management API (`/@connections/{id}`). A 410
 * answers "gone"; anything else throws.
 */

import { Agent as HttpAgent } from "node:http";
import { Agent } from "node:https";
import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionGateway } from "../ports";
import { httpTransport, type PostTimeouts, SignedPoster, type TransportFactory } from "./signed-post";

/** A post whose connection stays silent this long fails (and counts toward the frame's attempts). */
const POST_TIMEOUTS: PostTimeouts = {
  idleMs: 10_000,
  timedOut: () => new Error("PostToConnection timed out"),
};

/**
 * PostToConnection answered 429 LimitExceededException: the account's request rate (shared with every
 * API of the account) or the client's buffer is full. Retriable, after a backoff; named as AWS names it.
 */
export class LimitExceededError extends DependencyError {
  override name = "LimitExceededException";
  readonly throttled = true;
}

export function createManagementClient(
  endpoint: string = config.management().endpoint,
  maxSockets: number = config.fanout().concurrency,
): ApiGatewayManagementApiClient {
  const local = endpoint.startsWith("http://");
  const agentOptions = { keepAlive: true, maxSockets };
  return new ApiGatewayManagementApiClient({
    endpoint,
    region: config.aws().region,
    // The local emulator accepts any signature; AWS uses the task's or function's role.
    ...(local ? { credentials: { accessKeyId: "local", secretAccessKey: "local" } } : {}),
    requestHandler: new NodeHttpHandler(
      local ? { httpAgent: new HttpAgent(agentOptions) } : { httpsAgent: new Agent(agentOptions) },
    ),
    maxAttempts: 1,
  });
}

/**
 * PostToConnection is the fan-out's hot path: it goes out as one SigV4-signed, kept-alive HTTP
 * request ({@link SignedPoster}), with the credentials the SDK client resolves (and refreshes). The
 * SDK's own send runs its whole middleware stack on every call, and on this path the CPU per post
 * bounds how many posts a worker sends a second (`npm run bench` measures the SDK, this client
 * signed and unsigned side by side).
 */
export class ManagementApiGateway implements ConnectionGateway {
  private readonly poster: SignedPoster;
  private readonly base: string;

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    options: {
      endpoint?: string;
      maxSockets?: number;
      /** node:http's agent unless told otherwise; the fan-out worker's is undici's pool. */
      transport?: TransportFactory;
    } = {},
  ) {
    const url = new URL((options.endpoint ?? config.management().endpoint).replace(/\/+$/, ""));
    this.base = `${url.pathname}/@connections/`;
    this.poster = new SignedPoster(
      url,
      config.aws().region,
      "execute-api",
      options.maxSockets ?? config.fanout().concurrency,
      options.transport ?? httpTransport,
    );
  }

  async post(connectionId: string, data: string): Promise<"ok" | "gone"> {
    const request = {
      path: this.base + encodeURIComponent(connectionId),
      body: Buffer.from(data),
      contentType: "application/json",
    };
    const { status } = await this.poster
      .post(await this.client.config.credentials(), request, POST_TIMEOUTS, false)
      .catch((cause: unknown) => {
        throw new DependencyError("management-api", "PostToConnection failed", { cause });
      });
    if (status === 200) return "ok";
    if (status === 410) return "gone";
    if (status === 429) throw new LimitExceededError("management-api", "PostToConnection answered 429");
    throw new DependencyError("management-api", `PostToConnection answered ${status}`);
  }
}
