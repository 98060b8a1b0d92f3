/**
 * DynamoDB (dynalite, in memory) in a process of its own, so that the benchmark counts its CPU on a
 * line of its own and its answers do not wait behind the load generator's clients: on AWS DynamoDB
 * is nobody's event loop. Prints `BENCH_READY {json}`; SIGTERM stops it.
 */
import { startDynamo } from "../../local/services";
import { stopOnSignalOrParent } from "./lifecycle";

startDynamo().then(
  (dynamo) => {
    process.stdout.write(`BENCH_READY ${JSON.stringify({ url: dynamo.url })}\n`);
    const stop = () => {
      void dynamo.stop().then(() => process.exit(0));
    };
    stopOnSignalOrParent(stop);
  },
  (error: unknown) => {
    process.stderr.write(
      `dynalite failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  },
);
