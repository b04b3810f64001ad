// Event retention on the real path (time-skipping server, HTTP ingest, the sweep workflow and its activity; SQLite
// and PostgreSQL), with MICROFLOWS_EVENT_RETENTION=30d: the sweep deletes the events older than 30 days by their own
// time — backfilled ones at once, today's once 31 days have passed on the workflow clock — and the profile keeps
// what they counted.
import fs from 'node:fs';
import { Client } from '@temporalio/client';
import { post } from '../support/http';
import { stackDatabases, startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const DAY = 86_400_000;

for (const database of stackDatabases('event-retention')) {
  describeOn(database, `event retention on ${database}`, () => {
    let stack: TimeSkippingStack;
    let flowsDir: string;

    beforeAll(async () => {
      // No flows: nothing owes a dispatch, so every event is the purge's to take once it is old enough.
      flowsDir = tempDir('retention-flows');
      stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir, MICROFLOWS_EVENT_RETENTION: '30d' }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
      if (flowsDir) fs.rmSync(flowsDir, { recursive: true, force: true });
    });

    async function send(body: Record<string, unknown>): Promise<void> {
      expect((await post(`${stack.url}/v1/track`, body, WRITE_KEY)).status).toBe(200);
      await stack.runtime.dispatcher.idle();
    }
    // A plain client (the environment's own would let the server skip time while it waits for the result), with the
    // runtime's data converter: payloads are encrypted.
    const sweep = async (id: string) =>
      (await new Client({ connection: stack.env.connection, dataConverter: stack.runtime.payloads.dataConverter }).workflow.execute('sweepWorkflow', { taskQueue: stack.runtime.config.taskQueue, workflowId: `${database}-${id}` })) as {
        purged: number;
        at: number;
      };
    const namesOf = async (customerId: string) => (await stack.runtime.store.eventsOf(customerId, { names: ['Order Completed', 'Product Viewed'] })).map((e) => `${e.name}@${e.properties.order_id ?? e.properties.product_id}`).sort();

    it('purges what is older than the retention on each sweep, and the profile keeps counting it', async () => {
      const customer = `retained-${database}`;
      const now = Date.now();
      const iso = (ms: number) => new Date(ms).toISOString();
      // A server key backfills history: two orders 40 and 35 days old, then a view and an order today.
      await send({ userId: customer, event: 'Order Completed', properties: { order_id: 'o1', total: 40 }, timestamp: iso(now - 40 * DAY) });
      await send({ userId: customer, event: 'Order Completed', properties: { order_id: 'o2', total: 25 }, timestamp: iso(now - 35 * DAY) });
      await send({ userId: customer, event: 'Product Viewed', properties: { product_id: 'p1' } });
      await send({ userId: customer, event: 'Order Completed', properties: { order_id: 'o3', total: 10 } });
      const counted = { orders_count: 3, total_spent: 75, first_order_at: now - 40 * DAY };
      expect((await stack.runtime.store.getProfile(customer))!.computed).toMatchObject(counted);

      const first = await sweep('sweep-now');
      expect(first.purged).toBeGreaterThanOrEqual(2);
      expect(await namesOf(customer)).toEqual(['Order Completed@o3', 'Product Viewed@p1']);
      expect((await stack.runtime.store.getProfile(customer))!.computed).toMatchObject(counted);

      // 31 days on (the workflow clock): today's events are past the retention too.
      await stack.env.sleep('31d');
      const later = await sweep('sweep-31d');
      expect(later.at).toBeGreaterThanOrEqual(now + 31 * DAY);
      expect(later.purged).toBeGreaterThanOrEqual(2);
      expect(await namesOf(customer)).toEqual([]);

      // A late event makes the store refold: it starts from what the purged events folded into.
      await send({ userId: customer, event: 'Product Viewed', properties: { product_id: 'p2' }, timestamp: iso(now - DAY) });
      expect((await stack.runtime.store.getProfile(customer))!.computed).toMatchObject({ ...counted, product_views: 2 });
    });
  });
}
