/**
 * cdk-nag's AwsSolutions rules on every stack. Findings a construct accepts are acknowledged where
 * the construct makes the choice, through `accept`, each with the reason a reviewer can check; any
 * other finding (error or warning) stops `cdk synth` and fails the tests.
 */
import { type App, type CfnElement, Stack, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";

/** Registers the AwsSolutions pack as a synth-time validation plugin of the app. */
export function applyNag(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
}

/** Acknowledges one finding (`AwsSolutions-XX`, or `AwsSolutions-IAM5[Resource::…]`) on `scope` and below. */
export function accept(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-${id}`, reason });
}

/** The AWS managed policy finding id cdk-nag reports for `service-role/<name>`. */
export function managedPolicyFinding(name: string): string {
  return `IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${name}]`;
}

/** How cdk-nag writes `{ "Fn::GetAtt": [<resource>, "Arn"] }` in a finding id. */
export function arnRef(resource: IConstruct): string {
  const cfn = resource.node.defaultChild ?? resource;
  return `<${Stack.of(resource).getLogicalId(cfn as CfnElement)}.Arn>`;
}

/** How cdk-nag writes `{ "Ref": <resource> }` in a finding id. */
export function ref(resource: IConstruct): string {
  const cfn = resource.node.defaultChild ?? resource;
  return `<${Stack.of(resource).getLogicalId(cfn as CfnElement)}>`;
}
