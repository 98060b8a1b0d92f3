/**
 * The VPC: public subnets hold only the NAT gateway(s); functions and tasks run in private subnets
 * with egress; the data stores sit in isolated subnets with no route to or from the internet.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

export interface NetworkProps {
  /**
   * NAT gateways. One by default (cost); set one per AZ for a NAT that survives an AZ outage. Lambdas
   * and tasks reach the API Gateway management API through NAT: an execute-api interface endpoint
   * with private DNS answers ForbiddenException for WebSocket callbacks.
   * @default 1
   */
  natGateways?: number;
  /** @default 2 */
  maxAzs?: number;
}

/** The VPC and its gateway endpoints. */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: props.maxAzs ?? 2,
      natGateways: props.natGateways ?? 1,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // The default security group allows all traffic between its members; nothing should use it.
      restrictDefaultSecurityGroup: true,
    });
    const flowLogs = new logs.LogGroup(this, "FlowLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog("FlowLog", { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) });
    // DynamoDB through a gateway endpoint: free, and keeps the busiest traffic off the NAT.
    this.vpc.addGatewayEndpoint("DynamoDb", { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
  }
}
