// Remembers, in the data dir, the Temporal dev server a process started (its pids and ports), so that a later start
// can tell its own orphan (stopped, then replaced) from a live start (refused) and from a stranger's server (refused).
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { MicroflowsError } from '../core/errors';

export const DEV_SERVER_RECORD = 'temporal-dev-server.json';

export interface DevServerRecord {
  /** The process that started the dev server (`microflows start`, a test, a benchmark). */
  starterPid: number;
  /** The watchdog (cli/dev-server-watchdog.ts): the dev server's parent, and its process group's id. */
  watchdogPid: number;
  temporalPid: number;
  port: number;
  uiPort: number | null;
  /** The dev server's SQLite file: it is on both command lines, which is how a pid is known to still be ours. */
  dbFile: string;
  startedAt: string;
}

/** Another live process runs a dev server on this data dir. */
export class DevServerInUseError extends MicroflowsError {
  override readonly status = 409;
  override readonly code = 'dev_server_in_use';
  override name = 'DevServerInUseError';
}

/** A dev server of ours could not be stopped. */
export class DevServerStopError extends MicroflowsError {
  override readonly code = 'dev_server_stop_failed';
  override name = 'DevServerStopError';
}

export function recordFile(dataDir: string): string {
  return path.join(dataDir, DEV_SERVER_RECORD);
}

export function readDevServerRecord(dataDir: string): DevServerRecord | null {
  let text: string;
  try {
    text = fs.readFileSync(recordFile(dataDir), 'utf8');
  } catch {
    return null;
  }
  try {
    const record = JSON.parse(text) as Partial<DevServerRecord>;
    const pids = [record.starterPid, record.watchdogPid, record.temporalPid];
    if (pids.every((pid) => Number.isSafeInteger(pid) && pid! > 0) && typeof record.dbFile === 'string') return record as DevServerRecord;
  } catch {
    // a torn write (the writer was killed mid-way): nothing usable, treated as no record
  }
  return null;
}

export function writeDevServerRecord(dataDir: string, record: DevServerRecord): void {
  // Written aside and renamed, so a reader never sees half a record.
  const file = recordFile(dataDir);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

/** Removes the record, if it still names `watchdogPid` (a newer start's record is left alone). */
export function removeDevServerRecord(dataDir: string, watchdogPid: number): void {
  if (readDevServerRecord(dataDir)?.watchdogPid !== watchdogPid) return;
  fs.rmSync(recordFile(dataDir), { force: true });
}

export interface ProcessInfo {
  parentPid: number;
  commandLine: string;
  /** Exited but not yet reaped: holds no port and no file, so it counts as gone. */
  zombie: boolean;
}

const HAS_PROC = fs.existsSync('/proc/self/stat');

/** What the system says about a pid: /proc on Linux, `ps` elsewhere; null when there is no such process. */
export function processInfo(pid: number): ProcessInfo | null {
  if (HAS_PROC) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const commandLine = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      return { parentPid: Number(ppid), commandLine, zombie: state === 'Z' || state === 'X' };
    } catch {
      return null;
    }
  }
  const ps = spawnSync('ps', ['-o', 'ppid=,stat=,args=', '-p', String(pid)], { encoding: 'utf8' });
  const match = /^\s*(\d+)\s+(\S+)\s+(.*)$/m.exec(ps.stdout ?? '');
  if (ps.status !== 0 || !match) return null;
  return { parentPid: Number(match[1]), commandLine: match[3]!.trim(), zombie: match[2]!.startsWith('Z') };
}

/** The process runs (a zombie does not count). */
export function isRunning(pid: number): boolean {
  const info = processInfo(pid);
  return info !== null && !info.zombie;
}

/** The pid still runs the dev server of `record` (not a process that got the pid since). */
function stillOurs(record: DevServerRecord, pid: number): ProcessInfo | null {
  const info = processInfo(pid);
  return info && !info.zombie && info.commandLine.includes(record.dbFile) ? info : null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `signal` to the process group `groupId`, or, when the group is gone, to each pid. */
function signalGroup(groupId: number, pids: number[], signal: NodeJS.Signals): void {
  try {
    process.kill(-groupId, signal);
    return;
  } catch {
    // no such group (platform or already gone): each pid on its own
  }
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

async function waitUntilGone(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pids.some(isRunning)) return true;
    await sleep(100);
  }
  return !pids.some(isRunning);
}

/**
 * Stops the dev server of `record` (its watchdog's process group): SIGTERM, then SIGKILL after `graceMs`.
 * Throws DevServerStopError when a pid of it survives even that.
 */
export async function stopRecordedDevServer(record: DevServerRecord, graceMs = 10_000): Promise<void> {
  const pids = [record.watchdogPid, record.temporalPid].filter((pid) => stillOurs(record, pid));
  if (pids.length === 0) return;
  signalGroup(record.watchdogPid, pids, 'SIGTERM');
  if (await waitUntilGone(pids, graceMs)) return;
  signalGroup(record.watchdogPid, pids, 'SIGKILL');
  if (await waitUntilGone(pids, 5_000)) return;
  const left = pids.filter(isRunning);
  throw new DevServerStopError(`the Temporal dev server (pid ${left.join(', ')}) does not stop, even on SIGKILL: check it with \`ps -p ${left.join(',')}\` before starting again`);
}

/**
 * Before a start on `dataDir`: stops the dev server an earlier start recorded there and left behind (its starter is
 * gone), and refuses when a live process still runs it. Returns what it stopped, for the caller to say so.
 */
export async function reclaimOrphanedDevServer(dataDir: string): Promise<DevServerRecord | null> {
  const record = readDevServerRecord(dataDir);
  if (!record) return null;
  const watchdog = stillOurs(record, record.watchdogPid);
  const temporal = stillOurs(record, record.temporalPid);
  if (!watchdog && !temporal) {
    fs.rmSync(recordFile(dataDir), { force: true }); // it ended with its starter; only the record was left
    return null;
  }
  // A watchdog still parented by its starter means that start is alive: two servers must not share one SQLite file.
  if (watchdog && watchdog.parentPid === record.starterPid && isRunning(record.starterPid)) {
    throw new DevServerInUseError(
      `the data dir ${dataDir} is in use: process ${record.starterPid} runs its Temporal dev server (pid ${record.temporalPid}) on 127.0.0.1:${record.port} ` +
        `(recorded in ${recordFile(dataDir)}). Stop that one first (Ctrl-C in its terminal, or \`kill ${record.starterPid}\`), ` +
        'or give this one another MICROFLOWS_DATA_DIR and TEMPORAL_PORT',
    );
  }
  await stopRecordedDevServer(record);
  fs.rmSync(recordFile(dataDir), { force: true });
  return record;
}
