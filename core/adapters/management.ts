/**
 * The connection gateway port over API Gateway's management API (`/@connections/{id}`). A 410
 * answers "gone"; anything else throws.
 */

import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { SignatureV4 } from "@smithy/signature-v4";
import { config } from "../config";
import { DependencyError } from "../errors";
import type { ConnectionGateway } from "../ports";

type SourceData = string | ArrayBuffer | ArrayBufferView;

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isGone(error: unknown): boolean {
  return (error as { name?: string })?.name === "GoneException" || statusOf(error) === 410;
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

/** A SHA-256 (or HMAC) over node:crypto, the shape SigV4's signer asks for. */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret ? createHmac("sha256", toBuffer(secret)) : createHash("sha256");
  }
  update(data: SourceData): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === "string") return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/**
 * PostToConnection is the fan-out's hot path: it goes out as one SigV4-signed, kept-alive HTTP
 * request, with the credentials the SDK client resolves (and refreshes). The SDK's own send costs
 * about four times the CPU per call (its middleware stack; `npm run bench` measures both, client and
 * emulator together: 1.5 against 0.4 ms), which capped a fan-out worker below a thousand posts a
 * second. DeleteConnection, which is rare, stays with the SDK client.
 */
export class ManagementApiGateway implements ConnectionGateway {
  private readonly url: URL;
  private readonly signer: SignatureV4;
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
    this.signer = new SignatureV4({
      credentials: client.config.credentials,
      region: config.aws().region,
      service: "execute-api",
      sha256: NodeSha256,
    });
  }

  async post(connectionId: string, data: string): Promise<"ok" | "gone"> {
    const path = `${this.url.pathname}/@connections/${encodeURIComponent(connectionId)}`;
    const body = Buffer.from(data);
    const signed = await this.signer.sign({
      method: "POST",
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      port: this.url.port ? Number(this.url.port) : undefined,
      path,
      query: {},
      headers: {
        host: this.url.host,
        "content-type": "application/json",
        "content-length": String(body.length),
      },
      body,
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = this.send(
        {
          host: this.url.hostname,
          port: this.url.port || undefined,
          method: "POST",
          path,
          headers: signed.headers,
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
    throw new DependencyError("management-api", `PostToConnection answered ${status}`);
  }

  async close(connectionId: string): Promise<void> {
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    } catch (error) {
      if (!isGone(error))
        throw new DependencyError("management-api", "DeleteConnection failed", { cause: error });
    }
  }
}
