/**
 * The LocalStack profile (`-c profile=localstack`): the same app, with the compose file's Redis,
 * Kafka and PostgreSQL in place of ElastiCache, MSK and RDS, and LocalStack's management endpoint.
 */
import { AwsSolutionsChecks } from "cdk-nag";
import { ROUTES } from "../functions/routes";
import { LOCALSTACK_SERVICES } from "./chat-stack";
import { idsOfType, type Synthesized, synthesize } from "./synth-helpers";

let s: Synthesized;

beforeAll(() => {
  // Reserved concurrency rides along here to spare a third synth. Asset bundling is skipped: the
  // bundles are the AWS profile's, which infra/chat-stack.test.ts builds and checks.
  s = synthesize("localstack", {
    reservedConcurrency: '{"send-message":25}',
    "aws:cdk:bundling-stacks": [],
  });
});

type Resource = Synthesized["resources"][string];
const props = (r: Resource | undefined): Record<string, unknown> => r?.Properties ?? {};
const lambdaEnv = (r: Resource | undefined): Record<string, unknown> =>
  (props(r).Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};

test("no ElastiCache, MSK or RDS: the compose services stand in", () => {
  for (const type of ["AWS::ElastiCache::ReplicationGroup", "AWS::MSK::Cluster", "AWS::RDS::DBInstance"]) {
    s.template.resourceCountIs(type, 0);
  }
  const fns = idsOfType(s.resources, "AWS::Lambda::Function").map((id) => s.resources[id]);
  const send = fns.find((f) => props(f).Description === "Chat WebSocket handler: functions/send-message.ts");
  expect(lambdaEnv(send)).toMatchObject({
    REDIS_URL: LOCALSTACK_SERVICES.redisUrl,
    KAFKA_BROKERS: LOCALSTACK_SERVICES.kafkaBrokers,
  });
  expect(lambdaEnv(send).KAFKA_AUTH).toBeUndefined();
  const history = fns.find(
    (f) => props(f).Description === "Chat WebSocket handler: functions/get-history.ts",
  );
  expect(lambdaEnv(history).DATABASE_URL).toBe(LOCALSTACK_SERVICES.databaseUrl);
});

test("the same API: every route, the authorizer on $connect", () => {
  const routes = idsOfType(s.resources, "AWS::ApiGatewayV2::Route").map((id) => props(s.resources[id]));
  expect(routes.map((r) => r.RouteKey).sort()).toEqual(ROUTES.map((r) => r.routeKey).sort());
  expect(routes.find((r) => r.RouteKey === "$connect")?.AuthorizationType).toBe("CUSTOM");
});

test("the fan-out worker uses LocalStack's form of the management endpoint", () => {
  const containers = idsOfType(s.resources, "AWS::ECS::TaskDefinition").map(
    (id) => (props(s.resources[id]).ContainerDefinitions as Record<string, unknown>[])[0] ?? {},
  );
  const fanout = containers.find((c) => JSON.stringify(c.Command).includes("fanout")) ?? {};
  const endpoint = (fanout.Environment as { Name: string; Value: unknown }[]).find(
    (e) => e.Name === "MANAGEMENT_ENDPOINT",
  )?.Value;
  expect(JSON.stringify(endpoint)).toContain(`.execute-api.${LOCALSTACK_SERVICES.edge}/prod`);
  const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
  expect(JSON.stringify(outputs.WebSocketUrl?.Value)).toContain("ApiEndpoint");
});

test("topics and migrations still come from the deploy", () => {
  const custom = idsOfType(s.resources, "AWS::CloudFormation::CustomResource");
  expect(custom.some((id) => id.startsWith("KafkaTopics"))).toBe(true);
  expect(custom.some((id) => id.startsWith("Migrations"))).toBe(true);
});

test("cdk-nag: nothing unacknowledged", () => {
  const report = new AwsSolutionsChecks(undefined).validateScope(s.stack);
  expect(report.violations.map((v) => v.ruleName)).toEqual([]);
});

test("reserved concurrency is set per handler file from context, and only there", () => {
  const fns = idsOfType(s.resources, "AWS::Lambda::Function").map((id) => s.resources[id]);
  const reserved = fns
    .filter((f) => props(f).ReservedConcurrentExecutions !== undefined)
    .map((f) => [props(f).Description, props(f).ReservedConcurrentExecutions]);
  expect(reserved).toEqual([["Chat WebSocket handler: functions/send-message.ts", 25]]);
});
