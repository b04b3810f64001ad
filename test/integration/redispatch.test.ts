// Temporal killed and restarted under a running server, on the dev server (SQLite and PostgreSQL stores): ingest
// keeps acknowledging events and /api/health answers 503 naming Temporal; once Temporal is back, every event acked
// meanwhile starts its flow without a restart of the server, the flow's wait counts from the event (the outage
// outlasted it, so the send goes out at once), and entry is judged on the profile as of the event.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startDevServer, type DevServer } from '../../cli/dev-server';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { devServerEnv, spawnWorker, stopProcess } from '../support/worker-process';
import { PROJECT_ROOT, stackDatabases, tempDir, testConfig, WRITE_KEY } from '../support/stack';
import { describeOn, throwawayDatabase } from '../support/store-backends';

/** The fixture flow's first step (test/fixtures/redispatch-flows/late-start.yaml). */
const WAIT_MS = 15_000;

interface Health {
  status: string;
  store: { ok: boolean; backend: string; error?: string };
  temporal?: { ok: boolean; address: string | null; error?: string };
  undispatched: { count: number; oldestReceivedAt: number | null; oldestAgeMs: number | null } | null;
}

async function health(url: string): Promise<{ status: number; body: Health }> {
  const res = await fetch(`${url}/api/health`);
  return { status: res.status, body: (await res.json()) as Health };
}

/** The durations of the timers a workflow started, in ms, in order. */
async function timersOf(runtime: Runtime, workflowId: string): Promise<number[]> {
  const history = await runtime.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.timerStartedEventAttributes?.startToFireTimeout)
    .filter((d): d is NonNullable<typeof d> => d !== undefined && d !== null)
    .map((d) => Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6));
}

for (const database of stackDatabases('redispatch')) {
  describeOn(database, `Temporal down and back under a running server, on ${database}`, () => {
    let devServer: DevServer;
    let temporalPort: number;
    let smtp: SmtpSink;
    let runtime: Runtime;
    let dataDir: string;
    let env: Record<string, string>;
    let dropDatabase: () => Promise<void> = async () => undefined;
    const workers: ChildProcess[] = [];
    const logged: string[] = [];

    const startWorker = () => {
      const worker = spawnWorker(env);
      workers.push(worker);
      return worker;
    };
    const workerRunning = () => workers.some((w) => w.exitCode === null && w.signalCode === null);

    async function identify(userId: string, consent: boolean): Promise<void> {
      const reply = await post(`${runtime.url}/v1/identify`, { userId, traits: { email: `${userId}@example.com`, consent: { email_marketing: consent } } }, WRITE_KEY);
      expect(reply.status).toBe(200);
    }

    async function addToCart(userId: string): Promise<{ messageId: string; timestamp: number }> {
      const messageId = `${userId}-added`;
      expect((await post(`${runtime.url}/v1/track`, { userId, event: 'Product Added', properties: { product_id: 'p1' }, messageId }, WRITE_KEY)).status).toBe(200);
      const stored = (await runtime.store.eventsOf(userId, { names: ['Product Added'] })).find((e) => e.messageId === messageId)!;
      return { messageId, timestamp: stored.timestamp };
    }

    beforeAll(async () => {
      dataDir = tempDir('redispatch');
      temporalPort = await freePort();
      devServer = await startDevServer({ dataDir, port: temporalPort, headless: true });
      smtp = await startSmtpSink();
      env = {
        ...devServerEnv({ temporalAddress: devServer.address, dataDir, smtpUrl: smtp.url, taskQueue: `redispatch-${process.pid}-${database}` }),
        MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/redispatch-flows'),
        MICROFLOWS_PUBLIC_URL: 'http://127.0.0.1:3000',
      };
      if (database === 'postgres') {
        const throwaway = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
        await throwaway.create();
        dropDatabase = () => throwaway.drop();
        env.DATABASE_URL = throwaway.url;
      }
      // This process runs the HTTP server (and its dispatcher); the worker is a process of its own, as in a deployment.
      runtime = await startRuntime({ config: testConfig(env), worker: false, schedule: false, log: (line) => logged.push(line) });
      startWorker();
    }, 120_000);

    afterAll(async () => {
      for (const worker of workers) await stopProcess(worker, 'SIGKILL');
      await runtime?.stop();
      await smtp?.close();
      await devServer?.stop();
      await dropDatabase();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('with both up, health is 200 and an event on time waits its full 15 s from the run start', async () => {
      const up = await health(runtime.url!);
      expect(up).toEqual({
        status: 200,
        body: { status: 'ok', store: { ok: true, backend: database }, temporal: { ok: true, address: devServer.address }, undispatched: { count: 0, oldestReceivedAt: null, oldestAgeMs: null } },
      });

      await identify('on-time', true);
      await addToCart('on-time');
      const entry = await waitUntil('the on-time run', async () => (await runtime.store.flowEntriesOf('on-time'))[0], 60_000);
      const [firstTimer] = await waitUntil('its wait timer', async () => {
        const timers = await timersOf(runtime, entry.workflowId);
        return timers.length > 0 ? timers : undefined;
      }, 60_000);
      // Counted from the event's time, which is a moment before the run started: a little under 15 s, not 1 ms.
      expect(firstTimer).toBeGreaterThan(WAIT_MS - 5_000);
      expect(firstTimer).toBeLessThanOrEqual(WAIT_MS);
    }, 120_000);

    it('acks events while Temporal is down, answers 503, and starts every flow once Temporal is back, waits counted from the event', async () => {
      const late = ['late-1', 'late-2', 'late-3'];
      for (const customer of late) await identify(customer, true);
      // Consent given before the cart add and withdrawn after it (during the outage): entry judged as of the event holds.
      await identify('consent-later-withdrawn', true);
      // Consent given only after the cart add: as of the event, entry does not hold.
      await identify('consent-later-given', false);

      process.kill(devServer.pid, 'SIGKILL');
      await devServer.stop();

      const acked = new Map<string, { messageId: string; timestamp: number }>();
      for (const customer of [...late, 'consent-later-withdrawn', 'consent-later-given']) acked.set(customer, await addToCart(customer));
      await identify('consent-later-withdrawn', false);
      await identify('consent-later-given', true);

      const down = await health(runtime.url!);
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ status: 'unavailable', store: { ok: true, backend: database }, temporal: { ok: false, address: `127.0.0.1:${temporalPort}`, error: expect.any(String) } });
      expect(down.body.undispatched!.count).toBeGreaterThanOrEqual(acked.size);
      expect((await runtime.store.listUndispatched(1000)).map((e) => e.messageId)).toEqual(expect.arrayContaining([...acked.values()].map((a) => a.messageId)));

      // Every live dispatch gives up (after the client's own retries): from here only the server's passes can deliver.
      const liveFailure = (customer: string) => `[dispatch] event ${acked.get(customer)!.messageId} for ${customer} not delivered yet`;
      await waitUntil('every live dispatch to fail', async () => [...acked.keys()].every((customer) => logged.some((line) => line.startsWith(liveFailure(customer)))), 60_000);
      // The outage outlasts the flow's wait (setup, not an assertion): when the runs start, their wait has passed.
      const lastAck = Math.max(...[...acked.values()].map((a) => a.timestamp));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastAck + WAIT_MS + 2_000 - Date.now())));
      expect(await runtime.store.listUndispatched(1000)).toEqual(expect.arrayContaining([...acked.values()].map((a) => expect.objectContaining({ messageId: a.messageId }))));

      devServer = await startDevServer({ dataDir, port: temporalPort, headless: true });
      // The worker may or may not have outlived the outage; the server is the one under test and is not restarted.
      if (!workerRunning()) startWorker();

      // Within 30 s of Temporal's return: a deadline for the behaviour, not a measure of speed.
      await waitUntil(
        'every event acked during the outage delivered and decided by its arbiter',
        async () => {
          for (const [customer, { messageId }] of acked) if (!(await runtime.store.decisionsOf(customer)).some((d) => d.eventMessageId === messageId)) return false;
          return (await runtime.store.undispatchedSummary()).count === 0;
        },
        30_000,
      );

      for (const customer of late) {
        const entry = (await runtime.store.flowEntriesOf(customer)).find((e) => e.triggerMessageId === acked.get(customer)!.messageId)!;
        await expect(runtime.client.workflow.getHandle(entry.workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
        // The wait had passed by the time the run started: a 1 ms timer (one timer per wait), not 15 s from the start.
        expect(await timersOf(runtime, entry.workflowId)).toEqual([1]);
        const [sent] = await runtime.store.listSends({ workflowId: entry.workflowId });
        expect(sent!.scheduledAt - acked.get(customer)!.timestamp).toBeGreaterThanOrEqual(WAIT_MS);
        expect(sent!.scheduledAt - entry.enteredAt).toBeLessThan(WAIT_MS);
        expect(smtp.messages.filter((m) => m.to.includes(`${customer}@`)).map((m) => m.subject)).toEqual(['crash test: first']);
      }

      // Entry on the profile as of the event: consent held then (withdrawn since), so the run started...
      const kept = await runtime.store.decisionsOf('consent-later-withdrawn');
      expect(kept.find((d) => d.eventMessageId === acked.get('consent-later-withdrawn')!.messageId)).toMatchObject({ flowId: 'late-start', outcome: 'started' });
      // ...and consent given only later did not let an earlier event in.
      const refused = await runtime.store.decisionsOf('consent-later-given');
      expect(refused.find((d) => d.eventMessageId === acked.get('consent-later-given')!.messageId)).toMatchObject({
        flowId: 'late-start',
        outcome: 'skipped',
        reason: expect.stringContaining('is false'),
      });
      expect(await runtime.store.flowEntriesOf('consent-later-given')).toEqual([]);

      const back = await health(runtime.url!);
      expect(back).toEqual({
        status: 200,
        body: { status: 'ok', store: { ok: true, backend: database }, temporal: { ok: true, address: devServer.address }, undispatched: { count: 0, oldestReceivedAt: null, oldestAgeMs: null } },
      });
    }, 180_000);
  });
}
