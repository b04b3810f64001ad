// Races and repeats in recordEvents, each checked by what ends up stored: one customer per person, every event once,
// none lost, the profile folded from exactly those events. Duplicates inside a batch and a duplicate in the batch
// that merges its owner run on both backends; concurrent redeliveries and identity merges run on PostgreSQL, whose
// writers really overlap (SQLite's are serial).
import type { NewEvent } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
let n = 0;
const u = (p: string) => `${p}-${++n}`;
function ev(type: NewEvent['type'], userId: string | null, anonymousId: string | null, at: number, f: Partial<NewEvent> = {}): NewEvent {
  return { messageId: u('m'), type, customerId: userId ?? anonymousId ?? '', userId, anonymousId, name: null, properties: {}, traits: {}, context: {}, timestamp: at, receivedAt: at + 5, ...f };
}
const once = { needsDispatch: false };
const batch = { needsDispatch: () => false };

for (const backend of storeBackends('identity races')) {
  backend.describe(`identity and duplicate races: ${backend.name}`, () => {
    afterAll(() => backend.dispose());

    it('1. a messageId repeated inside one batch answers with the stored event, not the copy', async () => {
      const store = await backend.open();
      const first = ev('track', u('user'), null, NOW, { name: 'Product Added', properties: { product_id: 'p1', quantity: 1 } });
      const retry = { ...first, properties: { product_id: 'p1', quantity: 5 }, receivedAt: NOW + 999 };
      const results = await store.recordEvents([first, retry], batch);
      expect(results.map((r) => r.duplicate)).toEqual([false, true]);
      // The retry is answered with what was stored, not with its own properties and receivedAt.
      expect(results[1]!.event).toEqual(results[0]!.event);
      const stored = await store.eventsOf(first.userId!);
      expect(stored.map((e) => [e.messageId, e.properties.quantity, e.receivedAt])).toEqual([[first.messageId, 1, NOW + 5]]);
      expect((await store.getProfile(first.userId!))?.computed.cart).toEqual([{ product_id: 'p1', quantity: 1 }]);
    });

    it('2. a duplicate of an anonymous event, in the batch that joins it to a user, answers with the user', async () => {
      const store = await backend.open();
      const [anon, user] = [u('anon'), u('user')];
      const view = ev('track', null, anon, NOW, { name: 'Product Viewed', properties: { category: 'Shoes' } });
      const stored = (await store.recordEvent(view, once)).event;
      const results = await store.recordEvents([ev('identify', user, anon, NOW + 1), { ...view }], batch);
      expect(results.map((r) => r.duplicate)).toEqual([false, true]);
      // The merge in the same batch moved the stored event: the answer names its owner now, with their profile.
      expect(results[1]!.event).toEqual({ ...stored, customerId: user });
      expect(results[1]!.profile.customerId).toBe(user);
      expect(await store.getProfile(anon)).toBeUndefined();
      expect(await store.resolveCustomerId(anon)).toBe(user);
      expect((await store.eventsOf(user)).map((e) => e.messageId)).toEqual([view.messageId]);
      expect((await store.getProfile(user))?.computed.product_views).toBe(1);
    });

    if (backend.name !== 'postgres') return;

    it('3. overlapping batches redelivered in another order do not deadlock, and store each event once', async () => {
      const [a, b] = [await backend.open(), await backend.open()];
      for (let attempt = 0; attempt < 10; attempt++) {
        const customers = [u('user'), u('user'), u('user')];
        const batches = Array.from({ length: 12 }, (_, round) =>
          customers.map((c, i) =>
            ev('track', c, null, NOW + ((round * 89 + i * 7) % 36) * 60000 + i, { name: 'Order Completed', properties: { order_id: `o-${round}`, total: round + 1 } }),
          ),
        );
        const before = await a.tableCounts();
        // Each batch and its reversed copy race on two connections: unsorted inserts deadlocked here (40P01).
        const results = await Promise.all(
          batches.flatMap((events, i) => [(i % 2 ? a : b).recordEvents(events, batch), (i % 2 ? b : a).recordEvents([...events].reverse().map((e) => ({ ...e })), batch)]),
        );
        const after = await a.tableCounts();
        expect({ attempt, events: after.events! - before.events!, profiles: after.profiles! - before.profiles! }).toEqual({ attempt, events: 36, profiles: 3 });
        // Of the two deliveries of an event, exactly one wrote it.
        const writers = new Map<string, number>();
        for (const result of results.flat()) if (!result.duplicate) writers.set(result.event.messageId, (writers.get(result.event.messageId) ?? 0) + 1);
        expect([...writers.values()].filter((n) => n === 1)).toHaveLength(36);
        for (const [i, c] of customers.entries()) {
          const sent = batches.map((events) => events[i]!);
          const stored = await a.eventsOf(c);
          expect({ attempt, c, stored: stored.map((e) => e.messageId).sort() }).toEqual({ attempt, c, stored: sent.map((e) => e.messageId).sort() });
          const profile = await a.getProfile(c);
          expect({ attempt, c, orders: profile?.computed.orders_count, spent: profile?.computed.total_spent, last: profile?.computed.last_order_at }).toEqual({
            attempt,
            c,
            orders: new Set(sent.map((e) => e.properties.order_id)).size,
            spent: sent.reduce((sum, e) => sum + (e.properties.total as number), 0),
            last: Math.max(...sent.map((e) => e.timestamp)),
          });
        }
      }
    });

    it('4. an anonymous event racing the identify that joins it lands on the user', async () => {
      const [a, b] = [await backend.open(), await backend.open()];
      const pairs = Array.from({ length: 40 }, () => ({ anon: u('anon'), user: u('user') }));
      for (const { anon } of pairs) await a.recordEvent(ev('track', null, anon, NOW, { name: 'Product Viewed' }), once);
      await Promise.all(pairs.flatMap(({ anon, user }) => [a.recordEvent(ev('identify', user, anon, NOW + 1), once), b.recordEvent(ev('track', null, anon, NOW + 2, { name: 'Product Viewed' }), once)]));
      // Whichever comes first, the racing view must not resurrect the anonymous customer the identify merged away.
      const stranded: string[] = [];
      for (const { anon, user } of pairs) {
        const joined = (await a.eventsOf(user)).length === 2 && (await a.getProfile(user))?.computed.product_views === 2;
        if ((await a.getProfile(anon)) !== undefined || (await a.eventsOf(anon)).length > 0 || (await a.resolveCustomerId(anon)) !== user || !joined) stranded.push(anon);
      }
      expect(stranded).toEqual([]);
    });

    it('5. two users racing to claim one anonymousId: later anonymous events follow the one that got its history', async () => {
      const [a, b] = [await backend.open(), await backend.open()];
      const trios = Array.from({ length: 40 }, () => ({ anon: u('anon'), u1: u('user'), u2: u('user') }));
      for (const { anon } of trios) await a.recordEvent(ev('track', null, anon, NOW, { name: 'Product Viewed' }), once);
      await Promise.all(trios.flatMap(({ anon, u1, u2 }) => [a.recordEvent(ev('identify', u1, anon, NOW + 1), once), b.recordEvent(ev('identify', u2, anon, NOW + 1), once)]));
      // The history and the identities row must name the same winner, or later events split from the history.
      const split: string[] = [];
      for (const { anon, u1, u2 } of trios) {
        const held = [(await a.eventsOf(u1)).length, (await a.eventsOf(u2)).length];
        const owner = held[0] === 1 ? u1 : u2;
        const later = await a.recordEvent(ev('track', null, anon, NOW + 3, { name: 'Product Viewed' }), once);
        const history = await a.eventsOf(owner);
        const ok =
          [...held].sort().join() === '0,1' &&
          (await a.getProfile(anon)) === undefined &&
          later.event.customerId === owner &&
          history.length === 2 &&
          (await a.getProfile(owner))?.computed.product_views === 2;
        if (!ok) split.push(anon);
      }
      expect(split).toEqual([]);
    });
  });
}
