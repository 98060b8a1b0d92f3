/**
 * The AWS profile of the CDK app, synthesized once, offline: what must hold for the deployed system
 * to be the one the protocol and design describe, and cdk-nag's verdict.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { parse as parseConnectionString } from "pg-connection-string";
import { AUTHORIZER, ROUTES, WORKERS } from "../functions/routes";
import { FUNCTION_NEEDS } from "./constructs/chat-api";
import { LAMBDA_CA_BUNDLE, WORKER_CA_BUNDLE } from "./constructs/consumer";
import { HANDLER_TIMEOUT } from "./constructs/infra-function";
import {
  LOG_SEGMENT_BYTES,
  RETAINED_SHARE_OF_VOLUME,
  retentionBytesPerPartition,
} from "./constructs/kafka-cluster";
import { WORKER_DOCKERFILE } from "./constructs/worker-services";
import { REPO_ROOT } from "./paths";
import { idsOfType, referencedIds, type Synthesized, synthesize } from "./synth-helpers";

let s: Synthesized;

// A full synth bundles eleven functions with esbuild; on a busy two-core machine it has taken over
// two minutes, so the hook gets more than the project's default test timeout.
beforeAll(() => {
  s = synthesize("aws");
}, 400_000);

type Resource = Synthesized["resources"][string];
const props = (r: Resource | undefined): Record<string, unknown> => r?.Properties ?? {};
const env = (r: Resource | undefined): Record<string, unknown> =>
  ((props(r).Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}) as Record<
    string,
    unknown
  >;

/** The Lambda function of a handler file, found by the description the app gives it. */
function functionOf(file: string): [string, Resource] {
  const found = Object.entries(s.resources).filter(
    ([, r]) =>
      r.Type === "AWS::Lambda::Function" &&
      props(r).Description === `Chat WebSocket handler: functions/${file}.ts`,
  );
  expect(found).toHaveLength(1);
  return found[0] as [string, Resource];
}

const actionsOf = (st: { Action: string | string[] }): string[] =>
  Array.isArray(st.Action) ? st.Action : [st.Action];

describe("WebSocket API", () => {
  test("the limits are set per user on every handler they apply to (PROTOCOL.md v1.1's defaults)", () => {
    expect(env(functionOf("send-message")[1])).toMatchObject({
      RATE_LIMIT_SCOPE: "user",
      RATE_LIMIT_PER_SECOND: "20",
      RATE_LIMIT_BURST: "40",
    });
    for (const file of ["join-room", "get-history", "create-room", "invite", "open-direct", "mark-read"]) {
      expect(env(functionOf(file)[1])).toMatchObject({
        RATE_LIMIT_SCOPE: "user",
        ACTION_RATE_LIMIT_PER_SECOND: "10",
        ACTION_RATE_LIMIT_BURST: "30",
        ROOM_MAX_MEMBERS: "5000",
      });
    }
    expect(env(functionOf("connect")[1])).toMatchObject({ MAX_CONNECTIONS_PER_USER: "10" });
  });

  test("every route of the route table maps to the function of its handler file", () => {
    const routes = idsOfType(s.resources, "AWS::ApiGatewayV2::Route").map(
      (id) => s.resources[id] as Resource,
    );
    expect(routes.map((r) => props(r).RouteKey).sort()).toEqual(ROUTES.map((r) => r.routeKey).sort());
    for (const route of ROUTES) {
      const resource = routes.find((r) => props(r).RouteKey === route.routeKey);
      const [integrationId] = referencedIds(props(resource).Target);
      const integration = s.resources[integrationId ?? ""];
      expect(integration?.Type).toBe("AWS::ApiGatewayV2::Integration");
      const [fnId] = functionOf(route.file);
      expect(referencedIds(props(integration).IntegrationUri)).toContain(fnId);
    }
  });

  test("the route selection expression is the protocol's", () => {
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "WEBSOCKET",
      RouteSelectionExpression: "$request.body.action",
    });
  });

  test("routes that answer the sender have a route response, the others none", () => {
    const responses = idsOfType(s.resources, "AWS::ApiGatewayV2::RouteResponse").map(
      (id) => s.resources[id] as Resource,
    );
    const routeIdsWithResponse = new Set(responses.flatMap((r) => referencedIds(props(r).RouteId)));
    for (const route of ROUTES) {
      const [routeId] = Object.entries(s.resources).find(
        ([, r]) => r.Type === "AWS::ApiGatewayV2::Route" && props(r).RouteKey === route.routeKey,
      ) ?? [""];
      expect([route.routeKey, routeIdsWithResponse.has(routeId)]).toEqual([
        route.routeKey,
        route.routeResponse,
      ]);
    }
  });

  test("the JWT authorizer guards $connect, and only $connect", () => {
    const [authorizerId, authorizer] = Object.entries(s.resources).find(
      ([, r]) => r.Type === "AWS::ApiGatewayV2::Authorizer",
    ) as [string, Resource];
    expect(props(authorizer).AuthorizerType).toBe("REQUEST");
    const [authFnId] = functionOf(AUTHORIZER.file);
    expect(referencedIds(props(authorizer).AuthorizerUri)).toContain(authFnId);
    // No identity source: the token may come as ?token= or as a header.
    expect(props(authorizer).IdentitySource ?? []).toEqual([]);
    for (const id of idsOfType(s.resources, "AWS::ApiGatewayV2::Route")) {
      const route = props(s.resources[id]);
      if (route.RouteKey === "$connect") {
        expect(route.AuthorizationType).toBe("CUSTOM");
        expect(referencedIds(route.AuthorizerId)).toEqual([authorizerId]);
      } else {
        expect(route.AuthorizationType ?? "NONE").toBe("NONE");
      }
    }
  });

  test("the stage logs access and throttles", () => {
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "prod",
      AutoDeploy: true,
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
      DefaultRouteSettings: Match.objectLike({ ThrottlingRateLimit: Match.anyValue() }),
    });
  });
});

describe("Lambda functions", () => {
  test("every handler file has its needs declared", () => {
    for (const file of [AUTHORIZER.file, ...ROUTES.map((r) => r.file)])
      expect(FUNCTION_NEEDS[file]).toBeDefined();
  });

  test("all run the newest Node.js runtime on arm64 with source maps and a log group", () => {
    const fns = idsOfType(s.resources, "AWS::Lambda::Function").map((id) => s.resources[id] as Resource);
    const ours = fns.filter((r) => String(props(r).Description ?? "").startsWith("Chat WebSocket handler"));
    expect(ours).toHaveLength(new Set([AUTHORIZER.file, ...ROUTES.map((r) => r.file)]).size);
    for (const fn of ours) {
      expect(props(fn).Runtime).toBe("nodejs24.x");
      expect(props(fn).Architectures).toEqual(["arm64"]);
      expect(env(fn).NODE_OPTIONS).toBe("--enable-source-maps");
      expect(props(fn).LoggingConfig).toMatchObject({ LogGroup: expect.anything() });
    }
  });

  test("a grant comes with its variable: functions get exactly the settings their needs imply", () => {
    const [, authorizer] = functionOf("authorizer");
    expect(Object.keys(env(authorizer))).toContain("JWT_SECRET_ARN");
    expect(Object.keys(env(authorizer))).not.toContain("TABLE_NAME");
    const [, send] = functionOf("send-message");
    expect(env(send)).toMatchObject({
      KAFKA_AUTH: "aws-iam",
      KAFKA_SSL: "true",
      MESSAGES_TOPIC: "chat.messages",
    });
    // sendMessage seeds a room's seq from PostgreSQL when Redis does not know the room.
    expect(Object.keys(env(send))).toEqual(
      expect.arrayContaining([
        "TABLE_NAME",
        "REDIS_URL",
        "REDIS_AUTH_SECRET_ARN",
        "KAFKA_BROKERS",
        "DATABASE_SECRET_ARN",
      ]),
    );
    // Handlers and the fan-out worker must agree on the shard count.
    expect(env(send).FANOUT_SHARDS).toBe("16");
    const [, history] = functionOf("get-history");
    expect(Object.keys(env(history))).toContain("DATABASE_SECRET_ARN");
    expect(Object.keys(env(history))).not.toContain("KAFKA_BROKERS");
    const [, ping] = functionOf("ping");
    expect(props(ping).VpcConfig).toBeUndefined();
    expect(Object.keys(env(ping))).not.toContain("TABLE_NAME");
    expect(props(history).VpcConfig).toBeDefined();
  });

  test("every handler has the one timeout infra sets (HANDLER_TIMEOUT, 10 s)", () => {
    expect(HANDLER_TIMEOUT.toSeconds()).toBe(10);
    for (const file of new Set([AUTHORIZER.file, ...ROUTES.map((r) => r.file)])) {
      const [, fn] = functionOf(file);
      expect([file, props(fn).Timeout]).toEqual([file, HANDLER_TIMEOUT.toSeconds()]);
    }
  });

  test("every function that reaches PostgreSQL trusts the RDS CAs (NODE_EXTRA_CA_CERTS), and only those", () => {
    const fns = idsOfType(s.resources, "AWS::Lambda::Function").map((id) => s.resources[id] as Resource);
    const dbUsers = fns.filter((fn) => "DATABASE_SECRET_ARN" in env(fn));
    // join-room, send-message, get-history and the migrator
    expect(dbUsers.length).toBe(
      Object.values(FUNCTION_NEEDS).filter((n) => n.includes("database")).length + 1,
    );
    for (const fn of fns) {
      const expected = "DATABASE_SECRET_ARN" in env(fn) ? LAMBDA_CA_BUNDLE : undefined;
      expect([props(fn).Description, env(fn).NODE_EXTRA_CA_CERTS]).toEqual([props(fn).Description, expected]);
    }
  });

  test("the database URL verifies the server: sslmode=verify-full, which node-postgres checks against Node's CA store", () => {
    const source = readFileSync(path.join(REPO_ROOT, "core", "secrets.ts"), "utf8");
    expect(source).toContain("?sslmode=verify-full`");
    expect(source).not.toContain("no-verify");
    const ssl = parseConnectionString("postgresql://u:p@db.example:5433/chat?sslmode=verify-full").ssl;
    expect(ssl).toEqual({});
    expect(ssl).not.toHaveProperty("rejectUnauthorized");
  });

  test("only the fan-out worker and the resume handler may manage connections, on this API's stage only", () => {
    const apiId = idsOfType(s.resources, "AWS::ApiGatewayV2::Api")[0] as string;
    const methods = new Map<string, string[]>();
    for (const [id, r] of Object.entries(s.resources)) {
      if (r.Type !== "AWS::IAM::Policy") continue;
      for (const st of (
        props(r).PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }
      ).Statement) {
        if (!actionsOf(st).some((a) => a.startsWith("execute-api:"))) continue;
        expect(actionsOf(st)).toEqual(["execute-api:ManageConnections"]);
        const arns = (Array.isArray(st.Resource) ? st.Resource : [st.Resource]).map((a) => JSON.stringify(a));
        for (const arn of arns) {
          expect(arn).toContain(`{"Ref":"${apiId}"}`);
          const method = /\/prod\/([A-Z]+)\/@connections\/\*"/.exec(arn)?.[1];
          expect(method).toBeDefined();
          methods.set(id, [...(methods.get(id) ?? []), method as string].sort());
        }
      }
    }
    const holders = [...methods.keys()].sort();
    expect(holders).toHaveLength(2);
    // resume posts each room's frames to its caller; nothing else.
    const resume = holders.find((id) => id.startsWith("ChatResume")) as string;
    expect(methods.get(resume)).toEqual(["POST"]);
    // The fan-out posts, and its presence upkeep asks whether an idle connection still lives (GET).
    const fanout = holders.find((id) => id.startsWith("WorkersFanoutTask")) as string;
    expect(methods.get(fanout)).toEqual(expect.arrayContaining(["GET", "POST"]));
  });
});

describe("data stores", () => {
  test("the table: keys, gsi1, TTL on expiresAt, point-in-time recovery, encryption, on demand", () => {
    s.template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
      GlobalSecondaryIndexes: [Match.objectLike({ IndexName: "gsi1" })],
    });
  });

  test("every data store is encrypted, in transit where it has a network protocol", () => {
    s.template.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
      TransitEncryptionEnabled: true,
      AtRestEncryptionEnabled: true,
      AuthToken: Match.anyValue(),
    });
    s.template.hasResourceProperties("AWS::MSK::Cluster", {
      EncryptionInfo: { EncryptionInTransit: { ClientBroker: "TLS", InCluster: true } },
      ClientAuthentication: { Sasl: { Iam: { Enabled: true } }, Unauthenticated: { Enabled: false } },
    });
    s.template.hasResourceProperties("AWS::RDS::DBInstance", {
      StorageEncrypted: true,
      PubliclyAccessible: false,
      BackupRetentionPeriod: 7,
    });
    s.template.hasResourceProperties("AWS::RDS::DBParameterGroup", { Parameters: { "rds.force_ssl": "1" } });
  });

  test("the VPC spans three AZs, resolved at deploy time (synth makes no look-ups)", () => {
    const azs = new Set(
      Object.values(s.resources)
        .filter((r) => r.Type === "AWS::EC2::Subnet")
        .map((r) => JSON.stringify(props(r).AvailabilityZone)),
    );
    expect([...azs].sort()).toEqual(
      [0, 1, 2].map((i) => JSON.stringify({ "Fn::Select": [i, { "Fn::GetAZs": "" }] })).sort(),
    );
  });

  test("MSK: three brokers, one per AZ, RF 3 and min ISR 2, so one broker down does not stop sends", () => {
    const [, cluster] = Object.entries(s.resources).find(([, r]) => r.Type === "AWS::MSK::Cluster") as [
      string,
      Resource,
    ];
    expect(props(cluster).NumberOfBrokerNodes).toBe(3);
    const subnets = referencedIds(
      (props(cluster).BrokerNodeGroupInfo as { ClientSubnets: unknown }).ClientSubnets,
    );
    expect(new Set(subnets.map((id) => JSON.stringify(props(s.resources[id]).AvailabilityZone))).size).toBe(
      3,
    );
    const [configId, configuration] = Object.entries(s.resources).find(
      ([, r]) => r.Type === "AWS::MSK::Configuration",
    ) as [string, Resource];
    expect(referencedIds(props(cluster).ConfigurationInfo)).toEqual([configId, configId]);
    const server = Object.fromEntries(
      String(props(configuration).ServerProperties)
        .split("\n")
        .map((line) => line.split("=") as [string, string]),
    );
    expect(server).toMatchObject({
      "auto.create.topics.enable": "false",
      "default.replication.factor": "3",
      "min.insync.replicas": "2",
      "unclean.leader.election.enable": "false",
      "log.retention.hours": "168",
      "log.segment.bytes": String(LOG_SEGMENT_BYTES),
    });
    // The deploy-time topic creator gets the same RF and partitions (ensureTopics sets min ISR 2 from RF 3).
    const topics = idsOfType(s.resources, "AWS::CloudFormation::CustomResource").find((id) =>
      id.startsWith("KafkaTopics"),
    ) as string;
    expect(props(s.resources[topics])).toMatchObject({ replicationFactor: 3, partitions: 6 });
    const [, creator] = Object.entries(s.resources).find(
      ([id, r]) => r.Type === "AWS::Lambda::Function" && id.startsWith("KafkaTopicsCreator"),
    ) as [string, Resource];
    expect(env(creator)).toMatchObject({ KAFKA_REPLICATION_FACTOR: "3", KAFKA_PARTITIONS: "6" });
  });

  test("MSK retains by bytes as well as by time, sized so the retained partitions fit the volume", () => {
    const [, configuration] = Object.entries(s.resources).find(
      ([, r]) => r.Type === "AWS::MSK::Configuration",
    ) as [string, Resource];
    const retention = Number(
      /log\.retention\.bytes=(\d+)/.exec(String(props(configuration).ServerProperties))?.[1],
    );
    const volumeGiB = (
      props(Object.values(s.resources).find((r) => r.Type === "AWS::MSK::Cluster")).BrokerNodeGroupInfo as {
        StorageInfo: { EBSStorageInfo: { VolumeSize: number } };
      }
    ).StorageInfo.EBSStorageInfo.VolumeSize;
    expect(volumeGiB).toBe(100);
    expect(retention).toBe(retentionBytesPerPartition(volumeGiB, 3, { partitions: 6, replicationFactor: 3 }));
    // Each broker holds 6 replicas of the messages topic and 1 of the dead-letter topic; each may
    // reach its limit plus one active segment.
    const replicasPerBroker = 7;
    expect(replicasPerBroker * (retention + LOG_SEGMENT_BYTES)).toBeLessThanOrEqual(
      volumeGiB * 1024 ** 3 * RETAINED_SHARE_OF_VOLUME,
    );
    expect(retention).toBeGreaterThan(LOG_SEGMENT_BYTES);
    expect(() => retentionBytesPerPartition(1, 3, { partitions: 6, replicationFactor: 3 })).toThrow(
      /volumeGiB/,
    );
  });

  test("MSK storage grows by itself: Application Auto Scaling on the broker volume, scale-out only", () => {
    const [clusterId] = Object.entries(s.resources).find(([, r]) => r.Type === "AWS::MSK::Cluster") as [
      string,
      Resource,
    ];
    const [targetId, target] = Object.entries(s.resources).find(
      ([, r]) =>
        r.Type === "AWS::ApplicationAutoScaling::ScalableTarget" &&
        props(r).ScalableDimension === "kafka:broker-storage:VolumeSize",
    ) as [string, Resource];
    expect(props(target)).toMatchObject({ ServiceNamespace: "kafka", MinCapacity: 100, MaxCapacity: 400 });
    expect(referencedIds(props(target).ResourceId)).toEqual([clusterId]);
    s.template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
      ScalingTargetId: { Ref: targetId },
      PolicyType: "TargetTrackingScaling",
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: { PredefinedMetricType: "KafkaBrokerStorageUtilization" },
        TargetValue: 70,
        DisableScaleIn: true,
      },
    });
  });

  test("Redis never evicts (its own parameter group) and has the node size the stated load needs", () => {
    const [groupId] = Object.entries(s.resources).find(
      ([, r]) => r.Type === "AWS::ElastiCache::ParameterGroup",
    ) as [string, Resource];
    s.template.hasResourceProperties("AWS::ElastiCache::ParameterGroup", {
      CacheParameterGroupFamily: "redis7",
      Properties: { "maxmemory-policy": "noeviction" },
    });
    s.template.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
      CacheParameterGroupName: { Ref: groupId },
      CacheNodeType: "cache.m7g.large",
      Engine: "redis",
      EngineVersion: Match.stringLikeRegexp("^7"),
    });
  });

  test("data stores sit in subnets without a route to the internet, open only to security groups", () => {
    const defaultRouteTables = new Set(
      Object.values(s.resources)
        .filter((r) => r.Type === "AWS::EC2::Route" && props(r).DestinationCidrBlock === "0.0.0.0/0")
        .flatMap((r) => referencedIds(props(r).RouteTableId)),
    );
    const routeTableOf = new Map(
      Object.values(s.resources)
        .filter((r) => r.Type === "AWS::EC2::SubnetRouteTableAssociation")
        .map((r) => [referencedIds(props(r).SubnetId)[0], referencedIds(props(r).RouteTableId)[0]]),
    );
    const dataSubnets = [
      ...idsOfType(s.resources, "AWS::RDS::DBSubnetGroup").flatMap((id) =>
        referencedIds(props(s.resources[id]).SubnetIds),
      ),
      ...idsOfType(s.resources, "AWS::ElastiCache::SubnetGroup").flatMap((id) =>
        referencedIds(props(s.resources[id]).SubnetIds),
      ),
      ...idsOfType(s.resources, "AWS::MSK::Cluster").flatMap((id) =>
        referencedIds(
          (props(s.resources[id]).BrokerNodeGroupInfo as { ClientSubnets: unknown }).ClientSubnets,
        ),
      ),
    ];
    expect(dataSubnets.length).toBeGreaterThanOrEqual(6);
    for (const subnet of dataSubnets) {
      const table = routeTableOf.get(subnet);
      expect(table).toBeDefined();
      expect(defaultRouteTables.has(table as string)).toBe(false);
    }
    const ingress = Object.values(s.resources).flatMap((r) => {
      if (r.Type === "AWS::EC2::SecurityGroupIngress") return [props(r)];
      if (r.Type === "AWS::EC2::SecurityGroup")
        return (props(r).SecurityGroupIngress as Record<string, unknown>[]) ?? [];
      return [];
    });
    expect(ingress.length).toBeGreaterThan(0);
    for (const rule of ingress) {
      expect(rule.CidrIp).toBeUndefined();
      expect(rule.CidrIpv6).toBeUndefined();
      expect(rule.SourceSecurityGroupId).toBeDefined();
    }
  });

  test("the migrator's bundle carries the migration files beside it", () => {
    const [, migrator] = Object.entries(s.resources).find(
      ([id, r]) => r.Type === "AWS::Lambda::Function" && id.startsWith("MigrationsMigrator"),
    ) as [string, Resource];
    const key = JSON.stringify((props(migrator).Code as { S3Key: unknown }).S3Key);
    const hash = Object.keys(s.assets.files).find((h) => key.includes(h)) as string;
    const dir = path.join(s.outdir, s.assets.files[hash]?.source.path ?? "");
    expect(existsSync(path.join(dir, "index.js"))).toBe(true);
    const migrations = readdirSync(path.join(REPO_ROOT, "prisma", "migrations"), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(migrations.length).toBeGreaterThan(0);
    for (const m of migrations)
      expect(existsSync(path.join(dir, "migrations", m, "migration.sql"))).toBe(true);
  });

  test("the topics and the schema are created by the deploy, before the persister and the stage", () => {
    const topics = idsOfType(s.resources, "AWS::CloudFormation::CustomResource").filter((id) =>
      id.startsWith("KafkaTopics"),
    );
    const migrations = idsOfType(s.resources, "AWS::CloudFormation::CustomResource").filter((id) =>
      id.startsWith("Migrations"),
    );
    expect(topics).toHaveLength(1);
    expect(migrations).toHaveLength(1);
    expect(props(s.resources[migrations[0] as string]).migrationsHash).toMatch(/^[0-9a-f]{64}$/);
    const dependsOn = (prefix: string): string[] => {
      const [, r] = Object.entries(s.resources).find(([id]) => id.startsWith(prefix)) ?? [];
      const d = r?.DependsOn ?? [];
      return Array.isArray(d) ? d : [d];
    };
    const persister = Object.keys(s.resources).find(
      (id) => id.startsWith("WorkersPersisterService") && s.resources[id]?.Type === "AWS::ECS::Service",
    ) as string;
    expect(dependsOn(persister)).toEqual(expect.arrayContaining([migrations[0], topics[0]]));
    const stage = idsOfType(s.resources, "AWS::ApiGatewayV2::Stage")[0] as string;
    expect(dependsOn(stage)).toEqual(expect.arrayContaining([migrations[0], topics[0]]));
  });
});

describe("workers", () => {
  test("both ECS services run the image built from worker/Dockerfile, each with its entry point", () => {
    const images = Object.values(s.assets.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]?.source.dockerFile).toBe(WORKER_DOCKERFILE);
    expect(images[0]?.source.platform).toBe("linux/arm64");
    // The build context is a copy of the repository root: it must hold the Dockerfile it names.
    const context = path.join(s.outdir, images[0]?.source.directory ?? "");
    expect(existsSync(path.join(context, WORKER_DOCKERFILE))).toBe(true);
    expect(existsSync(path.join(context, "node_modules"))).toBe(false);
    const tasks = idsOfType(s.resources, "AWS::ECS::TaskDefinition").map((id) => props(s.resources[id]));
    const commands = tasks
      .map((t) => (t.ContainerDefinitions as { Command: string[] }[])[0]?.Command?.[0])
      .sort();
    expect(commands).toEqual(WORKERS.map((w) => `dist/worker/${w.name}.js`).sort());
    for (const t of tasks) {
      const container = (t.ContainerDefinitions as Record<string, unknown>[])[0] ?? {};
      expect(JSON.stringify(container.Image)).toContain(Object.keys(s.assets.dockerImages)[0]);
      expect(t.RuntimePlatform).toEqual({ CpuArchitecture: "ARM64", OperatingSystemFamily: "LINUX" });
    }
  });

  test("services run in private subnets without public IPs, with scaling bounds", () => {
    s.template.resourcePropertiesCountIs(
      "AWS::ECS::Service",
      { NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: "DISABLED" }) } },
      2,
    );
    s.template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", {
      MinCapacity: 2,
      MaxCapacity: 10,
    });
    s.template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", {
      MinCapacity: 1,
      MaxCapacity: 6,
    });
  });

  test("the persister has a health check on HEALTH_PORT, the fan-out worker the management endpoint", () => {
    const containers = idsOfType(s.resources, "AWS::ECS::TaskDefinition").map(
      (id) => (props(s.resources[id]).ContainerDefinitions as Record<string, unknown>[])[0] ?? {},
    );
    const envOf = (c: Record<string, unknown>) =>
      Object.fromEntries((c.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]));
    const persister = containers.find((c) => JSON.stringify(c.Command).includes("persister")) ?? {};
    const fanout = containers.find((c) => JSON.stringify(c.Command).includes("fanout")) ?? {};
    expect(envOf(persister).HEALTH_PORT).toBe("8080");
    expect(persister.HealthCheck).toBeDefined();
    expect(envOf(persister)).toMatchObject({ PERSISTER_GROUP_ID: "chat-persister", KAFKA_AUTH: "aws-iam" });
    expect(JSON.stringify(envOf(fanout).MANAGEMENT_ENDPOINT)).toContain("execute-api");
    expect(Object.keys(envOf(fanout))).toEqual(
      expect.arrayContaining(["TABLE_NAME", "REDIS_URL", "FANOUT_SHARDS", "KAFKA_BROKERS", "MESSAGES_TOPIC"]),
    );
    expect(Object.keys(envOf(fanout))).not.toContain("DATABASE_SECRET_ARN");
    expect(envOf(fanout).FANOUT_SHARDS).toBe("16");
    // The fan-out worker has a container health check of its own too.
    expect(envOf(fanout).HEALTH_PORT).toBe("8080");
    expect(fanout.HealthCheck).toBeDefined();
    // The persister reaches PostgreSQL with sslmode=verify-full: it trusts the bundle in its image.
    expect(envOf(persister)).toMatchObject({ NODE_EXTRA_CA_CERTS: WORKER_CA_BUNDLE });
  });

  test("the worker image carries the Amazon RDS CA bundle at the path the tasks name", () => {
    const dockerfile = readFileSync(path.join(REPO_ROOT, WORKER_DOCKERFILE), "utf8");
    const runtime = dockerfile.slice(dockerfile.indexOf("AS runtime"));
    expect(runtime).toMatch(
      new RegExp(
        `^ADD --chmod=644 https://truststore\\.pki\\.rds\\.amazonaws\\.com/global/global-bundle\\.pem ${WORKER_CA_BUNDLE}$`,
        "m",
      ),
    );
    expect(runtime).toContain(`NODE_EXTRA_CA_CERTS=${WORKER_CA_BUNDLE}`);
  });
});

describe("monitoring", () => {
  test("alarms on Lambda errors, fan-out and persister failures, consumer lag and dead letters", () => {
    const alarms = idsOfType(s.resources, "AWS::CloudWatch::Alarm").map((id) => props(s.resources[id]));
    const metricNames = alarms.flatMap((a) => [
      a.MetricName,
      ...((a.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[] | undefined) ?? []).map(
        (m) => m.MetricStat?.Metric.MetricName,
      ),
    ]);
    const functions = new Set([AUTHORIZER.file, ...ROUTES.map((r) => r.file)]).size;
    expect(metricNames.filter((n) => n === "Errors")).toHaveLength(functions);
    expect(metricNames).toEqual(
      expect.arrayContaining([
        "FanoutErrors",
        "PersisterErrors",
        "SumOffsetLag",
        "MessagesInPerSec",
        "KafkaDataLogsDiskUsed",
        "DatabaseMemoryUsagePercentage",
        "FanoutEntriesTrimmedUndelivered",
      ]),
    );
    for (const a of alarms) expect(a.AlarmActions).toHaveLength(1);
    s.template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
  });

  test("the disk and memory alarms watch every broker and every Redis node, at 80%", () => {
    const alarms = idsOfType(s.resources, "AWS::CloudWatch::Alarm").map((id) => props(s.resources[id]));
    const watching = (name: string) =>
      alarms.filter((a) =>
        ((a.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[] | undefined) ?? []).some(
          (m) => m.MetricStat?.Metric.MetricName === name,
        ),
      );
    for (const [name, count] of [
      ["KafkaDataLogsDiskUsed", 3],
      ["DatabaseMemoryUsagePercentage", 2],
    ] as const) {
      const [alarm, ...others] = watching(name);
      expect(others).toHaveLength(0);
      expect(alarm?.Threshold).toBe(80);
      expect(alarm?.AlarmActions).toHaveLength(1);
      const metrics = (alarm?.Metrics as { MetricStat?: unknown; Expression?: string }[]) ?? [];
      expect(metrics.filter((m) => m.MetricStat)).toHaveLength(count);
      expect(metrics.find((m) => m.Expression)?.Expression).toMatch(/^MAX\(\[/);
    }
  });

  test("outputs: the wss URL, the management endpoint and the token command", () => {
    const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(JSON.stringify(outputs.WebSocketUrl?.Value)).toContain("wss://");
    expect(JSON.stringify(outputs.ManagementEndpoint?.Value)).toContain("https://");
    expect(JSON.stringify(outputs.TokenCommand?.Value)).toContain("npm run token:aws -- --secret-arn");
  });
});

describe("cdk-nag", () => {
  test("AwsSolutions finds nothing unacknowledged in the stack", () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(s.stack);
    expect(
      report.violations.map(
        (v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(", ")}`,
      ),
    ).toEqual([]);
  });

  test("every acknowledgement is still needed: each one covers a finding the rules raise", () => {
    // All acknowledgements in the stack: construct path and finding id, with the reason.
    const acknowledged = new Map<string, string>();
    for (const c of s.stack.node.findAll()) {
      for (const entry of c.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
          // Only ours: the CDK acknowledges some of its own validator's findings (CloudFormation-Validate::…).
          const finding = id.replace(/^annotation::/i, "");
          if (finding.startsWith("AwsSolutions-")) acknowledged.set(`${c.node.path} ${finding}`, reason);
        }
      }
    }
    expect(acknowledged.size).toBeGreaterThan(0);
    // Run the rules, noting which acknowledgement silences each finding (the nearest, as cdk-nag does).
    const used = new Set<string>();
    const checks = new AwsSolutionsChecks(undefined, { verbose: true });
    (checks as unknown as { isAcknowledged: (node: IConstruct, ruleId: string) => boolean }).isAcknowledged =
      (node, ruleId) => {
        for (let c: IConstruct | undefined = node; c; c = c.node.scope) {
          const key = `${c.node.path} ${ruleId}`;
          if (acknowledged.has(key)) {
            used.add(key);
            return true;
          }
        }
        return false;
      };
    expect(checks.validateScope(s.stack).violations).toEqual([]);
    expect([...acknowledged.keys()].filter((k) => !used.has(k))).toEqual([]);
  });

  test("acknowledgement reasons claim nothing the system does not do", () => {
    const reasons: string[] = [];
    for (const c of s.stack.node.findAll()) {
      for (const entry of c.node.metadata) {
        if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
          reasons.push(...Object.values(entry.data as Record<string, string>));
      }
    }
    const rds3 = reasons.find((r) => r.startsWith("Single-AZ"));
    expect(rds3).toMatch(/point-in-time restore/);
    expect(rds3).toMatch(/does not write them again by itself/);
    expect(rds3).not.toMatch(/replays from its committed offsets/);
    // The managed-policy reasons name what the policies grant.
    expect(
      reasons.filter((r) =>
        /only CreateLogStream\/PutLogEvents|only the ENI calls|grants only log writes/.test(r),
      ),
    ).toEqual([]);
    // The database's rotation reason names every client that reads the credentials.
    const smg4 = reasons.find((r) => r.startsWith("Every database client")) ?? "";
    for (const client of ["persister", "getHistory", "joinRoom", "sendMessage", "migrator"])
      expect(smg4).toContain(client);
  });

  test("the same check reports a finding nobody acknowledged", () => {
    const stack = new Stack(new App(), "Probe");
    new s3.Bucket(stack, "Bucket");
    const report = new AwsSolutionsChecks(undefined).validateScope(stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual(
      expect.arrayContaining(["AwsSolutions-S1", "AwsSolutions-S10"]),
    );
  });
});
