// `microflows worker` and `microflows server` as processes of their own, as in a deployment, so a test can run
// several and SIGKILL one at a chosen moment.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { PROJECT_ROOT, TEST_MASTER_KEY, WRITE_KEY } from './stack';
import { TEST_ADMIN_KEY } from './http';

/**
 * The environment of a deployment on the dev server with the test fixtures' flows and templates (the crash-test
 * flow: send, wait 6 s, send): the HTTP process and every worker process share it.
 */
export function devServerEnv(options: { temporalAddress: string; dataDir: string; smtpUrl: string; taskQueue: string }): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: options.temporalAddress,
    MICROFLOWS_DATA_DIR: options.dataDir,
    MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-flows'),
    MICROFLOWS_TEMPLATES_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-templates'),
    SMTP_URL: options.smtpUrl,
    MICROFLOWS_WRITE_KEY: WRITE_KEY,
    MICROFLOWS_ADMIN_KEY: TEST_ADMIN_KEY,
    // The in-process runtime (testConfig) and every worker process must share the master key.
    MICROFLOWS_MASTER_KEY: TEST_MASTER_KEY,
    TEMPORAL_TASK_QUEUE: options.taskQueue,
  };
}

/** Starts a worker with `env` over this process's environment; its output is printed only if it dies on its own. */
export function spawnWorker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'worker'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL' && signal !== 'SIGTERM') console.error(`worker exited ${code ?? signal}:\n${output}`);
  });
  return child;
}

/** Sends `signal` and resolves once the process has exited (at once if it already has). */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
}

/** Starts `microflows server` with `env` on a free port and resolves once it answers `/api/health`. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'server'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`microflows server exited with ${child.exitCode}:\n${output}`);
    try {
      // Any answer means it listens (health may be 503 while Temporal is away).
      await fetch(`${url}/api/health`);
      return { url, child, output: () => output };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`microflows server did not answer within 60 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
