/**
 * The single DynamoDB table: connection and membership records. On demand, TTL on `expiresAt` (so
 * records of connections whose `$disconnect` never came expire), point-in-time recovery, encrypted.
 */
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import { Construct } from "constructs";
import { accept, arnRef } from "../nag";
import type { Consumer } from "./consumer";

export interface ChatTableProps {
  /** How long a connection record lives without being refreshed. @default 3 hours (> API Gateway's 2 h cap) */
  connectionTtl?: Duration;
  /** @default RemovalPolicy.RETAIN */
  removalPolicy?: RemovalPolicy;
}

/** The table, and the one way to hand it to a consumer. */
export class ChatTable extends Construct {
  readonly table: dynamodb.Table;
  private readonly connectionTtl: Duration;

  constructor(scope: Construct, id: string, props: ChatTableProps = {}) {
    super(scope, id);
    this.connectionTtl = props.connectionTtl ?? Duration.hours(3);
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "expiresAt",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: "gsi1",
      partitionKey: { name: "gsi1pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "gsi1sk", type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    accept(
      Stack.of(this),
      `IAM5[Resource::${arnRef(this.table)}/index/*]`,
      "The wildcard covers only this table's own secondary indexes (gsi1), which the handlers query",
    );
  }

  /** Read and write access plus TABLE_NAME and CONNECTION_TTL_SECONDS. */
  connect(consumer: Consumer, access: "readWrite" | "read" = "readWrite"): void {
    if (access === "read") this.table.grantReadData(consumer);
    else this.table.grantReadWriteData(consumer);
    consumer.addEnvironment("TABLE_NAME", this.table.tableName);
    consumer.addEnvironment("CONNECTION_TTL_SECONDS", String(this.connectionTtl.toSeconds()));
  }

  /** The fan-out worker reads memberships and deletes the records of connections that are gone. */
  connectReadAndDelete(consumer: Consumer): void {
    this.connect(consumer, "read");
    // Stale records are dropped in batches (BatchWriteItem of DeleteRequests); IAM cannot tell a
    // batch of deletes from a batch of puts, so the worker's code is the only guard there.
    this.table.grant(consumer, "dynamodb:DeleteItem", "dynamodb:BatchWriteItem");
  }
}
