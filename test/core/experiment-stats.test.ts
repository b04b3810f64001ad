import fc from 'fast-check';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import {
  alwaysValidTest,
  criticalValue,
  decideWinner,
  DEFAULT_MIXING_SD,
  inconclusive,
  meanDifference,
  meanInterval,
  proportionDifference,
  wilsonInterval,
  type AmountSummary,
  type ExperimentEvidence,
  type SequentialState,
  type VariantCounts,
  type WinnerInput,
} from '../../core/experiment-stats';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/experiment-stats.test.ts');

const variant = (name: string, recipients: number, successes: number, unsubscribes = 0, complaints = 0): VariantCounts => ({ name, recipients, successes, unsubscribes, complaints });
const decide = (variants: VariantCounts[], extra: Partial<WinnerInput> = {}) =>
  decideWinner({ variants, metric: 'click', confidence: 0.95, minPerVariant: 500, previous: null, ...extra });

/** successes ≤ trials, trials ≥ 0 */
const proportionArb = (maxTrials = 5000) => fc.integer({ min: 0, max: maxTrials }).chain((trials) => fc.record({ successes: fc.integer({ min: 0, max: trials }), trials: fc.constant(trials) }));
const confidenceArb = fc.constantFrom(0.8, 0.9, 0.95, 0.99, 0.999);

describe('criticalValue', () => {
  it('gives the two-sided normal quantiles of the published z table', () => {
    // Abramowitz & Stegun, Table 26.5 (and every z table): z_0.975 = 1.959964, z_0.95 = 1.644854, z_0.995 = 2.575829.
    expect(criticalValue(0.95)).toBeCloseTo(1.959964, 6);
    expect(criticalValue(0.9)).toBeCloseTo(1.644854, 6);
    expect(criticalValue(0.99)).toBeCloseTo(2.575829, 6);
  });

  it.each([0, 1, 1.5, -0.2, Number.NaN])('refuses confidence %p', (confidence) => {
    expect(() => criticalValue(confidence)).toThrow(/strictly between 0 and 1/);
  });
});

describe('wilsonInterval', () => {
  it("matches Newcombe 1998's worked examples (Stat Med 17:857, Table I, method 3: score interval without correction)", () => {
    const cases: Array<[number, number, number, number]> = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
    ];
    for (const [s, n, lower, upper] of cases) {
      const interval = wilsonInterval(s, n, 0.95)!;
      expect(interval.estimate).toBe(s / n);
      expect(interval.lower).toBeCloseTo(lower, 4);
      expect(interval.upper).toBeCloseTo(upper, 4);
    }
  });

  it('is null without trials, and refuses impossible counts', () => {
    expect(wilsonInterval(0, 0, 0.95)).toBeNull();
    expect(() => wilsonInterval(5, 4, 0.95)).toThrow(/successes must be an integer from 0 to 4/);
    expect(() => wilsonInterval(-1, 4, 0.95)).toThrow(/successes/);
    expect(() => wilsonInterval(1.5, 4, 0.95)).toThrow(/successes/);
    expect(() => wilsonInterval(0, -3, 0.95)).toThrow(/trials must be a non-negative integer/);
  });

  it("has bounds where the score test's two-sided p-value is exactly 1 − confidence (its definition, checked with the normal CDF)", () => {
    fuzz.check(
      fc.property(proportionArb(), confidenceArb, ({ successes, trials }, confidence) => {
        fc.pre(trials > 0);
        const interval = wilsonInterval(successes, trials, confidence)!;
        const p = successes / trials;
        const scorePValue = (rate: number) => 2 * (1 - normalCdf(Math.abs(p - rate) / Math.sqrt((rate * (1 - rate)) / trials), 0, 1));
        // A bound at 0 or 1 is where the score equation has no root inside (0, 1): nothing to check there.
        for (const bound of [interval.lower, interval.upper]) {
          if (bound > 1e-9 && bound < 1 - 1e-9) expect(scorePValue(bound)).toBeCloseTo(1 - confidence, 6);
        }
      }),
      300,
    );
  });

  it('contains the point estimate, stays within [0, 1], and mirrors when successes and failures swap', () => {
    fuzz.check(
      fc.property(proportionArb(), confidenceArb, ({ successes, trials }, confidence) => {
        fc.pre(trials > 0);
        const interval = wilsonInterval(successes, trials, confidence)!;
        expect(interval.lower).toBeGreaterThanOrEqual(0);
        expect(interval.upper).toBeLessThanOrEqual(1);
        expect(interval.lower).toBeLessThanOrEqual(interval.estimate);
        expect(interval.upper).toBeGreaterThanOrEqual(interval.estimate);
        const mirror = wilsonInterval(trials - successes, trials, confidence)!;
        expect(mirror.lower).toBeCloseTo(1 - interval.upper, 12);
        expect(mirror.upper).toBeCloseTo(1 - interval.lower, 12);
      }),
      300,
    );
  });

  it('narrows as confidence falls and as trials grow at the same rate', () => {
    const wide = wilsonInterval(30, 100, 0.99)!;
    const narrow = wilsonInterval(30, 100, 0.9)!;
    const more = wilsonInterval(300, 1000, 0.99)!;
    expect(narrow.upper - narrow.lower).toBeLessThan(wide.upper - wide.lower);
    expect(more.upper - more.lower).toBeLessThan(wide.upper - wide.lower);
  });
});

describe('proportionDifference (Newcombe method 10)', () => {
  it("matches Newcombe 1998's worked examples (Stat Med 17:873, Table II, method 10: hybrid score without correction)", () => {
    // Example (a) 56/70 − 48/80 → 0.0524 to 0.3339 is the paper's running example; the others are its Table II rows
    // (b)–(h), which include the degenerate 0/n and n/n cases where the Wald interval collapses.
    const cases: Array<[number, number, number, number, number, number]> = [
      [56, 70, 48, 80, 0.0524, 0.3339],
      [9, 10, 3, 10, 0.1705, 0.809],
      [6, 7, 2, 7, 0.0582, 0.8062],
      [5, 56, 0, 29, -0.0381, 0.1926],
      [0, 10, 0, 20, -0.1611, 0.2775],
      [0, 10, 0, 10, -0.2775, 0.2775],
      [10, 10, 0, 20, 0.6791, 1],
      [10, 10, 0, 10, 0.6075, 1],
    ];
    for (const [s1, n1, s2, n2, lower, upper] of cases) {
      const difference = proportionDifference({ successes: s1, trials: n1 }, { successes: s2, trials: n2 }, 0.95)!;
      expect(difference.estimate).toBeCloseTo(s1 / n1 - s2 / n2, 12);
      expect(difference.lower).toBeCloseTo(lower, 4);
      expect(difference.upper).toBeCloseTo(upper, 4);
    }
  });

  it('is null when either group has no trials', () => {
    expect(proportionDifference({ successes: 0, trials: 0 }, { successes: 1, trials: 3 }, 0.95)).toBeNull();
    expect(proportionDifference({ successes: 1, trials: 3 }, { successes: 0, trials: 0 }, 0.95)).toBeNull();
  });

  it('contains the point estimate, stays within [−1, 1], and negates when the groups swap', () => {
    fuzz.check(
      fc.property(proportionArb(), proportionArb(), confidenceArb, (a, b, confidence) => {
        fc.pre(a.trials > 0 && b.trials > 0);
        const ab = proportionDifference(a, b, confidence)!;
        const ba = proportionDifference(b, a, confidence)!;
        expect(ab.lower).toBeGreaterThanOrEqual(-1 - 1e-12);
        expect(ab.upper).toBeLessThanOrEqual(1 + 1e-12);
        expect(ab.lower).toBeLessThanOrEqual(ab.estimate);
        expect(ab.upper).toBeGreaterThanOrEqual(ab.estimate);
        expect(ba.estimate).toBeCloseTo(-ab.estimate, 12);
        expect(ba.lower).toBeCloseTo(-ab.upper, 12);
        expect(ba.upper).toBeCloseTo(-ab.lower, 12);
      }),
      300,
    );
  });
});

describe('meanInterval and meanDifference (revenue per recipient)', () => {
  /** Summary of raw amounts, as the counters keep it. */
  const summarise = (amounts: number[]): AmountSummary => ({
    count: amounts.length,
    sum: amounts.reduce((s, x) => s + x, 0),
    sumOfSquares: amounts.reduce((s, x) => s + x * x, 0),
  });
  /** Mean and sample variance by the two-pass definition, from the raw amounts (a different path from sums of squares). */
  const meanAndVariance = (amounts: number[]) => {
    const mean = amounts.reduce((s, x) => s + x, 0) / amounts.length;
    const variance = amounts.reduce((s, x) => s + (x - mean) ** 2, 0) / (amounts.length - 1);
    return { mean, variance };
  };

  it('computes a worked example by hand: 10 recipients, 2 orders of 30 and 50, against 10 with one order of 20', () => {
    const group = [0, 0, 30, 0, 0, 0, 50, 0, 0, 0];
    const holdout = [0, 0, 0, 0, 20, 0, 0, 0, 0, 0];
    // group: mean 8, sample variance (2·22² ... ) = (8·64 + 22² + 42²)/9 = (512 + 484 + 1764)/9 = 306.6̅
    // holdout: mean 2, variance (9·4 + 18²)/9 = (36 + 324)/9 = 40
    // standard error √(306.6̅/10 + 40/10) = √34.6̅ = 5.8878; 95 %: 6 ± 1.959964·5.8878
    const difference = meanDifference(summarise(group), summarise(holdout), 0.95)!;
    expect(difference.estimate).toBeCloseTo(6, 12);
    expect(difference.standardError).toBeCloseTo(Math.sqrt(306.6666666666667 / 10 + 4), 10);
    expect(difference.lower).toBeCloseTo(6 - 1.959964 * 5.887841, 4);
    expect(difference.upper).toBeCloseTo(6 + 1.959964 * 5.887841, 4);
  });

  it('agrees with the two-pass definition on generated revenue (mostly zeros, a long tail), and contains its estimate', () => {
    const amounts = fc.array(fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 50_000 }).map((cents) => cents / 100) }), {
      minLength: 2,
      maxLength: 300,
    });
    fuzz.check(
      fc.property(amounts, amounts, confidenceArb, (a, b, confidence) => {
        const z = criticalValue(confidence);
        const ra = meanAndVariance(a);
        const rb = meanAndVariance(b);
        const se = Math.sqrt(ra.variance / a.length + rb.variance / b.length);
        const difference = meanDifference(summarise(a), summarise(b), confidence)!;
        expect(difference.estimate).toBeCloseTo(ra.mean - rb.mean, 8);
        expect(difference.standardError).toBeCloseTo(se, 6);
        expect(difference.lower).toBeLessThanOrEqual(difference.estimate);
        expect(difference.upper).toBeGreaterThanOrEqual(difference.estimate);
        const single = meanInterval(summarise(a), confidence)!;
        expect(single.estimate).toBeCloseTo(ra.mean, 8);
        expect(single.upper - single.estimate).toBeCloseTo(z * Math.sqrt(ra.variance / a.length), 6);
        const swapped = meanDifference(summarise(b), summarise(a), confidence)!;
        expect(swapped.lower).toBeCloseTo(-difference.upper, 8);
      }),
      200,
    );
  });

  it('is null with fewer than two recipients in a group, and refuses a negative sum of squares', () => {
    expect(meanInterval({ count: 1, sum: 5, sumOfSquares: 25 }, 0.95)).toBeNull();
    expect(meanDifference({ count: 1, sum: 5, sumOfSquares: 25 }, { count: 10, sum: 5, sumOfSquares: 25 }, 0.95)).toBeNull();
    expect(() => meanInterval({ count: 3, sum: 5, sumOfSquares: -1 }, 0.95)).toThrow(/sumOfSquares/);
  });

  it('gives a zero-width interval, not NaN, for a group whose amounts are all equal', () => {
    const allZero = meanInterval({ count: 1000, sum: 0, sumOfSquares: 0 }, 0.95)!;
    expect(allZero).toEqual({ estimate: 0, lower: 0, upper: 0, standardError: 0 });
  });
});

describe('alwaysValidTest (mSPRT)', () => {
  /**
   * The mixture likelihood ratio from its definition: the normal likelihood ratio exp((θ·θ̂ − θ²/2)/v) of a true
   * difference θ against 0, averaged over θ ~ N(0, τ²) by quadrature with the normal CDF's cell masses; with v the
   * pooled null variance and τ = δ·√(p̄(1−p̄)). Shares no formula with the closed form under test.
   */
  function mixtureLikelihoodRatio(a: { successes: number; trials: number }, b: { successes: number; trials: number }, mixingSd: number): number {
    const pooled = (a.successes + b.successes) / (a.trials + b.trials);
    const v = pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials);
    const tau = mixingSd * Math.sqrt(pooled * (1 - pooled));
    const observed = a.successes / a.trials - b.successes / b.trials;
    const cells = 40_000;
    const width = (24 * tau) / cells;
    let sum = 0;
    for (let i = 0; i < cells; i++) {
      const left = -12 * tau + i * width;
      const theta = left + width / 2;
      const mass = normalCdf(left + width, 0, tau) - normalCdf(left, 0, tau);
      sum += mass * Math.exp((theta * observed - (theta * theta) / 2) / v);
    }
    return sum;
  }

  it.each([
    [{ successes: 56, trials: 70 }, { successes: 48, trials: 80 }, DEFAULT_MIXING_SD],
    [{ successes: 75, trials: 1500 }, { successes: 120, trials: 1500 }, DEFAULT_MIXING_SD],
    [{ successes: 500, trials: 3000 }, { successes: 450, trials: 3100 }, DEFAULT_MIXING_SD],
    [{ successes: 3, trials: 2000 }, { successes: 0, trials: 1800 }, DEFAULT_MIXING_SD],
    [{ successes: 150, trials: 1000 }, { successes: 100, trials: 1000 }, 0.3],
    [{ successes: 40, trials: 800 }, { successes: 90, trials: 900 }, 0.05],
  ])('matches the mixture likelihood ratio integrated numerically: %o vs %o (δ = %p)', (a, b, mixingSd) => {
    const result = alwaysValidTest(a, b, null, mixingSd);
    expect(result.logLikelihoodRatio).toBeCloseTo(Math.log(mixtureLikelihoodRatio(a, b, mixingSd)), 5);
    expect(result.pValue).toBeCloseTo(Math.min(1, 1 / mixtureLikelihoodRatio(a, b, mixingSd)), 6);
  });

  it('records evidence only in the direction the data lean, and keeps the least p-value of earlier checks', () => {
    const first = alwaysValidTest({ successes: 130, trials: 1000 }, { successes: 80, trials: 1000 }, null);
    expect(first.z).toBeGreaterThan(0);
    expect(first.aAbove).toBeLessThan(0.05);
    expect(first.aBelow).toBe(1);
    // The next check's data no longer lean that way: the earlier evidence stays, and nothing is added below.
    const second = alwaysValidTest({ successes: 131, trials: 2000 }, { successes: 130, trials: 2000 }, first);
    expect(second.aAbove).toBe(first.aAbove);
    expect(second.aBelow).toBe(1);
    expect(second.pValue).toBe(first.aAbove);
  });

  it('finds no evidence without variance (both groups all-0) or without trials', () => {
    expect(alwaysValidTest({ successes: 0, trials: 500 }, { successes: 0, trials: 700 }, null)).toEqual({ aAbove: 1, aBelow: 1, pValue: 1, z: 0, logLikelihoodRatio: 0 });
    expect(alwaysValidTest({ successes: 0, trials: 0 }, { successes: 3, trials: 700 }, null).pValue).toBe(1);
  });

  it('refuses a mixing standard deviation that is not positive', () => {
    expect(() => alwaysValidTest({ successes: 1, trials: 2 }, { successes: 1, trials: 2 }, null, 0)).toThrow(/mixingSd must be a positive number/);
  });

  it('never raises a p-value across checks as data accumulate, and swaps directions when the groups swap', () => {
    const increment = fc.integer({ min: 0, max: 300 }).chain((trials) => fc.tuple(fc.integer({ min: 0, max: trials }), fc.constant(trials)));
    fuzz.check(
      fc.property(fc.array(fc.tuple(increment, increment), { minLength: 1, maxLength: 40 }), (steps) => {
        const a = { successes: 0, trials: 0 };
        const b = { successes: 0, trials: 0 };
        let forward: SequentialState | null = null;
        let backward: SequentialState | null = null;
        for (const [[sa, na], [sb, nb]] of steps) {
          a.successes += sa;
          a.trials += na;
          b.successes += sb;
          b.trials += nb;
          const next = alwaysValidTest(a, b, forward);
          const mirrored = alwaysValidTest(b, a, backward);
          const before = forward ?? { aAbove: 1, aBelow: 1 };
          expect(next.aAbove).toBeLessThanOrEqual(before.aAbove);
          expect(next.aBelow).toBeLessThanOrEqual(before.aBelow);
          expect(next.pValue).toBeLessThanOrEqual(Math.min(before.aAbove, before.aBelow));
          expect(next.pValue).toBeGreaterThanOrEqual(0);
          expect(mirrored.aAbove).toBe(next.aBelow);
          expect(mirrored.aBelow).toBe(next.aAbove);
          expect(mirrored.z).toBeCloseTo(-next.z, 10);
          forward = next;
          backward = mirrored;
        }
      }),
      200,
    );
  });
});

describe('decideWinner', () => {
  it('waits for the minimum sample per variant without testing, and says who is short', () => {
    const decision = decide([variant('A', 499, 20), variant('B', 800, 200)]);
    expect(decision.state).toBe('waiting');
    expect(decision.winner).toBeNull();
    expect(decision.reason).toMatch(/^Waiting for the minimum sample: no decision before every variant has 500 recipients \(A has 499\)\./);
    // Nothing tested yet, though B is far ahead: an early look must not leave evidence behind.
    expect(decision.comparisons.every((c) => c.pValue === 1)).toBe(true);
    expect(decision.variants.map((v) => v.rate?.estimate)).toEqual([20 / 499, 0.25]);
    expect(decide([variant('A', 500, 20), variant('B', 800, 200)]).state).toBe('decided');
  });

  it('decides for the clearly better variant and gives its figures', () => {
    const decision = decide([variant('A', 1000, 80, 3), variant('B', 1000, 130, 4)]);
    expect(decision.state).toBe('decided');
    expect(decision.winner).toBe('B');
    expect(decision.evidence.winner).toBe('B');
    expect(decision.decisionAlpha).toBeCloseTo(0.05, 12);
    const clicks = decision.comparisons.find((c) => c.measure === 'click')!;
    expect(clicks).toMatchObject({ a: 'A', b: 'B' });
    expect(clicks.aBelow).toBeLessThanOrEqual(0.05);
    expect(clicks.difference!.estimate).toBeCloseTo(-0.05, 12);
    expect(decision.variants[1]!.rate).toEqual(wilsonInterval(130, 1000, 0.95));
    expect(decision.reason).toMatch(/^B wins on click rate: it beats A by \+5\.00 points \(95% CI \+2\.\d\d to \+7\.\d\d\) \(always-valid p = 0\.0\d+ ≤ 0\.05\)/);
    expect(decision.reason).toContain('A 8.00% (95% CI 6.47%–9.85%, n = 1000)');
  });

  it('keeps running while the best variant does not yet beat the other, and says by how much it would need to', () => {
    const decision = decide([variant('A', 1000, 80), variant('B', 1000, 95)], { metric: 'conversion' });
    expect(decision.state).toBe('running');
    expect(decision.winner).toBeNull();
    expect(decision.reason).toMatch(/^No winner yet: B has the best conversion rate but does not yet beat A significantly \(always-valid p = [\d.]+ against A, needs ≤ 0\.05\)/);
  });

  it('keeps running on a tie for the best rate', () => {
    const decision = decide([variant('A', 1000, 130), variant('B', 1000, 80), variant('C', 1000, 130)]);
    expect(decision.state).toBe('running');
    expect(decision.reason).toMatch(/^No winner yet: A and C are tied on click rate/);
  });

  it('never lets a variant with a significantly worse unsubscribe rate win, and says so', () => {
    const clean = decide([variant('A', 1000, 80, 3), variant('B', 1000, 130, 3)]);
    expect(clean.winner).toBe('B');
    const decision = decide([variant('A', 1000, 80, 3), variant('B', 1000, 130, 25)]);
    expect(decision.state).toBe('running');
    expect(decision.winner).toBeNull();
    expect(decision.blocked).toEqual([{ variant: 'B', worseThan: 'A', measure: 'unsubscribe', pValue: expect.any(Number) }]);
    expect(decision.blocked[0]!.pValue).toBeLessThanOrEqual(0.05);
    expect(decision.reason).toMatch(/^No winner: B has the best click rate but cannot win, because its unsubscribe rate is significantly worse than A's \(always-valid p = [\d.]+ ≤ 0\.05\); a variant with a significantly worse unsubscribe or complaint rate never wins\./);
  });

  it('never lets a variant with a significantly worse complaint rate win', () => {
    const decision = decide([variant('A', 2000, 160, 0, 0), variant('B', 2000, 260, 0, 14)]);
    expect(decision.winner).toBeNull();
    expect(decision.blocked.map((b) => b.measure)).toEqual(['complaint']);
    expect(decision.reason).toContain("its complaint rate is significantly worse than A's");
  });

  it('blocks on a guardrail only when the difference is significant, one-sided against the variant', () => {
    // B has a few more unsubscribes, not significantly: B still wins; A's significantly LOWER rate blocks nothing.
    expect(decide([variant('A', 1000, 80, 3), variant('B', 1000, 130, 6)]).winner).toBe('B');
    expect(decide([variant('A', 1000, 130, 0), variant('B', 1000, 80, 25)]).winner).toBe('A');
  });

  it('with three variants, requires the best to beat each other one at (1 − confidence)/2', () => {
    // Find B's clicks against A = 80/1000 where the always-valid p lands between 0.025 and 0.05: enough for two
    // variants, not for three (C is far behind, so only the A comparison is at stake).
    let successes = 80;
    while (alwaysValidTest({ successes, trials: 1000 }, { successes: 80, trials: 1000 }, null).pValue > 0.05) successes++;
    const p = alwaysValidTest({ successes, trials: 1000 }, { successes: 80, trials: 1000 }, null).pValue;
    expect(p).toBeGreaterThan(0.025);
    const two = decide([variant('A', 1000, 80), variant('B', 1000, successes)]);
    expect(two.winner).toBe('B');
    const three = decide([variant('A', 1000, 80), variant('B', 1000, successes), variant('C', 1000, 20)]);
    expect(three.decisionAlpha).toBeCloseTo(0.025, 12);
    expect(three.state).toBe('running');
    expect(three.reason).toMatch(/does not yet beat A significantly \(always-valid p = [\d.]+ against A, needs ≤ 0\.025\)/);
  });

  it('counts evidence from earlier checks: the always-valid p-value is the least so far', () => {
    const early = decide([variant('A', 1000, 80), variant('B', 1000, 130)], { minPerVariant: 1000 });
    // A pre-declared minimum of 1000 is reached; B leads strongly, then regresses toward A but still leads.
    const afterEarlyLook: ExperimentEvidence = { ...early.evidence, winner: null };
    const later = decide([variant('A', 3000, 270), variant('B', 3000, 290)], { minPerVariant: 1000, previous: afterEarlyLook });
    expect(later.winner).toBe('B');
    const withoutHistory = decide([variant('A', 3000, 270), variant('B', 3000, 290)], { minPerVariant: 1000 });
    expect(withoutHistory.state).toBe('running');
  });

  it('reads evidence stored for either order of a pair', () => {
    const stored: ExperimentEvidence = { winner: null, pairs: [{ a: 'B', b: 'A', measure: 'click', aAbove: 0.01, aBelow: 1 }] };
    const decision = decide([variant('A', 3000, 270), variant('B', 3000, 290)], { previous: stored });
    expect(decision.winner).toBe('B');
    expect(decision.comparisons.find((c) => c.measure === 'click')).toMatchObject({ a: 'A', b: 'B', aBelow: 0.01, aAbove: 1 });
  });

  it('treats a decision as final at later checks', () => {
    const decided = decide([variant('A', 1000, 80), variant('B', 1000, 130)]);
    const later = decide([variant('A', 1000, 80), variant('B', 5000, 400)], { previous: decided.evidence });
    expect(later.state).toBe('decided');
    expect(later.winner).toBe('B');
    expect(later.reason).toMatch(/^B was decided the winner on click rate at an earlier check; a decision is final\./);
  });

  it('gives the same decision whatever the order of the variants', () => {
    const variantArb = (name: string) =>
      fc
        .integer({ min: 0, max: 4000 })
        .chain((recipients) =>
          fc.record({ name: fc.constant(name), recipients: fc.constant(recipients), successes: fc.integer({ min: 0, max: Math.min(recipients, 800) }), unsubscribes: fc.integer({ min: 0, max: Math.min(recipients, 40) }), complaints: fc.integer({ min: 0, max: Math.min(recipients, 10) }) }),
        );
    fuzz.check(
      fc.property(fc.tuple(variantArb('A'), variantArb('B'), variantArb('C')), fc.integer({ min: 0, max: 2000 }), (variants, minPerVariant) => {
        const forward = decide(variants, { minPerVariant });
        const reversed = decide([...variants].reverse(), { minPerVariant });
        expect(reversed.state).toBe(forward.state);
        expect(reversed.winner).toBe(forward.winner);
        expect(new Set(reversed.blocked.map((b) => `${b.variant}>${b.worseThan}:${b.measure}`))).toEqual(new Set(forward.blocked.map((b) => `${b.variant}>${b.worseThan}:${b.measure}`)));
        // The evidence of one order, passed to the other, reads the same.
        const next = decide(variants, { minPerVariant, previous: reversed.evidence });
        expect(next.comparisons.map((c) => [c.aAbove, c.aBelow])).toEqual(forward.comparisons.map((c) => [c.aAbove, c.aBelow]));
      }),
      200,
    );
  });

  it('never raises a reported p-value across checks', () => {
    const arm = fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 2 }));
    fuzz.check(
      fc.property(fc.array(fc.tuple(arm, arm), { minLength: 2, maxLength: 30 }), (steps) => {
        const counts = [variant('A', 0, 0), variant('B', 0, 0)];
        let previous: ExperimentEvidence | null = null;
        let before: number[] | null = null;
        for (const step of steps) {
          step.forEach(([clicks, unsubscribes, complaints], i) => {
            const c = counts[i]!;
            c.recipients += 100;
            c.successes += clicks;
            c.unsubscribes += unsubscribes;
            c.complaints += complaints;
          });
          const decision = decide(counts, { minPerVariant: 200, previous });
          const now = decision.comparisons.flatMap((c) => [c.pValue, c.aAbove, c.aBelow]);
          if (before) now.forEach((p, i) => expect(p).toBeLessThanOrEqual(before![i]!));
          before = now;
          previous = decision.evidence;
        }
      }),
      150,
    );
  });

  it('refuses malformed input', () => {
    expect(() => decide([variant('A', 10, 1)])).toThrow(/at least two variants/);
    expect(() => decide([variant('A', 10, 1), variant('A', 10, 1)])).toThrow(/names must be unique, "A" appears twice/);
    expect(() => decide([variant('A', 10, 11), variant('B', 10, 1)])).toThrow(/variant "A".*successes must be an integer from 0 to 10/);
    expect(() => decide([variant('A', 10, 1, 0, 12), variant('B', 10, 1)])).toThrow(/variant "A"/);
    expect(() => decide([variant('A', 10, 1), variant('B', 10, 1)], { minPerVariant: -1 })).toThrow(/minPerVariant/);
    expect(() => decide([variant('A', 10, 1), variant('B', 10, 1)], { confidence: 95 })).toThrow(/confidence/);
    expect(() => decide([variant('A', 10, 1), variant('B', 10, 1)], { metric: 'open' as never })).toThrow(/metric must be "click" or "conversion"/);
  });
});

describe('inconclusive', () => {
  const DAY = 86_400_000;

  it('marks a running experiment inconclusive with the figures that fell short', () => {
    const last = decide([variant('A', 1000, 80), variant('B', 1000, 95)]);
    const result = inconclusive(last, 14 * DAY);
    expect(result.state).toBe('inconclusive');
    expect(result.winner).toBeNull();
    expect(result.comparisons).toEqual(last.comparisons);
    expect(result.reason).toMatch(
      /^Inconclusive after 2w \(the maximum duration\): B had the best click rate but did not beat A significantly \(always-valid p = [\d.]+, needed ≤ 0\.05; difference \+1\.50 points \(95% CI −0\.99 to \+4\.00\)\)\. Rates: A 8\.00%/,
    );
  });

  it('says when the minimum sample was never reached', () => {
    const result = inconclusive(decide([variant('A', 120, 10), variant('B', 130, 12)]), 30 * 3_600_000);
    expect(result.reason).toMatch(/^Inconclusive after 1d6h \(the maximum duration\): the minimum sample of 500 recipients per variant was never reached \(A has 120, B has 130\)\./);
  });

  it('names the guardrail that kept the best variant from winning', () => {
    const result = inconclusive(decide([variant('A', 1000, 80, 3), variant('B', 1000, 130, 25)]), 7 * DAY);
    expect(result.reason).toMatch(/^Inconclusive after 1w \(the maximum duration\): B had the best click rate but cannot win, because its unsubscribe rate is significantly worse than A's/);
  });

  it('leaves a decision taken at the last check standing', () => {
    const decided = decide([variant('A', 1000, 80), variant('B', 1000, 130)]);
    expect(inconclusive(decided, 14 * DAY)).toBe(decided);
  });
});
