// A frequency cap across a worker crash, on the real Temporal dev server: a worker process reserves a send's cap slot
// (the `sends` row, pending) and is SIGKILLed before the SMTP server has the message. Temporal retries the send on a
// replacement worker; the retry must find its own reservation and deliver (not zero emails: the reservation does not
// block its own send), once (not two), and the cap must still count it (the next send within the day waits). The
// moment is made exact: the worker talks to the SMTP sink through a TCP relay that holds what it says, so it is
// killed after its reservation committed and mid-conversation with the SMTP server, before MAIL FROM.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { SEND_HEARTBEAT_TIMEOUT_MS } from '../../core/send-heartbeat';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { PROJECT_ROOT, tempDir, testConfig, WRITE_KEY, type StackDatabase } from '../support/stack';
import { describeOn, postgresSkipReason, throwawayDatabase } from '../support/store-backends';
import { recordedSends, runningSend } from '../support/send-activities';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay';
import { devServerEnv, spawnWorker, stopProcess as stop } from '../support/worker-process';

const FLOWS_DIR = path.join(PROJECT_ROOT, 'test/fixtures/cap-crash-flows');
const FLOW_ID = 'cap-crash';
const DAY_MS = 24 * 60 * 60_000;
/** The killed attempt times out after the heartbeat timeout, then the retry runs and the flow goes on (2 s wait). */
const RETRY_WITHIN_MS = SEND_HEARTBEAT_TIMEOUT_MS + 40_000;

const postgresSkipped = postgresSkipReason();
if (postgresSkipped) process.stdout.write(`send-cap-crash: PostgreSQL run skipped because ${postgresSkipped}\n`);

let devServer: DevServer;
let temporalDir: string;

beforeAll(async () => {
  temporalDir = tempDir('send-cap-crash-temporal');
  devServer = await startDevServer({ dataDir: temporalDir, headless: true });
}, 120_000);

afterAll(async () => {
  await devServer?.stop();
  if (temporalDir) fs.rmSync(temporalDir, { recursive: true, force: true });
});

for (const database of ['sqlite', 'postgres'] as StackDatabase[]) {
  describeOn(database, `a capped send whose worker was killed between reservation and delivery (${database})`, () => {
    let smtp: SmtpSink;
    let smtpGate: TcpRelay;
    let runtime: Runtime;
    let dataDir: string;
    let postgres: ReturnType<typeof throwawayDatabase> | null = null;
    let env: Record<string, string>;
    const workers: ChildProcess[] = [];

    function startWorker(overrides: Record<string, string> = {}): ChildProcess {
      const child = spawnWorker({ ...env, ...overrides });
      workers.push(child);
      return child;
    }


    /** Every message the SMTP sink received that carries `deliveryKey` (held ones included: the sink keeps them on arrival). */
    const deliveriesOf = (deliveryKey: string) => smtp.messages.filter((m) => m.rawHeaders.get('x-microflows-delivery-key') === deliveryKey);

    beforeAll(async () => {
      dataDir = tempDir('send-cap-crash');
      smtp = await startSmtpSink();
      smtpGate = await startTcpRelay(new URL(smtp.url).host);
      if (database === 'postgres') {
        postgres = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
        await postgres.create();
      }
      env = {
        ...devServerEnv({ temporalAddress: devServer.address, dataDir, smtpUrl: smtp.url, taskQueue: `send-cap-crash-${database}-${process.pid}` }),
        MICROFLOWS_FLOWS_DIR: FLOWS_DIR,
        ...(postgres ? { DATABASE_URL: postgres.url } : {}),
      };
      // This process serves HTTP; the workers are processes of their own, so one can be killed.
      runtime = await startRuntime({ config: testConfig(env), worker: false, schedule: false, log: () => undefined });
    }, 120_000);

    // A failed test must not leave its workers to take the next suite's sends.
    afterEach(async () => {
      for (const w of workers.splice(0)) await stop(w, 'SIGKILL');
    });

    afterAll(async () => {
      await runtime?.stop();
      await smtpGate?.close();
      await smtp?.close();
      await postgres?.drop();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('leaves one send, not zero and not two, and the cap still counts it', async () => {
      const customer = `cap-crash-${database}`;
      const workflowId = `flow/${FLOW_ID}/${customer}/1`;
      // Whatever the first worker says to the SMTP server waits in the relay: it gets the greeting, its EHLO is held.
      smtpGate.hold();
      const first = startWorker({ SMTP_URL: `smtp://${smtpGate.address}` });
      expect((await post(`${runtime.url}/v1/identify`, { userId: customer, traits: { email: `${customer}@example.com`, consent: { email_marketing: true } } }, WRITE_KEY)).status).toBe(200);
      expect((await post(`${runtime.url}/v1/track`, { userId: customer, event: 'Product Added', properties: { product_id: 'p1' } }, WRITE_KEY)).status).toBe(200);

      // The flow's two sends: steps[0], then steps[2] after the 2 s wait.
      const [firstKey, secondKey] = [`${workflowId}/steps[0]`, `${workflowId}/steps[2]`];
      const [reserved] = await waitUntil('the first send to reserve its slot', async () => {
        const rows = await runtime.store.listSends({ customerId: customer });
        return rows.length > 0 ? rows : undefined;
      }, 60_000);
      await waitUntil('the worker to be talking to the SMTP server', async () => smtpGate.heldBytes() > 0);
      await stop(first, 'SIGKILL');
      await smtpGate.down(); // the dead worker's SMTP connection is reset; what it held back is dropped
      // The moment of the kill: the slot reserved, nothing delivered, and Temporal still thinks the first attempt runs.
      expect(reserved).toMatchObject({ deliveryKey: firstKey, workflowId, status: 'pending', transport: 'smtp', messageId: null });
      expect(await runtime.store.listSends({ customerId: customer })).toEqual([reserved]);
      expect(smtp.messages.filter((m) => m.to === `${customer}@example.com`)).toEqual([]);
      expect(await runningSend(runtime, workflowId)).toEqual({ attempt: 1 });

      startWorker(); // straight to the SMTP sink
      const decisionsOf = async (deliveryKey: string) => (await runtime.store.decisionsOf(customer)).filter((d) => d.key.startsWith(`${deliveryKey}:`)).map((d) => [d.key, d.outcome, d.reason]);
      // Both sends have had their answer (sent or deferred), or one of them was deferred, which may hold the run a day.
      await waitUntil(
        'the retry of the first send and the second send to be decided',
        async () => (await recordedSends<Record<string, unknown>>(runtime, workflowId)).length >= 2 || (await runtime.store.decisionsOf(customer)).some((d) => d.workflowId === workflowId && d.outcome === 'deferred'),
        RETRY_WITHIN_MS,
      );
      // The retry took its reservation as its own: no deferral (nor any other decision) for the first send.
      expect(await decisionsOf(firstKey)).toEqual([]);
      // One email for the reserved send, delivered by the retry: not zero, not two; none for the second send.
      const delivered = deliveriesOf(firstKey);
      expect(delivered).toHaveLength(1);
      expect(deliveriesOf(secondKey).map((m) => m.subject)).toEqual([]);
      expect(smtp.messages.filter((m) => m.to === `${customer}@example.com`).map((m) => m.subject)).toEqual(['crash test: first']);
      // One row: the reservation, now sent, under the Message-ID the sink received.
      const sends = await runtime.store.listSends({ customerId: customer });
      expect(sends).toEqual([{ ...reserved, status: 'sent', sentAt: expect.any(Number), messageId: delivered[0]!.messageId }]);
      // The cap counted that send against the next one: it waits a day from the first send's time, the slot the
      // reservation took.
      const until = sends[0]!.scheduledAt + DAY_MS;
      const reason = `send steps[2] (crash-second) deferred: cap daily (1 per 1d) is full; next slot at ${new Date(until).toISOString()}`;
      expect(await decisionsOf(secondKey)).toEqual([[`${secondKey}:deferred:1`, 'deferred', reason]]);
      expect((await runtime.store.sendWaitsOf(customer)).map((w) => [w.deliveryKey, w.until])).toEqual([[secondKey, until]]);
      // Temporal's view: the first send completed on its second attempt, by sending; the second was deferred.
      expect(await recordedSends<Record<string, unknown>>(runtime, workflowId)).toEqual([
        { attempt: 2, result: { status: 'sent', messageId: sends[0]!.messageId, transport: 'smtp' } },
        { attempt: 1, result: { status: 'deferred', until, reason } },
      ]);
      await runtime.client.workflow.getHandle(workflowId).terminate('test over: the deferred send would wait a day');
    }, RETRY_WITHIN_MS + 90_000);
  });
}
