/**
 * Builds the app's stack from context, with cdk-nag applied: the one entry both `cdk` (infra/app.ts)
 * and the tests use, so what the tests check is what is deployed.
 */
import type { App } from "aws-cdk-lib";
import { ChatStack, type Profile } from "./chat-stack";
import { InfraConfigError } from "./errors";
import { applyNag } from "./nag";

function contextString(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  return value === undefined || value === null || value === "" ? undefined : String(value);
}

/** Reads `-c profile=…` and friends, creates the stack, applies cdk-nag. */
export function createChatStack(app: App): ChatStack {
  const profile = contextString(app, "profile") ?? "aws";
  if (profile !== "aws" && profile !== "localstack") {
    throw new InfraConfigError(`context profile must be "aws" or "localstack", not "${profile}"`);
  }
  const natGateways = contextString(app, "natGateways");
  const reserved = contextString(app, "reservedConcurrency");
  let reservedConcurrency: Record<string, number> | undefined;
  if (reserved !== undefined) {
    // e.g. -c reservedConcurrency='{"send-message":200,"connect":100}' (keys are handler files)
    const parsed: unknown = JSON.parse(reserved);
    if (
      !parsed ||
      typeof parsed !== "object" ||
      !Object.values(parsed).every((v) => Number.isInteger(v) && (v as number) >= 0)
    ) {
      throw new InfraConfigError(
        'reservedConcurrency must be a JSON object of handler file to count, e.g. {"send-message":200}',
      );
    }
    reservedConcurrency = parsed as Record<string, number>;
  }
  const stack = new ChatStack(app, contextString(app, "stackName") ?? "ChatBackend", {
    profile: profile as Profile,
    natGateways: natGateways === undefined ? undefined : Number(natGateways),
    alarmEmail: contextString(app, "alarmEmail"),
    reservedConcurrency,
    deletionProtection: contextString(app, "deletionProtection") !== "false",
    redisNodeType: contextString(app, "redisNodeType"),
    // e.g. -c availabilityZones=us-east-1a,us-east-1b,us-east-1d (MSK does not serve every AZ)
    availabilityZones: contextString(app, "availabilityZones")
      ?.split(",")
      .map((az) => az.trim())
      .filter((az) => az !== ""),
    // Deploys pick the CLI's account and region; without them (tests, CI) the stack stays
    // environment-agnostic, so synth makes no AZ look-ups.
    env:
      process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
        ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
        : undefined,
    description: `Real-time chat backend (${profile} profile)`,
  });
  applyNag(app);
  return stack;
}
