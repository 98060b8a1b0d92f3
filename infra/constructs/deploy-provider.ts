/**
 * The custom resource provider for a deploy-time function (topics, migrations): its log group, and
 * the cdk-nag findings the provider framework raises, each acknowledged with its reason.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as cr from "aws-cdk-lib/custom-resources";
import type { Construct } from "constructs";
import { accept, arnRef, managedPolicyFinding } from "../nag";

export function deployProvider(scope: Construct, onEvent: lambda.IFunction): cr.Provider {
  const provider = new cr.Provider(scope, "Provider", {
    onEventHandler: onEvent,
    logGroup: new logs.LogGroup(scope, "ProviderLogs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    }),
  });
  accept(
    provider,
    managedPolicyFinding("AWSLambdaBasicExecutionRole"),
    "The custom resource framework's function: the AWS managed policy grants only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents",
  );
  accept(
    provider,
    `IAM5[Resource::${arnRef(onEvent)}:*]`,
    "The framework may invoke any version of this one function, and nothing else",
  );
  return provider;
}
