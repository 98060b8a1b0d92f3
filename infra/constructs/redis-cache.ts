/**
 * ElastiCache for Redis (OSS engine): a replication group in the isolated subnets, TLS in transit,
 * encrypted at rest, AUTH token generated into Secrets Manager, Multi-AZ with automatic failover.
 */
import { Fn } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { accept } from "../nag";
import { allowIngress, type Consumer } from "./consumer";
import type { RedisEndpoint } from "./endpoints";

export interface RedisCacheProps {
  vpc: ec2.IVpc;
  /** @default "cache.t4g.micro" */
  nodeType?: string;
  /** Primary plus replicas; 2 or more gives Multi-AZ failover. @default 2 */
  nodes?: number;
  /** A port other than 6379, so scanners looking for open Redis find nothing. @default 6380 */
  port?: number;
}

/** The Redis replication group and its AUTH token. */
export class RedisCache extends Construct implements RedisEndpoint {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly authToken: secretsmanager.Secret;
  readonly securityGroup: ec2.SecurityGroup;
  private readonly port: number;

  constructor(scope: Construct, id: string, props: RedisCacheProps) {
    super(scope, id);
    this.port = props.port ?? 6380;
    const nodes = props.nodes ?? 2;
    // ElastiCache AUTH tokens: 16-128 printable characters, none of / " @ and no spaces.
    this.authToken = new secretsmanager.Secret(this, "AuthToken", {
      description: "ElastiCache for Redis AUTH token of the chat backend",
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    this.securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "Redis: reachable only from the chat functions and workers",
      allowAllOutbound: false,
    });
    const subnets = new elasticache.CfnSubnetGroup(this, "Subnets", {
      description: "Isolated subnets of the chat VPC",
      subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
    });
    this.replicationGroup = new elasticache.CfnReplicationGroup(this, "ReplicationGroup", {
      replicationGroupDescription: "Chat backend: dedupe keys, per-room seq, recent history, fan-out pub/sub",
      engine: "redis",
      engineVersion: "7.1",
      cacheNodeType: props.nodeType ?? "cache.t4g.micro",
      numCacheClusters: nodes,
      automaticFailoverEnabled: nodes > 1,
      multiAzEnabled: nodes > 1,
      port: this.port,
      cacheSubnetGroupName: subnets.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      authToken: this.authToken.secretValue.unsafeUnwrap(),
      snapshotRetentionLimit: 1,
    });
    this.replicationGroup.node.addDependency(subnets);
    accept(
      this.authToken,
      "SMG4",
      "ElastiCache AUTH tokens rotate through ModifyReplicationGroup with a ROTATE/SET strategy, which Secrets Manager rotation does not drive; rotate with that call and update the secret together",
    );
  }

  connect(consumer: Consumer): void {
    allowIngress(consumer, this.securityGroup, ec2.Port.tcp(this.port), "Redis");
    this.authToken.grantRead(consumer);
    consumer.addEnvironment(
      "REDIS_URL",
      Fn.join("", ["rediss://", this.replicationGroup.attrPrimaryEndPointAddress, ":", String(this.port)]),
    );
    consumer.addEnvironment("REDIS_AUTH_SECRET_ARN", this.authToken.secretArn);
  }
}
