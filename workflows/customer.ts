// The per-customer arbiter (customer/<id>): applies core's arbitration to each event in order, starts,
// stops and feeds flow runs, and logs every decision. Ends when the customer has nothing in flight.
import {
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  proxyLocalActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { ArbiterState, type ArbiterSnapshot, type CustomerEventSignalInput, type DecisionLogEntry } from '../core/arbiter-state';
import type { FiredTrigger } from '../core/entry';
import type { EventFacts } from '../core/triggers';
import { activeRunsQuery, customerEventSignal, decisionsQuery, runEndedSignal, runEventSignal, stopRunSignal, type RunOutcome } from './messages';
import { flowRunWorkflow } from './flow-run';
import { flowRunSearchAttributes } from './search-attributes';

type Activities = ReturnType<typeof createActivities>;

// Local activities: short store reads/writes on the worker, recorded in history without a task round trip.
const store = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '200ms', maximumInterval: '10s' },
});

export interface CustomerWorkflowInput {
  customerId: string;
  /** Set the CustomerId/FlowId/FlowVersion search attributes on flow runs. */
  searchAttributes: boolean;
  /** What flow run ids and CustomerId carry instead of the customer id (their pseudonymous subject); absent: the id. */
  workflowKey?: string;
  /** State carried across continue-as-new. */
  snapshot?: ArbiterSnapshot;
}

type InboxItem =
  | { kind: 'event'; event: CustomerEventSignalInput }
  | { kind: 'ended'; workflowId: string; outcome: RunOutcome; reason: string };

function factsOf(event: CustomerEventSignalInput): EventFacts {
  const { triggers: _triggers, exits: _exits, ...facts } = event;
  return facts;
}

export async function customerWorkflow(input: CustomerWorkflowInput): Promise<void> {
  const inbox: InboxItem[] = [];
  let state: ArbiterState | undefined = input.snapshot ? new ArbiterState(input.snapshot) : undefined;

  setHandler(customerEventSignal, (event) => void inbox.push({ kind: 'event', event }));
  setHandler(runEndedSignal, (ended) => void inbox.push({ kind: 'ended', ...ended }));
  setHandler(decisionsQuery, () => [...(state?.decisions ?? [])]);
  setHandler(activeRunsQuery, () => [...(state?.activeRuns ?? [])]);

  if (!state) state = ArbiterState.fresh(input.customerId, await store.loadEntryHistory(input.customerId), input.workflowKey);
  const arbiter = state;
  const keyPrefix = `${workflowInfo().workflowId}:${workflowInfo().runId}`;

  const keyed = (logged: DecisionLogEntry[]) => logged.map((d) => ({ ...d, key: `${keyPrefix}:${d.seq}` }));
  const persist = (logged: DecisionLogEntry[]) =>
    logged.length === 0 ? Promise.resolve() : store.recordArbitration({ customerId: input.customerId, decisions: keyed(logged) });

  async function decide({ policy, entry }: FiredTrigger, event: EventFacts): Promise<void> {
    const result = arbiter.decide(policy, entry, event, Date.now());
    // A decision that starts a run is recorded by that run as its first step (one activity fewer on
    // the hot path); any other decision is recorded here.
    if (!result.start) await persist(result.logged);
    for (const run of result.stop) {
      await signalQuietly(() =>
        getExternalWorkflowHandle(run.workflowId).signal(stopRunSignal, { outcome: 'preempted', reason: result.decision.reason, eventMessageId: event.messageId }),
      );
    }
    if (result.start) {
      const { workflowId, policy } = result.start;
      await startChild(flowRunWorkflow, {
        workflowId,
        args: [
          {
            customerId: input.customerId,
            flowId: policy.flowId,
            version: policy.version,
            parentWorkflowId: workflowInfo().workflowId,
            trigger: event,
            admission: { runNumber: result.start.runNumber, enteredAt: Date.now(), triggerMessageId: event.messageId, decisions: keyed(result.logged) },
          },
        ],
        // Runs outlive an arbiter that continues-as-new; they report back by signal, not by result.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: input.searchAttributes ? flowRunSearchAttributes(input.workflowKey ?? input.customerId, policy.flowId, policy.version) : undefined,
        memo: { customerId: input.customerId, flowId: policy.flowId, flowVersion: policy.version, trigger: event.messageId },
      });
    }
  }

  async function handleEvent(event: CustomerEventSignalInput): Promise<void> {
    if (!arbiter.firstSighting(event.messageId)) return; // redelivered after a crash between commit and ack
    const facts = factsOf(event);
    const now = Date.now();
    const exits = arbiter.exitRunsOn(facts, now);
    // A goal event is remembered even with no run to end: a trigger that happened before it, arriving after it, starts none.
    arbiter.noteExits(facts, event.exits ?? []);
    await persist(exits.map((e) => e.logged));
    for (const { run, logged } of exits) {
      await signalQuietly(() =>
        getExternalWorkflowHandle(run.workflowId).signal(stopRunSignal, { outcome: 'converted', reason: logged.reason, eventMessageId: facts.messageId }),
      );
    }
    for (const run of arbiter.runsListeningTo(facts.name)) {
      await signalQuietly(() => getExternalWorkflowHandle(run.workflowId).signal(runEventSignal, facts));
    }
    for (const trigger of event.triggers) await decide(trigger, facts);
  }

  async function handleEnded(item: Extract<InboxItem, { kind: 'ended' }>): Promise<void> {
    const logged = arbiter.runEnded(item.workflowId, item.outcome, item.reason, Date.now());
    if (logged) await persist([logged]);
    for (const queued of arbiter.takeRunnableQueued()) {
      // The profile may have changed while it waited: its entry condition is checked again now.
      const entry = await store.checkEntry({ customerId: input.customerId, flowId: queued.policy.flowId, version: queued.policy.version, event: queued.event });
      await decide({ policy: queued.policy, entry }, queued.event);
    }
  }

  for (;;) {
    await condition(() => inbox.length > 0 || arbiter.isIdle());
    const item = inbox.shift();
    if (!item) break; // idle and nothing pending: the customer has nothing in flight
    if (item.kind === 'event') await handleEvent(item.event);
    else await handleEnded(item);
    if (workflowInfo().continueAsNewSuggested && inbox.length === 0) {
      await continueAsNew<typeof customerWorkflow>({ ...input, snapshot: arbiter.snapshot() });
    }
  }
}

/** A run that already closed cannot be signalled; that is not an error for the arbiter. */
async function signalQuietly(send: () => Promise<void>): Promise<void> {
  try {
    await send();
  } catch {
    /* the run has already ended; its own end report is on the way or done */
  }
}
