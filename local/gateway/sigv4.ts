/**
 * What the management API can check of a SigV4 signature without credentials to verify it against:
 * that the request is signed at all, that the signature has SigV4's shape, and that it is scoped to
 * the `execute-api` service. AWS refuses each of these with 403 before looking at the connection.
 */
import type { IncomingHttpHeaders } from "node:http";

/** Why a request's signature is refused, as the message of the 403; undefined when it passes. */
export function signatureProblem(headers: IncomingHttpHeaders, url: string): string | undefined {
  const authorization = headers.authorization;
  if (authorization === undefined || authorization === "") {
    // A presigned URL carries the signature in the query string instead.
    const query = new URLSearchParams(url.includes("?") ? url.slice(url.indexOf("?") + 1) : "");
    if (query.has("X-Amz-Signature")) return presignedProblem(query);
    return "Missing Authentication Token";
  }
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
  if (!match)
    return `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' in SigV4 form`;
  const [, , date, , service, signed] = match as unknown as string[];
  if (service !== "execute-api") return `Credential should be scoped to correct service: 'execute-api'.`;
  if (!(signed ?? "").split(";").includes("host")) return "'Host' must be a signed header";
  const amzDate = headers["x-amz-date"];
  const stamp = typeof amzDate === "string" ? amzDate : undefined;
  if (!stamp && !headers.date)
    return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.";
  if (stamp && (!/^\d{8}T\d{6}Z$/.test(stamp) || stamp.slice(0, 8) !== date)) {
    return "Credential should be scoped to a valid date, the one of X-Amz-Date";
  }
  return undefined;
}

function presignedProblem(query: URLSearchParams): string | undefined {
  if (query.get("X-Amz-Algorithm") !== "AWS4-HMAC-SHA256") return "X-Amz-Algorithm must be AWS4-HMAC-SHA256";
  const credential = query.get("X-Amz-Credential") ?? "";
  const parts = credential.split("/");
  if (parts.length !== 5 || parts[4] !== "aws4_request") return "X-Amz-Credential is malformed";
  if (parts[3] !== "execute-api") return `Credential should be scoped to correct service: 'execute-api'.`;
  if (!/^[0-9a-f]{64}$/.test(query.get("X-Amz-Signature") ?? "")) return "X-Amz-Signature is malformed";
  if (!/^\d{8}T\d{6}Z$/.test(query.get("X-Amz-Date") ?? "")) return "X-Amz-Date is malformed";
  return undefined;
}
