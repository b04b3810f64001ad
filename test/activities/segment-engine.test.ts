// Segment membership on the real stores (SQLite, and PostgreSQL with TEST_DATABASE_URL): events mark their customer
// due in the ingest transaction, an evaluation records the change and its Segment Entered / Exited event in one
// transaction, and the sweep moves exactly the customers whose window closed — at the millisecond it closed. The
// RFM and random checks compare with a reference written here from the definitions, over the raw stored events.
import { parseSegmentFile, type SegmentDefinition } from '../../core/segment-definition';
import { segmentEventReads, SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import { SegmentEngine } from '../../activities/segment-engine';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent, StoredEvent, Store } from '../../store/store';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';
import { storeBackends } from '../support/store-backends';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
let sequence = 0;

function segment(id: string, rules: string): SegmentDefinition {
  const { segment: parsed, problems } = parseSegmentFile(`id: ${id}\ndescription: ${id} for tests\nrules:\n${rules}`, `${id}.yaml`);
  if (!parsed) throw new Error(problems.map((p) => p.message).join('\n'));
  return parsed;
}

const BROWSING = segment('browsing', '  - performed: { event: Product Viewed, at_least: 3, within: 7d, same: properties.category }\n  - not_performed: { event: Order Completed, within: 30d }');
const LAPSED = segment('lapsed', '  - last_performed: { event: Order Completed, before: 60d }');
const RECENT = segment('recent', '  - performed: { event: Order Completed, within: 14d }');
const BIG_SPENDERS = segment('big-spenders', '  - rfm: { monetary: { gte: 4 } }');
const CART = segment('cart', '  - profile: { profile.behavioral_tags: { contains: Cart Abandoner } }');
const SEGMENTS = [BROWSING, LAPSED, RECENT, BIG_SPENDERS, CART];

// --- The reference: the segments above read from their definitions (README "Authoring a segment", "Profiles"; the
// quintile rule in core/rfm.ts's header), brute force over the events as stored, sharing no code with core/.

/** NTILE(5) over `population` ascending, the first n % 5 tiles a row larger; a value takes the tile of the row where
 *  it first occurs, so equal values share the lowest tile their group reaches. */
function quintile(population: readonly number[], value: number): number {
  const sorted = [...population].sort((a, b) => a - b);
  const tileOfRow: number[] = [];
  for (let tile = 1; tile <= 5; tile++) {
    const rows = Math.floor(sorted.length / 5) + (tile <= sorted.length % 5 ? 1 : 0);
    for (let row = 0; row < rows; row++) tileOfRow.push(tile);
  }
  const row = sorted.indexOf(value);
  if (row < 0) throw new Error(`${value} is not in the population`);
  return tileOfRow[row]!;
}

/** An order's value: `total`, else `revenue`, else nothing. */
function orderValue(properties: Record<string, unknown>): number {
  for (const key of ['total', 'revenue']) {
    const value = properties[key];
    if (typeof value === 'number' && Number.isFinite(value)) return value;
  }
  return 0;
}

/** What each buyer (a customer in the store with at least one order) spent in all, from their stored orders. */
async function spendPerBuyer(store: Store): Promise<Map<string, number>> {
  const spent = new Map<string, number>();
  for (let after: string | null = null; ; ) {
    const page = await store.listProfiles({ after, limit: 200 });
    for (const { customerId } of page) {
      const orders = await store.eventsOf(customerId, { names: ['Order Completed'] });
      if (orders.length > 0) spent.set(customerId, orders.reduce((sum, e) => sum + orderValue(e.properties), 0));
    }
    if (page.length < 200) return spent;
    after = page[page.length - 1]!.customerId;
  }
}

/** Each buyer's monetary quintile among all the store's buyers. */
async function monetaryScores(store: Store): Promise<Map<string, number>> {
  const spent = await spendPerBuyer(store);
  return new Map([...spent].map(([customerId, amount]) => [customerId, quintile([...spent.values()], amount)]));
}

function productIdOf(properties: Record<string, unknown>): string | null {
  for (const key of ['product_id', 'sku']) {
    const value = properties[key];
    if ((typeof value === 'string' && value !== '') || (typeof value === 'number' && Number.isFinite(value))) return String(value);
  }
  return null;
}

/** Since when a non-empty cart has been untouched (an add, a remove or an order touches it), or null for an empty
 *  cart: the cart replayed from the events in time order, ties in arrival order. */
function cartUntouchedSince(events: readonly StoredEvent[], now: number): number | null {
  const cart = new Set<string>();
  let touched: number | null = null;
  for (const e of [...events].filter((e) => e.timestamp <= now).sort((a, b) => a.timestamp - b.timestamp || a.id - b.id)) {
    const productId = productIdOf(e.properties);
    if (e.name === 'Product Added' && productId !== null) cart.add(productId);
    else if (e.name === 'Product Removed') {
      if (productId !== null) cart.delete(productId);
    } else if (e.name === 'Order Completed') cart.clear();
    else continue; // not a touch: another event, or an add that names no product
    touched = e.timestamp;
  }
  return cart.size > 0 ? touched : null;
}

/** The test's segments a customer is in at `now`, from their stored events and their monetary quintile (null: not a buyer). */
function expectedSegments(events: readonly StoredEvent[], monetary: number | null, now: number): string[] {
  const times = (name: string) => events.filter((e) => e.name === name && e.timestamp <= now).map((e) => e.timestamp);
  // "within D": from D ago, exclusive, to now, inclusive.
  const within = (t: number, span: number) => t > now - span && t <= now;
  const orders = times('Order Completed');
  const viewsPerCategory = new Map<string, number>();
  for (const e of events) {
    const category = e.properties.category;
    if (e.name !== 'Product Viewed' || !within(e.timestamp, 7 * DAY_MS) || typeof category !== 'string' || category.trim() === '') continue;
    // One category whatever its case or surrounding spaces ("Shoes", "shoes").
    const key = category.trim().toLowerCase();
    viewsPerCategory.set(key, (viewsPerCategory.get(key) ?? 0) + 1);
  }
  const segments: string[] = [];
  if ([...viewsPerCategory.values()].some((n) => n >= 3) && !orders.some((t) => within(t, 30 * DAY_MS))) segments.push('browsing');
  if (orders.length > 0 && now - Math.max(...orders) >= 60 * DAY_MS) segments.push('lapsed');
  if (orders.some((t) => within(t, 14 * DAY_MS))) segments.push('recent');
  if (monetary !== null && monetary >= 4) segments.push('big-spenders');
  const untouched = cartUntouchedSince(events, now);
  if (untouched !== null && now - untouched >= HOUR_MS) segments.push('cart');
  return segments.sort();
}

function track(customerId: string, name: string, at: number, properties: Record<string, unknown> = {}, anonymousId: string | null = null): NewEvent {
  sequence += 1;
  return {
    messageId: `seg-msg-${sequence}`,
    type: 'track',
    customerId: customerId,
    userId: anonymousId ? null : customerId,
    anonymousId,
    name,
    properties,
    traits: {},
    context: {},
    timestamp: at,
    receivedAt: at,
  };
}

for (const backend of storeBackends('segment engine')) {
  backend.describe(`segment engine: ${backend.name}`, () => {
    let store: KyselyStore;
    let engine: SegmentEngine;
    let prefix = 0;
    const customer = (name: string) => `${backend.name}-${name}-${++prefix}`;
    const record = (events: NewEvent[]) => store.recordEvents(events, { needsDispatch: () => false });
    const segmentEvents = async (customerId: string) =>
      (await store.eventsOf(customerId, { names: [SEGMENT_ENTERED, SEGMENT_EXITED] }))
        .map((e) => ({ name: e.name, segment: e.properties.segment_id, at: e.timestamp }))
        .sort((a, b) => a.at - b.at || String(a.name).localeCompare(String(b.name)));
    const segmentsOf = async (customerId: string) => (await store.segmentsOf(customerId)).map((m) => m.segmentId);

    beforeAll(async () => {
      store = await backend.open();
      engine = new SegmentEngine({ store, segments: SEGMENTS, dispatcher: null, log: () => undefined });
    });
    afterAll(() => backend.dispose());

    it('marks the customer due in the event transaction, enters on the 3rd view, and leaves at the second the first view turns 7 days old', async () => {
      const c = customer('browser');
      await record([track(c, 'Product Viewed', T0, { category: 'Shoes' }), track(c, 'Product Viewed', T0 + 1000, { category: 'Shoes' })]);
      expect((await store.dueSegmentChecks(T0 + 1000, 1000)).map((d) => d.customerId)).toContain(c);
      await engine.evaluate(c, T0 + 2000);
      expect(await segmentsOf(c)).toEqual([]); // N-1 views: out
      await record([track(c, 'Product Viewed', T0 + 60_000, { category: 'shoes' })]);
      const due = (await store.dueSegmentChecks(T0 + 60_000, 1000)).find((d) => d.customerId === c);
      expect(due?.dueAt).toBe(T0 + 60_000);
      const result = await engine.evaluate(c, T0 + 60_500);
      expect(result.changes).toEqual([{ segmentId: 'browsing', customerId: c, change: 'entered', at: T0 + 60_000 }]);
      expect(await segmentsOf(c)).toEqual(['browsing']);
      // Nothing is due until the first view leaves the window; then exactly this customer is.
      const closes = T0 + 7 * DAY_MS;
      expect((await store.dueSegmentChecks(closes - 1, 1000)).some((d) => d.customerId === c)).toBe(false);
      expect((await store.dueSegmentChecks(closes, 1000)).find((d) => d.customerId === c)?.dueAt).toBe(closes);
      await engine.sweepPage(closes, 1000);
      expect(await segmentsOf(c)).toEqual([]);
      expect(await segmentEvents(c)).toEqual([
        { name: SEGMENT_ENTERED, segment: 'browsing', at: T0 + 60_000 },
        { name: SEGMENT_EXITED, segment: 'browsing', at: closes },
      ]);
      // The Segment events are not the customer's actions: inactivity is still measured from the last view.
      expect((await store.getProfile(c))?.computed.last_action_date).toBe(T0 + 60_000);
    });

    it('enters "no purchase in 60 days" with no new event, when the sweep reaches that moment', async () => {
      const c = customer('buyer');
      await record([track(c, 'Order Completed', T0, { total: 40 })]);
      await engine.evaluate(c, T0 + 10);
      expect(await segmentsOf(c)).toEqual(['recent']);
      await engine.sweepPage(T0 + 14 * DAY_MS, 10_000);
      expect(await segmentsOf(c)).toEqual([]);
      await engine.sweepPage(T0 + 60 * DAY_MS - 1, 10_000);
      expect(await segmentsOf(c)).toEqual([]);
      await engine.sweepPage(T0 + 60 * DAY_MS, 10_000);
      expect(await segmentsOf(c)).toEqual(['lapsed']);
      expect((await segmentEvents(c)).map((e) => `${e.name}:${e.segment}@${(e.at - T0) / DAY_MS}d`)).toEqual([
        'Segment Entered:recent@0d',
        'Segment Exited:recent@14d',
        'Segment Entered:lapsed@60d',
      ]);
      // No next check is left: nothing changes for this customer with time alone any more.
      expect((await store.dueSegmentChecks(T0 + 10_000 * DAY_MS, 100_000)).some((d) => d.customerId === c)).toBe(false);
    });

    it('a late sweep records each change at the moment it happened: out of recent at 14 days, into lapsed at 60', async () => {
      const c = customer('late');
      await record([track(c, 'Order Completed', T0)]);
      await engine.evaluate(c, T0);
      await engine.sweepPage(T0 + 75 * DAY_MS, 100_000);
      expect(await segmentsOf(c)).toEqual(['lapsed']);
      expect((await segmentEvents(c)).map((e) => `${e.name}:${e.segment}@${(e.at - T0) / DAY_MS}d`)).toEqual(['Segment Entered:recent@0d', 'Segment Exited:recent@14d', 'Segment Entered:lapsed@60d']);
      expect((await store.segmentsOf(c))[0]!.enteredAt).toBe(T0 + 60 * DAY_MS);
    });

    it('a backfilled event dates the changes it causes at their own moments, in the past', async () => {
      const c = customer('backfill');
      await record([{ ...track(c, 'Order Completed', T0 - 100 * DAY_MS), receivedAt: T0 }]);
      expect((await store.dueSegmentChecks(T0, 100_000)).find((d) => d.customerId === c)?.dueAt).toBe(T0 - 100 * DAY_MS);
      await engine.evaluate(c, T0);
      expect((await segmentEvents(c)).map((e) => `${e.name}:${e.segment}@${(e.at - T0) / DAY_MS}d`)).toEqual([
        'Segment Entered:recent@-100d',
        'Segment Exited:recent@-86d',
        'Segment Entered:lapsed@-40d',
      ]);
    });

    it('a late order that undoes an exit: the exit is retracted, the exit moves, and the member keeps its first entry time', async () => {
      const c = customer('undo');
      await record([track(c, 'Order Completed', T0)]);
      await engine.evaluate(c, T0 + 20 * DAY_MS);
      expect(await segmentsOf(c)).toEqual([]);
      // An order ten days after the first arrives now: recent from T0 on, without a break, until 14 days after it.
      await record([{ ...track(c, 'Order Completed', T0 + 10 * DAY_MS), receivedAt: T0 + 20 * DAY_MS }]);
      await engine.evaluate(c, T0 + 20 * DAY_MS);
      expect(await store.segmentsOf(c)).toEqual([{ segmentId: 'recent', enteredAt: T0 }]);
      expect((await segmentEvents(c)).map((e) => `${e.name}:${e.segment}@${(e.at - T0) / DAY_MS}d`)).toEqual(['Segment Entered:recent@0d']);
      await engine.sweepPage(T0 + 30 * DAY_MS, 100_000);
      expect((await segmentEvents(c)).map((e) => `${e.name}:${e.segment}@${(e.at - T0) / DAY_MS}d`)).toEqual(['Segment Entered:recent@0d', 'Segment Exited:recent@24d']);
    });

    it('a cart untouched for an hour: due at exactly that moment, not rechecked hourly before it', async () => {
      const c = customer('cart');
      await record([track(c, 'Product Added', T0, { product_id: 'p1', price: 10 })]);
      await engine.evaluate(c, T0 + 5);
      expect(await segmentsOf(c)).toEqual([]);
      const due = async (at: number) => (await store.dueSegmentChecks(at, 100_000)).find((d) => d.customerId === c)?.dueAt;
      expect(await due(T0 + 3_600_000 - 1)).toBeUndefined();
      expect(await due(T0 + 3_600_000)).toBe(T0 + 3_600_000);
      await engine.sweepPage(T0 + 2 * 3_600_000, 100_000);
      expect(await segmentsOf(c)).toEqual(['cart']);
      expect((await store.segmentsOf(c))[0]!.enteredAt).toBe(T0 + 3_600_000);
    });

    it('records a change once when the same evaluation runs again, and touches nobody whose time has not come', async () => {
      const c = customer('retry');
      await record([track(c, 'Order Completed', T0)]);
      await engine.evaluate(c, T0);
      await engine.evaluate(c, T0);
      expect(await segmentEvents(c)).toEqual([{ name: SEGMENT_ENTERED, segment: 'recent', at: T0 }]);
      const page = await engine.sweepPage(T0 + DAY_MS, 100_000);
      expect(page.failed).toBe(0);
      expect(await segmentEvents(c)).toHaveLength(1);
    });

    it('changes nothing when an evaluation fails half-way: no membership, no event, still due, for any customer of the batch', async () => {
      const c = customer('crash');
      const other = customer('crash-a');
      await record([track(c, 'Order Completed', T0), track(other, 'Order Completed', T0)]);
      await expect(
        store.updateSegments(
          [other, c],
          () => ({ events: segmentEventReads(SEGMENTS, T0), from: T0, profileHistory: true }),
          (customerId) => {
            if (customerId === c) throw new Error('crash in the middle');
            return { members: new Set(['recent']), at: T0, nextCheckAt: null, events: [] };
          },
          () => false,
        ),
      ).rejects.toMatchObject({ message: 'crash in the middle' });
      for (const id of [c, other]) {
        expect(await segmentsOf(id)).toEqual([]);
        expect(await segmentEvents(id)).toEqual([]);
        expect((await store.dueSegmentChecks(T0, 100_000)).some((d) => d.customerId === id)).toBe(true);
      }
    });

    it('moves memberships with a merge: the anonymous browser who identifies keeps the segment', async () => {
      const anon = customer('anon');
      const user = customer('user');
      await record([0, 1, 2].map((i) => track(anon, 'Product Viewed', T0 + i, { category: 'Bags' }, anon)));
      await engine.evaluate(anon, T0 + 10);
      expect(await segmentsOf(anon)).toEqual(['browsing']);
      await record([{ ...track(user, '', T0 + 20), type: 'identify', name: null, anonymousId: anon }]);
      expect(await segmentsOf(anon)).toEqual([]);
      expect(await segmentsOf(user)).toEqual(['browsing']);
      await engine.evaluate(user, T0 + 30);
      expect(await segmentsOf(user)).toEqual(['browsing']);
    });

    it('scores RFM over the store: a refresh schedules every buyer, and the sweep puts the top monetary quintiles in', async () => {
      const buyers = Array.from({ length: 10 }, (_, i) => customer(`rfm${i}`));
      await record(buyers.map((c, i) => track(c, 'Order Completed', T0 + i, { total: (i + 1) * 10 })));
      const now = T0 + DAY_MS;
      expect(await engine.refreshRfm(now)).toBe(true);
      expect(await engine.refreshRfm(now + 1000)).toBe(false); // fresh enough
      await engine.sweepPage(now, 100_000);
      // The quintiles are over every buyer in this store (earlier tests' buyers too, several of them spending 0).
      const scores = await monetaryScores(store);
      const expected = buyers.map((c) => ({ c, in: scores.get(c)! >= 4 }));
      expect(await Promise.all(buyers.map(async (c) => ({ c, in: (await segmentsOf(c)).includes('big-spenders') })))).toEqual(expected);
      // Both answers occur, so the boundary between them is what is being checked.
      expect(new Set(expected.map((e) => e.in))).toEqual(new Set([true, false]));
    });

    it('a changed definition schedules everyone; a removed segment loses its members; the counts and overlap follow', async () => {
      const c = customer('defs');
      await record([track(c, 'Order Completed', T0)]);
      await engine.evaluate(c, T0);
      await engine.syncDefinitions();
      const { sizes, overlap } = await store.segmentCounts();
      expect(sizes.recent).toBeGreaterThan(0);
      expect(overlap.every((o) => o.a < o.b && o.shared > 0)).toBe(true);
      await engine.sweepPage(T0 + 1, 100_000);
      expect((await store.dueSegmentChecks(T0 + 1, 100_000)).length).toBe(0);
      const narrower = new SegmentEngine({ store, segments: [BROWSING, segment('recent', '  - performed: { event: Order Completed, within: 1d }')], dispatcher: null, log: () => undefined });
      expect(await narrower.syncDefinitions()).toEqual({ changed: ['recent'], removed: ['big-spenders', 'cart', 'lapsed'] });
      expect((await store.segmentCounts()).sizes['lapsed']).toBeUndefined();
      expect((await store.dueSegmentChecks(Date.now(), 100_000)).some((d) => d.customerId === c)).toBe(true);
      expect((await store.segmentStates()).map((s) => s.segmentId)).toEqual(['browsing', 'recent']);
      // Put the full set back for the tests after this one.
      expect((await engine.syncDefinitions()).changed).toEqual(['big-spenders', 'cart', 'lapsed', 'recent']);
    });

    it('agrees member for member with the reference after random events and clock moves', async () => {
      const seed = runSeed(`segment engine (${backend.name})`);
      const rand = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
      const people = Array.from({ length: 6 }, (_, i) => customer(`prop${i}`));
      const names = ['Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Viewed', 'Order Completed', 'Product Added', 'Product Removed'];
      const stored = (c: string) => store.eventsOf(c);
      // Between RFM refreshes the engine scores against the last stored quintiles, by design: RFM is compared at the end.
      const withoutRfm = (segments: string[]) => segments.filter((s) => s !== 'big-spenders');
      let now = T0 + 200 * DAY_MS;
      for (let step = 0; step < 150; step++) {
        if (rand() < 0.6) {
          // One to three events of one customer in a batch; some of them late (backfilled up to 3 days).
          const c = pick(people);
          const events = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
            const name = pick(names);
            const late = rand() < 0.2 ? Math.floor(rand() * 3 * DAY_MS) : 0;
            const properties = name.startsWith('Product') ? { category: pick(['Shoes', 'Bags', 'bags ']), product_id: pick(['p1', 'p2']) } : { total: pick([20, 20, 35]) };
            return track(c, name, now - late, properties);
          });
          await record(events);
          await engine.evaluate(c, now);
          expect({ seed, step, c, members: withoutRfm(await segmentsOf(c)) }).toEqual({ seed, step, c, members: withoutRfm(expectedSegments(await stored(c), null, now)) });
        } else {
          // A random stretch, or exactly onto (or a millisecond before) the next moment one of them is due.
          const due = (await store.dueSegmentChecks(now + 30 * DAY_MS, 100_000)).filter((d) => people.includes(d.customerId) && d.dueAt > now).map((d) => d.dueAt);
          const move = rand();
          if (due.length > 0 && move < 0.3) now = Math.min(...due);
          else if (due.length > 0 && move < 0.4) now = Math.max(now, Math.min(...due) - 1);
          else now += Math.floor(rand() * (rand() < 0.8 ? DAY_MS : 12 * DAY_MS));
          for (let page = await engine.sweepPage(now, 7); page.next; page = await engine.sweepPage(now, 7, page.next)) expect(page.failed).toBe(0);
          for (const c of people) {
            expect({ seed, step, c, members: withoutRfm(await segmentsOf(c)) }).toEqual({ seed, step, c, members: withoutRfm(expectedSegments(await stored(c), null, now)) });
          }
        }
      }
      await engine.refreshRfm(now, 0);
      for (let page = await engine.sweepPage(now, 50); page.next; page = await engine.sweepPage(now, 50, page.next));
      const scores = await monetaryScores(store);
      for (const c of people) {
        expect({ seed, c, members: await segmentsOf(c) }).toEqual({ seed, c, members: expectedSegments(await stored(c), scores.get(c) ?? null, now) });
      }
    });

    it('records the same history, equal to the reference at every moment, whether it arrives in one batch, in order, or shuffled', async () => {
      const seed = runSeed(`segment history (${backend.name})`);
      const rand = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
      // RFM aside (its quintiles are the population's, recomputed by the sweep): the event, window and profile rules.
      const engine = new SegmentEngine({ store, segments: [BROWSING, LAPSED, RECENT, CART], dispatcher: null, log: () => undefined });
      const now = T0 + 200 * DAY_MS;
      const names = ['Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Added', 'Product Removed', 'Order Completed'];
      // 120 days of one customer's history, every event at its own millisecond (ties would make arrival order matter).
      const times = [...new Set(Array.from({ length: 30 }, () => now - 130 * DAY_MS + Math.floor(rand() * 120 * DAY_MS)))].sort((a, b) => a - b);
      const history = times.map((at) => {
        const name = pick(names);
        return { name, at, properties: name.startsWith('Product') ? { category: pick(['Shoes', 'Bags', 'bags ']), product_id: pick(['p1', 'p2']) } : { total: pick([20, 35]) } };
      });
      const replay = async (way: string, batches: (events: NewEvent[]) => NewEvent[][]) => {
        const c = customer(`replay-${way}`);
        for (const batch of batches(history.map((e) => ({ ...track(c, e.name, e.at, e.properties), receivedAt: now })))) {
          await record(batch);
          await engine.evaluate(c, now);
        }
        const recorded = (await segmentEvents(c)).map((e) => `${e.name === SEGMENT_ENTERED ? 'entered' : 'exited'} ${String(e.segment)} @${e.at - now}`);
        return { c, recorded };
      };
      const chunks = (events: NewEvent[], size: number) => Array.from({ length: Math.ceil(events.length / size) }, (_, i) => events.slice(i * size, (i + 1) * size));
      const shuffled = <T>(items: T[]) => items.map((item) => ({ item, key: rand() })).sort((a, b) => a.key - b.key).map(({ item }) => item);
      const whole = await replay('whole', (events) => [events]);
      const inOrder = await replay('in-order', (events) => chunks(events, 4));
      const mixed = await replay('shuffled', (events) => chunks(shuffled(events), 3));
      const oneByOne = await replay('newest-first', (events) => [...events].reverse().map((e) => [e]));

      // The reference, at every event and every window edge after one (1 h for the cart, 7, 14, 30 and 60 days).
      const events = await store.eventsOf(whole.c);
      const moments = [...new Set(events.flatMap((e) => [0, HOUR_MS, 7 * DAY_MS, 14 * DAY_MS, 30 * DAY_MS, 60 * DAY_MS].map((edge) => e.timestamp + edge)))].filter((t) => t <= now).sort((a, b) => a - b);
      const reference: string[] = [];
      let before: string[] = [];
      for (const at of moments) {
        const after = expectedSegments(events, null, at);
        for (const id of after.filter((x) => !before.includes(x))) reference.push(`entered ${id} @${at - now}`);
        for (const id of before.filter((x) => !after.includes(x))) reference.push(`exited ${id} @${at - now}`);
        before = after;
      }
      const ordered = (list: string[]) => [...list].sort((a, b) => Number(a.split('@')[1]) - Number(b.split('@')[1]) || a.localeCompare(b));
      expect({ seed, way: 'whole', recorded: ordered(whole.recorded) }).toEqual({ seed, way: 'whole', recorded: ordered(reference) });
      for (const other of [inOrder, mixed, oneByOne]) expect({ seed, c: other.c, recorded: ordered(other.recorded) }).toEqual({ seed, c: other.c, recorded: ordered(reference) });
      // The stored membership, and when each was entered, agree too.
      const membership = async (c: string) => (await store.segmentsOf(c)).map((m) => `${m.segmentId}@${m.enteredAt - now}`);
      for (const other of [inOrder, mixed, oneByOne]) expect(await membership(other.c)).toEqual(await membership(whole.c));
    });

    it('serializes an evaluation with concurrent ingest for the same customer, without deadlock or lost updates', async () => {
      const c = customer('race');
      const work: Array<Promise<unknown>> = [];
      for (let i = 0; i < 12; i++) {
        work.push(record([track(c, 'Product Viewed', T0 + i, { category: 'Hats' })]));
        work.push(engine.evaluate(c, T0 + 100));
      }
      await Promise.all(work);
      await engine.evaluate(c, T0 + 100);
      expect(await segmentsOf(c)).toEqual(['browsing']);
      expect((await segmentEvents(c)).filter((e) => e.name === SEGMENT_ENTERED)).toHaveLength(1);
    });

    describe('the real-time queue', () => {
      /** The customers of each real-time (or sweep) evaluation transaction, in the order they ran: the real store, watched. */
      async function watchingEvaluations<T>(work: (evaluated: string[][]) => Promise<T>): Promise<T> {
        const evaluated: string[][] = [];
        const updateSegments = store.updateSegments.bind(store);
        store.updateSegments = (customerIds, ...rest) => {
          evaluated.push([...customerIds]);
          return updateSegments(customerIds, ...rest);
        };
        try {
          return await work(evaluated);
        } finally {
          store.updateSegments = updateSegments;
        }
      }

      it('evaluates each customer once, in the order they first came, a batch of 100 at a time; one that comes again during its evaluation is evaluated again', async () => {
        const logged: string[] = [];
        const queued = new SegmentEngine({ store, segments: SEGMENTS, dispatcher: null, now: () => T0 + 1000, log: (m) => logged.push(m) });
        const customers = Array.from({ length: 150 }, (_, i) => customer(`queued-${i}`));
        await record(customers.map((c) => track(c, 'Order Completed', T0)));
        await watchingEvaluations(async (evaluated) => {
          // Every customer comes three times in one commit (as a customer's several events do), in shifting order.
          queued.enqueue([...customers, ...[...customers].reverse(), ...customers.slice(40)]);
          expect(queued.pendingCount).toBe(50); // the first 100 are taken at once, for the first evaluation
          // While that evaluation runs, customers of it come again (a new event it may not have read): they queue
          // for another, behind the ones still waiting, which are not queued twice.
          queued.enqueue([customers[120]!, customers[3]!, customers[120]!, customers[5]!, customers[3]!]);
          expect(queued.pendingCount).toBe(52);
          await queued.idle();
          expect(evaluated).toEqual([customers.slice(0, 100), [...customers.slice(100), customers[3], customers[5]]]);
        });
        for (const c of [customers[0]!, customers[149]!]) expect(await segmentsOf(c)).toEqual(['recent']);
        expect(queued.overflowCount).toBe(0);
        expect(logged).toEqual([]);
      });

      it('leaves the customers beyond its bound to the sweep: still due in the store, and evaluated by the next sweep page', async () => {
        const logged: string[] = [];
        const now = T0 + 1000;
        const bounded = new SegmentEngine({ store, segments: SEGMENTS, dispatcher: null, now: () => now, log: (m) => logged.push(m), maxPending: 3 });
        const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((name) => customer(`bounded-${name}`)) as [string, string, string, string, string];
        // The ingest transaction marks each customer due, whatever the queue does with them afterwards.
        await record([a, b, c, d, e].map((id) => track(id, 'Order Completed', T0)));
        const due = async () => (await store.dueSegmentChecks(now, 100_000)).map((x) => x.customerId).filter((id) => [a, b, c, d, e].includes(id)).sort();
        expect(await due()).toEqual([a, b, c, d, e].sort());

        await watchingEvaluations(async (evaluated) => {
          bounded.enqueue([a, b, a, c, d, b, e]);
          expect(bounded.overflowCount).toBe(2); // d and e; a and b again were already waiting
          expect(bounded.pendingCount).toBe(0); // a, b and c are taken at once, for an evaluation
          await bounded.idle();
          expect(evaluated).toEqual([[a, b, c]]);
        });
        expect(logged).toEqual(['[segments] 3 customers wait for a real-time evaluation: more are left to the sweep (they are due in the store) until the queue empties']);
        for (const id of [a, b, c]) expect(await segmentsOf(id)).toEqual(['recent']);
        for (const id of [d, e]) expect(await segmentsOf(id)).toEqual([]);
        expect(await due()).toEqual([d, e].sort());

        for (let page = await bounded.sweepPage(now, 500); page.next; page = await bounded.sweepPage(now, 500, page.next)) expect(page.failed).toBe(0);
        for (const id of [d, e]) {
          expect(await segmentsOf(id)).toEqual(['recent']);
          expect(await segmentEvents(id)).toEqual([{ name: SEGMENT_ENTERED, segment: 'recent', at: T0 }]);
        }
        expect(await due()).toEqual([]);
        // Emptied, the queue takes customers again (and says so again only when it fills again).
        await watchingEvaluations(async (evaluated) => {
          bounded.enqueue([d]);
          await bounded.idle();
          expect(evaluated).toEqual([[d]]);
        });
        expect(bounded.overflowCount).toBe(2);
        expect(logged).toHaveLength(1);
      });
    });
  });
}
