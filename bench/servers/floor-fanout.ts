/**
 * The architecture's floor, fan-out side: a process of its own, as the fan-out worker is, that reads
 * the stream the floor's gateway appends to (XREAD, blocking) and posts each message to every
 * member's connection through the gateway's `POST /@connections/{id}`, on undici's kept-alive pool.
 * A connection's frames go out in order, one POST at a time; those that arrive while its POST is in
 * flight go out together in the next (PROTOCOL.md's batched frames, one JSON object a line). A
 * room's members are listed once (SMEMBERS) and kept. Nothing else: no lease, no claim, no cursor
 * recorded, no retry; what this leaves out is what this project adds for its guarantees.
 *
 * Uses REDIS_URL, FLOOR_ID and FLOOR_MANAGEMENT_URL. Prints `BENCH_READY {}`; SIGTERM stops it.
 */
import { Redis } from "ioredis";
import { bareClient } from "../lib/bare-client";
import { floorKeys } from "./floor-keys";
import { requiredEnv, serve, stopOnSignalOrParent } from "./lifecycle";

const CONCURRENCY = 64;

async function main(): Promise<void> {
  const keys = floorKeys(requiredEnv("FLOOR_ID"));
  const redis = new Redis(requiredEnv("REDIS_URL"));
  const reader = redis.duplicate();
  const management = bareClient(requiredEnv("FLOOR_MANAGEMENT_URL"), CONCURRENCY);
  const members = new Map<string, string[]>();
  /** Frames waiting for a connection's POST in flight; a connection in the map has one in flight. */
  const waiting = new Map<string, string[]>();
  let running = true;

  const post = (connectionId: string, body: string): void => {
    waiting.set(connectionId, []);
    management
      .post(`/@connections/${encodeURIComponent(connectionId)}`, { "content-type": "application/json" }, body)
      .catch(() => undefined)
      .then(() => {
        const next = waiting.get(connectionId) ?? [];
        if (next.length > 0) post(connectionId, next.join("\n"));
        else waiting.delete(connectionId);
      });
  };
  const deliver = (connectionId: string, frame: string): void => {
    const queue = waiting.get(connectionId);
    if (queue) queue.push(frame);
    else post(connectionId, frame);
  };

  const loop = async () => {
    let cursor = "$";
    while (running) {
      const reply = (await reader.xread("COUNT", 100, "BLOCK", 1000, "STREAMS", keys.stream, cursor)) as
        | [string, [string, string[]][]][]
        | null;
      for (const [id, fields] of reply?.[0]?.[1] ?? []) {
        cursor = id;
        const roomId = fields[1] as string;
        const frame = fields[3] as string;
        let list = members.get(roomId);
        if (!list) {
          list = await redis.smembers(keys.members(roomId));
          members.set(roomId, list);
        }
        for (const connectionId of list) deliver(connectionId, frame);
      }
    }
  };
  const done = loop();
  process.stdout.write("BENCH_READY {}\n");
  const stop = () => {
    running = false;
    void done.finally(async () => {
      await management.close();
      redis.disconnect();
      reader.disconnect();
      process.exit(0);
    });
  };
  stopOnSignalOrParent(stop);
}

serve("the floor's fan-out", main);
