import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { dynamoEndpointOf } from "./dynamo-wire";

const sdk = new DynamoDBClient({ region: "eu-west-1" });
const rules = (params: Parameters<typeof sdk.config.endpointProvider>[0]) =>
  sdk.config.endpointProvider(params);

test("the endpoint is found where the SDK looks: the configured one, the environment's, then the region's", () => {
  const at = (region: string, configured: string | undefined, env: Record<string, string>) =>
    dynamoEndpointOf(region, configured, env, rules).href;
  expect(at("eu-west-1", "http://127.0.0.1:4567", { AWS_ENDPOINT_URL: "http://ls:4566" })).toBe(
    "http://127.0.0.1:4567/",
  );
  expect(at("eu-west-1", undefined, { AWS_ENDPOINT_URL: "http://localstack:4566" })).toBe(
    "http://localstack:4566/",
  );
  expect(
    at("eu-west-1", undefined, { AWS_ENDPOINT_URL: "http://a:1", AWS_ENDPOINT_URL_DYNAMODB: "http://b:2" }),
  ).toBe("http://b:2/");
  expect(
    at("eu-west-1", undefined, {
      AWS_ENDPOINT_URL: "http://a:1",
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true",
    }),
  ).toBe("https://dynamodb.eu-west-1.amazonaws.com/");
  expect(at("cn-north-1", undefined, {})).toBe("https://dynamodb.cn-north-1.amazonaws.com.cn/");
});
