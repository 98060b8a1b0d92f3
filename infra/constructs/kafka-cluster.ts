/**
 * Amazon MSK (provisioned): brokers in the isolated subnets, IAM access control only (clients sign
 * SASL/OAUTHBEARER tokens with their role), TLS between clients and brokers and between brokers,
 * broker logs in CloudWatch. The topics are created by KafkaTopics, during the deploy.
 *
 * Sized so that a routine broker restart (MSK patches and reconfigures brokers one at a time) does
 * not stop sends: three brokers, one per AZ, replication factor 3 and min.insync.replicas 2. The
 * producers send with acks from all in-sync replicas, so with one broker down the two others still
 * form the ISR and writes go on; with RF 2 and min ISR 2 any one broker down would refuse every
 * write. The broker configuration below states the same values, and retention by bytes
 * as well as by time, sized from the storage per broker (see `retentionBytesPerPartition`); storage
 * grows by itself (Application Auto Scaling) before it fills, and an alarm (ChatMonitoring) sounds
 * if it still nears full.
 */
import { ArnFormat, Duration, Fn, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as appscaling from "aws-cdk-lib/aws-applicationautoscaling";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as msk from "aws-cdk-lib/aws-msk";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { DEFAULT_NAMES } from "../../core/names";
import { InfraConfigError } from "../errors";
import { accept, managedPolicyFinding } from "../nag";
import { allowIngress, type Consumer } from "./consumer";
import { type KafkaEndpoint, setTopicEnvironment, type TopicSettings } from "./endpoints";

/** The port MSK serves SASL/IAM over TLS on, inside the VPC. */
export const MSK_IAM_PORT = 9098;

/** Segment size the brokers roll logs at: retention deletes whole segments, so at most one segment per partition outlives its byte budget. */
export const LOG_SEGMENT_BYTES = 256 * 1024 * 1024;
/** The share of a broker's volume the retained partitions may fill at their byte limit. */
export const RETAINED_SHARE_OF_VOLUME = 0.6;

/**
 * `log.retention.bytes` (a per-partition limit) so that every partition replica a broker holds,
 * each at its limit plus its one active segment, fills at most RETAINED_SHARE_OF_VOLUME of the
 * broker's volume. Replicas per broker: the messages topic's partitions × RF spread over the brokers,
 * plus the dead-letter topic's one partition × RF likewise. The rest of the volume is headroom for
 * __consumer_offsets (compacted, small), index files, and growth between storage scaling steps.
 */
export function retentionBytesPerPartition(
  volumeGiB: number,
  brokers: number,
  topics: Pick<TopicSettings, "partitions" | "replicationFactor">,
): number {
  const replicasPerBroker =
    Math.ceil((topics.partitions * topics.replicationFactor) / brokers) +
    Math.ceil((1 * topics.replicationFactor) / brokers);
  const budget = (volumeGiB * 1024 ** 3 * RETAINED_SHARE_OF_VOLUME) / replicasPerBroker - LOG_SEGMENT_BYTES;
  const mib = 1024 ** 2;
  const bytes = Math.floor(budget / mib) * mib;
  if (bytes < LOG_SEGMENT_BYTES) {
    throw new InfraConfigError(
      `${volumeGiB} GiB per broker leaves ${Math.max(0, Math.floor(bytes / mib))} MiB per partition replica, less than one ${LOG_SEGMENT_BYTES / mib} MiB segment: raise volumeGiB or lower the partitions`,
    );
  }
  return bytes;
}

export interface KafkaClusterProps {
  vpc: ec2.IVpc;
  /** @default "kafka.t3.small" (its IAM connection rate is low: use kafka.m7g.large for real load) */
  instanceType?: string;
  /** A multiple of the VPC's AZs (one broker per AZ by default). @default 3 */
  brokers?: number;
  /**
   * EBS storage per broker at creation. Storage auto scaling may grow it later; CloudFormation keeps
   * this value, so raise it only above the size the cluster has reached (MSK never shrinks a volume).
   * @default 100
   */
  volumeGiB?: number;
  /** The most storage auto scaling may grow each broker to. @default 4 × volumeGiB */
  maxVolumeGiB?: number;
  /** Broker storage utilization (%) storage auto scaling keeps below (MSK allows 10-80). @default 70 */
  storageTargetPercent?: number;
  /** Time retention of every topic; `log.retention.bytes` may delete sooner. @default 168 (7 days) */
  retentionHours?: number;
  /** Must be served by MSK and match the broker the tests run. @default "3.9.x" */
  kafkaVersion?: string;
  /** @default messages "chat.messages", dead letters "chat.messages.dlq", 6 partitions, RF min(brokers, 3) */
  topics?: Partial<TopicSettings>;
}

/** The MSK cluster, its bootstrap brokers and its topics. */
export class KafkaCluster extends Construct implements KafkaEndpoint {
  readonly cluster: msk.CfnCluster;
  readonly clusterName: string;
  readonly securityGroup: ec2.SecurityGroup;
  readonly bootstrapBrokers: string;
  readonly topics: TopicSettings;
  readonly brokerCount: number;
  /** `log.retention.bytes` of every topic (per partition). */
  readonly retentionBytes: number;
  readonly configuration: msk.CfnConfiguration;
  readonly storageScaling: appscaling.CfnScalableTarget;

  constructor(scope: Construct, id: string, props: KafkaClusterProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.brokerCount = props.brokers ?? 3;
    this.topics = {
      messagesTopic: DEFAULT_NAMES.messagesTopic,
      deadLetterTopic: DEFAULT_NAMES.deadLetterTopic,
      partitions: 6,
      replicationFactor: Math.min(this.brokerCount, 3),
      ...props.topics,
    };
    this.clusterName = `${stack.stackName}-kafka`
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 64);
    const clientSubnets = props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds;
    if (this.brokerCount % clientSubnets.length !== 0) {
      throw new InfraConfigError(
        `MSK needs a broker count that is a multiple of its ${clientSubnets.length} subnets (one per AZ), not ${this.brokerCount}`,
      );
    }
    // core/adapters/kafka.ts ensureTopics creates the topics with this replication factor and
    // min.insync.replicas = min(2, RF); the broker defaults below say the same.
    const minInSyncReplicas = Math.min(2, this.topics.replicationFactor);
    if (this.topics.replicationFactor > this.brokerCount) {
      throw new InfraConfigError(
        `replication factor ${this.topics.replicationFactor} needs at least as many brokers, not ${this.brokerCount}`,
      );
    }
    const volumeGiB = props.volumeGiB ?? 100;
    this.retentionBytes = retentionBytesPerPartition(volumeGiB, this.brokerCount, this.topics);
    this.configuration = new msk.CfnConfiguration(this, "Configuration", {
      name: `${this.clusterName}-config`,
      description: `Chat backend brokers: RF ${this.topics.replicationFactor}, min ISR ${minInSyncReplicas}, retention by time and by bytes, no auto-created topics`,
      serverProperties: [
        "auto.create.topics.enable=false",
        `default.replication.factor=${this.topics.replicationFactor}`,
        `min.insync.replicas=${minInSyncReplicas}`,
        `num.partitions=${this.topics.partitions}`,
        "unclean.leader.election.enable=false",
        `log.retention.hours=${props.retentionHours ?? 168}`,
        `log.retention.bytes=${this.retentionBytes}`,
        `log.segment.bytes=${LOG_SEGMENT_BYTES}`,
      ].join("\n"),
    });
    this.securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "MSK brokers: reachable only from the chat functions and workers",
      allowAllOutbound: false,
    });
    const brokerLogs = new logs.LogGroup(this, "BrokerLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.cluster = new msk.CfnCluster(this, "Cluster", {
      clusterName: this.clusterName,
      kafkaVersion: props.kafkaVersion ?? "3.9.x",
      numberOfBrokerNodes: this.brokerCount,
      brokerNodeGroupInfo: {
        instanceType: props.instanceType ?? "kafka.t3.small",
        clientSubnets,
        securityGroups: [this.securityGroup.securityGroupId],
        storageInfo: { ebsStorageInfo: { volumeSize: volumeGiB } },
      },
      configurationInfo: {
        arn: this.configuration.attrArn,
        revision: this.configuration.attrLatestRevisionRevision,
      },
      clientAuthentication: { sasl: { iam: { enabled: true } }, unauthenticated: { enabled: false } },
      encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
      loggingInfo: { brokerLogs: { cloudWatchLogs: { enabled: true, logGroup: brokerLogs.logGroupName } } },
      // Per-topic, per-broker metrics: the dead-letter alarm counts records coming into its topic.
      enhancedMonitoring: "PER_TOPIC_PER_BROKER",
    });

    // Storage auto scaling (scale-out only; MSK allows one step per 6 hours, each the larger of
    // 10 GiB and 10%). No role: Application Auto Scaling uses its service-linked role for MSK.
    const maxVolumeGiB = props.maxVolumeGiB ?? volumeGiB * 4;
    if (maxVolumeGiB < volumeGiB) throw new InfraConfigError("maxVolumeGiB must not be below volumeGiB");
    this.storageScaling = new appscaling.CfnScalableTarget(this, "StorageScaling", {
      serviceNamespace: "kafka",
      scalableDimension: "kafka:broker-storage:VolumeSize",
      resourceId: this.cluster.attrArn,
      minCapacity: volumeGiB,
      maxCapacity: maxVolumeGiB,
    });
    new appscaling.CfnScalingPolicy(this, "StorageScalingPolicy", {
      policyName: `${this.clusterName}-storage`,
      policyType: "TargetTrackingScaling",
      scalingTargetId: this.storageScaling.ref,
      targetTrackingScalingPolicyConfiguration: {
        predefinedMetricSpecification: { predefinedMetricType: "KafkaBrokerStorageUtilization" },
        targetValue: props.storageTargetPercent ?? 70,
        disableScaleIn: true,
      },
    });

    // CloudFormation does not return an MSK cluster's bootstrap brokers; ask the Kafka API.
    const brokers = new cr.AwsCustomResource(this, "BootstrapBrokers", {
      onUpdate: {
        service: "Kafka",
        action: "getBootstrapBrokers",
        parameters: { ClusterArn: this.cluster.attrArn },
        physicalResourceId: cr.PhysicalResourceId.of(this.cluster.attrArn),
        outputPaths: ["BootstrapBrokerStringSaslIam"],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: [this.cluster.attrArn] }),
      installLatestAwsSdk: false,
    });
    this.bootstrapBrokers = brokers.getResponseField("BootstrapBrokerStringSaslIam");
    // AwsCustomResource's function is a stack-wide singleton, outside this construct's scope.
    accept(
      stack,
      managedPolicyFinding("AWSLambdaBasicExecutionRole"),
      "The function of the CDK AwsCustomResource that reads the bootstrap brokers: the AWS managed policy grants only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents",
    );
  }

  /** KafkaDataLogsDiskUsed (% of the data volume) of the fullest broker. */
  metricDiskUsed(): cloudwatch.IMetric {
    const brokerIds = Array.from({ length: this.brokerCount }, (_, i) => i + 1);
    return new cloudwatch.MathExpression({
      expression: `MAX([${brokerIds.map((b) => `d${b}`).join(", ")}])`,
      usingMetrics: Object.fromEntries(
        brokerIds.map((b) => [
          `d${b}`,
          new cloudwatch.Metric({
            namespace: "AWS/Kafka",
            metricName: "KafkaDataLogsDiskUsed",
            dimensionsMap: { "Cluster Name": this.clusterName, "Broker ID": String(b) },
            statistic: "Maximum",
          }),
        ]),
      ),
      period: Duration.minutes(5),
      label: "broker data disk used (%), fullest broker",
    });
  }

  private arn(resource: "topic" | "group", name: string): string {
    const clusterUuid = Fn.select(2, Fn.split("/", this.cluster.attrArn));
    return Stack.of(this).formatArn({
      service: "kafka",
      resource,
      resourceName: `${this.clusterName}/${clusterUuid}/${name}`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  private connectBase(consumer: Consumer): void {
    allowIngress(consumer, this.securityGroup, ec2.Port.tcp(MSK_IAM_PORT), "Kafka");
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
        resources: [this.cluster.attrArn],
      }),
    );
    consumer.addEnvironment("KAFKA_BROKERS", this.bootstrapBrokers);
    consumer.addEnvironment("KAFKA_AUTH", "aws-iam");
    consumer.addEnvironment("KAFKA_SSL", "true");
    setTopicEnvironment(consumer, this.topics);
  }

  private allowWrite(consumer: Consumer, topic: string): void {
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
        resources: [this.arn("topic", topic)],
      }),
    );
    // The producers are idempotent (InitProducerId), which is authorized on the cluster.
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:WriteDataIdempotently"],
        resources: [this.cluster.attrArn],
      }),
    );
  }

  connectProducer(consumer: Consumer): void {
    this.connectBase(consumer);
    this.allowWrite(consumer, this.topics.messagesTopic);
  }

  connectConsumer(consumer: Consumer, groupId: string): void {
    this.connectBase(consumer);
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
        resources: [this.arn("topic", this.topics.messagesTopic)],
      }),
    );
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
        resources: [this.arn("group", groupId)],
      }),
    );
    this.allowWrite(consumer, this.topics.deadLetterTopic);
    consumer.addEnvironment("PERSISTER_GROUP_ID", groupId);
  }

  connectAdmin(consumer: Consumer): void {
    this.connectBase(consumer);
    consumer.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic"],
        resources: [this.topics.messagesTopic, this.topics.deadLetterTopic].map((t) => this.arn("topic", t)),
      }),
    );
  }
}
