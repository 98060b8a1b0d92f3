/**
 * The CDK app (`cdk synth`, `npm run deploy`, `npm run local:deploy`). Context values:
 * `profile` (aws | localstack), `stackName`, `natGateways`, `alarmEmail`, `deletionProtection`,
 * `reservedConcurrency` (JSON: handler file to reserved concurrency), `redisNodeType`,
 * `availabilityZones` (comma-separated AZ names).
 */
import { App } from "aws-cdk-lib";
import { createChatStack } from "./chat-app";

const app = new App();
createChatStack(app);
app.synth();
