/**
 * A small WebSocket client for the tests, standing in for wscat: it keeps every frame it receives and
 * lets a test wait for the next one that matches.
 */
import WebSocket from "ws";

// biome-ignore lint/suspicious/noExplicitAny: frames are JSON of many shapes; tests check them field by field
export type Frame = Record<string, any>;

export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private consumed = new Set<Frame>();
  closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? Buffer.from(data as Buffer).toString("utf8") : data.toString();
      let frame: Frame;
      try {
        frame = JSON.parse(text) as Frame;
      } catch {
        frame = { unparsed: text };
      }
      this.frames.push(frame);
      const i = this.waiters.findIndex((w) => w.match(frame));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        this.consumed.add(frame);
        w?.resolve(frame);
      }
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Opens a connection; rejects with the HTTP status when the upgrade is refused. */
  static connect(url: string, options: { token?: string; header?: string } = {}): Promise<TestClient> {
    const target = options.token ? `${url}?token=${encodeURIComponent(options.token)}` : url;
    const ws = new WebSocket(target, {
      headers: options.header ? { Authorization: options.header } : undefined,
    });
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(new TestClient(ws)));
      ws.once("unexpected-response", (_req, res) => {
        reject(
          Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode }),
        );
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }

  send(frame: Frame | string): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The next frame, not yet waited for, that matches; frames already received count. */
  next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const already = this.frames.find((f) => !this.consumed.has(f) && match(f));
    if (already) {
      this.consumed.add(already);
      return Promise.resolve(already);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      this.waiters.push(waiter);
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(
            new Error(
              `no matching frame within ${timeoutMs} ms; received ${JSON.stringify(this.frames.slice(-5))}`,
            ),
          );
        }
      }, timeoutMs);
    });
  }

  /** Sends a frame and waits for the answer of the given type (or an error frame). */
  request(frame: Frame, type: string, timeoutMs = 10_000): Promise<Frame> {
    const answer = this.next(
      (f) =>
        (f.type === type &&
          (frame.roomId === undefined || f.roomId === frame.roomId) &&
          (frame.clientMsgId === undefined || f.clientMsgId === frame.clientMsgId)) ||
        (f.type === "error" && (frame.clientMsgId === undefined || f.clientMsgId === frame.clientMsgId)),
      timeoutMs,
    );
    this.send(frame);
    return answer;
  }

  /** Message frames received for the room, in arrival order. */
  messages(roomId: string): Frame[] {
    return this.frames.filter((f) => f.type === "message" && f.roomId === roomId);
  }

  /** Waits until `count` messages of the room have arrived (or the timeout passes). */
  async waitForMessages(roomId: string, count: number, timeoutMs = 20_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages(roomId).length < count && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    return this.messages(roomId);
  }

  /** Drops the TCP connection without a close frame, as a lost network does. */
  terminate(): void {
    this.ws.terminate();
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    await this.closed;
  }
}

/** Tries to connect and answers the HTTP status of the refused upgrade (fails if it was accepted). */
export async function refusedStatus(
  url: string,
  options: { token?: string; header?: string } = {},
): Promise<number> {
  try {
    const client = await TestClient.connect(url, options);
    await client.close();
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status !== undefined) return status;
    throw error;
  }
  throw new Error("the upgrade was accepted");
}
