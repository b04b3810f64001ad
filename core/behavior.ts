// The profile fields computed from behavior (views, cart, orders, email engagement): a fold over a customer's
// events in time order, and the time-relative view of it (score decay, 30-day windows, behavioral tags) at a
// given moment. Pure. The store folds each new event in; an event older than what was already folded (a late
// or backfilled one) makes the store refold the customer's events in time order, so the fields never depend
// on arrival order.
import type { EventType } from './event';

export interface CartItem {
  product_id: string;
  name?: string;
  price?: number;
  quantity: number;
  image_url?: string;
  url?: string;
  category?: string;
}

/** The part of an event the fold reads. */
export interface BehaviorEvent {
  type: EventType;
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  /** epoch ms: the event's own (corrected) time */
  timestamp: number;
}

/**
 * Stored computed fields. Plain JSON. Fields without a leading underscore are what conditions and templates read
 * (through `behaviorView`, which adds the time-relative ones); `_`-prefixed fields are the fold's own state.
 */
export type Computed = Record<string, unknown>;

/** Event types whose order matters to the fold; identify (traits, consent) and alias merge by time instead. */
export const BEHAVIOR_EVENT_TYPES: readonly EventType[] = ['track', 'page', 'screen', 'group'];

export const DAY_MS = 24 * 60 * 60 * 1000;
/** Email engagement counts (`opens_30d`, `clicks_30d`) look back this far. */
export const ENGAGEMENT_WINDOW_MS = 30 * DAY_MS;
/** A non-empty cart untouched this long makes its owner a "Cart Abandoner". */
export const CART_ABANDONED_AFTER_MS = 60 * 60 * 1000;
/** A category viewed at least this often earns the "Browsed <category>" tag. */
export const BROWSED_TAG_MIN_VIEWS = 2;

/**
 * behavior_score: each event adds its weight, and every contribution halves every BEHAVIOR_SCORE_HALF_LIFE_MS.
 * So a purchase today scores 10, a purchase two weeks ago 5, and a customer who stops doing anything drifts to 0.
 * Event names not listed score nothing; page and screen calls score PAGE_WEIGHT.
 */
export const BEHAVIOR_WEIGHTS: Readonly<Record<string, number>> = {
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
};
export const PAGE_WEIGHT = 0.5;
export const BEHAVIOR_SCORE_HALF_LIFE_MS = 14 * DAY_MS;
/** The recent open/click times kept for the 30-day counts; beyond this many, the oldest are dropped. */
const MAX_RECENT_ENGAGEMENTS = 500;

function asString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
}

function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function asRecord<T>(value: unknown): Record<string, T> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, T>) : {};
}

function asTimes(value: unknown): number[] {
  return Array.isArray(value) ? value.filter((v): v is number => typeof v === 'number') : [];
}

function cartItemFrom(properties: Record<string, unknown>): CartItem | undefined {
  const productId = asString(properties.product_id) ?? asString(properties.sku);
  if (!productId) return undefined;
  const item: CartItem = { product_id: productId, quantity: asNumber(properties.quantity) ?? 1 };
  const name = asString(properties.name);
  if (name !== undefined) item.name = name;
  const price = asNumber(properties.price);
  if (price !== undefined) item.price = price;
  const image = asString(properties.image_url);
  if (image !== undefined) item.image_url = image;
  const url = asString(properties.url);
  if (url !== undefined) item.url = url;
  const category = asString(properties.category);
  if (category !== undefined) item.category = category;
  return item;
}

/** An open the ESP flagged as fetched by a machine (Apple Mail Privacy Protection, scanners), not read by a person. */
export function isMachineOpen(event: Pick<BehaviorEvent, 'name'> & { properties?: Record<string, unknown> }): boolean {
  return event.name === 'Email Opened' && event.properties?.machine_open === true;
}

/** The engine's own record of segment changes: about the customer, not by them; they fold into nothing. */
const SEGMENT_CHANGES = new Set(['Segment Entered', 'Segment Exited']);
/** Events that report something done to the customer (a delivery, a bounce), by a machine, or about them (a segment change) are not their actions. */
const NOT_CUSTOMER_ACTIONS = new Set(['Email Delivered', 'Email Bounced', ...SEGMENT_CHANGES]);

/** Whether the fold reads the event: behavior types, except the segment changes (so recording one late never refolds). */
export function isFolded(event: Pick<BehaviorEvent, 'type' | 'name'>): boolean {
  return BEHAVIOR_EVENT_TYPES.includes(event.type) && !(event.type === 'track' && event.name !== null && SEGMENT_CHANGES.has(event.name));
}

/** Whether the event is something the customer did: what last_action_date and inactivity measure. */
export function isCustomerAction(event: Pick<BehaviorEvent, 'type' | 'name' | 'properties'>): boolean {
  if (event.type === 'group') return false;
  if (event.type !== 'track') return true;
  return event.name === null || (!NOT_CUSTOMER_ACTIONS.has(event.name) && !isMachineOpen(event));
}

/** The weight an event adds to behavior_score. */
export function behaviorWeight(event: Pick<BehaviorEvent, 'type' | 'name'> & { properties?: Record<string, unknown> }): number {
  if (event.type === 'page' || event.type === 'screen') return PAGE_WEIGHT;
  if (event.type !== 'track' || event.name === null || isMachineOpen(event)) return 0;
  return BEHAVIOR_WEIGHTS[event.name] ?? 0;
}

/** Decays a score known at `from` to `to` (to >= from). */
function decay(score: number, from: number, to: number): number {
  return to <= from ? score : score * Math.pow(0.5, (to - from) / BEHAVIOR_SCORE_HALF_LIFE_MS);
}

function utcDay(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

function setCart(c: Computed, cart: CartItem[], at: number): void {
  c.cart = cart;
  c.cart_updated_at = at;
  c.cart_abandonment_time = cart.length > 0 ? at : null;
}

function foldTrack(c: Computed, event: BehaviorEvent): void {
  const props = event.properties;
  switch (event.name) {
    case 'Product Viewed': {
      const category = asString(props.category);
      if (category) {
        c.last_browsed_category = category;
        const views = asRecord<{ count: number; last: number }>(c._category_views);
        const previous = views[category];
        views[category] = { count: (previous?.count ?? 0) + 1, last: event.timestamp };
        c._category_views = views;
      }
      const product = cartItemFrom(props);
      if (product) c.last_viewed_product = product;
      c.product_views = (asNumber(c.product_views) ?? 0) + 1;
      break;
    }
    case 'Product Added': {
      const item = cartItemFrom(props);
      if (!item) break;
      const current = (c.cart as CartItem[] | undefined) ?? [];
      const previous = current.find((i) => i.product_id === item.product_id);
      // Adding more of a product keeps what was known of it (name, image, price) unless this event says otherwise.
      const merged = { ...previous, ...item, quantity: (previous?.quantity ?? 0) + item.quantity };
      setCart(c, [...current.filter((i) => i.product_id !== item.product_id), merged], event.timestamp);
      break;
    }
    case 'Product Removed': {
      const productId = asString(props.product_id) ?? asString(props.sku);
      setCart(c, ((c.cart as CartItem[] | undefined) ?? []).filter((i) => i.product_id !== productId), event.timestamp);
      break;
    }
    case 'Order Completed': {
      setCart(c, [], event.timestamp);
      c.last_order_at = event.timestamp;
      c.first_order_at ??= event.timestamp;
      c.orders_count = (asNumber(c.orders_count) ?? 0) + 1;
      c.total_spent = (asNumber(c.total_spent) ?? 0) + (asNumber(props.total) ?? asNumber(props.revenue) ?? 0);
      const products = Array.isArray(props.products) ? props.products : [];
      c.last_order_products = products
        .map((p) => (p && typeof p === 'object' ? cartItemFrom(p as Record<string, unknown>) : undefined))
        .filter((p): p is CartItem => p !== undefined);
      const purchased = new Set<string>((c.purchased_product_ids as string[] | undefined) ?? []);
      for (const p of c.last_order_products as CartItem[]) purchased.add(p.product_id);
      c.purchased_product_ids = [...purchased].sort();
      break;
    }
    case 'Email Delivered':
      c.emails_delivered = (asNumber(c.emails_delivered) ?? 0) + 1;
      c.last_delivered_at = event.timestamp;
      // A delivery after a bounce means the address works again (a complaint stays until consent changes).
      if (c.email_status === 'bounced') c.email_status = 'ok';
      break;
    case 'Email Opened':
      // Opens fetched by a mail provider's privacy proxy (Apple Mail Privacy Protection) say nothing about the reader.
      if (isMachineOpen(event)) break;
      c.last_open_at = event.timestamp;
      c._recent_opens = [...asTimes(c._recent_opens), event.timestamp].slice(-MAX_RECENT_ENGAGEMENTS);
      break;
    case 'Email Link Clicked':
      c.last_click_at = event.timestamp;
      c._recent_clicks = [...asTimes(c._recent_clicks), event.timestamp].slice(-MAX_RECENT_ENGAGEMENTS);
      break;
    case 'Email Bounced':
      c.last_bounce_at = event.timestamp;
      if (props.bounce_type !== 'soft') c.email_status = 'bounced';
      break;
    case 'Email Marked as Spam':
      c.email_status = 'complained';
      break;
    default:
      break;
  }
}

/**
 * Folds one event into the computed fields, returning new ones (the input is not modified). Events must come in
 * time order; `needsRefold` says when one does not.
 */
export function foldBehavior(computed: Computed, event: BehaviorEvent): Computed {
  const c = JSON.parse(JSON.stringify(computed)) as Computed;
  foldBehaviorInto(c, event);
  return c;
}

/** foldBehavior that changes `c` in place: for callers that fold many events into a copy they own. */
export function foldBehaviorInto(c: Computed, event: BehaviorEvent): void {
  if (!isFolded(event)) return;
  if (event.type === 'track') foldTrack(c, event);
  if (event.type === 'page' || event.type === 'screen') c.page_views = (asNumber(c.page_views) ?? 0) + 1;
  if (event.type === 'group') {
    const groupId = asString(event.properties.groupId);
    if (groupId) c.groups = { ...asRecord(c.groups), [groupId]: event.traits };
  }

  const isVisit = event.type === 'page' || event.type === 'screen' || (event.type === 'track' && event.name !== null && event.name.startsWith('Product'));
  if (isVisit && utcDay(event.timestamp) !== c._last_visit_day) {
    c._last_visit_day = utcDay(event.timestamp);
    c.visit_days = (asNumber(c.visit_days) ?? 0) + 1;
  }

  const weight = behaviorWeight(event);
  if (weight > 0) {
    const at = asNumber(c._behavior_score_at) ?? event.timestamp;
    const base = asNumber(c._behavior_score) ?? 0;
    const now = Math.max(at, event.timestamp);
    c._behavior_score = decay(base, at, now) + decay(weight, event.timestamp, now);
    c._behavior_score_at = now;
  }

  if (isCustomerAction(event)) {
    const last = asNumber(c.last_action_date);
    if (last === undefined || event.timestamp > last) c.last_action_date = event.timestamp;
  }
  const through = asNumber(c._folded_through);
  if (through === undefined || event.timestamp > through) c._folded_through = event.timestamp;
}

/** True when `event` is older than something already folded: the store must then refold in time order. */
export function needsRefold(computed: Computed, event: Pick<BehaviorEvent, 'type' | 'name' | 'timestamp'>): boolean {
  if (!isFolded(event)) return false;
  const through = asNumber(computed._folded_through);
  return through !== undefined && event.timestamp < through;
}

/**
 * Folds events that are already in time order (ties in arrival order) from nothing, or from `base`: what the
 * customer's purged events folded into (event retention), all of them older than these. `base` is not modified.
 */
export function foldAll(events: BehaviorEvent[], base?: Computed | null): Computed {
  const computed: Computed = base ? (JSON.parse(JSON.stringify(base)) as Computed) : {};
  for (const event of events) foldBehaviorInto(computed, event);
  return computed;
}

function preferredCategory(views: Record<string, { count: number; last: number }>): string | null {
  let best: [string, { count: number; last: number }] | undefined;
  for (const entry of Object.entries(views)) {
    const [name, v] = entry;
    if (!best || v.count > best[1].count || (v.count === best[1].count && (v.last > best[1].last || (v.last === best[1].last && name < best[0])))) best = entry;
  }
  return best ? best[0] : null;
}

/** The behavioral tags the computed fields earn at `now`, sorted. */
export function behavioralTags(computed: Computed, now: number): string[] {
  const tags: string[] = [];
  const views = asRecord<{ count: number; last: number }>(computed._category_views);
  for (const [category, v] of Object.entries(views)) if (v.count >= BROWSED_TAG_MIN_VIEWS) tags.push(`Browsed ${category}`);
  const abandonedSince = asNumber(computed.cart_abandonment_time);
  if (abandonedSince !== undefined && now - abandonedSince >= CART_ABANDONED_AFTER_MS) tags.push('Cart Abandoner');
  if ((asNumber(computed.visit_days) ?? 0) >= 2) tags.push('Repeat Visitor');
  const orders = asNumber(computed.orders_count) ?? 0;
  if (orders >= 1) tags.push('Customer');
  if (orders >= 2) tags.push('Repeat Buyer');
  const lastEngaged = Math.max(asNumber(computed.last_open_at) ?? -Infinity, asNumber(computed.last_click_at) ?? -Infinity);
  if (now - lastEngaged <= ENGAGEMENT_WINDOW_MS) tags.push('Engaged');
  return tags.sort();
}

/**
 * The view fields that change with time alone and whose next change can be known exactly, with that moment after
 * `now` (null: not without a new event): the cart-abandoner and engaged tags, the 30-day open and click counts.
 * behavior_score decays continuously and is not among them.
 */
export const EXACT_TIME_FIELDS = ['behavioral_tags', 'opens_30d', 'clicks_30d'] as const;

export function nextTimeChange(computed: Computed, field: (typeof EXACT_TIME_FIELDS)[number], now: number): number | null {
  const after = (t: number | undefined) => (t !== undefined && t > now ? t : null);
  const earliest = (...times: Array<number | null>) => times.reduce<number | null>((a, t) => (t === null ? a : a === null ? t : Math.min(a, t)), null);
  // An open at t counts while now - t <= 30 days: it stops counting at t + 30d + 1 ms.
  const leaves = (times: number[]) => earliest(...times.filter((t) => t <= now).map((t) => after(t + ENGAGEMENT_WINDOW_MS + 1)));
  if (field === 'opens_30d') return leaves(asTimes(computed._recent_opens));
  if (field === 'clicks_30d') return leaves(asTimes(computed._recent_clicks));
  const abandonedSince = asNumber(computed.cart_abandonment_time);
  const lastEngaged = Math.max(asNumber(computed.last_open_at) ?? -Infinity, asNumber(computed.last_click_at) ?? -Infinity);
  return earliest(
    abandonedSince === undefined ? null : after(abandonedSince + CART_ABANDONED_AFTER_MS),
    Number.isFinite(lastEngaged) ? after(lastEngaged + ENGAGEMENT_WINDOW_MS + 1) : null,
  );
}

/** Inclusive at both ends, like the "Engaged" tag: an open exactly 30 days ago still counts. */
function countSince(times: number[], since: number, until: number): number {
  return times.filter((t) => t >= since && t <= until).length;
}

/**
 * What conditions, templates and the API read at `now`: the stored fields without the fold's own state, plus
 * preferred_category, behavior_score decayed to now, opens_30d / clicks_30d, RFM inputs and behavioral tags.
 */
export function behaviorView(computed: Computed, now: number): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(computed)) if (!key.startsWith('_')) view[key] = value;
  view.preferred_category = preferredCategory(asRecord(computed._category_views));
  view.category_views = Object.fromEntries(Object.entries(asRecord<{ count: number }>(computed._category_views)).map(([k, v]) => [k, v.count]));
  const scoreAt = asNumber(computed._behavior_score_at);
  const score = scoreAt === undefined ? 0 : decay(asNumber(computed._behavior_score) ?? 0, scoreAt, Math.max(now, scoreAt));
  view.behavior_score = Math.round(score * 100) / 100;
  view.opens_30d = countSince(asTimes(computed._recent_opens), now - ENGAGEMENT_WINDOW_MS, now);
  view.clicks_30d = countSince(asTimes(computed._recent_clicks), now - ENGAGEMENT_WINDOW_MS, now);
  view.orders_count = asNumber(computed.orders_count) ?? 0;
  view.total_spent = asNumber(computed.total_spent) ?? 0;
  view.average_order_value = view.orders_count ? Math.round(((view.total_spent as number) / (view.orders_count as number)) * 100) / 100 : 0;
  const lastOrder = asNumber(computed.last_order_at);
  view.days_since_last_order = lastOrder === undefined ? null : Math.floor((now - lastOrder) / DAY_MS);
  const lastAction = asNumber(computed.last_action_date);
  view.days_since_last_action = lastAction === undefined ? null : Math.floor((now - lastAction) / DAY_MS);
  view.cart = (computed.cart as CartItem[] | undefined) ?? [];
  // Absent means "never": a number a condition can compare (visit_days < 2 holds for a new profile), or null.
  for (const counter of ['visit_days', 'product_views', 'page_views', 'emails_delivered']) view[counter] = asNumber(computed[counter]) ?? 0;
  for (const time of ['last_order_at', 'first_order_at', 'last_open_at', 'last_click_at', 'cart_abandonment_time', 'last_action_date']) view[time] = asNumber(computed[time]) ?? null;
  view.email_status = typeof computed.email_status === 'string' ? computed.email_status : 'ok';
  view.behavioral_tags = behavioralTags(computed, now);
  return view;
}
