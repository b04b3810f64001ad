// What a customer's behavioral tracking consent governs: which events are behavioral (not stored without consent),
// which computed fields they feed (cleared when consent is withdrawn), which segments read them (no membership
// without consent), and the consent trail's rows (every change of any consent kind). Pure: the store applies these
// inside the event's transaction, the segment engine and the send activity read them.
import type { Computed } from './behavior';
import { fieldsRead } from './conditions';
import type { EventType } from './event';
import type { ConsentRecord, Profile } from './profile';
import { SEGMENT_ENTERED, SEGMENT_EXITED, type SegmentSpec } from './segment-membership';
import { segmentReferences, type SegmentRule } from './segment-rules';

/** The consent kind this module is about (core/profile CONSENT_KINDS). */
export const TRACKING_CONSENT = 'behavioral_tracking';

/**
 * Track events that are not behavioral: transactions (an order is a purchase the customer made, needed for the
 * order email and its accounting), consent and preference changes, deliverability reports (a bounce or complaint
 * must keep stopping mail) and the engine's own segment changes. Every other track event — the ecommerce browsing
 * events, email opens and clicks, and any custom event — records behavior and is dropped without consent.
 */
export const NON_BEHAVIORAL_TRACK_EVENTS: readonly string[] = [
  'Order Completed',
  'Order Updated',
  'Order Refunded',
  'Order Cancelled',
  'Unsubscribed',
  'Preferences Updated',
  'Email Delivered',
  'Email Bounced',
  'Email Marked as Spam',
  SEGMENT_ENTERED,
  SEGMENT_EXITED,
];

const NON_BEHAVIORAL = new Set(NON_BEHAVIORAL_TRACK_EVENTS);

/** Call types that never record behavior: who the customer is (identify, alias) and what account they belong to. */
const NON_BEHAVIORAL_TYPES: ReadonlySet<EventType> = new Set<EventType>(['identify', 'alias', 'group']);

/**
 * Whether an event records the customer's browsing or engagement: page and screen calls, and every track event not
 * in NON_BEHAVIORAL_TRACK_EVENTS (custom events included: a name microflows does not know could record anything,
 * so it needs consent like the rest).
 */
export function isBehavioralEvent(event: { type: EventType; name: string | null }): boolean {
  if (NON_BEHAVIORAL_TYPES.has(event.type)) return false;
  if (event.type === 'track') return event.name === null || !NON_BEHAVIORAL.has(event.name);
  return true;
}

/** Whether the customer's behavior may be recorded: their behavioral_tracking consent, or the default when they gave none. */
export function trackingAllowed(profile: Pick<Profile, 'consent'> | undefined, defaultGranted: boolean): boolean {
  return profile?.consent[TRACKING_CONSENT]?.granted ?? defaultGranted;
}

/**
 * The stored computed fields (core/behavior) that only behavioral events feed, with the fold's own state behind
 * them: the cart, viewed products and categories, page views and visits, the behavior score, email opens and
 * clicks. Order totals and dates, delivery counts, email_status, groups and the last action date stay: kept events
 * (orders, deliveries, bounces) fold into them.
 */
export const BEHAVIORAL_COMPUTED_FIELDS: readonly string[] = [
  'cart',
  'cart_updated_at',
  'cart_abandonment_time',
  'last_browsed_category',
  '_category_views',
  'last_viewed_product',
  'product_views',
  'page_views',
  'visit_days',
  '_last_visit_day',
  '_behavior_score',
  '_behavior_score_at',
  'last_open_at',
  '_recent_opens',
  'last_click_at',
  '_recent_clicks',
];

/**
 * The profile view fields (core/behavior behaviorView) that come from behavioral events: what a condition reads
 * as `profile.<field>`. With the stored fields cleared they read as "never" (0, [], null), so a rule on them would
 * say something untrue about a customer without tracking: segments on them give such a customer no membership.
 */
export const BEHAVIORAL_VIEW_FIELDS: readonly string[] = [
  'cart',
  'cart_updated_at',
  'cart_abandonment_time',
  'last_browsed_category',
  'last_viewed_product',
  'product_views',
  'page_views',
  'visit_days',
  'last_open_at',
  'last_click_at',
  'behavior_score',
  'preferred_category',
  'category_views',
  'opens_30d',
  'clicks_30d',
  'behavioral_tags',
];

const BEHAVIORAL_VIEW = new Set(BEHAVIORAL_VIEW_FIELDS);

/** The computed fields without the behavioral ones (a copy; the input is not changed). Behavioral tags go with them. */
export function withoutBehavioralFields(computed: Computed): Computed {
  const kept: Computed = {};
  for (const [key, value] of Object.entries(computed)) if (!BEHAVIORAL_COMPUTED_FIELDS.includes(key)) kept[key] = value;
  return kept;
}

/** Whether a condition path (`profile.cart`, `profile.behavior_score`, `profile.cart.0.price`) reads a behavioral field. */
export function isBehavioralPath(path: string): boolean {
  const [root, field] = path.split('.');
  return root === 'profile' && field !== undefined && BEHAVIORAL_VIEW.has(field);
}

/** Whether the rule itself (not counting the segments it names) reads behavioral events or fields. */
function readsBehavior(rule: SegmentRule): boolean {
  switch (rule.kind) {
    case 'performed':
    case 'last_performed':
      return isBehavioralEvent({ type: 'track', name: rule.match.event });
    case 'profile':
      return fieldsRead(rule.condition).some(isBehavioralPath);
    case 'not':
      return readsBehavior(rule.rule);
    case 'all':
    case 'any':
      return rule.rules.some(readsBehavior);
    default:
      // rfm reads order totals and dates; in_segment is followed by behavioralSegmentIds.
      return false;
  }
}

/**
 * The behavioral segments: those whose rules read behavioral events or fields, and those that name one (in_segment,
 * also under `not`: "not a cart abandoner" says as much about behavior as "a cart abandoner").
 */
export function behavioralSegmentIds(segments: readonly SegmentSpec[]): Set<string> {
  const behavioral = new Set(segments.filter((s) => readsBehavior(s.rule)).map((s) => s.id));
  for (let grew = true; grew; ) {
    grew = false;
    for (const segment of segments) {
      if (behavioral.has(segment.id) || !segmentReferences(segment.rule).some((id) => behavioral.has(id))) continue;
      behavioral.add(segment.id);
      grew = true;
    }
  }
  return behavioral;
}

/** One row of the consent trail. */
export interface ConsentChange {
  customerId: string;
  /** email_marketing, behavioral_tracking, topic:<id> */
  kind: string;
  granted: boolean;
  /** api (an identify call), unsubscribe, preference_center, import, admin */
  source: string;
  /** The change's own time (its event's), epoch ms. */
  at: number;
  /** When the store recorded it, epoch ms. */
  recordedAt: number;
  /** The event that made the change; null when none did (a merge of two customers' consent). */
  eventMessageId: string | null;
}

/** The trail names an identify call's consent by where it came from, the API; other sources are kept as recorded. */
export function trailSource(recordSource: string): string {
  return recordSource === 'identify' ? 'api' : recordSource;
}

/**
 * The trail rows for the consent of one customer before and after their events were folded: one per kind whose
 * value changed (or was given for the first time). A repeated grant (clients often send consent on every identify)
 * is no change and writes no row. `eventAt` names the event whose time a record carries.
 */
export function consentChanges(
  customerId: string,
  before: Readonly<Record<string, ConsentRecord>>,
  after: Readonly<Record<string, ConsentRecord>>,
  recordedAt: number,
  eventAt: (at: number) => string | null,
): ConsentChange[] {
  const changes: ConsentChange[] = [];
  for (const kind of Object.keys(after).sort()) {
    const record = after[kind]!;
    const previous = before[kind];
    if (previous !== undefined && previous.granted === record.granted) continue;
    changes.push({ customerId, kind, granted: record.granted, source: trailSource(record.source), at: record.at, recordedAt, eventMessageId: eventAt(record.at) });
  }
  return changes;
}

/**
 * Whether folding took the customer's tracking away: allowed before and not after, or refused explicitly for the
 * first time (a customer with no record under a "denied" default may have been tracked while the default was
 * "granted"). A refusal repeated on every identify is no withdrawal: there is nothing left to clear.
 */
export function trackingWithdrawn(before: Pick<Profile, 'consent'>, after: Pick<Profile, 'consent'>, defaultGranted: boolean): boolean {
  if (trackingAllowed(after, defaultGranted)) return false;
  return trackingAllowed(before, defaultGranted) || (before.consent[TRACKING_CONSENT] === undefined && after.consent[TRACKING_CONSENT] !== undefined);
}
