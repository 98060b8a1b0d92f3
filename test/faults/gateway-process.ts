/**
 * The API Gateway emulator with the Lambda handlers (in their thread, as the local stack runs them),
 * alone in a process, so the fault suite can kill the gateway with SIGKILL as a crash would (no
 * close frames, no $disconnect) and start it again on the same port. Reads FAULT_GATEWAY_PORT and
 * the stack's settings from its environment and prints `ready <url>` on stdout once it accepts
 * connections.
 */

import { createLogger } from "../../core/logger";
import { handlerThreadsFromEnv, startGateway } from "../../local/gateway";
import { ROUTE_RESPONSES } from "../../local/lambda/handlers";
import { localHandlers } from "../../local/lambda/host";

async function main(): Promise<void> {
  const logger = createLogger("gateway");
  const handlers = localHandlers({ threads: handlerThreadsFromEnv(process.env), log: logger });
  const gateway = await startGateway({
    port: Number(process.env.FAULT_GATEWAY_PORT),
    stage: process.env.STAGE ?? "dev",
    routes: handlers.routes,
    routeResponses: ROUTE_RESPONSES,
    authorizer: handlers.authorizer,
    logger,
  });
  await handlers.start();
  process.stdout.write(`ready ${gateway.url}\n`);
  const stop = () =>
    void gateway
      .close()
      .then(() => handlers.close())
      .finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(`fault gateway could not start: ${error instanceof Error ? error.message : error}\n`);
  process.exit(1);
});
