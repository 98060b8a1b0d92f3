/**
 * Metrics the workers emit, in CloudWatch's embedded metric format: one JSON line on stdout per
 * reading, which CloudWatch Logs turns into a metric (the ECS tasks log to CloudWatch Logs), so no
 * client, credentials or API call is needed. The CDK app alarms on them (infra/constructs/).
 */

/** The namespace of every worker metric; the alarms name it too. */
export const METRICS_NAMESPACE = "Chat/Workers";
/** Fan-out entries trimmed from their stream before any worker read them (never delivered). */
export const TRIMMED_METRIC = "FanoutEntriesTrimmedUndelivered";

/** Writes one reading of `name` (a count) with the given dimensions. */
export function emitCount(
  name: string,
  value: number,
  dimensions: Record<string, string>,
  write: (line: string) => void = (line) => process.stdout.write(line),
): void {
  write(
    `${JSON.stringify({
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: METRICS_NAMESPACE,
            Dimensions: [Object.keys(dimensions)],
            Metrics: [{ Name: name, Unit: "Count" }],
          },
        ],
      },
      ...dimensions,
      [name]: value,
    })}\n`,
  );
}
