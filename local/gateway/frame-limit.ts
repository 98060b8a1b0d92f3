/**
 * API Gateway limits each WebSocket frame to 32 KB, and each message (a frame and its
 * continuations) to 128 KB. The `ws` library only limits the message, so this reads the frame
 * headers of the raw client-to-server stream beside it and reports the first data frame that is too
 * large, before `ws` has delivered it.
 */
import type { Duplex } from "node:stream";

const MAX_HEADER = 14;

/**
 * Watches `socket` (once the upgrade is complete) and calls `onOversize` once, with the length of
 * the first data frame whose payload exceeds `frameLimit` bytes. Must be attached before the
 * WebSocket library's own listener so the report comes before the frame is dispatched.
 */
export function watchFrameSizes(
  socket: Duplex,
  frameLimit: number,
  onOversize: (length: number) => void,
): void {
  const header = Buffer.alloc(MAX_HEADER);
  let headerLength = 0;
  let skip = 0;
  let done = false;

  const onData = (chunk: Buffer) => {
    if (done) return;
    let offset = 0;
    while (offset < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - offset);
        skip -= n;
        offset += n;
        continue;
      }
      header[headerLength++] = chunk[offset++] ?? 0;
      if (headerLength < 2) continue;
      const second = header[1] ?? 0;
      const short = second & 0x7f;
      const needed = 2 + (short === 126 ? 2 : short === 127 ? 8 : 0) + (second & 0x80 ? 4 : 0);
      if (headerLength < needed) continue;
      const length =
        short < 126
          ? short
          : short === 126
            ? header.readUInt16BE(2)
            : header.readUInt32BE(2) * 2 ** 32 + header.readUInt32BE(6);
      const opcode = (header[0] ?? 0) & 0x0f;
      headerLength = 0;
      skip = length;
      // Control frames (close, ping, pong) are at most 125 bytes by the RFC; ws enforces that.
      if (opcode < 0x08 && length > frameLimit) {
        done = true;
        socket.removeListener("data", onData);
        onOversize(length);
        return;
      }
    }
  };
  socket.on("data", onData);
}
