// The computed profile fields, field by field: each folded in time order, and the same events delivered out of
// order and handled the way the store handles them (incremental fold until `needsRefold`, then a time-ordered
// refold), which must give the same view. A seeded property test then checks that strategy on random sequences.
import {
  BEHAVIOR_SCORE_HALF_LIFE_MS,
  BEHAVIOR_WEIGHTS,
  BROWSED_TAG_MIN_VIEWS,
  CART_ABANDONED_AFTER_MS,
  DAY_MS,
  ENGAGEMENT_WINDOW_MS,
  PAGE_WEIGHT,
  behaviorView,
  behavioralTags,
  nextTimeChange,
  behaviorWeight,
  foldAll,
  foldBehavior,
  needsRefold,
  type BehaviorEvent,
  type Computed,
} from '../../core/behavior';
import { seededRandom } from '../support/seeded-random';

/** Monday 2026-01-05 12:00 UTC: noon, so a few hours either way stay on the same UTC day. */
const T0 = Date.UTC(2026, 0, 5, 12);
const HOUR = 60 * 60 * 1000;

function track(name: string, at: number, properties: Record<string, unknown> = {}): BehaviorEvent {
  return { type: 'track', name, properties, traits: {}, timestamp: at };
}

function page(at: number, name: string | null = 'Home'): BehaviorEvent {
  return { type: 'page', name, properties: {}, traits: {}, timestamp: at };
}

function screen(at: number): BehaviorEvent {
  return { type: 'screen', name: 'Home', properties: {}, traits: {}, timestamp: at };
}

function group(groupId: string, traits: Record<string, unknown>, at: number): BehaviorEvent {
  return { type: 'group', name: null, properties: { groupId }, traits, timestamp: at };
}

function identify(traits: Record<string, unknown>, at: number): BehaviorEvent {
  return { type: 'identify', name: null, properties: {}, traits, timestamp: at };
}

const viewed = (category: string | undefined, at: number, productId = 'p1') =>
  track('Product Viewed', at, category === undefined ? { product_id: productId } : { product_id: productId, category });

/** Time order, ties in arrival order: what the store's refold reads (ORDER BY timestamp, id). */
function timeOrder<T extends { timestamp: number }>(events: T[]): T[] {
  return events.map((event, index) => ({ event, index })).sort((a, b) => a.event.timestamp - b.event.timestamp || a.index - b.index).map((e) => e.event);
}

/**
 * What the store does with events delivered in `arrival` order, split into `batches` (sizes, in arrival order):
 * each batch sorted by time; if its oldest event is older than what was folded, refold everything stored so far
 * in time order, otherwise fold the batch in.
 */
function storeStrategy(arrival: BehaviorEvent[], batches: number[] = arrival.map(() => 1)): Computed {
  let computed: Computed = {};
  const stored: BehaviorEvent[] = [];
  let offset = 0;
  for (const size of batches) {
    const batch = timeOrder(arrival.slice(offset, offset + size));
    offset += size;
    stored.push(...batch);
    const oldest = batch.find((e) => e.type !== 'identify' && e.type !== 'alias') ?? batch[0];
    if (oldest && needsRefold(computed, oldest)) computed = foldAll(timeOrder(stored));
    else for (const event of batch) computed = foldBehavior(computed, event);
  }
  if (offset !== arrival.length) throw new Error('batch sizes do not cover the arrival sequence');
  return computed;
}


function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Arrival orders other than time order: reversed, newest first, oldest last, and a few seeded shuffles. */
function outOfOrderArrivals(events: BehaviorEvent[]): BehaviorEvent[][] {
  const sorted = timeOrder(events);
  const random = seededRandom(sorted.length * 7919 + 1);
  return [
    [...sorted].reverse(),
    [...sorted.slice(-1), ...sorted.slice(0, -1)],
    [...sorted.slice(1), ...sorted.slice(0, 1)],
    shuffled(sorted, random),
    shuffled(sorted, random),
  ];
}

function inOrderView(events: BehaviorEvent[], now: number): Record<string, unknown> {
  return behaviorView(foldAll(timeOrder(events)), now);
}

type Check = (view: Record<string, unknown>, viewAt: (now: number) => Record<string, unknown>) => void;

/**
 * Delivers `events` in several out-of-order arrivals, one event per call and in batches of two. Each must end with
 * exactly the computed fields of foldAll over its events sorted by time (ties in arrival order, as the store sorts),
 * and — when no two events share a time — with the view of the in-order fold. `check` then runs on each.
 */
function checkOutOfOrder(events: BehaviorEvent[], now: number, check: Check): void {
  const distinctTimes = new Set(events.map((e) => e.timestamp)).size === events.length;
  for (const arrival of outOfOrderArrivals(events)) {
    const pairs = Array.from({ length: Math.ceil(arrival.length / 2) }, (_, i) => Math.min(2, arrival.length - 2 * i));
    for (const batches of [arrival.map(() => 1), pairs]) {
      const computed = storeStrategy(arrival, batches);
      expect(computed).toEqual(foldAll(timeOrder(arrival)));
      if (distinctTimes) expect(behaviorView(computed, now)).toEqual(inOrderView(events, now));
      check(behaviorView(computed, now), (at) => behaviorView(computed, at));
    }
  }
}

/**
 * One field's scenario as two tests: folded in time order, and delivered out of order (the store's strategy).
 * `events` may be listed in any order; `check` receives the view at `now` and a way to look at other moments.
 */
function bothOrders(title: string, events: BehaviorEvent[], now: number, check: Check): void {
  it(`${title} (in time order)`, () => {
    const computed = foldAll(timeOrder(events));
    check(behaviorView(computed, now), (at) => behaviorView(computed, at));
  });
  it(`${title} (out of order)`, () => checkOutOfOrder(events, now, check));
}

describe('the store strategy helper', () => {
  it('refolds when an event older than the folded ones arrives, and only then', () => {
    const computed = foldAll([viewed('Shoes', T0 + 10)]);
    expect(needsRefold(computed, viewed('Hats', T0 + 9))).toBe(true);
    expect(needsRefold(computed, viewed('Hats', T0 + 10))).toBe(false);
    expect(needsRefold(computed, viewed('Hats', T0 + 11))).toBe(false);
    expect(needsRefold({}, viewed('Hats', T0))).toBe(false);
  });

  it('never refolds for identify or alias, which merge by time instead', () => {
    const computed = foldAll([viewed('Shoes', T0 + 10)]);
    expect(needsRefold(computed, identify({ plan: 'pro' }, T0))).toBe(false);
    expect(needsRefold(computed, { type: 'alias', name: null, timestamp: T0 })).toBe(false);
  });

  it('folds no segment change: a late Segment Entered neither refolds nor moves anything', () => {
    const computed = foldAll([viewed('Shoes', T0 + 10)]);
    const entered = track('Segment Entered', T0, { segment_id: 'vips' });
    expect(needsRefold(computed, entered)).toBe(false);
    expect(foldAll([viewed('Shoes', T0 + 10), track('Segment Entered', T0 + 20, { segment_id: 'vips' })])).toEqual(computed);
  });

  it('leaves the input of foldBehavior untouched', () => {
    const before = foldAll([track('Product Added', T0, { product_id: 'p1' })]);
    const copy = JSON.parse(JSON.stringify(before)) as Computed;
    foldBehavior(before, track('Product Added', T0 + 1, { product_id: 'p1' }));
    expect(before).toEqual(copy);
  });

  it('shows that arrival order alone would change the result, so the refold is what keeps it stable', () => {
    const add = track('Product Added', T0, { product_id: 'p1' });
    const remove = track('Product Removed', T0 + 1, { product_id: 'p1' });
    expect(foldAll([remove, add]).cart).toHaveLength(1);
    expect(storeStrategy([remove, add]).cart).toEqual([]);
  });
});

describe('last_browsed_category', () => {
  bothOrders('is the category of the newest Product Viewed that has one', [viewed('Shoes', T0), viewed('Hats', T0 + 1), viewed(undefined, T0 + 2)], T0 + 3, (view) => {
    expect(view.last_browsed_category).toBe('Hats');
    expect(view.product_views).toBe(3);
    expect(view.last_viewed_product).toEqual({ product_id: 'p1', quantity: 1 });
  });

  bothOrders('is absent until a viewed product has a category', [viewed(undefined, T0), page(T0 + 1)], T0 + 2, (view) => {
    expect(view.last_browsed_category).toBeUndefined();
    expect(view.preferred_category).toBeNull();
  });
});

describe('preferred_category', () => {
  bothOrders(
    'is the most viewed category, whatever was viewed last',
    [viewed('Shoes', T0), viewed('Shoes', T0 + 1), viewed('Hats', T0 + 2), viewed('Bags', T0 + 3)],
    T0 + 4,
    (view) => {
      expect(view.preferred_category).toBe('Shoes');
      expect(view.last_browsed_category).toBe('Bags');
      expect(view.category_views).toEqual({ Shoes: 2, Hats: 1, Bags: 1 });
    },
  );

  bothOrders(
    'breaks a tie in views by the most recent view',
    [viewed('Shoes', T0), viewed('Hats', T0 + 1), viewed('Hats', T0 + 2), viewed('Shoes', T0 + 3)],
    T0 + 4,
    (view) => expect(view.preferred_category).toBe('Shoes'),
  );

  bothOrders(
    'breaks a tie in views and in time by name',
    [viewed('Shoes', T0), viewed('Hats', T0), viewed('Bags', T0 - 1)],
    T0 + 1,
    (view) => expect(view.preferred_category).toBe('Hats'),
  );

  bothOrders('is null with no categorized views', [track('Product Added', T0, { product_id: 'p1' })], T0, (view) => {
    expect(view.preferred_category).toBeNull();
    expect(view.category_views).toEqual({});
  });
});

describe('behavior_score', () => {
  it('documents its weights', () => {
    expect(BEHAVIOR_WEIGHTS).toEqual({
      'Product Viewed': 1,
      'Product List Viewed': 0.5,
      'Products Searched': 0.5,
      'Product Added': 3,
      'Product Removed': 0,
      'Cart Viewed': 1,
      'Checkout Started': 4,
      'Order Completed': 10,
      'Email Opened': 1,
      'Email Link Clicked': 2,
    });
    expect(PAGE_WEIGHT).toBe(0.5);
    expect(BEHAVIOR_SCORE_HALF_LIFE_MS).toBe(14 * DAY_MS);
  });

  it.each(Object.entries(BEHAVIOR_WEIGHTS))('scores one %s at its weight, %d, at the moment it happens', (name, weight) => {
    expect(behaviorWeight({ type: 'track', name })).toBe(weight);
    expect(behaviorView(foldAll([track(name, T0, { product_id: 'p1' })]), T0).behavior_score).toBe(weight);
  });

  it('scores page and screen calls at PAGE_WEIGHT, and identify, group, alias and unknown events at nothing', () => {
    expect(behaviorView(foldAll([page(T0)]), T0).behavior_score).toBe(PAGE_WEIGHT);
    expect(behaviorView(foldAll([screen(T0)]), T0).behavior_score).toBe(PAGE_WEIGHT);
    const nothing = foldAll([identify({ plan: 'pro' }, T0), group('g1', {}, T0), track('Signed Up', T0), { type: 'alias', name: null, properties: {}, traits: {}, timestamp: T0 }]);
    expect(behaviorView(nothing, T0).behavior_score).toBe(0);
    expect(behaviorView({}, T0).behavior_score).toBe(0);
  });

  const allWeights = [
    ...Object.keys(BEHAVIOR_WEIGHTS).map((name, i) => track(name, T0 + i, { product_id: 'p1' })),
    page(T0 + 20),
    screen(T0 + 21),
    group('g1', {}, T0 + 22),
    identify({ plan: 'pro' }, T0 + 23),
  ];
  const sumOfWeights = Object.values(BEHAVIOR_WEIGHTS).reduce((a, b) => a + b, 0) + 2 * PAGE_WEIGHT;
  bothOrders('adds up the weights of events close together', allWeights, T0 + 30, (view) => {
    expect(view.behavior_score).toBeCloseTo(sumOfWeights, 2);
  });

  bothOrders(
    'halves every 14 days: a purchase scores 10 today, 5 two weeks later, 2.5 after four',
    [track('Product Removed', T0 - 1, { product_id: 'p1' }), track('Order Completed', T0, { total: 1 }), identify({ plan: 'pro' }, T0 + DAY_MS), group('g1', {}, T0 + 2 * DAY_MS)],
    T0,
    (view, viewAt) => {
      expect(view.behavior_score).toBe(10);
      expect(viewAt(T0 + 14 * DAY_MS).behavior_score).toBe(5);
      expect(viewAt(T0 + 28 * DAY_MS).behavior_score).toBe(2.5);
      expect(viewAt(T0 + 7 * DAY_MS).behavior_score).toBeCloseTo(10 / Math.SQRT2, 2);
      expect(viewAt(T0 + 365 * DAY_MS).behavior_score).toBe(0);
    },
  );

  bothOrders(
    'decays each contribution from its own time',
    [track('Order Completed', T0, { total: 1 }), track('Product Viewed', T0 + 14 * DAY_MS), track('Product Added', T0 + 28 * DAY_MS, { product_id: 'p1' })],
    T0 + 28 * DAY_MS,
    (view) => expect(view.behavior_score).toBe(10 / 4 + 1 / 2 + 3),
  );

  bothOrders('is not raised by asking before the newest event', [track('Product Added', T0, { product_id: 'p1' })], T0 - DAY_MS, (view) => {
    expect(view.behavior_score).toBe(3);
  });
});

describe('last_action_date', () => {
  bothOrders(
    'is the time of the newest track, page or screen call, not of identify or group',
    [track('Product Viewed', T0), page(T0 + 5), screen(T0 + 3), group('g1', {}, T0 + 10), identify({ plan: 'pro' }, T0 + 20)],
    T0 + 2 * DAY_MS + 6,
    (view) => {
      expect(view.last_action_date).toBe(T0 + 5);
      expect(view.days_since_last_action).toBe(2);
    },
  );

  bothOrders('is null, and days_since_last_action null, with no action', [group('g1', {}, T0)], T0, (view) => {
    expect(view.last_action_date).toBeNull();
    expect(view.days_since_last_action).toBeNull();
  });
});

describe('cart', () => {
  const shoe = { product_id: 'shoe', name: 'Shoe', price: 50, category: 'Shoes', image_url: 'https://img.example.com/shoe.png', url: 'https://shop.example.com/shoe' };
  const sock = { product_id: 'sock', name: 'Sock', price: 5 };

  bothOrders('holds what was added, with the quantity asked for (1 when none)', [track('Product Added', T0, shoe), track('Product Added', T0 + 1, { ...sock, quantity: 3 })], T0 + 2, (view) => {
    expect(view.cart).toEqual([
      { ...shoe, quantity: 1 },
      { ...sock, quantity: 3 },
    ]);
    expect(view.cart_updated_at).toBe(T0 + 1);
  });

  bothOrders(
    'adds up quantities of the same product, keeping its details when the later add has fewer',
    [track('Product Added', T0, { ...shoe, quantity: 2 }), track('Product Added', T0 + 1, { product_id: 'shoe', quantity: 1 }), track('Product Added', T0 + 2, { sku: 'shoe', price: 45 })],
    T0 + 3,
    (view) => expect(view.cart).toEqual([{ ...shoe, price: 45, quantity: 4 }]),
  );

  bothOrders(
    'drops a removed product (by product_id or sku) and keeps the rest',
    [track('Product Added', T0, shoe), track('Product Added', T0 + 1, sock), track('Product Removed', T0 + 2, { sku: 'sock' }), track('Product Removed', T0 + 3, { product_id: 'hat' })],
    T0 + 4,
    (view) => {
      expect(view.cart).toEqual([{ ...shoe, quantity: 1 }]);
      expect(view.cart_updated_at).toBe(T0 + 3);
    },
  );

  bothOrders(
    'is emptied by Order Completed, and refilled by a later add',
    [track('Product Added', T0, shoe), track('Order Completed', T0 + 1, { total: 50 }), track('Product Added', T0 + 2, sock), track('Order Completed', T0 + 3, { total: 5 }), track('Product Added', T0 + 4, shoe)],
    T0 + 5,
    (view) => expect(view.cart).toEqual([{ ...shoe, quantity: 1 }]),
  );

  bothOrders('ignores an add without product_id or sku', [track('Product Added', T0, { name: 'Mystery' })], T0, (view) => {
    expect(view.cart).toEqual([]);
    expect(view.cart_updated_at).toBeUndefined();
  });
});

describe('cart_abandonment_time', () => {
  bothOrders('is the time of the last change to a non-empty cart', [track('Product Added', T0, { product_id: 'a' }), track('Product Added', T0 + HOUR, { product_id: 'b' }), track('Product Removed', T0 + 2 * HOUR, { product_id: 'a' })], T0 + 3 * HOUR, (view) => {
    expect(view.cart_abandonment_time).toBe(T0 + 2 * HOUR);
  });

  bothOrders('is null once the cart is emptied by removal', [track('Product Added', T0, { product_id: 'a' }), track('Product Removed', T0 + 1, { product_id: 'a' })], T0 + 2 * HOUR, (view) => {
    expect(view.cart_abandonment_time).toBeNull();
    expect(view.behavioral_tags).not.toContain('Cart Abandoner');
  });

  bothOrders('is null once an order empties the cart', [track('Product Added', T0, { product_id: 'a' }), track('Order Completed', T0 + 1, { total: 1 })], T0 + 2 * HOUR, (view) => {
    expect(view.cart_abandonment_time).toBeNull();
    expect(view.behavioral_tags).not.toContain('Cart Abandoner');
  });

  bothOrders('starts again when a product is added after an order', [track('Order Completed', T0, { total: 1 }), track('Product Added', T0 + 1, { product_id: 'a' })], T0 + 2 * HOUR, (view) => {
    expect(view.cart_abandonment_time).toBe(T0 + 1);
  });
});

describe('orders: last_order_at, first_order_at, orders_count, total_spent, average_order_value, days_since_last_order', () => {
  const orders = [
    track('Order Completed', T0, { total: 100, products: [{ product_id: 'shoe', price: 50, quantity: 2 }] }),
    track('Order Completed', T0 + 10 * DAY_MS, { revenue: 50.5, products: [{ sku: 'sock' }, { product_id: 'shoe' }, 'not a product', null] }),
    track('Order Completed', T0 + 12 * DAY_MS, {}),
  ];

  bothOrders('sum up every order, taking revenue when there is no total', orders, T0 + 15 * DAY_MS + HOUR, (view) => {
    expect(view.first_order_at).toBe(T0);
    expect(view.last_order_at).toBe(T0 + 12 * DAY_MS);
    expect(view.orders_count).toBe(3);
    expect(view.total_spent).toBe(150.5);
    expect(view.average_order_value).toBe(50.17);
    expect(view.days_since_last_order).toBe(3);
    expect(view.last_order_products).toEqual([]);
  });

  bothOrders('count days since the last order in whole days, rounding down', [track('Order Completed', T0, { total: 10 })], T0 + 2 * DAY_MS - 1, (view) => {
    expect(view.days_since_last_order).toBe(1);
    expect(view.average_order_value).toBe(10);
  });

  bothOrders('are zero (and days_since_last_order null) before any order', [track('Product Viewed', T0)], T0, (view) => {
    expect(view.orders_count).toBe(0);
    expect(view.total_spent).toBe(0);
    expect(view.average_order_value).toBe(0);
    expect(view.days_since_last_order).toBeNull();
    expect(view.last_order_at).toBeNull();
    expect(view.first_order_at).toBeNull();
  });
});

describe('purchased_product_ids and last_order_products', () => {
  bothOrders(
    'collect every product ever ordered, sorted and once each; last_order_products is the newest order',
    [
      track('Order Completed', T0, { total: 1, products: [{ product_id: 'shoe', name: 'Shoe' }, { sku: 'belt' }] }),
      track('Order Completed', T0 + 1, { total: 1, products: [{ product_id: 'sock', quantity: 2 }, { product_id: 'shoe' }, { name: 'no id' }] }),
    ],
    T0 + 2,
    (view) => {
      expect(view.purchased_product_ids).toEqual(['belt', 'shoe', 'sock']);
      expect(view.last_order_products).toEqual([
        { product_id: 'sock', quantity: 2 },
        { product_id: 'shoe', quantity: 1 },
      ]);
    },
  );
});

describe('email engagement: last_open_at, last_click_at, opens_30d, clicks_30d', () => {
  const engagement = [
    track('Email Opened', T0),
    track('Email Opened', T0 + DAY_MS),
    track('Email Link Clicked', T0 + DAY_MS + 1),
    track('Email Opened', T0 + 5 * DAY_MS),
    track('Email Link Clicked', T0 + 5 * DAY_MS + 1),
    track('Email Delivered', T0 + 6 * DAY_MS),
  ];

  bothOrders('keep the newest open and click and count those within 30 days', engagement, T0 + 10 * DAY_MS, (view) => {
    expect(view.last_open_at).toBe(T0 + 5 * DAY_MS);
    expect(view.last_click_at).toBe(T0 + 5 * DAY_MS + 1);
    expect(view.opens_30d).toBe(3);
    expect(view.clicks_30d).toBe(2);
    expect(view.emails_delivered).toBe(1);
    expect(view.last_delivered_at).toBe(T0 + 6 * DAY_MS);
  });

  bothOrders('count an open and a click exactly 30 days old', [track('Email Opened', T0), track('Email Link Clicked', T0)], T0 + ENGAGEMENT_WINDOW_MS, (view) => {
    expect(ENGAGEMENT_WINDOW_MS).toBe(30 * DAY_MS);
    expect(view.opens_30d).toBe(1);
    expect(view.clicks_30d).toBe(1);
  });

  bothOrders('drop them 1 ms later', [track('Email Opened', T0), track('Email Link Clicked', T0)], T0 + ENGAGEMENT_WINDOW_MS + 1, (view) => {
    expect(view.opens_30d).toBe(0);
    expect(view.clicks_30d).toBe(0);
    expect(view.last_open_at).toBe(T0);
    expect(view.last_click_at).toBe(T0);
  });

  bothOrders('do not count events after the moment asked about', [track('Email Opened', T0), track('Email Opened', T0 + DAY_MS)], T0 + 1, (view) => {
    expect(view.opens_30d).toBe(1);
  });

  bothOrders('are zero with no engagement', [page(T0)], T0, (view) => {
    expect(view.opens_30d).toBe(0);
    expect(view.clicks_30d).toBe(0);
    expect(view.last_open_at).toBeNull();
  });
});

describe('email_status', () => {
  bothOrders('is ok again when a delivery follows a hard bounce', [track('Email Bounced', T0, { bounce_type: 'hard' }), track('Email Delivered', T0 + 1)], T0 + 2, (view) => {
    expect(view.email_status).toBe('ok');
  });

  bothOrders('becomes bounced on a hard bounce (or one of unknown type), not on a soft one', [track('Email Bounced', T0, { bounce_type: 'soft' }), track('Email Bounced', T0 + 1, { bounce_type: 'hard' })], T0 + 2, (view) => {
    expect(view.email_status).toBe('bounced');
    expect(view.last_bounce_at).toBe(T0 + 1);
  });

  bothOrders('stays ok after only soft bounces', [track('Email Bounced', T0, { bounce_type: 'soft' }), track('Email Bounced', T0 + 1, { bounce_type: 'soft' })], T0 + 2, (view) => {
    expect(view.email_status).toBe('ok');
    expect(view.last_bounce_at).toBe(T0 + 1);
  });

  bothOrders('treats a bounce without a type as hard', [track('Email Bounced', T0)], T0, (view) => expect(view.email_status).toBe('bounced'));

  bothOrders('becomes complained on a spam report', [track('Email Delivered', T0), track('Email Marked as Spam', T0 + 1)], T0 + 2, (view) => {
    expect(view.email_status).toBe('complained');
  });
});

describe('visit_days', () => {
  bothOrders(
    'counts distinct UTC days with a page, screen or Product call',
    [
      page(T0),
      page(T0 + 6 * HOUR),
      screen(T0 + 11 * HOUR + 59 * 60 * 1000), // 23:59 the same UTC day
      track('Product Viewed', T0 + 12 * HOUR), // 00:00 the next day
      track('Products Searched', T0 + DAY_MS + HOUR),
      track('Order Completed', T0 + 2 * DAY_MS, { total: 1 }),
      track('Email Opened', T0 + 3 * DAY_MS),
      page(T0 + 4 * DAY_MS),
    ],
    T0 + 5 * DAY_MS,
    (view) => {
      expect(view.visit_days).toBe(3);
      expect(view.page_views).toBe(4);
    },
  );
});

describe('behavioral tags at their thresholds', () => {
  const browsed = (views: number) => Array.from({ length: views }, (_, i) => viewed('Electronics', T0 + i, `p${i}`));
  bothOrders(`Browsed <Category>: not at ${BROWSED_TAG_MIN_VIEWS - 1} view`, [...browsed(BROWSED_TAG_MIN_VIEWS - 1), viewed('Shoes', T0 + 50)], T0 + 100, (view) => {
    expect(view.behavioral_tags).toEqual([]);
  });
  bothOrders(`Browsed <Category>: at ${BROWSED_TAG_MIN_VIEWS} views, one tag per category`, [...browsed(BROWSED_TAG_MIN_VIEWS), viewed('Shoes', T0 + 50), viewed('Shoes', T0 + 51)], T0 + 100, (view) => {
    expect(view.behavioral_tags).toEqual(['Browsed Electronics', 'Browsed Shoes']);
  });

  const cart = [track('Product Added', T0, { product_id: 'a' }), track('Product Added', T0 + 10, { product_id: 'b' })];
  bothOrders('Cart Abandoner: not 1 ms before the cart is an hour untouched', cart, T0 + 10 + CART_ABANDONED_AFTER_MS - 1, (view) => {
    expect(CART_ABANDONED_AFTER_MS).toBe(HOUR);
    expect(view.behavioral_tags).toEqual([]);
  });
  bothOrders('Cart Abandoner: once the cart is an hour untouched', cart, T0 + 10 + CART_ABANDONED_AFTER_MS, (view) => {
    expect(view.behavioral_tags).toEqual(['Cart Abandoner']);
  });

  bothOrders('Repeat Visitor: not with visits on one day', [page(T0), page(T0 + HOUR)], T0 + 3 * DAY_MS, (view) => {
    expect(view.behavioral_tags).toEqual([]);
  });
  bothOrders('Repeat Visitor: with visits on two days', [page(T0), page(T0 + DAY_MS)], T0 + 3 * DAY_MS, (view) => {
    expect(view.behavioral_tags).toEqual(['Repeat Visitor']);
  });

  bothOrders('Customer: not with no order', [track('Checkout Started', T0)], T0, (view) => expect(view.behavioral_tags).toEqual([]));
  bothOrders('Customer: with one order, but not Repeat Buyer', [track('Checkout Started', T0), track('Order Completed', T0 + 1, { total: 1 })], T0 + 2, (view) => {
    expect(view.behavioral_tags).toEqual(['Customer']);
  });
  bothOrders('Repeat Buyer: with two orders', [track('Order Completed', T0, { total: 1 }), track('Order Completed', T0 + 1, { total: 1 })], T0 + 2, (view) => {
    expect(view.behavioral_tags).toEqual(['Customer', 'Repeat Buyer']);
  });

  bothOrders('Engaged: with an open exactly 30 days ago', [track('Email Delivered', T0 - 1), track('Email Opened', T0)], T0 + ENGAGEMENT_WINDOW_MS, (view) => {
    expect(view.behavioral_tags).toEqual(['Engaged']);
  });
  bothOrders('Engaged: not 1 ms after that', [track('Email Delivered', T0 - 1), track('Email Opened', T0)], T0 + ENGAGEMENT_WINDOW_MS + 1, (view) => {
    expect(view.behavioral_tags).toEqual([]);
  });
  bothOrders('Engaged: a click counts as well as an open', [track('Email Opened', T0), track('Email Link Clicked', T0 + DAY_MS)], T0 + DAY_MS + ENGAGEMENT_WINDOW_MS, (view) => {
    expect(view.behavioral_tags).toEqual(['Engaged']);
  });

  bothOrders(
    'all of them at once, sorted',
    [
      viewed('Shoes', T0),
      viewed('Shoes', T0 + DAY_MS),
      track('Order Completed', T0 + DAY_MS + 1, { total: 1 }),
      track('Order Completed', T0 + DAY_MS + 2, { total: 1 }),
      track('Email Opened', T0 + DAY_MS + 3),
      track('Product Added', T0 + DAY_MS + 4, { product_id: 'a' }),
    ],
    T0 + 2 * DAY_MS,
    (view) => expect(view.behavioral_tags).toEqual(['Browsed Shoes', 'Cart Abandoner', 'Customer', 'Engaged', 'Repeat Buyer', 'Repeat Visitor']),
  );
});

describe('groups', () => {
  bothOrders(
    'keeps the traits of the newest group call per groupId',
    [group('acme', { name: 'Acme', plan: 'free' }, T0), group('globex', { name: 'Globex' }, T0 + 1), group('acme', { name: 'Acme Inc' }, T0 + 2), group('', { name: 'no id' }, T0 + 3)],
    T0 + 4,
    (view) => {
      expect(view.groups).toEqual({ acme: { name: 'Acme Inc' }, globex: { name: 'Globex' } });
      expect(view.behavior_score).toBe(0);
    },
  );
});

describe('machine opens and things done to the customer', () => {
  bothOrders(
    'a privacy-proxy open, a delivery and a bounce are not customer actions and score nothing',
    [page(T0), track('Email Opened', T0 + 10, { machine_open: true }), track('Email Delivered', T0 + 20), track('Email Bounced', T0 + 30, { bounce_type: 'soft' })],
    T0 + 40,
    (view) => {
      expect(view.last_action_date).toBe(T0);
      expect(view.opens_30d).toBe(0);
      expect(view.last_open_at).toBeNull();
      expect(view.behavior_score).toBeCloseTo(PAGE_WEIGHT, 5);
    },
  );
});

describe('the view', () => {
  it('hides the fold state and defaults the fields conditions read', () => {
    const view = behaviorView({}, T0);
    expect(Object.keys(view).filter((k) => k.startsWith('_'))).toEqual([]);
    expect(view).toEqual({
      preferred_category: null,
      category_views: {},
      behavior_score: 0,
      opens_30d: 0,
      clicks_30d: 0,
      orders_count: 0,
      total_spent: 0,
      average_order_value: 0,
      days_since_last_order: null,
      days_since_last_action: null,
      cart: [],
      visit_days: 0,
      product_views: 0,
      page_views: 0,
      emails_delivered: 0,
      last_order_at: null,
      first_order_at: null,
      last_open_at: null,
      last_click_at: null,
      cart_abandonment_time: null,
      last_action_date: null,
      email_status: 'ok',
      behavioral_tags: [],
    });
    const folded = foldAll([viewed('Shoes', T0), track('Email Opened', T0)]);
    expect(Object.keys(behaviorView(folded, T0)).filter((k) => k.startsWith('_'))).toEqual([]);
  });
});

describe('property: the store strategy equals a time-ordered fold', () => {
  const NAMES = [...Object.keys(BEHAVIOR_WEIGHTS), 'Email Delivered', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed', 'Signed Up'];
  const CATEGORIES = ['Shoes', 'Hats', 'Bags'];
  const PRODUCTS = ['p1', 'p2', 'p3'];

  function randomEvent(random: () => number, at: number): BehaviorEvent {
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const kind = random();
    if (kind < 0.08) return page(at, random() < 0.5 ? 'Home' : null);
    if (kind < 0.12) return screen(at);
    if (kind < 0.16) return group(pick(['acme', 'globex']), { seats: Math.floor(random() * 10) }, at);
    if (kind < 0.2) return identify({ plan: pick(['free', 'pro']) }, at);
    const name = pick(NAMES);
    const properties: Record<string, unknown> = {};
    if (random() < 0.8) properties.product_id = pick(PRODUCTS);
    if (random() < 0.7) properties.category = pick(CATEGORIES);
    if (random() < 0.5) properties.quantity = 1 + Math.floor(random() * 3);
    if (random() < 0.5) properties.price = Math.round(random() * 10000) / 100;
    if (name === 'Order Completed') {
      properties.total = Math.round(random() * 50000) / 100;
      properties.products = [{ product_id: pick(PRODUCTS) }, { product_id: pick(PRODUCTS) }];
    }
    if (name === 'Email Bounced') properties.bounce_type = pick(['hard', 'soft']);
    return track(name, at, properties);
  }

  /** Times spread over ~90 days but drawn from few slots, so ties and same-day visits are common. */
  function randomSequence(random: () => number): BehaviorEvent[] {
    const length = 1 + Math.floor(random() * 25);
    return Array.from({ length }, () => randomEvent(random, T0 + Math.floor(random() * 40) * Math.floor(random() * 3 + 1) * 18 * HOUR + Math.floor(random() * 3)));
  }

  function randomBatches(length: number, random: () => number): number[] {
    const sizes: number[] = [];
    for (let left = length; left > 0; ) {
      const size = Math.min(left, 1 + Math.floor(random() * 4));
      sizes.push(size);
      left -= size;
    }
    return sizes;
  }

  it('gives exactly the view of foldAll(time-sorted) for 400 random sequences, arrival orders and batchings', () => {
    const random = seededRandom(20260105);
    let refolds = 0;
    for (let run = 0; run < 400; run++) {
      const arrival = shuffled(randomSequence(random), random);
      const sorted = timeOrder(arrival);
      const expected = foldAll(sorted);
      const now = (sorted.at(-1)?.timestamp ?? T0) + Math.floor(random() * 40 * DAY_MS) - DAY_MS;
      for (const batches of [arrival.map(() => 1), randomBatches(arrival.length, random)]) {
        const actual = storeStrategy(arrival, batches);
        expect({ run, batches, view: behaviorView(actual, now) }).toEqual({ run, batches, view: behaviorView(expected, now) });
        expect(actual).toEqual(expected);
      }
      if (arrival.some((e, i) => i > 0 && e.timestamp < Math.max(...arrival.slice(0, i).map((p) => p.timestamp)))) refolds += 1;
    }
    // The generator must actually exercise late events, or the property says nothing.
    expect(refolds).toBeGreaterThan(200);
  });

  it('does not depend on arrival order at all when no two events share a time', () => {
    const random = seededRandom(7);
    for (let run = 0; run < 200; run++) {
      const events = randomSequence(random).map((e, i) => ({ ...e, timestamp: e.timestamp * 64 + i }));
      const now = Math.max(...events.map((e) => e.timestamp)) + DAY_MS;
      const first = storeStrategy(shuffled(events, random));
      const second = storeStrategy(shuffled(events, random), randomBatches(events.length, random));
      expect({ run, view: behaviorView(second, now) }).toEqual({ run, view: behaviorView(first, now) });
      expect(first).toEqual(foldAll(timeOrder(events)));
    }
  });
});

describe('nextTimeChange: when a time-relative field changes with no new event', () => {
  const HOUR_MS = 3_600_000;
  test('the cart-abandoner tag at exactly an hour after the cart was last touched; engaged and the 30-day counts a millisecond after 30 days', () => {
    const t = Date.UTC(2026, 0, 1);
    const computed = { cart_abandonment_time: t, last_open_at: t - DAY_MS, _recent_opens: [t - 2 * DAY_MS, t - DAY_MS], _recent_clicks: [] };
    expect(nextTimeChange(computed, 'behavioral_tags', t)).toBe(t + HOUR_MS);
    expect(behavioralTags(computed, t + HOUR_MS - 1)).not.toContain('Cart Abandoner');
    expect(behavioralTags(computed, t + HOUR_MS)).toContain('Cart Abandoner');
    // After the tag came: the next change is the engaged tag leaving.
    const engagedEnds = t - DAY_MS + 30 * DAY_MS + 1;
    expect(nextTimeChange(computed, 'behavioral_tags', t + HOUR_MS)).toBe(engagedEnds);
    expect(behavioralTags(computed, engagedEnds - 1)).toContain('Engaged');
    expect(behavioralTags(computed, engagedEnds)).not.toContain('Engaged');
    const firstOpenLeaves = t - 2 * DAY_MS + 30 * DAY_MS + 1;
    expect(nextTimeChange(computed, 'opens_30d', t)).toBe(firstOpenLeaves);
    expect(behaviorView(computed, firstOpenLeaves - 1).opens_30d).toBe(2);
    expect(behaviorView(computed, firstOpenLeaves).opens_30d).toBe(1);
    expect(nextTimeChange(computed, 'clicks_30d', t)).toBeNull();
    expect(nextTimeChange({}, 'behavioral_tags', t)).toBeNull();
  });
});
