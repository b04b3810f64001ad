// CPU use of this process and of the Temporal dev server over a window, to tell which one a rate saturates.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds a process has used, from /proc (Linux); null elsewhere or once it has gone. */
export function procCpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces; the fields we want come after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicks();
  } catch {
    return null;
  }
}

/** Busy and iowait jiffies of the whole machine, from /proc/stat (Linux); null elsewhere. */
function machineJiffies(): { busy: number; iowait: number; total: number } | null {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cpu;
    return { busy: user + nice + system + irq + softirq + steal, iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
  } catch {
    return null;
  }
}

export interface CpuWindow {
  /** This process (HTTP server, store, worker incl. its Rust core threads, sender), % of one core. */
  nodePct: number;
  /** The Temporal dev server process, % of one core; null when /proc is unavailable. */
  temporalPct: number | null;
  /** Every other process on the machine (another benchmark or test run skews the figures), % of one core. */
  otherPct: number | null;
  /** Time the machine's cores waited on disk, % of one core. */
  iowaitPct: number | null;
  /** Share of the window the JS event loop was busy (0..1). */
  eventLoop: number;
}

export function startCpuWindow(temporalPid: number | undefined): () => CpuWindow {
  const t0 = performance.now();
  const node0 = process.cpuUsage();
  const temporal0 = temporalPid === undefined ? null : procCpuSeconds(temporalPid);
  const machine0 = machineJiffies();
  const elu0 = performance.eventLoopUtilization();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const node = process.cpuUsage(node0);
    const temporal1 = temporalPid === undefined ? null : procCpuSeconds(temporalPid);
    const machine1 = machineJiffies();
    const nodePct = ((node.user + node.system) / 1e6 / seconds) * 100;
    const temporalPct = temporal0 === null || temporal1 === null ? null : ((temporal1 - temporal0) / seconds) * 100;
    let otherPct: number | null = null;
    let iowaitPct: number | null = null;
    if (machine0 && machine1 && machine1.total > machine0.total) {
      const cores = os.cpus().length;
      const share = (jiffies: number) => (jiffies / (machine1.total - machine0.total)) * cores * 100;
      iowaitPct = share(machine1.iowait - machine0.iowait);
      otherPct = Math.max(0, share(machine1.busy - machine0.busy) - nodePct - (temporalPct ?? 0));
    }
    return { nodePct, temporalPct, otherPct, iowaitPct, eventLoop: performance.eventLoopUtilization(elu0).utilization };
  };
}

/**
 * Waits until this process and the dev server are both near idle (a step's leftover work — flow runs'
 * first tasks, arbiters' follow-up tasks — is done), so the next step is not charged for it.
 */
export async function waitUntilQuiet(temporalPid: number | undefined, maxMs = 60_000, thresholdPct = 25): Promise<void> {
  const deadline = performance.now() + maxMs;
  let quietWindows = 0;
  while (performance.now() < deadline && quietWindows < 2) {
    const window = startCpuWindow(temporalPid);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpu = window();
    quietWindows = cpu.nodePct + (cpu.temporalPct ?? 0) < thresholdPct ? quietWindows + 1 : 0;
  }
}
