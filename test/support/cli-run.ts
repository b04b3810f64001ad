// Runs the real CLI (bin/microflows.js) in a child process with `env` over this process's environment, minus its
// MICROFLOWS_* and DATABASE_URL settings; killed after a minute so a hang fails the test instead of stalling it.
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, drop: (name: string) => boolean = () => false): Promise<CliRun> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICROFLOWS_') && k !== 'DATABASE_URL' && !drop(k)));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/microflows.js'), ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('close', (status) => {
      clearTimeout(killer);
      resolve({ status, stdout, stderr });
    });
  });
}
