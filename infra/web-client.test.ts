/**
 * The deployed web client (infra/constructs/web-client.ts), synthesized offline in a stack of its own
 * beside a WebSocket stage: a private bucket only CloudFront reads, HTTPS only, the built files plus a
 * config.json naming the stage's wss:// URL, no sign-in endpoint, and cdk-nag's verdict.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, type CfnElement, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { AwsSolutionsChecks } from "cdk-nag";
import { WebClient, webConfig } from "./constructs/web-client";

let template: Template;
let stack: Stack;
let outdir: string;
let apiId: string;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), "cdk-web-"));
  const app = new App({ outdir });
  stack = new Stack(app, "WebProbe");
  const api = new apigwv2.WebSocketApi(stack, "Api");
  const stage = new apigwv2.WebSocketStage(stack, "Stage", {
    webSocketApi: api,
    stageName: "prod",
    autoDeploy: true,
  });
  new WebClient(stack, "Web", { webSocketUrl: stage.url });
  apiId = stack.getLogicalId(api.node.defaultChild as CfnElement);
  app.synth();
  template = Template.fromStack(stack);
});

const resources = (type: string) => Object.values(template.findResources(type));

test("the bucket is private, encrypted and TLS-only; CloudFront alone reads it, through origin access control", () => {
  template.hasResourceProperties("AWS::S3::Bucket", {
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    },
    BucketEncryption: Match.anyValue(),
  });
  const policy = JSON.stringify(resources("AWS::S3::BucketPolicy"));
  expect(policy).toContain('"aws:SecureTransport":"false"');
  expect(policy).toContain("cloudfront.amazonaws.com");
  expect(policy).toContain("AWS:SourceArn");
  expect(resources("AWS::CloudFront::OriginAccessControl")).toHaveLength(1);
  expect(resources("AWS::CloudFront::CloudFrontOriginAccessIdentity")).toHaveLength(0);
});

test("the distribution serves index.html over HTTPS only, with a CSP that lets the page reach only the stage's host", () => {
  template.hasResourceProperties("AWS::CloudFront::Distribution", {
    DistributionConfig: Match.objectLike({
      DefaultRootObject: "index.html",
      DefaultCacheBehavior: Match.objectLike({
        ViewerProtocolPolicy: "redirect-to-https",
        AllowedMethods: ["GET", "HEAD"],
      }),
    }),
  });
  const headers = JSON.stringify(resources("AWS::CloudFront::ResponseHeadersPolicy"));
  expect(headers).toContain("connect-src 'self' wss://");
  expect(headers).toContain("script-src 'self'");
  expect(headers).toContain("frame-ancestors 'none'");
});

test("the deployment uploads the built client and a config.json with the stage's wss:// URL, and invalidates the cache", () => {
  const [deployment] = resources("Custom::CDKBucketDeployment") as { Properties: Record<string, unknown> }[];
  expect(deployment).toBeDefined();
  const props = deployment?.Properties ?? {};
  expect(props.DistributionPaths).toEqual(["/*"]);
  expect((props.SourceBucketNames as unknown[]).length).toBe(2);
  // config.json is written at deploy time with the stage's URL in place of its marker.
  expect(JSON.stringify(props.SourceMarkers)).toContain(`{"Ref":"${apiId}"}`);
  expect(webConfig("wss://x.execute-api.eu-west-1.amazonaws.com/prod")).toEqual({
    url: "wss://x.execute-api.eu-west-1.amazonaws.com/prod",
    signIn: "token",
  });
  // The built files are in the cloud assembly: a few static files, no config of the local stack.
  const staged = readdirSync(outdir)
    .map((d) => path.join(outdir, d))
    .filter((d) => existsSync(path.join(d, "app.js")));
  expect(staged).toHaveLength(1);
  const files = readdirSync(staged[0] as string).sort();
  expect(files).toEqual(expect.arrayContaining(["app.js", "index.html", "styles.css"]));
  expect(files).not.toContain("config.json");
  expect(files.length).toBeLessThanOrEqual(6);
  expect(readFileSync(path.join(staged[0] as string, "index.html"), "utf8")).toContain("app.js");
});

test("the local sign-in endpoint is never deployed: no function or route serves /local/token", () => {
  expect(JSON.stringify(template.toJSON())).not.toContain("local/token");
  // The only functions are the CDK's own deployment handler.
  for (const fn of resources("AWS::Lambda::Function") as { Properties: { Handler?: string } }[]) {
    expect(fn.Properties.Handler).toBe("index.handler");
  }
  expect(resources("AWS::ApiGatewayV2::Route")).toHaveLength(0);
});

test("cdk-nag finds nothing unacknowledged", () => {
  const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(stack);
  // The probe's own stage (no access logs) is not the web client's.
  const ours = report.violations.filter(
    (v) => !v.violatingResources.every((r) => (r.constructPath ?? "").startsWith("WebProbe/Stage")),
  );
  expect(
    ours.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(", ")}`),
  ).toEqual([]);
});
