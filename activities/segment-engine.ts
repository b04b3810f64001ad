// Keeps segment membership current: after each ingest commit it re-evaluates the customers the batch touched (and
// only them), and the scheduled sweep re-evaluates the customers whose next check has come (a window closed, a
// "no purchase in 60 days" came true). Each evaluation is one store transaction: the membership change, the
// Segment Entered / Exited events that record it, and the customer's next check. The rules are core's.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DAY_MS, nextTimeChange } from '../core/behavior';
import { profileContext, type Profile } from '../core/profile';
import { rfmBoundaries, rfmInputOf, rfmScore, type RfmBoundaries, type RfmScores } from '../core/rfm';
import type { SegmentDefinition } from '../core/segment-definition';
import { ProfileHistory } from '../core/profile-history';
import { UniqueQueue } from '../core/unique-queue';
import { behavioralSegmentIds, trackingAllowed } from '../core/tracking-consent';
import { membershipChanges, replayCustomer, segmentChangeEvents, segmentEventReads, type BaseFacts, type SegmentChange, type SegmentSpec } from '../core/segment-membership';
import type { SegmentRule } from '../core/segment-rules';
import type { SegmentDecision, SegmentFactsRead, SegmentReadPlan, Store } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from '../server/dispatcher';

/** RFM quintiles are recomputed by the sweep when they are older than this (a change re-evaluates every buyer). */
export const RFM_REFRESH_MS = DAY_MS;
/** Customers evaluated in one store transaction (real-time updates and sweep pages alike). */
const EVALUATION_BATCH = 100;
/** How long a process trusts its copy of the stored RFM quintiles before reading them again. */
const RFM_RELOAD_MS = 60_000;
/**
 * Customers waiting for a real-time evaluation beyond which more are left to the sweep (a few MB of ids). Nothing is
 * lost: ingest marks each customer due in the event's own transaction, and the sweep evaluates every due customer.
 */
export const MAX_PENDING_EVALUATIONS = 100_000;

export interface SegmentEngineOptions {
  store: Store;
  segments: SegmentDefinition[];
  /** Where the recorded Segment Entered / Exited events go (flow triggers, wait_for); null: nowhere. */
  dispatcher: EventDispatcher | null;
  now?: () => number;
  log?: (message: string) => void;
  /** Customers waiting for a real-time evaluation beyond which more are left to the sweep (MAX_PENDING_EVALUATIONS). */
  maxPending?: number;
  /** Whether a customer who gave no behavioral_tracking consent is tracked (MICROFLOWS_TRACKING_DEFAULT); default yes. */
  trackingGrantedByDefault?: boolean;
}

export interface CustomerSegmentResult {
  customerId: string;
  changes: SegmentChange[];
}

export interface SweepPage {
  evaluated: number;
  changes: number;
  /** Customers whose evaluation failed: they stay due, for the next sweep. */
  failed: number;
  /** Where the next page starts; null when this page was the last. */
  next: { dueAt: number; customerId: string } | null;
}

/** A definition's identity: a change of rules (not of description or file) re-evaluates everyone. */
export function segmentDefinitionHash(segment: SegmentDefinition): string {
  return createHash('sha256').update(JSON.stringify(segment.rule)).digest('hex').slice(0, 16);
}

/** The customer's RFM scores against the store's quintiles (null: not a buyer, or no quintiles yet). */
function rfmOf(profile: Profile, boundaries: RfmBoundaries | null): RfmScores | null {
  if (!boundaries) return null;
  return rfmScore(rfmInputOf(profile.customerId, profile.computed), boundaries);
}

/** A customer's facts as of `at`, with the exact times their time-relative fields change. */
function factsAt(profile: Profile, events: SegmentFactsRead['events'], rfm: RfmScores | null, at: number): BaseFacts {
  return { view: profileContext(profile, at), events, rfm, timeChange: (field) => nextTimeChange(profile.computed, field, at) };
}

function usesRfm(segments: SegmentDefinition[]): boolean {
  return segments.some((s) => JSON.stringify(s.rule).includes('"kind":"rfm"'));
}

/** Whether a rule reads the profile (a profile condition, or RFM scores from its computed fields). */
function readsProfile(rule: SegmentRule): boolean {
  switch (rule.kind) {
    case 'profile':
    case 'rfm':
      return true;
    case 'not':
      return readsProfile(rule.rule);
    case 'all':
    case 'any':
      return rule.rules.some(readsProfile);
    default:
      return false;
  }
}

export class SegmentEngine {
  private segments: SegmentDefinition[] = [];
  private specs: SegmentSpec[] = [];
  private descriptions = new Map<string, string | null>();
  private rfmUsed = false;
  /** Segments that read behavior (core/tracking-consent): no membership for a customer without tracking consent. */
  private behavioral: ReadonlySet<string> = new Set();
  private readonly trackingGrantedByDefault: boolean;
  /** Some rule reads the profile: a replay through the past folds the profile as it was at each moment. */
  private profileRead = false;
  private readonly store: Store;
  private readonly dispatcher: EventDispatcher | null;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private rfm: { boundaries: RfmBoundaries | null; readAt: number } = { boundaries: null, readAt: -Infinity };
  /** Customers waiting for a real-time evaluation (each once, first come first evaluated), and the one chain that drains them. */
  private readonly pending: UniqueQueue<string>;
  private draining: Promise<void> | null = null;
  private failures = 0;
  /** Customers left to the sweep because the pending queue was full, and whether it is full since it last emptied. */
  private overflowed = 0;
  private overflowing = false;

  constructor(options: SegmentEngineOptions) {
    this.store = options.store;
    this.dispatcher = options.dispatcher;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((m) => console.error(m));
    this.pending = new UniqueQueue(options.maxPending ?? MAX_PENDING_EVALUATIONS);
    this.trackingGrantedByDefault = options.trackingGrantedByDefault ?? true;
    this.setSegments(options.segments);
  }

  setSegments(segments: SegmentDefinition[]): void {
    this.segments = segments;
    this.specs = segments.map((s) => ({ id: s.id, rule: s.rule }));
    this.descriptions = new Map(segments.map((s) => [s.id, s.description]));
    this.rfmUsed = usesRfm(segments);
    this.behavioral = behavioralSegmentIds(this.specs);
    this.profileRead = segments.some((s) => readsProfile(s.rule));
  }

  currentSegments(): SegmentDefinition[] {
    return this.segments;
  }

  get failureCount(): number {
    return this.failures;
  }

  /** Customers waiting for a real-time evaluation. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Customers not queued for a real-time evaluation because the queue was full (the sweep evaluates them). */
  get overflowCount(): number {
    return this.overflowed;
  }

  /**
   * Records the definitions in the store: a new or changed segment schedules everyone for an evaluation (the next
   * sweep picks them up, a page at a time); a removed one loses its members.
   */
  async syncDefinitions(): Promise<{ changed: string[]; removed: string[] }> {
    const result = await this.store.syncSegmentDefinitions(
      this.segments.map((s) => ({ segmentId: s.id, hash: segmentDefinitionHash(s) })),
      this.now(),
    );
    if (result.changed.length > 0) this.log(`[segments] new or changed: ${result.changed.join(', ')}: every customer is due for evaluation`);
    if (result.removed.length > 0) this.log(`[segments] removed: ${result.removed.join(', ')}: their memberships were deleted`);
    return result;
  }

  /**
   * After an ingest commit: evaluate these customers soon, once each, off the request path. With the queue full a
   * customer is left to the sweep: the ingest transaction marked them due, and the sweep evaluates whoever is due.
   */
  enqueue(customerIds: Iterable<string>): void {
    if (this.specs.length === 0) return;
    for (const id of customerIds) {
      if (this.pending.add(id) !== 'full') continue;
      this.overflowed += 1;
      if (!this.overflowing) {
        this.overflowing = true;
        this.log(`[segments] ${this.pending.capacity} customers wait for a real-time evaluation: more are left to the sweep (they are due in the store) until the queue empties`);
      }
    }
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
      if (this.pending.size > 0) this.enqueue([]);
    });
  }

  /** Resolves when every queued evaluation has run. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /**
   * Evaluates the pending customers a batch at a time. Under sustained ingest it pauses after each batch for as
   * long as the batch took, so the updates take at most half of this process and ingest keeps the rest: the
   * pending set then grows (each customer once, however many events they sent) and the updates lag, catching up
   * when the load drops. A customer's first evaluation after a quiet spell starts at once.
   */
  private async drain(): Promise<void> {
    while (this.pending.size > 0) {
      const batch = this.pending.take(EVALUATION_BATCH);
      const started = performance.now();
      await this.evaluateAll(batch, this.now(), (customerId, err) => {
        // The customer stays due in the store (marked in the event's transaction): the sweep evaluates them.
        this.log(`[segments] evaluation of ${customerId} failed, left for the sweep: ${err.message}`);
      });
      if (this.pending.size > 0) await new Promise((resolve) => setTimeout(resolve, performance.now() - started));
    }
    this.overflowing = false;
  }

  /** Evaluates one customer's segments as of `now`, in one transaction, and dispatches the events it recorded. */
  async evaluate(customerId: string, now: number): Promise<CustomerSegmentResult> {
    return (await this.evaluateMany([customerId], now))[0]!;
  }

  /**
   * Evaluates these customers' segments as of `now`, all in one transaction (a failure for one fails them all),
   * and dispatches the events it recorded.
   */
  async evaluateMany(customerIds: string[], now: number): Promise<CustomerSegmentResult[]> {
    const boundaries = await this.boundaries(now);
    const results = new Map<string, { changes: SegmentChange[]; members: ReadonlySet<string> }>();
    const defined = new Set(this.specs.map((s) => s.id));
    // The replay starts at the due moment: the earliest new event's own time, or the time-based change that was due.
    const fromOf = (dueAt: number | null) => (dueAt !== null && dueAt < now ? dueAt : now);
    const decide = (customerId: string, facts: SegmentFactsRead): SegmentDecision => {
      const before = new Set(facts.members.keys());
      const { profile } = facts;
      if (!profile) {
        // A customer with no profile (merged into another since it was marked) is in no segment.
        const changes = membershipChanges(customerId, before, new Set(), this.specs, now);
        results.set(customerId, { changes, members: new Set() });
        return { members: new Set(), at: now, nextCheckAt: null, events: segmentChangeEvents(changes, this.descriptions, now) };
      }
      const history = new ProfileHistory(profile, facts.profileEvents ?? [], facts.computedBase);
      // History of segments no longer defined is left as it was.
      const recorded = facts.recorded.filter((c) => defined.has(c.segmentId));
      const result = replayCustomer({
        segments: this.specs,
        customerId,
        factsAt: (at) => {
          const then = history.at(at);
          // Consent as it stood then: a member who withdrew leaves behavior segments at the withdrawal, not before.
          const withheld = trackingAllowed(then, this.trackingGrantedByDefault) ? undefined : this.behavioral;
          return { ...factsAt(then, facts.events, rfmOf(then, boundaries), at), withheld };
        },
        stored: before,
        recorded: recorded.map((c) => ({ ...c, customerId })),
        from: fromOf(facts.dueAt),
        now,
        eventTimes: facts.eventTimes,
      });
      results.set(customerId, { changes: result.added, members: result.members });
      return {
        members: result.members,
        at: now,
        enteredAt: result.enteredAt,
        retract: result.retracted.map((c) => c.messageId),
        replayedFrom: fromOf(facts.dueAt),
        nextCheckAt: result.nextCheck,
        events: segmentChangeEvents(result.added, this.descriptions, now),
      };
    };
    // A late evaluation starts at the due moment: its windows reach back from there.
    const reads = (_customerId: string, dueAt: number | null): SegmentReadPlan => ({
      events: segmentEventReads(this.specs, fromOf(dueAt)),
      from: fromOf(dueAt),
      profileHistory: this.profileRead,
    });
    const updates = await this.store.updateSegments(customerIds, reads, decide, (event) => this.dispatcher?.needsDispatch(event) ?? false);
    for (const update of updates) {
      // The profile handed to flow triggers lists the segments as this evaluation left them.
      const members = [...(results.get(update.customerId)?.members ?? [])].sort();
      for (const result of update.recorded) result.profile.segments = members;
      if (this.dispatcher) dispatchRecorded(this.dispatcher, this.log, update.recorded);
    }
    return customerIds.map((customerId) => ({ customerId, changes: results.get(customerId)?.changes ?? [] }));
  }

  /**
   * Evaluates the customers a batch at a time; a batch that fails is retried one customer at a time, so one bad
   * customer costs only their own evaluation. Returns the changes made and how many customers failed.
   */
  private async evaluateAll(customerIds: string[], now: number, onFailure: (customerId: string, err: Error) => void): Promise<{ changes: number; failed: number }> {
    let changes = 0;
    let failed = 0;
    const count = (results: CustomerSegmentResult[]) => results.reduce((n, r) => n + r.changes.length, 0);
    for (let i = 0; i < customerIds.length; i += EVALUATION_BATCH) {
      const batch = customerIds.slice(i, i + EVALUATION_BATCH);
      try {
        changes += count(await this.evaluateMany(batch, now));
      } catch {
        for (const customerId of batch) {
          try {
            changes += count(await this.evaluateMany([customerId], now));
          } catch (err) {
            failed += 1;
            this.failures += 1;
            onFailure(customerId, err as Error);
          }
        }
      }
    }
    return { changes, failed };
  }

  /**
   * One page of the sweep: the customers whose next check is at or before `now`, earliest first, each evaluated
   * as of `now`. Run pages from `next` until it is null.
   */
  async sweepPage(now: number, limit: number, after: SweepPage['next'] = null): Promise<SweepPage> {
    const due = await this.store.dueSegmentChecks(now, limit, after ?? undefined);
    const { changes, failed } = await this.evaluateAll(
      due.map((d) => d.customerId),
      now,
      (customerId, err) => this.log(`[segments] sweep: evaluation of ${customerId} failed, left due: ${err.message}`),
    );
    const last = due[due.length - 1];
    return { evaluated: due.length - failed, changes, failed, next: due.length === limit && last ? { dueAt: last.dueAt, customerId: last.customerId } : null };
  }

  /**
   * Recomputes the RFM quintiles when a segment uses them and the stored ones are older than RFM_REFRESH_MS; when
   * the cut points moved, every buyer is scheduled for an evaluation. Returns whether they were recomputed.
   */
  async refreshRfm(now: number, maxAgeMs = RFM_REFRESH_MS): Promise<boolean> {
    if (!this.rfmUsed) return false;
    const stored = await this.store.rfmState();
    if (stored && now - stored.computedAt < maxAgeMs) return false;
    const boundaries = rfmBoundaries(await this.store.rfmInputs());
    await this.store.saveRfmState(boundaries, now);
    this.rfm = { boundaries, readAt: now };
    if (!stored || JSON.stringify(stored.boundaries) !== JSON.stringify(boundaries)) await this.store.scheduleSegmentChecks('buyers', now);
    return true;
  }

  /** The stored quintiles, read again at most every RFM_RELOAD_MS; computed once if none are stored yet. */
  private async boundaries(now: number): Promise<RfmBoundaries | null> {
    if (!this.rfmUsed) return null;
    if (Math.abs(now - this.rfm.readAt) < RFM_RELOAD_MS) return this.rfm.boundaries;
    const stored = await this.store.rfmState();
    this.rfm = { boundaries: stored?.boundaries ?? null, readAt: now };
    return this.rfm.boundaries;
  }
}
