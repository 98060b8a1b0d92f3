/**
 * Deploy-time custom resource: applies prisma/migrations (bundled beside this file) to the RDS
 * database before the persister's service is created or updated. Runs on every change of the
 * migrations' hash; deleting the stack leaves the database as it is.
 */
import path from "node:path";
import { createLogger } from "../../core/logger";
import { databaseUrl } from "../../core/secrets";
import { migrate } from "../../prisma/migrate";
import type { CustomResourceEvent, CustomResourceResult } from "./event";

const logger = createLogger("deploy-migrations");

/** Applies pending migrations on Create and Update; nothing on Delete. */
export async function handler(event: CustomResourceEvent): Promise<CustomResourceResult> {
  const physicalId = event.PhysicalResourceId ?? "chat-database-migrations";
  if (event.RequestType === "Delete") return { PhysicalResourceId: physicalId };
  const applied = await migrate(await databaseUrl(), {
    migrationsDir: path.join(__dirname, "migrations"),
    log: (line) => logger.info(line),
  });
  logger.info({ applied }, `migrations applied: ${applied.length}`);
  return { PhysicalResourceId: physicalId, Data: { applied: applied.join(",") } };
}
