/**
 * The web client on AWS: its static files (web/, built by esbuild at synth time) in a private S3
 * bucket that only CloudFront reads (origin access control), and a `config.json` beside them naming
 * the stage's wss:// URL. People sign in with a token minted by `npm run token:aws`; the local stack's
 * sign-in-by-name endpoint (local/web.ts) is never deployed.
 */
import { AssetHashType, DockerImage, Duration, Fn, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as cloudfront from "aws-cdk-lib/aws-cloudfront";
import * as origins from "aws-cdk-lib/aws-cloudfront-origins";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3deploy from "aws-cdk-lib/aws-s3-deployment";
import { Construct } from "constructs";
import { buildWebClientSync, WEB_DIR } from "../../web/build";
import { accept, arnRef, managedPolicyFinding } from "../nag";

export interface WebClientProps {
  /** The stage's WebSocket URL (`wss://{apiId}.execute-api.{region}.amazonaws.com/{stage}`). */
  webSocketUrl: string;
}

/** What the deployed page reads at start; the local stack serves its own (local/web.ts). */
export function webConfig(webSocketUrl: string): { url: string; signIn: "token" } {
  return { url: webSocketUrl, signIn: "token" };
}

export class WebClient extends Construct {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  /** https://{distribution}.cloudfront.net/ */
  readonly url: string;

  constructor(scope: Construct, id: string, props: WebClientProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, "Bucket", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // Only a build output lives here; the deployment below empties it when the stack goes.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // The page may connect to its own origin and to the stage's host, and run only its own files.
    const apiHost = Fn.select(2, Fn.split("/", props.webSocketUrl));
    const headers = new cloudfront.ResponseHeadersPolicy(this, "Headers", {
      comment: "The chat web client's security headers",
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          contentSecurityPolicy: Fn.join("", [
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' wss://",
            apiHost,
            "; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
          ]),
          override: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
          override: true,
        },
      },
    });

    this.distribution = new cloudfront.Distribution(this, "Distribution", {
      comment: "Chat web client",
      defaultRootObject: "index.html",
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
        compress: true,
      },
    });
    this.url = `https://${this.distribution.distributionDomainName}/`;

    const deployment = new s3deploy.BucketDeployment(this, "Files", {
      destinationBucket: this.bucket,
      sources: [
        s3deploy.Source.asset(WEB_DIR, {
          assetHashType: AssetHashType.OUTPUT,
          exclude: ["dist", "node_modules"],
          bundling: {
            // Never used: the files are built here, with the project's esbuild, not in Docker.
            image: DockerImage.fromRegistry("public.ecr.aws/docker/library/node:22-slim"),
            local: {
              tryBundle(outputDir: string) {
                buildWebClientSync(outputDir);
                return true;
              },
            },
          },
        }),
        s3deploy.Source.jsonData("config.json", webConfig(props.webSocketUrl)),
      ],
      // Small files that change together on each deploy: browsers revalidate, CloudFront is told.
      cacheControl: [s3deploy.CacheControl.noCache()],
      distribution: this.distribution,
      distributionPaths: ["/*"],
      memoryLimit: 256,
    });

    // The CDK's own deployment function (one per stack and memory size, at the stack's root).
    accept(
      deployment.handlerRole,
      managedPolicyFinding("AWSLambdaBasicExecutionRole"),
      "The CDK's bucket deployment function: the AWS managed policy grants only logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents",
    );
    for (const finding of [
      "Action::s3:GetObject*",
      "Action::s3:GetBucket*",
      "Action::s3:List*",
      "Action::s3:DeleteObject*",
      "Action::s3:Abort*",
      "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
      `Resource::${arnRef(this.bucket)}/*`,
    ]) {
      accept(
        deployment.handlerRole,
        `IAM5[${finding}]`,
        "The CDK's bucket deployment reads the zipped build from the CDK asset bucket and writes it into this bucket's objects, deleting the files a new build no longer has; the actions and objects are the CDK's grant for exactly that",
      );
    }
    accept(
      deployment.handlerRole,
      "IAM5[Resource::*]",
      "cloudfront:CreateInvalidation and cloudfront:GetInvalidation only, so each deploy refreshes the distribution's cached files; the CDK grants them on * (the actions take no narrower resource in its grant)",
    );
    for (const child of Stack.of(this).node.children) {
      if (child.node.id.startsWith("Custom::CDKBucketDeployment")) {
        accept(
          child,
          "L1",
          "The CDK's own bucket deployment handler: aws-cdk-lib ships its code with the AWS CLI layer and picks its Python runtime, which moves with aws-cdk-lib upgrades",
        );
      }
    }
    accept(
      this.bucket,
      "S1",
      "The bucket holds only the web client's build (public by design, no user data), read only by CloudFront through origin access control",
    );
    accept(
      this.distribution,
      "CFR1",
      "A chat for users anywhere: no country is to be refused; restrict at deployment where a policy requires it",
    );
    accept(
      this.distribution,
      "CFR2",
      "The distribution serves four static files with GET and HEAD only; nothing behind it takes input. The chat's traffic goes to the WebSocket API, which has its own throttles and authorizer",
    );
    accept(
      this.distribution,
      "CFR3",
      "Static files only: their requests carry no user data worth keeping; the chat's own access logs are the WebSocket stage's",
    );
    accept(
      this.distribution,
      "CFR4",
      "The distribution uses CloudFront's default *.cloudfront.net certificate, for which CloudFront fixes the minimum protocol (TLSv1); with a custom domain and certificate the construct's TLSv1.2_2021 applies",
    );
  }
}
