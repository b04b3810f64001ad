// Event retention on SQLite and PostgreSQL: purgeEventsBefore deletes exactly a customer's events older than the
// cutoff (their undispatched ones, every later one, and the segment changes kept), leaves the profile as it was, and
// leaves a baseline so that a refold (a late event) or a profile as of a past moment still counts the purged events:
// the result equals that of a customer with the same history never purged. A merged-away customer's baseline comes
// along; a customer identified only by purged events stays identified (a client key still may not change them).
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent } from '../../store/store';
import { openEventsTable, type EventsTable } from '../support/events-table';
import { storeBackends } from '../support/store-backends';

const DAY = 86_400_000;
const NOW = 1_750_000_000_000;
const CUTOFF = NOW - 30 * DAY;
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
    context: { ip: '203.0.113.9' },
    timestamp: at,
    receivedAt: at + 1000,
    ...overrides,
  };
}

function identify(customerId: string, traits: Record<string, unknown>, at: number, overrides: Partial<NewEvent> = {}): NewEvent {
  return { ...track(customerId, '', at, {}, overrides), type: 'identify', name: null, traits };
}

/** A shop customer's history: three orders and views before the cutoff, one order and a view after. */
function history(customerId: string): { old: NewEvent[]; recent: NewEvent[]; owed: NewEvent; segmentChange: NewEvent } {
  const old = [
    identify(customerId, { email: `${customerId}@example.com`, plan: 'gold' }, NOW - 200 * DAY),
    track(customerId, 'Product Viewed', NOW - 190 * DAY, { product_id: 'p1', category: 'Shoes' }),
    track(customerId, 'Order Completed', NOW - 180 * DAY, { order_id: 'o1', total: 50, products: [{ product_id: 'p1' }] }),
    track(customerId, 'Product Viewed', NOW - 100 * DAY, { product_id: 'p2', category: 'Shoes' }),
    track(customerId, 'Order Completed', NOW - 90 * DAY, { order_id: 'o2', total: 30, products: [{ product_id: 'p2' }] }),
    track(customerId, 'Email Opened', NOW - 85 * DAY, { message_id: 'm1' }),
  ];
  // Still owed to Temporal, and older than the cutoff: kept, with everything after it.
  const owed = track(customerId, 'Order Completed', NOW - 60 * DAY, { order_id: 'o3', total: 5 });
  const held = track(customerId, 'Product Viewed', NOW - 50 * DAY, { product_id: 'p3', category: 'Bags' });
  const segmentChange = track(customerId, 'Segment Entered', NOW - 179 * DAY, { segment_id: 'recent-purchasers' });
  const recent = [
    held,
    track(customerId, 'Order Completed', NOW - 5 * DAY, { order_id: 'o4', total: 20, products: [{ product_id: 'p4' }] }),
    track(customerId, 'Product Viewed', NOW - 3 * DAY, { product_id: 'p4', category: 'Hats' }),
  ];
  return { old, recent, owed, segmentChange };
}

for (const backend of storeBackends('retention-contract')) {
  backend.describe(`event retention: ${backend.name}`, () => {
    let store: KyselyStore;
    let table: EventsTable;

    beforeAll(async () => {
      store = await backend.open({ now: () => NOW });
      table = openEventsTable(backend);
    });

    afterAll(async () => {
      await table?.close();
      await backend.dispose();
    });

    async function record(customerId: string): Promise<ReturnType<typeof history>> {
      const events = history(customerId);
      await store.recordEvents([...events.old, events.segmentChange, ...events.recent], { needsDispatch: () => false });
      await store.recordEvent(events.owed, { needsDispatch: true });
      return events;
    }

    async function purgeAll(limit = 500): Promise<{ purged: number; pages: number }> {
      let purged = 0;
      let pages = 0;
      let after: string | null = null;
      do {
        const page = await store.purgeEventsBefore(CUTOFF, limit, after);
        purged += page.purged;
        pages += 1;
        after = page.next;
      } while (after !== null);
      return { purged, pages };
    }

    const storedIds = async (events: NewEvent[]) => (await table.rowsFor(events.map((e) => e.messageId))).map((row) => row.messageId).sort();
    const ids = (events: NewEvent[]) => events.map((e) => e.messageId).sort();

    it('deletes exactly the old events, keeps the owed one, what follows it and the segment changes, and leaves the profile as it was', async () => {
      const purgedCustomer = unique('buyer');
      const neverPurged = unique('mirror');
      const bystander = unique('bystander');
      const a = await record(purgedCustomer);
      const m = await record(neverPurged);
      const recentOnly = [track(bystander, 'Product Viewed', NOW - 2 * DAY, { product_id: 'p9' }), track(bystander, 'Order Completed', NOW - DAY, { total: 9 })];
      await store.recordEvents(recentOnly, { needsDispatch: () => false });
      const before = (await store.getProfile(purgedCustomer))!;
      expect(before.computed).toMatchObject({ orders_count: 4, total_spent: 105, first_order_at: NOW - 180 * DAY });
      const bystanderBefore = await store.getProfile(bystander);

      // The mirror refolds now, over its whole history: the reference for the purged customer's refold below.
      const late = (customerId: string) => track(customerId, 'Product Viewed', NOW - 10 * DAY, { product_id: 'p5', category: 'Shoes' });
      await store.recordEvent(late(neverPurged), { needsDispatch: false });
      const reference = (await store.getProfile(neverPurged))!;
      expect(reference.computed).toMatchObject({ orders_count: 4, total_spent: 105, first_order_at: NOW - 180 * DAY, product_views: 5 });

      const { purged } = await purgeAll();
      expect(purged).toBe(2 * a.old.length);
      expect(await storedIds([...a.old, ...m.old])).toEqual([]);
      expect(await storedIds([a.owed, a.segmentChange, ...a.recent])).toEqual(ids([a.owed, a.segmentChange, ...a.recent]));
      expect(await storedIds(recentOnly)).toEqual(ids(recentOnly));
      expect(await store.getProfile(purgedCustomer)).toEqual(before);
      expect(await store.getProfile(bystander)).toEqual(bystanderBefore);
      // Nothing older than the cutoff is left that may go: a second purge deletes nothing.
      expect((await purgeAll()).purged).toBe(0);

      // A late event refolds from the baseline: the purged orders still count, exactly as in the never-purged mirror.
      await store.recordEvent(late(purgedCustomer), { needsDispatch: false });
      const refolded = (await store.getProfile(purgedCustomer))!;
      expect(refolded.computed).toMatchObject({ orders_count: 4, total_spent: 105, first_order_at: NOW - 180 * DAY, product_views: 5 });
      expect(refolded.computed).toEqual(reference.computed);
    });

    it('purges the rest once the owed event is dispatched, folding it in once', async () => {
      const customerId = unique('owing');
      const events = await record(customerId);
      await purgeAll();
      const owed = (await store.listUndispatched(1000)).filter((e) => e.customerId === customerId);
      expect(owed.map((e) => e.messageId)).toEqual([events.owed.messageId]);
      await store.markDispatched(owed.map((e) => e.id));
      expect((await purgeAll()).purged).toBe(2); // the owed order and the view after it, both before the cutoff
      expect(await storedIds([events.owed, events.recent[0]!])).toEqual([]);
      // A refold (a late event) still counts every order once.
      await store.recordEvent(track(customerId, 'Product Viewed', NOW - 4 * DAY, { product_id: 'p6' }), { needsDispatch: false });
      expect((await store.getProfile(customerId))!.computed).toMatchObject({ orders_count: 4, total_spent: 105, first_order_at: NOW - 180 * DAY });
    });

    it('pages through customers, each once', async () => {
      const customers = [unique('page'), unique('page'), unique('page')];
      for (const customerId of customers) await store.recordEvents([track(customerId, 'Order Completed', NOW - 40 * DAY, { total: 1 })], { needsDispatch: () => false });
      const { purged, pages } = await purgeAll(1);
      expect(purged).toBe(3);
      expect(pages).toBeGreaterThanOrEqual(3);
    });

    it("forgets the baseline's behavioral part when the customer withdraws tracking consent", async () => {
      const customerId = unique('withdrawn');
      await record(customerId);
      await store.markDispatched((await store.listUndispatched(1000)).filter((e) => e.customerId === customerId).map((e) => e.id));
      await purgeAll();
      const consent = (granted: boolean, at: number) => identify(customerId, { consent: { behavioral_tracking: granted } }, at);
      await store.recordEvent(consent(false, NOW - 2 * DAY), { needsDispatch: false });
      expect((await store.getProfile(customerId))!.computed.last_browsed_category).toBeUndefined();
      // Granted again, then a late order forces a refold from the baseline: the purged views (Shoes) must not come back.
      await store.recordEvent(consent(true, NOW - DAY), { needsDispatch: false });
      await store.recordEvent(track(customerId, 'Order Completed', NOW - 20 * DAY, { order_id: 'o-late', total: 1 }), { needsDispatch: false });
      const computed = (await store.getProfile(customerId))!.computed;
      expect(computed.last_browsed_category).toBeUndefined();
      expect(computed).toMatchObject({ orders_count: 5, first_order_at: NOW - 180 * DAY });
    });

    it('reads the profile as of a moment after the purge horizon from the baseline', async () => {
      const customerId = unique('as-of');
      await record(customerId);
      await store.markDispatched((await store.listUndispatched(1000)).filter((e) => e.customerId === customerId).map((e) => e.id));
      const beforePurge = await store.profileAsOf(customerId, NOW - 4 * DAY, { withSegments: true });
      await purgeAll();
      const afterPurge = await store.profileAsOf(customerId, NOW - 4 * DAY, { withSegments: true });
      expect(afterPurge!.computed).toMatchObject({ orders_count: 4, total_spent: 105, first_order_at: NOW - 180 * DAY });
      expect(afterPurge!.computed).toEqual(beforePurge!.computed);
      // The kept segment change still says the customer was in the segment.
      expect(afterPurge!.segments).toEqual(['recent-purchasers']);
    });

    it("carries a merged-away customer's baseline into the customer they join", async () => {
      const visitor = unique('anon');
      const user = unique('user');
      await store.recordEvents(
        [
          track(visitor, 'Order Completed', NOW - 100 * DAY, { total: 70 }, { userId: null, anonymousId: visitor }),
          track(visitor, 'Product Viewed', NOW - 99 * DAY, { product_id: 'p1' }, { userId: null, anonymousId: visitor }),
        ],
        { needsDispatch: () => false },
      );
      await purgeAll();
      // A user never seen before logs in on the visitor's device (a server key joins the two).
      await store.recordEvent(identify(user, { email: `${user}@example.com` }, NOW - DAY, { anonymousId: visitor }), { needsDispatch: false });
      expect(await store.resolveCustomerId(visitor)).toBe(user);
      expect((await store.getProfile(user))!.computed).toMatchObject({ orders_count: 1, total_spent: 70, product_views: 1 });
    });

    it('keeps a customer whose events all went identified: a client key still may not change their email', async () => {
      const customerId = unique('identified');
      await store.recordEvents([identify(customerId, { email: `${customerId}@example.com` }, NOW - 90 * DAY), track(customerId, 'Order Completed', NOW - 80 * DAY, { total: 3 })], { needsDispatch: () => false });
      await purgeAll();
      const [result] = await store.recordEvents([{ ...identify(customerId, { email: 'attacker@example.net' }, NOW), origin: 'client' }], { needsDispatch: () => false });
      expect(result!.refused?.field).toBe('traits.email');
      expect((await store.getProfile(customerId))!.email).toBe(`${customerId}@example.com`);
    });
  });
}
