// One email per send when the send itself is retried, on the real Temporal dev server: a worker process is SIGKILLed
// after its send took effect (the SMTP server accepted the message, or the outbox row committed) and before Temporal
// recorded the activity's completion, so Temporal runs the send again on another worker. The moment is made exact,
// not hoped for: the test's SMTP server holds its 250, a SQLite lock holds the ledger's commit, and a TCP relay
// between the worker and Temporal holds the completion.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { SEND_HEARTBEAT_TIMEOUT_MS } from '../../core/send-heartbeat';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { tempDir, testConfig, WRITE_KEY } from '../support/stack';
import { recordedSends, runningSend } from '../support/send-activities';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay';
import { devServerEnv, spawnWorker, stopProcess as stop } from '../support/worker-process';

const FIRST = 'crash test: first';
const SECOND = 'crash test: second';
/** The killed attempt times out after the heartbeat timeout, then the retry runs and the flow goes on (6 s wait). */
const RETRY_WITHIN_MS = SEND_HEARTBEAT_TIMEOUT_MS + 40_000;

let devServer: DevServer;
let smtp: SmtpSink;
let runtime: Runtime;
let gate: TcpRelay;
let dataDir: string;
let env: Record<string, string>;
const workers: ChildProcess[] = [];

function startWorker(overrides: Record<string, string> = {}): ChildProcess {
  const child = spawnWorker({ ...env, ...overrides });
  workers.push(child);
  return child;
}

/** Enters `customer` into the crash-test flow (send first, wait 6 s, send second) and returns its run's id. */
async function enterFlow(customer: string): Promise<string> {
  const identified = await post(`${runtime.url}/v1/identify`, { userId: customer, traits: { email: `${customer}@example.com`, consent: { email_marketing: true } } }, WRITE_KEY);
  expect(identified.status).toBe(200);
  const added = await post(`${runtime.url}/v1/track`, { userId: customer, event: 'Product Added', properties: { product_id: 'p1' } }, WRITE_KEY);
  expect(added.status).toBe(200);
  return `flow/crash-test/${customer}/1`;
}

/** An exclusive write lock on the embedded store's SQLite file, as another writer would hold it. */
function lockStore(): { release(): void } {
  const db = new Database(runtime.config.sqlitePath);
  db.pragma('busy_timeout = 10000');
  db.exec('begin immediate');
  return {
    release() {
      db.exec('rollback');
      db.close();
    },
  };
}


/** Resets the killed worker's connections through the relay, dropping what they held back; then reopens it. */
async function dropHeldAndReopen(): Promise<void> {
  await gate.down();
  gate.release();
  await gate.up();
}

const mailTo = (customer: string) => smtp.messages.filter((m) => m.to === `${customer}@example.com`);

beforeAll(async () => {
  dataDir = tempDir('send-retry');
  devServer = await startDevServer({ dataDir, headless: true });
  smtp = await startSmtpSink();
  gate = await startTcpRelay(devServer.address);
  env = devServerEnv({ temporalAddress: devServer.address, dataDir, smtpUrl: smtp.url, taskQueue: `send-retry-${process.pid}` });
  // This process serves HTTP; the workers are processes of their own, so one can be killed.
  runtime = await startRuntime({ config: testConfig(env), worker: false, schedule: false, log: () => undefined });
}, 120_000);

// A failed test must not leave its workers to take the next test's sends.
afterEach(async () => {
  for (const w of workers.splice(0)) await stop(w, 'SIGKILL');
});

afterAll(async () => {
  await runtime?.stop();
  await gate?.close();
  await smtp?.close();
  await devServer?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('a send retried after its worker was killed', () => {
  it('over SMTP, killed after the 250 and the ledger, before Temporal heard: the retry is skipped by the ledger', async () => {
    const customer = 'retry-smtp-recorded';
    const first = startWorker({ TEMPORAL_ADDRESS: gate.address });
    const held = smtp.holdReply((to) => to === `${customer}@example.com`);
    const workflowId = await enterFlow(customer);

    await held.arrived;
    gate.hold(); // from here on, nothing the worker says reaches Temporal: its completion will not either
    held.release(); // the SMTP server accepts the message
    const sends = await waitUntil('the ledger to record the send', async () => {
      const rows = await runtime.store.listSends({ workflowId });
      return rows[0]?.status === 'sent' ? rows : undefined;
    });
    await waitUntil('the completion to be sent into the gate', async () => gate.heldBytes() > 0);
    await stop(first, 'SIGKILL');
    await dropHeldAndReopen();
    expect(await runningSend(runtime, workflowId)).toEqual({ attempt: 1 }); // Temporal still thinks the first attempt runs

    startWorker();
    await expect(runtime.client.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 2 });
    // Each message reaches the sink before its activity completes, so nothing more can arrive for this run.
    expect(mailTo(customer).map((m) => m.subject)).toEqual([FIRST, SECOND]);
    expect(await recordedSends<{ status: string; messageId?: string | null }>(runtime, workflowId)).toEqual([
      { attempt: 2, result: { status: 'already_sent', messageId: sends[0]!.messageId } },
      { attempt: 1, result: { status: 'sent', messageId: expect.any(String), transport: 'smtp' } },
    ]);
  }, RETRY_WITHIN_MS + 60_000);

  it('over SMTP, killed after the 250 and before the ledger: the resend carries the same Message-ID', async () => {
    const customer = 'retry-smtp-unrecorded';
    const first = startWorker();
    const held = smtp.holdReply((to) => to === `${customer}@example.com`);
    const workflowId = await enterFlow(customer);

    await held.arrived;
    const lock = lockStore(); // the ledger cannot record the hand-off
    held.release();
    // The worker now has its 250 and waits on the lock to record it; kill it there.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await stop(first, 'SIGKILL');
    lock.release();
    expect((await runtime.store.listSends({ workflowId })).map((s) => s.status)).toEqual(['pending']);
    expect(mailTo(customer)).toHaveLength(1);

    startWorker();
    await expect(runtime.client.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 2 });
    const [send] = await runtime.store.listSends({ workflowId });
    expect(send).toMatchObject({ status: 'sent', messageId: expect.stringMatching(/^<[0-9a-f]{32}@microflows>$/) });
    const mail = mailTo(customer);
    expect(mail.map((m) => m.subject)).toEqual([FIRST, FIRST, SECOND]);
    // The receiver can tell the resend is the same message: one Message-ID, the ledger's.
    expect(mail.slice(0, 2).map((m) => m.messageId)).toEqual([send!.messageId, send!.messageId]);
    expect((await recordedSends<{ status: string; messageId?: string | null }>(runtime, workflowId))[0]).toEqual({ attempt: 2, result: { status: 'sent', messageId: send!.messageId, transport: 'smtp' } });
  }, RETRY_WITHIN_MS + 60_000);

  it('to the outbox, killed after the row committed and before Temporal heard: exactly one row', async () => {
    const customer = 'retry-outbox';
    const outboxWorker = { SMTP_URL: '' };
    const first = startWorker({ ...outboxWorker, TEMPORAL_ADDRESS: gate.address });
    const workflowId = await enterFlow(customer);
    const handle = runtime.client.workflow.getHandle(workflowId);
    // The second send follows a 6 s wait: hold the store before it, so its outbox write waits for the gate.
    await waitUntil('the wait timer started', async () => (await handle.fetchHistory().catch(() => undefined))?.events?.some((e) => e.timerStartedEventAttributes));
    const lock = lockStore();
    await waitUntil('the second send to start', () => runningSend(runtime, workflowId), 30_000);
    gate.hold();
    lock.release(); // the send claims its key and writes its outbox row, in one transaction
    await waitUntil('the outbox row of the second send', async () => (await runtime.store.listOutbox({ to: `${customer}@example.com` })).some((m) => m.subject === SECOND));
    await waitUntil('the completion to be sent into the gate', async () => gate.heldBytes() > 0);
    await stop(first, 'SIGKILL');
    await dropHeldAndReopen();
    expect(await runningSend(runtime, workflowId)).toEqual({ attempt: 1 });

    startWorker(outboxWorker);
    await expect(handle.result()).resolves.toMatchObject({ outcome: 'completed', sends: 2 });
    expect((await recordedSends<{ status: string; messageId?: string | null }>(runtime, workflowId)).map((s) => [s.attempt, s.result.status])).toEqual([
      [1, 'sent'],
      [2, 'already_sent'],
    ]);
    const outbox = await runtime.store.listOutbox({ to: `${customer}@example.com` });
    expect(outbox.map((m) => m.subject)).toEqual([FIRST, SECOND]);
    expect((await runtime.store.listSends({ workflowId })).map((s) => [s.status, s.transport])).toEqual([
      ['sent', 'outbox'],
      ['sent', 'outbox'],
    ]);
    expect(mailTo(customer)).toEqual([]);
  }, RETRY_WITHIN_MS + 60_000);
});
