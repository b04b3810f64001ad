// After an event commits, decides which flow triggers it fired (core/triggers, with the customer's history from the
// store) and hands it to the customer's arbiter in Temporal. Per-customer order is kept by a promise chain per
// customer, bounded per customer and in all; events still owed a dispatch (Temporal down, a crash before the
// signal, beyond the bound) are redelivered by a pass at start and then by passes that repeat while the server
// runs, backing off while they fail.
import { redispatchDelay, REDISPATCH_SCHEDULE, type RedispatchSchedule } from '../core/redispatch-backoff';
import type { FlowDefinition } from '../core/flow-types';
import { BACKFILL_AGE_MS, eventMatches, eventNamesOfInterest, historyNeeded, isBackfill, triggerFires, type EventFacts } from '../core/triggers';
import { fireTrigger, type FiredTrigger } from '../core/entry';
import { suppressedEntry } from '../core/suppression';
import type { Profile } from '../core/profile';
import type { NewEvent, RecordEventResult, Store, StoredEvent } from '../store/store';
import { signalCustomerEvent, type SignalTarget } from '../client/customer-signals';
import type { EventDispatcher } from './dispatcher';

function factsOf(event: StoredEvent): EventFacts {
  return { messageId: event.messageId, name: event.name, type: event.type, properties: event.properties, timestamp: event.timestamp };
}

/** Undispatched events a pass reads at a time. */
const REDISPATCH_PAGE = 500;
/**
 * A pass leaves alone events younger than this (unless this process already holds their customer back): another
 * server may be delivering them live right now, and redelivering them would be work for nothing (harmless, as the
 * arbiter ignores a messageId it has handled).
 */
export const REDISPATCH_MIN_AGE_MS = 5_000;
/**
 * Live deliveries queued in this process (waiting their turn or under way), per customer and in all, beyond which an
 * event is left owed in the store for the redispatch passes: while Temporal hangs, memory stays bounded.
 */
export const MAX_QUEUED_PER_CUSTOMER = 100;
export const MAX_QUEUED_DELIVERIES = 10_000;

export interface TemporalDispatcherOptions {
  /** The server's clock: event ages and the start-no-flow horizon are measured on it. */
  now?: () => number;
  /** In [0, 1): spreads the redispatch waits. */
  random?: () => number;
  schedule?: RedispatchSchedule;
  /** MAX_QUEUED_PER_CUSTOMER */
  maxQueuedPerCustomer?: number;
  /** MAX_QUEUED_DELIVERIES */
  maxQueued?: number;
  /**
   * Whether a flow sends a transactional template (core/suppression sendsTransactional with the template library):
   * a marketing-only suppression (complaint, unsubscribe) stops at entry only the flows that do not. Default: every
   * flow might, so only an entry of scope all stops one at entry; the send gate still stops each marketing send.
   */
  sendsTransactional?: (flow: FlowDefinition) => boolean;
}

type Delivery = 'live' | 'redelivery';

/** What one redispatch pass did. */
export interface RedispatchPass {
  delivered: number;
  failed: number;
  /** Customers whose events wait for the next pass (a dispatch of theirs was running, or one failed before). */
  deferred: number;
  firstError: string | null;
}

export class TemporalDispatcher implements EventDispatcher {
  private flows: FlowDefinition[] = [];
  private interesting = new Set<string>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Deliveries in each customer's chain, and in all chains: what the bounds are checked against. */
  private readonly queuedOf = new Map<string, number>();
  private queuedTotal = 0;
  /** The bound left an event owed since the chains were last empty (said once per spell). */
  private boundReported = false;
  private readonly maxQueuedPerCustomer: number;
  private readonly maxQueued: number;
  /**
   * Customers with an event this process failed to deliver: their later events are not delivered live (they would
   * overtake it) but left owed, for the next pass to deliver in order.
   */
  private readonly heldBack = new Set<string>();
  /**
   * Held-back customers whose deliveries did not fail, but whose event the bound left owed: their events queued
   * before it still go out live (they come before it); their later ones are left owed, as after a failure.
   */
  private readonly heldByBound = new Set<string>();
  /** Held-back customers whose live event was left owed while a pass ran (the pass may have listed past it). */
  private readonly leftDuringPass = new Set<string>();
  /** Customers whose redelivery failed in the current pass: their later events in it are not tried. */
  private failedThisPass = new Set<string>();
  private failures = 0;
  private lastError: string | null = null;
  private passes: Promise<unknown> = Promise.resolve();
  private passRunning = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly schedule: RedispatchSchedule;
  private readonly sendsTransactional: (flow: FlowDefinition) => boolean;
  private redispatch: { timer: NodeJS.Timeout | undefined; pass: Promise<unknown> | undefined; stopped: boolean; failedPasses: number } | undefined;

  constructor(
    private readonly store: Store,
    private readonly target: SignalTarget,
    flows: FlowDefinition[],
    private readonly log: (message: string) => void = (m) => console.error(m),
    options: TemporalDispatcherOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.schedule = options.schedule ?? REDISPATCH_SCHEDULE;
    this.maxQueuedPerCustomer = options.maxQueuedPerCustomer ?? MAX_QUEUED_PER_CUSTOMER;
    this.maxQueued = options.maxQueued ?? MAX_QUEUED_DELIVERIES;
    this.sendsTransactional = options.sendsTransactional ?? (() => true);
    this.setFlows(flows);
  }

  /** Replaces the live flow versions (new entries take these; running customers keep theirs). */
  setFlows(flows: FlowDefinition[]): void {
    this.flows = flows;
    this.interesting = eventNamesOfInterest(flows);
  }

  currentFlows(): FlowDefinition[] {
    return this.flows;
  }

  needsDispatch(event: NewEvent): boolean {
    return event.type === 'track' && event.name !== null && this.interesting.has(event.name);
  }

  dispatch(result: RecordEventResult): void {
    if (result.duplicate || result.event.dispatched) return;
    const { customerId } = result.event;
    // Held back, the event would be skipped at its turn anyway: left owed now, it takes no place in the chain.
    if (this.heldBack.has(customerId)) return this.leaveOwed(customerId);
    if ((this.queuedOf.get(customerId) ?? 0) >= this.maxQueuedPerCustomer || this.queuedTotal >= this.maxQueued) {
      // Held back from now on, so no later event of theirs goes out live before this one: the passes deliver
      // them all in order (by id) once the customer's chain has drained.
      this.heldBack.add(customerId);
      this.heldByBound.add(customerId);
      this.leaveOwed(customerId);
      if (!this.boundReported) {
        this.boundReported = true;
        this.log(
          `[dispatch] ${this.queuedTotal} deliveries queued (limit ${this.maxQueued}, ${this.maxQueuedPerCustomer} per customer; ${customerId} has ${this.queuedOf.get(customerId) ?? 0}): ` +
            'further events are left owed for the redispatch passes, delivered in order once Temporal keeps up',
        );
      }
      return;
    }
    void this.enqueue(result.event, 'live', result.profile);
  }

  /** Deliveries queued in this process (waiting their turn or under way), live and redelivered. */
  get queuedDeliveries(): number {
    return this.queuedTotal;
  }

  /** Resolves when every dispatch queued so far has finished. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.allSettled([...this.chains.values()]);
  }

  get failureCount(): number {
    return this.failures;
  }

  /** Redoes the dispatches a crash or an outage left owing, at start: every owed event, in order. Returns how many went through. */
  async recoverPending(): Promise<number> {
    return (await this.redispatchPass(0)).delivered;
  }

  /**
   * Repeats redispatch passes while the server runs: `schedule.baseMs` apart while they go through (one indexed query
   * when nothing is owed), doubling up to `schedule.capMs` while they fail. Safe on several servers at once.
   */
  startRedispatching(): void {
    if (this.redispatch) return;
    const state: NonNullable<TemporalDispatcher['redispatch']> = { timer: undefined, pass: undefined, stopped: false, failedPasses: 0 };
    this.redispatch = state;
    const next = () => {
      if (state.stopped) return;
      state.timer = setTimeout(tick, redispatchDelay(state.failedPasses, this.random(), this.schedule));
      // The loop alone must not keep a process alive that is otherwise done.
      state.timer.unref();
    };
    const tick = () => {
      state.timer = undefined;
      state.pass = this.redispatchPass(REDISPATCH_MIN_AGE_MS)
        .then((pass) => {
          const wasFailing = state.failedPasses > 0;
          state.failedPasses = pass.failed > 0 ? state.failedPasses + 1 : 0;
          if (pass.failed > 0 && (!wasFailing || state.failedPasses % 10 === 0)) {
            this.log(`[dispatch] ${pass.failed} owed event(s) not delivered yet (${pass.firstError}); retrying with backoff`);
          }
          if (pass.failed === 0 && wasFailing && pass.delivered > 0) this.log(`[dispatch] delivered ${pass.delivered} owed event(s): Temporal answers again`);
        })
        .catch((err: Error) => {
          // The store itself failed (a lost database connection): the pass is retried like a failed delivery.
          state.failedPasses += 1;
          this.log(`[dispatch] redispatch pass failed: ${err.message}`);
        })
        .finally(() => {
          state.pass = undefined;
          next();
        });
    };
    next();
  }

  /** Stops the redispatch passes; resolves once a pass under way has finished. */
  async stopRedispatching(): Promise<void> {
    const state = this.redispatch;
    if (!state) return;
    state.stopped = true;
    clearTimeout(state.timer);
    await state.pass;
    this.redispatch = undefined;
  }

  /**
   * One pass over the owed events, oldest first, paging past the ones it cannot deliver. A customer whose
   * dispatch is running in this process waits for the next pass (queued behind it, theirs could overtake an
   * earlier event of theirs that fails); after a failure, a customer's later events wait too.
   */
  redispatchPass(minAgeMs: number): Promise<RedispatchPass> {
    // One pass at a time (the start's and the loop's share the per-pass state).
    const pass = this.passes.then(() => this.runPass(minAgeMs));
    this.passes = pass.catch(() => undefined);
    return pass;
  }

  private async runPass(minAgeMs: number): Promise<RedispatchPass> {
    this.passRunning = true;
    try {
      return await this.passOver(minAgeMs);
    } finally {
      this.passRunning = false;
      this.failedThisPass = new Set();
    }
  }

  private async passOver(minAgeMs: number): Promise<RedispatchPass> {
    const youngest = this.now() - minAgeMs;
    this.failedThisPass = new Set();
    this.leftDuringPass.clear();
    const deferred = new Set<string>();
    const tried = new Set<string>();
    let delivered = 0;
    let failed = 0;
    let firstError: string | null = null;
    let afterId: number | undefined;
    for (;;) {
      const page = await this.store.listUndispatched(REDISPATCH_PAGE, afterId);
      if (page.length === 0) break;
      afterId = page[page.length - 1]!.id;
      const busy = new Set(this.chains.keys());
      const queued: Array<Promise<'delivered' | 'failed' | 'skipped'>> = [];
      for (const event of page) {
        // Also covers an event of theirs being delivered right now: queued behind itself, it would go out twice.
        if (busy.has(event.customerId)) {
          deferred.add(event.customerId);
          continue;
        }
        // Another server may be delivering a young event live; this one's own held-back events it knows are not.
        if (event.receivedAt > youngest && !this.heldBack.has(event.customerId)) continue;
        tried.add(event.customerId);
        queued.push(
          this.enqueue(event, 'redelivery').then((outcome) => {
            if (outcome === 'failed') firstError ??= this.lastError;
            return outcome;
          }),
        );
      }
      for (const outcome of await Promise.all(queued)) {
        if (outcome === 'delivered') delivered += 1;
        if (outcome === 'failed') failed += 1;
      }
      if (page.length < REDISPATCH_PAGE) break;
    }
    // A customer is let go once a pass delivered all it found of theirs and none of theirs was left owed meanwhile.
    for (const customerId of tried) {
      if (!this.failedThisPass.has(customerId) && !deferred.has(customerId) && !this.leftDuringPass.has(customerId)) {
        this.heldBack.delete(customerId);
        this.heldByBound.delete(customerId);
      }
    }
    return { delivered, failed, deferred: new Set([...deferred, ...this.failedThisPass]).size, firstError };
  }

  /** A live event of a held-back customer stays owed; a pass that may have listed past it must not let them go. */
  private leaveOwed(customerId: string): void {
    if (this.passRunning) this.leftDuringPass.add(customerId);
  }

  private enqueue(event: StoredEvent, delivery: Delivery, profile?: Profile): Promise<'delivered' | 'failed' | 'skipped'> {
    const { customerId } = event;
    this.queuedOf.set(customerId, (this.queuedOf.get(customerId) ?? 0) + 1);
    this.queuedTotal += 1;
    const previous = this.chains.get(event.customerId) ?? Promise.resolve();
    const next = previous.then(() => this.deliver(event, delivery, profile)).then(
      (outcome) => outcome,
      (err: Error) => {
        this.failures += 1;
        this.lastError = err.message;
        this.heldBack.add(event.customerId);
        this.heldByBound.delete(event.customerId);
        if (delivery === 'redelivery') this.failedThisPass.add(event.customerId);
        // The event stays owed; the next redispatch pass retries it (and the customer's later ones, in order).
        else this.log(`[dispatch] event ${event.messageId} for ${event.customerId} not delivered yet: ${err.message}`);
        return 'failed' as const;
      },
    );
    this.chains.set(event.customerId, next);
    void next.finally(() => {
      if (this.chains.get(event.customerId) === next) this.chains.delete(event.customerId);
      const left = this.queuedOf.get(customerId)! - 1;
      if (left === 0) this.queuedOf.delete(customerId);
      else this.queuedOf.set(customerId, left);
      this.queuedTotal -= 1;
      if (this.queuedTotal === 0) this.boundReported = false;
    });
    return next;
  }

  /** Triggers the event fired, each with its entry condition evaluated on the profile as of this event. */
  private async firedTriggers(event: StoredEvent, profile: Profile | undefined): Promise<FiredTrigger[]> {
    const facts = factsOf(event);
    const fired: FiredTrigger[] = [];
    for (const flow of this.flows) {
      const need = historyNeeded(flow.trigger, facts);
      const history = need ? (await this.store.eventsOf(event.customerId, { names: [need.name], since: need.since })).map(factsOf) : [];
      if (!triggerFires(flow.trigger, facts, history)) continue;
      const readsSegments = [flow.entry.when, flow.requires].some((condition) => condition !== undefined && JSON.stringify(condition).includes('"profile.segments"'));
      // A redelivery (after an outage or a crash) has no profile in hand: it reads the profile as it was at the
      // event's time, so what happened since (a purchase, a withdrawn consent) does not decide an earlier event.
      profile ??= await this.store.profileAsOf(event.customerId, event.timestamp, { withSegments: true });
      // The profile an ingest hands over does not list segments; an entry condition on them reads the stored ones.
      if (profile && profile.segments === undefined && readsSegments) {
        profile = { ...profile, segments: (await this.store.segmentsOf(event.customerId)).map((m) => m.segmentId) };
      }
      fired.push(fireTrigger(flow, profile, facts));
    }
    return this.withSuppression(fired, profile);
  }

  /**
   * The suppression list applied to the fired triggers (core/suppression): read once per event, for the customer's
   * email, as of now, so a hard bounce or a complaint recorded before this event keeps its flows from starting.
   */
  private async withSuppression(fired: FiredTrigger[], profile: Profile | undefined): Promise<FiredTrigger[]> {
    if (fired.length === 0 || !profile?.email) return fired;
    const now = this.now();
    const entries = await this.store.suppressionsFor(profile.email, now);
    if (entries.length === 0) return fired;
    const flows = new Map(this.flows.map((flow) => [flow.id, flow]));
    return fired.map((trigger) => {
      const flow = flows.get(trigger.policy.flowId);
      return { ...trigger, entry: suppressedEntry(trigger.entry, entries, flow ? this.sendsTransactional(flow) : true, now) };
    });
  }

  private async deliver(event: StoredEvent, delivery: Delivery, profile?: Profile): Promise<'delivered' | 'skipped'> {
    if (delivery === 'redelivery' && this.failedThisPass.has(event.customerId)) return 'skipped';
    if (delivery === 'live' && this.heldBack.has(event.customerId) && !this.heldByBound.has(event.customerId)) {
      if (this.passRunning) this.leftDuringPass.add(event.customerId);
      return 'skipped';
    }
    const dispatchedAt = this.now();
    // History starts no flow: an event older than the horizon when it arrived, or by the time it reaches Temporal
    // (acknowledged before an outage that lasted longer), still reaches running flows (exits, wait_for) but fires nothing.
    const late = isBackfill(event, Math.max(event.receivedAt, dispatchedAt));
    const triggers = late ? [] : await this.firedTriggers(event, profile);
    if (late) await this.recordLateSkips(event, dispatchedAt);
    // The flows whose goal this is, a run of them active or not: a trigger of theirs that happened earlier but
    // arrives later (another server, a retry) must start no run. Runs listen for the rest by name.
    const facts = factsOf(event);
    const exits = this.flows.filter((flow) => flow.exit.onEvents.some((matcher) => eventMatches(matcher, facts))).map((flow) => flow.id);
    await signalCustomerEvent(this.target, event.customerId, { ...facts, triggers, ...(exits.length > 0 ? { exits } : {}), ageAtDispatchMs: Math.max(0, dispatchedAt - event.timestamp) });
    await this.store.markDispatched([event.id]);
    return 'delivered';
  }

  /**
   * The decision log says why a trigger event started nothing: it is history (it happened over 24 h before it was
   * recorded: a backfill, an import's segment changes, a late sweep), or it reached Temporal too late.
   */
  private async recordLateSkips(event: StoredEvent, dispatchedAt: number): Promise<void> {
    const facts = factsOf(event);
    const recordedAsHistory = isBackfill(event, event.receivedAt);
    const lateness = (ms: number) => (ms >= 2 * 86_400_000 ? `${Math.floor(ms / 86_400_000)} days` : `${Math.round(ms / 360_000) / 10} h`);
    const decisions = [];
    for (const flow of this.flows) {
      const need = historyNeeded(flow.trigger, facts);
      const history = need ? (await this.store.eventsOf(event.customerId, { names: [need.name], since: need.since })).map(factsOf) : [];
      if (!triggerFires(flow.trigger, facts, history)) continue;
      decisions.push({
        key: `late-dispatch:${event.messageId}:${flow.id}`,
        customerId: event.customerId,
        at: dispatchedAt,
        flowId: flow.id,
        flowVersion: flow.version,
        outcome: 'skipped',
        reason: recordedAsHistory
          ? `event "${event.name}" is history: it happened at ${new Date(event.timestamp).toISOString()}, ${lateness(event.receivedAt - event.timestamp)} before it was recorded; changes older than ${BACKFILL_AGE_MS / 3_600_000} h start no flow`
          : `event "${event.name}" reached Temporal ${lateness(dispatchedAt - event.timestamp)} after it happened (Temporal was unreachable): changes older than ${BACKFILL_AGE_MS / 3_600_000} h start no flow`,
        eventMessageId: event.messageId,
        workflowId: null,
      });
    }
    if (decisions.length > 0) await this.store.recordDecisions(decisions);
  }
}
