// One check of an experiment's winner rule: counts from the report counters, a decision, inconclusive at the
// maximum duration, the sequential state carried between checks.
import { checkExperiment, variantCounts, type CounterRow } from '../../core/experiment-decision';
import type { WinnerRule } from '../../core/flow-types';

const DAY = 86_400_000;
const rule: WinnerRule = { metric: 'click', minPerVariant: 100, confidence: 0.95, then: 'all_to_winner', maxDurationMs: 30 * DAY };

describe('variantCounts', () => {
  const counters: CounterRow[] = [
    { stepId: 'steps[1].variants[0].steps[0]', variant: 'control', metric: 'clicked', count: 30 },
    { stepId: 'steps[2]', variant: 'control', metric: 'clicked', count: 5 },
    { stepId: 'steps[1].variants[1].steps[0]', variant: 'discount', metric: 'clicked', count: 60 },
    { stepId: 'steps[1].variants[1].steps[0]', variant: 'discount', metric: 'converted', count: 9 },
    { stepId: 'steps[1].variants[1].steps[0]', variant: 'discount', metric: 'unsubscribed', count: 2 },
    { stepId: 'steps[1].variants[0].steps[0]', variant: 'control', metric: 'complained', count: 1 },
    // flow-level rows (the holdout comparison's) are not a variant's sends
    { stepId: '', variant: 'control', metric: 'converted', count: 50 },
  ];
  const assigned = new Map([
    ['control', 400],
    ['discount', 410],
  ]);

  it("sums each variant's send counters for the rule's metric, with its guardrails", () => {
    expect(variantCounts(['control', 'discount'], assigned, counters, { metric: 'click' })).toEqual([
      { name: 'control', recipients: 400, successes: 35, unsubscribes: 0, complaints: 1 },
      { name: 'discount', recipients: 410, successes: 60, unsubscribes: 2, complaints: 0 },
    ]);
    expect(variantCounts(['control', 'discount'], assigned, counters, { metric: 'conversion' }).map((v) => v.successes)).toEqual([0, 9]);
  });

  it('caps a count at the recipients, and a variant nobody got has none', () => {
    expect(variantCounts(['control', 'new'], new Map([['control', 20]]), counters, { metric: 'click' })).toEqual([
      { name: 'control', recipients: 20, successes: 20, unsubscribes: 0, complaints: 1 },
      { name: 'new', recipients: 0, successes: 0, unsubscribes: 0, complaints: 0 },
    ]);
  });
});

describe('checkExperiment', () => {
  const clear = [
    { name: 'control', recipients: 3000, successes: 150, unsubscribes: 3, complaints: 0 },
    { name: 'discount', recipients: 3000, successes: 260, unsubscribes: 3, complaints: 0 },
  ];
  const even = [
    { name: 'control', recipients: 3000, successes: 150, unsubscribes: 3, complaints: 0 },
    { name: 'discount', recipients: 3000, successes: 152, unsubscribes: 3, complaints: 0 },
  ];

  it('decides for a variant that is clearly better', () => {
    const check = checkExperiment({ rule, counts: clear, startedAt: 0, now: DAY, previous: null });
    expect(check).toMatchObject({ action: 'conclude', state: 'decided', winner: 'discount' });
    expect(check.action === 'conclude' && check.reason).toContain('discount wins');
  });

  it('goes on, carrying its state, while the data do not decide', () => {
    const check = checkExperiment({ rule, counts: even, startedAt: 0, now: DAY, previous: null });
    expect(check.action).toBe('continue');
    if (check.action !== 'continue') return;
    const next = checkExperiment({ rule, counts: even, startedAt: 0, now: 2 * DAY, previous: check.evidence });
    expect(next.action).toBe('continue');
  });

  it('says it cannot decide once the maximum duration has passed, with the reason', () => {
    const check = checkExperiment({ rule, counts: even, startedAt: 0, now: 30 * DAY, previous: null });
    expect(check).toMatchObject({ action: 'conclude', state: 'inconclusive', winner: null });
    expect(check.action === 'conclude' && check.reason.length).toBeGreaterThan(20);
  });

  it('below the minimum sample it waits, and is inconclusive at the end', () => {
    const small = even.map((v) => ({ ...v, recipients: 50, successes: 5, unsubscribes: 0 }));
    expect(checkExperiment({ rule, counts: small, startedAt: 0, now: DAY, previous: null }).action).toBe('continue');
    const ended = checkExperiment({ rule, counts: small, startedAt: 0, now: 31 * DAY, previous: null });
    expect(ended.action === 'conclude' && ended.reason).toContain('minimum sample of 100');
  });
});
