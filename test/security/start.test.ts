// `microflows start` and `server` as an operator runs them on a network address: with the development defaults they
// refuse to start and list every fix; with real secrets they start, and the admin API answers only to an admin key.
// On loopback with no admin key, start generates one, keeps it in the data directory and prints it.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { developmentAdminKey } from '../../cli/runtime';
import { waitUntil } from '../support/http';
import { PROJECT_ROOT, tempDir } from '../support/stack';

const SECRET = 'start-test-secret-0123456789abcdef0123456789';
const ADMIN_KEY = 'mf_admin_start-test-0123456789abcdef0123456789';
const MASTER_KEY = Buffer.alloc(32, 7).toString('base64');
const children: ChildProcess[] = [];

function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('MICROFLOWS_') && !k.startsWith('TEMPORAL_') && k !== 'HOST' && k !== 'PORT') as Array<[string, string]>);
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function run(command: 'start' | 'server', env: Record<string, string>): Run {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), command], { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function projectEnv(): Promise<Record<string, string>> {
  return {
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    MICROFLOWS_DATA_DIR: tempDir('secure-start'),
    MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-flows'),
    MICROFLOWS_TEMPLATES_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-templates'),
  };
}

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('starting on a network address', () => {
  it('attack surface: `start` on HOST=0.0.0.0 with the development defaults exits non-zero, listing every fix, and starts nothing', async () => {
    const env: Record<string, string> = { ...(await projectEnv()), HOST: '0.0.0.0' };
    const refused = run('start', env);
    expect(await refused.exited).not.toBe(0);
    const output = refused.output();
    expect(output).toContain('refusing to start: HOST=0.0.0.0 reaches beyond this machine');
    expect(output).toContain('set MICROFLOWS_WRITE_KEY=$(openssl rand -hex 32)');
    expect(output).toContain('set MICROFLOWS_SIGNING_SECRET=$(openssl rand -hex 32)');
    expect(output).toContain('microflows keys create --kind admin');
    expect(output).toContain('MICROFLOWS_MASTER_KEY is unset');
    // Refused before the embedded Temporal server was started.
    expect(output).not.toContain('starting the Temporal dev server');
    expect(fs.existsSync(path.join(env.MICROFLOWS_DATA_DIR!, 'temporal-dev-server.json'))).toBe(false);
  }, 60_000);

  it('`server` on HOST=0.0.0.0 is refused the same way, even with a write key, while the signing secret and admin key are missing', async () => {
    const refused = run('server', { ...(await projectEnv()), HOST: '0.0.0.0', TEMPORAL_ADDRESS: '127.0.0.1:1', MICROFLOWS_WRITE_KEY: SECRET });
    expect(await refused.exited).not.toBe(0);
    expect(refused.output()).not.toContain('MICROFLOWS_WRITE_KEY=$(openssl');
    expect(refused.output()).toContain('MICROFLOWS_SIGNING_SECRET');
    expect(refused.output()).toContain('no admin key exists');
  }, 60_000);

  it('with real secrets it starts on 0.0.0.0, and /api/profiles/x without a key is 401', async () => {
    const env: Record<string, string> = { ...(await projectEnv()), HOST: '0.0.0.0', MICROFLOWS_WRITE_KEY: SECRET, MICROFLOWS_SIGNING_SECRET: SECRET, MICROFLOWS_ADMIN_KEY: ADMIN_KEY, MICROFLOWS_PUBLIC_URL: 'http://127.0.0.1', MICROFLOWS_MASTER_KEY: MASTER_KEY };
    const started = run('start', env);
    await waitUntil('microflows start to be running', async () => started.output().includes('embedded stack running') || started.child.exitCode !== null, 90_000);
    expect(started.child.exitCode).toBeNull();
    const base = `http://127.0.0.1:${env.PORT}`;
    const anonymous = await fetch(`${base}/api/profiles/x`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="microflows-admin"');
    expect((await fetch(`${base}/api/profiles/x`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(404);
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
    // The generated development key exists only on loopback.
    expect(started.output()).not.toContain('Admin key:');
    started.child.kill('SIGINT');
    expect(await started.exited).toBe(0);
  }, 120_000);
});

describe('developmentAdminKey', () => {
  it('generates one admin key on loopback when none exists, keeps it in the data directory, and gives the same one again', () => {
    const dataDir = tempDir('dev-admin-key');
    const config = { adminKey: null, dataDir, host: '127.0.0.1', adminHost: null };
    const key = developmentAdminKey(config, false);
    expect(key).toMatch(/^mf_admin_[A-Za-z0-9_-]{43}$/);
    expect(fs.readFileSync(path.join(dataDir, 'admin-key'), 'utf8').trim()).toBe(key);
    expect((fs.statSync(path.join(dataDir, 'admin-key')).mode & 0o777).toString(8)).toBe('600');
    expect(developmentAdminKey(config, false)).toBe(key);
  });

  it('generates none when an admin key is configured or stored, or off loopback', () => {
    const dataDir = tempDir('dev-admin-key');
    expect(developmentAdminKey({ adminKey: ADMIN_KEY, dataDir, host: '127.0.0.1', adminHost: null }, false)).toBeNull();
    expect(developmentAdminKey({ adminKey: null, dataDir, host: '127.0.0.1', adminHost: null }, true)).toBeNull();
    expect(developmentAdminKey({ adminKey: null, dataDir, host: '0.0.0.0', adminHost: null }, false)).toBeNull();
    expect(developmentAdminKey({ adminKey: null, dataDir, host: '127.0.0.1', adminHost: '0.0.0.0' }, false)).toBeNull();
    expect(fs.existsSync(path.join(dataDir, 'admin-key'))).toBe(false);
  });
});
