/**
 * The signed, kept-alive POST that both hot paths send thousands of times a second: the fan-out's
 * PostToConnection (management.ts) and the send ledger's DynamoDB calls (dynamo-wire.ts). One agent
 * for the endpoint (http or https, as its URL says), one SigV4 signature per request, and the answer
 * as a promise. What an answer means, and what a failure is called, is each caller's.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { type SigningCredentials, SigV4Signer } from "./sigv4";

/** When a request gives up; it then fails with `timedOut()`. */
export interface PostTimeouts {
  /** Its socket has been idle this long, waiting for the answer. */
  idleMs?: number;
  /** It has not been answered in full this long after it began, connecting included. */
  deadlineMs?: number;
  timedOut: () => Error;
}

/** A request's path (already percent-encoded) and body, and the headers that vary by service. */
export interface PostRequest {
  path: string;
  body: Buffer;
  contentType: string;
  /** `x-amz-target`, for the JSON protocol services (DynamoDB). */
  target?: string;
}

export interface PostAnswer {
  status: number;
  /** The answer's body, when it was asked for; otherwise it is read and dropped. */
  body: Buffer | undefined;
}

export class SignedPoster {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly send: typeof httpRequest;
  private readonly signer: SigV4Signer;

  constructor(
    readonly endpoint: URL,
    region: string,
    service: string,
    maxSockets: number,
  ) {
    const secure = endpoint.protocol === "https:";
    const agentOptions = { keepAlive: true, maxSockets };
    this.agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
    this.send = secure ? httpsRequest : httpRequest;
    this.signer = new SigV4Signer(region, service);
  }

  /** Signs and sends one POST; rejects with the request's own error, or `timedOut()`. */
  post(
    credentials: SigningCredentials,
    request: PostRequest,
    timeouts: PostTimeouts,
    keepBody: boolean,
  ): Promise<PostAnswer> {
    const { endpoint } = this;
    const headers = this.signer.sign(credentials, {
      host: endpoint.host,
      path: request.path,
      body: request.body,
      contentType: request.contentType,
      target: request.target,
    });
    return new Promise<PostAnswer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const fail = (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      };
      const req = this.send(
        {
          host: endpoint.hostname,
          port: endpoint.port || undefined,
          method: "POST",
          path: request.path,
          headers,
          agent: this.agent,
          timeout: timeouts.idleMs,
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] | undefined = keepBody ? [] : undefined;
          if (chunks) res.on("data", (chunk: Buffer) => chunks.push(chunk));
          else res.resume();
          res.on("end", () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: chunks && Buffer.concat(chunks) });
          });
          res.on("error", fail);
        },
      );
      if (timeouts.idleMs !== undefined) req.on("timeout", () => req.destroy(timeouts.timedOut()));
      if (timeouts.deadlineMs !== undefined)
        timer = setTimeout(() => req.destroy(timeouts.timedOut()), timeouts.deadlineMs);
      req.on("error", fail);
      req.end(request.body);
    });
  }

  /** Closes the kept-alive connections. */
  destroy(): void {
    this.agent.destroy();
  }
}
