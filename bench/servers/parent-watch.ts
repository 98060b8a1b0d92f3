/**
 * A bench server stops when the bench does, however the bench ends: the bench holds the write end
 * of the server's stdin (bench/lib/child.ts) and the kernel closes it when the bench exits, even on
 * SIGKILL. A server left behind would go on taking CPU from the next run's measurements.
 */
export function stopWithParent(stop: () => void, graceMs = 10_000): void {
  const orphaned = () => {
    stop();
    // A stop that waits on services the bench took down with it must not hang on.
    setTimeout(() => process.exit(1), graceMs);
  };
  process.stdin.once("end", orphaned);
  process.stdin.once("error", orphaned);
  process.stdin.resume();
}
