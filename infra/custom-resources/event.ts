/** The part of a CloudFormation custom resource event (Provider framework) these handlers read. */
export interface CustomResourceEvent {
  RequestType: "Create" | "Update" | "Delete";
  PhysicalResourceId?: string;
  ResourceProperties: Record<string, unknown>;
}

/** What the Provider framework expects back. */
export interface CustomResourceResult {
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}
