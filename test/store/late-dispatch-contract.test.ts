// What a late dispatch reads from the store, on SQLite and PostgreSQL: the events still owed to Temporal page by
// page past the ones a pass could not deliver, their count and the arrival of the oldest (for /api/health), and the
// customer's profile as it stood at the event's time (their events up to then folded; segments from their changes).
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
const MINUTE = 60_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${++sequence}`;

function track(customerId: string, name: string, at: number, properties: Record<string, unknown> = {}, overrides: Partial<NewEvent> = {}): NewEvent {
  return {
    messageId: unique('msg'),
    type: 'track',
    customerId,
    userId: customerId,
    anonymousId: null,
    name,
    properties,
    traits: {},
    context: {},
    timestamp: at,
    receivedAt: NOW + 10 * MINUTE,
    ...overrides,
  };
}

function identify(customerId: string, traits: Record<string, unknown>, at: number, overrides: Partial<NewEvent> = {}): NewEvent {
  return { ...track(customerId, '', at, {}, overrides), type: 'identify', name: null, traits };
}

for (const backend of storeBackends('late-dispatch-contract')) {
  backend.describe(`late dispatch reads: ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      // The store stamps update_profile traits with its clock: pinned between the events below.
      store = await backend.open({ now: () => NOW + 30_000 });
    });

    afterAll(async () => {
      await backend.dispose();
    });

    async function drain(): Promise<void> {
      for (let page = await store.listUndispatched(1000); page.length > 0; page = await store.listUndispatched(1000)) await store.markDispatched(page.map((e) => e.id));
    }

    describe('owed events', () => {
      it('page by id after a given one, so a pass moves past the events it could not deliver', async () => {
        await drain();
        const customer = unique('owed');
        const owed = [];
        for (let i = 0; i < 5; i++) owed.push((await store.recordEvent(track(customer, 'Product Added', NOW + i, { product_id: `p${i}` }), { needsDispatch: true })).event);
        await store.recordEvent(track(customer, 'Product Viewed', NOW + 9), { needsDispatch: false });
        const ids = owed.map((e) => e.id);
        expect((await store.listUndispatched(2)).map((e) => e.id)).toEqual(ids.slice(0, 2));
        expect((await store.listUndispatched(2, ids[1])).map((e) => e.id)).toEqual(ids.slice(2, 4));
        expect((await store.listUndispatched(10, ids[3])).map((e) => e.id)).toEqual(ids.slice(4));
        expect(await store.listUndispatched(10, ids[4])).toEqual([]);
        // Left owed (not marked), the first ones are still listed from the start.
        await store.markDispatched([ids[2]!]);
        expect((await store.listUndispatched(10)).map((e) => e.id)).toEqual([ids[0], ids[1], ids[3], ids[4]]);
        await drain();
      });

      it('are counted with the arrival of the oldest, and none is none', async () => {
        await drain();
        expect(await store.undispatchedSummary()).toEqual({ count: 0, oldestReceivedAt: null });
        const customer = unique('count');
        const first = await store.recordEvent(track(customer, 'Product Added', NOW, {}, { receivedAt: NOW + 7 }), { needsDispatch: true });
        await store.recordEvent(track(customer, 'Product Added', NOW + 1, {}, { receivedAt: NOW + 3 }), { needsDispatch: true });
        await store.recordEvent(track(customer, 'Product Viewed', NOW + 2, {}, { receivedAt: NOW + 1 }), { needsDispatch: false });
        expect(await store.undispatchedSummary()).toEqual({ count: 2, oldestReceivedAt: NOW + 3 });
        await store.markDispatched([first.event.id]);
        expect(await store.undispatchedSummary()).toEqual({ count: 1, oldestReceivedAt: NOW + 3 });
        await drain();
        expect(await store.undispatchedSummary()).toEqual({ count: 0, oldestReceivedAt: null });
      });
    });

    describe('profileAsOf', () => {
      it('reads consent, the cart, orders and segments as they were at the moment, for events that arrived in any order', async () => {
        const customer = unique('asof');
        const events = [
          identify(customer, { email: 'Ana@Example.com', consent: { email_marketing: true } }, NOW),
          track(customer, 'Segment Entered', NOW + 30_000, { segment_id: 'browsers' }),
          track(customer, 'Product Added', NOW + 1 * MINUTE, { product_id: 'shoe', price: 80 }),
          identify(customer, { consent: { email_marketing: false } }, NOW + 2 * MINUTE),
          track(customer, 'Segment Exited', NOW + 150_000, { segment_id: 'browsers' }),
          track(customer, 'Order Completed', NOW + 3 * MINUTE, { total: 80 }),
        ];
        // Arrival order is not time order: the purchase first, the cart add last, in separate transactions.
        for (const index of [5, 3, 0, 4, 1, 2]) await store.recordEvent(events[index]!, { needsDispatch: false });

        const atAdd = (await store.profileAsOf(customer, NOW + 1 * MINUTE, { withSegments: true }))!;
        expect(atAdd.consent.email_marketing).toEqual({ granted: true, source: 'identify', at: NOW });
        expect(atAdd.computed.cart).toEqual([{ product_id: 'shoe', price: 80, quantity: 1 }]);
        expect(atAdd.computed.orders_count).toBeUndefined();
        expect(atAdd.email).toBe('ana@example.com');
        expect(atAdd.segments).toEqual(['browsers']);

        const atEnd = (await store.profileAsOf(customer, NOW + 3 * MINUTE, { withSegments: true }))!;
        expect(atEnd.consent.email_marketing?.granted).toBe(false);
        expect(atEnd.computed.cart).toEqual([]);
        expect(atEnd.computed.orders_count).toBe(1);
        expect(atEnd.segments).toEqual([]);
        // Today, nothing having happened since, the as-of profile is the stored one.
        const { segments: _segments, ...withoutSegments } = atEnd;
        expect(withoutSegments).toEqual(await store.getProfile(customer));

        const before = (await store.profileAsOf(customer, NOW - 1))!;
        expect(before.consent).toEqual({});
        expect(before.email).toBeNull();
        expect(before.segments).toBeUndefined();
      });

      it('follows the events an identify merged in from an anonymous visitor', async () => {
        const customer = unique('known');
        const anonymousId = unique('anon');
        await store.recordEvent(track(customer, 'Product Added', NOW + 1 * MINUTE, { product_id: 'hat' }, { userId: null, anonymousId, customerId: anonymousId }), { needsDispatch: false });
        await store.recordEvent(identify(customer, { email: 'known@example.com' }, NOW + 2 * MINUTE, { anonymousId }), { needsDispatch: false });
        await store.recordEvent(track(customer, 'Product Removed', NOW + 3 * MINUTE, { product_id: 'hat' }), { needsDispatch: false });
        expect((await store.profileAsOf(customer, NOW + 1 * MINUTE))!.computed.cart).toEqual([{ product_id: 'hat', quantity: 1 }]);
        expect((await store.profileAsOf(customer, NOW + 3 * MINUTE))!.computed.cart).toEqual([]);
      });

      it('keeps a trait a flow set before the moment, leaves out one set after, and keeps today\'s tags', async () => {
        const customer = unique('flowset');
        await store.recordEvent(identify(customer, { plan: 'free' }, NOW), { needsDispatch: false });
        await store.recordEvent(track(customer, 'Product Viewed', NOW + 1 * MINUTE), { needsDispatch: false });
        // Stamped NOW + 30 s by the store's clock.
        await store.updateProfile(customer, { set: { vip: true }, addTags: ['Winback'], removeTags: [] });
        await store.recordEvent(identify(customer, { plan: 'pro' }, NOW + 2 * MINUTE), { needsDispatch: false });

        const atView = (await store.profileAsOf(customer, NOW + 1 * MINUTE))!;
        expect(atView.traits).toEqual({ plan: 'free', vip: true });
        expect(atView.tags).toEqual(['Winback']);
        expect((await store.profileAsOf(customer, NOW + 10_000))!.traits).toEqual({ plan: 'free' });
        expect((await store.profileAsOf(customer, NOW + 2 * MINUTE))!.traits).toEqual({ plan: 'pro', vip: true });
      });

      it('is undefined for a customer with no profile, and changes nothing', async () => {
        const before = await store.tableCounts();
        expect(await store.profileAsOf(unique('nobody'), NOW, { withSegments: true })).toBeUndefined();
        expect(await store.tableCounts()).toEqual(before);
      });
    });
  });
}
