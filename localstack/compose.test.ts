/**
 * localstack/docker-compose.yml, checked without a Docker engine: it parses, has the services the
 * LocalStack profile points at (same host names and ports as LOCALSTACK_SERVICES), publishes ports
 * on 127.0.0.1 only, needs LOCALSTACK_AUTH_TOKEN, and runs the Kafka version the tests run.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { LOCALSTACK_SERVICES } from "../infra/chat-stack";

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  environment?: Record<string, string | number>;
  networks?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
  networks?: Record<string, { name?: string }>;
  volumes?: Record<string, unknown>;
}

const file = path.join(__dirname, "docker-compose.yml");
const compose = parse(readFileSync(file, "utf8"), { strict: true, uniqueKeys: true }) as Compose;
const services = compose.services;

test("it is a compose file with the four services, each with an image and a health check", () => {
  expect(Object.keys(services).sort()).toEqual(["kafka", "localstack", "postgres", "redis"]);
  for (const [name, service] of Object.entries(services)) {
    expect([name, typeof service.image]).toEqual([name, "string"]);
    expect([name, Array.isArray(service.healthcheck?.test)]).toEqual([name, true]);
    for (const dep of Object.keys(service.depends_on ?? {})) expect(Object.keys(services)).toContain(dep);
    for (const net of service.networks ?? []) expect(Object.keys(compose.networks ?? {})).toContain(net);
  }
});

test("every published port is bound to 127.0.0.1", () => {
  const ports = Object.values(services).flatMap((s) => s.ports ?? []);
  expect(ports.length).toBeGreaterThanOrEqual(5);
  for (const port of ports) expect(port).toMatch(/^127\.0\.0\.1:\d+(-\d+)?:\d+(-\d+)?$/);
});

test("LocalStack needs the auth token, serves the edge and WebSocket ports, and puts functions on the network", () => {
  const localstack = services.localstack as Service;
  expect(String(localstack.environment?.LOCALSTACK_AUTH_TOKEN)).toMatch(/^\$\{LOCALSTACK_AUTH_TOKEN:\?.+\}$/);
  const edgePort = LOCALSTACK_SERVICES.edge.split(":")[1];
  expect(localstack.ports).toEqual(
    expect.arrayContaining([`127.0.0.1:${edgePort}:${edgePort}`, "127.0.0.1:4510-4559:4510-4559"]),
  );
  const network = compose.networks?.chat?.name;
  expect(network).toBeDefined();
  expect(localstack.environment?.LAMBDA_DOCKER_NETWORK).toBe(network);
  expect(Object.keys(localstack.depends_on ?? {}).sort()).toEqual(["kafka", "postgres", "redis"]);
});

test("the host names and ports the profile gives the functions are the compose services'", () => {
  const redis = new URL(LOCALSTACK_SERVICES.redisUrl);
  expect(services[redis.hostname]).toBeDefined();
  expect(redis.port).toBe("6379");
  const [kafkaHost, kafkaPort] = LOCALSTACK_SERVICES.kafkaBrokers.split(":");
  expect(String(services[kafkaHost as string]?.environment?.KAFKA_ADVERTISED_LISTENERS)).toContain(
    `PLAINTEXT://${kafkaHost}:${kafkaPort}`,
  );
  const db = new URL(LOCALSTACK_SERVICES.databaseUrl);
  const postgres = services[db.hostname];
  expect(postgres?.environment).toMatchObject({
    POSTGRES_USER: db.username,
    POSTGRES_PASSWORD: db.password,
    POSTGRES_DB: db.pathname.slice(1),
  });
});

test("Kafka runs the broker version of the tests, in KRaft mode, without auto-created topics", () => {
  const pom = readFileSync(path.join(__dirname, "..", "local", "kafka", "pom.xml"), "utf8");
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1];
  expect(version).toBeDefined();
  const kafka = services.kafka as Service;
  expect(kafka.image).toBe(`apache/kafka:${version}`);
  expect(kafka.environment).toMatchObject({
    KAFKA_PROCESS_ROLES: "broker,controller",
    KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
  });
});
