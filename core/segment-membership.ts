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

/**
 * A customer's facts except what other segments say, which evaluateCustomer fills in; `withheld`: segments the
 * customer may not be in at this moment whatever the rules say (behavioral ones, without tracking consent).
 */
export type BaseFacts = Omit<CustomerFacts, 'inSegment' | 'segmentNextChange'> & { withheld?: ReadonlySet<string> };

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
    const result = facts.withheld?.has(segment.id)
      ? { member: false, ...none }
      : evaluateSegmentRule(segment.rule, { ...facts, inSegment: (id) => members.has(id), segmentNextChange: (id) => nextChanges.get(id) ?? none }, now);
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

/**
 * A replay steps through at most this many moments, then jumps to now. A customer's own events are moments too, so
 * this bounds the work one evaluation does for a customer with an enormous backfill; real histories stay far below.
 */
export const MAX_CATCH_UP_STEPS = 20_000;

export interface ReplayInput<R extends SegmentChange = SegmentChange> {
  segments: SegmentSpec[];
  customerId: string;
  /** The customer's facts as of a moment: only events up to it, the profile as it was then. Moments never go back. */
  factsAt: (at: number) => BaseFacts;
  /** The membership as stored (as of the last evaluation). */
  stored: ReadonlySet<string>;
  /** The changes already recorded at or after `from`, oldest first (a later evaluation may have recorded some). */
  recorded: readonly R[];
  /**
   * The earliest moment anything new can matter: the own time of the earliest event not yet evaluated, or the moment
   * a time-based change was due. Membership before it cannot change (rules read only what happened up to a moment).
   */
  from: number;
  now: number;
  /** The customer's own event times (any order): membership is evaluated again at each one after `from`. */
  eventTimes: readonly number[];
}

export interface ReplayResult<R extends SegmentChange = SegmentChange> {
  members: Set<string>;
  /** The customer's history from `from` to now, oldest first: every change, dated when it happened. */
  changes: SegmentChange[];
  /** Recorded changes this history no longer holds (an event arrived late and undid them): to be deleted. */
  retracted: R[];
  /** Changes of this history not recorded yet: to be recorded. */
  added: SegmentChange[];
  /** For each segment entered in this history and still a member, when it was (last) entered. */
  enteredAt: Map<string, number>;
  nextCheck: number | null;
}

const changeKey = (c: SegmentChange) => `${c.change}\u0000${c.segmentId}\u0000${c.at}`;

/** The membership just before the first of `recorded`: the stored one with those changes undone, newest first. */
function membershipBefore(stored: ReadonlySet<string>, recorded: readonly SegmentChange[]): Set<string> {
  const members = new Set(stored);
  for (let i = recorded.length - 1; i >= 0; i--) {
    const change = recorded[i]!;
    if (change.change === 'entered') members.delete(change.segmentId);
    else members.add(change.segmentId);
  }
  return members;
}

/**
 * Rebuilds a customer's membership history from `from` to `now`, so that it is the same whatever order and grouping
 * their events arrived in: from the membership that held just before `from` (the stored one, with what was recorded
 * since undone), it evaluates every moment where membership can change — each of the customer's own events, and each
 * exactly known time-based change (a window closing, a day counter ticking) — dating each change at its moment.
 * It says which recorded changes a late event has undone, and which are new.
 */
export function replayCustomer<R extends SegmentChange>(input: ReplayInput<R>): ReplayResult<R> {
  const { segments, customerId, now } = input;
  let members = membershipBefore(input.stored, input.recorded);
  const changes: SegmentChange[] = [];
  let at = Math.min(input.from, now);
  const moments = [...new Set(input.eventTimes)].filter((t) => t > at && t <= now).sort((a, b) => a - b);
  let nextMoment = 0;
  let nextCheck: number | null = null;
  for (let step = 1; ; step++) {
    const result = evaluateCustomer(segments, input.factsAt(at), at);
    changes.push(...membershipChanges(customerId, members, result.members, segments, at));
    members = result.members;
    if (at >= now) {
      nextCheck = result.nextCheck;
      break;
    }
    while (nextMoment < moments.length && moments[nextMoment]! <= at) nextMoment++;
    let next = Math.min(result.nextExactChange ?? Infinity, moments[nextMoment] ?? Infinity);
    if (next > now || step >= MAX_CATCH_UP_STEPS) next = now;
    at = next;
  }
  const kept = new Set(changes.map(changeKey));
  const recorded = new Set(input.recorded.map(changeKey));
  const enteredAt = new Map<string, number>();
  for (const change of changes) if (change.change === 'entered') enteredAt.set(change.segmentId, change.at);
  for (const id of [...enteredAt.keys()]) if (!members.has(id)) enteredAt.delete(id);
  return {
    members,
    changes,
    retracted: input.recorded.filter((c) => !kept.has(changeKey(c))),
    added: changes.filter((c) => !recorded.has(changeKey(c))),
    enteredAt,
    nextCheck,
  };
}

/**
 * The incremental algorithm over an in-memory store: memberships, each customer's next check, and the recorded
 * history of changes. `facts(customer, now)` reads a customer's facts as of `now`; `eventTimes(customer)` their
 * events' own times. The store implements the same steps with its tables.
 */
export class MembershipIndex {
  private readonly members = new Map<string, Set<string>>();
  private readonly nextCheck = new Map<string, number>();
  private readonly history = new Map<string, SegmentChange[]>();

  constructor(
    private readonly segments: SegmentSpec[],
    private readonly facts: (customerId: string, now: number) => BaseFacts,
    private readonly eventTimes: (customerId: string) => readonly number[] = () => [],
  ) {}

  /**
   * After an event of this customer is stored (`eventAt`: its own time, which may be long past): re-evaluate them
   * alone, from that time or from an earlier due moment.
   */
  onEvent(customerId: string, now: number, eventAt: number = now): SegmentChange[] {
    const due = this.nextCheck.get(customerId);
    return this.reevaluate(customerId, Math.min(eventAt, due ?? Infinity, now), now);
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

  /** Every change recorded for the customer, oldest first, with the ones late events undid taken out. */
  historyOf(customerId: string): SegmentChange[] {
    return [...(this.history.get(customerId) ?? [])];
  }

  /** Returns the changes this evaluation recorded (retracted ones are gone from historyOf). */
  private reevaluate(customerId: string, from: number, now: number): SegmentChange[] {
    const history = this.history.get(customerId) ?? [];
    const result = replayCustomer({
      segments: this.segments,
      customerId,
      factsAt: (at) => this.facts(customerId, at),
      stored: this.members.get(customerId) ?? new Set<string>(),
      recorded: history.filter((c) => c.at >= from),
      from,
      now,
      eventTimes: this.eventTimes(customerId),
    });
    this.history.set(customerId, [...history.filter((c) => c.at < from), ...result.changes]);
    this.members.set(customerId, result.members);
    if (result.nextCheck === null) this.nextCheck.delete(customerId);
    else this.nextCheck.set(customerId, result.nextCheck);
    return result.added;
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
