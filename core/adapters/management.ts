/**
 * The connection gateway port over API Gateway's management API (`/@connections/{id}`). A 410
 * answers "gone"; anything else throws.
 */

import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionGateway } from "../ports";
import { SigV4Signer } from "./sigv4";

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
 * request signed by {@link SigV4Signer}, with the credentials the SDK client resolves (and
 * refreshes). The SDK's own send runs its whole middleware stack on every call, and on this path
 * the CPU per post bounds how many posts a worker sends a second (`npm run bench` measures the SDK,
 * this client signed and unsigned side by side).
 */
export class ManagementApiGateway implements ConnectionGateway {
  private readonly url: URL;
  private readonly signer: SigV4Signer;
  private readonly agent: HttpAgent | Agent;
  private readonly send: typeof httpRequest;

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    endpoint: string = config.management().endpoint,
    maxSockets: number = config.fanout().concurrency,
  ) {
    this.url = new URL(endpoint.replace(/\/+$/, ""));
    const secure = this.url.protocol === "https:";
    this.agent = secure
      ? new Agent({ keepAlive: true, maxSockets })
      : new HttpAgent({ keepAlive: true, maxSockets });
    this.send = secure ? httpsRequest : httpRequest;
    this.signer = new SigV4Signer(config.aws().region, "execute-api");
  }

  async post(connectionId: string, data: string): Promise<"ok" | "gone"> {
    const path = `${this.url.pathname}/@connections/${encodeURIComponent(connectionId)}`;
    const body = Buffer.from(data);
    const headers = this.signer.sign(await this.client.config.credentials(), {
      host: this.url.host,
      path,
      body,
      contentType: "application/json",
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = this.send(
        {
          host: this.url.hostname,
          port: this.url.port || undefined,
          method: "POST",
          path,
          headers,
          agent: this.agent,
          timeout: 10_000,
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("PostToConnection timed out")));
      req.on("error", reject);
      req.end(body);
    }).catch((cause: unknown) => {
      throw new DependencyError("management-api", "PostToConnection failed", { cause });
    });
    if (status === 200) return "ok";
    if (status === 410) return "gone";
    if (status === 429) throw new LimitExceededError("management-api", "PostToConnection answered 429");
    throw new DependencyError("management-api", `PostToConnection answered ${status}`);
  }
}
