// Segment membership on the real stores (SQLite, and PostgreSQL with TEST_DATABASE_URL): events mark their customer
// due in the ingest transaction, an evaluation records the change and its Segment Entered / Exited event in one
// transaction, and the sweep moves exactly the customers whose window closed — at the millisecond it closed.
import { DAY_MS } from '../../core/behavior';
import { rfmBoundaries, rfmScore } from '../../core/rfm';
import { parseSegmentFile, type SegmentDefinition } from '../../core/segment-definition';
import { evaluateCustomer, segmentEventReads, SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import { profileContext } from '../../core/profile';
import { SegmentEngine } from '../../activities/segment-engine';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent } from '../../store/store';
import { seededRandom } from '../support/seeded-random';
import { storeBackends } from '../support/store-backends';

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
          () => segmentEventReads(SEGMENTS, T0),
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
      // The expected members, from an independent computation over every buyer in this store.
      const boundaries = rfmBoundaries(await store.rfmInputs());
      for (const c of buyers) {
        const profile = (await store.getProfile(c))!;
        const score = rfmScore({ customerId: c, lastOrderAt: profile.computed.last_order_at as number, ordersCount: profile.computed.orders_count as number, totalSpent: profile.computed.total_spent as number }, boundaries)!;
        expect({ c, in: (await segmentsOf(c)).includes('big-spenders') }).toEqual({ c, in: score.monetary >= 4 });
      }
      expect((await Promise.all(buyers.map(segmentsOf))).filter((s) => s.includes('big-spenders')).length).toBeGreaterThan(0);
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

    it('agrees member for member with a from-scratch evaluation after random events and clock moves', async () => {
      const rand = seededRandom(7);
      const people = Array.from({ length: 12 }, (_, i) => customer(`prop${i}`));
      const names = ['Product Viewed', 'Product Viewed', 'Order Completed'];
      const categories = ['Shoes', 'Bags'];
      let now = T0 + 200 * DAY_MS;
      for (let step = 0; step < 60; step++) {
        if (rand() < 0.6) {
          const c = people[Math.floor(rand() * people.length)]!;
          const late = rand() < 0.2 ? Math.floor(rand() * 3 * DAY_MS) : 0;
          await record([track(c, names[Math.floor(rand() * names.length)]!, now - late, { category: categories[Math.floor(rand() * 2)], total: 20 })]);
          await engine.evaluate(c, now);
        } else {
          now += Math.floor(rand() * 4 * DAY_MS);
          for (let page = await engine.sweepPage(now, 7); page.next; page = await engine.sweepPage(now, 7, page.next)) expect(page.failed).toBe(0);
        }
      }
      await engine.refreshRfm(now, 0);
      for (let page = await engine.sweepPage(now, 50); page.next; page = await engine.sweepPage(now, 50, page.next));
      const boundaries = (await store.rfmState())!.boundaries;
      for (const c of people) {
        const profile = await store.getProfile(c);
        const events = (await store.eventsOf(c)).filter((e) => e.name !== SEGMENT_ENTERED && e.name !== SEGMENT_EXITED).map((e) => ({ name: e.name, properties: e.properties, timestamp: e.timestamp }));
        const rfm = profile ? rfmScore({ customerId: c, lastOrderAt: (profile.computed.last_order_at as number | undefined) ?? null, ordersCount: Number(profile.computed.orders_count ?? 0), totalSpent: Number(profile.computed.total_spent ?? 0) }, boundaries) : null;
        const expected = profile ? [...evaluateCustomer(SEGMENTS, { view: profileContext(profile, now), events, rfm }, now).members].sort() : [];
        expect({ c, members: await segmentsOf(c) }).toEqual({ c, members: expected });
      }
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
  });
}
