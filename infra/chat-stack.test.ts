/**
 * The AWS profile of the CDK app, synthesized once, offline: what must hold for the deployed system
 * to be the one the protocol and design describe, and cdk-nag's verdict.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { App, Stack } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import { AUTHORIZER, ROUTES, WORKERS } from "../functions/routes";
import { FUNCTION_NEEDS } from "./constructs/chat-api";
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

  test("only the fan-out worker may manage connections, on this API's stage only", () => {
    const apiId = idsOfType(s.resources, "AWS::ApiGatewayV2::Api")[0] as string;
    const holders: string[] = [];
    for (const [id, r] of Object.entries(s.resources)) {
      if (r.Type !== "AWS::IAM::Policy") continue;
      for (const st of (
        props(r).PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }
      ).Statement) {
        if (!actionsOf(st).some((a) => a.startsWith("execute-api:"))) continue;
        holders.push(id);
        expect(actionsOf(st)).toEqual(["execute-api:ManageConnections"]);
        const arns = (Array.isArray(st.Resource) ? st.Resource : [st.Resource]).map((a) => JSON.stringify(a));
        expect(arns).toHaveLength(2);
        for (const arn of arns) {
          expect(arn).toContain(`{"Ref":"${apiId}"}`);
          expect(arn).toMatch(/\/prod\/(POST|DELETE)\/@connections\/\*"/);
        }
      }
    }
    expect(holders).toHaveLength(1);
    expect(holders[0]).toMatch(/^WorkersFanoutTask/);
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
      expect.arrayContaining(["FanoutErrors", "PersisterErrors", "SumOffsetLag", "MessagesInPerSec"]),
    );
    for (const a of alarms) expect(a.AlarmActions).toHaveLength(1);
    s.template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
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

  test("the same check reports a finding nobody acknowledged", () => {
    const stack = new Stack(new App(), "Probe");
    new s3.Bucket(stack, "Bucket");
    const report = new AwsSolutionsChecks(undefined).validateScope(stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual(
      expect.arrayContaining(["AwsSolutions-S1", "AwsSolutions-S10"]),
    );
  });
});
