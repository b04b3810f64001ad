// The suppression list on the real path (time-skipping Temporal, SMTP socket, HTTP, the CLI), on SQLite and
// PostgreSQL: a hard bounce stops every later send, the order confirmation included; a spam complaint (a Postmark
// webhook) stops the cart flow's marketing send but not the order confirmation; repeated soft bounces suppress for
// the configured period and sends resume after it; an entry from `suppressions add` blocks until `remove`. The
// decision log says why each time.
import fs from 'node:fs';
import path from 'node:path';
import { addressHash } from '../../core/suppression';
import { runCli } from '../support/cli-run';
import { post, waitUntil } from '../support/http';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const POSTMARK_CREDENTIAL = 'postmark-user:postmark-secret';
const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes', quantity: 1 };

/**
 * The shipped flows, and one more whose transactional sends straddle the soft-bounce period: a day after its trigger,
 * then 31 days later (the period is 30 days by default).
 */
function flowsDir(): string {
  const dir = tempDir('suppression-flows');
  for (const file of fs.readdirSync(path.join(PROJECT_ROOT, 'flows'))) fs.copyFileSync(path.join(PROJECT_ROOT, 'flows', file), path.join(dir, file));
  fs.writeFileSync(
    path.join(dir, 'delivery-notice.yaml'),
    `id: delivery-notice
version: 1
priority: 10
group: delivery-notice
trigger:
  event: Delivery Scheduled
entry:
  reentry: always
steps:
  - wait: 1d
  - send: { template: order-thank-you }
  - wait: 31d
  - send: { template: order-thank-you }
`,
  );
  return dir;
}

for (const database of stackDatabases('suppression')) {
  describeOn(database, `suppression on ${database}`, () => {
    let stack: TimeSkippingStack;
    let flows: string;

    beforeAll(async () => {
      flows = flowsDir();
      stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flows, POSTMARK_WEBHOOK_CREDENTIAL: POSTMARK_CREDENTIAL }, database);
    }, 180_000);

    afterAll(async () => {
      await stack?.stop();
      fs.rmSync(flows, { recursive: true, force: true });
    });

    const email = (userId: string) => `${userId}@example.com`;

    async function identify(userId: string): Promise<void> {
      const res = await post(`${stack.url}/v1/identify`, { userId, traits: { email: email(userId), first_name: 'Ana', consent: { email_marketing: true } } }, WRITE_KEY);
      expect(res.status).toBe(200);
    }

    async function track(userId: string, event: string, properties: Record<string, unknown> = {}): Promise<void> {
      expect((await post(`${stack.url}/v1/track`, { userId, event, properties }, WRITE_KEY)).status).toBe(200);
      await stack.runtime.dispatcher.idle();
    }

    const mailsTo = (userId: string) => stack.smtp.messages.filter((m) => m.to.includes(email(userId)));
    const decisions = (userId: string) => stack.runtime.store.decisionsOf(userId);

    /** The decisions of `userId` matching `match`, once there are `count` of them. */
    function decisionsMatching(userId: string, match: (d: { flowId: string; outcome: string; reason: string }) => boolean, count = 1) {
      return waitUntil(`${count} matching decision(s) for ${userId}`, async () => {
        const found = (await decisions(userId)).filter(match);
        return found.length >= count ? found : undefined;
      });
    }

    async function runOf(userId: string, flowId: string) {
      return waitUntil(`${flowId} run for ${userId}`, async () => (await stack.runtime.store.flowEntriesOf(userId)).find((e) => e.flowId === flowId));
    }

    /** The environment that points the CLI at this stack's store. */
    function cliEnv(): Record<string, string> {
      const { databaseUrl, sqlitePath } = stack.runtime.config;
      return databaseUrl ? { DATABASE_URL: databaseUrl } : { MICROFLOWS_SQLITE_PATH: sqlitePath };
    }

    it('a hard bounce stops every later send: the pending cart reminder and the order confirmation; the log says why', async () => {
      const user = `hard-${database}`;
      await identify(user);
      await track(user, 'Product Added', shoe);
      const cart = await runOf(user, 'cart-abandonment');
      await track(user, 'Email Bounced', { bounce_type: 'hard', reason: '550 mailbox unavailable' });
      expect(await stack.runtime.store.suppressionsFor(email(user), Date.now())).toEqual([expect.objectContaining({ reason: 'hard_bounce', scope: 'all', addressHash: addressHash(email(user)) })]);

      await stack.env.sleep('1d');
      const [reminder] = await decisionsMatching(user, (d) => d.flowId === 'cart-abandonment' && d.outcome === 'skipped' && d.reason.includes('(cart-reminder)'));
      expect(reminder!.reason).toMatch(/^send steps\[1\] \(cart-reminder\) skipped: suppressed: hard bounce \(ingest, \d{4}-\d{2}-\d{2}\)$/);
      expect(reminder!.workflowId).toBe(cart.workflowId);

      await track(user, 'Order Completed', { order_id: 'o-hard', total: 89.5, products: [shoe] });
      const [entry] = await decisionsMatching(user, (d) => d.flowId === 'post-purchase');
      expect(entry).toMatchObject({ outcome: 'skipped', reason: expect.stringMatching(/^entry condition not met: suppressed: hard bounce \(ingest, [\d-]+\): no email of any kind goes to this address$/) });
      expect((await stack.runtime.store.flowEntriesOf(user)).map((e) => e.flowId)).toEqual(['cart-abandonment']);
      expect(mailsTo(user)).toEqual([]);
      expect(await stack.runtime.store.listSends({ customerId: user })).toEqual([]);
    });

    it('a spam complaint (Postmark webhook) stops the cart flow’s marketing send; the order confirmation still goes', async () => {
      const user = `complaint-${database}`;
      await identify(user);
      await track(user, 'Product Added', shoe);
      await runOf(user, 'cart-abandonment');
      const res = await fetch(`${stack.url}/webhooks/postmark`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(POSTMARK_CREDENTIAL).toString('base64')}` },
        body: JSON.stringify({ RecordType: 'SpamComplaint', Email: email(user), BouncedAt: new Date().toISOString(), MessageID: `complaint-${database}`, Type: 'SpamComplaint', TypeCode: 100001 }),
      });
      expect(res.status).toBe(200);
      await stack.runtime.dispatcher.idle();
      expect(await stack.runtime.store.suppressionsFor(email(user), Date.now())).toEqual([expect.objectContaining({ reason: 'complaint', scope: 'marketing', source: 'webhook' })]);

      await stack.env.sleep('2h');
      const [reminder] = await decisionsMatching(user, (d) => d.flowId === 'cart-abandonment' && d.outcome === 'skipped' && d.reason.includes('(cart-reminder)'));
      expect(reminder!.reason).toMatch(/\(cart-reminder\) skipped: suppressed: spam complaint \(webhook, [\d-]+\)$/);

      await track(user, 'Order Completed', { order_id: 'o-complaint', total: 89.5, products: [shoe] });
      const [thanks] = await waitUntil('the order confirmation', async () => (mailsTo(user).length > 0 ? mailsTo(user) : undefined));
      expect(thanks!.subject).toBe('Thank you for your order o-complaint');
      expect(mailsTo(user)).toHaveLength(1);
      const started = await decisionsMatching(user, (d) => d.flowId === 'post-purchase' && d.outcome === 'started');
      expect(started).toHaveLength(1);
    });

    it('the limit of soft bounces suppresses every email for the period; after it, sends resume', async () => {
      const user = `soft-${database}`;
      await identify(user);
      await track(user, 'Delivery Scheduled', { order_id: 'o-soft' });
      const run = await runOf(user, 'delivery-notice');
      await track(user, 'Email Bounced', { bounce_type: 'soft' });
      await track(user, 'Email Bounced', { bounce_type: 'soft' });
      expect(await stack.runtime.store.suppressionsFor(email(user), Date.now())).toEqual([]);
      await track(user, 'Email Bounced', { bounce_type: 'soft' });
      expect(await stack.runtime.store.suppressionsFor(email(user), Date.now())).toEqual([expect.objectContaining({ reason: 'soft_bounce', scope: 'all', expiresAt: expect.any(Number) })]);

      await stack.env.sleep('1d');
      const [skipped] = await decisionsMatching(user, (d) => d.flowId === 'delivery-notice' && d.outcome === 'skipped');
      expect(skipped!.reason).toMatch(/\(order-thank-you\) skipped: suppressed: repeated soft bounces \(ingest, [\d-]+, until \S+\)$/);
      expect(mailsTo(user)).toEqual([]);

      await stack.env.sleep('31d');
      const [resumed] = await waitUntil('the send after the period', async () => (mailsTo(user).length > 0 ? mailsTo(user) : undefined));
      expect(resumed!.subject).toBe('Thank you for your order o-soft');
      expect(await stack.runtime.store.listSends({ workflowId: run.workflowId })).toEqual([expect.objectContaining({ nodeId: 'steps[3]', status: 'sent' })]);
    });

    it('an entry from `microflows suppressions add` blocks the order confirmation; `remove` lifts it', async () => {
      const user = `cli-${database}`;
      await identify(user);
      const added = await runCli(['suppressions', 'add', email(user)], cliEnv());
      expect(added.stderr).toBe('');
      expect(added.status).toBe(0);

      await track(user, 'Order Completed', { order_id: 'o-cli-1', total: 10, products: [shoe] });
      const [blocked] = await decisionsMatching(user, (d) => d.flowId === 'post-purchase');
      expect(blocked).toMatchObject({ outcome: 'skipped', reason: expect.stringMatching(/^entry condition not met: suppressed: added by an operator \(cli, [\d-]+\)/) });

      const removed = await runCli(['suppressions', 'remove', email(user)], cliEnv());
      expect(removed.status).toBe(0);
      expect(removed.stdout).toContain('Removed 1 entry');
      await track(user, 'Order Completed', { order_id: 'o-cli-2', total: 10, products: [shoe] });
      const [thanks] = await waitUntil('the order confirmation', async () => (mailsTo(user).length > 0 ? mailsTo(user) : undefined));
      expect(thanks!.subject).toBe('Thank you for your order o-cli-2');
      expect(mailsTo(user)).toHaveLength(1);
    });
  });
}
