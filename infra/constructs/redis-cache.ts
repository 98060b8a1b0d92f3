/**
 * ElastiCache for Redis (OSS engine): a replication group in the isolated subnets, TLS in transit,
 * encrypted at rest, AUTH token generated into Secrets Manager, Multi-AZ with automatic failover.
 *
 * Redis holds state the system needs, not a cache it can lose: a dedupe record answers a retried
 * send, the pending log lists sends Kafka has not confirmed, the fan-out streams carry deliveries.
 * So its parameter group sets `maxmemory-policy noeviction` (a full Redis refuses writes, which the
 * handlers answer as a dependency error, rather than silently dropping such keys), and ChatMonitoring
 * alarms on DatabaseMemoryUsagePercentage well before that point.
 *
 * Node size, from a stated load (the default): 10,000 active rooms, 200 messages a second, message
 * JSON about 500 bytes. What each message costs in Redis, from core/adapters/redis.ts:
 *   (a) recent history: RECENT_HISTORY_SIZE (200) newest per room, a sorted-set entry of the message
 *       JSON: 10,000 rooms × 200 × 500 B = 1.0 GB of data, about 1.2 GB with per-entry overhead;
 *   (b) fan-out stream entry: trimmed once delivered (the fan-out's watermark), so seconds of
 *       traffic while the workers keep up; the bound is the cap of each of FANOUT_SHARDS (16)
 *       streams, about 100,000 entries (XADD MAXLEN ~): at most 16 × 100,000 × ~520 B ≈ 0.85 GB;
 *   (c) dedupe record (message JSON + state) for its TTL after Kafka has the message: at 10-15
 *       minutes, 200/s × 900 s × ~650 B ≈ 120 MB (linear in the TTL: at 24 hours it would be ~11 GB);
 *   (d) pending-log entry until Kafka confirms (milliseconds; a 10-minute Kafka outage at 200/s:
 *       120,000 × ~120 B ≈ 15 MB);
 *   plus per-room seq, membership version and member sets, and rate-limit buckets: ~20 MB.
 * Total ≈ 2.2 GB. ElastiCache reserves 25% of a node's memory (reserved-memory-percent), and
 * DatabaseMemoryUsagePercentage is used memory over what is left. cache.m7g.large (6.38 GiB, ~4.8 GiB
 * usable) holds it at ~43%, below the 80% alarm with room for twice the rooms; cache.t4g.medium
 * (3.09 GiB, ~2.3 GiB usable) would start near 90%, and burstable CPU credits do not suit a store
 * every send runs a script on.
 */
import { Fn } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { accept } from "../nag";
import { allowIngress, type Consumer } from "./consumer";
import type { RedisEndpoint } from "./endpoints";

export interface RedisCacheProps {
  vpc: ec2.IVpc;
  /** Sized from the load stated at the top of this file. @default "cache.m7g.large" */
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
  readonly parameterGroup: elasticache.CfnParameterGroup;
  readonly nodes: number;
  private readonly port: number;

  constructor(scope: Construct, id: string, props: RedisCacheProps) {
    super(scope, id);
    this.port = props.port ?? 6380;
    const nodes = props.nodes ?? 2;
    this.nodes = nodes;
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
    // The family's defaults (reserved-memory-percent 25 among them), with no eviction: a full Redis
    // refuses writes instead of dropping dedupe records, pending-log entries or stream entries.
    this.parameterGroup = new elasticache.CfnParameterGroup(this, "Parameters", {
      cacheParameterGroupFamily: "redis7",
      description: "Chat backend Redis: never evict (maxmemory-policy noeviction)",
      properties: { "maxmemory-policy": "noeviction" },
    });
    this.replicationGroup = new elasticache.CfnReplicationGroup(this, "ReplicationGroup", {
      replicationGroupDescription: "Chat backend: dedupe keys, per-room seq, recent history, fan-out pub/sub",
      engine: "redis",
      engineVersion: "7.1",
      cacheNodeType: props.nodeType ?? "cache.m7g.large",
      cacheParameterGroupName: this.parameterGroup.ref,
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

  /**
   * DatabaseMemoryUsagePercentage of the fullest node (used memory over maxmemory, which excludes
   * the reserved share). A replication group's nodes are its member clusters `<group id>-001`, `-002`, ….
   */
  metricMemoryUsage(): cloudwatch.IMetric {
    const ids = Array.from({ length: this.nodes }, (_, i) => i + 1);
    return new cloudwatch.MathExpression({
      expression: `MAX([${ids.map((i) => `n${i}`).join(", ")}])`,
      usingMetrics: Object.fromEntries(
        ids.map((i) => [
          `n${i}`,
          new cloudwatch.Metric({
            namespace: "AWS/ElastiCache",
            metricName: "DatabaseMemoryUsagePercentage",
            dimensionsMap: {
              CacheClusterId: Fn.join("", [this.replicationGroup.ref, `-${String(i).padStart(3, "0")}`]),
            },
            statistic: "Maximum",
          }),
        ]),
      ),
      label: "Redis memory used (% of maxmemory), fullest node",
    });
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
