/**
 * CPU time of groups of processes over a window, from /proc (Linux): which process of a target
 * spends the machine's cores, per delivery. Elsewhere the meter answers nothing and the report says
 * so; nothing else of the benchmark depends on it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** A named set of processes whose CPU is summed (a server and its children, a service). */
export interface ProcessGroup {
  name: string;
  /** Root process ids; every descendant of each is counted with it. */
  pids: number[];
  /** Counts only the root processes, not their children (the bench process, whose children are targets). */
  rootsOnly?: boolean;
}

const supported = existsSync("/proc/self/stat");

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

interface Stat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/** One read of every process's parent and CPU ticks. */
function snapshot(): Map<number, Stat> {
  const stats = new Map<number, Stat>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    // The command name may hold spaces and parentheses: fields are counted after its closing one.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    stats.set(Number(entry), {
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    });
  }
  return stats;
}

function members(group: ProcessGroup, stats: Map<number, Stat>): Set<number> {
  const found = new Set(group.pids.filter((pid) => stats.has(pid)));
  if (group.rootsOnly) return found;
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, stat] of stats) {
      if (!found.has(pid) && found.has(stat.ppid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  return found;
}

/**
 * Starts measuring; the returned function ends the window and answers each group's CPU seconds.
 * Processes that start or end inside the window count for the part the window saw of them.
 */
export function measureCpu(groups: () => ProcessGroup[]): () => Record<string, number> | undefined {
  if (!supported) return () => undefined;
  const before = snapshot();
  return () => {
    const after = snapshot();
    const seconds: Record<string, number> = {};
    for (const group of groups()) {
      let ticks = 0;
      for (const pid of members(group, after)) {
        ticks += (after.get(pid)?.ticks ?? 0) - (before.get(pid)?.ticks ?? 0);
      }
      seconds[group.name] = (seconds[group.name] ?? 0) + ticks / clockTicks();
    }
    return seconds;
  };
}

/** The processes under `root` whose command line contains `needle` (a worker of the local stack). */
export function childrenMatching(root: number, needle: string): number[] {
  if (!supported) return [];
  const stats = snapshot();
  return [...members({ name: "", pids: [root] }, stats)].filter((pid) => {
    if (pid === root) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle);
    } catch {
      return false;
    }
  });
}
