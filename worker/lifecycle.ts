/**
 * What both workers do around their run loop: stop on SIGTERM and SIGINT, and, when a parent process
 * started them (the local stack), stop when that parent is gone, so a killed `npm run dev` leaves no
 * worker behind. In a container the parent is the runtime and PARENT_PID is unset.
 */
import { config } from "../core/config";

export function onShutdown(stop: (signal: string) => void): void {
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  const { parentPid } = config.process();
  if (parentPid === undefined) return;
  const watch = setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      clearInterval(watch);
      stop("parent exited");
    }
  }, 1000);
  watch.unref();
}
