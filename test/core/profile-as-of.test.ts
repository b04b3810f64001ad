// The profile as it stood at a past moment: the dated parts (traits, consent, the computed fields) as the events up
// to then made them, whatever order they arrived in; tags, which carry no time, as today; and the segments of the
// moment from the recorded changes. Checked on examples and against a brute-force reading of the definitions over
// generated histories (fresh seed each run, FUZZ_SEED replays).
import fc from 'fast-check';
import { applyEventsToProfile, applyProfileUpdate, emptyProfile, type Profile, type ProfileEvent } from '../../core/profile';
import { profileAsOf, segmentsAsOf } from '../../core/profile-as-of';
import { fuzzRun } from '../support/fuzz-seed';

const T0 = Date.UTC(2026, 3, 1, 12);
const MINUTE = 60_000;

function identify(traits: Record<string, unknown>, at: number): ProfileEvent {
  return { type: 'identify', name: null, properties: {}, traits, timestamp: at };
}

function track(name: string, at: number, properties: Record<string, unknown> = {}): ProfileEvent {
  return { type: 'track', name, properties, traits: {}, timestamp: at };
}

/** Today's profile as the store keeps it: every event folded in time order (ties in arrival order). */
function today(events: ProfileEvent[], customerId = 'c1'): Profile {
  const ordered = events.map((event, arrival) => ({ event, arrival })).sort((a, b) => a.event.timestamp - b.event.timestamp || a.arrival - b.arrival);
  return applyEventsToProfile(emptyProfile(customerId, T0), ordered.map(({ event }) => ({ event, now: event.timestamp })));
}

describe('profileAsOf', () => {
  const history = [
    identify({ email: 'ana@example.com', consent: { email_marketing: true } }, T0),
    track('Product Added', T0 + 1 * MINUTE, { product_id: 'shoe', price: 80 }),
    identify({ consent: { email_marketing: false } }, T0 + 2 * MINUTE),
    track('Order Completed', T0 + 3 * MINUTE, { total: 80 }),
  ];

  it('reads consent and the cart as they were at the moment, not as they are now', () => {
    const current = today(history);
    expect(current.consent.email_marketing?.granted).toBe(false);
    expect(current.computed.cart).toEqual([]);

    const then = profileAsOf(current, history, T0 + 1 * MINUTE)!;
    expect(then.consent.email_marketing).toEqual({ granted: true, source: 'identify', at: T0 });
    expect(then.computed.cart).toEqual([{ product_id: 'shoe', price: 80, quantity: 1 }]);
    expect(then.computed.orders_count).toBeUndefined();
    expect(then.email).toBe('ana@example.com');
  });

  it('counts an event at exactly the moment, and none after it', () => {
    const current = today(history);
    expect(profileAsOf(current, history, T0 + 2 * MINUTE)!.consent.email_marketing?.granted).toBe(false);
    expect(profileAsOf(current, history, T0 + 2 * MINUTE - 1)!.consent.email_marketing?.granted).toBe(true);
  });

  it('gives the same profile whatever order the events are passed in', () => {
    const current = today(history);
    const expected = profileAsOf(current, history, T0 + 90_000);
    expect(profileAsOf(current, [...history].reverse(), T0 + 90_000)).toEqual(expected);
    expect(profileAsOf(current, [history[2]!, history[0]!, history[3]!, history[1]!], T0 + 90_000)).toEqual(expected);
  });

  it('keeps what no event dates: a trait a flow set before the moment, and today\'s tags', () => {
    const setByFlow = applyProfileUpdate(today(history), { set: { vip: true }, addTags: ['Winback'], removeTags: [] }, T0 + 30_000);
    const then = profileAsOf(setByFlow, history, T0 + 1 * MINUTE)!;
    expect(then.traits.vip).toBe(true);
    expect(then.tags).toEqual(['Winback']);
    // Set after the moment: not there yet.
    expect(profileAsOf(setByFlow, history, T0 + 10_000)!.traits.vip).toBeUndefined();
  });

  it('is today\'s profile, as a copy, when nothing happened after the moment; undefined without a profile', () => {
    const current = today(history);
    const copy = JSON.parse(JSON.stringify(current)) as Profile;
    const now = profileAsOf(current, history, T0 + 10 * MINUTE)!;
    expect(now).toEqual(current);
    now.tags.push('changed');
    expect(current).toEqual(copy);
    expect(profileAsOf(undefined, history, T0)).toBeUndefined();
  });

  it('ignores segment changes: they fold into nothing, and one recorded late does not make today\'s profile stale', () => {
    const withChange = [...history, track('Segment Entered', T0 + 20 * MINUTE, { segment_id: 'buyers' })];
    const current = today(withChange);
    expect(profileAsOf(current, withChange, T0 + 10 * MINUTE)).toEqual(current);
  });
});

describe('segmentsAsOf', () => {
  const entered = (segment: string, at: number) => ({ name: 'Segment Entered', properties: { segment_id: segment }, timestamp: at });
  const exited = (segment: string, at: number) => ({ name: 'Segment Exited', properties: { segment_id: segment }, timestamp: at });

  it('replays the changes up to the moment in time order, whatever order they come in', () => {
    const changes = [exited('lapsed', T0 + 3), entered('buyers', T0 + 1), entered('lapsed', T0 + 2), entered('lapsed', T0 + 5)];
    expect(segmentsAsOf(changes, T0)).toEqual([]);
    expect(segmentsAsOf(changes, T0 + 2)).toEqual(['buyers', 'lapsed']);
    expect(segmentsAsOf(changes, T0 + 4)).toEqual(['buyers']);
    expect(segmentsAsOf(changes, T0 + 5)).toEqual(['buyers', 'lapsed']);
  });

  it('skips events that are not segment changes or name no segment', () => {
    expect(segmentsAsOf([{ name: 'Order Completed', properties: { segment_id: 'x' }, timestamp: T0 }, { name: 'Segment Entered', properties: {}, timestamp: T0 }], T0)).toEqual([]);
  });
});

const fuzz = fuzzRun('test/core/profile-as-of.test.ts');

/** What the definitions say held at `at`, read from the raw events (arrival order breaks ties), sharing no code with the fold. */
function reference(events: ProfileEvent[], at: number): { consent: boolean | undefined; plan: unknown; cart: Record<string, number>; orders: number } {
  const upTo = events.map((event, arrival) => ({ event, arrival })).filter(({ event }) => event.timestamp <= at);
  upTo.sort((a, b) => a.event.timestamp - b.event.timestamp || a.arrival - b.arrival);
  let consent: boolean | undefined;
  let plan: unknown;
  let cart: Record<string, number> = {};
  let orders = 0;
  for (const { event } of upTo) {
    if (event.type === 'identify') {
      const granted = (event.traits.consent as { email_marketing?: unknown } | undefined)?.email_marketing;
      if (typeof granted === 'boolean') consent = granted;
      if ('plan' in event.traits) plan = event.traits.plan;
    } else if (event.name === 'Product Added') {
      const id = event.properties.product_id as string;
      cart[id] = (cart[id] ?? 0) + 1;
    } else if (event.name === 'Product Removed') {
      delete cart[event.properties.product_id as string];
    } else if (event.name === 'Order Completed') {
      cart = {};
      orders += 1;
    }
  }
  return { consent, plan, cart, orders };
}

const eventArbitrary: fc.Arbitrary<ProfileEvent> = fc
  .tuple(fc.integer({ min: 0, max: 30 }), fc.constantFrom('consent', 'plan', 'add', 'remove', 'order'), fc.constantFrom('a', 'b', 'c'), fc.boolean())
  .map(([minute, kind, product, flag]) => {
    const at = T0 + minute * MINUTE;
    if (kind === 'consent') return identify({ consent: { email_marketing: flag } }, at);
    if (kind === 'plan') return identify({ plan: `${product}-${flag}` }, at);
    if (kind === 'add') return track('Product Added', at, { product_id: product });
    if (kind === 'remove') return track('Product Removed', at, { product_id: product });
    return track('Order Completed', at, { total: 10 });
  });

describe('profileAsOf against the definitions', () => {
  it('agrees with a brute-force replay at every moment, for histories in any arrival order', () => {
    fuzz.check(
      fc.property(fc.array(eventArbitrary, { minLength: 1, maxLength: 25 }), fc.integer({ min: -1, max: 31 }), (events, minute) => {
        const at = T0 + minute * MINUTE;
        const expected = reference(events, at);
        const profile = profileAsOf(today(events), events, at)!;
        expect(profile.consent.email_marketing?.granted).toBe(expected.consent);
        expect(profile.traits.plan).toEqual(expected.plan);
        const cart = Object.fromEntries(((profile.computed.cart as Array<{ product_id: string; quantity: number }> | undefined) ?? []).map((i) => [i.product_id, i.quantity]));
        expect(cart).toEqual(expected.cart);
        expect(profile.computed.orders_count ?? 0).toBe(expected.orders);
      }),
      300,
    );
  });
});
