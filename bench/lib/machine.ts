/** What the figures were measured on: the machine, the runtimes and the versions of what was compared. */
import { readFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

function versionOf(pkg: string): string | undefined {
  try {
    const file = join(ROOT, "node_modules", pkg, "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** The machine the run measured. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  release: string;
  node: string;
  kafka?: string;
  redis?: string;
  postgres?: string;
  versions: Record<string, string | undefined>;
}

/** Reads the machine's facts and the installed versions of the libraries the benchmark compares. */
export function machineInfo(extra: { kafka?: string; redis?: string; postgres?: string }): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.arch()}`,
    release: os.release(),
    node: process.version,
    ...extra,
    versions: Object.fromEntries(
      [
        "ws",
        "socket.io",
        "socket.io-client",
        "@socket.io/redis-adapter",
        "ioredis",
        "kafkajs",
        "pg",
        "@prisma/client",
        "@aws-sdk/client-apigatewaymanagementapi",
        "esbuild",
        "dynalite",
        "typescript",
      ].map((p) => [p, versionOf(p)]),
    ),
  };
}
