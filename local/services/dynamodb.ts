/**
 * DynamoDB for the local stack and the tests: dynalite, in this process, in memory, or on disk (a
 * LevelDB folder, through dynalite's `path` option) when given a path. It is not a child process, so
 * it has no pid, kill() or restart(); it ends with us.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ServiceStartError } from "./errors";
import type { RunningService } from "./types";

/** Options of {@link startDynamo}. */
export interface DynamoOptions {
  /** The port; default a free one from the OS. */
  port?: number;
  /** Progress for people; one line per call. */
  onProgress?: (line: string) => void;
  /** A folder to keep the tables in (LevelDB), reused by the next start; default in memory. */
  path?: string;
}

type Dynalite = (options: {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;

/**
 * Starts dynalite on 127.0.0.1 (tables become ACTIVE at once, so tests need not wait) and answers its
 * endpoint `http://127.0.0.1:<port>`.
 */
export async function startDynamo(options: DynamoOptions = {}): Promise<RunningService> {
  let dynalite: Dynalite;
  try {
    // dynalite ships no types; its factory is the module itself.
    dynalite = require("dynalite") as Dynalite;
  } catch (error) {
    throw new ServiceStartError(
      "dynalite not found: npm install (it is a dev dependency), or set DYNAMODB_ENDPOINT",
      {
        cause: error,
      },
    );
  }
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: options.path });
  await new Promise<void>((done, fail) => {
    server.once("error", (error) =>
      fail(new ServiceStartError(`dynalite could not listen: ${error.message}`, { cause: error })),
    );
    server.listen(options.port ?? 0, "127.0.0.1", () => done());
  });
  const { port } = server.address() as AddressInfo;
  const where = options.path ? `, tables in ${options.path}` : "";
  options.onProgress?.(`started DynamoDB (dynalite, in-process${where}) on 127.0.0.1:${port}`);
  let stopped: Promise<void> | undefined;
  return {
    name: "dynamodb",
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      stopped ??= new Promise<void>((done) => {
        // SDK clients keep connections alive; without this, close() waits for them to time out.
        server.closeAllConnections();
        server.close(() => done());
      });
      return stopped;
    },
  };
}
