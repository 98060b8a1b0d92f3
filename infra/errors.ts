/** Raised while the CDK app is built when its inputs (route table, context, wiring) do not fit together. */
export class InfraConfigError extends Error {
  override name = "InfraConfigError";
}
