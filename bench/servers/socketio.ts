/**
 * The baseline: the seed architecture this project replaces, one Socket.IO server of a pair joined
 * by `@socket.io/redis-adapter`. Rooms are Socket.IO rooms; a `send` is broadcast to the room through
 * the adapter (Redis pub/sub reaches the other server's members) and acknowledged. It stores nothing
 * and keeps no seq beyond a per-process counter, so it is the cheapest form of the seed's message path.
 * Prints `BENCH_READY {json}` on stdout; SIGTERM stops it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";
import { requiredEnv, serve, stopOnSignalOrParent } from "./lifecycle";

async function main(): Promise<void> {
  const pub = new Redis(requiredEnv("REDIS_URL"));
  const sub = pub.duplicate();
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], serveClient: false });
  io.adapter(createAdapter(pub, sub, { key: process.env.BENCH_SOCKETIO_KEY ?? "bench-socketio" }));
  let seq = 0;
  let id = 0;
  const prefix = `${process.pid}-`;
  io.on("connection", (socket) => {
    const userId = String(socket.handshake.auth.userId ?? socket.id);
    socket.on("join", (roomId: string, ack?: (answer: unknown) => void) => {
      void socket.join(roomId);
      ack?.({ type: "joined", roomId, lastSeq: 0 });
    });
    socket.on(
      "send",
      (frame: { roomId: string; text: string; clientMsgId: string }, ack?: (answer: unknown) => void) => {
        const message = {
          type: "message",
          roomId: frame.roomId,
          messageId: prefix + ++id,
          seq: ++seq,
          senderId: userId,
          text: frame.text,
          sentAt: new Date().toISOString(),
        };
        io.to(frame.roomId).emit("message", message);
        ack?.({
          type: "ack",
          roomId: frame.roomId,
          clientMsgId: frame.clientMsgId,
          messageId: message.messageId,
          seq: message.seq,
        });
      },
    );
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`BENCH_READY ${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
  const stop = () => {
    io.close();
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  };
  stopOnSignalOrParent(stop);
}

serve("the Socket.IO server", main);
