/** The HS256 signing secret of the stack's JWTs, generated into Secrets Manager at deploy time. */
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { accept } from "../nag";
import type { Consumer } from "./consumer";

/** The JWT secret (a plain string secret, 64 characters). */
export class JwtSecret extends Construct {
  readonly secret: secretsmanager.Secret;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.secret = new secretsmanager.Secret(this, "Secret", {
      description: "HS256 signing secret of the chat backend's client tokens",
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    accept(
      this.secret,
      "SMG4",
      "Rotating an HS256 signing secret invalidates every token in use at once; rotation needs a key-set (kid) scheme the protocol does not have yet, so it is a manual, announced operation",
    );
  }

  /** Read access plus JWT_SECRET_ARN. */
  connect(consumer: Consumer): void {
    this.secret.grantRead(consumer);
    consumer.addEnvironment("JWT_SECRET_ARN", this.secret.secretArn);
  }
}
