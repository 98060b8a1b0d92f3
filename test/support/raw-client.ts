/**
 * A raw WebSocket test client over `ws`: text frames as they come, binary frames, close codes and the
 * HTTP status of a refused upgrade, against the emulator and a deployed API alike (the conformance
 * suite). client.ts beside it is the JSON-frame client of the integration tests.
 */
import WebSocket from "ws";

/** An open connection under test. */
export interface RawClient {
  ws: WebSocket;
  /** The next text frame (queued if it already arrived). */
  next(timeoutMs?: number): Promise<string>;
  /** Resolves, without waiting for more, whether a frame arrives within `ms`. */
  nothingWithin(ms: number): Promise<boolean>;
  /** Resolves with the close code and reason once closed. */
  closed: Promise<{ code: number; reason: string }>;
  sendJson(value: unknown): void;
  close(): Promise<{ code: number; reason: string }>;
}

/** Options of an upgrade. */
export interface OpenOptions {
  headers?: Record<string, string>;
  protocols?: string[];
}

/** Opens a connection; rejects with an error carrying `status` when the upgrade is refused. */
export function openClient(url: string, options: OpenOptions = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], {
      headers: options.headers,
      perMessageDeflate: false,
    });
    const frames: string[] = [];
    const takers: ((frame: string) => void)[] = [];
    let onClose: (c: { code: number; reason: string }) => void = () => {};
    const closed = new Promise<{ code: number; reason: string }>((r) => {
      onClose = r;
    });
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? `<binary ${String((data as Buffer).length)}>` : (data as Buffer).toString();
      const taker = takers.shift();
      if (taker) taker(text);
      else frames.push(text);
    });
    ws.on("close", (code, reason) => onClose({ code, reason: reason.toString() }));
    ws.on("unexpected-response", (_req, res) => {
      const error = Object.assign(new Error(`upgrade refused with HTTP ${res.statusCode}`), {
        status: res.statusCode,
      });
      res.resume();
      reject(error);
      ws.terminate();
    });
    ws.on("error", (error) => reject(error));
    ws.on("open", () => {
      resolve({
        ws,
        closed,
        next(timeoutMs = 3000) {
          const queued = frames.shift();
          if (queued !== undefined) return Promise.resolve(queued);
          return new Promise((res, rej) => {
            const timer = setTimeout(() => {
              takers.splice(takers.indexOf(taker), 1);
              rej(new Error("no frame arrived in time"));
            }, timeoutMs);
            const taker = (frame: string) => {
              clearTimeout(timer);
              res(frame);
            };
            takers.push(taker);
          });
        },
        async nothingWithin(ms) {
          if (frames.length > 0) return false;
          await new Promise((r) => setTimeout(r, ms));
          return frames.length === 0;
        },
        sendJson(value) {
          ws.send(JSON.stringify(value));
        },
        close() {
          if (ws.readyState === WebSocket.OPEN) ws.close(1000, "bye");
          return closed;
        },
      });
    });
  });
}

/** The HTTP status with which the upgrade is refused (fails the test if it is accepted). */
export async function upgradeStatus(url: string, options: OpenOptions = {}): Promise<number> {
  try {
    const client = await openClient(url, options);
    await client.close();
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (typeof status === "number") return status;
    throw error;
  }
  throw new Error(`the upgrade to ${url} was accepted`);
}

/** Adds query parameters to a WebSocket URL. */
export function withQuery(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * Headers of a SigV4 signature in the right shape, scoped to execute-api, with a signature no one
 * checks: what the emulator's management API asks of a raw request (it has no credentials to verify).
 */
export function signedShape(now = new Date()): Record<string, string> {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  return {
    "x-amz-date": amzDate,
    Authorization: `AWS4-HMAC-SHA256 Credential=local/${amzDate.slice(0, 8)}/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`,
  };
}
