/**
 * Conformance of the API Gateway WebSocket emulator (local/gateway) to API Gateway's documented
 * behaviour, through a real `ws` client and the real management API client.
 *
 * One suite of checks holds for the real app on any implementation (`realAppSuite`): it runs against
 * the emulator with fixture handlers that answer as the app does, and against a deployed API when
 * CONFORMANCE_WS_URL, CONFORMANCE_MANAGEMENT_ENDPOINT and CONFORMANCE_TOKEN (and AWS credentials)
 * are set. The checks that need fixture handlers (echo, throw, non-2xx...) run against the emulator
 * only.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import net from "node:net";
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import WebSocket from "ws";
import { sleep } from "../core/retry";
import { type GatewayLogger, type GatewayOptions, type RunningGateway, startGateway } from "../local/gateway";
import { createFixtures, type Fixtures } from "./gateway-fixtures";
import { openClient, type RawClient, signedShape, upgradeStatus, withQuery } from "./support/raw-client";

const STAGE = "dev";
const ID_PATTERN = /^[A-Za-z0-9+/]{15}=$/;
const REQUEST_TIME = /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/;

/** What the shared checks need of an implementation. */
interface Target {
  wsUrl: string;
  management: ApiGatewayManagementApiClient;
  /** The management API's endpoint, for raw (unsigned or oddly signed) requests. */
  managementEndpoint: string;
  token: string;
  /** Opens an authorized connection and learns its connection id. */
  openWithId(): Promise<{ client: RawClient; connectionId: string }>;
}

/** The SDK error's name and HTTP status, or a failure when the call succeeded. */
async function sdkFailure(call: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await call;
  } catch (error) {
    const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
  throw new Error("the management call succeeded");
}

/** A connection id no gateway has issued. */
const unknownId = () => `${randomUUID().replace(/-/g, "").slice(0, 15)}=`;

/** Checks that hold for the real app on the emulator and on a deployed API alike. */
function realAppSuite(target: () => Target): void {
  test("an upgrade without a token is refused with 401", async () => {
    expect(await upgradeStatus(target().wsUrl)).toBe(401);
  });

  test("an upgrade with a bad token is refused with 401", async () => {
    expect(await upgradeStatus(withQuery(target().wsUrl, { token: "not-a-valid-token" }))).toBe(401);
  });

  test("ping answers a pong frame", async () => {
    const client = await openClient(withQuery(target().wsUrl, { token: target().token }));
    client.sendJson({ action: "ping" });
    expect(JSON.parse(await client.next())).toEqual({ type: "pong" });
    await client.close();
  });

  test("an unknown action reaches $default, which answers UNKNOWN_ACTION", async () => {
    const client = await openClient(withQuery(target().wsUrl, { token: target().token }));
    client.sendJson({ action: "noSuchAction" });
    expect(JSON.parse(await client.next())).toMatchObject({ type: "error", code: "UNKNOWN_ACTION" });
    await client.close();
  });

  test("a 33 KB frame closes the connection with 1009", async () => {
    const client = await openClient(withQuery(target().wsUrl, { token: target().token }));
    client.ws.send(JSON.stringify({ action: "ping", pad: "x".repeat(33 * 1024) }));
    expect((await client.closed).code).toBe(1009);
  });

  test("management API: POST delivers, GET describes, DELETE closes, then 410", async () => {
    const { management } = target();
    const { client, connectionId } = await target().openWithId();

    await management.send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: '{"hello":"there"}' }),
    );
    expect(await client.next()).toBe('{"hello":"there"}');

    const info = await management.send(new GetConnectionCommand({ ConnectionId: connectionId }));
    expect(info.$metadata.httpStatusCode).toBe(200);
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(info.LastActiveAt).toBeInstanceOf(Date);
    expect(typeof info.Identity?.SourceIp).toBe("string");

    const deleted = await management.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    expect(deleted.$metadata.httpStatusCode).toBe(204);
    await client.closed;
    // Once closed, the id is gone for every verb.
    await sleep(200);
    const post = await sdkFailure(
      management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: "x" })),
    );
    expect(post).toEqual({ name: "GoneException", status: 410 });
  });

  test("management API: an unsigned call, or one signed for another service, is refused with 403", async () => {
    const url = `${target().managementEndpoint}/@connections/${encodeURIComponent(unknownId())}`;
    const unsigned = await fetch(url, { method: "POST", body: "x" });
    expect(unsigned.status).toBe(403);
    await unsigned.arrayBuffer();
    const shape = signedShape();
    const otherService = await fetch(url, {
      method: "POST",
      body: "x",
      headers: { ...shape, Authorization: (shape.Authorization as string).replace("/execute-api/", "/s3/") },
    });
    expect(otherService.status).toBe(403);
    await otherService.arrayBuffer();
  });

  test("management API: an unknown connection is GoneException 410 for POST, GET and DELETE", async () => {
    const { management } = target();
    const id = unknownId();
    const gone = { name: "GoneException", status: 410 };
    expect(
      await sdkFailure(management.send(new PostToConnectionCommand({ ConnectionId: id, Data: "x" }))),
    ).toEqual(gone);
    expect(await sdkFailure(management.send(new GetConnectionCommand({ ConnectionId: id })))).toEqual(gone);
    expect(await sdkFailure(management.send(new DeleteConnectionCommand({ ConnectionId: id })))).toEqual(
      gone,
    );
  });
}

/** Logs kept in memory, to check what the gateway writes (and that bodies never appear). */
function memoryLogger(): GatewayLogger & { lines: string[] } {
  const lines: string[] = [];
  const write = (level: string) => (o: object, msg?: string) => {
    lines.push(
      JSON.stringify({ level, msg, ...o }, (_k, v) => (v instanceof Error ? { message: v.message } : v)),
    );
  };
  return { lines, info: write("info"), warn: write("warn"), error: write("error") };
}

function managementClient(endpoint: string): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({
    endpoint,
    region: "us-east-1",
    // Requests are SigV4-signed as on AWS; the emulator accepts any signature.
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
}

describe("API Gateway emulator", () => {
  let gw: RunningGateway;
  let fixtures: Fixtures;
  let management: ApiGatewayManagementApiClient;
  const logs = memoryLogger();
  const allow = (extra: Record<string, string> = {}) => withQuery(gw.url, { token: "allow-alice", ...extra });

  /** Opens an authorized connection and finds its id from the recorded $connect event. */
  async function openWithId(extra: Record<string, string> = {}) {
    const probe = randomUUID();
    const client = await openClient(allow({ probe, ...extra }));
    const connect = await fixtures.waitFor(
      (r) => r.routeKey === "$connect" && r.event.queryStringParameters?.probe === probe,
    );
    return { client, connectionId: connect.event.requestContext.connectionId as string, connect };
  }

  beforeAll(async () => {
    fixtures = createFixtures();
    gw = await startGateway({
      port: 0,
      stage: STAGE,
      routes: fixtures.routes,
      routeResponses: fixtures.routeResponses,
      authorizer: fixtures.authorizer,
      stageVariables: { flavour: "local" },
      logger: logs,
    });
    management = managementClient(gw.managementEndpoint);
  });

  afterAll(async () => {
    management.destroy();
    await gw.close();
  });

  describe("the real app's checks", () => {
    realAppSuite(() => ({
      wsUrl: gw.url,
      management,
      managementEndpoint: gw.managementEndpoint,
      token: "allow-alice",
      openWithId,
    }));
  });

  describe("start-up", () => {
    test("the URLs carry the port and the stage, and the api id is AWS-shaped", () => {
      expect(gw.url).toBe(`ws://127.0.0.1:${gw.port}/${STAGE}`);
      expect(gw.managementEndpoint).toBe(`http://127.0.0.1:${gw.port}/${STAGE}`);
      expect(gw.apiId).toMatch(/^[a-z0-9]{10}$/);
    });

    test("an unsupported route selection expression is refused at start", async () => {
      await expect(
        startGateway({
          port: 0,
          stage: STAGE,
          routes: {},
          routeResponses: new Set(),
          routeSelectionExpression: "$request.header.x",
        }),
      ).rejects.toThrow(/routeSelectionExpression/);
    });
  });

  describe("the stage in the path", () => {
    test("only /{stage} upgrades; other paths answer 403", async () => {
      const base = `ws://127.0.0.1:${gw.port}`;
      expect(await upgradeStatus(`${base}/prod?token=allow-alice`)).toBe(403);
      expect(await upgradeStatus(`${base}/?token=allow-alice`)).toBe(403);
      expect(await upgradeStatus(`${base}/${STAGE}/extra?token=allow-alice`)).toBe(403);
      const client = await openClient(allow());
      await client.close();
    });

    test("a plain HTTP GET of the WebSocket URL is not upgraded", async () => {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${gw.port}/${STAGE}`, (res) => {
            res.resume();
            resolve(res.statusCode);
          })
          .on("error", reject);
      });
      expect(status).toBe(426);
    });
  });

  describe("the REQUEST authorizer", () => {
    test("receives AWS's authorizer event for WebSocket", async () => {
      const before = fixtures.authorizerEvents.length;
      const client = await openClient(`${withQuery(gw.url, { token: "allow-bob", tag: "a" })}&tag=b`, {
        headers: { "X-Custom-Header": "Value" },
      });
      await client.close();
      // biome-ignore lint/suspicious/noExplicitAny: untyped event
      const event = fixtures.authorizerEvents[before] as any;
      expect(event.type).toBe("REQUEST");
      expect(event.methodArn).toBe(
        `arn:aws:execute-api:us-east-1:123456789012:${gw.apiId}/${STAGE}/$connect`,
      );
      expect(event.headers["X-Custom-Header"]).toBe("Value"); // names as the client spelled them
      expect(event.headers.Host).toBe(`127.0.0.1:${gw.port}`);
      expect(event.multiValueHeaders["X-Custom-Header"]).toEqual(["Value"]);
      expect(event.queryStringParameters).toEqual({ token: "allow-bob", tag: "b" });
      expect(event.multiValueQueryStringParameters.tag).toEqual(["a", "b"]);
      expect(event.stageVariables).toEqual({ flavour: "local" });
      expect(event.requestContext).toMatchObject({
        routeKey: "$connect",
        eventType: "CONNECT",
        messageId: null,
        stage: STAGE,
        apiId: gw.apiId,
        domainName: `127.0.0.1:${gw.port}`,
      });
      expect(event.requestContext.connectionId).toMatch(ID_PATTERN);
    });

    test("Allow on the method ARN, a matching wildcard, or a Bearer header lets the upgrade through", async () => {
      for (const url of [allow(), withQuery(gw.url, { token: "wildcard" })]) {
        const client = await openClient(url);
        await client.close();
      }
      const viaHeader = await openClient(gw.url, { headers: { Authorization: "Bearer allow-carol" } });
      await viaHeader.close();
    });

    test.each([
      ["deny", 403],
      ["mixed", 403],
      ["other-stage", 403],
      ["no-policy", 403],
      ["bad-context", 500],
      ["boom", 500],
      ["anything-else", 401],
    ])("token %s is refused with HTTP %i and $connect never runs", async (token, status) => {
      const probe = randomUUID();
      expect(await upgradeStatus(withQuery(gw.url, { token, probe }))).toBe(status);
      await sleep(20);
      expect(fixtures.seen.some((r) => r.event.queryStringParameters?.probe === probe)).toBe(false);
    });

    test("principalId and context reach every later event of the connection", async () => {
      const { client, connectionId, connect } = await openWithId();
      const expected = { principalId: "alice", userId: "alice", level: 7, admin: false };
      expect(connect.event.requestContext.authorizer).toMatchObject(expected);
      client.sendJson({ action: "echo" });
      const echoed = JSON.parse(await client.next());
      expect(echoed.requestContext.authorizer).toMatchObject(expected);
      await client.close();
      const disconnect = await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      expect(disconnect.event.requestContext.authorizer).toMatchObject(expected);
    });
  });

  describe("$connect decides the upgrade", () => {
    test.each([
      ["403", 403],
      ["500", 500],
    ])(
      "a $connect answering statusCode %s refuses the upgrade with that status",
      async (connectStatus, status) => {
        const count = gw.connectionCount();
        expect(await upgradeStatus(allow({ connectStatus }))).toBe(status);
        expect(gw.connectionCount()).toBe(count);
      },
    );

    test("a $connect that throws refuses the upgrade with 502, and no $disconnect follows", async () => {
      const probe = randomUUID();
      expect(await upgradeStatus(allow({ connect: "throw", probe }))).toBe(502);
      const connect = await fixtures.waitFor((r) => r.event.queryStringParameters?.probe === probe);
      await sleep(50);
      const id = connect.event.requestContext.connectionId;
      expect(
        fixtures.seen.some((r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === id),
      ).toBe(false);
    });

    test("the subprotocol $connect answers in Sec-WebSocket-Protocol is the one agreed", async () => {
      const client = await openClient(allow({ protocol: "chat.v1" }), { protocols: ["chat.v1", "chat.v0"] });
      expect(client.ws.protocol).toBe("chat.v1");
      await client.close();
    });
  });

  describe("events are AWS-shaped", () => {
    test("CONNECT, MESSAGE and DISCONNECT events", async () => {
      const { client, connectionId, connect } = await openWithId({ extra: "1" });
      const c = connect.event;
      expect(c.headers).toBeDefined();
      expect(c.multiValueHeaders).toBeDefined();
      expect(c.queryStringParameters).toMatchObject({ extra: "1" });
      expect(connectionId).toMatch(ID_PATTERN);
      expect(c.requestContext).toMatchObject({
        routeKey: "$connect",
        eventType: "CONNECT",
        messageDirection: "IN",
        messageId: null,
        stage: STAGE,
        apiId: gw.apiId,
        domainName: `127.0.0.1:${gw.port}`,
        identity: { sourceIp: "127.0.0.1" },
      });
      expect(c.requestContext.requestTime).toMatch(REQUEST_TIME);
      expect(c.requestContext.requestId).toMatch(ID_PATTERN);
      expect(c.requestContext.extendedRequestId).toEqual(expect.any(String));
      expect(typeof c.requestContext.connectedAt).toBe("number");
      expect(typeof c.requestContext.requestTimeEpoch).toBe("number");

      const body = JSON.stringify({ action: "echo", n: 1 });
      client.ws.send(body);
      const m = JSON.parse(await client.next());
      expect(m.body).toBe(body);
      expect(m.isBase64Encoded).toBe(false);
      expect(m.headers).toBeUndefined();
      expect(m.multiValueHeaders).toBeUndefined();
      expect(m.queryStringParameters).toBeUndefined();
      expect(m.requestContext).toMatchObject({
        routeKey: "echo",
        eventType: "MESSAGE",
        messageDirection: "IN",
        connectionId,
        connectedAt: c.requestContext.connectedAt,
        domainName: `127.0.0.1:${gw.port}`,
        apiId: gw.apiId,
        stage: STAGE,
      });
      expect(m.requestContext.messageId).toMatch(ID_PATTERN);
      expect(m.requestContext.requestId).not.toBe(c.requestContext.requestId);

      client.ws.close(4001, "done here");
      const d = (
        await fixtures.waitFor(
          (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
        )
      ).event;
      expect(d.headers).toBeUndefined();
      expect(d.queryStringParameters).toBeUndefined();
      expect(d.requestContext).toMatchObject({
        routeKey: "$disconnect",
        eventType: "DISCONNECT",
        messageId: null,
        disconnectStatusCode: 4001,
        disconnectReason: "done here",
        connectedAt: c.requestContext.connectedAt,
      });
    });
  });

  describe("route selection on $request.body.action", () => {
    test.each([
      ['{"action":"echo"}', "echo"],
      ['{"action":"missing"}', "$default"],
      ["not json at all", "$default"],
      ['["action","echo"]', "$default"],
      ['{"action":7}', "$default"],
      ['{"noAction":true}', "$default"],
      ['{"action":"toString"}', "$default"],
    ])("%s goes to %s", async (frame, routeKey) => {
      const { client, connectionId } = await openWithId();
      client.ws.send(frame);
      await fixtures.waitFor(
        (r) =>
          r.event.requestContext?.connectionId === connectionId &&
          r.event.requestContext.eventType === "MESSAGE",
      );
      const routed = fixtures.seen.filter(
        (r) =>
          r.event.requestContext?.connectionId === connectionId &&
          r.event.requestContext.eventType === "MESSAGE",
      );
      expect(routed.map((r) => r.routeKey)).toEqual([routeKey]);
      await client.close();
    });
  });

  describe("two-way route responses", () => {
    test("a one-way route's body is not sent; a string result is sent as is; no body sends nothing", async () => {
      const client = await openClient(allow());
      client.sendJson({ action: "oneway" });
      client.sendJson({ action: "nobody" });
      client.sendJson({ action: "text" });
      // Only the string result is sent; the other two answer nothing, whatever order they finish in.
      expect(await client.next()).toBe("a plain string result");
      expect(await client.nothingWithin(100)).toBe(true);
      await client.close();
    });

    test("a handler error sends AWS's Internal server error frame and the connection stays open", async () => {
      const { client, connectionId } = await openWithId();
      client.sendJson({ action: "fail" });
      const frame = JSON.parse(await client.next());
      expect(frame).toEqual({
        message: "Internal server error",
        connectionId,
        requestId: expect.stringMatching(ID_PATTERN),
      });
      client.sendJson({ action: "ping" });
      expect(JSON.parse(await client.next())).toEqual({ type: "pong" });
      await client.close();
    });
  });

  describe("ordering", () => {
    test("one connection's frames are separate invocations, running at once: answers come as each ends", async () => {
      const client = await openClient(allow());
      client.sendJson({ action: "slow", ms: 300, n: 1 });
      client.sendJson({ action: "slow", ms: 0, n: 2 });
      client.sendJson({ action: "slow", ms: 150, n: 3 });
      const started = Date.now();
      const order = [await client.next(), await client.next(), await client.next()].map(
        (f) => JSON.parse(f).n,
      );
      expect(order).toEqual([2, 3, 1]);
      // Run one after another, they would take 450 ms.
      expect(Date.now() - started).toBeLessThan(440);
      await client.close();
    });

    test("a slow invocation on one connection does not hold up another", async () => {
      const slow = await openClient(allow());
      const other = await openClient(allow());
      slow.sendJson({ action: "slow", ms: 1000, n: 1 });
      await sleep(20);
      other.sendJson({ action: "ping" });
      expect(JSON.parse(await other.next())).toEqual({ type: "pong" });
      // The other's answer came while the slow one was still running.
      expect(await slow.nothingWithin(0)).toBe(true);
      expect(JSON.parse(await slow.next())).toEqual({ n: 1 });
      await Promise.all([slow.close(), other.close()]);
    });
  });

  describe("frame and message limits", () => {
    test("a frame of exactly 32 KB is accepted", async () => {
      const { client, connectionId } = await openWithId();
      const base = JSON.stringify({ action: "nobody", pad: "" });
      client.ws.send(JSON.stringify({ action: "nobody", pad: "y".repeat(32 * 1024 - base.length) }));
      const got = await fixtures.waitFor(
        (r) => r.routeKey === "nobody" && r.event.requestContext.connectionId === connectionId,
      );
      expect(Buffer.byteLength(got.event.body)).toBe(32 * 1024);
      await client.close();
    });

    test("a 100 KB message in 25 KB frames is delivered whole", async () => {
      const { client, connectionId } = await openWithId();
      const text = JSON.stringify({ action: "nobody", pad: "z".repeat(100 * 1024) });
      for (let i = 0; i < text.length; i += 25 * 1024) {
        client.ws.send(text.slice(i, i + 25 * 1024), { fin: i + 25 * 1024 >= text.length });
      }
      const got = await fixtures.waitFor(
        (r) => r.routeKey === "nobody" && r.event.requestContext.connectionId === connectionId,
      );
      expect(got.event.body).toBe(text);
      await client.close();
    });

    test("a message over 128 KB, even in small frames, closes with 1009 and runs $disconnect", async () => {
      const { client, connectionId } = await openWithId();
      const text = JSON.stringify({ action: "nobody", pad: "z".repeat(130 * 1024) });
      for (let i = 0; i < text.length; i += 26 * 1024) {
        client.ws.send(text.slice(i, i + 26 * 1024), { fin: i + 26 * 1024 >= text.length });
      }
      expect((await client.closed).code).toBe(1009);
      const d = await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      expect(d.event.requestContext.disconnectStatusCode).toBe(1009);
      expect(
        fixtures.seen.some(
          (r) => r.routeKey === "nobody" && r.event.requestContext.connectionId === connectionId,
        ),
      ).toBe(false);
    });

    test("an oversized frame is never routed", async () => {
      const { client, connectionId } = await openWithId();
      client.ws.send(JSON.stringify({ action: "nobody", pad: "q".repeat(40 * 1024) }));
      expect((await client.closed).code).toBe(1009);
      await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      expect(
        fixtures.seen.some(
          (r) => r.routeKey === "nobody" && r.event.requestContext.connectionId === connectionId,
        ),
      ).toBe(false);
    });

    test("a binary frame disconnects with 1003, as AWS does", async () => {
      const { client, connectionId } = await openWithId();
      client.ws.send(Buffer.from([1, 2, 3]));
      expect((await client.closed).code).toBe(1003);
      const d = await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      expect(d.event.requestContext.disconnectStatusCode).toBe(1003);
    });
  });

  describe("management API details", () => {
    test("GET answers ISO times and the identity; lastActiveAt follows the client's messages", async () => {
      const { client, connectionId } = await openWithId();
      const first = await management.send(new GetConnectionCommand({ ConnectionId: connectionId }));
      expect(first.Identity?.SourceIp).toBe("127.0.0.1");
      expect(first.ConnectedAt?.getTime()).toBe(first.LastActiveAt?.getTime());
      await sleep(20);
      client.sendJson({ action: "ping" });
      await client.next();
      const second = await management.send(new GetConnectionCommand({ ConnectionId: connectionId }));
      expect(second.LastActiveAt?.getTime()).toBeGreaterThan(first.LastActiveAt?.getTime() ?? 0);
      await client.close();
    });

    test("the raw answers carry AWS's error headers and bodies", async () => {
      const id = unknownId();
      const res = await fetch(`${gw.managementEndpoint}/@connections/${encodeURIComponent(id)}`, {
        method: "POST",
        body: "x",
        headers: signedShape(),
      });
      expect(res.status).toBe(410);
      expect(res.headers.get("x-amzn-errortype")).toBe("GoneException");
      expect(res.headers.get("x-amzn-requestid")).toEqual(expect.any(String));
      expect(await res.json()).toEqual({ message: null });
    });

    test("POST over 128 KB is PayloadTooLargeException 413; exactly 128 KB is delivered", async () => {
      const { client, connectionId } = await openWithId();
      const tooBig = await sdkFailure(
        management.send(
          new PostToConnectionCommand({ ConnectionId: connectionId, Data: "a".repeat(128 * 1024 + 1) }),
        ),
      );
      expect(tooBig).toEqual({ name: "PayloadTooLargeException", status: 413 });
      await management.send(
        new PostToConnectionCommand({ ConnectionId: connectionId, Data: "b".repeat(128 * 1024) }),
      );
      expect((await client.next()).length).toBe(128 * 1024);
      await client.close();
    });

    test("posted data arrives as text frames, in order", async () => {
      const { client, connectionId } = await openWithId();
      for (let i = 0; i < 20; i++) {
        await management.send(
          new PostToConnectionCommand({ ConnectionId: connectionId, Data: `{"i":${i}}` }),
        );
      }
      const got: number[] = [];
      for (let i = 0; i < 20; i++) got.push(JSON.parse(await client.next()).i);
      expect(got).toEqual([...Array(20).keys()]);
      await client.close();
    });

    test("DELETE closes the connection and $disconnect runs", async () => {
      const { client, connectionId } = await openWithId();
      await management.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
      await client.closed;
      await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      const gone = await sdkFailure(
        management.send(new GetConnectionCommand({ ConnectionId: connectionId })),
      );
      expect(gone).toEqual({ name: "GoneException", status: 410 });
    });

    test("what AWS checks first: a signature of SigV4's shape for execute-api, and no browser Origin", async () => {
      const { client, connectionId } = await openWithId();
      const url = `${gw.managementEndpoint}/@connections/${encodeURIComponent(connectionId)}`;
      const post = async (headers: Record<string, string>) => {
        const res = await fetch(url, { method: "POST", body: "x", headers });
        return { status: res.status, type: res.headers.get("x-amzn-errortype"), body: await res.json() };
      };
      const shape = signedShape();
      const auth = shape.Authorization as string;
      expect(await post({})).toEqual({
        status: 403,
        type: "ForbiddenException",
        body: { message: "Missing Authentication Token" },
      });
      for (const broken of [
        "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/aws4_request",
        auth.replace(/Signature=[0-9a-f]+/, "Signature=not-hex"),
        auth.replace("/execute-api/", "/s3/"),
        auth.replace("SignedHeaders=host;", "SignedHeaders="),
      ]) {
        const refused = await post({ ...shape, Authorization: broken });
        expect({ status: refused.status, type: refused.type }).toEqual({
          status: 403,
          type: "ForbiddenException",
        });
      }
      const { "x-amz-date": _date, ...noDate } = shape;
      expect((await post(noDate)).status).toBe(403);
      expect((await post({ ...shape, Origin: "https://example.com" })).status).toBe(403);
      // The SDK client signs as AWS expects; nothing above reached the connection.
      await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: "signed" }));
      expect(await client.next()).toBe("signed");
      expect(await client.nothingWithin(50)).toBe(true);
      await client.close();
    });

    test("a post to a connection whose $connect is still running answers GoneException 410", async () => {
      const probe = randomUUID();
      const client = await openClient(allow({ connect: "post-self", probe }));
      const post = await fixtures.waitFor(
        (r) => r.routeKey === "$connect:post-self" && r.event.requestContext.connectionId !== undefined,
      );
      expect({ status: post.event.status, errorType: post.event.errorType }).toEqual({
        status: 410,
        errorType: "GoneException",
      });
      await client.close();
    });

    test("a management call on another stage is ForbiddenException 403", async () => {
      const other = managementClient(`http://127.0.0.1:${gw.port}/prod`);
      const { client, connectionId } = await openWithId();
      const failure = await sdkFailure(other.send(new GetConnectionCommand({ ConnectionId: connectionId })));
      expect(failure).toEqual({ name: "ForbiddenException", status: 403 });
      other.destroy();
      await client.close();
    });

    test("connectionCount follows connections opening and closing", async () => {
      const before = gw.connectionCount();
      const a = await openClient(allow());
      const b = await openClient(allow());
      expect(gw.connectionCount()).toBe(before + 2);
      await a.close();
      await b.close();
      await sleep(50);
      expect(gw.connectionCount()).toBe(before);
    });
  });

  describe("robustness", () => {
    test("garbage on the socket, a bad upgrade and invalid UTF-8 do not stop the gateway", async () => {
      await new Promise<void>((resolve) => {
        const socket = net.connect(gw.port, "127.0.0.1", () => socket.end("\x00\x01garbage\r\n\r\n"));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
      });
      const badUpgrade = await new Promise<number | undefined>((resolve, reject) => {
        const req = http.request({
          port: gw.port,
          host: "127.0.0.1",
          path: `/${STAGE}?token=allow-alice`,
          headers: { Connection: "Upgrade", Upgrade: "websocket" },
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on("upgrade", () => reject(new Error("upgraded without a key")));
        req.on("error", reject);
        req.end();
      });
      expect(badUpgrade).toBe(400);

      const { client } = await openWithId();
      // A text frame whose payload is not UTF-8: the WebSocket protocol closes with 1007.
      client.ws.send(Buffer.from([0xff, 0xfe, 0xfd]), { binary: false });
      expect((await client.closed).code).toBe(1007);

      const after = await openClient(allow());
      after.sendJson({ action: "ping" });
      expect(JSON.parse(await after.next())).toEqual({ type: "pong" });
      await after.close();
    });

    test("logs are structured and never hold a message body", async () => {
      const marker = `secret-${randomUUID()}`;
      const { client, connectionId } = await openWithId();
      client.sendJson({ action: "echo", text: marker });
      await client.next();
      client.sendJson({ action: "fail", text: marker });
      await client.next();
      await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: marker }));
      await client.next();
      await client.close();
      await fixtures.waitFor(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
      );
      const all = logs.lines.join("\n");
      expect(all).toContain(connectionId);
      expect(all).not.toContain(marker);
    });
  });
});

describe("API Gateway emulator: limits in time, no $default, shutdown", () => {
  let gw: RunningGateway;
  let fixtures: Fixtures;

  beforeAll(async () => {
    fixtures = createFixtures();
    const { $default: _unused, ...routes } = fixtures.routes;
    gw = await startGateway({
      port: 0,
      stage: "test",
      routes,
      routeResponses: fixtures.routeResponses,
      idleTimeoutMs: 400,
      maxLifetimeMs: 1200,
      integrationTimeoutMs: 150,
    });
  });

  afterAll(async () => {
    await gw.close();
  });

  test("no authorizer: the upgrade needs no token", async () => {
    const client = await openClient(gw.url);
    await client.close();
  });

  test("without $default, an unmatched frame gets AWS's Forbidden frame", async () => {
    const client = await openClient(gw.url);
    client.sendJson({ action: "missing" });
    const frame = JSON.parse(await client.next());
    expect(frame).toEqual({
      message: "Forbidden",
      connectionId: expect.stringMatching(ID_PATTERN),
      requestId: expect.stringMatching(ID_PATTERN),
    });
    client.ws.send("not json");
    expect(JSON.parse(await client.next()).message).toBe("Forbidden");
    await client.close();
  });

  test("a handler past the integration timeout gets AWS's timed-out frame", async () => {
    const client = await openClient(gw.url);
    client.sendJson({ action: "slow", ms: 300, n: 1 });
    expect(JSON.parse(await client.next())).toMatchObject({ message: "Endpoint request timed out" });
    await client.close();
  });

  test("an idle connection is closed with 1001 Going away and gets $disconnect", async () => {
    const client = await openClient(gw.url);
    const closed = await client.closed;
    expect(closed).toEqual({ code: 1001, reason: "Going away" });
    const d = await fixtures.waitFor(
      (r) => r.routeKey === "$disconnect" && r.event.requestContext.disconnectStatusCode === 1001,
    );
    expect(d.event.requestContext.disconnectReason).toBe("Going away");
  });

  test("messages keep a connection from idling, but not past its maximum lifetime", async () => {
    const client = await openClient(gw.url);
    const opened = Date.now();
    const keepAlive = setInterval(() => {
      if (client.ws.readyState === WebSocket.OPEN) client.sendJson({ action: "ping" });
    }, 100);
    const closed = await client.closed;
    clearInterval(keepAlive);
    expect(closed.code).toBe(1001);
    // Closed by the lifetime (1200 ms), well after the idle timeout (400 ms) would have struck.
    expect(Date.now() - opened).toBeGreaterThanOrEqual(1100);
  });

  test("close() closes every connection with $disconnect for each, then the server", async () => {
    const clients: RawClient[] = await Promise.all([
      openClient(gw.url),
      openClient(gw.url),
      openClient(gw.url),
    ]);
    const disconnectsBefore = fixtures.seen.filter((r) => r.routeKey === "$disconnect").length;
    await gw.close();
    for (const client of clients) expect((await client.closed).code).toBe(1001);
    expect(fixtures.seen.filter((r) => r.routeKey === "$disconnect").length).toBe(disconnectsBefore + 3);
    expect(gw.connectionCount()).toBe(0);
    await expect(openClient(gw.url)).rejects.toThrow();
  });
});

describe("API Gateway emulator: throttles, bounds, best-effort $disconnect and the meter", () => {
  const running: RunningGateway[] = [];
  const clients: ApiGatewayManagementApiClient[] = [];

  /** A gateway with the fixtures and the limits given (AWS's defaults for the rest). */
  async function start(limits: GatewayOptions["limits"], extra: Partial<GatewayOptions> = {}) {
    const fixtures = createFixtures();
    const gw = await startGateway({
      port: 0,
      stage: STAGE,
      routes: fixtures.routes,
      routeResponses: fixtures.routeResponses,
      authorizer: fixtures.authorizer,
      limits,
      ...extra,
    });
    running.push(gw);
    const management = managementClient(gw.managementEndpoint);
    clients.push(management);
    const url = (extraQuery: Record<string, string> = {}) =>
      withQuery(gw.url, { token: "allow-alice", ...extraQuery });
    const openWithId = async () => {
      const probe = randomUUID();
      const client = await openClient(url({ probe }));
      const connect = await fixtures.waitFor(
        (r) => r.routeKey === "$connect" && r.event.queryStringParameters?.probe === probe,
      );
      return { client, connectionId: connect.event.requestContext.connectionId as string };
    };
    return { gw, fixtures, management, url, openWithId };
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await Promise.all(running.splice(0).map((gw) => gw.close()));
  });

  test("@connections calls share the account's rate with the frames: over it, 429 LimitExceededException", async () => {
    // The upgrade takes one token of the ten; nothing refills them within the test (0.01 a second).
    const { management, openWithId } = await start({ account: { ratePerSecond: 0.01, burst: 10 } });
    const { client, connectionId } = await openWithId();
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: `{"i":${i}}` })).then(
          () => "ok",
          (e: { name: string; $metadata?: { httpStatusCode?: number } }) =>
            `${e.name} ${e.$metadata?.httpStatusCode}`,
        ),
      ),
    );
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(9);
    expect(outcomes.filter((o) => o === "LimitExceededException 429")).toHaveLength(3);
    // The bucket is empty for the client's frames too: AWS's throttled frame.
    client.sendJson({ action: "ping" });
    for (let i = 0; i < 9; i++) await client.next();
    expect(JSON.parse(await client.next())).toMatchObject({ message: "Too Many Requests", connectionId });
    await client.close();
  });

  test("new connections over the rate are refused with 429", async () => {
    const { url } = await start({ newConnections: { ratePerSecond: 0.01, burst: 1 } });
    const first = await openClient(url());
    expect(await upgradeStatus(url())).toBe(429);
    await first.close();
  });

  test("the stage's route throttle holds each route to its rate", async () => {
    const { openWithId } = await start({ route: { ratePerSecond: 0.01, burst: 2 } });
    const { client } = await openWithId();
    for (let i = 0; i < 3; i++) client.sendJson({ action: "ping" });
    const answers = [await client.next(), await client.next(), await client.next()].map((f) => JSON.parse(f));
    expect(answers.filter((a) => a.type === "pong")).toHaveLength(2);
    expect(answers.filter((a) => a.message === "Too Many Requests")).toHaveLength(1);
    // Another route has a bucket of its own.
    client.sendJson({ action: "slow", ms: 0, n: 7 });
    expect(JSON.parse(await client.next())).toEqual({ n: 7 });
    await client.close();
  });

  test("invocations are bounded: past the local slots a connection's frames wait, past its queue they are throttled", async () => {
    const { gw, openWithId } = await start({ localSlots: 2, connectionQueue: 2 });
    const { client } = await openWithId();
    const started = Date.now();
    for (let n = 1; n <= 6; n++) client.sendJson({ action: "slow", ms: 200, n });
    let most = 0;
    const watch = setInterval(() => {
      most = Math.max(most, gw.invocations().running);
    }, 5);
    const frames = [];
    for (let i = 0; i < 6; i++) frames.push(JSON.parse(await client.next()));
    clearInterval(watch);
    expect(frames.filter((f) => f.message === "Too Many Requests")).toHaveLength(2);
    expect(
      frames
        .filter((f) => f.n !== undefined)
        .map((f) => f.n)
        .sort(),
    ).toEqual([1, 2, 3, 4]);
    expect(most).toBeLessThanOrEqual(2);
    // Two at a time: the last two answers came after two rounds.
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(gw.meter.snapshot().apiGateway.throttled.connectionQueue).toBe(2);
    await client.close();
  });

  test("past Lambda's concurrency, a frame is throttled as Lambda throttles it", async () => {
    const { gw, openWithId } = await start({ concurrency: 2 });
    const { client } = await openWithId();
    for (let n = 1; n <= 3; n++) client.sendJson({ action: "slow", ms: 200, n });
    const frames = [];
    for (let i = 0; i < 3; i++) frames.push(JSON.parse(await client.next()));
    expect(frames[0]).toMatchObject({ message: "Too Many Requests" });
    expect(
      frames
        .slice(1)
        .map((f) => f.n)
        .sort(),
    ).toEqual([1, 2]);
    expect(gw.meter.snapshot().apiGateway.throttled.concurrency).toBe(1);
    await client.close();
  });

  test("a closed connection's frames still waiting are never invoked", async () => {
    const { gw, fixtures, openWithId } = await start({ localSlots: 1 });
    const { client, connectionId } = await openWithId();
    client.sendJson({ action: "slow", ms: 300, n: 1 });
    for (let i = 0; i < 3; i++) client.sendJson({ action: "nobody" });
    await sleep(50);
    expect(gw.invocations()).toEqual({ running: 1, waiting: 3 });
    client.ws.terminate();
    await fixtures.waitFor(
      (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === connectionId,
    );
    await sleep(400);
    const mine = (key: string) =>
      fixtures.seen.filter((r) => r.routeKey === key && r.event.requestContext.connectionId === connectionId);
    expect(mine("slow")).toHaveLength(1); // the one already running finishes, as a Lambda would
    expect(mine("nobody")).toHaveLength(0);
    expect(gw.invocations()).toEqual({ running: 0, waiting: 0 });
  });

  test("a client that does not read fills its buffer: posts answer 429 LimitExceededException, memory stays bounded", async () => {
    const { management, openWithId } = await start({ clientBufferBytes: 256 * 1024 });
    const { client, connectionId } = await openWithId();
    client.ws.pause();
    const data = "p".repeat(100 * 1024);
    let refused: { name: string; status: number | undefined } | undefined;
    let sent = 0;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
        sent++;
      } catch (error) {
        const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
        refused = { name: e.name, status: e.$metadata?.httpStatusCode };
      }
    }
    expect(refused).toEqual({ name: "LimitExceededException", status: 429 });
    expect(sent).toBeGreaterThan(0);
    // Reading again drains it: what was accepted arrives, and posts go through once more.
    client.ws.resume();
    for (let i = 0; i < sent; i++) expect((await client.next(5000)).length).toBe(100 * 1024);
    await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: "after" }));
    expect(await client.next()).toBe("after");
    await client.close();
  });

  test("$disconnect is best effort: a share can be dropped, or run late", async () => {
    const dropped = await start({ disconnectDropRate: 1 });
    const a = await dropped.openWithId();
    await a.client.close();
    await sleep(300);
    expect(
      dropped.fixtures.seen.some(
        (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === a.connectionId,
      ),
    ).toBe(false);
    expect(dropped.gw.meter.snapshot().apiGateway.throttled.disconnectDropped).toBe(1);

    const late = await start({ disconnectDelayMs: 400 });
    const b = await late.openWithId();
    const closedAt = Date.now();
    await b.client.close();
    await late.fixtures.waitFor(
      (r) => r.routeKey === "$disconnect" && r.event.requestContext.connectionId === b.connectionId,
    );
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(380);
  });

  test("the meter counts messages in 32 KB units both ways, connection minutes and invocations by handler", async () => {
    const { gw, management, openWithId } = await start({});
    const { client, connectionId } = await openWithId();
    client.sendJson({ action: "echo" });
    await client.next();
    await management.send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: "m".repeat(40 * 1024) }),
    );
    await client.next();
    await client.close();
    await sleep(100);
    const m = gw.meter.snapshot();
    expect(m.apiGateway).toMatchObject({ framesIn: 1, messagesIn: 1, framesOut: 2, messagesOut: 3 });
    expect(m.apiGateway.connections).toBe(1);
    expect(m.apiGateway.connectionMinutes).toBeGreaterThan(0);
    expect(m.apiGateway.managementCalls).toBe(1);
    expect(Object.keys(m.lambda.byHandler).sort()).toEqual([
      "$authorizer",
      "$connect",
      "$disconnect",
      "echo",
    ]);
    expect(m.lambda.invocations).toBe(4);
    expect(m.lambda.gbSeconds).toBeGreaterThan(0);
  });
});

const deployedEnv = {
  wsUrl: process.env.CONFORMANCE_WS_URL,
  managementEndpoint: process.env.CONFORMANCE_MANAGEMENT_ENDPOINT,
  token: process.env.CONFORMANCE_TOKEN,
};

/**
 * A deployed app does not tell a client its connection id, so the deployed run finds it in the
 * app's connection table (CONFORMANCE_TABLE_NAME, default "chat"): the newest record of the token's
 * user written since the connection was opened.
 */
async function deployedOpenWithId(
  wsUrl: string,
  token: string,
): Promise<{ client: RawClient; connectionId: string }> {
  const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as {
    sub?: string;
  };
  const since = Date.now() - 5000;
  const client = await openClient(withQuery(wsUrl, { token }));
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}));
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      const out = await doc.send(
        new ScanCommand({
          TableName: process.env.CONFORMANCE_TABLE_NAME ?? "chat",
          FilterExpression: "sk = :meta AND userId = :user AND connectedAt >= :since",
          ExpressionAttributeValues: { ":meta": "META", ":user": payload.sub, ":since": since },
        }),
      );
      const newest = (out.Items ?? []).sort((a, b) => Number(b.connectedAt) - Number(a.connectedAt))[0];
      if (newest?.connectionId) return { client, connectionId: String(newest.connectionId) };
      await sleep(250);
    }
  } finally {
    doc.destroy();
  }
  await client.close();
  throw new Error("the connection's record was not found in the app's table (set CONFORMANCE_TABLE_NAME)");
}

/**
 * The deployed app's routes of PROTOCOL.md v1.1's room actions (the emulator's own suites run on
 * fixture handlers; the real handlers' room rules are test/rooms.test.ts's).
 */
function roomRoutesSuite(target: () => { wsUrl: string; token: string }): void {
  test("each action of v1.1 has its route: a frame missing its fields answers BAD_REQUEST for that action", async () => {
    const client = await openClient(withQuery(target().wsUrl, { token: target().token }));
    const actions = ["createRoom", "invite", "removeMember", "openDirect", "markRead"];
    for (const action of [...actions, "resume", "getPresence", "typing"]) {
      client.sendJson({ action });
      expect(JSON.parse(await client.next())).toMatchObject({ type: "error", code: "BAD_REQUEST", action });
    }
    client.sendJson({ action: "listRooms" });
    expect(JSON.parse(await client.next())).toMatchObject({ type: "rooms", rooms: expect.any(Array) });
    // resume posts each room's frames through the management API, which its function must be allowed to call.
    const roomId = `conformance-${randomUUID()}`;
    client.sendJson({ action: "resume", rooms: [{ roomId, afterSeq: 0 }] });
    const frames = [await client.next(), await client.next(), await client.next()].map((f) => JSON.parse(f));
    expect(frames.map((f) => f.type)).toEqual(["joined", "history", "resumed"]);
    expect(frames[2]).toEqual({ type: "resumed", rooms: [roomId], failed: [] });
    await client.close();
  });
}

if (deployedEnv.wsUrl && deployedEnv.managementEndpoint && deployedEnv.token) {
  const { wsUrl, managementEndpoint, token } = deployedEnv;
  describe("deployed API Gateway", () => {
    const management = new ApiGatewayManagementApiClient({ endpoint: managementEndpoint, maxAttempts: 2 });
    afterAll(() => management.destroy());
    realAppSuite(() => ({
      wsUrl,
      management,
      managementEndpoint,
      token,
      openWithId: () => deployedOpenWithId(wsUrl, token),
    }));
    roomRoutesSuite(() => ({ wsUrl, token }));
  });
} else {
  console.log(
    "gateway conformance: the deployed API run is skipped; set CONFORMANCE_WS_URL, CONFORMANCE_MANAGEMENT_ENDPOINT, CONFORMANCE_TOKEN and AWS credentials to run it",
  );
  describe.skip("deployed API Gateway (needs CONFORMANCE_WS_URL, CONFORMANCE_MANAGEMENT_ENDPOINT, CONFORMANCE_TOKEN)", () => {
    realAppSuite(() => {
      throw new Error("not configured");
    });
    roomRoutesSuite(() => {
      throw new Error("not configured");
    });
  });
}
