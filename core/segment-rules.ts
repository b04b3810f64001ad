// Segment rules and their evaluation for one customer: whether the customer is in, and the earliest moment their
// membership can change with no new event (a counted event leaving its window, a "no purchase in 60 days" coming
// true). The store indexes customers by that moment, so a sweep touches only the customers whose time has come.
// Pure: the customer's events, profile view and RFM scores come in as facts; "now" is a parameter.
import { cachedTester, valueAtPath, type Condition } from './conditions';
import { DAY_MS, type EXACT_TIME_FIELDS } from './behavior';
import type { EventMatcher } from './flow-types';
import type { RfmScores } from './rfm';
import { eventMatches } from './triggers';

/** How many times, as authors write it: at_least 3, at_most 2, exactly 1. */
export type CountTest = { at_least: number } | { at_most: number } | { exactly: number };

/** Which events a rule counts: a name, and a condition on `event.*` — the same matcher flow triggers use. */
export type EventMatch = EventMatcher;

export type SegmentRule =
  | { kind: 'performed'; match: EventMatch; count: CountTest; within?: number; since?: number; same?: string }
  | { kind: 'last_performed'; match: EventMatch; before?: number; after?: number }
  | { kind: 'profile'; condition: Condition }
  | { kind: 'rfm'; condition: Condition }
  | { kind: 'in_segment'; segment: string }
  | { kind: 'all'; rules: SegmentRule[] }
  | { kind: 'any'; rules: SegmentRule[] }
  | { kind: 'not'; rule: SegmentRule };

/** A customer's event as rules read it. */
export interface FactEvent {
  name: string | null;
  properties: Record<string, unknown>;
  /** epoch ms, the event's own (corrected) time */
  timestamp: number;
}

/** What a rule is evaluated against, all as of `now`. */
export interface CustomerFacts {
  /** profileContext(profile, now): profile.* and consent.* */
  view: { profile: Record<string, unknown>; consent: Record<string, unknown> };
  /** The customer's track events, any order; at least those newer than the segment's longest window. */
  events: readonly FactEvent[];
  rfm: RfmScores | null;
  /** Membership of another segment, as of now. */
  inSegment: (segmentId: string) => boolean;
  /**
   * When a time-relative profile field (core/behavior EXACT_TIME_FIELDS) next changes with no new event; without
   * it, a rule on such a field is rechecked every CONTINUOUS_RECHECK_MS.
   */
  timeChange?: (field: (typeof EXACT_TIME_FIELDS)[number]) => number | null;
  /** When another segment's membership can next change (for rules that use it). */
  segmentNextChange: (segmentId: string) => Pick<Evaluation, 'nextChange' | 'exactChange'>;
}

export interface Evaluation {
  member: boolean;
  /** The earliest time after `now` at which `member` can change with no new event; null: not before one. */
  nextChange: number | null;
  /**
   * Like nextChange, but only the moments known exactly (a window closing, a day counter ticking), not the hourly
   * recheck of continuously decaying fields: a late evaluation steps through these to date each change.
   */
  exactChange: number | null;
}

/** Profile view fields that move with time alone, and how long a verdict on them holds at most. */
const DAY_COUNTERS = ['days_since_last_order', 'days_since_last_action'];
/** Fields whose next change is known exactly when the facts say (`timeChange`); `tags` includes the behavioral ones. */
const TIMED_FIELDS: Record<string, (typeof EXACT_TIME_FIELDS)[number]> = { behavioral_tags: 'behavioral_tags', tags: 'behavioral_tags', opens_30d: 'opens_30d', clicks_30d: 'clicks_30d' };
/** Decays continuously: a condition on it is rechecked. */
const CONTINUOUS_FIELDS = ['behavior_score'];
/** A condition on a field that decays continuously is checked again this often: the lag the sweep documents. */
export const CONTINUOUS_RECHECK_MS = 60 * 60 * 1000;

function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

function holds(count: number, test: CountTest): boolean {
  if ('at_least' in test) return count >= test.at_least;
  if ('at_most' in test) return count <= test.at_most;
  return count === test.exactly;
}

/**
 * `performed` over one group of matching events, counted in the window (now − within, now]: an event at t counts
 * until t + within, exclusive — "within 7d" holds an event for exactly 7 days. As time passes the count only falls,
 * one event at a time, at each counted event's t + within; the verdict can change only where the count crosses
 * the test's threshold.
 */
function performedInGroup(times: number[], rule: Extract<SegmentRule, { kind: 'performed' }>, now: number): Evaluation {
  const counted = times.filter((t) => t <= now && (rule.within === undefined ? rule.since === undefined || t >= rule.since : t > now - rule.within)).sort((a, b) => a - b);
  const member = holds(counted.length, rule.count);
  if (rule.within === undefined) return { member, nextChange: null, exactChange: null };
  // The count after the k oldest counted events have left (at counted[k-1] + within).
  let nextChange: number | null = null;
  for (let k = 1; k <= counted.length; k++) {
    if (holds(counted.length - k, rule.count) !== member) {
      nextChange = counted[k - 1]! + rule.within;
      break;
    }
  }
  return { member, nextChange, exactChange: nextChange };
}

function evaluatePerformed(rule: Extract<SegmentRule, { kind: 'performed' }>, facts: CustomerFacts, now: number): Evaluation {
  const events = facts.events.filter((e) => eventMatches(rule.match, e));
  if (rule.same === undefined) return performedInGroup(events.map((e) => e.timestamp), rule, now);
  // "3 views in one category": in when some group passes; the verdict changes when the first group flips.
  const groups = new Map<string, number[]>();
  for (const event of events) {
    const key = valueAtPath({ properties: event.properties }, rule.same);
    if (key === undefined || key === null || key === '') continue;
    const name = typeof key === 'string' ? key.trim().toLowerCase() : JSON.stringify(key);
    const list = groups.get(name) ?? [];
    list.push(event.timestamp);
    groups.set(name, list);
  }
  const verdicts = [...groups.values()].map((times) => performedInGroup(times, rule, now));
  const member = 'at_least' in rule.count && rule.count.at_least > 0 ? verdicts.some((v) => v.member) : verdicts.every((v) => v.member);
  // Conservative: the earliest change of any group (the verdict cannot change before it).
  const nextChange = verdicts.reduce<number | null>((at, v) => earliest(at, v.nextChange), null);
  return { member, nextChange, exactChange: nextChange };
}

function evaluateLastPerformed(rule: Extract<SegmentRule, { kind: 'last_performed' }>, facts: CustomerFacts, now: number): Evaluation {
  const last = facts.events.filter((e) => eventMatches(rule.match, e) && e.timestamp <= now).reduce<number | null>((at, e) => (at === null || e.timestamp > at ? e.timestamp : at), null);
  if (last === null) return { member: false, nextChange: null, exactChange: null };
  // before D: the last one is at least D old (from last + D on); after D: it is less than D old (until last + D).
  const beforeOk = rule.before === undefined || now >= last + rule.before;
  const afterOk = rule.after === undefined || now < last + rule.after;
  let nextChange: number | null = null;
  if (rule.before !== undefined && !beforeOk) nextChange = earliest(nextChange, last + rule.before);
  if (rule.after !== undefined && afterOk) nextChange = earliest(nextChange, last + rule.after);
  return { member: beforeOk && afterOk, nextChange, exactChange: nextChange };
}

/** When a profile condition may next change with time: day counters tick at day boundaries (exact), decaying fields are rechecked. */
/** Which time-relative fields a condition reads, found once per condition object. */
interface TimeFieldsRead {
  continuous: boolean;
  timed: Array<(typeof EXACT_TIME_FIELDS)[number]>;
  dayCounters: string[];
}
const timeFieldsOfCondition = new WeakMap<Condition, TimeFieldsRead>();

function timeFieldsRead(condition: Condition): TimeFieldsRead {
  let read = timeFieldsOfCondition.get(condition);
  if (!read) {
    const text = JSON.stringify(condition);
    read = {
      continuous: CONTINUOUS_FIELDS.some((field) => text.includes(`"profile.${field}"`)),
      timed: [...new Set(Object.entries(TIMED_FIELDS).filter(([field]) => text.includes(`"profile.${field}"`)).map(([, timed]) => timed))],
      dayCounters: DAY_COUNTERS.filter((field) => text.includes(`"profile.${field}"`)),
    };
    timeFieldsOfCondition.set(condition, read);
  }
  return read;
}

/** How far ahead a day-counter condition is scanned for its next verdict change; beyond, it is checked again then. */
export const DAY_SCAN_DAYS = 120;
const ANCHORS: Record<string, string> = { days_since_last_order: 'last_order_at', days_since_last_action: 'last_action_date' };

/**
 * How a condition's verdict can move as day counters grow (other fields held): "up" (false → true only, e.g. gte),
 * "down" (true → false only, e.g. lt), or "both" (anything else: scanned day by day).
 */
function dayCounterDirection(condition: Condition): 'up' | 'down' | 'both' {
  const text = JSON.stringify(condition);
  if (/"(not|nor)"/.test(text)) return 'both';
  const operators = new Set<string>();
  const visit = (node: unknown, key: string | null): void => {
    if (Array.isArray(node)) return node.forEach((n) => visit(n, key));
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k in ANCHORS || k.replace(/^profile\./, '') in ANCHORS) {
        if (v && typeof v === 'object' && !Array.isArray(v)) Object.keys(v).forEach((op) => operators.add(op));
        else operators.add('eq');
      } else visit(v, k);
    }
  };
  visit(condition, null);
  if ([...operators].every((op) => op === 'gte' || op === 'gt')) return 'up';
  if ([...operators].every((op) => op === 'lte' || op === 'lt')) return 'down';
  return 'both';
}
const directionOfCondition = new WeakMap<Condition, 'up' | 'down' | 'both'>();

/**
 * The moment a condition's verdict next changes as the day counters tick (each at its anchor's time of day),
 * found by stepping through the ticks of the next DAY_SCAN_DAYS days; a monotone condition already past its
 * threshold never changes. `recheck` when nothing changed within the scan.
 */
function dayCounterChange(condition: Condition, fields: string[], view: CustomerFacts['view'], now: number): { exact: number | null; recheck: number | null } {
  const profile = view.profile;
  const counters = fields.filter((f) => typeof profile[f] === 'number' && typeof profile[ANCHORS[f]!] === 'number');
  if (counters.length === 0) return { exact: null, recheck: null };
  const test = cachedTester(condition);
  const verdict = test(view);
  let direction = directionOfCondition.get(condition);
  if (!direction) directionOfCondition.set(condition, (direction = dayCounterDirection(condition)));
  if ((direction === 'up' && verdict) || (direction === 'down' && !verdict)) return { exact: null, recheck: null };
  const saved = counters.map((f) => profile[f]);
  const limit = now + DAY_SCAN_DAYS * DAY_MS;
  try {
    for (;;) {
      // The next tick of any counter, and every counter that ticks then.
      let at = Infinity;
      for (const f of counters) at = Math.min(at, (profile[ANCHORS[f]!] as number) + ((profile[f] as number) + 1) * DAY_MS);
      if (at > limit) return { exact: null, recheck: limit };
      for (const f of counters) if ((profile[ANCHORS[f]!] as number) + ((profile[f] as number) + 1) * DAY_MS === at) profile[f] = (profile[f] as number) + 1;
      if (test(view) !== verdict) return { exact: at, recheck: null };
    }
  } finally {
    counters.forEach((f, i) => (profile[f] = saved[i]));
  }
}

function profileNextChange(condition: Condition, facts: CustomerFacts, now: number): { nextChange: number | null; exactChange: number | null } {
  const read = timeFieldsRead(condition);
  let exact: number | null = null;
  let recheck: number | null = read.continuous || (read.timed.length > 0 && !facts.timeChange) ? now + CONTINUOUS_RECHECK_MS : null;
  if (facts.timeChange) for (const field of read.timed) exact = earliest(exact, facts.timeChange(field));
  if (read.dayCounters.length > 0) {
    const days = dayCounterChange(condition, read.dayCounters, facts.view, now);
    exact = earliest(exact, days.exact);
    recheck = earliest(recheck, days.recheck);
  }
  return { nextChange: earliest(exact, recheck), exactChange: exact };
}

/**
 * When a combination can next change. All parts are "critical" when any one flipping flips the whole (an `all`
 * that holds, an `any` that does not): the earliest of theirs. Otherwise only the parts holding the whole back
 * matter (an `all`'s false parts, an `any`'s true parts), and every one of them must flip first: the latest of
 * theirs, or never when one of them never changes.
 */
function combinedChange(parts: Evaluation[], whole: boolean, kind: 'all' | 'any'): Pick<Evaluation, 'nextChange' | 'exactChange'> {
  const anyFlips = (kind === 'all') === whole;
  if (anyFlips) {
    return {
      nextChange: parts.reduce<number | null>((at, p) => earliest(at, p.nextChange), null),
      exactChange: parts.reduce<number | null>((at, p) => earliest(at, p.exactChange), null),
    };
  }
  const blocking = parts.filter((p) => p.member === whole);
  const latest = (pick: (p: Evaluation) => number | null): number | null =>
    blocking.reduce<number | null>((at, p) => (pick(p) === null || at === null ? null : Math.max(at, pick(p)!)), blocking.length > 0 ? -Infinity : null);
  return { nextChange: latest((p) => p.nextChange), exactChange: latest((p) => p.exactChange) };
}

/** Whether the customer is in, and when that can next change without a new event. */
export function evaluateSegmentRule(rule: SegmentRule, facts: CustomerFacts, now: number): Evaluation {
  switch (rule.kind) {
    case 'performed':
      return evaluatePerformed(rule, facts, now);
    case 'last_performed':
      return evaluateLastPerformed(rule, facts, now);
    case 'profile':
      return { member: cachedTester(rule.condition)(facts.view), ...profileNextChange(rule.condition, facts, now) };
    case 'rfm':
      // Scores move when the store's quintiles are recomputed (by the sweep), not with this customer's clock.
      return { member: facts.rfm !== null && cachedTester(rule.condition)({ profile: { ...facts.rfm } }), nextChange: null, exactChange: null };
    case 'in_segment':
      return { member: facts.inSegment(rule.segment), ...facts.segmentNextChange(rule.segment) };
    case 'not': {
      const inner = evaluateSegmentRule(rule.rule, facts, now);
      return { member: !inner.member, nextChange: inner.nextChange, exactChange: inner.exactChange };
    }
    case 'all':
    case 'any': {
      const parts = rule.rules.map((r) => evaluateSegmentRule(r, facts, now));
      const member = rule.kind === 'all' ? parts.every((p) => p.member) : parts.some((p) => p.member);
      return { member, ...combinedChange(parts, member, rule.kind) };
    }
  }
}

/** The longest look-back of a rule's event windows (how far back its facts must reach); null: all history. */
export function longestWindow(rule: SegmentRule): number | null {
  switch (rule.kind) {
    case 'performed':
      return rule.within ?? null;
    case 'last_performed':
      return null;
    case 'not':
      return longestWindow(rule.rule);
    case 'all':
    case 'any':
      return rule.rules.reduce<number | null>((max, r) => {
        const w = longestWindow(r);
        return max === null || w === null ? null : Math.max(max, w);
      }, 0);
    default:
      return 0;
  }
}

/** The other segments a rule names (in_segment), in the order written. */
export function segmentReferences(rule: SegmentRule): string[] {
  if (rule.kind === 'in_segment') return [rule.segment];
  if (rule.kind === 'not') return segmentReferences(rule.rule);
  if (rule.kind === 'all' || rule.kind === 'any') return rule.rules.flatMap(segmentReferences);
  return [];
}

/** Event names a rule reads: the events whose arrival can change membership. */
export function eventsRead(rule: SegmentRule): string[] {
  switch (rule.kind) {
    case 'performed':
    case 'last_performed':
      return [rule.match.event];
    case 'not':
      return eventsRead(rule.rule);
    case 'all':
    case 'any':
      return [...new Set(rule.rules.flatMap(eventsRead))];
    default:
      return [];
  }
}
