// Segments on the real path (time-skipping server, HTTP ingest, SMTP socket; SQLite and PostgreSQL): a customer
// enters the browsing segment on their third view and leaves it when the 7 days pass, with no new event; a buyer
// enters "no purchase in 60 days" with no new event; the flows that start on those segments start, a flow waiting
// for the segment wakes, and a split on membership takes its branch. The report and members API follow.
import fs from 'node:fs';
import { Client } from '@temporalio/client';
import path from 'node:path';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import { adminFetch, post, waitUntil } from '../support/http';
import { stackDatabases, startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const DAY = 24 * 3_600_000;

const FLOWS: Record<string, string> = {
  'browse-note': `
id: browse-note
version: 1
priority: 50
trigger: { segment: browsing-no-purchase }
steps:
  - send: { template: note, data: { text: browsing } }
`,
  'lapsed-note': `
id: lapsed-note
version: 1
priority: 30
group: winback
trigger: { segment: lapsed-customers }
steps:
  - send: { template: note, data: { text: lapsed } }
`,
  'lapse-watch': `
id: lapse-watch
version: 1
priority: 10
group: watch
trigger: { event: Signed Up }
steps:
  - wait_for:
      segment: lapsed-customers
      timeout: 90d
      on_timeout:
        - exit: never lapsed
  - split:
      when: { profile.segments: { contains: lapsed-customers } }
      then:
        - send: { template: note, data: { text: watched } }
      else:
        - exit: not in the segment any more
`,
};

const NOTE = '---\nsubject: "{{data.text}}"\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>{{data.text}}</mj-text></mj-column></mj-section></mj-body></mjml>\n';

for (const database of stackDatabases('segments')) {
  describeOn(database, `segments on ${database}`, () => {
    let stack: TimeSkippingStack;
    let flowsDir: string;
    let templatesDir: string;

    beforeAll(async () => {
      flowsDir = tempDir('segment-flows');
      templatesDir = tempDir('segment-templates');
      for (const [id, source] of Object.entries(FLOWS)) fs.writeFileSync(path.join(flowsDir, `${id}.yaml`), source);
      fs.writeFileSync(path.join(templatesDir, 'note.mjml'), NOTE);
      stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir, MICROFLOWS_TEMPLATES_DIR: templatesDir, MICROFLOWS_SEGMENT_MIN_SIZE: '2' }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
      for (const dir of [flowsDir, templatesDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    async function send(call: 'track' | 'identify', body: Record<string, unknown>): Promise<void> {
      expect((await post(`${stack.url}/v1/${call}`, body, WRITE_KEY)).status).toBe(200);
      await stack.runtime.dispatcher.idle();
    }
    const segmentsOf = async (customerId: string) => (await stack.runtime.store.segmentsOf(customerId)).map((m) => m.segmentId);
    const segmentEvents = async (customerId: string) =>
      (await stack.runtime.store.eventsOf(customerId, { names: [SEGMENT_ENTERED, SEGMENT_EXITED] })).map((e) => `${e.name}:${String(e.properties.segment_id)}`).reverse();
    const mailSubjects = (customerId: string) => stack.smtp.messages.filter((m) => m.to.includes(`${customerId}@example.com`)).map((m) => m.subject).sort();
    // A plain client: the test environment's own result() lets the server skip time while it waits, and it would
    // jump to the next pending timer (lapse-watch's 90-day timeout) before the sweep had even read the clock.
    const sweep = async (id: string) =>
      (await new Client({ connection: stack.env.connection, dataConverter: stack.runtime.payloads.dataConverter }).workflow.execute('segmentSweepWorkflow', { taskQueue: stack.runtime.config.taskQueue, workflowId: `${database}-${id}`, args: [{ pageSize: 2 }] })) as {
        evaluated: number;
        changes: number;
        failed: number;
        at: number;
      };

    it('moves customers in and out with time alone, and starts the flows on entry', async () => {
      for (const userId of ['browser', 'buyer', 'bystander']) await send('identify', { userId, traits: { email: `${userId}@example.com` } });
      const viewedAt = Date.now();
      for (const product of ['a', 'b']) await send('track', { userId: 'browser', event: 'Product Viewed', properties: { product_id: product, category: 'Shoes' } });
      expect(await segmentsOf('browser')).toEqual([]); // two views: not yet
      await send('track', { userId: 'browser', event: 'Product Viewed', properties: { product_id: 'c', category: 'Shoes' } });
      expect(await segmentsOf('browser')).toEqual(['browsing-no-purchase']);
      await waitUntil('the browse-note run', async () => (await stack.runtime.store.flowEntriesOf('browser')).find((e) => e.flowId === 'browse-note'));
      await stack.smtp.waitForCount(1);
      expect(mailSubjects('browser')).toEqual(['browsing']);

      await send('track', { userId: 'buyer', event: 'Signed Up' });
      await send('track', { userId: 'buyer', event: 'Order Completed', properties: { order_id: 'o-1', total: 80 } });
      const orderedAt = (await stack.runtime.store.eventsOf('buyer', { names: ['Order Completed'] }))[0]!.timestamp;
      expect(await segmentsOf('buyer')).toEqual(['recent-purchasers']);
      await waitUntil('the lapse-watch run', async () => (await stack.runtime.store.flowEntriesOf('buyer')).find((e) => e.flowId === 'lapse-watch'));

      // 7 days on: the first view leaves the window; the sweep moves the browser out with no new event.
      await stack.env.sleep('7d');
      const week = await sweep('sweep-7d');
      expect(week.failed).toBe(0);
      expect(await segmentsOf('browser')).toEqual([]);
      const exited = (await stack.runtime.store.eventsOf('browser', { names: [SEGMENT_EXITED] }))[0]!;
      expect(exited.properties.segment_id).toBe('browsing-no-purchase');
      expect(exited.timestamp).toBeGreaterThanOrEqual(viewedAt + 7 * DAY);
      expect(exited.timestamp).toBeLessThan(viewedAt + 7 * DAY + 60_000);
      expect(await segmentsOf('buyer')).toEqual(['recent-purchasers']);

      // 59 days after the order the buyer is out of recent-purchasers and not lapsed yet; at 60 days (plus the
      // seconds this test has taken) the sweep puts them in lapsed-customers, with no new event.
      await stack.env.sleep('52d');
      const almost = await sweep('sweep-59d');
      expect((almost.at - orderedAt) / DAY).toBeLessThan(60);
      expect(await segmentsOf('buyer')).toEqual([]);
      await stack.env.sleep('1d');
      const lapse = await sweep('sweep-60d');
      expect(lapse.changes).toBeGreaterThanOrEqual(1);
      expect(await segmentsOf('buyer')).toEqual(['lapsed-customers']);
      expect((await stack.runtime.store.segmentsOf('buyer'))[0]!.enteredAt).toBe(orderedAt + 60 * DAY);
      expect(await segmentEvents('buyer')).toEqual(['Segment Entered:recent-purchasers', 'Segment Exited:recent-purchasers', 'Segment Entered:lapsed-customers']);
      // The flow that starts on the segment starts; the run waiting for it wakes and its split sees the membership.
      await waitUntil('the lapsed-note run', async () => (await stack.runtime.store.flowEntriesOf('buyer')).find((e) => e.flowId === 'lapsed-note'));
      await waitUntil('two mails to the buyer', async () => mailSubjects('buyer').length === 2);
      expect(mailSubjects('buyer')).toEqual(['lapsed', 'watched']);
      expect(mailSubjects('bystander')).toEqual([]);
      expect(await segmentEvents('bystander')).toEqual([]);

      // The API: the profile lists its segments; the members endpoint pages; the report flags and counts.
      const profile = (await (await adminFetch(`${stack.url}/api/profiles/buyer`)).json()) as { segments: Array<{ segmentId: string; enteredAt: number }> };
      expect(profile.segments).toEqual([{ segmentId: 'lapsed-customers', enteredAt: orderedAt + 60 * DAY }]);
      const members = (await (await adminFetch(`${stack.url}/api/segments/lapsed-customers/members?limit=1`)).json()) as { members: Array<{ customerId: string }>; next: string | null };
      expect(members).toEqual({ segment: 'lapsed-customers', members: [{ customerId: 'buyer', enteredAt: orderedAt + 60 * DAY }], next: 'buyer' });
      const after = (await (await adminFetch(`${stack.url}/api/segments/lapsed-customers/members?limit=1&after=buyer`)).json()) as { members: unknown[]; next: string | null };
      expect(after).toMatchObject({ members: [], next: null });
      expect((await adminFetch(`${stack.url}/api/segments/no-such-segment/members`)).status).toBe(404);
      expect((await adminFetch(`${stack.url}/api/segments/lapsed-customers/members?limit=0`)).status).toBe(400);
      const report = (await (await adminFetch(`${stack.url}/api/segments`)).json()) as {
        segments: Array<{ id: string; size: number; tooSmall: boolean; unused: boolean; usedByFlows: string[]; lastEvaluatedAt: number | null }>;
      };
      const row = (id: string) => report.segments.find((s) => s.id === id)!;
      expect(row('lapsed-customers')).toMatchObject({ size: 1, tooSmall: true, unused: false, usedByFlows: ['lapse-watch', 'lapsed-note'] });
      expect(row('browsing-no-purchase')).toMatchObject({ size: 0, usedByFlows: ['browse-note'] });
      expect(row('high-value-loyal')).toMatchObject({ unused: true, usedByFlows: [] });
      expect(row('lapsed-customers').lastEvaluatedAt).toBeGreaterThanOrEqual(orderedAt + 60 * DAY);
    });
  });
}
