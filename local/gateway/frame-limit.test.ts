import { PassThrough } from "node:stream";
import { watchFrameSizes } from "./frame-limit";

/** A masked client frame header (payload follows, unmasking is not the watcher's business). */
function frame(opcode: number, length: number, fin = true): Buffer {
  const first = (fin ? 0x80 : 0) | opcode;
  let header: Buffer;
  if (length < 126) header = Buffer.from([first, 0x80 | length]);
  else if (length < 65536) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = 0x80 | 127;
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length % 2 ** 32, 6);
  }
  return Buffer.concat([header, Buffer.alloc(4), Buffer.alloc(length)]);
}

function watch(limit: number) {
  const socket = new PassThrough();
  const seen: number[] = [];
  watchFrameSizes(socket, limit, (length) => seen.push(length));
  return { socket, seen };
}

describe("watchFrameSizes", () => {
  test("frames up to the limit pass, across any chunking, with 7-, 16- and 64-bit lengths", () => {
    const { socket, seen } = watch(70_000);
    const stream = Buffer.concat([
      frame(1, 10),
      frame(1, 300, false),
      frame(0, 65_000),
      frame(9, 4),
      frame(1, 70_000),
    ]);
    for (let i = 0; i < stream.length; i += 7) socket.write(stream.subarray(i, i + 7));
    expect(seen).toEqual([]);
  });

  test("the first data frame over the limit is reported once, whatever its length encoding", () => {
    for (const length of [32 * 1024 + 1, 200_000]) {
      const { socket, seen } = watch(32 * 1024);
      const stream = Buffer.concat([frame(1, 100), frame(1, length), frame(1, length)]);
      socket.write(stream.subarray(0, 3));
      socket.write(stream.subarray(3));
      expect(seen).toEqual([length]);
    }
  });

  test("a continuation frame over the limit is reported too", () => {
    const { socket, seen } = watch(1000);
    socket.write(Buffer.concat([frame(1, 500, false), frame(0, 1001)]));
    expect(seen).toEqual([1001]);
  });
});
