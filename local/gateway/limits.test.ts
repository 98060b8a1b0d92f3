import { InvocationPool } from "./invocations";
import {
  connectionTimesFromEnv,
  DEFAULT_LIMITS,
  GatewaySettingError,
  handlerThreadsFromEnv,
  limitsFromEnv,
} from "./settings";
import { signatureProblem } from "./sigv4";
import { TokenBucket } from "./throttle";

describe("TokenBucket", () => {
  test("a burst, then the rate", () => {
    let now = 0;
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3 }, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    now += 100; // one token a tenth of a second
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
    now += 10_000; // never more than the burst
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });
});

describe("InvocationPool", () => {
  const deferred = () => {
    let resolve: () => void = () => {};
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    return { promise, resolve };
  };

  test("runs up to its slots at once, queues per connection up to its bound, refuses past it", async () => {
    const pool = new InvocationPool(2, 1000, 2, () => {});
    const gates = Array.from({ length: 5 }, deferred);
    const ran: number[] = [];
    const submit = (i: number, key = "a") =>
      pool.submit(key, async () => {
        ran.push(i);
        await gates[i]?.promise;
      });
    expect([submit(0), submit(1), submit(2), submit(3), submit(4)]).toEqual([
      "started",
      "started",
      "queued",
      "queued",
      "overQueue",
    ]);
    expect(pool.running()).toBe(2);
    expect(pool.waiting()).toBe(2);
    gates[0]?.resolve();
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual([0, 1, 2]);
    for (const g of gates) g.resolve();
    await pool.idle();
    expect(ran).toEqual([0, 1, 2, 3]);
  });

  test("in flight past the concurrency is refused, running or waiting", () => {
    const pool = new InvocationPool(1, 3, 10, () => {});
    const forever = () => new Promise<void>(() => {});
    expect([1, 2, 3, 4].map((i) => pool.submit(`k${i}`, forever))).toEqual([
      "started",
      "queued",
      "queued",
      "overConcurrency",
    ]);
  });

  test("waiting work is served connection by connection: a burst does not hold up another connection", async () => {
    const pool = new InvocationPool(1, 1000, 100, () => {});
    const gate = deferred();
    const ran: string[] = [];
    pool.submit("burst", async () => {
      await gate.promise;
    });
    for (let i = 0; i < 5; i++) pool.submit("burst", async () => void ran.push(`burst${i}`));
    pool.submit("calm", async () => void ran.push("calm"));
    gate.resolve();
    await pool.idle();
    expect(ran.indexOf("calm")).toBe(1);
  });

  test("a forgotten connection's waiting work never runs; others' does", async () => {
    const pool = new InvocationPool(1, 1000, 10, () => {});
    const gate = deferred();
    const ran: string[] = [];
    pool.submit("a", async () => {
      ran.push("a0");
      await gate.promise;
    });
    pool.submit("a", async () => {
      ran.push("a1");
    });
    pool.submit("b", async () => {
      ran.push("b0");
    });
    expect(pool.forget("a")).toBe(1);
    gate.resolve();
    await pool.idle();
    expect(ran).toEqual(["a0", "b0"]);
  });
});

describe("limitsFromEnv", () => {
  test("AWS's defaults, the route throttle following the account's unless set", () => {
    expect(limitsFromEnv({})).toEqual(DEFAULT_LIMITS);
    const set = limitsFromEnv({
      GATEWAY_ACCOUNT_RPS: "50",
      GATEWAY_ACCOUNT_BURST: "20",
      GATEWAY_DISCONNECT_DROP: "0.5",
    });
    expect(set.account).toEqual({ ratePerSecond: 50, burst: 20 });
    expect(set.route).toEqual({ ratePerSecond: 50, burst: 20 });
    expect(set.disconnectDropRate).toBe(0.5);
  });

  test("a bad value names the setting", () => {
    expect(() => limitsFromEnv({ GATEWAY_DISCONNECT_DROP: "2" })).toThrow(GatewaySettingError);
    expect(() => limitsFromEnv({ GATEWAY_LAMBDA_CONCURRENCY: "many" })).toThrow(/GATEWAY_LAMBDA_CONCURRENCY/);
  });
});

describe("connectionTimesFromEnv", () => {
  test("unset leaves the gateway's own; set shortens them", () => {
    expect(connectionTimesFromEnv({})).toEqual({ idleTimeoutMs: undefined, maxLifetimeMs: undefined });
    expect(connectionTimesFromEnv({ GATEWAY_IDLE_TIMEOUT_MS: "", GATEWAY_MAX_LIFETIME_MS: "5000" })).toEqual({
      idleTimeoutMs: undefined,
      maxLifetimeMs: 5000,
    });
  });

  test.each(["0", "-1", "1.5", "soon"])("%s is refused with a sentence naming the setting", (value) => {
    expect(() => connectionTimesFromEnv({ GATEWAY_IDLE_TIMEOUT_MS: value })).toThrow(GatewaySettingError);
    expect(() => connectionTimesFromEnv({ GATEWAY_IDLE_TIMEOUT_MS: value })).toThrow(
      `GATEWAY_IDLE_TIMEOUT_MS must be a whole number of ms ≥ 1 (it is "${value}")`,
    );
  });
});

describe("handlerThreadsFromEnv", () => {
  test("one thread beside the gateway unless set; 0 runs the handlers in the gateway's event loop", () => {
    expect(handlerThreadsFromEnv({})).toBe(1);
    expect(handlerThreadsFromEnv({ GATEWAY_HANDLER_THREADS: "0" })).toBe(0);
    expect(handlerThreadsFromEnv({ GATEWAY_HANDLER_THREADS: "3" })).toBe(3);
  });

  test.each(["-1", "1.5", "17", "two"])("%s is refused with a sentence naming the setting", (value) => {
    expect(() => handlerThreadsFromEnv({ GATEWAY_HANDLER_THREADS: value })).toThrow(
      `GATEWAY_HANDLER_THREADS must be a whole number from 0 to 16 (it is "${value}")`,
    );
  });
});

describe("signatureProblem", () => {
  const date = "20261202T010203Z";
  const good = `AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${"a".repeat(64)}`;

  test("a SigV4 header of the right shape for execute-api passes", () => {
    expect(
      signatureProblem({ authorization: good, "x-amz-date": date }, "/dev/@connections/x"),
    ).toBeUndefined();
  });

  test.each([
    ["no signature", {}],
    [
      "another algorithm",
      { authorization: good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "x-amz-date": date },
    ],
    ["another service", { authorization: good.replace("execute-api", "s3"), "x-amz-date": date }],
    ["host not signed", { authorization: good.replace("host;", ""), "x-amz-date": date }],
    ["a short signature", { authorization: good.replace(/a{64}/, "abc"), "x-amz-date": date }],
    ["no date", { authorization: good }],
    ["a date outside the scope", { authorization: good, "x-amz-date": "20261203T010203Z" }],
  ])("%s is refused", (_label, headers) => {
    expect(signatureProblem(headers, "/dev/@connections/x")).toEqual(expect.any(String));
  });

  test("a presigned URL is checked the same way", () => {
    const q = `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261202%2Fus-east-1%2Fexecute-api%2Faws4_request&X-Amz-Date=${date}&X-Amz-SignedHeaders=host&X-Amz-Signature=${"b".repeat(64)}`;
    expect(signatureProblem({}, `/dev/@connections/x?${q}`)).toBeUndefined();
    expect(signatureProblem({}, `/dev/@connections/x?${q.replace("execute-api", "s3")}`)).toEqual(
      expect.any(String),
    );
  });
});
