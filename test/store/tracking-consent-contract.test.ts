// Tracking consent in the store's ingest transaction, on SQLite (its own prepared statements) and PostgreSQL
// (Kysely's): behavioral events of an untracked customer are answered `dropped` and write nothing; each call is judged
// on the consent the calls before it in the batch leave; a withdrawal deletes the stored behavioral events (orders
// stay) and clears the behavioral fields, also of events earlier in the same batch; a merge brings the visitor's
// refusal along; the default decides for a customer without a record; every consent change lands in the trail.
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent, RecordEventResult } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
let n = 0;
const unique = (prefix: string) => `${prefix}-${++n}`;

function call(type: NewEvent['type'], ids: { userId?: string; anonymousId?: string }, fields: Partial<NewEvent> = {}): NewEvent {
  const userId = ids.userId ?? null;
  const anonymousId = ids.anonymousId ?? null;
  const at = NOW + ++n * 1000;
  return { messageId: unique('msg'), type, customerId: userId ?? anonymousId ?? '', userId, anonymousId, name: null, properties: {}, traits: {}, context: {}, timestamp: at, receivedAt: at, origin: 'server', ...fields };
}

const identify = (userId: string, traits: Record<string, unknown>, anonymousId?: string) => call('identify', { userId, ...(anonymousId ? { anonymousId } : {}) }, { traits });
const track = (ids: { userId?: string; anonymousId?: string }, name: string, properties: Record<string, unknown> = {}) => call('track', ids, { name, properties });
const page = (ids: { userId?: string; anonymousId?: string }) => call('page', ids, { name: 'Home' });
const shoe = { product_id: 'sku-1', category: 'Shoes', price: 10, quantity: 1 };
const needsDispatch = { needsDispatch: () => true };

const dropped = (result: RecordEventResult | undefined) => result?.dropped !== undefined && result.event.id === 0 && result.event.dispatched;

for (const backend of storeBackends('tracking consent contract')) {
  backend.describe(`tracking consent: ${backend.name}`, () => {
    let store: KyselyStore;
    let denying: KyselyStore;

    beforeAll(async () => {
      store = await backend.open();
      denying = await backend.open({ trackingGrantedByDefault: false });
    });

    afterAll(async () => {
      await backend.dispose();
    });

    const names = async (customerId: string) => (await store.recentEvents(customerId, 100)).map((e) => e.name ?? e.type).sort();

    it('drops an untracked customer’s behavioral events, judged call by call through the batch', async () => {
      const id = unique('u');
      const results = await store.recordEvents(
        [
          track({ userId: id }, 'Product Viewed', shoe),
          identify(id, { consent: { behavioral_tracking: false } }),
          track({ userId: id }, 'Product Added', shoe),
          page({ userId: id }),
          track({ userId: id }, 'Wishlist Shared'),
          track({ userId: id }, 'Order Completed', { total: 10, products: [shoe] }),
        ],
        needsDispatch,
      );
      // The view before the refusal was stored, then deleted with the withdrawal in the same transaction.
      expect(results.map(dropped)).toEqual([true, false, true, true, true, false]);
      expect(results[0]!.dropped!.reason).toMatch(/withdrew/);
      expect(results[2]!.dropped!.reason).toMatch(/does not allow behavioral tracking/);
      expect(await names(id)).toEqual(['Order Completed', 'identify']);
      const profile = (await store.getProfile(id))!;
      expect(profile.computed).toMatchObject({ orders_count: 1, total_spent: 10 });
      expect('_category_views' in profile.computed).toBe(false);
      expect('cart' in profile.computed).toBe(false);

      // Granted again: tracked from that call on.
      const again = await store.recordEvents([track({ userId: id }, 'Cart Viewed'), identify(id, { consent: { behavioral_tracking: true } }), track({ userId: id }, 'Cart Viewed')], needsDispatch);
      expect(again.map(dropped)).toEqual([true, false, false]);
      expect(await names(id)).toEqual(['Cart Viewed', 'Order Completed', 'identify', 'identify']);
    });

    it('a batch that refuses and grants again records both changes in the trail, and keeps what it stored', async () => {
      const id = unique('u');
      const refuse = identify(id, { consent: { behavioral_tracking: false } });
      const grant = identify(id, { consent: { behavioral_tracking: true } });
      const results = await store.recordEvents([track({ userId: id }, 'Product Viewed', shoe), refuse, track({ userId: id }, 'Product Added', shoe), grant, page({ userId: id })], needsDispatch);
      // Judged call by call; the batch leaves the customer tracked, so nothing stored is withdrawn.
      expect(results.map(dropped)).toEqual([false, false, true, false, false]);
      expect(await names(id)).toEqual(['Home', 'Product Viewed', 'identify', 'identify']);
      expect((await store.consentTrail(id)).map((row) => [row.granted, row.eventMessageId])).toEqual([
        [false, refuse.messageId],
        [true, grant.messageId],
      ]);
    });

    it('a withdrawal deletes the stored browsing and opens, keeps orders and deliveries, and clears the behavioral fields', async () => {
      const id = unique('u');
      await store.recordEvents([identify(id, { email: `${id}@example.com`, consent: { behavioral_tracking: true } }), page({ userId: id }), track({ userId: id }, 'Product Viewed', shoe), track({ userId: id }, 'Product Added', shoe)], needsDispatch);
      await store.recordEvents([track({ userId: id }, 'Order Completed', { total: 10 }), track({ userId: id }, 'Email Delivered'), track({ userId: id }, 'Email Opened'), track({ userId: id }, 'Product Added', { ...shoe, product_id: 'sku-2' })], needsDispatch);
      expect((await store.getProfile(id))!.computed).toMatchObject({ cart: [expect.objectContaining({ product_id: 'sku-2' })], page_views: 1, product_views: 1 });

      const [withdrawal] = await store.recordEvents([identify(id, { consent: { behavioral_tracking: false } })], needsDispatch);
      expect(withdrawal!.dropped).toBeUndefined();
      expect(await names(id)).toEqual(['Email Delivered', 'Order Completed', 'identify', 'identify']);
      const computed = (await store.getProfile(id))!.computed;
      expect(computed).toMatchObject({ orders_count: 1, emails_delivered: 1 });
      for (const field of ['cart', 'page_views', 'product_views', 'last_open_at', '_recent_opens', '_behavior_score']) expect([field, field in computed]).toEqual([field, false]);
    });

    it('a visitor’s refusal comes with them when they log in; their earlier browsing goes', async () => {
      const visitor = unique('anon');
      const user = unique('u');
      await store.recordEvents([page({ anonymousId: visitor }), call('identify', { anonymousId: visitor }, { traits: { consent: { behavioral_tracking: false } } })], needsDispatch);
      expect(await names(visitor)).toEqual(['identify']);
      const [login, view] = await store.recordEvents([identify(user, { email: `${user}@example.com` }, visitor), track({ userId: user }, 'Product Viewed', shoe)], needsDispatch);
      expect(dropped(login)).toBe(false);
      expect(dropped(view)).toBe(true);
      expect(await names(user)).toEqual(['identify', 'identify']);
    });

    it('the default decides for a customer without a record', async () => {
      const silent = unique('u');
      const [view] = await denying.recordEvents([track({ userId: silent }, 'Product Viewed', shoe)], needsDispatch);
      expect(dropped(view)).toBe(true);
      expect(await denying.getProfile(silent)).toBeUndefined();
      const granted = unique('u');
      const results = await denying.recordEvents([identify(granted, { consent: { behavioral_tracking: true } }), track({ userId: granted }, 'Product Viewed', shoe)], needsDispatch);
      expect(results.map(dropped)).toEqual([false, false]);
      expect(await names(granted)).toEqual(['Product Viewed', 'identify']);
    });

    it('writes every change of consent to the trail, with its source, time and event; a repeat writes nothing', async () => {
      const id = unique('u');
      const grant = identify(id, { consent: { email_marketing: true, behavioral_tracking: true } });
      const again = identify(id, { consent: { email_marketing: true } });
      const unsubscribe = track({ userId: id }, 'Unsubscribed');
      const imported = { ...identify(id, { consent: { behavioral_tracking: false } }), context: { library: { name: 'microflows-import' } } };
      await store.recordEvents([grant, again], needsDispatch);
      await store.recordEvents([unsubscribe], needsDispatch);
      await store.recordEvents([imported], needsDispatch);
      expect(await store.consentTrail(id)).toEqual([
        { customerId: id, kind: 'behavioral_tracking', granted: true, source: 'api', at: grant.timestamp, recordedAt: grant.receivedAt, eventMessageId: grant.messageId },
        { customerId: id, kind: 'email_marketing', granted: true, source: 'api', at: grant.timestamp, recordedAt: grant.receivedAt, eventMessageId: grant.messageId },
        { customerId: id, kind: 'email_marketing', granted: false, source: 'unsubscribe', at: unsubscribe.timestamp, recordedAt: unsubscribe.receivedAt, eventMessageId: unsubscribe.messageId },
        { customerId: id, kind: 'behavioral_tracking', granted: false, source: 'import', at: imported.timestamp, recordedAt: imported.receivedAt, eventMessageId: imported.messageId },
      ]);
      expect(await store.consentTrail(unique('nobody'))).toEqual([]);
    });
  });
}
