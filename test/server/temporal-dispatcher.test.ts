// The dispatcher's redelivery, on real stores (SQLite and PostgreSQL) and a real Temporal server reached through a
// relay the test takes down and brings back: owed events are delivered by passes while the server runs, in each
// customer's order (a later event never overtakes an earlier one that failed), an event already being delivered is
// not delivered twice, and an event that reaches Temporal more than 24 h after it happened starts no flow and the
// decision log says why. What Temporal received is read from the customer workflow's history (no worker runs: the
// signals are recorded whether or not anything handles them).
import path from 'node:path';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadFlowFiles } from '../../cli/project-files';
import { segmentIdsIn } from '../../cli/segment-files';
import { customerWorkflowId } from '../../core/arbiter-state';
import { TemporalDispatcher } from '../../server/temporal-dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent, StoredEvent } from '../../store/store';
import { waitUntil } from '../support/http';
import { fileTimeSkippingServer } from '../support/stack';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay';
import { storeBackends } from '../support/store-backends';

const ROOT = path.resolve(__dirname, '../..');
const HOUR = 3_600_000;
// Shipped flows: cart-abandonment starts on Product Added and exits on Order Completed.
const { flows } = loadFlowFiles(path.join(ROOT, 'flows'), path.join(ROOT, 'templates'), segmentIdsIn(path.join(ROOT, 'segments')));

/** One time-skipping server for the file, started by the first suite that runs. */
const temporal = fileTimeSkippingServer();

let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

function track(customerId: string, name: string, at: number): NewEvent {
  return { messageId: unique(name.replace(/ /g, '-').toLowerCase()), type: 'track', customerId, userId: customerId, anonymousId: null, name, properties: { product_id: 'p1' }, traits: {}, context: {}, timestamp: at, receivedAt: at };
}

for (const backend of storeBackends('temporal-dispatcher')) {
  backend.describe(`redelivery of owed events: ${backend.name}`, () => {
    let store: KyselyStore;
    let env: TestWorkflowEnvironment;
    let relay: TcpRelay;
    let connection: Connection;
    let client: Client;
    const logged: string[] = [];
    const dispatchers: TemporalDispatcher[] = [];

    /** A dispatcher talking to Temporal through the relay; no worker polls its task queue. */
    function dispatcher(options: ConstructorParameters<typeof TemporalDispatcher>[4] = {}): TemporalDispatcher {
      const made = new TemporalDispatcher(store, { client, taskQueue: unique('no-worker'), searchAttributes: false }, flows, (m) => logged.push(m), options);
      dispatchers.push(made);
      return made;
    }

    async function record(d: TemporalDispatcher, event: NewEvent): Promise<StoredEvent> {
      const result = await store.recordEvent(event, { needsDispatch: d.needsDispatch(event) });
      d.dispatch(result);
      return result.event;
    }

    /** The customerEvent signals customer/<id> received, in order: what Temporal actually got. */
    async function received(customerId: string): Promise<Array<{ messageId: string; triggers: unknown[]; ageAtDispatchMs?: number }>> {
      try {
        const history = await env.client.workflow.getHandle(customerWorkflowId(customerId)).fetchHistory();
        return (history.events ?? [])
          .map((e) => e.workflowExecutionSignaledEventAttributes)
          .filter((a) => a?.signalName === 'customerEvent')
          .map((a) => defaultPayloadConverter.fromPayload(a!.input!.payloads![0]!));
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError' || /not found/i.test((err as Error).message)) return [];
        throw err;
      }
    }

    async function owed(): Promise<string[]> {
      return (await store.listUndispatched(10_000)).map((e) => e.messageId);
    }

    /** Up again, and the client's channel connected through it (grpc-js reconnects on its own backoff). */
    async function bringBack(): Promise<void> {
      await relay.up();
      await waitUntil('the client to reach Temporal again', async () => client.workflowService.getSystemInfo({}).then(() => true, () => false), 20_000);
    }

    beforeAll(async () => {
      store = await backend.open();
      env = await temporal();
      relay = await startTcpRelay(env.address);
      // One attempt per call: a failure comes at once instead of after the client's retries (the same path, sooner).
      connection = await Connection.connect({
        address: relay.address,
        interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 1 }))],
        channelArgs: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 200 },
      });
      client = new Client({ connection, namespace: env.namespace });
    }, 120_000);

    afterEach(async () => {
      for (const d of dispatchers.splice(0)) {
        await d.stopRedispatching();
        await d.idle();
      }
      relay.release();
      await relay.up();
      for (let page = await store.listUndispatched(1000); page.length > 0; page = await store.listUndispatched(1000)) await store.markDispatched(page.map((e) => e.id));
    });

    afterAll(async () => {
      await connection?.close();
      await relay?.close();
      await backend.dispose();
    });

    it("leaves a customer's later event owed behind their earlier one that failed, and the next pass delivers both in order", async () => {
      const d = dispatcher();
      const customer = unique('order');
      const now = Date.now() - 60_000;
      await relay.down();
      const added = await record(d, track(customer, 'Product Added', now));
      await d.idle();
      expect(logged.join('\n')).toContain(`[dispatch] event ${added.messageId} for ${customer} not delivered yet`);

      await bringBack();
      // The purchase comes live while the cart add is still owed: sent now, it would reach the arbiter first (and,
      // with no arbiter running yet, no one), and the cart flow would start after the purchase.
      const purchased = await record(d, track(customer, 'Order Completed', now + 1000));
      await d.idle();
      expect(await received(customer)).toEqual([]);
      expect(await owed()).toEqual([added.messageId, purchased.messageId]);

      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 2, failed: 0 });
      expect((await received(customer)).map((s) => s.messageId)).toEqual([added.messageId, purchased.messageId]);
      expect(await owed()).toEqual([]);
      // Let go: the customer's next event goes out live again.
      const again = await record(d, track(customer, 'Product Added', now + 2000));
      await d.idle();
      expect((await received(customer)).map((s) => s.messageId)).toEqual([added.messageId, purchased.messageId, again.messageId]);
    });

    it("pages past what it cannot deliver without trying a customer's later events, and delivers everything in order once Temporal answers", async () => {
      const d = dispatcher();
      const [first, second] = [unique('first'), unique('second')];
      const now = Date.now() - 60_000;
      await relay.down();
      // Recorded while nothing dispatches them (as a crash before the signal leaves them).
      const events = [];
      for (const event of [track(first, 'Product Added', now), track(first, 'Order Completed', now + 1), track(second, 'Product Added', now + 2)]) {
        events.push((await store.recordEvent(event, { needsDispatch: true })).event);
      }
      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 0, failed: 2, deferred: 2, firstError: expect.any(String) });
      expect(await owed()).toEqual(events.map((e) => e.messageId));

      await bringBack();
      expect(await d.recoverPending()).toBe(3);
      expect((await received(first)).map((s) => s.messageId)).toEqual([events[0]!.messageId, events[1]!.messageId]);
      expect((await received(second)).map((s) => s.messageId)).toEqual([events[2]!.messageId]);
      expect(await owed()).toEqual([]);
    });

    it('does not deliver again an event whose live delivery is still under way', async () => {
      const d = dispatcher();
      const customer = unique('inflight');
      relay.hold();
      const added = await record(d, track(customer, 'Product Added', Date.now()));
      // The live signal is on its way (held in the relay); a pass meanwhile leaves the customer to it.
      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 0, failed: 0, deferred: 1 });
      relay.release();
      await d.idle();
      expect((await received(customer)).map((s) => s.messageId)).toEqual([added.messageId]);
      expect(await owed()).toEqual([]);
    });

    it('delivers owed events by itself while the server runs, backing off while Temporal is down', async () => {
      const d = dispatcher({ schedule: { baseMs: 20, capMs: 200, jitter: 0 } });
      const customer = unique('loop');
      await relay.down();
      const added = await record(d, track(customer, 'Product Added', Date.now()));
      await d.idle();
      d.startRedispatching();
      await waitUntil('a pass to fail and say so', async () => logged.some((line) => line.startsWith('[dispatch] 1 owed event(s) not delivered yet')), 20_000);
      expect(await received(customer)).toEqual([]);

      await bringBack();
      await waitUntil('the owed event delivered', async () => ((await received(customer)).length > 0 ? true : undefined), 20_000);
      expect((await received(customer)).map((s) => s.messageId)).toEqual([added.messageId]);
      await waitUntil('the event marked delivered', async () => (await owed()).length === 0, 20_000);
    });

    it("bounds the deliveries queued while Temporal hangs, per customer and in all: the rest stay owed, and all reach Temporal once, in each customer's order, when it answers", async () => {
      const d = dispatcher({ maxQueuedPerCustomer: 5, maxQueued: 8 });
      const [busy, other] = [unique('bounded'), unique('bounded-other')];
      const now = Date.now() - 60_000;
      // Temporal hangs: the first signal waits in the relay, and every later event of the customer queues behind it.
      relay.hold();
      const busyEvents: StoredEvent[] = [];
      for (let i = 0; i < 40; i++) {
        busyEvents.push(await record(d, track(busy, i % 10 === 9 ? 'Order Completed' : 'Product Added', now + i)));
        expect(d.queuedDeliveries).toBe(Math.min(i + 1, 5));
      }
      const otherEvents: StoredEvent[] = [];
      for (let i = 0; i < 5; i++) otherEvents.push(await record(d, track(other, 'Product Added', now + 100 + i)));
      expect(d.queuedDeliveries).toBe(8); // the bound in all: 5 of busy's, 3 of other's
      expect(logged.filter((line) => line.includes('deliveries queued (limit 8, 5 per customer'))).toHaveLength(1);
      expect(await owed()).toEqual([...busyEvents, ...otherEvents].map((e) => e.messageId)); // none lost: all still owed

      relay.release();
      await d.idle();
      expect(d.queuedDeliveries).toBe(0);
      const ids = (events: StoredEvent[]) => events.map((e) => e.messageId);
      expect((await received(busy)).map((s) => s.messageId)).toEqual(ids(busyEvents.slice(0, 5)));
      expect((await received(other)).map((s) => s.messageId)).toEqual(ids(otherEvents.slice(0, 3)));
      // Temporal answers again, but a live event must not overtake the ones left owed: it is left owed too.
      const later = await record(d, track(busy, 'Order Completed', now + 1000));
      await d.idle();
      expect((await received(busy)).map((s) => s.messageId)).toEqual(ids(busyEvents.slice(0, 5)));
      expect(await owed()).toEqual([...ids(busyEvents.slice(5)), ...ids(otherEvents.slice(3)), later.messageId]);

      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 35 + 2 + 1, failed: 0, deferred: 0 });
      expect((await received(busy)).map((s) => s.messageId)).toEqual([...ids(busyEvents), later.messageId]);
      expect((await received(other)).map((s) => s.messageId)).toEqual(ids(otherEvents));
      expect(await owed()).toEqual([]);
      // Let go: the next event goes out live.
      const again = await record(d, track(busy, 'Product Added', now + 2000));
      await d.idle();
      expect((await received(busy)).map((s) => s.messageId)).toEqual([...ids(busyEvents), later.messageId, again.messageId]);
    });

    it('when a queued delivery fails behind the bound, leaves the rest of the chain owed too, and the pass delivers them all in order', async () => {
      const d = dispatcher({ maxQueuedPerCustomer: 3 });
      const customer = unique('bounded-down');
      const now = Date.now() - 60_000;
      relay.hold();
      const events: StoredEvent[] = [];
      for (let i = 0; i < 8; i++) events.push(await record(d, track(customer, 'Product Added', now + i)));
      expect(d.queuedDeliveries).toBe(3);
      // The outage: the signal on its way fails, and the two queued behind it must not overtake it.
      await relay.down();
      relay.release(); // what waited went down with the connection; bytes flow again once it is back
      await d.idle();
      expect(await received(customer)).toEqual([]);
      expect(await owed()).toEqual(events.map((e) => e.messageId));

      await bringBack();
      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 8, failed: 0 });
      expect((await received(customer)).map((s) => s.messageId)).toEqual(events.map((e) => e.messageId));
      expect(await owed()).toEqual([]);
    });

    it('tells the run how late its event reached Temporal', async () => {
      const at = Date.now() - 90_000;
      const d = dispatcher({ now: () => at + 90_000 });
      const customer = unique('age');
      const added = await record(d, track(customer, 'Product Added', at));
      await d.idle();
      expect(await received(customer)).toEqual([expect.objectContaining({ messageId: added.messageId, ageAtDispatchMs: 90_000, triggers: [expect.objectContaining({ entry: expect.anything() })] })]);
    });

    it('starts no flow for a history event (recorded over 24 h after it happened), and logs that it is history', async () => {
      const d = dispatcher();
      const customer = unique('history');
      const at = Date.now() - 40 * 24 * HOUR;
      const added = await record(d, { ...track(customer, 'Product Added', at), receivedAt: Date.now() });
      await d.idle();
      expect(await received(customer)).toEqual([]);
      expect(await store.decisionsOf(customer)).toEqual([
        expect.objectContaining({ flowId: 'cart-abandonment', outcome: 'skipped', eventMessageId: added.messageId, reason: expect.stringMatching(/is history: it happened at .*, 40 days before it was recorded; changes older than 24 h start no flow/) }),
      ]);
    });

    it("tells the arbiter which flows' goal an event is, so an earlier trigger arriving later starts none of them", async () => {
      const d = dispatcher();
      const customer = unique('goal');
      // A trigger first, so the arbiter exists and the goal event reaches it.
      await record(d, track(customer, 'Product Added', Date.now() - 2000));
      const ordered = await record(d, track(customer, 'Order Completed', Date.now() - 1000));
      const viewed = await record(d, track(customer, 'Product Viewed', Date.now()));
      await d.idle();
      const signals = await received(customer);
      // The shipped flows that end on an order: cart and browse abandonment, winback.
      expect((signals.find((s) => s.messageId === ordered.messageId) as { exits?: string[] }).exits?.sort()).toEqual(['browse-abandonment', 'cart-abandonment', 'winback']);
      expect(signals.find((s) => s.messageId === viewed.messageId)).toBeUndefined();
    });

    it('starts no flow for an event that reaches Temporal more than 24 h after it happened, and logs why', async () => {
      const at = Date.now() - 25 * HOUR;
      const d = dispatcher({ now: () => at + 25 * HOUR });
      const customer = unique('stale');
      // It arrived on time (acknowledged at once), then waited out an outage of a day.
      const added = (await store.recordEvent(track(customer, 'Product Added', at), { needsDispatch: true })).event;
      expect(await d.redispatchPass(0)).toMatchObject({ delivered: 1, failed: 0 });
      // No trigger fired: no arbiter was started for it (a plain signal finds none), and it is no longer owed.
      expect(await received(customer)).toEqual([]);
      expect(await owed()).toEqual([]);
      const decisions = await store.decisionsOf(customer);
      expect(decisions).toEqual([
        expect.objectContaining({ flowId: 'cart-abandonment', outcome: 'skipped', eventMessageId: added.messageId, reason: expect.stringMatching(/reached Temporal 25 h after it happened \(Temporal was unreachable\): changes older than 24 h start no flow/) }),
      ]);
    });
  });
}
