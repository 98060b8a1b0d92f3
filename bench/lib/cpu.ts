/**
 * CPU time of groups of processes over a window, from /proc (Linux): which process of a target
 * spends the machine's cores, per delivery. Elsewhere the meter answers nothing and the report says
 * so; nothing else of the benchmark depends on it.
 */
import { execFileSync } from "node:child_process";
import { commandLine, hasProc, processStat, processTree } from "../../local/proc";

/** A named set of processes whose CPU is summed (a server and its children, a service). */
export interface ProcessGroup {
  name: string;
  /** Root process ids; every descendant of each is counted with it. */
  pids: number[];
  /** Counts only the root processes, not their children (the bench process, whose children are targets). */
  rootsOnly?: boolean;
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function members(group: ProcessGroup): number[] {
  return group.rootsOnly ? group.pids : group.pids.flatMap(processTree);
}

/** CPU ticks used so far by each process of the groups. */
function ticksOf(groups: ProcessGroup[]): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const pid of groups.flatMap(members)) {
    const stat = processStat(pid);
    if (stat) ticks.set(pid, stat.cpuTicks);
  }
  return ticks;
}

/**
 * Starts measuring; the returned function ends the window and answers each group's CPU seconds.
 * A process that starts inside the window counts from zero; one that ends inside it is not counted.
 */
export function measureCpu(groups: () => ProcessGroup[]): () => Record<string, number> | undefined {
  if (!hasProc) return () => undefined;
  const before = ticksOf(groups());
  return () => {
    const seconds: Record<string, number> = {};
    for (const group of groups()) {
      let ticks = 0;
      for (const [pid, now] of ticksOf([group])) ticks += now - (before.get(pid) ?? 0);
      seconds[group.name] = (seconds[group.name] ?? 0) + ticks / clockTicks();
    }
    return seconds;
  };
}

/** The processes under `root` whose command line contains `needle` (a worker of the local stack). */
export function childrenMatching(root: number, needle: string): number[] {
  return processTree(root)
    .slice(1)
    .filter((pid) => commandLine(pid)?.some((arg) => arg.includes(needle)));
}
