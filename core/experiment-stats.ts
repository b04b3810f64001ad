// The statistics behind experiments: rates and differences with confidence intervals, and an always-valid sequential
// test that decides an experiment's winner (or says why it cannot yet) however often the results are checked.
// Pure: no I/O, no clock, no randomness. Distributions come from @stdlib, not from hand-written approximations.
//
// Why a sequential test: a fixed-sample test checked every hour and stopped at the first p < 0.05 declares a winner in
// a large share of A/A experiments (well over 20 % at 50 looks). The mixture SPRT of Johari, Pekelis & Walsh ("Always
// valid inference", 2017) gives a p-value that may be checked after every send: the chance that it EVER falls below
// α when the variants are equal is at most α (Ville's inequality on a nonnegative martingale).
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import { formatDuration } from './duration';
import type { WinnerMetric } from './flow-types';

/** A point estimate with a two-sided confidence interval. */
export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}

/** Binary outcomes of one group: how many of `trials` recipients had the outcome. */
export interface Proportion {
  successes: number;
  trials: number;
}

/** A non-negative amount per recipient (revenue), summarised so it can be kept incrementally as counters. */
export interface AmountSummary {
  /** recipients, including those with amount 0 */
  count: number;
  sum: number;
  sumOfSquares: number;
}

/**
 * The standard deviation of the normal mixing distribution of the mSPRT, on the standardized effect
 * (difference of rates divided by the per-recipient standard deviation √(p̄(1−p̄))).
 *
 * Why 0.1: the mSPRT is most sensitive around n_eff·δ² ≈ 8 (n_eff = n_a·n_b/(n_a+n_b)), and its threshold on |z| at
 * α = 0.05 stays within 3.0–3.4 for n_eff·δ² anywhere from 3 to 250, so δ = 0.1 serves experiments from about 600 to
 * 50,000 recipients per variant. Effects worth acting on in email sit at that scale: 5 % → 8 % clicks is 0.12,
 * 2 % → 3 % conversions is 0.065. Mixing on the standardized effect rather than the raw difference makes the one default
 * fit rare outcomes (complaints at 0.1 %) and common ones (clicks at 10 %) alike. It is Johari et al.'s τ² = δ²·σ̂²
 * with the same plug-in variance they use; it is fixed before any data, as the martingale argument requires.
 */
export const DEFAULT_MIXING_SD = 0.1;

/** The two-sided critical value z_{1−α/2} for a confidence level in (0, 1). */
export function criticalValue(confidence: number): number {
  checkConfidence(confidence);
  return normalQuantile(1 - (1 - confidence) / 2, 0, 1);
}

/**
 * The Wilson score interval for a proportion (Wilson 1927; method 3 of Newcombe 1998): the rates p for which the score
 * test |p̂ − p| / √(p(1−p)/n) ≤ z does not reject. Unlike p̂ ± z·√(p̂(1−p̂)/n) it stays inside [0, 1] and does not
 * collapse to a point at 0 or n successes, which matters for the rare outcomes email measures. Null without trials.
 */
export function wilsonInterval(successes: number, trials: number, confidence: number): Interval | null {
  checkProportion({ successes, trials }, 'wilsonInterval');
  const z = criticalValue(confidence);
  if (trials === 0) return null;
  const p = successes / trials;
  const z2 = z * z;
  const denominator = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials));
  // At 0 or n successes the bound that should be exactly 0 or 1 comes out a rounding error away from it.
  return {
    estimate: p,
    lower: successes === 0 ? 0 : Math.max(0, centre - half),
    upper: successes === trials ? 1 : Math.min(1, centre + half),
  };
}

/**
 * rate(a) − rate(b) with Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference
 * between independent proportions", method 10), built from the two Wilson intervals. Chosen over the Wald interval
 * because Wald's coverage falls far below nominal for small rates and small samples (Newcombe's Table III), exactly
 * the complaint and conversion rates an experiment watches. Null when either group has no trials.
 */
export function proportionDifference(a: Proportion, b: Proportion, confidence: number): Interval | null {
  checkProportion(a, 'proportionDifference');
  checkProportion(b, 'proportionDifference');
  const wa = wilsonInterval(a.successes, a.trials, confidence);
  const wb = wilsonInterval(b.successes, b.trials, confidence);
  if (!wa || !wb) return null;
  const d = wa.estimate - wb.estimate;
  return {
    estimate: d,
    lower: d - Math.hypot(wa.estimate - wa.lower, wb.upper - wb.estimate),
    upper: d + Math.hypot(wa.upper - wa.estimate, wb.estimate - wb.lower),
  };
}

/** The mean amount per recipient with a normal-approximation interval; null with fewer than two recipients. */
export function meanInterval(summary: AmountSummary, confidence: number): (Interval & { standardError: number }) | null {
  checkAmounts(summary, 'meanInterval');
  const z = criticalValue(confidence);
  if (summary.count < 2) return null;
  const mean = summary.sum / summary.count;
  const standardError = Math.sqrt(sampleVariance(summary) / summary.count);
  return { estimate: mean, lower: mean - z * standardError, upper: mean + z * standardError, standardError };
}

/**
 * mean(a) − mean(b) with a Welch (unequal variances) interval on the normal approximation, from counts, sums and sums of
 * squares: the "revenue per recipient" lift of a flow against its holdout. Revenue is mostly zeros with a long tail, so
 * the interval leans on the central limit theorem and wants hundreds of recipients per group; the normal quantile rather
 * than Student's t is used because at those sizes they agree to the third digit. Null with fewer than two per group.
 */
export function meanDifference(a: AmountSummary, b: AmountSummary, confidence: number): (Interval & { standardError: number }) | null {
  checkAmounts(a, 'meanDifference');
  checkAmounts(b, 'meanDifference');
  const z = criticalValue(confidence);
  if (a.count < 2 || b.count < 2) return null;
  const d = a.sum / a.count - b.sum / b.count;
  const standardError = Math.sqrt(sampleVariance(a) / a.count + sampleVariance(b) / b.count);
  return { estimate: d, lower: d - z * standardError, upper: d + z * standardError, standardError };
}

/**
 * Evidence between two groups that survives repeated checks. Each field is an always-valid p-value (the least 1/Λ over
 * the checks so far) for one direction: `aAbove` for "a's rate is above b's", `aBelow` for "below". Kept per direction
 * because a two-sided p-value forgets which way the data leaned when it fell; each direction alone is a valid one-sided
 * test, and their minimum is the two-sided always-valid p-value.
 */
export interface SequentialState {
  aAbove: number;
  aBelow: number;
}

export interface SequentialResult extends SequentialState {
  /** min(aAbove, aBelow): the two-sided always-valid p-value for "a and b have the same rate" */
  pValue: number;
  /** the pooled two-proportion z statistic at this check (positive when a's rate is above b's) */
  z: number;
  /** natural log of the mixture likelihood ratio Λ at this check */
  logLikelihoodRatio: number;
}

export const NO_EVIDENCE: SequentialState = Object.freeze({ aAbove: 1, aBelow: 1 });

/**
 * One check of the mixture SPRT for rate(a) − rate(b) = 0 (Johari, Pekelis & Walsh 2017, normal approximation), given
 * the cumulative counts so far and the state the previous check returned (null at the first check).
 *
 * With θ̂ the observed difference, v = p̄(1−p̄)(1/n_a + 1/n_b) its variance under the null (pooled rate p̄), and a normal
 * mixture N(0, τ²) over the true difference, the likelihood ratio is
 *   Λ = √(v/(v+τ²)) · exp(θ̂²τ² / (2v(v+τ²))),
 * and with τ² = δ²·p̄(1−p̄) (see DEFAULT_MIXING_SD), x = τ²/v = δ²·n_a·n_b/(n_a+n_b) and z² = θ̂²/v this is
 *   log Λ = z²·x / (2(1+x)) − ½·log(1+x).
 * The pooled variance is the null's own and never zero unless both groups are all-0 or all-1 (then θ̂ = 0 and Λ = 1).
 */
export function alwaysValidTest(a: Proportion, b: Proportion, previous: SequentialState | null, mixingSd: number = DEFAULT_MIXING_SD): SequentialResult {
  checkProportion(a, 'alwaysValidTest');
  checkProportion(b, 'alwaysValidTest');
  if (!(mixingSd > 0 && Number.isFinite(mixingSd))) throw new RangeError(`alwaysValidTest: mixingSd must be a positive number, got ${mixingSd}`);
  const before = previous ?? NO_EVIDENCE;
  let z = 0;
  let logLikelihoodRatio = 0;
  if (a.trials > 0 && b.trials > 0) {
    const pooled = (a.successes + b.successes) / (a.trials + b.trials);
    const variance = pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials);
    if (variance > 0) {
      z = (a.successes / a.trials - b.successes / b.trials) / Math.sqrt(variance);
      const x = mixingSd * mixingSd * ((a.trials * b.trials) / (a.trials + b.trials));
      logLikelihoodRatio = (z * z * x) / (2 * (1 + x)) - 0.5 * Math.log1p(x);
    }
  }
  const p = Math.min(1, Math.exp(-logLikelihoodRatio));
  const aAbove = z > 0 ? Math.min(before.aAbove, p) : before.aAbove;
  const aBelow = z < 0 ? Math.min(before.aBelow, p) : before.aBelow;
  return { aAbove, aBelow, pValue: Math.min(aAbove, aBelow), z, logLikelihoodRatio };
}

// ---------------------------------------------------------------------------------------------------------------------
// Deciding a winner

/** One variant's cumulative counts; `successes` counts the winner metric (unique clicks, or attributed conversions). */
export interface VariantCounts {
  name: string;
  recipients: number;
  successes: number;
  unsubscribes: number;
  complaints: number;
}

/** What a comparison is about: the winner metric, or one of the guardrails. */
export type Measure = WinnerMetric | 'unsubscribe' | 'complaint';

/** The sequential state of one pair on one measure, keyed by names so it survives a change in variant order. */
export interface PairEvidence extends SequentialState {
  a: string;
  b: string;
  measure: Measure;
}

/** What decideWinner needs from its previous check; plain JSON, for the store. */
export interface ExperimentEvidence {
  pairs: PairEvidence[];
  /** set once decided: a decision is final (later entrants all get the winner, so there is nothing left to compare) */
  winner: string | null;
}

export interface VariantFigures {
  name: string;
  recipients: number;
  /** the winner metric's rate with its Wilson interval (null without recipients) */
  rate: Interval | null;
  unsubscribeRate: Interval | null;
  complaintRate: Interval | null;
}

export interface ComparisonFigures {
  a: string;
  b: string;
  measure: Measure;
  /**
   * rate(a) − rate(b) with Newcombe's interval at the experiment's confidence: a description of the data at this check,
   * not valid under repeated looks. Decisions use only the always-valid p-values below.
   */
  difference: Interval | null;
  /** always-valid p-values: two-sided, and for each direction */
  pValue: number;
  aAbove: number;
  aBelow: number;
}

/** A variant that can never win: significantly worse than `worseThan` on a guardrail (one-sided, always-valid). */
export interface GuardrailBlock {
  variant: string;
  worseThan: string;
  measure: 'unsubscribe' | 'complaint';
  pValue: number;
}

export type ExperimentState = 'waiting' | 'running' | 'decided' | 'inconclusive';

export interface WinnerDecision {
  /** waiting: below the minimum sample; running: no decision yet; decided: `winner` is set; inconclusive: see `inconclusive` */
  state: ExperimentState;
  winner: string | null;
  metric: WinnerMetric;
  confidence: number;
  /** the significance each "best beats j" comparison must reach: (1 − confidence) / (k − 1) */
  decisionAlpha: number;
  /** the significance at which a worse unsubscribe or complaint rate blocks a variant: 1 − confidence */
  guardrailAlpha: number;
  minPerVariant: number;
  variants: VariantFigures[];
  /** every pair in input order, on the winner metric, then on unsubscribes, then on complaints */
  comparisons: ComparisonFigures[];
  /** every variant a guardrail blocks, with whom it compares worse */
  blocked: GuardrailBlock[];
  /** pass back as `previous` at the next check */
  evidence: ExperimentEvidence;
  /** one paragraph for people: why this state, with the figures that made it */
  reason: string;
}

export interface WinnerInput {
  variants: VariantCounts[];
  metric: WinnerMetric;
  confidence: number;
  minPerVariant: number;
  /** the `evidence` of the previous check, or null at the first */
  previous: ExperimentEvidence | null;
  /** see DEFAULT_MIXING_SD */
  mixingSd?: number;
}

/**
 * One check of an experiment: decides a winner only when the variant with the best observed rate beats every other
 * variant, each by the always-valid test at (1 − confidence)/(k − 1), and is not significantly worse than any other on
 * unsubscribes or complaints (one-sided, same test, at 1 − confidence).
 *
 * Why the Bonferroni divisor is k − 1 and not the k(k−1)/2 pairs: with all variants equal, a winner w ≠ v₁ needs "w
 * beats v₁" and v₁ needs "v₁ beats v₂", so every possible winner implies a false rejection among the k − 1 comparisons
 * (v₁, w). The chance of any winner is at most (k − 1)·α/(k − 1) = α, however often the experiment is checked.
 *
 * Guardrails use the undivided 1 − confidence: wrongly blocking a variant only delays a decision, while wrongly
 * passing one sends everyone a message that drives people away, so the guardrail errs toward blocking.
 */
export function decideWinner(input: WinnerInput): WinnerDecision {
  const { variants, metric, confidence, minPerVariant } = input;
  checkConfidence(confidence);
  if (metric !== 'click' && metric !== 'conversion') throw new RangeError(`decideWinner: metric must be "click" or "conversion", got ${JSON.stringify(metric)}`);
  if (!Number.isInteger(minPerVariant) || minPerVariant < 0) throw new RangeError(`decideWinner: minPerVariant must be a non-negative integer, got ${minPerVariant}`);
  if (variants.length < 2) throw new RangeError(`decideWinner: an experiment needs at least two variants, got ${variants.length}`);
  const names = new Set<string>();
  for (const v of variants) {
    if (names.has(v.name)) throw new RangeError(`decideWinner: variant names must be unique, "${v.name}" appears twice`);
    names.add(v.name);
    for (const count of [v.successes, v.unsubscribes, v.complaints]) checkProportion({ successes: count, trials: v.recipients }, `decideWinner (variant "${v.name}")`);
  }
  const mixingSd = input.mixingSd ?? DEFAULT_MIXING_SD;
  const k = variants.length;
  const decisionAlpha = (1 - confidence) / (k - 1);
  const guardrailAlpha = 1 - confidence;
  const measures: Measure[] = [metric, 'unsubscribe', 'complaint'];
  const counted = (v: VariantCounts, m: Measure): Proportion => ({ successes: m === 'unsubscribe' ? v.unsubscribes : m === 'complaint' ? v.complaints : v.successes, trials: v.recipients });

  const previousPairs = input.previous?.pairs ?? [];
  const short = variants.filter((v) => v.recipients < minPerVariant);
  // Before the pre-declared minimum nothing is tested: the normal approximation is poor on a handful of recipients, and
  // evidence taken there would stay in the running minimum for good.
  const testing = short.length === 0;

  const comparisons: ComparisonFigures[] = [];
  const evidence: PairEvidence[] = [];
  for (const measure of measures) {
    for (let i = 0; i < k; i++) {
      for (let j = i + 1; j < k; j++) {
        const a = variants[i]!;
        const b = variants[j]!;
        const before = findEvidence(previousPairs, a.name, b.name, measure);
        const state = testing ? alwaysValidTest(counted(a, measure), counted(b, measure), before, mixingSd) : before ?? NO_EVIDENCE;
        evidence.push({ a: a.name, b: b.name, measure, aAbove: state.aAbove, aBelow: state.aBelow });
        comparisons.push({
          a: a.name,
          b: b.name,
          measure,
          difference: proportionDifference(counted(a, measure), counted(b, measure), confidence),
          pValue: Math.min(state.aAbove, state.aBelow),
          aAbove: state.aAbove,
          aBelow: state.aBelow,
        });
      }
    }
  }
  // Evidence this check does not recompute (a variant missing from this check's counts) is kept, never lost.
  for (const old of previousPairs) {
    if (!findEvidence(evidence, old.a, old.b, old.measure)) evidence.push({ ...old });
  }

  const figures: VariantFigures[] = variants.map((v) => ({
    name: v.name,
    recipients: v.recipients,
    rate: wilsonInterval(v.successes, v.recipients, confidence),
    unsubscribeRate: wilsonInterval(v.unsubscribes, v.recipients, confidence),
    complaintRate: wilsonInterval(v.complaints, v.recipients, confidence),
  }));
  const directional = (a: string, b: string, measure: Measure): number => findEvidence(evidence, a, b, measure)?.aAbove ?? 1;
  const blocks: GuardrailBlock[] = [];
  for (const v of variants) {
    for (const measure of ['unsubscribe', 'complaint'] as const) {
      for (const other of variants) {
        if (other === v) continue;
        const pValue = directional(v.name, other.name, measure);
        if (pValue <= guardrailAlpha) blocks.push({ variant: v.name, worseThan: other.name, measure, pValue });
      }
    }
  }
  const base = { metric, confidence, decisionAlpha, guardrailAlpha, minPerVariant, variants: figures, comparisons, blocked: blocks };
  const result = (state: ExperimentState, winner: string | null, reason: string): WinnerDecision => ({
    state,
    winner,
    ...base,
    evidence: { pairs: evidence, winner: state === 'decided' ? winner : null },
    reason,
  });
  const label = metricLabel(metric);
  const level = `${formatNumber(confidence * 100)}%`;

  const earlier = input.previous?.winner ?? null;
  if (earlier !== null && names.has(earlier)) {
    return result('decided', earlier, `${earlier} was decided the winner on ${label} at an earlier check; a decision is final. ${rateSentence(figures, level)}`);
  }

  if (!testing) {
    const missing = short.map((v) => `${v.name} has ${v.recipients}`).join(', ');
    return result('waiting', null, `Waiting for the minimum sample: no decision before every variant has ${minPerVariant} recipients (${missing}). ${rateSentence(figures, level)}`);
  }

  const rateOf = (v: VariantCounts): number => (v.recipients === 0 ? 0 : v.successes / v.recipients);
  const top = Math.max(...variants.map(rateOf));
  const leaders = variants.filter((v) => rateOf(v) === top);
  if (leaders.length > 1) {
    return result('running', null, `No winner yet: ${leaders.map((v) => v.name).join(' and ')} are tied on ${label}. ${rateSentence(figures, level)}`);
  }
  const best = leaders[0]!;
  const others = variants.filter((v) => v !== best);

  const bestBlocks = blocks.filter((block) => block.variant === best.name);
  if (bestBlocks.length > 0) {
    return result(
      'running',
      null,
      `No winner: ${best.name} has the best ${label} but cannot win, because ${describeBlocks(bestBlocks, guardrailAlpha)}; ` +
        `a variant with a significantly worse unsubscribe or complaint rate never wins. ${rateSentence(figures, level)}`,
    );
  }

  const pairs = others.map((other) => ({ other, p: directional(best.name, other.name, metric), difference: findComparison(comparisons, best.name, other.name, metric) }));
  const unbeaten = pairs.filter((pair) => pair.p > decisionAlpha);
  if (unbeaten.length > 0) {
    const weakest = unbeaten.reduce((x, y) => (y.p > x.p ? y : x));
    return result(
      'running',
      null,
      `No winner yet: ${best.name} has the best ${label} but does not yet beat ${unbeaten.map((pair) => pair.other.name).join(', ')} significantly ` +
        `(always-valid p = ${formatP(weakest.p)} against ${weakest.other.name}, needs ≤ ${formatP(decisionAlpha)}). ${rateSentence(figures, level)}`,
    );
  }
  const against = pairs.map((pair) => `${pair.other.name} by ${formatDifference(pair.difference, level)} (always-valid p = ${formatP(pair.p)} ≤ ${formatP(decisionAlpha)})`).join('; ');
  return result('decided', best.name, `${best.name} wins on ${label}: it beats ${against}, and no guardrail is worse. ${rateSentence(figures, level)}`);
}

/**
 * The result to record when an experiment reaches its maximum duration without a decision: the last check's figures,
 * marked inconclusive, with a reason that says what was missing. A decision taken at that same check stands and is
 * returned unchanged. The caller owns the clock; `elapsedMs` is how long the experiment ran.
 */
export function inconclusive(last: WinnerDecision, elapsedMs: number): WinnerDecision {
  if (last.state === 'decided') return last;
  const level = `${formatNumber(last.confidence * 100)}%`;
  const label = metricLabel(last.metric);
  let why: string;
  if (last.state === 'waiting') {
    const short = last.variants.filter((v) => v.recipients < last.minPerVariant).map((v) => `${v.name} has ${v.recipients}`);
    why = `the minimum sample of ${last.minPerVariant} recipients per variant was never reached (${short.join(', ')})`;
  } else {
    const rateOf = (v: VariantFigures): number => v.rate?.estimate ?? -1;
    const top = Math.max(...last.variants.map(rateOf));
    const leaders = last.variants.filter((v) => rateOf(v) === top);
    const leader = leaders[0]!;
    const leaderBlocks = last.blocked.filter((block) => block.variant === leader.name);
    if (leaders.length > 1) {
      why = `${leaders.map((v) => v.name).join(' and ')} were tied on ${label}`;
    } else if (leaderBlocks.length > 0) {
      why = `${leader.name} had the best ${label} but cannot win, because ${describeBlocks(leaderBlocks, last.guardrailAlpha)}`;
    } else {
      const pairs = last.variants
        .filter((v) => v !== leader)
        .map((other) => ({ other, p: findEvidence(last.evidence.pairs, leader.name, other.name, last.metric)?.aAbove ?? 1 }));
      const weakest = pairs.reduce((x, y) => (y.p > x.p ? y : x));
      const difference = findComparison(last.comparisons, leader.name, weakest.other.name, last.metric);
      why =
        `${leader.name} had the best ${label} but did not beat ${weakest.other.name} significantly ` +
        `(always-valid p = ${formatP(weakest.p)}, needed ≤ ${formatP(last.decisionAlpha)}; difference ${formatDifference(difference, level)})`;
    }
  }
  return {
    ...last,
    state: 'inconclusive',
    winner: null,
    evidence: { ...last.evidence, winner: null },
    reason: `Inconclusive after ${formatDuration(elapsedMs)} (the maximum duration): ${why}. ${rateSentence(last.variants, level)}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------------

function findEvidence<T extends PairEvidence>(pairs: readonly T[], a: string, b: string, measure: Measure): SequentialState | null {
  for (const pair of pairs) {
    if (pair.measure !== measure) continue;
    if (pair.a === a && pair.b === b) return { aAbove: pair.aAbove, aBelow: pair.aBelow };
    // Stored the other way round: "b above a" is "a below b".
    if (pair.a === b && pair.b === a) return { aAbove: pair.aBelow, aBelow: pair.aAbove };
  }
  return null;
}

function findComparison(comparisons: ComparisonFigures[], a: string, b: string, measure: Measure): Interval | null {
  for (const c of comparisons) {
    if (c.measure !== measure || !c.difference) continue;
    if (c.a === a && c.b === b) return c.difference;
    if (c.a === b && c.b === a) return { estimate: -c.difference.estimate, lower: -c.difference.upper, upper: -c.difference.lower };
  }
  return null;
}

function describeBlocks(blocks: GuardrailBlock[], alpha: number): string {
  return blocks
    .map((block) => `its ${block.measure} rate is significantly worse than ${block.worseThan}'s (always-valid p = ${formatP(block.pValue)} ≤ ${formatP(alpha)})`)
    .join(' and ');
}

function metricLabel(metric: WinnerMetric): string {
  return metric === 'click' ? 'click rate' : 'conversion rate';
}

function rateSentence(variants: VariantFigures[], level: string): string {
  const parts = variants.map((v) =>
    v.rate ? `${v.name} ${formatPercent(v.rate.estimate)} (${level} CI ${formatPercent(v.rate.lower)}–${formatPercent(v.rate.upper)}, n = ${v.recipients})` : `${v.name} no recipients yet`,
  );
  return `Rates: ${parts.join('; ')}.`;
}

function formatDifference(difference: Interval | null, level: string): string {
  if (!difference) return 'unknown';
  const points = (x: number) => `${x >= 0 ? '+' : '−'}${(Math.abs(x) * 100).toFixed(2)}`;
  return `${points(difference.estimate)} points (${level} CI ${points(difference.lower)} to ${points(difference.upper)})`;
}

function formatPercent(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

function formatNumber(x: number): string {
  return String(Number(x.toFixed(2)));
}

function formatP(p: number): string {
  if (p < 0.0001) return '< 0.0001';
  return String(Number(p.toPrecision(2)));
}

function sampleVariance(s: AmountSummary): number {
  // sumOfSquares − sum²/n loses digits when the mean is large against the spread; a tiny negative result is rounding.
  return Math.max(0, (s.sumOfSquares - (s.sum * s.sum) / s.count) / (s.count - 1));
}

function checkConfidence(confidence: number): void {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be strictly between 0 and 1 (e.g. 0.95), got ${confidence}`);
}

function checkProportion(p: Proportion, where: string): void {
  if (!Number.isInteger(p.trials) || p.trials < 0) throw new RangeError(`${where}: trials must be a non-negative integer, got ${p.trials}`);
  if (!Number.isInteger(p.successes) || p.successes < 0 || p.successes > p.trials) {
    throw new RangeError(`${where}: successes must be an integer from 0 to ${p.trials} (the trials), got ${p.successes}`);
  }
}

function checkAmounts(s: AmountSummary, where: string): void {
  if (!Number.isInteger(s.count) || s.count < 0) throw new RangeError(`${where}: count must be a non-negative integer, got ${s.count}`);
  if (!Number.isFinite(s.sum) || !Number.isFinite(s.sumOfSquares) || s.sumOfSquares < 0) {
    throw new RangeError(`${where}: sum and sumOfSquares must be finite (sumOfSquares ≥ 0), got ${s.sum} and ${s.sumOfSquares}`);
  }
}
