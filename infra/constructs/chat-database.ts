/**
 * RDS for PostgreSQL: the durable message store. Isolated subnets, storage encrypted, TLS forced,
 * automated backups, credentials generated into Secrets Manager, deletion protection on by default.
 * Clients verify the server: core/secrets.ts builds the URL with `sslmode=verify-full` (node-postgres
 * checks the chain against Node's CA store and the host name), and `connect` points
 * NODE_EXTRA_CA_CERTS at a bundle with the Amazon RDS CAs in the consumer's runtime, which Node adds
 * to that store at start-up.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as rds from "aws-cdk-lib/aws-rds";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { InfraConfigError } from "../errors";
import { accept } from "../nag";
import { allowIngress, type Consumer } from "./consumer";
import type { DatabaseEndpoint } from "./endpoints";

export interface ChatDatabaseProps {
  vpc: ec2.IVpc;
  /** @default db.t4g.micro */
  instanceType?: ec2.InstanceType;
  /** @default false (one instance; set true for a standby in a second AZ) */
  multiAz?: boolean;
  /** @default 7 */
  backupRetentionDays?: number;
  /** @default true */
  deletionProtection?: boolean;
  /** A port other than 5432, so scanners looking for open PostgreSQL find nothing. @default 5433 */
  port?: number;
}

/** The PostgreSQL instance and its secret (JSON: host, port, username, password, dbname). */
export class ChatDatabase extends Construct implements DatabaseEndpoint {
  readonly instance: rds.DatabaseInstance;
  readonly secret: secretsmanager.ISecret;
  readonly securityGroup: ec2.SecurityGroup;
  private readonly port: number;

  constructor(scope: Construct, id: string, props: ChatDatabaseProps) {
    super(scope, id);
    this.port = props.port ?? 5433;
    const deletionProtection = props.deletionProtection ?? true;
    const parameters = new rds.ParameterGroup(this, "Parameters", {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      parameters: { "rds.force_ssl": "1" },
    });
    this.securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "PostgreSQL: reachable only from the persister, getHistory and the migrator",
      allowAllOutbound: false,
    });
    this.instance = new rds.DatabaseInstance(this, "Instance", {
      securityGroups: [this.securityGroup],
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      instanceType: props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO),
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      publiclyAccessible: false,
      port: this.port,
      databaseName: "chat",
      credentials: rds.Credentials.fromGeneratedSecret("chat"),
      storageEncrypted: true,
      allocatedStorage: 20,
      maxAllocatedStorage: 100,
      multiAz: props.multiAz ?? false,
      backupRetention: Duration.days(props.backupRetentionDays ?? 7),
      deletionProtection,
      removalPolicy: deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      parameterGroup: parameters,
      cloudwatchLogsExports: ["postgresql", "upgrade"],
      enablePerformanceInsights: false,
    });
    if (!this.instance.secret) throw new InfraConfigError("RDS did not generate the credentials secret");
    this.secret = this.instance.secret;
    // The generated secret is a child of the instance (instance.secret is its attachment).
    accept(
      this.instance,
      "SMG4",
      "Every database client (the persister, the getHistory, joinRoom and sendMessage functions, the migrator) reads the credentials once per process and does not read them again when authentication fails, so a rotation would break them until they restart; rotation stays off until that re-read exists",
    );
    if (!(props.multiAz ?? false)) {
      accept(
        this.instance,
        "RDS3",
        "Single-AZ by default to keep the default deploy cheap; set multiAz for production. A host failure is recovered by RDS on the same storage. Losing the instance or its AZ means a point-in-time restore from the automated backups (7 days), to a new instance, which lacks the rows written after the restore point; the persister does not write them again by itself, since its committed offsets are past them. They can be recovered while Kafka still retains them (7 days or log.retention.bytes, whichever comes first) by resetting the chat-persister group's offsets to before the restore time: the writes are idempotent on messageId, so a replay stores nothing twice",
      );
    }
  }

  connect(consumer: Consumer): void {
    allowIngress(consumer, this.securityGroup, ec2.Port.tcp(this.port), "PostgreSQL");
    this.secret.grantRead(consumer);
    consumer.addEnvironment("DATABASE_SECRET_ARN", this.secret.secretArn);
    // sslmode=verify-full (core/secrets.ts) verifies against Node's CA store; this adds the RDS CAs.
    consumer.addEnvironment("NODE_EXTRA_CA_CERTS", consumer.caBundle);
  }
}
