// The arbitration policy: given a flow that wants a customer and what that customer is already in,
// decide to start it (preempting lower-priority runs), suppress it, queue it or skip it. Pure.
import { formatDuration } from './duration';
import type { EventMatcher, FlowPolicy } from './flow-types';

export interface ActiveRun {
  workflowId: string;
  flowId: string;
  version: number;
  priority: number;
  group: string;
  exitOn: EventMatcher[];
  listensTo: string[];
  /** epoch ms */
  startedAt: number;
  /** epoch ms: when the trigger event happened (its own time); an exit event older than it does not end the run. */
  triggerAt?: number;
}

export interface PastEntry {
  flowId: string;
  /** epoch ms */
  enteredAt: number;
}

export interface ArbitrationInput {
  candidate: FlowPolicy;
  /** Result of the flow's entry condition for this customer and event. */
  entry: { matched: boolean; reason: string };
  activeRuns: ActiveRun[];
  pastEntries: PastEntry[];
  /** epoch ms */
  now: number;
}

export type Decision =
  | { outcome: 'started'; reason: string; preempt: ActiveRun[] }
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'suppressed'; reason: string; by: ActiveRun }
  | { outcome: 'queued'; reason: string; behind: ActiveRun };

function describeRun(run: ActiveRun): string {
  return `${run.flowId} v${run.version} (priority ${run.priority}, ${run.workflowId})`;
}

/** Applies, in order: entry condition, one run per flow, re-entry rule, then priority within the group. */
export function arbitrate(input: ArbitrationInput): Decision {
  const { candidate, entry, activeRuns, pastEntries, now } = input;

  if (!entry.matched) return { outcome: 'skipped', reason: `entry condition not met: ${entry.reason}` };

  const sameFlow = activeRuns.find((run) => run.flowId === candidate.flowId);
  if (sameFlow) return { outcome: 'skipped', reason: `already in this flow: ${describeRun(sameFlow)}` };

  const previous = pastEntries.filter((e) => e.flowId === candidate.flowId);
  const lastEntered = previous.reduce<number | undefined>((max, e) => (max === undefined || e.enteredAt > max ? e.enteredAt : max), undefined);
  if (lastEntered !== undefined) {
    const rule = candidate.reentry;
    if (rule.kind === 'once') {
      return { outcome: 'skipped', reason: `re-entry rule "once": entered before at ${new Date(lastEntered).toISOString()}` };
    }
    if (rule.kind === 'cooldown' && now < lastEntered + rule.ms) {
      return {
        outcome: 'skipped',
        reason:
          `re-entry cooldown ${formatDuration(rule.ms)}: last entered ${new Date(lastEntered).toISOString()}, ` +
          `next entry allowed from ${new Date(lastEntered + rule.ms).toISOString()}`,
      };
    }
  }

  const rivals = activeRuns.filter((run) => run.group === candidate.group);
  const strongest = rivals.reduce<ActiveRun | undefined>((best, run) => (!best || run.priority > best.priority ? run : best), undefined);
  if (strongest && strongest.priority >= candidate.priority) {
    const why =
      `group "${candidate.group}" already runs ${describeRun(strongest)}, ` +
      `which ${strongest.priority === candidate.priority ? 'has equal' : 'has higher'} priority than ${candidate.flowId} (${candidate.priority})`;
    return candidate.onConflict === 'queue'
      ? { outcome: 'queued', reason: `${why}; queued until it ends`, behind: strongest }
      : { outcome: 'suppressed', reason: why, by: strongest };
  }
  const preempt = rivals;
  const reason =
    preempt.length === 0
      ? `entry condition met, no other run in group "${candidate.group}"`
      : `priority ${candidate.priority} beats ${preempt.map(describeRun).join(', ')} in group "${candidate.group}": preempting`;
  return { outcome: 'started', reason, preempt };
}
