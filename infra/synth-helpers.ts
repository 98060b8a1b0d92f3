/**
 * Helpers for the infra tests: synthesize one profile of the app into a temporary folder (offline,
 * environment-agnostic) and read the template's resources and references.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { createChatStack } from "./chat-app";
import type { ChatStack, Profile } from "./chat-stack";

/** A synthesized profile: the stack, its template, and its raw JSON. */
export interface Synthesized {
  stack: ChatStack;
  template: Template;
  resources: Record<
    string,
    { Type: string; Properties?: Record<string, unknown>; DependsOn?: string[] | string }
  >;
  /** The cloud assembly's asset manifest (file and Docker image assets). */
  assets: {
    files: Record<string, { source: { path: string } }>;
    dockerImages: Record<string, { source: { directory: string; dockerFile?: string; platform?: string } }>;
  };
  outdir: string;
}

/** Synthesizes the app for `profile` (plus other context), without an account or region (no look-ups). */
export function synthesize(profile: Profile, context: Record<string, unknown> = {}): Synthesized {
  delete process.env.CDK_DEFAULT_ACCOUNT;
  delete process.env.CDK_DEFAULT_REGION;
  const outdir = mkdtempSync(path.join(tmpdir(), `cdk-${profile}-`));
  const app = new App({ outdir, context: { ...context, profile } });
  const stack = createChatStack(app);
  const assembly = app.synth();
  const template = Template.fromJSON(assembly.getStackByName(stack.stackName).template);
  const json = template.toJSON() as { Resources: Synthesized["resources"] };
  const assets = JSON.parse(readFileSync(path.join(outdir, `${stack.artifactId}.assets.json`), "utf8"));
  return { stack, template, resources: json.Resources, assets, outdir };
}

/** Logical ids of the resources `value` refers to (Ref and Fn::GetAtt), anywhere inside it. */
export function referencedIds(value: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
    } else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.Ref === "string") out.push(o.Ref);
      const getAtt = o["Fn::GetAtt"];
      if (Array.isArray(getAtt) && typeof getAtt[0] === "string") out.push(getAtt[0]);
      for (const x of Object.values(o)) walk(x);
    }
  };
  walk(value);
  return out;
}

/** The logical ids of every resource of `type`. */
export function idsOfType(resources: Synthesized["resources"], type: string): string[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === type)
    .map(([id]) => id);
}
