/**
 * The ceiling: one plain `ws` server that keeps rooms in memory and broadcasts each message to the
 * room's sockets, speaking the chat protocol's joinRoom/sendMessage subset. Nothing can deliver to
 * the same connections on this machine with less work. Prints `BENCH_READY {json}`; SIGTERM stops it.
 */
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { plainFrame, plainUser, stopOnSignalOrParent } from "./lifecycle";

const rooms = new Map<string, Set<WebSocket>>();
let seq = 0;

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const userId = plainUser(req);
  const joined = new Set<string>();
  ws.on("message", (data) => {
    const frame = plainFrame(data);
    if (!frame) return;
    const roomId = frame.roomId ?? "";
    if (frame.action === "joinRoom") {
      const room = rooms.get(roomId) ?? new Set<WebSocket>();
      rooms.set(roomId, room);
      room.add(ws);
      joined.add(roomId);
      ws.send(JSON.stringify({ type: "joined", roomId, lastSeq: 0 }));
    } else if (frame.action === "sendMessage") {
      const s = ++seq;
      const out = JSON.stringify({
        type: "message",
        roomId,
        messageId: String(s),
        seq: s,
        senderId: userId,
        text: frame.text,
        sentAt: new Date().toISOString(),
      });
      for (const member of rooms.get(roomId) ?? []) member.send(out);
      ws.send(
        JSON.stringify({ type: "ack", roomId, clientMsgId: frame.clientMsgId, messageId: String(s), seq: s }),
      );
    }
  });
  ws.on("close", () => {
    for (const roomId of joined) rooms.get(roomId)?.delete(ws);
  });
});
wss.on("listening", () => {
  const { port } = wss.address() as AddressInfo;
  process.stdout.write(`BENCH_READY ${JSON.stringify({ url: `ws://127.0.0.1:${port}/` })}\n`);
});
const stop = () => wss.close(() => process.exit(0));
stopOnSignalOrParent(stop);
