/**
 * Secrets named by ARN are read with the real Secrets Manager client from an endpoint that answers
 * as Secrets Manager does (there is none on this machine), once per process.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chat-jwt-AbCdEf";

let server: Server;
const asked: { target: string | undefined; secretId: string }[] = [];
/** What the endpoint answers next: a secret string, or an error of that type. */
let answer: { secret: string } | { error: string } = { secret: "from-secrets-manager" };

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    req.on("end", () => {
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      asked.push({ target: req.headers["x-amz-target"] as string | undefined, secretId: SecretId });
      res.setHeader("content-type", "application/x-amz-json-1.1");
      if ("error" in answer) {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: answer.error, message: "Secrets Manager can't find the secret." }));
      } else {
        res.end(JSON.stringify({ ARN: SecretId, Name: "chat-jwt", SecretString: answer.secret }));
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    JWT_SECRET_ARN: ARN,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  delete process.env.JWT_SECRET;
});

afterAll(async () => {
  server.close();
  await once(server, "close");
});

/** A fresh copy of the module (its cache and client), reading the environment set above. */
function freshSecrets(): typeof import("./secrets") {
  let secrets: typeof import("./secrets") | undefined;
  jest.isolateModules(() => {
    secrets = require("./secrets");
  });
  return secrets as typeof import("./secrets");
}

test("the JWT secret named by JWT_SECRET_ARN is read from Secrets Manager once per process", async () => {
  asked.length = 0;
  answer = { secret: "from-secrets-manager" };
  const { jwtSecret } = freshSecrets();
  expect(await jwtSecret()).toBe("from-secrets-manager");
  expect(await jwtSecret()).toBe("from-secrets-manager");
  expect(asked).toEqual([{ target: "secretsmanager.GetSecretValue", secretId: ARN }]);
});

test("a failed read names the secret, and the next call asks again", async () => {
  asked.length = 0;
  answer = { error: "ResourceNotFoundException" };
  const { jwtSecret } = freshSecrets();
  await expect(jwtSecret()).rejects.toThrow(`could not read secret ${ARN}`);
  answer = { secret: "second-try" };
  expect(await jwtSecret()).toBe("second-try");
  expect(asked).toHaveLength(2);
});
