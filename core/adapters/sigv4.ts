/**
 * AWS Signature Version 4 for the two requests this project sends thousands of times a second: the
 * fan-out's `POST /{stage}/@connections/{id}` and a handler's single-item DynamoDB call
 * (`POST /` with an `x-amz-target`). Their shape never changes, so the canonical request is one
 * template and the signing key is derived once a day; @smithy/signature-v4 (which sigv4.test.ts
 * checks every signature against) spends CPU on every request on a generality these do not need.
 */
import { createHash, createHmac, hash } from "node:crypto";

/** The credentials of a signature (an SDK client's provider resolves and refreshes them). */
export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** A POST to sign: its path (already percent-encoded), body and the headers that vary by service. */
export interface SignedPost {
  host: string;
  path: string;
  body: Buffer;
  contentType: string;
  /** `x-amz-target`, for the JSON protocol services (DynamoDB). */
  target?: string;
}

/** One-shot SHA-256 (crypto.hash, Node 20.12 and later): no Hash object for each small input. */
const sha256Hex: (data: string | Buffer) => string =
  typeof hash === "function"
    ? (data) => hash("sha256", data, "hex")
    : (data) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** Percent-encodes as SigV4's canonical URI asks: RFC 3986 unreserved characters stay, the rest is escaped. */
const escapeUri = (s: string) => {
  const encoded = encodeURIComponent(s);
  return /[!'()*]/.test(encoded)
    ? encoded.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    : encoded;
};

export class SigV4Signer {
  private key: { scope: string; secret: string; value: Buffer } | undefined;

  constructor(
    private readonly region: string,
    private readonly service: string,
  ) {}

  /** The headers to send: content type and length, host, x-amz-date, the payload hash, the token, the target and authorization. */
  sign(credentials: SigningCredentials, post: SignedPost, now: Date = new Date()): Record<string, string> {
    const longDate = this.amzDate(now);
    const shortDate = longDate.slice(0, 8);
    const scope = `${shortDate}/${this.region}/${this.service}/aws4_request`;
    const payloadHash = sha256Hex(post.body);
    const headers: Record<string, string> = {
      "content-length": String(post.body.length),
      "content-type": post.contentType,
      host: post.host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": longDate,
    };
    if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
    if (post.target) headers["x-amz-target"] = post.target;
    // Every name is lower case already and in sorted order; no value holds spaces to fold.
    const names = Object.keys(headers);
    let canonicalHeaders = "";
    for (const name of names) canonicalHeaders += `${name}:${(headers[name] as string).trim()}\n`;
    const signedHeaders = names.join(";");
    const canonicalRequest = `POST\n${canonicalPath(post.path)}\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = createHmac("sha256", this.signingKey(credentials.secretAccessKey, shortDate, scope))
      .update(stringToSign)
      .digest("hex");
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return headers;
  }

  private date: { second: number; value: string } | undefined;

  /** x-amz-date (20261203T061405Z), formatted once a second. */
  private amzDate(now: Date): string {
    const second = Math.floor(now.getTime() / 1000);
    if (this.date?.second !== second) {
      const value = now
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, "");
      this.date = { second, value };
    }
    return this.date.value;
  }

  private signingKey(secret: string, shortDate: string, scope: string): Buffer {
    if (this.key?.scope !== scope || this.key.secret !== secret) {
      const date = hmac(`AWS4${secret}`, shortDate);
      const region = hmac(date, this.region);
      const service = hmac(region, this.service);
      this.key = { scope, secret, value: hmac(service, "aws4_request") };
    }
    return this.key.value;
  }
}

/** The canonical URI of an already percent-encoded path: each segment encoded once more (all services but S3). */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${segments.map(escapeUri).join("/")}${trailing}`;
}
