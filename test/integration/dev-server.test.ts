// On the real Temporal dev server (SQLite file, search attributes registered): the worker survives a
// SIGKILL mid-wait with exactly one email per send, runs are found by CustomerId, and the sweep
// Schedule exists and starts the inactivity flow.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { SEGMENT_SWEEP_SCHEDULE_ID, SWEEP_SCHEDULE_ID, startRuntime, type Runtime } from '../../cli/runtime';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { devServerEnv, spawnWorker } from '../support/worker-process';
import { tempDir, testConfig, WRITE_KEY } from '../support/stack';

const DAY = 86_400_000;
const SUGGEST_CONTINUE_AS_NEW_AT = 60;
let devServer: DevServer;
let smtp: SmtpSink;
let runtime: Runtime;
let dataDir: string;
let env: Record<string, string>;
const workers: ChildProcess[] = [];

function startWorkerProcess(): ChildProcess {
  const child = spawnWorker(env);
  workers.push(child);
  return child;
}

async function identify(userId: string): Promise<void> {
  expect((await post(`${runtime.url}/v1/identify`, { userId, traits: { email: `${userId}@example.com`, consent: { email_marketing: true } } }, WRITE_KEY)).status).toBe(200);
}

beforeAll(async () => {
  dataDir = tempDir('dev');
  // A low threshold makes Temporal suggest continue-as-new after a few dozen history events, so the
  // arbiter's continue-as-new path runs here for real.
  devServer = await startDevServer({ dataDir, headless: true, dynamicConfig: [`limit.historyCount.suggestContinueAsNew=${SUGGEST_CONTINUE_AS_NEW_AT}`] });
  smtp = await startSmtpSink();
  env = devServerEnv({ temporalAddress: devServer.address, dataDir, smtpUrl: smtp.url, taskQueue: `dev-${process.pid}` });
  // This process runs the HTTP server and the Schedule; workers are separate processes, as in a deployment.
  runtime = await startRuntime({ config: testConfig(env), worker: false, schedule: true, sweepEvery: '1h', log: () => undefined });
}, 120_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await runtime?.stop();
  await smtp?.close();
  await devServer?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('on the dev server', () => {
  it('a worker SIGKILLed during a wait is replaced and the flow completes with one email per send', async () => {
    const first = startWorkerProcess();
    await identify('crash-1');
    expect((await post(`${runtime.url}/v1/track`, { userId: 'crash-1', event: 'Product Added', properties: { product_id: 'p1' } }, WRITE_KEY)).status).toBe(200);
    await smtp.waitForCount(1, 60_000);
    expect(smtp.messages[0]!.subject).toBe('crash test: first');
    // This crash is mid-wait: kill once the 6 s timer is on the server, so the replacement replays the
    // history and must not send again. A kill that makes Temporal retry the send itself is in send-retry.test.ts.
    const handle = runtime.client.workflow.getHandle('flow/crash-test/crash-1/1');
    await waitUntil('the wait timer started', async () => (await handle.fetchHistory()).events?.some((e) => e.timerStartedEventAttributes));

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    startWorkerProcess();

    await expect(handle.result()).resolves.toMatchObject({ outcome: 'completed', sends: 2 });
    // Every send activity has completed, and a message reaches the sink before its activity completes: a duplicate would be here.
    const mine = smtp.messages.filter((m) => m.to.includes('crash-1@'));
    expect(mine.map((m) => m.subject)).toEqual(['crash test: first', 'crash test: second']);
    const sends = await runtime.store.listSends({ workflowId: 'flow/crash-test/crash-1/1' });
    expect(sends.map((s) => s.status)).toEqual(['sent', 'sent']);
  }, 120_000);

  it("a visibility query CustomerId='<id>' lists that customer's runs", async () => {
    const ids = await waitUntil('runs indexed by CustomerId', async () => {
      const found: string[] = [];
      for await (const run of runtime.client.workflow.list({ query: `CustomerId = 'crash-1'` })) found.push(run.workflowId);
      return found.includes('flow/crash-test/crash-1/1') && found.includes('customer/crash-1') ? [...new Set(found)].sort() : undefined;
    });
    expect(ids).toEqual(['customer/crash-1', 'flow/crash-test/crash-1/1']);
    const byFlow: string[] = [];
    for await (const run of runtime.client.workflow.list({ query: `FlowId = 'crash-test' AND FlowVersion = 1` })) byFlow.push(run.workflowId);
    expect(byFlow).toContain('flow/crash-test/crash-1/1');
  }, 60_000);

  it('the sweep Schedule exists, and when it fires the inactivity flow starts for a lapsed buyer', async () => {
    await identify('lapsed-1');
    const timestamp = new Date(Date.now() - 61 * DAY).toISOString();
    expect((await post(`${runtime.url}/v1/track`, { userId: 'lapsed-1', event: 'Order Completed', properties: { total: 30 }, timestamp }, WRITE_KEY)).status).toBe(200);
    const schedule = runtime.client.schedule.getHandle(SWEEP_SCHEDULE_ID);
    const description = await schedule.describe();
    expect(description.action).toMatchObject({ type: 'startWorkflow', workflowType: 'sweepWorkflow' });
    await schedule.trigger();
    const entry = await waitUntil('winback-test entry for lapsed-1', async () => (await runtime.store.flowEntriesOf('lapsed-1')).find((e) => e.flowId === 'winback-test'), 60_000);
    await expect(runtime.client.workflow.getHandle(entry.workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
  }, 120_000);

  it('the segment sweep Schedule exists, and when it fires a worker moves the customers whose check has come', async () => {
    if (!workers.some((w) => w.exitCode === null && w.signalCode === null)) startWorkerProcess();
    // Written straight to the store, as an import would: no server evaluated this customer, who is due now.
    const now = Date.now();
    await runtime.store.recordEvents(
      [{ messageId: 'sweep-1-order', type: 'track', customerId: 'sweep-1', userId: 'sweep-1', anonymousId: null, name: 'Order Completed', properties: { total: 30 }, traits: {}, context: {}, timestamp: now - 61 * DAY, receivedAt: now }],
      { needsDispatch: () => false },
    );
    expect(await runtime.store.segmentsOf('sweep-1')).toEqual([]);
    const schedule = runtime.client.schedule.getHandle(SEGMENT_SWEEP_SCHEDULE_ID);
    const description = await schedule.describe();
    expect(description.action).toMatchObject({ type: 'startWorkflow', workflowType: 'segmentSweepWorkflow' });
    expect(description.spec.intervals).toEqual([expect.objectContaining({ every: 60_000 })]);
    await schedule.trigger();
    const members = await waitUntil('sweep-1 in lapsed-customers', async () => {
      const found = await runtime.store.segmentsOf('sweep-1');
      return found.length > 0 ? found : undefined;
    }, 60_000);
    // Entered when the order turned 60 days old (yesterday), not when the sweep found it.
    expect(members).toEqual([{ segmentId: 'lapsed-customers', enteredAt: now - DAY }]);
  }, 120_000);

  it('the arbiter continues-as-new when Temporal suggests it, keeping its state and decision log', async () => {
    const worker = startWorkerProcess();
    await identify('can-1');
    const added = (n: number) => post(`${runtime.url}/v1/track`, { userId: 'can-1', event: 'Product Added', properties: { product_id: `p${n}` }, messageId: `can-1-added-${n}` }, WRITE_KEY);
    expect((await added(0)).status).toBe(200);
    await waitUntil('can-1 run started', async () => (await runtime.store.flowEntriesOf('can-1'))[0]);
    // 25 more triggers while the run is in its wait: each is decided (skipped: already in this flow)
    for (let n = 1; n <= 25; n++) expect((await added(n)).status).toBe(200);
    await expect(runtime.client.workflow.getHandle('flow/crash-test/can-1/1').result()).resolves.toMatchObject({ outcome: 'completed', sends: 2 });

    const statuses = await waitUntil('the arbiter to finish', async () => {
      const runs: string[] = [];
      for await (const run of runtime.client.workflow.list({ query: `WorkflowId = 'customer/can-1'` })) runs.push(run.status.name);
      return runs.includes('COMPLETED') ? runs : undefined;
    }, 60_000);
    expect(statuses.filter((s) => s === 'CONTINUED_AS_NEW').length).toBeGreaterThanOrEqual(1);
    const decisions = await runtime.store.decisionsOf('can-1');
    expect(decisions.filter((d) => d.outcome === 'started')).toHaveLength(1);
    expect(decisions.filter((d) => d.outcome === 'skipped')).toHaveLength(25);
    expect(decisions.at(-1)).toMatchObject({ outcome: 'completed', workflowId: 'flow/crash-test/can-1/1' });
    expect(smtp.messages.filter((m) => m.to.includes('can-1@')).map((m) => m.subject)).toEqual(['crash test: first', 'crash test: second']);
    worker.kill('SIGTERM');
  }, 120_000);
});
