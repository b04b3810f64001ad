// Runs `temporal server start-dev` for the process that spawned this one and stops it as soon as that process is gone,
// however it went (SIGKILL included), so the dev server can never outlive `microflows start`.
//
// Usage (cli/dev-server.ts spawns it with an IPC channel): node --require tsx/cjs dev-server-watchdog.ts <temporal> <args...>
// `temporal` is a Go binary we cannot teach to watch its parent, and Node has no prctl(PR_SET_PDEATHSIG); a parent's
// death is seen here in two independent ways: the IPC channel closes (the kernel closes the parent's end of the
// socket on any exit), and process.ppid changes (this process is re-parented). The dev server runs in this process's
// process group, so the group id recorded by the parent reaches it even if this watchdog is killed on its own.
import { spawn } from 'node:child_process';
import os from 'node:os';

/** How long the dev server gets to stop on SIGTERM before SIGKILL: its SQLite file is WAL, durable across a kill. */
const GRACE_MS = { requested: 10_000, parentGone: 3_000 } as const;
const PARENT_POLL_MS = 500;

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: dev-server-watchdog <temporal binary> <args...>');
  process.exit(2);
}

const parentPid = process.ppid;
// stdin is not inherited: nothing would read it, and a held pipe must not keep the parent's end open.
const temporal = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;

function stop(grace: number): void {
  if (stopping) return;
  stopping = true;
  if (temporal.exitCode !== null || temporal.signalCode !== null) return;
  temporal.kill('SIGTERM');
  setTimeout(() => temporal.kill('SIGKILL'), grace).unref();
}

temporal.once('spawn', () => {
  try {
    process.send?.({ temporalPid: temporal.pid });
  } catch {
    stop(GRACE_MS.parentGone); // the parent is already gone
  }
});
temporal.once('error', (err) => {
  console.error(`could not run ${command}: ${err.message}`);
  process.exit(127);
});
// Exit as the dev server did, so the parent can say how it ended.
temporal.once('exit', (code, signal) => process.exit(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)));

process.on('disconnect', () => stop(GRACE_MS.parentGone));
setInterval(() => {
  if (process.ppid !== parentPid) stop(GRACE_MS.parentGone);
}, PARENT_POLL_MS);
// The parent asks for a stop with SIGTERM; SIGINT and SIGHUP (a terminal's Ctrl-C or hang-up) stop it the same way,
// always through the dev server's own shutdown, and this process exits only once the dev server has.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => stop(GRACE_MS.requested));
