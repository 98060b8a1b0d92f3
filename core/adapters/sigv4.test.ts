import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import { type SignedPost, type SigningCredentials, SigV4Signer } from "./sigv4";

type SourceData = string | ArrayBuffer | ArrayBufferView;

const bytes = (data: SourceData): Buffer | string =>
  typeof data === "string"
    ? data
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** The reference: the SDK's own signer, given the same request. */
async function reference(
  credentials: SigningCredentials,
  region: string,
  service: string,
  post: SignedPost,
  now: Date,
): Promise<Record<string, string>> {
  const { host, path, body } = post;
  class Sha256 {
    private h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
    constructor(secret?: SourceData) {
      this.h = secret ? createHmac("sha256", bytes(secret)) : createHash("sha256");
    }
    update(data: SourceData) {
      this.h.update(bytes(data));
    }
    async digest() {
      return new Uint8Array(this.h.digest());
    }
    reset() {}
  }
  const signer = new SignatureV4({ credentials, region, service, sha256: Sha256 });
  const [hostname, port] = host.split(":");
  const signed = await signer.sign(
    {
      method: "POST",
      protocol: "https:",
      hostname: hostname as string,
      port: port ? Number(port) : undefined,
      path,
      query: {},
      headers: {
        host,
        "content-type": post.contentType,
        "content-length": String(body.length),
        ...(post.target ? { "x-amz-target": post.target } : {}),
      },
      body,
    },
    { signingDate: now },
  );
  return Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), v]));
}

const ids = ["Vz1qReBnoAMCJ0w=", "abc+/=", "a b", "ü-€-😀", "plain", "(x)!*'"];
const bodies = ['{"type":"message"}', '{"text":"héllo 😀 \\n tab\\t"}', ""];
const credentialSets: SigningCredentials[] = [
  { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
  {
    accessKeyId: "ASIAEXAMPLE",
    secretAccessKey: "secret/with+chars",
    sessionToken: "FwoGZXIvYXdzEJr//////////token==",
  },
];

test("every PostToConnection signature equals the SDK signer's, for awkward ids, bodies, tokens and dates", async () => {
  const signer = new SigV4Signer("eu-west-1", "execute-api");
  let checked = 0;
  for (const credentials of credentialSets) {
    for (const date of ["2026-11-30T03:04:05.678Z", "2026-12-01T00:00:00.000Z", "2027-01-01T23:59:59.999Z"]) {
      const now = new Date(date);
      for (const id of ids) {
        for (const text of bodies) {
          const host = "abc123.execute-api.eu-west-1.amazonaws.com";
          const path = `/prod/@connections/${encodeURIComponent(id)}`;
          const post = { host, path, body: Buffer.from(text), contentType: "application/json" };
          const mine = signer.sign(credentials, post, now);
          const theirs = await reference(credentials, "eu-west-1", "execute-api", post, now);
          expect(mine).toEqual(theirs);
          checked++;
        }
      }
    }
  }
  expect(checked).toBe(credentialSets.length * 3 * ids.length * bodies.length);
});

test("a host with a port (the local emulator) and a stage path with dots sign as the SDK signs them", async () => {
  const signer = new SigV4Signer("us-east-1", "execute-api");
  const credentials = credentialSets[0] as SigningCredentials;
  const now = new Date("2026-11-30T10:00:00.000Z");
  for (const path of ["/dev/@connections/x", "/a/./b/../dev/@connections/y", "/dev/@connections/z/"]) {
    const post = { host: "127.0.0.1:3001", path, body: Buffer.from("{}"), contentType: "application/json" };
    expect(signer.sign(credentials, post, now)).toEqual(
      await reference(credentials, "us-east-1", "execute-api", post, now),
    );
  }
});

test("every DynamoDB call's signature equals the SDK signer's: each operation's target, bodies, tokens and dates", async () => {
  const signer = new SigV4Signer("ap-southeast-2", "dynamodb");
  const calls = [
    ["GetItem", '{"TableName":"chat","Key":{"pk":{"S":"SENT#u#c"},"sk":{"S":"META"}},"ConsistentRead":true}'],
    [
      "UpdateItem",
      '{"TableName":"chat","UpdateExpression":"ADD #seq :one","ExpressionAttributeValues":{":one":{"N":"1"}}}',
    ],
    ["PutItem", '{"TableName":"chat","Item":{"text":{"S":"héllo 😀"}}}'],
  ];
  let checked = 0;
  for (const credentials of credentialSets) {
    for (const date of ["2026-11-30T03:04:05.678Z", "2027-01-01T23:59:59.999Z"]) {
      for (const [operation, json] of calls) {
        const post: SignedPost = {
          host: "dynamodb.ap-southeast-2.amazonaws.com",
          path: "/",
          body: Buffer.from(json as string),
          contentType: "application/x-amz-json-1.0",
          target: `DynamoDB_20120810.${operation}`,
        };
        const now = new Date(date);
        expect(signer.sign(credentials, post, now)).toEqual(
          await reference(credentials, "ap-southeast-2", "dynamodb", post, now),
        );
        checked++;
      }
    }
  }
  expect(checked).toBe(credentialSets.length * 2 * calls.length);
});

test("a new day or new credentials derive a new signing key", () => {
  const signer = new SigV4Signer("us-east-1", "execute-api");
  const a = credentialSets[0] as SigningCredentials;
  const b = { ...a, secretAccessKey: "rotated" };
  const post = {
    host: "h",
    path: "/dev/@connections/x",
    body: Buffer.from("{}"),
    contentType: "application/json",
  };
  const sig = (c: SigningCredentials, d: string) =>
    signer.sign(c, post, new Date(d)).authorization?.split("Signature=")[1];
  const day1 = sig(a, "2026-11-30T10:00:00.000Z");
  expect(sig(a, "2026-12-01T10:00:00.000Z")).not.toBe(day1);
  expect(sig(b, "2026-11-30T10:00:00.000Z")).not.toBe(day1);
  expect(sig(a, "2026-11-30T10:00:00.000Z")).toBe(day1);
});
