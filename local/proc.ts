/**
 * What /proc says about the processes the local tooling starts (Linux): a process and its
 * descendants, a command line, a parent and the CPU time used. The benchmark, the soak and the tests
 * read their own children through it. Where there is no /proc each function answers nothing.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** Whether this machine has /proc. */
export const hasProc = existsSync("/proc/self/stat");

/** The process and every descendant still running, the process first. */
export function processTree(root: number): number[] {
  const out = [root];
  try {
    for (const task of readdirSync(`/proc/${root}/task`)) {
      const children = readFileSync(`/proc/${root}/task/${task}/children`, "utf8").trim().split(/\s+/);
      for (const child of children) if (child) out.push(...processTree(Number(child)));
    }
  } catch {
    // gone meanwhile, or no /proc
  }
  return out;
}

/** The command line, one entry per argument; undefined once the process is gone. */
export function commandLine(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The parent and the CPU time used so far (user + system, in clock ticks); undefined once gone. */
export function processStat(pid: number): { ppid: number; cpuTicks: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: fields are counted after its closing one.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
}
