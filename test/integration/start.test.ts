// `microflows start` as a user runs it (what `npm start` runs): the embedded dev server with its
// SQLite file and Web UI, the worker and the HTTP server in one command; Ctrl-C stops all of it,
// starting again resumes the flow in flight; invalid flow files stop it before anything starts.
// Its dev server never outlives it: a SIGKILLed start takes it along, or the next start stops the one it
// recorded; a server on the embedded port that it did not start is refused, not adopted.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../../cli/dev-server';
import { temporalCliPath } from '../../cli/temporal-binaries';
import { adminFetch, post, TEST_ADMIN_KEY, waitUntil } from '../support/http';
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

async function startStack(extraEnv: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'start'], { env: { ...cleanEnv(), ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('microflows start to be running', async () => output.includes('embedded stack running') || child.exitCode !== null, 90_000);
  if (child.exitCode !== null) throw new Error(`microflows start exited ${child.exitCode}:\n${output}`);
  return { child, output: () => output, exited };
}

/** The exit code, or "still running" when the process has not exited within a minute (a stop that hangs). */
function exitOf(started: Started): Promise<number | null | 'still running'> {
  return Promise.race([started.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 60_000).unref())]);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Whether 127.0.0.1:port can be bound: the test's own check, sharing nothing with start's. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The process runs: `ps` knows it and it is not a zombie (an exited child its new parent has not reaped yet). */
function running(pid: number): boolean {
  const ps = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' });
  return ps.status === 0 && ps.stdout.trim() !== '' && !ps.stdout.trim().startsWith('Z');
}

function commandLine(pid: number): string {
  return spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
}

interface Recorded {
  starterPid: number;
  watchdogPid: number;
  temporalPid: number;
  port: number;
}

/** What start recorded about its dev server in the data dir (the file the next start reads). */
function recorded(dir = dataDir): Recorded {
  return JSON.parse(fs.readFileSync(path.join(dir, 'temporal-dev-server.json'), 'utf8')) as Recorded;
}

/** After a stop: every process start started is gone and every port it bound can be bound again. */
async function expectNothingLeft(pids: number[]): Promise<void> {
  expect(pids.filter(running)).toEqual([]);
  for (const port of [ports.http, ports.temporal, ports.ui]) expect(`${port}: ${(await portFree(port)) ? 'free' : 'bound'}`).toBe(`${port}: free`);
  expect(fs.existsSync(path.join(dataDir, 'temporal-dev-server.json'))).toBe(false);
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
    MICROFLOWS_ADMIN_KEY: TEST_ADMIN_KEY,
    SMTP_URL: smtp.url,
  };
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // A failed test may leave a dev server behind: its process group is the recorded watchdog's.
  try {
    process.kill(-recorded().watchdogPid, 'SIGKILL');
  } catch {
    // none recorded, or already gone
  }
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
  const { runs } = (await (await adminFetch(`${url}/api/customers/resume-1/runs`)).json()) as { runs: Array<{ workflowId: string; outcome: string }> };
  await waitUntil('run outcome recorded', async () => {
    const { runs: now } = (await (await adminFetch(`${url}/api/customers/resume-1/runs`)).json()) as { runs: Array<{ outcome: string | null }> };
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

it('a SIGKILLed start takes its Temporal dev server along; the next start runs clean and Ctrl-C then leaves nothing', async () => {
  const first = await startStack();
  const before = recorded();
  expect(before.starterPid).toBe(first.child.pid);
  expect(running(before.temporalPid)).toBe(true);
  expect(commandLine(before.temporalPid)).toContain(`start-dev --ip 127.0.0.1 --port ${ports.temporal}`);

  first.child.kill('SIGKILL');
  await first.exited;
  // Nothing stops it but the watchdog: the killed start ran no cleanup, and no other start has run yet.
  await waitUntil('the dev server to follow its killed start', async () => !running(before.temporalPid) && !running(before.watchdogPid), 10_000);

  const second = await startStack();
  expect(second.output()).not.toContain('left running');
  const after = recorded();
  expect(after.temporalPid).not.toBe(before.temporalPid);
  second.child.kill('SIGINT');
  expect(await exitOf(second)).toBe(0);
  await expectNothingLeft([after.watchdogPid, after.temporalPid]);
}, 240_000);

it('the next start stops a dev server that outlived its start, recorded in the data dir, before starting its own', async () => {
  const first = await startStack();
  const orphan = recorded();
  // The watchdog frozen, then killed with its start: the dev server is left running under pid 1, as before the fix.
  process.kill(orphan.watchdogPid, 'SIGSTOP');
  first.child.kill('SIGKILL');
  await first.exited;
  process.kill(orphan.watchdogPid, 'SIGKILL');
  await waitUntil('the watchdog to be gone', async () => !running(orphan.watchdogPid), 10_000);
  expect(running(orphan.temporalPid)).toBe(true);
  expect(await portFree(ports.temporal)).toBe(false);

  const second = await startStack();
  expect(second.output()).toContain(`stopped the Temporal dev server (pid ${orphan.temporalPid}, port ${ports.temporal}) that an earlier start (pid ${first.child.pid}) left running`);
  expect(running(orphan.temporalPid)).toBe(false);
  const own = recorded();
  expect(own.starterPid).toBe(second.child.pid);
  second.child.kill('SIGTERM');
  expect(await exitOf(second)).toBe(0);
  await expectNothingLeft([own.watchdogPid, own.temporalPid, orphan.temporalPid]);
}, 240_000);

it('refuses to adopt a Temporal server it did not start on the embedded port, naming the port and what to do, and starts nothing', async () => {
  const foreignDir = tempDir('start-foreign');
  // A dev server started by hand (or left by a start from before the data dir recorded it): not this start's.
  const foreign = spawn(temporalCliPath(), ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(ports.temporal), '--headless', '--log-level', 'error'], { stdio: 'ignore' });
  const uiSquatter = net.createServer();
  try {
    await waitUntil('the foreign server to listen', async () => !(await portFree(ports.temporal)) || foreign.exitCode !== null, 30_000);
    expect(foreign.exitCode).toBeNull();
    const run = (extra: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'start'], { env: { ...cleanEnv(), ...env, MICROFLOWS_DATA_DIR: foreignDir, ...extra }, encoding: 'utf8', timeout: 60_000 });

    const refused = run({});
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`port ${ports.temporal} on 127.0.0.1 (TEMPORAL_PORT, the embedded Temporal server's gRPC port) is in use by a process this start did not start`);
    expect(refused.stderr).toContain('will not adopt one it did not start');
    expect(refused.stderr).toContain(`set TEMPORAL_PORT to a free port, or, to use that server, set TEMPORAL_ADDRESS=127.0.0.1:${ports.temporal}`);
    expect(refused.stdout).not.toContain('starting the Temporal dev server');
    expect(refused.stdout).not.toContain('running');
    expect(fs.existsSync(path.join(foreignDir, 'temporal-dev-server.json'))).toBe(false);
    expect(fs.existsSync(path.join(foreignDir, 'temporal.sqlite'))).toBe(false);
    expect(await portFree(ports.http)).toBe(true);
    expect(foreign.exitCode).toBeNull(); // left alone: not ours to stop

    // The Web UI's port, held by anything: refused the same way, naming its variable.
    const freeGrpc = await freePort();
    await new Promise<void>((resolve) => uiSquatter.listen(ports.ui, '127.0.0.1', resolve));
    const uiRefused = run({ TEMPORAL_PORT: String(freeGrpc) });
    expect(uiRefused.status).toBe(1);
    expect(uiRefused.stderr).toContain(`port ${ports.ui} on 127.0.0.1 (TEMPORAL_UI_PORT, the embedded Temporal Web UI's port) is in use`);
    expect(uiRefused.stdout).not.toContain('starting the Temporal dev server');
    expect(await portFree(freeGrpc)).toBe(true);
  } finally {
    uiSquatter.close();
    foreign.kill('SIGKILL');
    fs.rmSync(foreignDir, { recursive: true, force: true });
  }
}, 120_000);
