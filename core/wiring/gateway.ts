/**
 * The connection gateway port for handlers that post more than their one route response (`resume`
 * answers several frames): the API Gateway management API, a few sockets per process.
 */
import { createManagementClient, ManagementApiGateway } from "../adapters/management";
import { config } from "../config";
import type { ConnectionGateway } from "../ports";
import { service } from "./services";

const SOCKETS = 4;

export const connectionGateway = service<ConnectionGateway>(async () => {
  const endpoint = config.management().endpoint;
  return new ManagementApiGateway(createManagementClient(endpoint, SOCKETS), {
    endpoint,
    maxSockets: SOCKETS,
  });
});
