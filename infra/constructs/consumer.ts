/**
 * What a data store needs from whatever uses it (a Lambda function or an ECS container) so that one
 * `connect` call grants access, opens the network path and sets the environment variables together:
 * names and permissions cannot drift apart.
 */
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { InfraConfigError } from "../errors";

/**
 * The Amazon CA bundle the Lambda Node.js runtimes (20 and later) ship but do not load unless
 * NODE_EXTRA_CA_CERTS names it; it holds the Amazon RDS certificate authorities.
 */
export const LAMBDA_CA_BUNDLE = "/var/runtime/ca-cert.pem";
/** The Amazon RDS global CA bundle worker/Dockerfile fetches into the worker image at build time. */
export const WORKER_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem";

/** A compute resource that reads configuration from its environment. */
export interface Consumer extends iam.IGrantable {
  /** A short name, for error messages. */
  readonly name: string;
  /** A PEM file in the consumer's runtime that holds the Amazon RDS CAs (for NODE_EXTRA_CA_CERTS). */
  readonly caBundle: string;
  /** Sets one environment variable. */
  addEnvironment(key: string, value: string): void;
  /** The consumer's security groups, when it runs in the VPC; absent for functions outside it. */
  readonly connections?: ec2.Connections;
}

/** A Lambda function as a consumer. */
export function functionConsumer(name: string, fn: lambda.Function): Consumer {
  return {
    name,
    caBundle: LAMBDA_CA_BUNDLE,
    grantPrincipal: fn.grantPrincipal,
    addEnvironment: (key, value) => {
      fn.addEnvironment(key, value);
    },
    connections: fn.isBoundToVpc ? fn.connections : undefined,
  };
}

/** An ECS container (of a Fargate service) as a consumer: its task role gets the grants. */
export function containerConsumer(
  name: string,
  taskDefinition: ecs.TaskDefinition,
  container: ecs.ContainerDefinition,
  connections: ec2.Connections,
): Consumer {
  return {
    name,
    caBundle: WORKER_CA_BUNDLE,
    grantPrincipal: taskDefinition.taskRole,
    addEnvironment: (key, value) => {
      container.addEnvironment(key, value);
    },
    connections,
  };
}

/**
 * Opens `port` on the store's security group to the consumer's security groups. Ingress only: the
 * consumers' groups already allow all outbound traffic (they reach AWS APIs through NAT).
 * Throws when the consumer runs outside the VPC.
 */
export function allowIngress(
  consumer: Consumer,
  store: ec2.ISecurityGroup,
  port: ec2.Port,
  storeName: string,
): void {
  if (!consumer.connections) {
    throw new InfraConfigError(`${consumer.name} must run in the VPC to reach ${storeName}`);
  }
  for (const group of consumer.connections.securityGroups) {
    store.addIngressRule(group, port, `${consumer.name} to ${storeName}`);
  }
}
