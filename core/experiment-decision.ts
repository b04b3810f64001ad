// One check of an experiment with a `winner:` rule: its counts per variant from the report counters, the sequential
// test (core/experiment-stats decideWinner), and what to record — a winner, inconclusive after max_duration, or the
// test's state for the next check. Pure: counts, times and the previous state are passed in.
import { decideWinner, inconclusive, type ExperimentEvidence, type VariantCounts, type WinnerDecision } from './experiment-stats';
import type { WinnerRule } from './flow-types';

/** A report counter as the store sums it (store/metrics-store metricsOf): per step and variant, over the days read. */
export interface CounterRow {
  stepId: string;
  variant: string;
  metric: string;
  count: number;
}

/** The counter that measures each winner metric: unique clicks, or conversions credited to the variant's sends. */
const SUCCESS_METRIC: Record<WinnerRule['metric'], string> = { click: 'clicked', conversion: 'converted' };

/**
 * Each variant's counts: recipients are the customers assigned to it; successes, unsubscribes and complaints are the
 * counters of the sends made in its runs (flow-level rows, step '', are the holdout comparison's and are left out).
 * A count can exceed the recipients (a customer who converts twice); it is capped, since a rate is per recipient.
 */
export function variantCounts(variants: readonly string[], assigned: ReadonlyMap<string, number>, counters: readonly CounterRow[], rule: Pick<WinnerRule, 'metric'>): VariantCounts[] {
  const sum = (variant: string, metric: string): number =>
    counters.filter((row) => row.variant === variant && row.metric === metric && row.stepId !== '').reduce((total, row) => total + row.count, 0);
  return variants.map((name) => {
    const recipients = assigned.get(name) ?? 0;
    const capped = (n: number) => Math.min(n, recipients);
    return { name, recipients, successes: capped(sum(name, SUCCESS_METRIC[rule.metric])), unsubscribes: capped(sum(name, 'unsubscribed')), complaints: capped(sum(name, 'complained')) };
  });
}

export type ExperimentCheck =
  | { action: 'conclude'; state: 'decided' | 'inconclusive'; winner: string | null; reason: string; decision: WinnerDecision }
  | { action: 'continue'; evidence: ExperimentEvidence; decision: WinnerDecision };

/** The check at `now` of an experiment that started at `startedAt` (flow time of its first assignment). */
export function checkExperiment(input: { rule: WinnerRule; counts: VariantCounts[]; startedAt: number; now: number; previous: ExperimentEvidence | null }): ExperimentCheck {
  const { rule } = input;
  const decision = decideWinner({ variants: input.counts, metric: rule.metric, confidence: rule.confidence, minPerVariant: rule.minPerVariant, previous: input.previous });
  if (decision.state === 'decided') return { action: 'conclude', state: 'decided', winner: decision.winner, reason: decision.reason, decision };
  const elapsed = input.now - input.startedAt;
  if (elapsed >= rule.maxDurationMs) {
    const last = inconclusive(decision, elapsed);
    return { action: 'conclude', state: 'inconclusive', winner: null, reason: last.reason, decision: last };
  }
  return { action: 'continue', evidence: decision.evidence, decision };
}
