// The profile half of the store contract, run against SQLite and (with TEST_DATABASE_URL) PostgreSQL: messageId
// dedupe within and across batches, computed fields that do not depend on delivery order, identity resolution
// (anonymous → known, alias) and concurrent writers. Every test uses its own customer names.
import { behaviorView, foldAll, type BehaviorEvent, type Computed } from '../../core/behavior';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent, RecordEventResult } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
const MINUTE = 60 * 1000;
const DAY = 24 * 60 * MINUTE;
let sequence = 0;

function unique(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}`;
}

/** Who sent the call: a known user, an anonymous visitor, or both (the call that joins them). */
interface Ids {
  userId?: string;
  anonymousId?: string;
}

function call(type: NewEvent['type'], ids: Ids, at: number, fields: Partial<NewEvent> = {}): NewEvent {
  const userId = ids.userId ?? null;
  const anonymousId = ids.anonymousId ?? null;
  return {
    messageId: unique('msg'),
    type,
    customerId: userId ?? anonymousId ?? '',
    userId,
    anonymousId,
    name: null,
    properties: {},
    traits: {},
    context: {},
    timestamp: at,
    receivedAt: at + 5,
    ...fields,
  };
}

const track = (ids: Ids, name: string, at: number, properties: Record<string, unknown> = {}) => call('track', ids, at, { name, properties });
const page = (ids: Ids, at: number) => call('page', ids, at, { name: 'Home' });
const identify = (ids: Ids, traits: Record<string, unknown>, at: number) => call('identify', ids, at, { traits });
const alias = (userId: string, previousId: string, at: number) => call('alias', { userId }, at, { properties: { previousId } });
const group = (ids: Ids, groupId: string, traits: Record<string, unknown>, at: number) => call('group', ids, at, { properties: { groupId }, traits });
const viewed = (ids: Ids, category: string, at: number) => track(ids, 'Product Viewed', at, { product_id: `p-${category}`, category });

const noDispatch = { needsDispatch: false };
const noBatchDispatch = { needsDispatch: () => false };

/** The computed fields of these events folded in time order, ties in the order given: what any delivery must give. */
function foldedInTimeOrder(events: NewEvent[]): Computed {
  const behavior: BehaviorEvent[] = events.map(({ type, name, properties, traits, timestamp }) => ({ type, name, properties, traits, timestamp }));
  return foldAll(behavior.map((event, index) => ({ event, index })).sort((a, b) => a.event.timestamp - b.event.timestamp || a.index - b.index).map((e) => e.event));
}

/** The same event as `event`, sent again for another customer: same content, its own messageId. */
function forCustomer(event: NewEvent, userId: string): NewEvent {
  return { ...event, messageId: unique('msg'), customerId: userId, userId, anonymousId: null };
}

const messageIds = (events: Array<{ messageId: string }>) => events.map((e) => e.messageId).sort();

const backends = storeBackends('profile contract');

for (const backend of backends) {
  backend.describe(`Profile contract: ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      store = await backend.open({ now: () => NOW });
    });

    afterAll(() => backend.dispose());

    async function recordOneByOne(events: NewEvent[]): Promise<RecordEventResult[]> {
      const results: RecordEventResult[] = [];
      for (const event of events) results.push(await store.recordEvent(event, noDispatch));
      return results;
    }

    describe('messageId dedupe in a batch', () => {
      it('stores each messageId once, whether repeated inside the batch or stored before, and answers in input order', async () => {
        const user = unique('user');
        const ids = { userId: user };
        const storedBefore = (await store.recordEvent(track(ids, 'Product Added', NOW, { product_id: 'a' }), noDispatch)).event;
        const b = track(ids, 'Product Added', NOW + 1, { product_id: 'b' });
        const c = track(ids, 'Product Added', NOW + 2, { product_id: 'c', quantity: 2 });
        const d = viewed(ids, 'Shoes', NOW + 3);
        const { id: _id, dispatched: _dispatched, ...again } = storedBefore;
        const before = await store.tableCounts();

        const batch = [b, { ...again }, c, { ...b }, d, { ...c }, { ...again }];
        const results = await store.recordEvents(batch, noBatchDispatch);

        expect(results.map((r) => r.event.messageId)).toEqual(batch.map((e) => e.messageId));
        expect(results.map((r) => r.duplicate)).toEqual([false, true, false, true, false, true, true]);
        expect(results[1]!.event).toEqual(storedBefore);
        expect(results[6]!.event).toEqual(storedBefore);
        expect(results[3]!.event).toEqual(results[0]!.event);
        expect(results[5]!.event).toEqual(results[2]!.event);
        expect(new Set(results.map((r) => r.event.id)).size).toBe(4);

        const after = await store.tableCounts();
        expect(after.events).toBe((before.events ?? 0) + 3);
        const events = await store.eventsOf(user);
        expect(messageIds(events)).toEqual(messageIds([storedBefore, b, c, d]));
        const profile = await store.getProfile(user);
        expect(profile?.computed.cart).toEqual([
          expect.objectContaining({ product_id: 'a', quantity: 1 }),
          expect.objectContaining({ product_id: 'b', quantity: 1 }),
          expect.objectContaining({ product_id: 'c', quantity: 2 }),
        ]);
        expect(profile?.computed.product_views).toBe(1);
        for (const result of results) expect(result.profile).toEqual(profile);
      });

      it('writes nothing for a batch made only of duplicates', async () => {
        const user = unique('user');
        const first = await store.recordEvents([track({ userId: user }, 'Order Completed', NOW, { total: 10 })], noBatchDispatch);
        const event = first[0]!.event;
        const before = await store.tableCounts();
        const { id: _id, dispatched: _dispatched, ...again } = event;

        const results = await store.recordEvents([{ ...again }, { ...again }], noBatchDispatch);

        expect(results.map((r) => r.duplicate)).toEqual([true, true]);
        expect(results.map((r) => r.event)).toEqual([event, event]);
        expect(await store.tableCounts()).toEqual(before);
        expect((await store.getProfile(user))?.computed.orders_count).toBe(1);
      });
    });

    describe('delivery order', () => {
      /** One customer's events, in time order: enough of each kind that a wrong order would show. */
      function history(ids: Ids): NewEvent[] {
        return [
          identify(ids, { plan: 'free', first_name: 'Ada' }, NOW),
          viewed(ids, 'Shoes', NOW + 1 * MINUTE),
          page(ids, NOW + 2 * MINUTE),
          track(ids, 'Product Added', NOW + 3 * MINUTE, { product_id: 'shoe', name: 'Shoe', price: 50 }),
          viewed(ids, 'Hats', NOW + DAY),
          track(ids, 'Product Added', NOW + DAY + MINUTE, { product_id: 'hat', price: 20 }),
          track(ids, 'Product Removed', NOW + DAY + 2 * MINUTE, { product_id: 'shoe' }),
          track(ids, 'Email Opened', NOW + DAY + 3 * MINUTE),
          track(ids, 'Order Completed', NOW + 2 * DAY, { total: 20, products: [{ product_id: 'hat' }] }),
          identify(ids, { plan: 'pro' }, NOW + 2 * DAY + MINUTE),
          group(ids, 'acme', { name: 'Acme' }, NOW + 2 * DAY + 2 * MINUTE),
          viewed(ids, 'Hats', NOW + 3 * DAY),
          track(ids, 'Product Added', NOW + 3 * DAY + MINUTE, { product_id: 'scarf', price: 15 }),
          track(ids, 'Order Completed', NOW + 4 * DAY, { total: 15, products: [{ product_id: 'scarf' }] }),
          track(ids, 'Product Added', NOW + 4 * DAY + MINUTE, { product_id: 'belt', price: 30 }),
        ];
      }

      it('gives the same profile in time order, reversed, shuffled, and in batches, one call or many', async () => {
        const inOrder = unique('user');
        const template = history({ userId: inOrder });
        const deliveries: Array<{ user: string; deliver: (events: NewEvent[]) => Promise<unknown> }> = [
          { user: inOrder, deliver: recordOneByOne },
          { user: unique('user'), deliver: (events) => recordOneByOne([...events].reverse()) },
          { user: unique('user'), deliver: (events) => recordOneByOne([6, 0, 13, 2, 9, 1, 14, 4, 11, 3, 8, 5, 12, 7, 10].map((i) => events[i]!)) },
          { user: unique('user'), deliver: (events) => store.recordEvents([...events].reverse(), noBatchDispatch) },
          {
            user: unique('user'),
            deliver: async (events) => {
              for (const batch of [[8, 3], [14, 0, 12], [5], [1, 2, 4], [13, 6, 7], [9, 10, 11]]) {
                await store.recordEvents(
                  batch.map((i) => events[i]!),
                  noBatchDispatch,
                );
              }
            },
          },
        ];

        for (const { user, deliver } of deliveries) await deliver(user === inOrder ? template : template.map((e) => forCustomer(e, user)));

        const expected = foldedInTimeOrder(template);
        expect(expected.orders_count).toBe(2);
        const reference = await store.getProfile(inOrder);
        expect(reference?.computed).toEqual(expected);
        expect(reference?.traits).toEqual({ plan: 'pro', first_name: 'Ada' });
        for (const { user } of deliveries) {
          const profile = await store.getProfile(user);
          expect({ user, computed: profile?.computed }).toEqual({ user, computed: expected });
          expect({ user, traits: profile?.traits, traitTimes: profile?.traitTimes }).toEqual({ user, traits: reference?.traits, traitTimes: reference?.traitTimes });
          expect(behaviorView(profile!.computed, NOW + 5 * DAY)).toEqual(behaviorView(expected, NOW + 5 * DAY));
          expect(await store.eventsOf(user)).toHaveLength(11);
        }
      });
    });

    describe('identity resolution', () => {
      it('joins anonymous browsing to the customer who identifies with that anonymousId', async () => {
        const anon = unique('anon');
        const user = unique('user');
        const browsing = [viewed({ anonymousId: anon }, 'Shoes', NOW + 1), viewed({ anonymousId: anon }, 'Shoes', NOW + 2), viewed({ anonymousId: anon }, 'Hats', NOW + 3)];
        await recordOneByOne(browsing);
        expect((await store.getProfile(anon))?.computed.product_views).toBe(3);
        // The customer was already known from another device, with a newer view: the join must refold in time order.
        const known = [identify({ userId: user }, { first_name: 'Ada' }, NOW), viewed({ userId: user }, 'Bags', NOW + 20)];
        await recordOneByOne(known);

        const login = identify({ userId: user, anonymousId: anon }, { email: 'Ada@Example.com' }, NOW + 10);
        const { profile } = await store.recordEvent(login, noDispatch);

        expect(profile.customerId).toBe(user);
        expect(profile.email).toBe('ada@example.com');
        expect(profile.traits).toEqual({ first_name: 'Ada', email: 'Ada@Example.com' });
        expect(profile.computed).toEqual(foldedInTimeOrder([...browsing, ...known, login]));
        expect(behaviorView(profile.computed, NOW + 30)).toEqual(
          expect.objectContaining({ product_views: 4, last_browsed_category: 'Bags', preferred_category: 'Shoes', category_views: { Shoes: 2, Hats: 1, Bags: 1 } }),
        );
        expect(await store.getProfile(user)).toEqual(profile);
        expect(await store.getProfile(anon)).toBeUndefined();
        const events = await store.eventsOf(user);
        expect(messageIds(events)).toEqual(messageIds([...browsing, known[1]!]));
        expect(events.every((e) => e.customerId === user)).toBe(true);
        expect(await store.eventsOf(anon)).toEqual([]);

        const later = await store.recordEvent(track({ anonymousId: anon }, 'Product Added', NOW + 40, { product_id: 'shoe' }), noDispatch);
        expect(later.event.customerId).toBe(user);
        expect(later.profile.customerId).toBe(user);
        expect(later.profile.computed.cart).toEqual([expect.objectContaining({ product_id: 'shoe' })]);
        expect(await store.getProfile(anon)).toBeUndefined();
        expect(await store.eventsOf(anon)).toEqual([]);
        expect(await store.eventsOf(user)).toHaveLength(5);
      });

      it('keeps an anonymousId with the first customer it joined', async () => {
        const anon = unique('anon');
        const [first, second] = [unique('user'), unique('user')];
        await store.recordEvent(viewed({ anonymousId: anon }, 'Shoes', NOW), noDispatch);
        await store.recordEvent(identify({ userId: first, anonymousId: anon }, {}, NOW + 1), noDispatch);
        const shared = await store.recordEvent(viewed({ userId: second, anonymousId: anon }, 'Hats', NOW + 2), noDispatch);

        expect(shared.event.customerId).toBe(second);
        expect(behaviorView((await store.getProfile(first))!.computed, NOW).category_views).toEqual({ Shoes: 1 });
        expect(await store.eventsOf(second)).toHaveLength(1);
        expect((await store.recordEvent(viewed({ anonymousId: anon }, 'Bags', NOW + 3), noDispatch)).event.customerId).toBe(first);
      });

      it('merges two known profiles on alias, traits by newest time, and routes the old id to the new', async () => {
        const [previous, user] = [unique('old-user'), unique('user')];
        const previousEvents = [
          identify({ userId: previous }, { plan: 'free', first_name: 'Ada', city: 'Paris', consent: { email_marketing: true } }, NOW + 1),
          track({ userId: previous }, 'Order Completed', NOW + 2, { total: 30 }),
          viewed({ userId: previous }, 'Shoes', NOW + 6),
        ];
        const userEvents = [
          identify({ userId: user }, { city: 'London' }, NOW),
          identify({ userId: user }, { plan: 'pro' }, NOW + 3),
          viewed({ userId: user }, 'Hats', NOW + 4),
          track({ userId: user }, 'Unsubscribed', NOW + 5),
        ];
        await recordOneByOne(previousEvents);
        await store.updateProfile(previous, { set: {}, addTags: ['VIP'], removeTags: [] });
        await recordOneByOne(userEvents);

        const joined = alias(user, previous, NOW + 7);
        const { profile } = await store.recordEvent(joined, noDispatch);

        expect(profile.customerId).toBe(user);
        expect(profile.traits).toEqual({ plan: 'pro', first_name: 'Ada', city: 'Paris' });
        expect(profile.consent).toEqual({ email_marketing: { granted: false, source: 'unsubscribe', at: NOW + 5 } });
        expect(profile.tags).toEqual(['VIP']);
        expect(profile.computed).toEqual(foldedInTimeOrder([...previousEvents, ...userEvents, joined]));
        expect(profile.computed.orders_count).toBe(1);
        expect(profile.computed.last_browsed_category).toBe('Shoes');
        expect(await store.getProfile(user)).toEqual(profile);
        expect(await store.getProfile(previous)).toBeUndefined();
        expect(messageIds(await store.eventsOf(user))).toEqual(messageIds([...previousEvents, ...userEvents].filter((e) => e.type === 'track')));
        expect(await store.eventsOf(previous)).toEqual([]);

        const late = await store.recordEvent(track({ userId: previous }, 'Order Completed', NOW + 8, { total: 10 }), noDispatch);
        expect(late.event.customerId).toBe(user);
        expect((await store.getProfile(user))?.computed.orders_count).toBe(2);
        expect(await store.getProfile(previous)).toBeUndefined();
      });

      it('follows a chain of joins: anonymous → alias → another user', async () => {
        const [anon, first, second] = [unique('anon'), unique('user'), unique('user')];
        await store.recordEvent(viewed({ anonymousId: anon }, 'Shoes', NOW), noDispatch);
        await store.recordEvent(identify({ userId: first, anonymousId: anon }, {}, NOW + 1), noDispatch);
        await store.recordEvent(alias(second, first, NOW + 2), noDispatch);

        expect((await store.recordEvent(viewed({ anonymousId: anon }, 'Hats', NOW + 3), noDispatch)).event.customerId).toBe(second);
        expect((await store.recordEvent(viewed({ userId: first }, 'Bags', NOW + 4), noDispatch)).event.customerId).toBe(second);
        expect((await store.getProfile(second))?.computed.product_views).toBe(3);
        expect(await store.getProfile(first)).toBeUndefined();
        expect(await store.getProfile(anon)).toBeUndefined();
      });

      describe.each([
        ['before', (browsing: NewEvent[], login: NewEvent) => [login, ...browsing]],
        ['after', (browsing: NewEvent[], login: NewEvent) => [...browsing, login]],
        ['between', (browsing: NewEvent[], login: NewEvent) => [browsing[1]!, login, browsing[0]!, browsing[2]!]],
      ])('the identify %s the anonymous events in the same batch', (_, arrange) => {
        it('puts them all on the customer, with the computed fields of all of them in time order', async () => {
          const anon = unique('anon');
          const user = unique('user');
          const earlier = viewed({ anonymousId: anon }, 'Bags', NOW);
          await store.recordEvent(earlier, noDispatch);
          const browsing = [viewed({ anonymousId: anon }, 'Shoes', NOW + 1), track({ anonymousId: anon }, 'Product Added', NOW + 2, { product_id: 'shoe' }), viewed({ anonymousId: anon }, 'Shoes', NOW + 4)];
          const login = identify({ userId: user, anonymousId: anon }, { first_name: 'Ada' }, NOW + 3);

          const batch = arrange(browsing, login);
          const results = await store.recordEvents(batch, noBatchDispatch);

          expect(results.map((r) => [r.duplicate, r.event.customerId, r.profile.customerId])).toEqual(batch.map(() => [false, user, user]));
          const profile = await store.getProfile(user);
          expect(profile?.traits).toEqual({ first_name: 'Ada' });
          expect(profile?.computed).toEqual(foldedInTimeOrder([earlier, ...browsing, login]));
          expect(profile?.computed.product_views).toBe(3);
          for (const result of results) expect(result.profile).toEqual(profile);
          expect(await store.getProfile(anon)).toBeUndefined();
          expect(messageIds(await store.eventsOf(user))).toEqual(messageIds([earlier, ...browsing]));
          expect(await store.eventsOf(anon)).toEqual([]);
          expect((await store.recordEvent(viewed({ anonymousId: anon }, 'Hats', NOW + 5), noDispatch)).event.customerId).toBe(user);
        });
      });
    });

    describe('concurrent writers', () => {
      /** Interleaved batches for a few customers, each batch touching them in a different order, times shuffled. */
      function interleavedBatches(customers: string[], perCustomer: number): { batches: NewEvent[][]; orders: Map<string, number>; all: Map<string, NewEvent[]> } {
        const orders = new Map<string, number>();
        const all = new Map<string, NewEvent[]>();
        const batches: NewEvent[][] = [];
        for (let round = 0; round < perCustomer; round++) {
          const batch: NewEvent[] = [];
          customers.forEach((customer, c) => {
            const ids = { userId: customer };
            // Times go back and forth so that many batches hold a late event and make the store refold.
            const at = NOW + ((round * 7919 + c * 104729) % (perCustomer * 3)) * MINUTE + c;
            const event =
              (round + c) % 3 === 0
                ? track(ids, 'Order Completed', at, { total: 10 })
                : (round + c) % 3 === 1
                  ? track(ids, 'Product Added', at, { product_id: `p${round % 4}` })
                  : viewed(ids, ['Shoes', 'Hats'][round % 2]!, at);
            if (event.name === 'Order Completed') orders.set(customer, (orders.get(customer) ?? 0) + 1);
            all.set(customer, [...(all.get(customer) ?? []), event]);
            batch.push(event);
          });
          batches.push(round % 2 === 0 ? batch : batch.reverse());
        }
        return { batches, orders, all };
      }

      it('two stores recording interleaved batches for the same customers lose no fold and never deadlock', async () => {
        const other = await backend.open({ now: () => NOW });
        const customers = [unique('user'), unique('user'), unique('user'), unique('user')];
        const { batches, orders, all } = interleavedBatches(customers, 30);

        const results = await Promise.all(batches.map((batch, i) => (i % 2 === 0 ? store : other).recordEvents(batch, noBatchDispatch)));

        expect(results.flat().every((r) => !r.duplicate)).toBe(true);
        for (const customer of customers) {
          const profile = await store.getProfile(customer);
          expect({ customer, orders: profile?.computed.orders_count }).toEqual({ customer, orders: orders.get(customer) });
          expect(await store.eventsOf(customer)).toHaveLength(30);
          // Times are distinct per customer, so whatever the commit order the fold must be the time-ordered one.
          expect(profile?.computed).toEqual(foldedInTimeOrder(all.get(customer)!));
        }
      });

      it('two stores racing on the same batches (a client retrying a batch) store each event once', async () => {
        const other = await backend.open({ now: () => NOW });
        const customers = [unique('user'), unique('user'), unique('user')];
        const { batches, orders, all } = interleavedBatches(customers, 12);
        const sends = batches.flatMap((batch, i) => [
          { to: i % 2 === 0 ? store : other, batch },
          { to: i % 2 === 0 ? other : store, batch: batch.map((e) => ({ ...e, receivedAt: e.receivedAt + 1000 })) },
        ]);

        const results = await Promise.all(sends.map(({ to, batch }) => to.recordEvents(batch, noBatchDispatch)));

        expect(results.flat().filter((r) => !r.duplicate)).toHaveLength(36);
        for (const customer of customers) {
          const profile = await store.getProfile(customer);
          expect({ customer, orders: profile?.computed.orders_count }).toEqual({ customer, orders: orders.get(customer) });
          expect(profile?.computed).toEqual(foldedInTimeOrder(all.get(customer)!));
          expect(await store.eventsOf(customer)).toHaveLength(12);
        }
      });
    });
  });
}
