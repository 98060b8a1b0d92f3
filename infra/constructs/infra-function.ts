/**
 * Every Lambda function of the app, handlers and deploy-time custom resources alike, is built here so
 * they share one set of defaults: current Node.js runtime on arm64, esbuild with the project's shared
 * options (AWS SDK external, source maps), a log group with a retention, and a consumer handle
 * through which data stores grant access and set variables together.
 */
import path from "node:path";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { lambdaBundling } from "../esbuild-options";
import { accept, managedPolicyFinding } from "../nag";
import { REPO_ROOT } from "../paths";
import { type Consumer, functionConsumer } from "./consumer";

/** The runtime of every function: the newest Node.js Lambda offers. */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;

/**
 * The timeout of every WebSocket handler (and the default of every function): the one place it is
 * set. A handler's own deadlines (Redis, Kafka, PostgreSQL calls) must fit inside it; API Gateway's
 * integration timeout (29 s) is longer, so Lambda's timeout is the one a client meets.
 */
export const HANDLER_TIMEOUT = Duration.seconds(10);

export interface InfraFunctionProps {
  /** Entry file, relative to the repository root. */
  entry: string;
  description: string;
  /** Runs in the VPC's private subnets (with NAT egress) when given. */
  vpc?: ec2.IVpc;
  /** @default HANDLER_TIMEOUT (10 seconds) */
  timeout?: Duration;
  /** @default 512 */
  memorySize?: number;
  /** Reserved concurrency; unset leaves the function on the account's shared pool. */
  reservedConcurrency?: number;
  /** @default "info" */
  logLevel?: string;
  /** @default one month */
  logRetention?: logs.RetentionDays;
  /** Extra esbuild options (e.g. command hooks that copy files next to the bundle). */
  bundling?: Partial<nodejs.BundlingOptions>;
}

/** A NodejsFunction with the app's defaults. */
export class InfraFunction extends Construct {
  readonly fn: nodejs.NodejsFunction;
  readonly consumer: Consumer;

  constructor(scope: Construct, id: string, props: InfraFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.fn = new nodejs.NodejsFunction(this, "Function", {
      entry: path.join(REPO_ROOT, props.entry),
      handler: "handler",
      description: props.description,
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? HANDLER_TIMEOUT,
      reservedConcurrentExecutions: props.reservedConcurrency,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
      bundling: lambdaBundling(props.bundling),
      logGroup,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } : undefined,
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: props.logLevel ?? "info",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      },
    });
    this.consumer = functionConsumer(id, this.fn);
    accept(
      this,
      managedPolicyFinding("AWSLambdaBasicExecutionRole"),
      "AWS managed policy granting only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents; kept so Lambda's own log set-up works as AWS maintains it",
    );
    if (props.vpc) {
      accept(
        this,
        managedPolicyFinding("AWSLambdaVPCAccessExecutionRole"),
        "AWS managed policy granting the network-interface calls Lambda needs to attach the function to the VPC (create, describe, delete, assign and unassign private IPs; describe subnets) and the same three log writes as AWSLambdaBasicExecutionRole",
      );
    }
  }
}
