/** The connection probe port over API Gateway's management API: `GET /@connections/{id}`. */
import {
  type ApiGatewayManagementApiClient,
  GetConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { DependencyError } from "../errors";
import type { ConnectionProbe } from "../ports";

export class ManagementConnectionProbe implements ConnectionProbe {
  constructor(private readonly client: ApiGatewayManagementApiClient) {}

  async lastActive(connectionId: string): Promise<number | "gone"> {
    try {
      const answer = await this.client.send(new GetConnectionCommand({ ConnectionId: connectionId }));
      return answer.LastActiveAt?.getTime() ?? answer.ConnectedAt?.getTime() ?? Date.now();
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e?.name === "GoneException" || e?.$metadata?.httpStatusCode === 410) return "gone";
      throw new DependencyError("management-api", "GetConnection failed", { cause: error });
    }
  }
}
