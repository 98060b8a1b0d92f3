/**
 * Applies the SQL migrations of prisma/migrations as part of the deploy: a custom resource whose
 * function bundles prisma/migrate.ts with the migration files beside it. Its properties carry a hash
 * of the migrations, so a new migration re-runs it; anything that needs the schema depends on it.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { CustomResource, Duration } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import { Construct } from "constructs";
import { REPO_ROOT } from "../paths";
import { deployProvider } from "./deploy-provider";
import type { DatabaseEndpoint } from "./endpoints";
import { InfraFunction } from "./infra-function";

const MIGRATIONS_DIR = path.join(REPO_ROOT, "prisma", "migrations");

/** sha256 over every migration's name and SQL, in order. */
export function migrationsHash(dir: string = MIGRATIONS_DIR): string {
  const hash = createHash("sha256");
  for (const name of readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()) {
    hash.update(name).update(readFileSync(path.join(dir, name, "migration.sql")));
  }
  return hash.digest("hex");
}

export interface DatabaseMigrationsProps {
  database: DatabaseEndpoint;
  /** Absent when the database is reached without the VPC (LocalStack profile). */
  vpc?: ec2.IVpc;
}

/** The migration custom resource. */
export class DatabaseMigrations extends Construct {
  readonly resource: CustomResource;
  readonly fn: InfraFunction;

  constructor(scope: Construct, id: string, props: DatabaseMigrationsProps) {
    super(scope, id);
    this.fn = new InfraFunction(this, "Migrator", {
      entry: "infra/custom-resources/migrate.ts",
      description: "Applies the chat database migrations during the deploy",
      vpc: props.vpc,
      timeout: Duration.minutes(5),
      bundling: {
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          // The migrator reads `migrations/` beside its bundle (prisma/migrate.ts's layout).
          afterBundling: (_inputDir: string, outputDir: string) => [
            `cp -R "${MIGRATIONS_DIR}" "${path.join(outputDir, "migrations")}"`,
          ],
        },
      },
    });
    props.database.connect(this.fn.consumer);
    const provider = deployProvider(this, this.fn.fn);
    this.resource = new CustomResource(this, "Migrations", {
      serviceToken: provider.serviceToken,
      properties: { migrationsHash: migrationsHash() },
    });
  }
}
