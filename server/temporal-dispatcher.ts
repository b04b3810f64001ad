// After an event commits, decides which flow triggers it fired (core/triggers, with the customer's
// history from the store) and hands it to the customer's arbiter in Temporal. Per-customer order is
// kept by a promise chain per customer; events owed a dispatch after a crash are redone at start.
import type { FlowDefinition } from '../core/flow-types';
import { eventNamesOfInterest, historyNeeded, isBackfill, triggerFires, type EventFacts } from '../core/triggers';
import { fireTrigger, type FiredTrigger } from '../core/entry';
import type { Profile } from '../core/profile';
import type { NewEvent, RecordEventResult, Store, StoredEvent } from '../store/store';
import { signalCustomerEvent, type SignalTarget } from '../client/customer-signals';
import type { EventDispatcher } from './dispatcher';

function factsOf(event: StoredEvent): EventFacts {
  return { messageId: event.messageId, name: event.name, type: event.type, properties: event.properties, timestamp: event.timestamp };
}

export class TemporalDispatcher implements EventDispatcher {
  private flows: FlowDefinition[] = [];
  private interesting = new Set<string>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private failures = 0;

  constructor(
    private readonly store: Store,
    private readonly target: SignalTarget,
    flows: FlowDefinition[],
    private readonly log: (message: string) => void = (m) => console.error(m),
  ) {
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
    void this.enqueue(result.event, result.profile);
  }

  /** Resolves when every dispatch queued so far has finished. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.allSettled([...this.chains.values()]);
  }

  /** Redoes dispatches that a crash left owing (committed, not yet signalled). */
  async recoverPending(batch = 500): Promise<number> {
    let total = 0;
    for (;;) {
      const pending = await this.store.listUndispatched(batch);
      if (pending.length === 0) return total;
      for (const event of pending) void this.enqueue(event);
      await this.idle();
      total += pending.length;
      if (pending.length < batch) return total;
    }
  }

  get failureCount(): number {
    return this.failures;
  }

  private enqueue(event: StoredEvent, profile?: Profile): Promise<unknown> {
    const previous = this.chains.get(event.customerId) ?? Promise.resolve();
    const next = previous.then(() => this.deliver(event, profile)).catch((err: Error) => {
      this.failures += 1;
      // The event stays marked undispatched; recoverPending() at the next start retries it.
      this.log(`[dispatch] event ${event.messageId} for ${event.customerId} not delivered yet: ${err.message}`);
    });
    this.chains.set(event.customerId, next);
    void next.finally(() => {
      if (this.chains.get(event.customerId) === next) this.chains.delete(event.customerId);
    });
    return next;
  }

  /** Triggers the event fired, each with its entry condition evaluated on the profile as of this event. */
  private async firedTriggers(event: StoredEvent, profile: Profile | undefined): Promise<FiredTrigger[]> {
    if (isBackfill(event, event.receivedAt)) return [];
    const facts = factsOf(event);
    const fired: FiredTrigger[] = [];
    for (const flow of this.flows) {
      const need = historyNeeded(flow.trigger, facts);
      const history = need ? (await this.store.eventsOf(event.customerId, { names: [need.name], since: need.since })).map(factsOf) : [];
      if (!triggerFires(flow.trigger, facts, history)) continue;
      // Recovery after a crash has no profile in hand: the current one is the best there is.
      profile ??= await this.store.getProfile(event.customerId, { withSegments: true });
      // The profile an ingest hands over does not list segments; an entry condition on them reads the stored ones.
      if (profile && profile.segments === undefined && flow.entry.when && JSON.stringify(flow.entry.when).includes('"profile.segments"')) {
        profile = { ...profile, segments: (await this.store.segmentsOf(event.customerId)).map((m) => m.segmentId) };
      }
      fired.push(fireTrigger(flow, profile, facts));
    }
    return fired;
  }

  private async deliver(event: StoredEvent, profile?: Profile): Promise<void> {
    const triggers = await this.firedTriggers(event, profile);
    await signalCustomerEvent(this.target, event.customerId, { ...factsOf(event), triggers });
    await this.store.markDispatched([event.id]);
  }
}
