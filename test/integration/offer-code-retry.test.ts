// An offer code across a worker crash, on the real Temporal dev server, SQLite and PostgreSQL: a worker process claims
// a code for a send (and records the send, pending) and is SIGKILLed before the SMTP server has the message. Temporal
// retries the send on a replacement worker; the retry must render the code the first attempt claimed (not a second
// one of the pool), and exactly one email goes out. The moment is made exact: the worker talks to the SMTP sink
// through a TCP relay that holds what it says, so it is killed after its claim committed and before MAIL FROM.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { SEND_HEARTBEAT_TIMEOUT_MS } from '../../core/send-heartbeat';
import { post, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { tempDir, testConfig, WRITE_KEY, type StackDatabase } from '../support/stack';
import { describeOn, postgresSkipReason, throwawayDatabase } from '../support/store-backends';
import { recordedSends, runningSend } from '../support/send-activities';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay';
import { devServerEnv, spawnWorker, stopProcess as stop } from '../support/worker-process';

const POOL = 'crash-codes';
const CODES = ['CRASH-A1', 'CRASH-B2', 'CRASH-C3', 'CRASH-D4', 'CRASH-E5'];
/** The killed attempt times out after the heartbeat timeout, then the retry runs. */
const RETRY_WITHIN_MS = SEND_HEARTBEAT_TIMEOUT_MS + 40_000;

const FLOW = `id: offer-crash
version: 1
priority: 10
trigger:
  event: Order Completed
steps:
  - send: { template: offer-crash }
`;
const TEMPLATE = `---
subject: "Thanks for your order"
category: transactional
---
<mjml><mj-body><mj-section><mj-column>
<mj-text>{{#if (offer_code pool="${POOL}")}}Your next order: use code <b>{{offer_code pool="${POOL}"}}</b>{{else}}Your next order: no code left{{/if}}</mj-text>
</mj-column></mj-section></mj-body></mjml>
`;

const postgresSkipped = postgresSkipReason();
if (postgresSkipped) process.stdout.write(`offer-code-retry: PostgreSQL run skipped because ${postgresSkipped}\n`);

let devServer: DevServer;
let temporalDir: string;

beforeAll(async () => {
  temporalDir = tempDir('offer-code-retry-temporal');
  devServer = await startDevServer({ dataDir: temporalDir, headless: true });
}, 120_000);

afterAll(async () => {
  await devServer?.stop();
  if (temporalDir) fs.rmSync(temporalDir, { recursive: true, force: true });
});

for (const database of ['sqlite', 'postgres'] as StackDatabase[]) {
  describeOn(database, `an offer code whose worker was killed between claim and delivery (${database})`, () => {
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

    beforeAll(async () => {
      dataDir = tempDir('offer-code-retry');
      const flowsDir = path.join(dataDir, 'flows');
      const templatesDir = path.join(dataDir, 'templates');
      fs.mkdirSync(flowsDir);
      fs.mkdirSync(templatesDir);
      fs.writeFileSync(path.join(flowsDir, 'offer-crash.yaml'), FLOW);
      fs.writeFileSync(path.join(templatesDir, 'offer-crash.mjml'), TEMPLATE);
      smtp = await startSmtpSink();
      smtpGate = await startTcpRelay(new URL(smtp.url).host);
      if (database === 'postgres') {
        postgres = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
        await postgres.create();
      }
      env = {
        ...devServerEnv({ temporalAddress: devServer.address, dataDir, smtpUrl: smtp.url, taskQueue: `offer-code-retry-${database}-${process.pid}` }),
        MICROFLOWS_FLOWS_DIR: flowsDir,
        MICROFLOWS_TEMPLATES_DIR: templatesDir,
        ...(postgres ? { DATABASE_URL: postgres.url } : {}),
      };
      // This process serves HTTP; the workers are processes of their own, so one can be killed.
      runtime = await startRuntime({ config: testConfig(env), worker: false, schedule: false, log: () => undefined });
      expect(await runtime.store.importOfferCodes(POOL, CODES, Date.now())).toMatchObject({ imported: CODES.length });
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

    it('retries with the code it claimed, and one email goes out', async () => {
      const customer = `offer-crash-${database}`;
      const workflowId = `flow/offer-crash/${customer}/1`;
      const deliveryKey = `${workflowId}/steps[0]`;
      // Whatever the first worker says to the SMTP server waits in the relay: it gets the greeting, its EHLO is held.
      smtpGate.hold();
      const first = startWorker({ SMTP_URL: `smtp://${smtpGate.address}` });
      expect((await post(`${runtime.url}/v1/identify`, { userId: customer, traits: { email: `${customer}@example.com` } }, WRITE_KEY)).status).toBe(200);
      expect((await post(`${runtime.url}/v1/track`, { userId: customer, event: 'Order Completed', properties: { order_id: 'o-1' } }, WRITE_KEY)).status).toBe(200);

      const [claimed] = await waitUntil('the first attempt to claim a code', async () => {
        const codes = (await runtime.store.exportCustomer(customer).catch(() => undefined))?.offerCodes ?? [];
        return codes.length > 0 ? codes : undefined;
      }, 60_000);
      await waitUntil('the worker to be talking to the SMTP server', async () => smtpGate.heldBytes() > 0);
      await stop(first, 'SIGKILL');
      await smtpGate.down(); // the dead worker's SMTP connection is reset; what it held back is dropped
      // The moment of the kill: one code claimed for the send, the send pending, nothing delivered, and Temporal still
      // thinks the first attempt runs.
      expect(claimed).toEqual({ pool: POOL, code: CODES[0], claimedAt: expect.any(Number) });
      expect((await runtime.store.listSends({ workflowId })).map((s) => [s.deliveryKey, s.status])).toEqual([[deliveryKey, 'pending']]);
      expect(smtp.messages.filter((m) => m.to === `${customer}@example.com`)).toEqual([]);
      expect(await runningSend(runtime, workflowId)).toEqual({ attempt: 1 });

      startWorker(); // straight to the SMTP sink
      await expect(runtime.client.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
      // One email, carrying the code the killed attempt claimed, in both parts.
      const mail = smtp.messages.filter((m) => m.to === `${customer}@example.com`);
      expect(mail).toHaveLength(1);
      expect(mail[0]!.html).toContain(`use code <b>${claimed!.code}</b>`);
      expect(mail[0]!.text).toContain(`use code ${claimed!.code}`);
      // The pool gave that one send one code: the retry took no other.
      expect((await runtime.store.exportCustomer(customer)).offerCodes).toEqual([claimed]);
      expect((await runtime.store.offerCodePools()).find((p) => p.pool === POOL)).toEqual({ pool: POOL, total: CODES.length, claimed: 1, remaining: CODES.length - 1, low: true });
      const [send] = await runtime.store.listSends({ workflowId });
      expect(send).toMatchObject({ status: 'sent', messageId: mail[0]!.messageId, fallbacks: [] });
      expect(await recordedSends<Record<string, unknown>>(runtime, workflowId)).toEqual([{ attempt: 2, result: { status: 'sent', messageId: send!.messageId, transport: 'smtp' } }]);
    }, RETRY_WITHIN_MS + 90_000);
  });
}
