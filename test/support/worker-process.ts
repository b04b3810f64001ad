// `microflows worker` as a process of its own, as in a deployment, so a test can SIGKILL it at a chosen moment.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT, WRITE_KEY } from './stack';

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
