/**
 * Alarms and a dashboard for what an operator must hear about: Lambda errors, fan-out failures,
 * fan-out entries trimmed before delivery, persister failures, consumer lag, records in the dead-letter topic, a Kafka broker's data disk
 * filling and Redis memory filling. Alarms notify one SNS topic
 * (encrypted, TLS only); subscribe a mailbox with the `alarmEmail` context value.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { METRICS_NAMESPACE, TRIMMED_METRIC } from "../../worker/metrics";
import type { ChatApi } from "./chat-api";
import type { KafkaCluster } from "./kafka-cluster";
import type { RedisCache } from "./redis-cache";
import type { WorkerServices } from "./worker-services";

/** The namespace of the metrics derived from the workers' logs. */
export const METRIC_NAMESPACE = "Chat";

export interface ChatMonitoringProps {
  api: ChatApi;
  workers?: WorkerServices;
  /** Absent on the LocalStack profile (no MSK metrics there). */
  kafka?: KafkaCluster;
  /** Absent on the LocalStack profile (no ElastiCache metrics there). */
  redis?: RedisCache;
  persisterGroupId: string;
  alarmEmail?: string;
  /** Consumer lag, in records, that raises the alarm. @default 10000 */
  maxConsumerLag?: number;
  /** KafkaDataLogsDiskUsed (%) of any broker that raises the alarm. @default 80 */
  maxKafkaDiskPercent?: number;
  /** DatabaseMemoryUsagePercentage of any Redis node that raises the alarm. @default 80 */
  maxRedisMemoryPercent?: number;
}

/** The alarm topic, alarms and dashboard. */
export class ChatMonitoring extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ChatMonitoringProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, "Alarms", {
      displayName: "Chat backend alarms",
      enforceSSL: true,
      masterKey: kms.Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const widgets: cloudwatch.IWidget[] = [];

    const errorMetrics: cloudwatch.IMetric[] = [];
    for (const [file, fn] of props.api.functions) {
      const errors = fn.fn.metricErrors({ period: Duration.minutes(5), statistic: "Sum", label: file });
      errorMetrics.push(errors);
      this.alarm(`${file}Errors`, errors, 5, `functions/${file}.ts threw or timed out 5 times in 5 minutes`);
    }
    widgets.push(new cloudwatch.GraphWidget({ title: "Lambda errors", left: errorMetrics, width: 12 }));
    widgets.push(
      new cloudwatch.GraphWidget({
        title: "Lambda duration p99",
        left: [...props.api.functions].map(([file, fn]) =>
          fn.fn.metricDuration({ statistic: "p99", label: file }),
        ),
        width: 12,
      }),
    );

    if (props.workers) {
      const fanoutErrors = this.logErrors("FanoutErrors", props.workers.fanout.logGroup);
      this.alarm("FanoutFailures", fanoutErrors, 10, "the fan-out worker logged 10 errors in 5 minutes");
      // Fan-out entries trimmed from their stream before any worker read them were never delivered
      // (their rooms' clients see a gap): the worker counts them in its embedded metrics.
      const trimmed = new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: TRIMMED_METRIC,
        dimensionsMap: { Service: "fanout" },
        statistic: "Sum",
        period: Duration.minutes(1),
        label: "fan-out entries trimmed before delivery",
      });
      this.alarm(
        "FanoutTrimmedUndelivered",
        trimmed,
        0,
        "fan-out entries were trimmed from a stream before they were delivered (a backlog past the stream's cap)",
        1,
        true,
      );
      widgets.push(
        new cloudwatch.GraphWidget({
          title: "Fan-out entries trimmed before delivery",
          left: [trimmed],
          width: 12,
        }),
      );
      const persisterErrors = this.logErrors("PersisterErrors", props.workers.persister.logGroup);
      this.alarm("PersisterFailures", persisterErrors, 10, "the persister logged 10 errors in 5 minutes");
      widgets.push(
        new cloudwatch.GraphWidget({
          title: "Worker errors",
          left: [fanoutErrors, persisterErrors],
          width: 12,
        }),
        new cloudwatch.GraphWidget({
          title: "Worker CPU",
          left: [
            props.workers.fanout.service.metricCpuUtilization({ label: "fanout" }),
            props.workers.persister.service.metricCpuUtilization({ label: "persister" }),
          ],
          width: 12,
        }),
      );
    }

    const kafka = props.kafka;
    if (kafka) {
      const cluster = kafka.clusterName;
      const lag = new cloudwatch.Metric({
        namespace: "AWS/Kafka",
        metricName: "SumOffsetLag",
        dimensionsMap: {
          "Cluster Name": cluster,
          "Consumer Group": props.persisterGroupId,
          Topic: kafka.topics.messagesTopic,
        },
        statistic: "Maximum",
        period: Duration.minutes(1),
        label: "persister lag (records)",
      });
      this.alarm("ConsumerLag", lag, props.maxConsumerLag ?? 10_000, "the persister is falling behind", 5);
      const brokerIds = Array.from({ length: kafka.brokerCount }, (_, i) => i + 1);
      const deadLetters = new cloudwatch.MathExpression({
        // MSK publishes per-topic rates per broker; the sum over brokers is the topic's rate.
        expression: brokerIds.map((b) => `b${b}`).join(" + "),
        usingMetrics: Object.fromEntries(
          brokerIds.map((b) => [
            `b${b}`,
            new cloudwatch.Metric({
              namespace: "AWS/Kafka",
              metricName: "MessagesInPerSec",
              dimensionsMap: {
                "Cluster Name": cluster,
                "Broker ID": String(b),
                Topic: kafka.topics.deadLetterTopic,
              },
              statistic: "Maximum",
            }),
          ]),
        ),
        period: Duration.minutes(5),
        label: "dead-letter records in (per second)",
      });
      this.alarm("DeadLetters", deadLetters, 0, "records reached the dead-letter topic", 1, true);
      // Retention by bytes keeps the partitions near 60% of a volume and storage auto scaling grows
      // it past 70%, but scaling may act only once in 6 hours: past 80% an operator must look.
      const disk = kafka.metricDiskUsed();
      this.alarm(
        "KafkaDiskUsed",
        disk,
        props.maxKafkaDiskPercent ?? 80,
        "a Kafka broker's data volume is filling (KafkaDataLogsDiskUsed); a full broker stops taking writes",
        2,
      );
      widgets.push(
        new cloudwatch.GraphWidget({ title: "Persister consumer lag", left: [lag], width: 12 }),
        new cloudwatch.GraphWidget({ title: "Dead-letter records", left: [deadLetters], width: 12 }),
        new cloudwatch.GraphWidget({ title: "Kafka data disk used (%)", left: [disk], width: 12 }),
      );
    }

    if (props.redis) {
      // noeviction: a full Redis refuses writes, and every send writes. Sound well before that.
      const memory = props.redis.metricMemoryUsage();
      this.alarm(
        "RedisMemory",
        memory,
        props.maxRedisMemoryPercent ?? 80,
        "Redis memory is filling (DatabaseMemoryUsagePercentage); at 100% it refuses writes (noeviction) and sends fail",
        2,
      );
      widgets.push(new cloudwatch.GraphWidget({ title: "Redis memory used (%)", left: [memory], width: 12 }));
    }

    widgets.push(new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 24 }));
    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", { widgets: [widgets] });
  }

  private logErrors(name: string, logGroup: logs.ILogGroup): cloudwatch.Metric {
    // The workers log with pino: level 50 is error, 60 fatal.
    const filter = new logs.MetricFilter(this, `${name}Filter`, {
      logGroup,
      filterPattern: logs.FilterPattern.numberValue("$.level", ">=", 50),
      metricNamespace: METRIC_NAMESPACE,
      metricName: name,
      metricValue: "1",
      defaultValue: 0,
    });
    return filter.metric({ statistic: "Sum", period: Duration.minutes(5), label: name });
  }

  private alarm(
    id: string,
    metric: cloudwatch.IMetric,
    threshold: number,
    description: string,
    evaluationPeriods = 1,
    strictlyAbove = false,
  ): void {
    const alarm = new cloudwatch.Alarm(this, `${id.replace(/[^A-Za-z0-9]/g, "")}Alarm`, {
      metric,
      threshold,
      evaluationPeriods,
      comparisonOperator: strictlyAbove
        ? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        : cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: description,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    this.alarms.push(alarm);
  }
}
