/**
 * The VPC: public subnets hold only the NAT gateway(s); functions and tasks run in private subnets
 * with egress; the data stores sit in isolated subnets with no route to or from the internet.
 *
 * Three AZs by default, because MSK places one broker per AZ and three brokers are what let a topic
 * with replication factor 3 and min.insync.replicas 2 keep taking writes while one broker restarts.
 * An environment-agnostic stack (no account and region at synth, as in the tests and CI) gets only two
 * AZ tokens from `Stack.availabilityZones`, so there the AZs are `Fn::Select` 0..n-1 of `Fn::GetAZs`,
 * resolved by CloudFormation at deploy time: synth stays offline, without AZ look-ups.
 */
import { Fn, RemovalPolicy, Stack, Token } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { InfraConfigError } from "../errors";

export interface NetworkProps {
  /**
   * NAT gateways. One by default (cost); set one per AZ for a NAT that survives an AZ outage. Lambdas
   * and tasks reach the API Gateway management API through NAT: an execute-api interface endpoint
   * with private DNS answers ForbiddenException for WebSocket callbacks.
   * @default 1
   */
  natGateways?: number;
  /** How many AZs; MSK's broker count must be a multiple of it. @default 3 */
  azCount?: number;
  /**
   * The AZ names to use (e.g. to avoid an AZ a service does not serve in the account). Their number
   * overrides `azCount`. @default the region's first `azCount` AZs
   */
  availabilityZones?: string[];
}

/** The VPC and its gateway endpoints. */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const azCount = props.availabilityZones?.length ?? props.azCount ?? 3;
    if (azCount < 2) throw new InfraConfigError("the VPC needs at least 2 AZs (RDS and Multi-AZ Redis do)");
    const agnostic = Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region);
    const availabilityZones =
      props.availabilityZones ??
      (agnostic ? Array.from({ length: azCount }, (_, i) => Fn.select(i, Fn.getAzs())) : undefined);
    this.vpc = new ec2.Vpc(this, "Vpc", {
      ...(availabilityZones ? { availabilityZones } : { maxAzs: azCount }),
      natGateways: props.natGateways ?? 1,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // The default security group allows all traffic between its members; nothing should use it.
      restrictDefaultSecurityGroup: true,
    });
    if (this.vpc.availabilityZones.length < azCount) {
      throw new InfraConfigError(
        `the region offers ${this.vpc.availabilityZones.length} AZs to this account, ${azCount} are needed`,
      );
    }
    const flowLogs = new logs.LogGroup(this, "FlowLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog("FlowLog", { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) });
    // DynamoDB through a gateway endpoint: free, and keeps the busiest traffic off the NAT.
    this.vpc.addGatewayEndpoint("DynamoDb", { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
  }
}
