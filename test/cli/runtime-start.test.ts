// What `worker` and `server` say at start about the two settings that fail quietly in a deployment: links in emails
// without MICROFLOWS_PUBLIC_URL, and a Temporal address that does not answer. The rule on examples, then the real CLI
// in a child process against a port where nothing listens.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { publicUrlWarning } from '../../cli/runtime';

const ROOT = path.resolve(__dirname, '../..');
const both = { worker: true, server: true };

describe('publicUrlWarning', () => {
  const local = { publicUrl: null, host: '127.0.0.1', port: 3000, temporalAddress: '127.0.0.1:7233' };

  it('stays quiet for the embedded stack: one process, Temporal and the HTTP server on this machine', () => {
    expect(publicUrlWarning(local, both)).toBeNull();
    expect(publicUrlWarning({ ...local, host: 'localhost', temporalAddress: 'localhost:7233' }, both)).toBeNull();
    expect(publicUrlWarning({ ...local, temporalAddress: null }, both)).toBeNull();
  });

  it('stays quiet whenever MICROFLOWS_PUBLIC_URL is set', () => {
    const deployed = { ...local, publicUrl: 'https://mail.shop.example', host: '0.0.0.0', temporalAddress: 'temporal.internal:7233' };
    for (const roles of [both, { worker: true, server: false }, { worker: false, server: true }]) expect(publicUrlWarning(deployed, roles)).toBeNull();
  });

  it('warns a worker or a server of a deployment, naming where links would point', () => {
    expect(publicUrlWarning(local, { worker: true, server: false })).toContain('this process runs only the worker of a deployment');
    expect(publicUrlWarning(local, { worker: false, server: true })).toContain('this process runs only the HTTP server of a deployment');
    expect(publicUrlWarning(local, { worker: true, server: false })).toContain('will point at http://127.0.0.1:3000');
  });

  it('warns when Temporal is elsewhere or the HTTP server binds beyond loopback, saying which', () => {
    expect(publicUrlWarning({ ...local, temporalAddress: 'temporal.internal:7233' }, both)).toContain('Temporal is elsewhere (TEMPORAL_ADDRESS=temporal.internal:7233)');
    expect(publicUrlWarning({ ...local, temporalAddress: '[::1]:7233' }, both)).toBeNull();
    const exposed = publicUrlWarning({ ...local, host: '0.0.0.0', port: 8080 }, both);
    expect(exposed).toContain('the HTTP server binds 0.0.0.0, beyond this machine');
    expect(exposed).toContain('will point at http://127.0.0.1:8080');
    expect(exposed).toContain('Set MICROFLOWS_PUBLIC_URL');
  });
});

/** Runs `microflows <role>` to its end; resolves with its exit code and everything it printed. */
function run(role: 'worker' | 'server', env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICROFLOWS_') && !['DATABASE_URL', 'TEMPORAL_ADDRESS', 'HOST', 'PORT'].includes(k)));
  const child = spawn(process.execPath, ['bin/microflows.js', role], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe('worker and server at start', () => {
  let dataDir: string;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-runtime-start-'));
  });

  afterAll(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('warn about links without MICROFLOWS_PUBLIC_URL, and exit 1 naming the Temporal address that did not answer', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const env = (name: string) => ({ TEMPORAL_ADDRESS: address, MICROFLOWS_DATA_DIR: path.join(dataDir, name), PORT: '0' });
    const [worker, server, configured] = await Promise.all([
      run('worker', env('worker')),
      run('server', env('server')),
      run('server', { ...env('configured'), MICROFLOWS_PUBLIC_URL: 'https://mail.shop.example' }),
    ]);
    for (const { code, output } of [worker, server, configured]) {
      expect(code).toBe(1);
      expect(output).toContain(`cannot reach Temporal at ${address}:`);
      expect(output).toContain('TEMPORAL_ADDRESS sets the address');
    }
    expect(worker.output).toContain('[microflows] warning: MICROFLOWS_PUBLIC_URL is unset while this process runs only the worker of a deployment');
    expect(server.output).toContain('[microflows] warning: MICROFLOWS_PUBLIC_URL is unset while this process runs only the HTTP server of a deployment');
    expect(configured.output).not.toContain('MICROFLOWS_PUBLIC_URL is unset');
  }, 90_000);
});
