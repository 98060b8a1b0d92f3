/**
 * The system under test, in a process of its own so that the load generator does not share its
 * event loop: the local stack (the gateway here and the handlers in its thread, the fan-out worker
 * and persister as children) over the services named by the environment. Prints `BENCH_READY {json}` on stdout once it accepts
 * connections; SIGTERM stops it.
 */
import { startStack } from "../../local/stack";
import { serve, stopOnSignalOrParent } from "./lifecycle";

async function main(): Promise<void> {
  const stack = await startStack({
    port: 0,
    fanoutWorkers: Number(process.env.BENCH_FANOUT_WORKERS ?? 1),
    persisters: 1,
    onProgress: (line) => process.stderr.write(`[chat-stack] ${line}\n`),
  });
  process.stdout.write(
    `BENCH_READY ${JSON.stringify({ url: stack.url, managementEndpoint: stack.managementEndpoint })}\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    stack.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  stopOnSignalOrParent(stop);
}

serve("the chat stack", main);
