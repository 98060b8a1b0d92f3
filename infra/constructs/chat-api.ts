/**
 * The WebSocket API: one Lambda function per route of the shared route table (functions/routes.ts),
 * the REQUEST authorizer on `$connect`, route responses where the protocol answers the sender, and a
 * stage with access logs and throttling. What each function may touch is declared once, below, by
 * handler file; a route without a declaration fails the synth.
 */
import { RemovalPolicy, Stack } from "aws-cdk-lib";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { WebSocketLambdaAuthorizer } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { WebSocketLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct, type IConstruct } from "constructs";
import { AUTHORIZER, ROUTE_SELECTION_EXPRESSION, ROUTES } from "../../functions/routes";
import { InfraConfigError } from "../errors";
import { accept, ref } from "../nag";
import type { ChatTable } from "./chat-table";
import type { DatabaseEndpoint, KafkaEndpoint, RedisEndpoint } from "./endpoints";
import { InfraFunction } from "./infra-function";
import type { JwtSecret } from "./jwt-secret";

/** PROTOCOL.md v1.1's defaults. */
export const DEFAULT_LIMITS = {
  actionPerSecond: 10,
  actionBurst: 30,
  maxMembers: 5000,
  maxConnectionsPerUser: 10,
};

/** What a handler needs. */
export type FunctionNeed = "jwt" | "table" | "redis" | "kafka" | "database" | "connections";

/** What each handler file touches: the single place function permissions are decided. */
export const FUNCTION_NEEDS: Readonly<Record<string, readonly FunctionNeed[]>> = {
  authorizer: ["jwt"],
  connect: ["table"],
  disconnect: ["table", "redis"],
  // Joining a room the ledger never counted seeds its seq from PostgreSQL.
  "join-room": ["table", "redis", "database"],
  "leave-room": ["table", "redis"],
  "send-message": ["table", "redis", "kafka", "database"],
  "get-history": ["table", "redis", "database"],
  "create-room": ["table", "redis", "database"],
  invite: ["table", "redis"],
  "remove-member": ["table", "redis"],
  "open-direct": ["table", "redis", "database"],
  "list-rooms": ["table", "redis"],
  "mark-read": ["table", "redis"],
  // Posts each room's frames to the caller before the route answers `resumed`.
  resume: ["table", "redis", "database", "connections"],
  "get-presence": ["table", "redis"],
  typing: ["table", "redis"],
  ping: [],
  default: [],
};

export interface ChatApiProps {
  table: ChatTable;
  redis: RedisEndpoint;
  kafka: KafkaEndpoint;
  database: DatabaseEndpoint;
  jwtSecret: JwtSecret;
  /** Functions that reach Redis, Kafka or PostgreSQL run in it; absent on the LocalStack profile. */
  vpc?: ec2.IVpc;
  /** @default "prod" */
  stageName?: string;
  /** Reserved concurrency per handler file (e.g. { "send-message": 200 }); unset = shared pool. */
  reservedConcurrency?: Readonly<Record<string, number>>;
  /** Each user's allowance of sends. @default 20 per second, burst 40 */
  rateLimit?: { perSecond: number; burst: number };
  /** Each user's allowance of other room actions, and the sizes of rooms and of a user's connections. */
  limits?: Partial<typeof DEFAULT_LIMITS>;
  /** Stage-wide throttling (all connections together). @default 1000 per second, burst 2000 */
  stageThrottle?: { rateLimit: number; burstLimit: number };
  /** Shards of the fan-out stream; must equal the fan-out worker's. @default 16 */
  fanoutShards?: number;
  /** @default "info" */
  logLevel?: string;
}

/** The API, its stage and its functions. */
export class ChatApi extends Construct {
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  /** Every function, by handler file (routes and the authorizer). */
  readonly functions: ReadonlyMap<string, InfraFunction>;

  constructor(scope: Construct, id: string, props: ChatApiProps) {
    super(scope, id);
    const functions = new Map<string, InfraFunction>();
    const build = (file: string): InfraFunction => {
      const existing = functions.get(file);
      if (existing) return existing;
      const needs = FUNCTION_NEEDS[file];
      if (!needs) {
        throw new InfraConfigError(
          `functions/${file}.ts has no entry in FUNCTION_NEEDS (infra/constructs/chat-api.ts)`,
        );
      }
      const inVpc = needs.some((n) => n === "redis" || n === "kafka" || n === "database");
      const fn = new InfraFunction(this, toId(file), {
        entry: `functions/${file}.ts`,
        description: `Chat WebSocket handler: functions/${file}.ts`,
        vpc: inVpc ? props.vpc : undefined,
        reservedConcurrency: props.reservedConcurrency?.[file],
        logLevel: props.logLevel,
      });
      for (const need of needs) {
        if (need === "jwt") props.jwtSecret.connect(fn.consumer);
        if (need === "table") props.table.connect(fn.consumer);
        if (need === "redis") {
          props.redis.connect(fn.consumer);
          // Handlers publish to the shard a room hashes to: the count must match the workers'.
          fn.fn.addEnvironment("FANOUT_SHARDS", String(props.fanoutShards ?? 16));
        }
        if (need === "kafka") props.kafka.connectProducer(fn.consumer);
        if (need === "database") props.database.connect(fn.consumer);
      }
      // Every limit is set here, per user, whatever the code's defaults become.
      const limits = { ...DEFAULT_LIMITS, ...props.limits };
      fn.fn.addEnvironment("RATE_LIMIT_SCOPE", "user");
      if (file === "send-message") {
        fn.fn.addEnvironment("RATE_LIMIT_PER_SECOND", String(props.rateLimit?.perSecond ?? 20));
        fn.fn.addEnvironment("RATE_LIMIT_BURST", String(props.rateLimit?.burst ?? 40));
      } else if (needs.includes("redis")) {
        fn.fn.addEnvironment("ACTION_RATE_LIMIT_PER_SECOND", String(limits.actionPerSecond));
        fn.fn.addEnvironment("ACTION_RATE_LIMIT_BURST", String(limits.actionBurst));
      }
      if (needs.includes("table") && file !== "disconnect") {
        fn.fn.addEnvironment("ROOM_MAX_MEMBERS", String(limits.maxMembers));
        fn.fn.addEnvironment("MAX_CONNECTIONS_PER_USER", String(limits.maxConnectionsPerUser));
      }
      functions.set(file, fn);
      return fn;
    };

    const authorizer = new WebSocketLambdaAuthorizer("JwtAuthorizer", build(AUTHORIZER.file).fn, {
      // The token comes as `?token=` (browsers) or `Authorization: Bearer`: with identity sources set,
      // API Gateway would refuse a connection lacking the first one without calling the authorizer.
      identitySource: [],
    });
    this.api = new apigwv2.WebSocketApi(this, "Api", {
      apiName: `${id}-websocket`,
      description: "Chat backend WebSocket API (protocol v1)",
      routeSelectionExpression: ROUTE_SELECTION_EXPRESSION,
    });
    for (const route of ROUTES) {
      const fn = build(route.file);
      this.api.addRoute(route.routeKey, {
        integration: new WebSocketLambdaIntegration(`${toId(route.file)}Integration`, fn.fn),
        authorizer: route.routeKey === "$connect" ? authorizer : undefined,
        returnResponse: route.routeResponse,
      });
    }
    this.functions = functions;
    accept(
      this.api,
      "APIG4",
      "WebSocket APIs authorize once, on $connect (the JWT authorizer); every other route runs on that authorized connection and API Gateway accepts no authorizer on them",
    );

    const accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.WebSocketStage(this, "Stage", {
      webSocketApi: this.api,
      stageName: props.stageName ?? "prod",
      autoDeploy: true,
      throttle: props.stageThrottle ?? { rateLimit: 1000, burstLimit: 2000 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
      },
    });
  }

  /** Lets the handlers that post beyond their route response (`connections`) reach this stage's connections. */
  connectHandlers(managementEndpoint: string): void {
    for (const [file, fn] of this.functions) {
      if (!FUNCTION_NEEDS[file]?.includes("connections")) continue;
      fn.fn.addEnvironment("MANAGEMENT_ENDPOINT", managementEndpoint);
      grantConnections(
        { api: this.api, stageName: this.stage.stageName },
        fn.consumer,
        fn.fn,
        ["POST"],
        () =>
          `functions/${file}.ts posts to the connection that called it, whose id is known only at run time; the grant is limited to this API, this stage and POST on @connections`,
      );
    }
  }
}

/**
 * Grants `grantee` the management API's `methods` on the connections of one stage, and acknowledges
 * on `nagScope` the wildcard that grant needs (a connection id is known only at run time), each
 * method with `reason(method)`.
 */
export function grantConnections(
  stage: { api: apigwv2.IWebSocketApi; stageName: string },
  grantee: iam.IGrantable,
  nagScope: IConstruct,
  methods: string[],
  reason: (method: string) => string,
): void {
  const stageArn = Stack.of(stage.api).formatArn({
    service: "execute-api",
    resource: stage.api.apiId,
    resourceName: stage.stageName,
  });
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["execute-api:ManageConnections"],
      resources: methods.map((m) => `${stageArn}/${m}/@connections/*`),
    }),
  );
  for (const m of methods) {
    accept(
      nagScope,
      `IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:${ref(stage.api)}/${stage.stageName}/${m}/@connections/*]`,
      reason(m),
    );
  }
}

/** `send-message` → `SendMessage`, a stable construct id. */
function toId(file: string): string {
  return file.replace(/(^|-)([a-z])/g, (_m, _dash, c: string) => c.toUpperCase());
}
