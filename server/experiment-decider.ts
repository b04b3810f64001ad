// Checks the running experiments that have a `winner:` rule against the report counters, after each metrics fold:
// records a winner (later entrants all get it: activities assignVariant), inconclusive after max_duration, or the
// sequential test's state for the next check. Safe on several processes: a decision is recorded once
// (Store.concludeExperiment only ends a running experiment).
import { checkExperiment, variantCounts } from '../core/experiment-decision';
import type { ExperimentEvidence } from '../core/experiment-stats';
import type { FlowDefinition } from '../core/flow-types';
import type { Store } from '../store/store';

export interface ExperimentOutcome {
  experimentId: string;
  flowId: string;
  state: 'running' | 'decided' | 'inconclusive';
  winner: string | null;
}

/** One check of every running experiment of `flows` (their current versions) at `now` (epoch ms). */
export async function decideExperiments(store: Store, flows: readonly FlowDefinition[], now: number): Promise<ExperimentOutcome[]> {
  const outcomes: ExperimentOutcome[] = [];
  for (const flow of flows) {
    const splits = Object.values(flow.nodes).flatMap((node) => (node.kind === 'ab_split' && node.winner ? [{ node, rule: node.winner }] : []));
    if (splits.length === 0) continue;
    const counters = await store.metricsOf({ flowId: flow.id });
    for (const { node, rule } of splits) {
      const experiment = await store.experimentOf(node.experiment);
      if (!experiment || experiment.state !== 'running') continue;
      const counts = variantCounts(
        node.variants.map((v) => v.name),
        await store.assignmentCounts(node.experiment),
        counters,
        rule,
      );
      const check = checkExperiment({ rule, counts, startedAt: experiment.startedAt, now, previous: experiment.evidence as ExperimentEvidence | null });
      if (check.action === 'continue') {
        await store.saveExperimentEvidence(node.experiment, check.evidence as unknown as Record<string, unknown>);
        outcomes.push({ experimentId: node.experiment, flowId: flow.id, state: 'running', winner: null });
        continue;
      }
      await store.concludeExperiment(node.experiment, { state: check.state, winner: check.winner, at: now, reason: check.reason, figures: check.decision as unknown as Record<string, unknown> });
      outcomes.push({ experimentId: node.experiment, flowId: flow.id, state: check.state, winner: check.winner });
    }
  }
  return outcomes;
}
