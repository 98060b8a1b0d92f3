/**
 * The web client on the local stack's port: the built static files, a `config.json` naming the
 * WebSocket URL of the port the page was loaded from, and `POST /local/token`, which signs in by name
 * with the local stack's secret. That endpoint exists only here: the deployed client takes a token
 * minted by `npm run token:aws` instead (infra/constructs/web-client.ts deploys no such endpoint).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { signToken } from "../core/auth";
import { MAX_NAME_LENGTH, USER_ID_PATTERN } from "../core/schemas";
import { buildWebFiles, type WebFile } from "../web/build";

/** The path of the local sign-in endpoint. */
export const LOCAL_TOKEN_PATH = "/local/token";

/** Bodies over this are refused: a name is at most 64 characters. */
const MAX_BODY_BYTES = 4096;
/** Local tokens last a day; the page asks for a new one when its token has expired. */
const TOKEN_TTL_SECONDS = 24 * 60 * 60;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  map: "application/json; charset=utf-8",
  txt: "text/plain; charset=utf-8",
};

export interface WebHandlerOptions {
  /** The stage in the WebSocket URL the page connects to. */
  stage: string;
  /** The local stack's token secret (read when a token is asked for). */
  secret: () => string;
  /** How often the page pings, in seconds; default the page's own (4 minutes). */
  pingSeconds?: number;
  /** The built files; default: built now, in memory. */
  files?: WebFile[];
}

/** What the gateway's `httpHandler` is: true when the request was answered here. */
export type WebHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Builds the client and returns the request handler that serves it. */
export async function createWebHandler(opts: WebHandlerOptions): Promise<WebHandler> {
  const files = new Map((opts.files ?? (await buildWebFiles())).map((f) => [`/${f.name}`, f.contents]));
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (path === LOCAL_TOKEN_PATH) {
      if (req.method !== "POST") {
        send(res, 405, { error: 'Use POST with a JSON body such as {"name":"alice"}.' }, { Allow: "POST" });
      } else {
        void answerToken(req, res, opts.secret);
      }
      return true;
    }
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    if (path === "/config.json") {
      // The page reaches the WebSocket on the port it was loaded from, whatever name it used for it.
      const host = req.headers.host ?? "127.0.0.1";
      const config = {
        url: `ws://${host}/${opts.stage}`,
        signIn: "local",
        ...(opts.pingSeconds !== undefined ? { pingSeconds: opts.pingSeconds } : {}),
      };
      send(res, 200, config, { "Cache-Control": "no-store" });
      return true;
    }
    const body = files.get(path === "/" ? "/index.html" : path);
    if (!body) return false;
    const ext = path === "/" ? "html" : (path.split(".").pop() ?? "");
    res.writeHead(200, {
      "Content-Type": TYPES[ext] ?? "application/octet-stream",
      "Content-Length": body.byteLength,
      "Cache-Control": "no-cache",
      "X-Content-Type-Options": "nosniff",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** Why a sign-in name is refused, as a sentence; undefined when it is a valid user id. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "Give a name to sign in with.";
  if (name.length > MAX_NAME_LENGTH) return `A name is at most ${MAX_NAME_LENGTH} characters.`;
  if (!USER_ID_PATTERN.test(name)) {
    return "A name may hold only letters A-Z and a-z, digits and the characters _ . @ - (no spaces).";
  }
  return undefined;
}

async function answerToken(req: IncomingMessage, res: ServerResponse, secret: () => string): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return send(res, 413, { error: "The request body is too large." });
      chunks.push(chunk);
    }
  } catch {
    return; // The client went away.
  }
  let name: unknown;
  try {
    name = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { name?: unknown } | null)?.name;
  } catch {
    return send(res, 400, { error: 'Send a JSON object such as {"name":"alice"}.' });
  }
  const problem = nameProblem(name);
  if (problem) return send(res, 400, { error: problem });
  const userId = name as string;
  try {
    const token = await signToken(secret(), userId, { name: userId, ttlSeconds: TOKEN_TTL_SECONDS });
    send(res, 200, { token, userId });
  } catch {
    send(res, 500, { error: "The token could not be made; see the dev server's output." });
  }
}
