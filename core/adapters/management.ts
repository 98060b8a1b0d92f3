/**
 * The connection gateway port over API Gateway's management API (`/@connections/{id}`), through the
 * real SDK client with kept-alive connections. A 410 answers "gone"; anything else throws.
 */

import { Agent as HttpAgent } from "node:http";
import { Agent } from "node:https";
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionGateway } from "../ports";

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isGone(error: unknown): boolean {
  return (error as { name?: string })?.name === "GoneException" || statusOf(error) === 410;
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

export class ManagementApiGateway implements ConnectionGateway {
  constructor(private readonly client: ApiGatewayManagementApiClient) {}

  async post(connectionId: string, data: string): Promise<"ok" | "gone"> {
    try {
      await this.client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
      return "ok";
    } catch (error) {
      if (isGone(error)) return "gone";
      throw new DependencyError(
        "management-api",
        `PostToConnection answered ${statusOf(error) ?? "an error"}`,
        {
          cause: error,
        },
      );
    }
  }

  async close(connectionId: string): Promise<void> {
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    } catch (error) {
      if (!isGone(error))
        throw new DependencyError("management-api", "DeleteConnection failed", { cause: error });
    }
  }
}
