// CPU use of this process and of the Temporal dev server over a window, to tell which one a rate saturates.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
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
function procCpuSeconds(pid: number): number | null {
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

export interface CpuWindow {
  /** This process (HTTP server, store, worker incl. its Rust core threads, sender), % of one core. */
  nodePct: number;
  /** The Temporal dev server process, % of one core; null when /proc is unavailable. */
  temporalPct: number | null;
  /** Share of the window the JS event loop was busy (0..1). */
  eventLoop: number;
}

export function startCpuWindow(temporalPid: number | undefined): () => CpuWindow {
  const t0 = performance.now();
  const node0 = process.cpuUsage();
  const temporal0 = temporalPid === undefined ? null : procCpuSeconds(temporalPid);
  const elu0 = performance.eventLoopUtilization();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const node = process.cpuUsage(node0);
    const temporal1 = temporalPid === undefined ? null : procCpuSeconds(temporalPid);
    return {
      nodePct: ((node.user + node.system) / 1e6 / seconds) * 100,
      temporalPct: temporal0 === null || temporal1 === null ? null : ((temporal1 - temporal0) / seconds) * 100,
      eventLoop: performance.eventLoopUtilization(elu0).utilization,
    };
  };
}
