/**
 * Creates the messages and dead-letter topics during the deploy (MSK, or the LocalStack profile's
 * Kafka), so that nothing depends on broker-side auto-creation, which MSK leaves off. Its properties
 * carry the topic settings and brokers, so a change re-runs it; anything that uses the topics
 * depends on it.
 */
import { CustomResource, Duration } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import { Construct } from "constructs";
import { deployProvider } from "./deploy-provider";
import type { KafkaEndpoint, TopicSettings } from "./endpoints";
import { InfraFunction } from "./infra-function";

export interface KafkaTopicsProps {
  kafka: KafkaEndpoint;
  topics: TopicSettings;
  /** Absent when Kafka is reached without the VPC. */
  vpc?: ec2.IVpc;
}

/** The topic-creating custom resource. */
export class KafkaTopics extends Construct {
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: KafkaTopicsProps) {
    super(scope, id);
    const creator = new InfraFunction(this, "Creator", {
      entry: "infra/custom-resources/kafka-topics.ts",
      description: "Creates the chat Kafka topics during the deploy",
      vpc: props.vpc,
      timeout: Duration.minutes(5),
    });
    props.kafka.connectAdmin(creator.consumer);
    const provider = deployProvider(this, creator.fn);
    this.resource = new CustomResource(this, "Topics", {
      serviceToken: provider.serviceToken,
      properties: { ...props.topics },
    });
  }
}
