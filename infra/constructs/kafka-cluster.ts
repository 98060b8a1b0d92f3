/**
 * Amazon MSK (provisioned): brokers in the isolated subnets, IAM access control only (clients sign
 * SASL/OAUTHBEARER tokens with their role), TLS between clients and brokers and between brokers,
 * broker logs in CloudWatch. The topics are created by KafkaTopics, during the deploy.
 */
import { ArnFormat, Fn, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as msk from "aws-cdk-lib/aws-msk";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { accept, managedPolicyFinding } from "../nag";
import { allowIngress, type Consumer } from "./consumer";
import { type KafkaEndpoint, setTopicEnvironment, type TopicSettings } from "./endpoints";

/** The port MSK serves SASL/IAM over TLS on, inside the VPC. */
export const MSK_IAM_PORT = 9098;

export interface KafkaClusterProps {
  vpc: ec2.IVpc;
  /** @default "kafka.t3.small" (its IAM connection rate is low: use kafka.m7g.large for real load) */
  instanceType?: string;
  /** A multiple of the number of AZs. @default 2 */
  brokers?: number;
  /** @default 20 */
  volumeGiB?: number;
  /** Must be served by MSK and match the broker the tests run. @default "3.9.x" */
  kafkaVersion?: string;
  /** @default messages "chat.messages", dead letters "chat.messages.dlq", 6 partitions, RF 2 */
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

  constructor(scope: Construct, id: string, props: KafkaClusterProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.brokerCount = props.brokers ?? 2;
    this.topics = {
      messagesTopic: "chat.messages",
      deadLetterTopic: "chat.messages.dlq",
      partitions: 6,
      replicationFactor: Math.min(this.brokerCount, 3),
      ...props.topics,
    };
    this.clusterName = `${stack.stackName}-kafka`
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 64);
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
        clientSubnets: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
        securityGroups: [this.securityGroup.securityGroupId],
        storageInfo: { ebsStorageInfo: { volumeSize: props.volumeGiB ?? 20 } },
      },
      clientAuthentication: { sasl: { iam: { enabled: true } }, unauthenticated: { enabled: false } },
      encryptionInfo: { encryptionInTransit: { clientBroker: "TLS", inCluster: true } },
      loggingInfo: { brokerLogs: { cloudWatchLogs: { enabled: true, logGroup: brokerLogs.logGroupName } } },
      // Per-topic, per-broker metrics: the dead-letter alarm counts records coming into its topic.
      enhancedMonitoring: "PER_TOPIC_PER_BROKER",
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
      "Functions of the CDK custom resource framework: the AWS managed policy grants only log writes",
    );
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
