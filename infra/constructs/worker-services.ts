/**
 * The long-running processes (worker/): the fan-out worker and the persister as ECS Fargate services,
 * both from the one image built by worker/Dockerfile (the command picks the entry point), in the
 * private subnets without public IPs, with scaling bounds, rolling deploys that roll back on failure,
 * and logs in CloudWatch.
 */
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { DEFAULT_NAMES } from "../../core/names";
import { WORKERS } from "../../functions/routes";
import { InfraConfigError } from "../errors";
import { accept } from "../nag";
import { REPO_ROOT } from "../paths";
import { grantConnections } from "./chat-api";
import type { ChatTable } from "./chat-table";
import { type Consumer, containerConsumer } from "./consumer";
import type { DatabaseEndpoint, KafkaEndpoint, RedisEndpoint } from "./endpoints";

/** The worker image's Dockerfile, relative to the build context (the repository root). */
export const WORKER_DOCKERFILE = "worker/Dockerfile";
/** Where the persister answers health checks inside its container. */
export const PERSISTER_HEALTH_PORT = 8080;
/** Where the fan-out worker answers health checks inside its container. */
export const FANOUT_HEALTH_PORT = 8080;

/** Size and count bounds of one service. */
export interface ServiceScaling {
  /** @default 256 (0.25 vCPU) */
  cpu?: number;
  /** @default 512 */
  memoryMiB?: number;
  minTasks?: number;
  maxTasks?: number;
}

export interface WorkerServicesProps {
  vpc: ec2.IVpc;
  table: ChatTable;
  redis: RedisEndpoint;
  kafka: KafkaEndpoint;
  database: DatabaseEndpoint;
  /** The WebSocket API whose stage the fan-out worker posts to. */
  api: apigwv2.IWebSocketApi;
  stageName: string;
  /** The stage's management endpoint (`https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`). */
  managementEndpoint: string;
  /** @default { minTasks: 2, maxTasks: 10 }: two so a dead worker's shards are taken over at once */
  fanout?: ServiceScaling;
  /** @default { minTasks: 1, maxTasks: 6 }: more replicas than partitions would sit idle */
  persister?: ServiceScaling;
  /** @default 16 */
  fanoutShards?: number;
  /** @default "chat-persister" */
  persisterGroupId?: string;
  /** @default "info" */
  logLevel?: string;
}

interface Worker {
  service: ecs.FargateService;
  logGroup: logs.LogGroup;
  consumer: Consumer;
}

/** The ECS cluster and both worker services. */
export class WorkerServices extends Construct {
  readonly cluster: ecs.Cluster;
  readonly image: ecs.ContainerImage;
  readonly fanout: Worker;
  readonly persister: Worker;

  constructor(scope: Construct, id: string, props: WorkerServicesProps) {
    super(scope, id);
    this.cluster = new ecs.Cluster(this, "Cluster", {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    // The build context is the repository root: the workers import core/. The build stage runs on
    // the builder's platform and only copies bundles into the arm64 stage, so no emulation is needed.
    this.image = ecs.ContainerImage.fromAsset(REPO_ROOT, {
      file: WORKER_DOCKERFILE,
      platform: Platform.LINUX_ARM64,
    });
    const entry = (name: string): string => {
      const worker = WORKERS.find((w) => w.name === name);
      if (!worker) throw new InfraConfigError(`no worker named ${name} in functions/routes.ts`);
      return `dist/worker/${worker.name}.js`;
    };

    this.fanout = this.service(
      "Fanout",
      props,
      entry("fanout"),
      { cpu: 256, memoryMiB: 512, minTasks: 2, maxTasks: 10, ...props.fanout },
      FANOUT_HEALTH_PORT,
    );
    props.table.connectReadAndDelete(this.fanout.consumer);
    props.redis.connect(this.fanout.consumer);
    // Its sweeper appends messages Redis accepted whose Kafka append was never confirmed.
    props.kafka.connectProducer(this.fanout.consumer);
    this.fanout.consumer.addEnvironment("FANOUT_SHARDS", String(props.fanoutShards ?? 16));
    // The management API, on this API's stage only: the worker POSTs to connections and GETs one
    // idle past the idle timeout; a stale one (410) is removed from the table, never closed through
    // the API, so no DELETE.
    grantConnections(
      { api: props.api, stageName: props.stageName },
      this.fanout.consumer,
      this.fanout.service.taskDefinition,
      ["POST", "GET"],
      (m) =>
        `Connection ids are known only at run time; the grant is limited to this API, this stage and ${m} on @connections (the worker POSTs to connections, and GETs one idle past the idle timeout to learn whether it lives)`,
    );
    this.fanout.consumer.addEnvironment("MANAGEMENT_ENDPOINT", props.managementEndpoint);

    this.persister = this.service(
      "Persister",
      props,
      entry("persister"),
      { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 6, ...props.persister },
      PERSISTER_HEALTH_PORT,
    );
    props.kafka.connectConsumer(
      this.persister.consumer,
      props.persisterGroupId ?? DEFAULT_NAMES.persisterGroupId,
    );
    props.database.connect(this.persister.consumer);
  }

  private service(
    id: string,
    props: WorkerServicesProps,
    script: string,
    scaling: Required<ServiceScaling>,
    healthPort?: number,
  ): Worker {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const taskDefinition = new ecs.FargateTaskDefinition(this, `${id}Task`, {
      cpu: scaling.cpu,
      memoryLimitMiB: scaling.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    const container = taskDefinition.addContainer("worker", {
      image: this.image,
      command: [script],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: id.toLowerCase() }),
      environment: {
        AWS_REGION: Stack.of(this).region,
        LOG_LEVEL: props.logLevel ?? "info",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
        ...(healthPort === undefined ? {} : { HEALTH_PORT: String(healthPort) }),
      },
      // SIGTERM first (the workers drain), SIGKILL only after this.
      stopTimeout: Duration.seconds(60),
      readonlyRootFilesystem: true,
      healthCheck:
        healthPort === undefined
          ? undefined
          : {
              command: [
                "CMD",
                "node",
                "-e",
                `fetch("http://127.0.0.1:${healthPort}/health").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
              ],
              interval: Duration.seconds(15),
              timeout: Duration.seconds(5),
              retries: 3,
              startPeriod: Duration.seconds(30),
            },
    });
    const securityGroup = new ec2.SecurityGroup(this, `${id}SecurityGroup`, {
      vpc: props.vpc,
      description: `Chat ${id.toLowerCase()} worker tasks`,
      allowAllOutbound: true,
    });
    const service = new ecs.FargateService(this, `${id}Service`, {
      cluster: this.cluster,
      taskDefinition,
      desiredCount: scaling.minTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      assignPublicIp: false,
    });
    accept(
      taskDefinition,
      "ECS2",
      "The environment holds only non-secret configuration (names, endpoints, secret ARNs); secret values are read from Secrets Manager by the process",
    );
    accept(
      taskDefinition,
      "IAM5[Resource::*]",
      "The execution role's ecr:GetAuthorizationToken has no resource-level permissions; image pulls are limited to the asset repository",
    );
    const scalable = service.autoScaleTaskCount({
      minCapacity: scaling.minTasks,
      maxCapacity: scaling.maxTasks,
    });
    scalable.scaleOnCpuUtilization(`${id}Cpu`, { targetUtilizationPercent: 60 });
    return {
      service,
      logGroup,
      consumer: containerConsumer(id, taskDefinition, container, securityGroup.connections),
    };
  }
}
