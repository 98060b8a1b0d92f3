/**
 * The connection gateway port over API Gateway's management API (`/@connections/{id}`). A 410
 * answers "gone"; anything else throws.
 */

import { createHash, createHmac } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { ApiGatewayManagementApiClient } from "@aws-sdk/client-apigatewaymanagementapi";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionGateway } from "../ports";

/**
 * PostToConnection answered 429 LimitExceededException: the account's request rate (shared with every
 * API of the account) or the client's buffer is full. Retriable, after a backoff; named as AWS names it.
 */
export class LimitExceededError extends DependencyError {
  override name = "LimitExceededException";
  readonly throttled = true;
}

export function createManagementClient(
  endpoint: string = config.management().endpoint,
  maxSockets: number = config.fanout().concurrency,
): ApiGatewayManagementApiClient {
  const local = endpoint.startsWith("http://");
  const agentOptions = { keepAlive: true, maxSockets };
  return new ApiGatewayManagementApiClient({
    endpoint,
    region: config.aws().region,
    // The local emulator accepts any signature; AWS uses the task's or function's role.
    ...(local ? { credentials: { accessKeyId: "local", secretAccessKey: "local" } } : {}),
    requestHandler: new NodeHttpHandler(
      local ? { httpAgent: new HttpAgent(agentOptions) } : { httpsAgent: new Agent(agentOptions) },
    ),
    maxAttempts: 1,
  });
}

/** The credentials of a SigV4 signature (the SDK client's provider resolves and refreshes them). */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const sha256Hex = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** Percent-encodes as SigV4's canonical URI asks: RFC 3986 unreserved characters stay, the rest is escaped. */
const escapeUri = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * AWS Signature Version 4 for the one request the fan-out sends thousands of times a second:
 * `POST /{stage}/@connections/{id}` with a JSON body. The request's shape never changes, so the
 * canonical request is one template and the signing key is derived once a day; @smithy/signature-v4
 * (which management.test.ts checks every signature against) spends CPU on every request on a
 * generality this request does not need.
 */
export class PostSigner {
  private key: { scope: string; secret: string; value: Buffer } | undefined;

  constructor(
    private readonly region: string,
    private readonly service = "execute-api",
  ) {}

  /** The headers to send: the given ones plus x-amz-date, x-amz-content-sha256, the token and authorization. */
  sign(
    credentials: SigningCredentials,
    host: string,
    path: string,
    body: Buffer,
    now: Date = new Date(),
  ): Record<string, string> {
    const longDate = now
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d{3}/, "");
    const shortDate = longDate.slice(0, 8);
    const scope = `${shortDate}/${this.region}/${this.service}/aws4_request`;
    const payloadHash = sha256Hex(body);
    const headers: Record<string, string> = {
      "content-length": String(body.length),
      "content-type": "application/json",
      host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": longDate,
    };
    if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
    // Every name is lower case already and in sorted order; no value holds spaces to fold.
    const names = Object.keys(headers);
    let canonicalHeaders = "";
    for (const name of names) canonicalHeaders += `${name}:${(headers[name] as string).trim()}\n`;
    const signedHeaders = names.join(";");
    const canonicalRequest = `POST\n${canonicalPath(path)}\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = createHmac("sha256", this.signingKey(credentials.secretAccessKey, shortDate, scope))
      .update(stringToSign)
      .digest("hex");
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return headers;
  }

  private signingKey(secret: string, shortDate: string, scope: string): Buffer {
    if (this.key?.scope !== scope || this.key.secret !== secret) {
      const date = hmac(`AWS4${secret}`, shortDate);
      const region = hmac(date, this.region);
      const service = hmac(region, this.service);
      this.key = { scope, secret, value: hmac(service, "aws4_request") };
    }
    return this.key.value;
  }
}

/** The canonical URI of an already percent-encoded path: each segment encoded once more (all services but S3). */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${segments.map(escapeUri).join("/")}${trailing}`;
}

/**
 * PostToConnection is the fan-out's hot path: it goes out as one SigV4-signed, kept-alive HTTP
 * request signed by {@link PostSigner}, with the credentials the SDK client resolves (and
 * refreshes). The SDK's own send runs its whole middleware stack on every call, and on this path
 * the CPU per post bounds how many posts a worker sends a second (`npm run bench` measures the SDK,
 * this client signed and unsigned side by side).
 */
export class ManagementApiGateway implements ConnectionGateway {
  private readonly url: URL;
  private readonly signer: PostSigner;
  private readonly agent: HttpAgent | Agent;
  private readonly send: typeof httpRequest;

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    endpoint: string = config.management().endpoint,
    maxSockets: number = config.fanout().concurrency,
  ) {
    this.url = new URL(endpoint.replace(/\/+$/, ""));
    const secure = this.url.protocol === "https:";
    this.agent = secure
      ? new Agent({ keepAlive: true, maxSockets })
      : new HttpAgent({ keepAlive: true, maxSockets });
    this.send = secure ? httpsRequest : httpRequest;
    this.signer = new PostSigner(config.aws().region);
  }

  async post(connectionId: string, data: string): Promise<"ok" | "gone"> {
    const path = `${this.url.pathname}/@connections/${encodeURIComponent(connectionId)}`;
    const body = Buffer.from(data);
    const headers = this.signer.sign(await this.client.config.credentials(), this.url.host, path, body);
    const status = await new Promise<number>((resolve, reject) => {
      const req = this.send(
        {
          host: this.url.hostname,
          port: this.url.port || undefined,
          method: "POST",
          path,
          headers,
          agent: this.agent,
          timeout: 10_000,
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("PostToConnection timed out")));
      req.on("error", reject);
      req.end(body);
    }).catch((cause: unknown) => {
      throw new DependencyError("management-api", "PostToConnection failed", { cause });
    });
    if (status === 200) return "ok";
    if (status === 410) return "gone";
    if (status === 429) throw new LimitExceededError("management-api", "PostToConnection answered 429");
    throw new DependencyError("management-api", `PostToConnection answered ${status}`);
  }
}
