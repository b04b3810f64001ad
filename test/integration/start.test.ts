// `microflows start` as a user runs it (what `npm start` runs): the embedded dev server with its
// SQLite file and Web UI, the worker and the HTTP server in one command; Ctrl-C stops all of it,
// starting again resumes the flow in flight; invalid flow files stop it before anything starts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { PROJECT_ROOT, tempDir, WRITE_KEY } from '../support/stack';

let smtp: SmtpSink;
let dataDir: string;
let env: Record<string, string>;
let ports: { http: number; temporal: number; ui: number };
const children: ChildProcess[] = [];

function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('MICROFLOWS_') && !k.startsWith('TEMPORAL_ADDRESS')) as Array<[string, string]>);
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

async function startStack(): Promise<Started> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'start'], { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('microflows start to be running', async () => output.includes('embedded stack running') || child.exitCode !== null, 90_000);
  if (child.exitCode !== null) throw new Error(`microflows start exited ${child.exitCode}:\n${output}`);
  return { child, output: () => output, exited };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  smtp = await startSmtpSink();
  dataDir = tempDir('start');
  ports = { http: await freePort(), temporal: await freePort(), ui: await freePort() };
  env = {
    PORT: String(ports.http),
    TEMPORAL_PORT: String(ports.temporal),
    TEMPORAL_UI_PORT: String(ports.ui),
    MICROFLOWS_DATA_DIR: dataDir,
    MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-flows'),
    MICROFLOWS_TEMPLATES_DIR: path.join(PROJECT_ROOT, 'test/fixtures/dev-templates'),
    MICROFLOWS_WRITE_KEY: WRITE_KEY,
    SMTP_URL: smtp.url,
  };
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await smtp?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

it('runs the embedded stack; Ctrl-C stops it cleanly and a restart resumes the flow in flight', async () => {
  const first = await startStack();
  expect(first.output()).toContain(`Web UI http://127.0.0.1:${ports.ui}`);
  expect((await fetch(`http://127.0.0.1:${ports.ui}/`)).status).toBe(200);
  expect(fs.existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);
  expect(fs.existsSync(path.join(dataDir, 'microflows.sqlite'))).toBe(true);

  const url = `http://127.0.0.1:${ports.http}`;
  expect((await post(`${url}/v1/identify`, { userId: 'resume-1', traits: { email: 'resume-1@example.com', consent: { email_marketing: true } } }, WRITE_KEY)).status).toBe(200);
  expect((await post(`${url}/v1/track`, { userId: 'resume-1', event: 'Product Added', properties: { product_id: 'p1' } }, WRITE_KEY)).status).toBe(200);
  await smtp.waitForCount(1, 60_000);

  // Ctrl-C during the flow's 6 s wait
  first.child.kill('SIGINT');
  expect(await first.exited).toBe(0);
  expect(first.output()).toContain('[microflows] stopped');
  expect(await portOpen(ports.temporal)).toBe(false);
  expect(await portOpen(ports.http)).toBe(false);
  expect(smtp.messages).toHaveLength(1);

  const second = await startStack();
  const mails = await smtp.waitForCount(2, 60_000);
  expect(mails.map((m) => m.subject)).toEqual(['crash test: first', 'crash test: second']);
  const { runs } = (await (await fetch(`${url}/api/customers/resume-1/runs`)).json()) as { runs: Array<{ workflowId: string; outcome: string }> };
  await waitUntil('run outcome recorded', async () => {
    const { runs: now } = (await (await fetch(`${url}/api/customers/resume-1/runs`)).json()) as { runs: Array<{ outcome: string | null }> };
    return now[0]?.outcome === 'completed';
  });
  expect(runs.map((r) => r.workflowId)).toEqual(['flow/crash-test/resume-1/1']);
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
}, 240_000);

it('refuses to start on an invalid flow file, naming the file and line, and starts nothing', () => {
  const run = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'start'], {
    env: { ...cleanEnv(), ...env, MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/flows-invalid'), MICROFLOWS_TEMPLATES_DIR: path.join(PROJECT_ROOT, 'test/fixtures/templates') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(run.status).toBe(1);
  expect(run.stderr).toMatch(/flows-invalid\/unknown-step-kind\.yaml:7:5 \(steps\[1\]\.sned\): error: unknown step kind "sned"/);
  expect(run.stdout).not.toContain('starting the Temporal dev server');
});
