/**
 * DynamoDB's single-item calls (GetItem, PutItem, UpdateItem) as one SigV4-signed, kept-alive HTTP
 * request each, for the send ledger: every message costs two of them, and the SDK's client spends
 * several times the request's own CPU on its middleware stack (`npm run bench` measures the SDK and
 * this client side by side). The SDK client still resolves the credentials (and refreshes them) and
 * the region's endpoint; this client keeps the SDK's behaviour where it matters: the same number of
 * attempts, retries only of throttling, server errors and broken connections, with a jittered
 * backoff, and a deadline on every attempt that throws.
 *
 * Items go in and come out in DynamoDB's own attribute-value form (`{ S: "…" }`, `{ N: "1" }`);
 * util-dynamodb converts.
 */
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { config } from "../config";
import { backoffMs, sleep } from "../retry";
import { DYNAMO_ATTEMPT_TIMEOUT_MS, DYNAMO_MAX_ATTEMPTS } from "./dynamo";
import { SignedPoster } from "./signed-post";
import type { SigningCredentials } from "./sigv4";

export type WireOperation = "GetItem" | "PutItem" | "UpdateItem";

/** An attribute-value map, as DynamoDB's JSON protocol writes items and keys. */
export type WireItem = Record<string, AttributeValue>;

/** Told of every answered call: its operation and the capacity units DynamoDB says it consumed. */
export type WireObserver = (operation: WireOperation, units: number | undefined) => void;

export interface DynamoWireOptions {
  /** The endpoint, e.g. https://dynamodb.eu-west-1.amazonaws.com or dynalite's http://127.0.0.1:PORT. */
  endpoint: URL;
  region: string;
  credentials: () => Promise<SigningCredentials>;
  /** Attempts in all, the first included (the SDK client's maxAttempts). */
  maxAttempts?: number;
  /** Each attempt's deadline, connecting included. */
  attemptTimeoutMs?: number;
  maxSockets?: number;
}

/**
 * DynamoDB refused or failed a call. `name` is DynamoDB's error type (ConditionalCheckFailedException,
 * ProvisionedThroughputExceededException, …), as the SDK names its errors.
 */
export class DynamoWireError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly statusCode: number | undefined,
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The SDK's throttling error types: retried after a longer backoff. */
const THROTTLING = new Set([
  "ThrottlingException",
  "Throttling",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "LimitExceededException",
  "TransactionInProgressException",
]);

const RETRY_BASE_MS = 100;
const THROTTLED_RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 20_000;

export class DynamoWire {
  private readonly poster: SignedPoster;
  private readonly path: string;
  private readonly maxAttempts: number;
  private readonly attemptTimeoutMs: number;
  private observer: WireObserver | undefined;

  constructor(private readonly options: DynamoWireOptions) {
    this.poster = new SignedPoster(options.endpoint, options.region, "dynamodb", options.maxSockets ?? 50);
    this.path = options.endpoint.pathname || "/";
    this.maxAttempts = options.maxAttempts ?? DYNAMO_MAX_ATTEMPTS;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? DYNAMO_ATTEMPT_TIMEOUT_MS;
  }

  /**
   * A client with `sdk`'s credentials and region, the endpoint the SDK would use
   * ({@link dynamoEndpointOf}), and the attempts and deadline createDynamoClient gives the SDK client.
   */
  static from(sdk: DynamoDBClient): DynamoWire {
    const { region, dynamoEndpoint } = config.aws();
    const endpoint = dynamoEndpointOf(region, dynamoEndpoint, process.env, (params) =>
      sdk.config.endpointProvider(params),
    );
    return new DynamoWire({
      endpoint,
      region,
      credentials: () => sdk.config.credentials(),
    });
  }

  /** Tells `observer` of every answered call, asking DynamoDB for the capacity each consumed. */
  observe(observer: WireObserver): this {
    this.observer = observer;
    return this;
  }

  async call(operation: WireOperation, input: Record<string, unknown>): Promise<Record<string, unknown>> {
    const request =
      this.observer && input.ReturnConsumedCapacity === undefined
        ? { ...input, ReturnConsumedCapacity: "TOTAL" }
        : input;
    const body = Buffer.from(JSON.stringify(request));
    for (let attempt = 1; ; attempt++) {
      try {
        const output = await this.attempt(operation, body);
        if (this.observer) {
          const consumed = output.ConsumedCapacity as { CapacityUnits?: number } | undefined;
          this.observer(operation, consumed?.CapacityUnits);
          if (request !== input) delete output.ConsumedCapacity;
        }
        return output;
      } catch (error) {
        if (!(error instanceof DynamoWireError) || !error.retriable || attempt >= this.maxAttempts)
          throw error;
        const base = THROTTLING.has(error.name) ? THROTTLED_RETRY_BASE_MS : RETRY_BASE_MS;
        await sleep(backoffMs(attempt - 1, base, RETRY_CAP_MS));
      }
    }
  }

  /** Closes the kept-alive connections. */
  destroy(): void {
    this.poster.destroy();
  }

  private async attempt(operation: WireOperation, body: Buffer): Promise<Record<string, unknown>> {
    const request = {
      path: this.path,
      body,
      contentType: "application/x-amz-json-1.0",
      target: `DynamoDB_20120810.${operation}`,
    };
    const timeouts = {
      deadlineMs: this.attemptTimeoutMs,
      timedOut: () =>
        new DynamoWireError(
          "TimeoutError",
          `DynamoDB ${operation} did not answer within ${this.attemptTimeoutMs} ms`,
          undefined,
          true,
        ),
    };
    const answer = await this.poster
      .post(await this.options.credentials(), request, timeouts, true)
      .catch((cause: unknown) => {
        throw cause instanceof DynamoWireError
          ? cause
          : new DynamoWireError(
              "NetworkError",
              `DynamoDB ${operation}: the connection failed`,
              undefined,
              true,
              {
                cause,
              },
            );
      });
    const { status } = answer;
    const text = answer.body?.toString() ?? "";
    if (status === 200) return JSON.parse(text) as Record<string, unknown>;
    throw errorOf(operation, status, text);
  }
}

/**
 * Where DynamoDB is, in the order the SDK looks: the endpoint this project configures
 * (DYNAMODB_ENDPOINT: dynalite), then the environment's AWS_ENDPOINT_URL_DYNAMODB or AWS_ENDPOINT_URL
 * (LocalStack sets the latter in its Lambda containers; AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns
 * both off), else the region's own endpoint from the SDK's rules (its partition: amazonaws.com,
 * amazonaws.com.cn, …).
 */
export function dynamoEndpointOf(
  region: string,
  configured: string | undefined,
  env: Record<string, string | undefined>,
  rules: (params: {
    Region: string;
    UseFIPS: boolean;
    UseDualStack: boolean;
    AccountIdEndpointMode: string;
  }) => { url: URL },
): URL {
  if (configured) return new URL(configured);
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() !== "true") {
    const fromEnv = env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
    if (fromEnv) return new URL(fromEnv);
  }
  return rules({ Region: region, UseFIPS: false, UseDualStack: false, AccountIdEndpointMode: "disabled" })
    .url;
}

/** DynamoDB's error answer (`{"__type":"com.amazonaws.dynamodb.v20120810#Name","message":"…"}`) as an error. */
function errorOf(operation: WireOperation, status: number, text: string): DynamoWireError {
  let type = "";
  let message = "";
  try {
    const answer = JSON.parse(text) as { __type?: string; message?: string; Message?: string };
    type = String(answer.__type ?? "");
    message = String(answer.message ?? answer.Message ?? "");
  } catch {
    // Not JSON (a proxy's page): named by its status below.
  }
  const name =
    type.slice(type.lastIndexOf("#") + 1) || (status >= 500 ? "InternalServerError" : `Http${status}`);
  const retriable = status >= 500 || THROTTLING.has(name);
  return new DynamoWireError(
    name,
    `DynamoDB ${operation} answered ${status} ${name}: ${message}`,
    status,
    retriable,
  );
}
