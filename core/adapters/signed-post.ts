/**
 * The signed, kept-alive POST that both hot paths send thousands of times a second: the fan-out's
 * PostToConnection (management.ts) and the send ledger's DynamoDB calls (dynamo-wire.ts). One SigV4
 * signature per request, and the answer as a promise; the connections are a {@link PostTransport}'s.
 * What an answer means, and what a failure is called, is each caller's.
 *
 * Two transports keep connections alive: node:http's agent ({@link httpTransport}, the default: no
 * code added to a Lambda's bundle) and undici's pool (pool-transport.ts: less CPU per request, for
 * the fan-out worker, whose CPU per post bounds its deliveries a second and whose image does not pay
 * for the library's size at a cold start). `npm run bench -- --only hops` measures the same signed
 * POST over both.
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

/** Kept-alive connections to one endpoint, and one POST on them. */
export interface PostTransport {
  /** Sends the signed request; rejects with the request's own error, or `timedOut()`. */
  post(
    path: string,
    headers: Record<string, string>,
    body: Buffer,
    timeouts: PostTimeouts,
    keepBody: boolean,
  ): Promise<PostAnswer>;
  /** Closes the kept-alive connections. */
  destroy(): void;
}

/** Makes a transport to `endpoint` of at most `connections` connections. */
export type TransportFactory = (endpoint: URL, connections: number) => PostTransport;

export class SignedPoster {
  private readonly transport: PostTransport;
  private readonly signer: SigV4Signer;

  constructor(
    readonly endpoint: URL,
    region: string,
    service: string,
    maxSockets: number,
    transport: TransportFactory = httpTransport,
  ) {
    this.transport = transport(endpoint, maxSockets);
    this.signer = new SigV4Signer(region, service);
  }

  /** Signs and sends one POST; rejects with the request's own error, or `timedOut()`. */
  post(
    credentials: SigningCredentials,
    request: PostRequest,
    timeouts: PostTimeouts,
    keepBody: boolean,
  ): Promise<PostAnswer> {
    const headers = this.signer.sign(credentials, {
      host: this.endpoint.host,
      path: request.path,
      body: request.body,
      contentType: request.contentType,
      target: request.target,
    });
    return this.transport.post(request.path, headers, request.body, timeouts, keepBody);
  }

  /** Closes the kept-alive connections. */
  destroy(): void {
    this.transport.destroy();
  }
}

/** node:http's (or node:https's) kept-alive agent. */
export const httpTransport: TransportFactory = (endpoint, connections) => {
  const secure = endpoint.protocol === "https:";
  const agentOptions = { keepAlive: true, maxSockets: connections };
  const agent = secure ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  const send: typeof httpRequest = secure ? httpsRequest : httpRequest;
  return {
    post: (path, headers, body, timeouts, keepBody) =>
      new Promise<PostAnswer>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const fail = (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        };
        const req = send(
          {
            host: endpoint.hostname,
            port: endpoint.port || undefined,
            method: "POST",
            path,
            headers,
            agent,
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
        req.end(body);
      }),
    destroy: () => agent.destroy(),
  };
};
