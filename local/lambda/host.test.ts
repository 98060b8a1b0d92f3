/**
 * The handlers in threads of their own: the project's handlers answer through a real thread as they
 * would in the gateway's (with the settings of the environment it started in, and a handler's error
 * as the gateway needs it); and, with a stand-in thread, invocations spread over the threads, a
 * thread that dies fails what it held and is replaced, and a closed host refuses work.
 */
import { join } from "node:path";
import { signToken } from "../../core/auth";
import type { LambdaContext } from "../gateway/invocations";
import type { GatewayLogger } from "../gateway/types";
import { type HandlerThreads, handlerThreads, localHandlers } from "./host";

const context = (): LambdaContext => ({
  functionName: "test",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:test",
  memoryLimitInMB: "512",
  awsRequestId: "r-1",
  logGroupName: "/aws/lambda/test",
  logStreamName: "local",
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => 29_000,
});

function recordingLog(): GatewayLogger & { errors: string[] } {
  const errors: string[] = [];
  return { errors, info() {}, warn() {}, error: (_o, msg) => errors.push(msg ?? "") };
}

let host: HandlerThreads | undefined;
afterEach(async () => {
  await host?.close();
  host = undefined;
});

describe("the project's handlers in a thread", () => {
  const secret = "a-test-secret-of-at-least-thirty-two-bytes";
  const saved = { JWT_SECRET: process.env.JWT_SECRET, LOG_LEVEL: process.env.LOG_LEVEL };
  beforeAll(() => {
    process.env.JWT_SECRET = secret;
    process.env.LOG_LEVEL = "warn";
  });
  afterAll(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  test("routes answer as in the gateway's thread, and the authorizer reads the environment", async () => {
    host = handlerThreads({ threads: 1, log: recordingLog() });
    await host.start();
    const { routes, authorizer } = host;
    expect(Object.keys(routes)).toEqual(expect.arrayContaining(["$connect", "sendMessage", "$default"]));

    const pong = (await routes.ping?.({ requestContext: { connectionId: "c1" } }, context())) as {
      body: string;
    };
    expect(JSON.parse(pong.body)).toEqual({ type: "pong" });
    const bad = (await routes.$default?.({ body: "not json", requestContext: {} }, context())) as {
      body: string;
    };
    expect(JSON.parse(bad.body)).toMatchObject({ type: "error", code: "BAD_REQUEST" });

    const methodArn = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect";
    const allowed = await authorizer(
      { queryStringParameters: { token: await signToken(secret, "alice") }, methodArn, requestContext: {} },
      context(),
    );
    expect(allowed).toMatchObject({ principalId: "alice", context: { userId: "alice" } });
    // The gateway answers 401 on the error's message, so the message must cross the thread.
    const refused = authorizer({ queryStringParameters: {}, methodArn, requestContext: {} }, context());
    await expect(refused).rejects.toThrow(/^Unauthorized$/);
  });
});

test("with 0 threads the handlers are this thread's own: the ones functions/ exports", async () => {
  host = localHandlers({ threads: 0, log: recordingLog() });
  await host.start();
  expect(host.routes.ping).toBe(require("../../functions/ping").handler);
  expect(host.authorizer).toBe(require("../../functions/authorizer").handler);
});

describe("threads, with a stand-in thread", () => {
  const entry = join(__dirname, "test-thread.cjs");
  const routeKeys = ["echo", "slow", "crash", "missing"];

  test("an invocation waits for start, and the thread gets the environment of that moment", async () => {
    host = handlerThreads({ threads: 1, log: recordingLog(), entry, routeKeys });
    const early = host.routes.echo?.({ n: 1 }, context());
    process.env.TEST_THREAD_SETTING = "set before start";
    try {
      await host.start();
    } finally {
      delete process.env.TEST_THREAD_SETTING;
    }
    await expect(early).resolves.toMatchObject({ event: { n: 1 }, setting: "set before start" });
  });

  test("concurrent invocations go to the thread with the fewest in flight", async () => {
    host = handlerThreads({ threads: 2, log: recordingLog(), entry, routeKeys });
    await host.start();
    const answers = (await Promise.all([1, 2, 3, 4].map(() => host?.routes.slow?.({}, context())))) as {
      threadId: number;
    }[];
    const ids = answers.map((a) => a.threadId);
    expect(new Set(ids).size).toBe(2);
    expect(ids.filter((id) => id === ids[0])).toHaveLength(2);
  });

  test("a handler's error crosses with its name and message", async () => {
    host = handlerThreads({ threads: 1, log: recordingLog(), entry, routeKeys });
    await host.start();
    const failed = host.routes.missing?.({}, context());
    await expect(failed).rejects.toMatchObject({ name: "TypeError", message: "no missing" });
  });

  test("an event that cannot cross a thread fails its invocation only", async () => {
    host = handlerThreads({ threads: 1, log: recordingLog(), entry, routeKeys });
    await host.start();
    await expect(host.routes.echo?.({ fn: () => undefined }, context())).rejects.toThrow(
      /could not be cloned/,
    );
    await expect(host.routes.echo?.({ n: 2 }, context())).resolves.toMatchObject({ event: { n: 2 } });
  });

  test("a thread that dies fails what it held, is logged, and the next invocation gets a new one", async () => {
    const log = recordingLog();
    host = handlerThreads({ threads: 1, log, entry, routeKeys });
    await host.start();
    const before = (await host.routes.echo?.({}, context())) as { threadId: number };
    const held = host.routes.slow?.({}, context());
    const crashed = host.routes.crash?.({}, context());
    await expect(crashed).rejects.toThrow(/the handler thread stopped \(exit code 1\)/);
    await expect(held).rejects.toThrow(/the handler thread stopped/);
    expect(log.errors).toContain("a handler thread stopped; the next invocation starts another");
    const after = (await host.routes.echo?.({ again: true }, context())) as {
      threadId: number;
      event: unknown;
    };
    expect(after.event).toEqual({ again: true });
    expect(after.threadId).not.toBe(before.threadId);
  });

  test("a closed host refuses invocations", async () => {
    host = handlerThreads({ threads: 1, log: recordingLog(), entry, routeKeys });
    await host.start();
    await host.close();
    await expect(host.routes.echo?.({}, context())).rejects.toThrow("the handler threads are closing");
  });

  test("the count of threads is checked", () => {
    expect(() => handlerThreads({ threads: 0, log: recordingLog() })).toThrow(/whole number ≥ 1/);
  });
});
