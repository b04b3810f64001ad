// Tracking consent's pure rules: which events are behavioral, which fields they feed (a property test proves the list
// complete: nothing else in the fold depends on a behavioral event), which segments read behavior, the consent trail's
// diff, and the withheld segments of the membership evaluation.
import fc from 'fast-check';
import { BEHAVIOR_WEIGHTS, behaviorView, DAY_MS, foldAll, type BehaviorEvent } from '../../core/behavior';
import { readConfig } from '../../core/config';
import { ConfigError } from '../../core/errors';
import { IMPORT_LIBRARY } from '../../core/import-mapping';
import { applyEventsToProfile, emptyProfile, type ConsentRecord, type Profile } from '../../core/profile';
import { evaluateCustomer, type SegmentSpec } from '../../core/segment-membership';
import type { SegmentRule } from '../../core/segment-rules';
import { SYSTEM_EVENT_NAMES } from '../../core/source-policy';
import { PREFERENCES_UPDATED } from '../../core/topic-consent';
import {
  BEHAVIORAL_COMPUTED_FIELDS,
  NON_BEHAVIORAL_TRACK_EVENTS,
  behavioralSegmentIds,
  consentChanges,
  isBehavioralEvent,
  isBehavioralPath,
  trackingAllowed,
  trackingWithdrawn,
  trailSource,
  withoutBehavioralFields,
} from '../../core/tracking-consent';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/tracking-consent.test.ts');
const T0 = Date.UTC(2026, 0, 5, 12);
const HOUR = 60 * 60 * 1000;

function consentOf(records: Record<string, ConsentRecord>): Pick<Profile, 'consent'> {
  return { consent: records };
}

const granted = (at = T0, source = 'identify'): ConsentRecord => ({ granted: true, source, at });
const denied = (at = T0, source = 'identify'): ConsentRecord => ({ granted: false, source, at });

describe('isBehavioralEvent', () => {
  it('page and screen calls and the browsing and engagement events are behavioral', () => {
    expect(isBehavioralEvent({ type: 'page', name: null })).toBe(true);
    expect(isBehavioralEvent({ type: 'page', name: 'Home' })).toBe(true);
    expect(isBehavioralEvent({ type: 'screen', name: 'Cart' })).toBe(true);
    // Every weighted event of the behavior score but the purchase.
    const browsing = Object.keys(BEHAVIOR_WEIGHTS).filter((name) => name !== 'Order Completed');
    expect(browsing).toEqual(expect.arrayContaining(['Product Viewed', 'Product Added', 'Product Removed', 'Cart Viewed', 'Checkout Started', 'Products Searched', 'Product List Viewed', 'Email Opened', 'Email Link Clicked']));
    for (const name of browsing) expect([name, isBehavioralEvent({ type: 'track', name })]).toEqual([name, true]);
  });

  it('a custom track event is behavioral; so is a track call without a name', () => {
    expect(isBehavioralEvent({ type: 'track', name: 'Wishlist Shared' })).toBe(true);
    expect(isBehavioralEvent({ type: 'track', name: 'order completed' })).toBe(true);
    expect(isBehavioralEvent({ type: 'track', name: null })).toBe(true);
  });

  it('identify, alias, group, orders, consent, deliverability and segment changes are kept', () => {
    for (const type of ['identify', 'alias', 'group'] as const) expect(isBehavioralEvent({ type, name: null })).toBe(false);
    for (const name of NON_BEHAVIORAL_TRACK_EVENTS) expect([name, isBehavioralEvent({ type: 'track', name })]).toEqual([name, false]);
    expect(isBehavioralEvent({ type: 'track', name: PREFERENCES_UPDATED })).toBe(false);
    // microflows' own events: only the opens and clicks record what the reader did.
    const behavioralSystem = SYSTEM_EVENT_NAMES.filter((name) => isBehavioralEvent({ type: 'track', name }));
    expect(behavioralSystem.sort()).toEqual(['Email Link Clicked', 'Email Opened']);
  });
});

describe('trackingAllowed', () => {
  it('the customer’s record decides; without one, the default', () => {
    expect(trackingAllowed(consentOf({ behavioral_tracking: granted() }), false)).toBe(true);
    expect(trackingAllowed(consentOf({ behavioral_tracking: denied() }), true)).toBe(false);
    expect(trackingAllowed(consentOf({ email_marketing: denied() }), true)).toBe(true);
    expect(trackingAllowed(consentOf({}), false)).toBe(false);
    expect(trackingAllowed(undefined, true)).toBe(true);
    expect(trackingAllowed(undefined, false)).toBe(false);
  });
});

describe('trackingWithdrawn', () => {
  it('is a change from tracked to not tracked, or a first explicit refusal', () => {
    expect(trackingWithdrawn(consentOf({}), consentOf({ behavioral_tracking: denied() }), true)).toBe(true);
    expect(trackingWithdrawn(consentOf({ behavioral_tracking: granted() }), consentOf({ behavioral_tracking: denied() }), false)).toBe(true);
    // Under a denied default, the first explicit refusal clears what a granted default may have let in.
    expect(trackingWithdrawn(consentOf({}), consentOf({ behavioral_tracking: denied() }), false)).toBe(true);
    // A refusal repeated (a client sending consent on every identify) has nothing left to clear.
    expect(trackingWithdrawn(consentOf({ behavioral_tracking: denied(T0) }), consentOf({ behavioral_tracking: denied(T0 + HOUR) }), true)).toBe(false);
    expect(trackingWithdrawn(consentOf({ behavioral_tracking: denied() }), consentOf({ behavioral_tracking: granted(T0 + HOUR) }), true)).toBe(false);
    expect(trackingWithdrawn(consentOf({}), consentOf({ email_marketing: denied() }), true)).toBe(false);
    expect(trackingWithdrawn(consentOf({}), consentOf({}), false)).toBe(false);
  });
});

function track(name: string, at: number, properties: Record<string, unknown> = {}): BehaviorEvent {
  return { type: 'track', name, properties, traits: {}, timestamp: at };
}

describe('withoutBehavioralFields', () => {
  const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes' };
  const events: BehaviorEvent[] = [
    { type: 'page', name: 'Home', properties: {}, traits: {}, timestamp: T0 },
    track('Product Viewed', T0 + 1, shoe),
    track('Product Viewed', T0 + DAY_MS, shoe),
    track('Product Added', T0 + DAY_MS + 1, shoe),
    track('Email Delivered', T0 + DAY_MS + 2),
    track('Email Opened', T0 + DAY_MS + 3),
    track('Email Link Clicked', T0 + DAY_MS + 4),
    track('Order Completed', T0 + DAY_MS + 5, { order_id: 'o-1', total: 89.5, products: [shoe] }),
    track('Product Added', T0 + DAY_MS + 6, { ...shoe, product_id: 'sku-2' }),
  ];

  it('clears the cart, views, visits, score and engagement, and the behavioral tags with them; keeps the orders', () => {
    const full = behaviorView(foldAll(events), T0 + 2 * DAY_MS);
    expect(full.behavioral_tags).toEqual(['Browsed Shoes', 'Cart Abandoner', 'Customer', 'Engaged', 'Repeat Visitor']);
    const view = behaviorView(withoutBehavioralFields(foldAll(events)), T0 + 2 * DAY_MS);
    expect(view).toMatchObject({
      cart: [],
      cart_abandonment_time: null,
      product_views: 0,
      page_views: 0,
      visit_days: 0,
      behavior_score: 0,
      opens_30d: 0,
      clicks_30d: 0,
      last_open_at: null,
      last_click_at: null,
      preferred_category: null,
      category_views: {},
      behavioral_tags: ['Customer'],
      orders_count: 1,
      total_spent: 89.5,
      emails_delivered: 1,
      email_status: 'ok',
      last_order_at: T0 + DAY_MS + 5,
    });
    expect(view).not.toHaveProperty('last_viewed_product');
    expect(view).not.toHaveProperty('last_browsed_category');
  });

  it('leaves its input alone', () => {
    const computed = foldAll(events);
    const copy = JSON.parse(JSON.stringify(computed));
    withoutBehavioralFields(computed);
    expect(computed).toEqual(copy);
  });

  // The list is complete: whatever the events, what is left after clearing is what the kept events alone make, but
  // for the last action date and the fold's high-water mark, which any event moves (documented, and not behavior).
  it('what stays depends on the kept events only (property)', () => {
    const names = ['Product Viewed', 'Product Added', 'Product Removed', 'Cart Viewed', 'Checkout Started', 'Email Opened', 'Email Link Clicked', 'Wishlist Shared', 'Order Completed', 'Email Delivered', 'Email Bounced', 'Email Marked as Spam', 'Segment Entered'];
    const event = fc.record({
      kind: fc.constantFrom<'track' | 'page' | 'screen' | 'group'>('track', 'track', 'track', 'page', 'screen', 'group'),
      name: fc.constantFrom(...names),
      product: fc.constantFrom('sku-1', 'sku-2', 'sku-3'),
      category: fc.constantFrom('Shoes', 'Hats'),
      total: fc.integer({ min: 0, max: 500 }),
      soft: fc.boolean(),
      machine: fc.boolean(),
      gap: fc.integer({ min: 0, max: 3 * DAY_MS }),
    });
    fuzz.check(
      fc.property(fc.array(event, { maxLength: 40 }), (specs) => {
        let at = T0;
        const events: BehaviorEvent[] = specs.map((s) => {
          at += s.gap;
          const properties = { product_id: s.product, category: s.category, total: s.total, products: [{ product_id: s.product }], bounce_type: s.soft ? 'soft' : 'hard', machine_open: s.machine, groupId: 'g-1' };
          return { type: s.kind, name: s.kind === 'track' ? s.name : null, properties, traits: { plan: 'pro' }, timestamp: at };
        });
        const kept = events.filter((e) => !isBehavioralEvent(e));
        const strip = (computed: Record<string, unknown>) => {
          const { last_action_date: _a, _folded_through: _f, ...rest } = withoutBehavioralFields(computed);
          return rest;
        };
        expect(strip(foldAll(events))).toEqual(strip(foldAll(kept)));
      }),
      300,
    );
  });

  it('names only fields the fold writes', () => {
    const computed = foldAll([
      { type: 'page', name: null, properties: {}, traits: {}, timestamp: T0 },
      track('Product Viewed', T0 + 1, { product_id: 'p', category: 'Shoes' }),
      track('Product Added', T0 + 2, { product_id: 'p' }),
      track('Email Opened', T0 + 3),
      track('Email Link Clicked', T0 + 4),
    ]);
    for (const field of BEHAVIORAL_COMPUTED_FIELDS) expect([field, field in computed]).toEqual([field, true]);
  });
});

describe('behavioral segments', () => {
  const spec = (id: string, rule: SegmentRule): SegmentSpec => ({ id, rule });
  const performed = (event: string): SegmentRule => ({ kind: 'performed', match: { event }, count: { at_least: 1 }, within: 7 * DAY_MS });
  const segments: SegmentSpec[] = [
    spec('viewers', performed('Product Viewed')),
    spec('buyers', performed('Order Completed')),
    spec('openers', performed('Email Opened')),
    spec('custom', { kind: 'last_performed', match: { event: 'Wishlist Shared' }, after: DAY_MS }),
    spec('big-spenders', { kind: 'profile', condition: { 'profile.total_spent': { gte: 500 } } }),
    spec('cold', { kind: 'profile', condition: { any: [{ 'profile.behavior_score': { lt: 1 } }, { 'profile.orders_count': 0 }] } }),
    spec('cart-holders', { kind: 'all', rules: [{ kind: 'profile', condition: { 'profile.cart': { size: 2 } } }] }),
    spec('champions', { kind: 'rfm', condition: { recency: { gte: 4 } } }),
    spec('not-viewers', { kind: 'not', rule: { kind: 'in_segment', segment: 'viewers' } }),
    spec('loyal-not-viewers', { kind: 'all', rules: [{ kind: 'in_segment', segment: 'buyers' }, { kind: 'in_segment', segment: 'not-viewers' }] }),
    spec('loyal', { kind: 'all', rules: [{ kind: 'in_segment', segment: 'buyers' }, { kind: 'in_segment', segment: 'big-spenders' }] }),
    spec('marketable', { kind: 'profile', condition: { 'consent.email_marketing': true } }),
  ];

  it('are those reading behavioral events or fields, or naming such a segment', () => {
    expect([...behavioralSegmentIds(segments)].sort()).toEqual(['cart-holders', 'cold', 'custom', 'loyal-not-viewers', 'not-viewers', 'openers', 'viewers']);
  });

  it('a path reads behavior by its first field under profile', () => {
    expect(isBehavioralPath('profile.cart.0.price')).toBe(true);
    expect(isBehavioralPath('profile.behavioral_tags')).toBe(true);
    expect(isBehavioralPath('profile.orders_count')).toBe(false);
    expect(isBehavioralPath('profile.tags')).toBe(false);
    expect(isBehavioralPath('consent.behavioral_tracking')).toBe(false);
    expect(isBehavioralPath('event.properties.cart')).toBe(false);
  });

  it('withheld segments give no membership, and segments naming them see a non-member', () => {
    const facts = {
      view: { profile: { total_spent: 600, orders_count: 1, behavior_score: 0 }, consent: {} },
      events: [{ name: 'Product Viewed', properties: {}, timestamp: T0 - HOUR }, { name: 'Order Completed', properties: {}, timestamp: T0 - HOUR }],
      rfm: null,
    };
    const all = evaluateCustomer(segments, facts, T0).members;
    expect([...all].sort()).toEqual(['big-spenders', 'buyers', 'cold', 'loyal', 'viewers']);
    const withheld = evaluateCustomer(segments, { ...facts, withheld: behavioralSegmentIds(segments) }, T0);
    expect([...withheld.members].sort()).toEqual(['big-spenders', 'buyers', 'loyal']);
    // Withheld memberships change with no event of the rules' own: the next change is what the kept ones say.
    expect(withheld.nextCheck).toBe(T0 - HOUR + 7 * DAY_MS);
  });
});

describe('consentChanges', () => {
  const eventAt = (at: number) => (at === T0 + HOUR ? 'm-1' : null);

  it('writes a row per kind whose value changed or was given first, with the source the trail names', () => {
    const before = { email_marketing: granted(T0), behavioral_tracking: granted(T0) };
    const after = {
      email_marketing: granted(T0 + HOUR),
      behavioral_tracking: denied(T0 + HOUR),
      'topic:cart-reminders': { granted: false, source: 'preference_center', at: T0 + HOUR },
    };
    expect(consentChanges('u1', before, after, T0 + 2 * HOUR, eventAt)).toEqual([
      { customerId: 'u1', kind: 'behavioral_tracking', granted: false, source: 'api', at: T0 + HOUR, recordedAt: T0 + 2 * HOUR, eventMessageId: 'm-1' },
      { customerId: 'u1', kind: 'topic:cart-reminders', granted: false, source: 'preference_center', at: T0 + HOUR, recordedAt: T0 + 2 * HOUR, eventMessageId: 'm-1' },
    ]);
  });

  it('nothing changed, nothing written; a merge brings consent no event of the batch dated', () => {
    const same = { email_marketing: granted(T0) };
    expect(consentChanges('u1', same, same, T0, eventAt)).toEqual([]);
    expect(consentChanges('u1', {}, { email_marketing: denied(T0 - DAY_MS, 'unsubscribe') }, T0, eventAt)).toEqual([
      { customerId: 'u1', kind: 'email_marketing', granted: false, source: 'unsubscribe', at: T0 - DAY_MS, recordedAt: T0, eventMessageId: null },
    ]);
  });

  it('trailSource: an identify is the API; others as recorded', () => {
    expect(trailSource('identify')).toBe('api');
    expect(['unsubscribe', 'preference_center', 'import', 'admin'].map(trailSource)).toEqual(['unsubscribe', 'preference_center', 'import', 'admin']);
  });
});

describe('consent source of an identify', () => {
  const identify = (context: Record<string, unknown> | undefined) => ({
    type: 'identify' as const,
    name: null,
    properties: {},
    traits: { consent: { behavioral_tracking: false, email_marketing: true } },
    timestamp: T0,
    ...(context ? { context } : {}),
  });

  it('is import for `microflows import`’s calls, identify for the API’s', () => {
    const imported = applyEventsToProfile(emptyProfile('u1', T0), [{ event: identify({ library: { name: IMPORT_LIBRARY } }), now: T0 }]);
    expect(imported.consent).toEqual({ behavioral_tracking: denied(T0, 'import'), email_marketing: granted(T0, 'import') });
    const viaApi = applyEventsToProfile(emptyProfile('u1', T0), [{ event: identify({ library: { name: 'analytics.js' } }), now: T0 }]);
    expect(viaApi.consent.behavioral_tracking).toEqual(denied(T0, 'identify'));
    expect(applyEventsToProfile(emptyProfile('u1', T0), [{ event: identify(undefined), now: T0 }]).consent.email_marketing).toEqual(granted(T0, 'identify'));
  });
});

describe('MICROFLOWS_TRACKING_DEFAULT', () => {
  const read = (value: string | undefined) => readConfig(value === undefined ? {} : { MICROFLOWS_TRACKING_DEFAULT: value }, '/tmp/project').trackingDefault;

  it('is granted unless set to denied (any case, spaces around)', () => {
    expect(read(undefined)).toBe('granted');
    expect(read('')).toBe('granted');
    expect(read('denied')).toBe('denied');
    expect(read(' Denied ')).toBe('denied');
    expect(read('GRANTED')).toBe('granted');
  });

  it('refuses anything else, naming the variable and the two values', () => {
    for (const bad of ['deny', 'false', 'opt-in']) {
      expect(() => read(bad)).toThrow(ConfigError);
      expect(() => read(bad)).toThrow(new RegExp(`^MICROFLOWS_TRACKING_DEFAULT=${bad}: use granted .* or denied`));
    }
  });
});
