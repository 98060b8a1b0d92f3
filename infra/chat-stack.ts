/**
 * The chat backend's stack: it only composes constructs. The `profile` decides where Redis, Kafka
 * and PostgreSQL come from: on `aws`, ElastiCache, MSK and RDS built here; on `localstack`, the
 * services of localstack/docker-compose.yml (LocalStack's plans do not all serve MSK, ElastiCache or
 * RDS), and the management endpoint takes LocalStack's form.
 */
import { CfnOutput, Fn, Stack, type StackProps } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as iam from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import { DEFAULT_NAMES } from "../core/names";
import { ChatApi } from "./constructs/chat-api";
import { ChatDatabase } from "./constructs/chat-database";
import { ChatMonitoring } from "./constructs/chat-monitoring";
import { ChatTable } from "./constructs/chat-table";
import { DatabaseMigrations } from "./constructs/database-migrations";
import type { DatabaseEndpoint, KafkaEndpoint, RedisEndpoint, TopicSettings } from "./constructs/endpoints";
import { ExternalDatabase, ExternalKafka, ExternalRedis } from "./constructs/external-services";
import { JwtSecret } from "./constructs/jwt-secret";
import { KafkaCluster } from "./constructs/kafka-cluster";
import { KafkaTopics } from "./constructs/kafka-topics";
import { Network } from "./constructs/network";
import { RedisCache } from "./constructs/redis-cache";
import { WebClient } from "./constructs/web-client";
import { WorkerServices } from "./constructs/worker-services";
import { accept, managedPolicyFinding } from "./nag";

/** Where the app is deployed. */
export type Profile = "aws" | "localstack";

/** Host names and ports of localstack/docker-compose.yml's services, as LocalStack's containers see them. */
export const LOCALSTACK_SERVICES = {
  redisUrl: "redis://redis:6379",
  kafkaBrokers: "kafka:9092",
  databaseUrl: "postgresql://chat:chat@postgres:5432/chat",
  /** LocalStack's edge port, where it serves execute-api host names. */
  edge: "localhost.localstack.cloud:4566",
} as const;

export interface ChatStackProps extends StackProps {
  /** @default "aws" */
  profile?: Profile;
  /** @default 1 */
  natGateways?: number;
  /** @default "prod" */
  stageName?: string;
  /** Reserved concurrency per handler file. */
  reservedConcurrency?: Readonly<Record<string, number>>;
  /** A mailbox subscribed to the alarm topic. */
  alarmEmail?: string;
  /** RDS deletion protection (turn off for throw-away stacks). @default true */
  deletionProtection?: boolean;
  /** Shards of the fan-out stream, shared by the handlers and the fan-out worker. @default 16 */
  fanoutShards?: number;
  /** @default "info" */
  logLevel?: string;
  /** ElastiCache node type. @default RedisCache's, "cache.m7g.large" (sized in infra/constructs/redis-cache.ts) */
  redisNodeType?: string;
  /** AZ names for the VPC (three by default, one MSK broker in each). @default the region's first three */
  availabilityZones?: string[];
}

const PERSISTER_GROUP_ID = DEFAULT_NAMES.persisterGroupId;

/** The whole system in one stack. */
export class ChatStack extends Stack {
  readonly api: ChatApi;
  readonly workers: WorkerServices;
  readonly monitoring: ChatMonitoring;
  /** The web client (S3 and CloudFront); AWS profile only. */
  readonly web?: WebClient;

  constructor(scope: Construct, id: string, props: ChatStackProps = {}) {
    super(scope, id, props);
    const profile = props.profile ?? "aws";
    const stageName = props.stageName ?? "prod";
    const { vpc } = new Network(this, "Network", {
      natGateways: props.natGateways,
      availabilityZones: props.availabilityZones,
    });
    const table = new ChatTable(this, "Table");
    const jwtSecret = new JwtSecret(this, "JwtSecret");

    let redis: RedisEndpoint;
    let kafka: KafkaEndpoint;
    let database: DatabaseEndpoint;
    let topics: TopicSettings;
    let cluster: KafkaCluster | undefined;
    let cache: RedisCache | undefined;
    if (profile === "aws") {
      cache = new RedisCache(this, "Redis", { vpc, nodeType: props.redisNodeType });
      redis = cache;
      cluster = new KafkaCluster(this, "Kafka", { vpc });
      kafka = cluster;
      topics = cluster.topics;
      database = new ChatDatabase(this, "Database", { vpc, deletionProtection: props.deletionProtection });
    } else {
      topics = {
        messagesTopic: DEFAULT_NAMES.messagesTopic,
        deadLetterTopic: DEFAULT_NAMES.deadLetterTopic,
        partitions: 6,
        replicationFactor: 1,
      };
      redis = new ExternalRedis(LOCALSTACK_SERVICES.redisUrl);
      kafka = new ExternalKafka(LOCALSTACK_SERVICES.kafkaBrokers, topics);
      database = new ExternalDatabase(LOCALSTACK_SERVICES.databaseUrl);
    }
    const kafkaTopics = new KafkaTopics(this, "KafkaTopics", { kafka, topics, vpc });
    const migrations = new DatabaseMigrations(this, "Migrations", { database, vpc });

    this.api = new ChatApi(this, "Chat", {
      table,
      redis,
      kafka,
      database,
      jwtSecret,
      vpc,
      stageName,
      reservedConcurrency: props.reservedConcurrency,
      fanoutShards: props.fanoutShards,
      logLevel: props.logLevel,
    });
    // The stage must not take traffic before the topics exist and the schema is in place.
    this.api.stage.node.addDependency(kafkaTopics.resource, migrations.resource);

    const managementEndpoint =
      profile === "aws"
        ? this.api.stage.callbackUrl
        : Fn.join("", [
            "http://",
            this.api.api.apiId,
            `.execute-api.${LOCALSTACK_SERVICES.edge}/${stageName}`,
          ]);
    this.api.connectHandlers(managementEndpoint);
    this.workers = new WorkerServices(this, "Workers", {
      vpc,
      table,
      redis,
      kafka,
      database,
      api: this.api.api,
      stageName,
      managementEndpoint,
      persisterGroupId: PERSISTER_GROUP_ID,
      fanoutShards: props.fanoutShards,
      logLevel: props.logLevel,
    });
    // Migrations before the persister starts; topics before either worker subscribes or produces.
    this.workers.persister.service.node.addDependency(migrations.resource, kafkaTopics.resource);
    this.workers.fanout.service.node.addDependency(kafkaTopics.resource);

    this.monitoring = new ChatMonitoring(this, "Monitoring", {
      api: this.api,
      workers: this.workers,
      kafka: cluster,
      redis: cache,
      persisterGroupId: PERSISTER_GROUP_ID,
      alarmEmail: props.alarmEmail,
    });

    if (profile === "aws") {
      // WebSocket stage access logs need API Gateway's account-wide CloudWatch role.
      const role = new iam.Role(this, "ApiGatewayLogsRole", {
        assumedBy: new iam.ServicePrincipal("apigateway.amazonaws.com"),
        managedPolicies: [
          iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
        ],
      });
      const account = new apigateway.CfnAccount(this, "ApiGatewayAccount", {
        cloudWatchRoleArn: role.roleArn,
      });
      this.api.stage.node.addDependency(account);
      accept(
        role,
        managedPolicyFinding("AmazonAPIGatewayPushToCloudWatchLogs"),
        "The AWS managed policy API Gateway documents for its account logging role; it grants CloudWatch Logs actions only (create, describe, read and write log groups, streams and events)",
      );
    }

    const url =
      profile === "aws" ? this.api.stage.url : Fn.join("", [this.api.api.apiEndpoint, `/${stageName}`]);
    new CfnOutput(this, "WebSocketUrl", {
      value: url,
      description: 'Connect with: wscat -c "<url>?token=$TOKEN"',
    });
    new CfnOutput(this, "ManagementEndpoint", {
      value: managementEndpoint,
      description: "The @connections API of the stage",
    });
    new CfnOutput(this, "JwtSecretArn", {
      value: jwtSecret.secret.secretArn,
      description: "The token signing secret",
    });
    new CfnOutput(this, "TokenCommand", {
      value: Fn.join("", ["npm run token:aws -- --secret-arn ", jwtSecret.secret.secretArn, " <userId>"]),
      description: "Mints a client token for this stack (reads the secret with your AWS credentials)",
    });
    new CfnOutput(this, "DashboardName", { value: this.monitoring.dashboard.dashboardName });

    if (profile === "aws") {
      // The web client, configured with this stage's wss:// URL; sign in with a TokenCommand token.
      this.web = new WebClient(this, "Web", { webSocketUrl: url });
      new CfnOutput(this, "WebClientUrl", {
        value: this.web.url,
        description: "The web client: sign in with a token from TokenCommand (pasted, or after #token=)",
      });
    }
  }
}
