// The per-customer arbiter's state as a plain class: active runs, queue, entry history, decision log
// and event dedupe. The customer workflow only wires signals and activities to it, so every rule is
// testable without Temporal. Snapshots are JSON, carried across continue-as-new.
import { arbitrate, type ActiveRun, type Decision, type PastEntry } from './arbitration';
import type { FiredTrigger } from './entry';
import type { FlowPolicy } from './flow-types';
import { eventMatches, type EventFacts } from './triggers';

/** One event delivered to a customer's arbiter, with the flows whose triggers it fired. */
export interface CustomerEventSignalInput extends EventFacts {
  triggers: FiredTrigger[];
  /** Flows whose goal (exit) event this is, a run of them active or not: a trigger that happened before it starts none. */
  exits?: string[];
}

/** The latest goal (exit) event the arbiter has handled for a flow. */
export interface HandledExit {
  /** epoch ms: when it happened (its own time) */
  at: number;
  name: string | null;
  messageId: string;
}

export interface DecisionLogEntry {
  seq: number;
  /** epoch ms (workflow time) */
  at: number;
  flowId: string;
  flowVersion: number | null;
  outcome: 'started' | 'skipped' | 'suppressed' | 'queued' | 'preempted' | 'completed' | 'converted' | 'exited' | 'failed';
  reason: string;
  eventMessageId: string | null;
  workflowId: string | null;
}

/** What a new arbiter needs of a customer's stored runs: per flow the count and latest entry, and recent trigger ids. */
export interface EntryHistory {
  flows: Array<{ flowId: string; runs: number; lastEnteredAt: number }>;
  recentTriggerIds: string[];
  /** Per flow, the latest goal event stored for the customer: what an ended arbiter had handled. */
  lastExits?: Record<string, HandledExit>;
}

/** Condenses stored flow entries (any order) into an EntryHistory. */
export function summarizeEntryHistory(entries: Array<{ flowId: string; enteredAt: number; triggerMessageId: string | null }>): EntryHistory {
  const flows = new Map<string, { flowId: string; runs: number; lastEnteredAt: number }>();
  for (const entry of entries) {
    const summary = flows.get(entry.flowId) ?? { flowId: entry.flowId, runs: 0, lastEnteredAt: entry.enteredAt };
    summary.runs += 1;
    summary.lastEnteredAt = Math.max(summary.lastEnteredAt, entry.enteredAt);
    flows.set(entry.flowId, summary);
  }
  const recentTriggerIds = [...entries]
    .sort((a, b) => a.enteredAt - b.enteredAt)
    .flatMap((e) => (e.triggerMessageId ? [e.triggerMessageId] : []))
    .slice(-SEEN_IDS_KEPT);
  return { flows: [...flows.values()].sort((a, b) => a.flowId.localeCompare(b.flowId)), recentTriggerIds };
}

export interface QueuedTrigger {
  policy: FlowPolicy;
  event: EventFacts;
  queuedAt: number;
}

export interface ArbiterSnapshot {
  customerId: string;
  activeRuns: ActiveRun[];
  queued: QueuedTrigger[];
  pastEntries: PastEntry[];
  /** Runs started so far per flow (for flow/<flow>/<customer>/<n>). */
  runCounts: Record<string, number>;
  /** The newest decisions (older ones are in the store). */
  decisions: DecisionLogEntry[];
  nextSeq: number;
  /** messageIds already handled, newest last, bounded. */
  seenMessageIds: string[];
  /** Per flow, the latest goal event handled (absent in snapshots of arbiters older than this field). */
  lastExits?: Record<string, HandledExit>;
  /** What run ids carry instead of the customer id (their pseudonymous subject); absent: the customer id. */
  workflowKey?: string;
}

export const DECISIONS_KEPT = 200;
export const SEEN_IDS_KEPT = 1000;

export function flowRunWorkflowId(flowId: string, customerId: string, runNumber: number): string {
  return `flow/${flowId}/${customerId}/${runNumber}`;
}

export function customerWorkflowId(customerId: string): string {
  return `customer/${customerId}`;
}

export interface StartCommand {
  workflowId: string;
  runNumber: number;
  policy: FlowPolicy;
  event: EventFacts;
}

export interface DecideResult {
  decision: Decision;
  /** Present when the decision is to start a run. */
  start?: StartCommand;
  /** Runs to stop because they were preempted. */
  stop: ActiveRun[];
  /** Log entries this decision produced (also appended to the snapshot). */
  logged: DecisionLogEntry[];
}

/** Snapshots are plain JSON; structuredClone does not exist in Temporal's workflow sandbox. */
function cloneSnapshot(snapshot: ArbiterSnapshot): ArbiterSnapshot {
  return JSON.parse(JSON.stringify(snapshot)) as ArbiterSnapshot;
}

export class ArbiterState {
  private readonly state: ArbiterSnapshot;

  constructor(snapshot: ArbiterSnapshot) {
    this.state = cloneSnapshot(snapshot);
  }

  /**
   * A new arbiter for a customer, from what the store remembers of their runs. The events that started
   * recent runs count as seen, so an event redelivered after the previous arbiter ended starts nothing twice.
   */
  static fresh(customerId: string, history: EntryHistory = { flows: [], recentTriggerIds: [] }, workflowKey?: string): ArbiterState {
    return new ArbiterState({
      ...(workflowKey !== undefined && workflowKey !== customerId ? { workflowKey } : {}),
      customerId,
      activeRuns: [],
      queued: [],
      pastEntries: history.flows.map(({ flowId, lastEnteredAt }) => ({ flowId, enteredAt: lastEnteredAt })),
      runCounts: Object.fromEntries(history.flows.map(({ flowId, runs }) => [flowId, runs])),
      decisions: [],
      nextSeq: 1,
      seenMessageIds: history.recentTriggerIds.slice(-SEEN_IDS_KEPT),
      lastExits: { ...(history.lastExits ?? {}) },
    });
  }

  snapshot(): ArbiterSnapshot {
    return cloneSnapshot(this.state);
  }

  get customerId(): string {
    return this.state.customerId;
  }

  get activeRuns(): readonly ActiveRun[] {
    return this.state.activeRuns;
  }

  get decisions(): readonly DecisionLogEntry[] {
    return this.state.decisions;
  }

  /** Nothing running and nothing queued: the arbiter may end. */
  isIdle(): boolean {
    return this.state.activeRuns.length === 0 && this.state.queued.length === 0;
  }

  /** True the first time a messageId is seen; false for a redelivered event (crash between commit and ack). */
  firstSighting(messageId: string): boolean {
    if (this.state.seenMessageIds.includes(messageId)) return false;
    this.state.seenMessageIds.push(messageId);
    if (this.state.seenMessageIds.length > SEEN_IDS_KEPT) this.state.seenMessageIds.shift();
    return true;
  }

  /** Active runs that react to an event of this name (their exit or wait_for events). */
  runsListeningTo(eventName: string | null): ActiveRun[] {
    if (!eventName) return [];
    return this.state.activeRuns.filter((run) => run.listensTo.includes(eventName));
  }

  /**
   * Remembers that this event is the goal of these flows: a trigger of one of them that happened before it (and
   * arrives after it: a slow server, a retry) starts no run. Only the latest per flow matters.
   */
  noteExits(event: EventFacts, flowIds: readonly string[]): void {
    const exits = (this.state.lastExits ??= {});
    for (const flowId of flowIds) {
      const known = exits[flowId];
      if (!known || event.timestamp > known.at) exits[flowId] = { at: event.timestamp, name: event.name, messageId: event.messageId };
    }
  }

  /**
   * Runs whose exit event this is: they leave the active set at once (so a trigger carried by the same
   * event is not blocked by them) and the conversion is logged. The workflow then stops them. A goal event that
   * happened before a run's trigger (it arrived late) does not end that run: the run is about what came after.
   */
  exitRunsOn(event: EventFacts, now: number): Array<{ run: ActiveRun; logged: DecisionLogEntry }> {
    if (event.type !== 'track') return [];
    const exiting = this.state.activeRuns.filter((run) => (run.triggerAt === undefined || event.timestamp >= run.triggerAt) && run.exitOn.some((matcher) => eventMatches(matcher, event)));
    this.noteExits(event, exiting.map((run) => run.flowId));
    this.state.activeRuns = this.state.activeRuns.filter((run) => !exiting.includes(run));
    return exiting.map((run) => ({
      run,
      logged: this.log({
        at: now,
        flowId: run.flowId,
        flowVersion: run.version,
        outcome: 'converted',
        reason: `goal event "${event.name}" arrived: run ends as a conversion`,
        eventMessageId: event.messageId,
        workflowId: run.workflowId,
      }),
    }));
  }

  private log(entry: Omit<DecisionLogEntry, 'seq'>): DecisionLogEntry {
    const logged = { ...entry, seq: this.state.nextSeq++ };
    this.state.decisions.push(logged);
    if (this.state.decisions.length > DECISIONS_KEPT) this.state.decisions.shift();
    return logged;
  }

  /** Decides a trigger and applies the decision to the state. */
  decide(policy: FlowPolicy, entry: { matched: boolean; reason: string }, event: EventFacts, now: number): DecideResult {
    const goal = this.state.lastExits?.[policy.flowId];
    const decision: Decision =
      goal && goal.at > event.timestamp
        ? {
            outcome: 'skipped',
            reason:
              `the flow's goal came first: "${goal.name}" (${goal.messageId}) happened at ${new Date(goal.at).toISOString()}, after this ` +
              `trigger's own time ${new Date(event.timestamp).toISOString()}; the trigger arrived late, so it starts no run`,
          }
        : arbitrate({ candidate: policy, entry, activeRuns: this.state.activeRuns, pastEntries: this.state.pastEntries, now });
    const base = { at: now, flowId: policy.flowId, flowVersion: policy.version, eventMessageId: event.messageId };
    const logged: DecisionLogEntry[] = [];
    if (decision.outcome !== 'started') {
      if (decision.outcome === 'queued') this.state.queued.push({ policy, event, queuedAt: now });
      logged.push(this.log({ ...base, outcome: decision.outcome, reason: decision.reason, workflowId: null }));
      return { decision, stop: [], logged };
    }
    for (const run of decision.preempt) {
      this.state.activeRuns = this.state.activeRuns.filter((r) => r.workflowId !== run.workflowId);
      logged.push(
        this.log({
          at: now,
          flowId: run.flowId,
          flowVersion: run.version,
          outcome: 'preempted',
          reason: `preempted by ${policy.flowId} (priority ${policy.priority} > ${run.priority})`,
          eventMessageId: event.messageId,
          workflowId: run.workflowId,
        }),
      );
    }
    const runNumber = (this.state.runCounts[policy.flowId] ?? 0) + 1;
    this.state.runCounts[policy.flowId] = runNumber;
    const workflowId = flowRunWorkflowId(policy.flowId, this.state.workflowKey ?? this.state.customerId, runNumber);
    this.state.activeRuns.push({
      workflowId,
      flowId: policy.flowId,
      version: policy.version,
      priority: policy.priority,
      group: policy.group,
      exitOn: policy.exitOn,
      listensTo: policy.listensTo,
      startedAt: now,
      triggerAt: event.timestamp,
    });
    // Re-entry rules read only the latest entry per flow, so one is kept per flow: the state stays small.
    this.state.pastEntries = [...this.state.pastEntries.filter((e) => e.flowId !== policy.flowId), { flowId: policy.flowId, enteredAt: now }];
    logged.push(this.log({ ...base, outcome: 'started', reason: decision.reason, workflowId }));
    return { decision, start: { workflowId, runNumber, policy, event }, stop: decision.preempt, logged };
  }

  /**
   * A run reported its end. Returns the log entry, or undefined when the run was no longer active
   * (it had been preempted, and its end was already logged).
   */
  runEnded(workflowId: string, outcome: 'completed' | 'converted' | 'exited' | 'failed' | 'preempted', reason: string, now: number): DecisionLogEntry | undefined {
    const run = this.state.activeRuns.find((r) => r.workflowId === workflowId);
    if (!run) return undefined;
    this.state.activeRuns = this.state.activeRuns.filter((r) => r.workflowId !== workflowId);
    return this.log({ at: now, flowId: run.flowId, flowVersion: run.version, outcome, reason, eventMessageId: null, workflowId });
  }

  /** Takes every queued trigger whose group has room now, oldest first; the workflow decides each again. */
  takeRunnableQueued(): QueuedTrigger[] {
    const runnable: QueuedTrigger[] = [];
    const waiting: QueuedTrigger[] = [];
    for (const item of this.state.queued) {
      const blocked = this.state.activeRuns.some((run) => run.group === item.policy.group && run.priority >= item.policy.priority);
      (blocked ? waiting : runnable).push(item);
    }
    this.state.queued = waiting;
    return runnable;
  }
}
