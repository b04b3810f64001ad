// Keeping segment membership current without rebuilding it: on each event only that customer is evaluated, and
// each customer carries the earliest moment any of their memberships can change with no new event. A sweep takes
// the customers whose moment has come, and only them. This is the algorithm the store runs (in the ingest
// transaction and in the scheduled sweep), kept here pure so it can be checked against a full recomputation.
import type { NewEvent } from './event';
import { evaluateSegmentRule, segmentReferences, type CustomerFacts, type Evaluation, type SegmentRule } from './segment-rules';

export interface SegmentChange {
  segmentId: string;
  customerId: string;
  change: 'entered' | 'exited';
  /** When the change happened: the event's arrival, or the moment the sweep found the window closed. */
  at: number;
}

export interface SegmentSpec {
  id: string;
  rule: SegmentRule;
}

/** Segments in an order where a segment comes after the ones its in_segment rules name (cycles: file order). */
export function evaluationOrder(segments: SegmentSpec[]): SegmentSpec[] {
  const byId = new Map(segments.map((s) => [s.id, s]));
  const ordered: SegmentSpec[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (segment: SegmentSpec) => {
    if (state.get(segment.id)) return;
    state.set(segment.id, 'visiting');
    for (const id of segmentReferences(segment.rule)) {
      const other = byId.get(id);
      if (other && state.get(id) !== 'visiting') visit(other);
    }
    state.set(segment.id, 'done');
    ordered.push(segment);
  };
  segments.forEach(visit);
  return ordered;
}

/** A customer's facts except what other segments say, which evaluateCustomer fills in. */
export type BaseFacts = Omit<CustomerFacts, 'inSegment' | 'segmentNextChange'>;

/**
 * Evaluates every segment for one customer as of `now`: their memberships, and the earliest time any can change
 * with no new event (null: none can).
 */
export function evaluateCustomer(segments: SegmentSpec[], facts: BaseFacts, now: number): { members: Set<string>; nextCheck: number | null; nextExactChange: number | null } {
  const members = new Set<string>();
  const nextChanges = new Map<string, Evaluation>();
  let nextCheck: number | null = null;
  let nextExactChange: number | null = null;
  const none = { nextChange: null, exactChange: null };
  for (const segment of evaluationOrder(segments)) {
    const result = evaluateSegmentRule(segment.rule, { ...facts, inSegment: (id) => members.has(id), segmentNextChange: (id) => nextChanges.get(id) ?? none }, now);
    if (result.member) members.add(segment.id);
    nextChanges.set(segment.id, result);
    if (result.nextChange !== null && (nextCheck === null || result.nextChange < nextCheck)) nextCheck = result.nextChange;
    if (result.exactChange !== null && (nextExactChange === null || result.exactChange < nextExactChange)) nextExactChange = result.exactChange;
  }
  return { members, nextCheck, nextExactChange };
}

/** What changed between two membership sets of one customer, in segment order. */
export function membershipChanges(customerId: string, before: ReadonlySet<string>, after: ReadonlySet<string>, segments: SegmentSpec[], at: number): SegmentChange[] {
  const changes: SegmentChange[] = [];
  for (const { id } of segments) {
    if (!before.has(id) && after.has(id)) changes.push({ segmentId: id, customerId, change: 'entered', at });
    if (before.has(id) && !after.has(id)) changes.push({ segmentId: id, customerId, change: 'exited', at });
  }
  return changes;
}

/** A customer evaluated late steps through at most this many change moments, then jumps to now. */
export const MAX_CATCH_UP_STEPS = 64;

/**
 * Evaluates one customer from the moment their check fell due (`dueAt`: a window closed then, or the event that
 * marked them arrived then) up to `now`, one step per moment a membership could change, so each change carries the
 * time it happened even when the evaluation comes late, and an entry and exit inside the lag are both recorded.
 * Only exactly known moments are stepped through (not the hourly recheck of decaying fields). `factsAt(t)` gives
 * the customer's facts as of t; `before` is the stored membership.
 */
export function catchUpCustomer(
  segments: SegmentSpec[],
  customerId: string,
  factsAt: (at: number) => BaseFacts,
  before: ReadonlySet<string>,
  dueAt: number | null,
  now: number,
): { members: Set<string>; changes: SegmentChange[]; nextCheck: number | null } {
  let members = new Set(before);
  const changes: SegmentChange[] = [];
  let at = dueAt !== null && dueAt < now ? dueAt : now;
  for (let step = 1; ; step++) {
    const result = evaluateCustomer(segments, factsAt(at), at);
    changes.push(...membershipChanges(customerId, members, result.members, segments, at));
    members = result.members;
    if (at >= now) return { members, changes, nextCheck: result.nextCheck };
    at = result.nextExactChange === null || result.nextExactChange > now || step >= MAX_CATCH_UP_STEPS ? now : result.nextExactChange;
  }
}

/**
 * The incremental algorithm over an in-memory store: memberships and each customer's next check. `facts(customer,
 * now)` reads a customer's facts as of `now`. The store implements the same steps with its tables.
 */
export class MembershipIndex {
  private readonly members = new Map<string, Set<string>>();
  private readonly nextCheck = new Map<string, number>();

  constructor(
    private readonly segments: SegmentSpec[],
    private readonly facts: (customerId: string, now: number) => BaseFacts,
  ) {}

  /** After an event of this customer is stored: re-evaluate them alone (from an earlier due moment, if one passed). */
  onEvent(customerId: string, now: number): SegmentChange[] {
    const due = this.nextCheck.get(customerId);
    return this.reevaluate(customerId, due !== undefined && due < now ? due : now, now);
  }

  /** The scheduled sweep: the customers whose next check has come, and no one else, each from its due moment. */
  sweep(now: number): { changes: SegmentChange[]; evaluated: number } {
    const due = [...this.nextCheck].filter(([, at]) => at <= now).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { changes: due.flatMap(([customerId, at]) => this.reevaluate(customerId, at, now)), evaluated: due.length };
  }

  membersOf(segmentId: string): string[] {
    return [...this.members].filter(([, set]) => set.has(segmentId)).map(([customerId]) => customerId).sort();
  }

  nextCheckOf(customerId: string): number | null {
    return this.nextCheck.get(customerId) ?? null;
  }

  private reevaluate(customerId: string, dueAt: number, now: number): SegmentChange[] {
    const before = this.members.get(customerId) ?? new Set<string>();
    const { members, changes, nextCheck } = catchUpCustomer(this.segments, customerId, (at) => this.facts(customerId, at), before, dueAt, now);
    this.members.set(customerId, members);
    if (nextCheck === null) this.nextCheck.delete(customerId);
    else this.nextCheck.set(customerId, nextCheck);
    return changes;
  }
}

/** The events that record membership changes: flows start on them (`trigger: { segment }`) and wait for them. */
export const SEGMENT_ENTERED = 'Segment Entered';
export const SEGMENT_EXITED = 'Segment Exited';

/** Which events of a customer the segments read as of `now`: per event name, from when (null: all of them). */
export function segmentEventReads(segments: SegmentSpec[], now: number): Array<{ name: string; since: number | null }> {
  const since = new Map<string, number | null>();
  const widen = (name: string, from: number | null) => {
    const current = since.get(name);
    since.set(name, current === undefined ? from : current === null || from === null ? null : Math.min(current, from));
  };
  const visit = (rule: SegmentRule): void => {
    switch (rule.kind) {
      case 'performed':
        widen(rule.match.event, rule.within !== undefined ? now - rule.within : (rule.since ?? null));
        return;
      case 'last_performed':
        widen(rule.match.event, null);
        return;
      case 'not':
        visit(rule.rule);
        return;
      case 'all':
      case 'any':
        rule.rules.forEach(visit);
        return;
      default:
        return;
    }
  };
  segments.forEach((s) => visit(s.rule));
  return [...since].map(([name, from]) => ({ name, since: from })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The Segment Entered / Exited events for a customer's changes, with ids that make a retried evaluation a no-op. */
export function segmentChangeEvents(changes: SegmentChange[], descriptions: ReadonlyMap<string, string | null>, receivedAt: number): NewEvent[] {
  return changes.map((change) => ({
    messageId: `segment-${change.change}:${change.segmentId}:${change.customerId}:${change.at}`,
    type: 'track',
    customerId: change.customerId,
    userId: change.customerId,
    anonymousId: null,
    name: change.change === 'entered' ? SEGMENT_ENTERED : SEGMENT_EXITED,
    properties: { segment_id: change.segmentId, ...(descriptions.get(change.segmentId) ? { segment_description: descriptions.get(change.segmentId) } : {}) },
    traits: {},
    context: { library: { name: 'microflows-segments' } },
    timestamp: change.at,
    receivedAt,
  }));
}
