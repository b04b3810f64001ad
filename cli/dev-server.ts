// Runs the embedded Temporal dev server (`temporal server start-dev`) with its SQLite file under the data dir, the
// Web UI, and microflows' search attributes registered, bound to the process that started it; stops it cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { ConfigError, MicroflowsError } from '../core/errors';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../workflows/search-attributes';
import { reclaimOrphanedDevServer, recordFile, removeDevServerRecord, stopRecordedDevServer, writeDevServerRecord, type DevServerRecord } from './dev-server-record';
import { temporalCliPath } from './temporal-binaries';

/** Pragmas `microflows start` gives the dev server's SQLite file: WAL with NORMAL sync (durable across process crashes). */
export const EMBEDDED_SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'];

const WATCHDOG = path.join(__dirname, 'dev-server-watchdog.ts');
/** Lines of the dev server's output kept to explain a failed start. */
const OUTPUT_TAIL_LINES = 20;

export interface DevServer {
  address: string;
  uiUrl: string | null;
  /** The `temporal` process. */
  pid: number;
  /** Settles when the dev server has exited, however it ended, with its exit code. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  dataDir: string;
  /** 0 picks a free port */
  port?: number;
  uiPort?: number;
  headless?: boolean;
  /** The Web UI's remote codec endpoint (`--ui-codec-endpoint`): microflows' /codec on the admin surface. */
  codecEndpoint?: string;
  /** `--sqlite-pragma` values, e.g. ['journal_mode=wal', 'synchronous=normal'] */
  sqlitePragmas?: string[];
  /** `--dynamic-config-value` entries, e.g. ['limit.historyCount.suggestContinueAsNew=50'] */
  dynamicConfig?: string[];
  log?: (line: string) => void;
  /** Aborting while the server starts stops it and rejects with DevServerStartAbortedError. */
  signal?: AbortSignal;
  /** Called once the checks have passed, right before the dev server is spawned. */
  onSpawn?: () => void;
  /** Told when a dev server an earlier start left running on this data dir is stopped first. */
  onOrphanStopped?: (record: DevServerRecord) => void;
}

/** A port the dev server needs is taken by a process it did not start. */
export class PortInUseError extends MicroflowsError {
  override readonly status = 409;
  override readonly code = 'port_in_use';
  override name = 'PortInUseError';
}

/** The start was abandoned on request (Ctrl-C while starting); the dev server is stopped. */
export class DevServerStartAbortedError extends MicroflowsError {
  override readonly code = 'dev_server_start_aborted';
  override name = 'DevServerStartAbortedError';
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `host`:`port` can be bound now (what the dev server will do with 127.0.0.1:`port`). */
export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(false) : reject(err)));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Refuses a port someone else listens on: without this the dev server fails to bind, but the health check finds the
 * stranger's server answering on that address and `start` would run on it — and leave it running on Ctrl-C.
 */
async function refuseTakenPort(port: number, kind: 'grpc' | 'ui', dataDir: string): Promise<void> {
  if (await portIsFree(port)) return;
  const variable = kind === 'grpc' ? 'TEMPORAL_PORT' : 'TEMPORAL_UI_PORT';
  const what = kind === 'grpc' ? 'the embedded Temporal server\'s gRPC port' : 'the embedded Temporal Web UI\'s port';
  const useIt = kind === 'grpc' ? `, or, to use that server, set TEMPORAL_ADDRESS=127.0.0.1:${port} (start then runs no dev server)` : '';
  throw new PortInUseError(
    `port ${port} on 127.0.0.1 (${variable}, ${what}) is in use by a process this start did not start: no dev server is recorded ` +
      `for it in ${recordFile(dataDir)}. microflows start runs its own Temporal dev server and will not adopt one it did not start. ` +
      `Stop the process listening there (\`lsof -i :${port}\` names it), or set ${variable} to a free port${useIt}`,
  );
}

/** The dev server exited before it served; `crashed`: it panicked (a Go runtime error), which a new start may not. */
export class DevServerExitedError extends ConfigError {
  constructor(
    message: string,
    readonly crashed: boolean,
  ) {
    super(message);
  }
}

function exitedEarly(address: string, watchdog: ChildProcess, outputTail: string): DevServerExitedError {
  const code = watchdog.exitCode ?? watchdog.signalCode;
  return new DevServerExitedError(`temporal server start-dev exited with code ${code} before serving on ${address}${outputTail ? `; its last output:\n${outputTail}` : ''}`, /^panic: /m.test(outputTail));
}

/**
 * How often a start is tried when the server panics while starting: it binds internal ports of its own choosing, and
 * one taken between its choice and its bind makes it panic (a nil listener in its HTTP API server) rather than fail.
 */
const STARTS_ON_PANIC = 3;

async function waitUntilServing(address: string, watchdog: ChildProcess, outputTail: () => string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const hasExited = () => watchdog.exitCode !== null || watchdog.signalCode !== null;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new DevServerStartAbortedError(`the start of the Temporal dev server on ${address} was abandoned on request`);
    if (hasExited()) throw exitedEarly(address, watchdog, outputTail());
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.healthService.check({});
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    // An answer, but ours has exited: another server took the port after it was checked. Not ours to run on.
    if (hasExited()) throw exitedEarly(address, watchdog, outputTail());
    return;
  }
  throw new ConfigError(`Temporal dev server did not answer on ${address} within ${timeoutMs} ms: ${String(lastError)}`);
}

/**
 * Starts the dev server through cli/dev-server-watchdog.ts, which stops it the moment this process is gone (even on
 * SIGKILL), and records it in the data dir; a server an earlier start left there is stopped first, and a port held
 * by anything else is refused.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (err) {
      if (!(err instanceof DevServerExitedError && err.crashed) || attempt >= STARTS_ON_PANIC || options.signal?.aborted) throw err;
      options.log?.(`[temporal] the dev server panicked while starting; starting it again (attempt ${attempt + 1} of ${STARTS_ON_PANIC})\n`);
    }
  }
}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  fs.mkdirSync(options.dataDir, { recursive: true });
  const dbFile = path.resolve(options.dataDir, 'temporal.sqlite');
  const orphan = await reclaimOrphanedDevServer(options.dataDir);
  if (orphan) options.onOrphanStopped?.(orphan);
  if (options.port) await refuseTakenPort(options.port, 'grpc', options.dataDir);
  if (!options.headless && options.uiPort) await refuseTakenPort(options.uiPort, 'ui', options.dataDir);
  const port = options.port || (await freePort());
  const uiPort = options.uiPort || (await freePort());
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--db-filename',
    dbFile,
    '--log-level',
    'warn',
    ...SEARCH_ATTRIBUTE_REGISTRATIONS.flatMap((sa) => ['--search-attribute', sa]),
    ...(options.sqlitePragmas ?? []).flatMap((pragma) => ['--sqlite-pragma', pragma]),
    ...(options.dynamicConfig ?? []).flatMap((value) => ['--dynamic-config-value', value]),
    // The UI's newsfeed would call temporal.io from every operator's browser: nothing leaves the machine unasked.
    ...(options.headless ? ['--headless'] : ['--ui-port', String(uiPort), '--ui-disable-news-fetch', ...(options.codecEndpoint ? ['--ui-codec-endpoint', options.codecEndpoint] : [])]),
  ];
  options.onSpawn?.();
  // detached: its own process group, so a terminal's Ctrl-C reaches only this process, which stops the worker and
  // the HTTP server before the dev server they talk to; the group id also reaches the dev server if the watchdog dies.
  const watchdog = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), WATCHDOG, temporalCliPath(), ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
  });
  const log = options.log ?? (() => undefined);
  let output: string[] = [];
  const exited = new Promise<number | null>((resolve) => {
    watchdog.once('exit', (code) => resolve(code));
    watchdog.once('error', (err) => {
      output.push(`could not run the watchdog (${process.execPath}): ${err.message}`);
      resolve(null);
    });
  });
  const temporalPid = new Promise<number>((resolve) => watchdog.on('message', (m: { temporalPid?: number }) => m.temporalPid && resolve(m.temporalPid)));
  const keep = (chunk: Buffer) => {
    const text = chunk.toString();
    log(text);
    output = [...output, ...text.split('\n').filter((l) => l.trim() !== '')].slice(-OUTPUT_TAIL_LINES);
  };
  watchdog.stdout?.on('data', keep);
  watchdog.stderr?.on('data', keep);
  const address = `127.0.0.1:${port}`;

  let record: DevServerRecord | null = null;
  const stop = async (): Promise<void> => {
    if (watchdog.exitCode === null && watchdog.signalCode === null) {
      // The watchdog exits once the dev server has (SIGKILL after its grace); the group kill is for a hung watchdog.
      const killer = setTimeout(() => signalGroup(watchdog.pid!, 'SIGKILL'), 15_000);
      watchdog.kill('SIGTERM');
      await exited;
      clearTimeout(killer);
    }
    // The watchdog may have been killed on its own, leaving the dev server running: stop that by its record.
    if (record) {
      await stopRecordedDevServer(record);
      removeDevServerRecord(options.dataDir, record.watchdogPid);
    }
  };

  try {
    // Recorded as soon as its pid is known, so even a start killed while waiting leaves a record to find it by.
    const pid = await Promise.race([temporalPid, exited.then(() => null)]);
    if (pid === null) throw exitedEarly(address, watchdog, output.join('\n'));
    record = { starterPid: process.pid, watchdogPid: watchdog.pid!, temporalPid: pid, port, uiPort: options.headless ? null : uiPort, dbFile, startedAt: new Date().toISOString() };
    writeDevServerRecord(options.dataDir, record);
    await waitUntilServing(address, watchdog, () => output.join('\n'), 60_000, options.signal);
    return { address, uiUrl: options.headless ? null : `http://127.0.0.1:${uiPort}`, pid, exited, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function signalGroup(groupId: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-groupId, signal);
  } catch {
    // already gone
  }
}
