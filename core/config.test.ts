import { ConfigError, loadConfig } from "./config";

test("a missing variable is named in the error, with what to set it to", () => {
  const config = loadConfig({});
  expect(() => config.redis()).toThrow(ConfigError);
  expect(() => config.redis()).toThrow(/REDIS_URL/);
  expect(() => config.kafka()).toThrow(/KAFKA_BROKERS/);
});

test("a bad value is named too", () => {
  expect(() => loadConfig({ KAFKA_BROKERS: "no-port" }).kafka()).toThrow(/KAFKA_BROKERS.*host:port/);
  expect(() => loadConfig({ RATE_LIMIT_PER_SECOND: "-3" }).rateLimit()).toThrow(/RATE_LIMIT_PER_SECOND/);
});

test("defaults and lists are typed", () => {
  const config = loadConfig({ KAFKA_BROKERS: "a:9092, b:9093", REDIS_URL: "redis://127.0.0.1:6379" });
  expect(config.kafka().brokers).toEqual(["a:9092", "b:9093"]);
  expect(config.kafka().messagesTopic).toBe("chat.messages");
  // Per user by default: one token's many connections share one allowance.
  expect(config.rateLimit()).toEqual({ perSecond: 20, burst: 40, scope: "user" });
  expect(config.actionRateLimit()).toEqual({ perSecond: 10, burst: 30, scope: "user" });
  expect(config.rooms()).toEqual({ maxMembers: 5000, maxConnectionsPerUser: 10 });
  expect(config.redis().recentHistory).toBe(200);
});
