/**
 * The API Gateway emulator with the Lambda handlers, alone in a process, so the fault suite can kill
 * the gateway with SIGKILL as a crash would (no close frames, no $disconnect) and start it again on
 * the same port. Reads FAULT_GATEWAY_PORT and the stack's settings from its environment and prints
 * `ready <url>` on stdout once it accepts connections.
 */

import { createLogger } from "../../core/logger";
import { startGateway } from "../../local/gateway";
import { loadHandlers, ROUTE_RESPONSES } from "../../local/lambda/handlers";

async function main(): Promise<void> {
  const { routes, authorizer } = loadHandlers();
  const gateway = await startGateway({
    port: Number(process.env.FAULT_GATEWAY_PORT),
    stage: process.env.STAGE ?? "dev",
    routes,
    routeResponses: ROUTE_RESPONSES,
    authorizer,
    logger: createLogger("gateway"),
  });
  process.stdout.write(`ready ${gateway.url}\n`);
  const stop = () => void gateway.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(`fault gateway could not start: ${error instanceof Error ? error.message : error}\n`);
  process.exit(1);
});
