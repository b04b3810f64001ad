// The flow report (core/flow-report) on a simulated log of entries, assignments and sends with their outcomes: every
// count equals the log's own count, every rate and interval equals one computed here from the definitions (Wilson by
// bisection on the score test, Newcombe's method 10 from those bounds, Welch from the raw per-recipient amounts) with no
// code shared with core/experiment-stats, and the lift matches Newcombe's published worked example. Steps come in file
// order with their labels; experiments show their recorded state with figures on the lifetime counts and the stored
// evidence; the CSV and text formats say the same.
import { parse as parseCsv } from 'csv-parse/sync';
import { HOLDOUT_VARIANT } from '../../core/experiment-assignment';
import { compileFlow } from '../../core/flow-compiler';
import { CSV_COLUMNS, flowReport, flowReportCsv, formatFlowReport, RATE_BASES, type FlowReportInput, type FunnelRow, type ReportCounter, type ReportExperiment } from '../../core/flow-report';
import type { Interval } from '../../core/experiment-stats';
import type { FlowDefinition } from '../../core/flow-types';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 2, 2, 12);
const PERIOD = { from: Date.UTC(2026, 1, 1), to: NOW };
const SEED = runSeed('test/core/flow-report.test.ts');
/** z for 95 %, to 16 digits (any table of the normal distribution). */
const Z95 = 1.959963984540054;

// --- references, from the definitions ------------------------------------------------------------------------------

/** The Wilson interval as the set of p the score test |p̂ − p| ≤ z·√(p(1−p)/n) accepts, its ends found by bisection. */
function refWilson(x: number, n: number, z = Z95): Interval {
  const phat = x / n;
  const f = (p: number) => (phat - p) ** 2 - (z * z * p * (1 - p)) / n;
  const root = (a: number, b: number) => {
    let lo = a;
    let hi = b;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (f(mid) > 0 === f(lo) > 0) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  return { estimate: phat, lower: x === 0 ? 0 : root(0, phat), upper: x === n ? 1 : root(phat, 1) };
}

/** Newcombe (1998) method 10: p1 − p2 with δ = √((p1−l1)² + (u2−p2)²) below and ε = √((u1−p1)² + (p2−l2)²) above. */
function refNewcombe(x1: number, n1: number, x2: number, n2: number): Interval {
  const a = refWilson(x1, n1);
  const b = refWilson(x2, n2);
  const d = a.estimate - b.estimate;
  return { estimate: d, lower: d - Math.sqrt((a.estimate - a.lower) ** 2 + (b.upper - b.estimate) ** 2), upper: d + Math.sqrt((a.upper - a.estimate) ** 2 + (b.estimate - b.lower) ** 2) };
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const variance = (xs: number[]) => {
  const m = mean(xs);
  return xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1);
};

/** The mean with mean ± z·s/√n, from the raw amounts. */
function refMean(xs: number[]): Interval | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  const se = Math.sqrt(variance(xs) / xs.length);
  return { estimate: m, lower: m - Z95 * se, upper: m + Z95 * se };
}

/** Welch: mean(a) − mean(b) ± z·√(s²a/na + s²b/nb), from the raw amounts. */
function refWelch(a: number[], b: number[]): Interval | null {
  if (a.length < 2 || b.length < 2) return null;
  const d = mean(a) - mean(b);
  const se = Math.sqrt(variance(a) / a.length + variance(b) / b.length);
  return { estimate: d, lower: d - Z95 * se, upper: d + Z95 * se };
}

function expectInterval(actual: Interval | null, expected: Interval | null, digits = 9): void {
  if (expected === null) {
    expect(actual).toBeNull();
    return;
  }
  expect(actual).not.toBeNull();
  expect(actual!.estimate).toBeCloseTo(expected.estimate, digits);
  expect(actual!.lower).toBeCloseTo(expected.lower, digits);
  expect(actual!.upper).toBeCloseTo(expected.upper, digits);
}

// --- the flows --------------------------------------------------------------------------------------------------------

const compile = (lines: string[]): FlowDefinition => compileFlow(lines.join('\n') + '\n', 'flows/cart.yaml', { templateExists: () => true, sha256: `sha-${lines.length}` });

/** Version 3: no split. Steps: steps[0] wait, steps[1] send (line 8), steps[2] send (line 9). */
const V3 = compile(['id: cart', 'version: 3', 'priority: 90', 'holdout: 10%', 'trigger: { event: Product Added }', 'exit: { on_event: Order Completed }', 'steps:', '  - send: { template: cart-reminder }', '  - send: { template: cart-followup }', '  - wait: 1h']);

/** Version 4: a split at steps[1] (line 10), variant sends at lines 16 and 20, a shared send steps[2] at line 23. */
const V4 = compile([
  'id: cart',
  'version: 4',
  'priority: 90',
  'holdout: 10%',
  'attribution: { window: 3d }',
  'trigger: { event: Product Added }',
  'exit: { on_event: Order Completed }',
  'steps:',
  '  - wait: 1h',
  '  - ab_split:',
  '      experiment: cart-subject-test',
  '      variants:',
  '        - name: control',
  '          weight: 50',
  '          steps:',
  '            - send: { template: cart-reminder }',
  '        - name: discount',
  '          weight: 50',
  '          steps:',
  '            - send: { template: cart-discount }',
  '            - wait: 1d',
  '      winner: { metric: click, min_per_variant: 50, confidence: 0.95, then: all_to_winner, max_duration: 14d }',
  '  - send: { template: cart-followup }',
]);

const V4_STEPS = ['steps[1]', 'steps[1].variants[0].steps[0]', 'steps[1].variants[1].steps[0]', 'steps[2]'];

// --- the simulated log ------------------------------------------------------------------------------------------------

interface SendLog {
  version: number;
  step: string;
  variant: string;
  bounced: boolean;
  delivered: boolean;
  opened: boolean;
  machine: boolean;
  clicked: boolean;
  unsubscribed: boolean;
  complained: boolean;
  /** the revenue of the one conversion credited to it, or null */
  revenue: number | null;
}

interface EntryLog {
  version: number;
  holdout: boolean;
  revenue: number | null;
}

interface Log {
  entries: EntryLog[];
  sends: SendLog[];
  assignments: Array<{ version: number; step: string; variant: string }>;
}

function simulate(seed: number): Log {
  const random = seededRandom(seed);
  const chance = (p: number) => random() < p;
  // Multiples of 0.5: sums and squares stay exact, so the counters' sums are the log's.
  const amount = () => 0.5 * (1 + Math.floor(random() * 400));
  const log: Log = { entries: [], sends: [], assignments: [] };
  const customers = 300 + Math.floor(random() * 500);
  for (let i = 0; i < customers; i++) {
    const version = chance(0.3) ? 3 : 4;
    const holdout = chance(0.1);
    if (holdout) {
      log.entries.push({ version, holdout, revenue: chance(0.05) ? amount() : null });
      continue;
    }
    let steps: Array<{ step: string; variant: string }>;
    if (version === 3) {
      steps = [{ step: 'steps[0]', variant: '' }, ...(chance(0.7) ? [{ step: 'steps[1]', variant: '' }] : [])];
    } else {
      const variant = chance(0.5) ? 'control' : 'discount';
      log.assignments.push({ version, step: 'steps[1]', variant });
      steps = [{ step: `steps[1].variants[${variant === 'control' ? 0 : 1}].steps[0]`, variant }, ...(chance(0.6) ? [{ step: 'steps[2]', variant }] : [])];
    }
    let converted: number | null = null;
    for (const { step, variant } of steps) {
      const bounced = chance(0.03);
      const click = variant === 'discount' ? 0.12 : 0.07;
      const opened = !bounced && chance(0.35);
      const clicked = opened && chance(click / 0.35);
      const revenue: number | null = converted === null && !bounced && chance(clicked ? 0.3 : 0.02) ? amount() : null;
      if (revenue !== null) converted = revenue;
      log.sends.push({
        version,
        step,
        variant,
        bounced,
        delivered: !bounced && chance(0.9),
        opened,
        machine: !bounced && chance(0.4),
        clicked,
        unsubscribed: !bounced && chance(0.01),
        complained: !bounced && chance(0.004),
        revenue,
      });
    }
    log.entries.push({ version, holdout, revenue: converted ?? (chance(0.02) ? amount() : null) });
  }
  return log;
}

/** The counters the store would keep for the log: one count per fact, revenue summed with its squares. */
function countersOf(log: Log, flowId = 'cart'): ReportCounter[] {
  const rows = new Map<string, ReportCounter>();
  const add = (version: number, stepId: string, variant: string, metric: string, amount = 0) => {
    const key = `${version}|${stepId}|${variant}|${metric}`;
    const row = rows.get(key) ?? { flowId, flowVersion: version, stepId, variant, metric, count: 0, amount: 0, amountSquares: 0 };
    row.count += 1;
    row.amount += amount;
    row.amountSquares += amount * amount;
    rows.set(key, row);
  };
  for (const e of log.entries) {
    const variant = e.holdout ? HOLDOUT_VARIANT : '';
    add(e.version, '', variant, 'entered');
    if (e.revenue !== null) add(e.version, '', variant, 'converted', e.revenue);
  }
  for (const a of log.assignments) add(a.version, a.step, a.variant, 'assigned');
  for (const s of log.sends) {
    add(s.version, s.step, s.variant, 'sent');
    const facts: Array<[boolean, string]> = [
      [s.bounced, 'bounced'],
      [s.delivered, 'delivered'],
      [s.opened, 'opened'],
      [s.machine, 'opened_machine'],
      [s.clicked, 'clicked'],
      [s.unsubscribed, 'unsubscribed'],
      [s.complained, 'complained'],
    ];
    for (const [happened, metric] of facts) if (happened) add(s.version, s.step, s.variant, metric);
    if (s.revenue !== null) add(s.version, s.step, s.variant, 'converted', s.revenue);
  }
  return [...rows.values()];
}

function input(log: Log, overrides: Partial<FlowReportInput> = {}): FlowReportInput {
  const counters = countersOf(log);
  return { definitions: [V3, V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD, ...overrides };
}

// --- tests ------------------------------------------------------------------------------------------------------------

describe(`flowReport on a simulated log (seed ${SEED})`, () => {
  const log = simulate(SEED);
  const report = flowReport(input(log));
  const flow = report.flows[0]!;

  it('counts each step and variant as the log does, with each rate on its documented base', () => {
    expect(report.flows.map((f) => f.flowId)).toEqual(['cart']);
    expect(flow.versions.map((v) => v.version)).toEqual([3, 4]);
    let checked = 0;
    for (const version of flow.versions) {
      for (const step of version.steps) {
        for (const row of step.variants) {
          const sends = log.sends.filter((s) => s.version === version.version && s.step === step.stepId && s.variant === row.variant);
          const n = (f: (s: SendLog) => boolean) => sends.filter(f).length;
          const sent = sends.length;
          const bounced = n((s) => s.bounced);
          const reached = sent - bounced;
          const revenues = sends.map((s) => s.revenue ?? 0);
          expect({ ...row, rates: undefined, revenuePerRecipient: undefined }).toEqual({
            variant: row.variant,
            assigned: log.assignments.filter((a) => a.version === version.version && a.step === step.stepId && a.variant === row.variant).length,
            sent,
            delivered: n((s) => s.delivered),
            bounced,
            reached,
            opened: n((s) => s.opened),
            openedMachine: n((s) => s.machine),
            clicked: n((s) => s.clicked),
            unsubscribed: n((s) => s.unsubscribed),
            complained: n((s) => s.complained),
            converted: n((s) => s.revenue !== null),
            revenue: revenues.reduce((a, b) => a + b, 0),
            rates: undefined,
            revenuePerRecipient: undefined,
          });
          const on = (count: number, base: number) => (base === 0 ? null : refWilson(Math.min(count, base), base));
          expectInterval(row.rates.delivery, on(row.delivered, sent));
          expectInterval(row.rates.bounce, on(bounced, sent));
          expectInterval(row.rates.open, on(row.opened, reached));
          expectInterval(row.rates.machineOpen, on(row.openedMachine, reached));
          expectInterval(row.rates.click, on(row.clicked, reached));
          expectInterval(row.rates.unsubscribe, on(row.unsubscribed, reached));
          expectInterval(row.rates.complaint, on(row.complained, reached));
          expectInterval(row.rates.conversion, on(row.converted, sent));
          expectInterval(row.revenuePerRecipient, refMean(revenues), 7);
          if (sent > 0) checked += 1;
        }
      }
    }
    // v3: two sends; v4: the split's two rows, two variant sends, the shared send per variant.
    expect(checked).toBe(2 + 2 + 2);
  });

  it('measures lift against the holdout per version and overall, from the entrants', () => {
    for (const [scope, entries] of [
      [flow, log.entries],
      ...flow.versions.map((v) => [v, log.entries.filter((e) => e.version === v.version)] as const),
    ] as const) {
      const treatment = entries.filter((e) => !e.holdout);
      const holdout = entries.filter((e) => e.holdout);
      const converted = (es: EntryLog[]) => es.filter((e) => e.revenue !== null).length;
      const amounts = (es: EntryLog[]) => es.map((e) => e.revenue ?? 0);
      expect(scope.entrants.treatment).toMatchObject({ entered: treatment.length, converted: converted(treatment) });
      expect(scope.entrants.holdout).toMatchObject({ entered: holdout.length, converted: converted(holdout) });
      expect(scope.entrants.holdout.revenue).toBeCloseTo(amounts(holdout).reduce((a, b) => a + b, 0), 9);
      expectInterval(scope.entrants.treatment.conversionRate, refWilson(converted(treatment), treatment.length));
      expectInterval(scope.entrants.holdout.revenuePerRecipient, refMean(amounts(holdout)), 7);
      if (holdout.length === 0) {
        expect(scope.lift).toBeNull();
        continue;
      }
      const lift = scope.lift!;
      expectInterval(lift.conversionRateDifference, refNewcombe(converted(treatment), treatment.length, converted(holdout), holdout.length));
      expectInterval(lift.revenuePerRecipientDifference, refWelch(amounts(treatment), amounts(holdout)), 7);
      const pT = converted(treatment) / treatment.length;
      const pH = converted(holdout) / holdout.length;
      if (pH === 0) expect(lift.conversionRateRelative).toBeNull();
      else expect(lift.conversionRateRelative).toBeCloseTo((pT - pH) / pH, 9);
      const mH = mean(amounts(holdout));
      if (mH === 0) expect(lift.revenuePerRecipientRelative).toBeNull();
      else expect(lift.revenuePerRecipientRelative).toBeCloseTo((mean(amounts(treatment)) - mH) / mH, 9);
    }
  });

  it('lists send and ab_split steps in file order, labelled with id, kind, template or experiment, and line', () => {
    const v4 = flow.versions.find((v) => v.version === 4)!;
    expect(v4.steps.map((s) => [s.stepId, s.kind, s.template, s.experiment, s.line])).toEqual([
      ['steps[1]', 'ab_split', null, 'cart-subject-test', 10],
      ['steps[1].variants[0].steps[0]', 'send', 'cart-reminder', null, 16],
      ['steps[1].variants[1].steps[0]', 'send', 'cart-discount', null, 20],
      ['steps[2]', 'send', 'cart-followup', null, 23],
    ]);
    expect(v4.steps.map((s) => s.stepId)).toEqual(V4_STEPS);
    expect(v4.steps[0]!.variants.map((r) => r.variant)).toEqual(['control', 'discount']);
    expect(v4.steps[3]!.variants.map((r) => r.variant)).toEqual(['control', 'discount']);
    const v3 = flow.versions.find((v) => v.version === 3)!;
    expect(v3.steps.map((s) => [s.stepId, s.template])).toEqual([
      ['steps[0]', 'cart-reminder'],
      ['steps[1]', 'cart-followup'],
    ]);
  });

  it('carries its period, confidence and the base of every rate', () => {
    expect(report.period).toEqual(PERIOD);
    expect(report.confidence).toBe(0.95);
    expect(report.rateBases).toEqual(RATE_BASES);
    expect(RATE_BASES.open).toBe('opened / (sent - bounced)');
  });

  it('writes the same figures as CSV, one row per flow, version, step and variant, entry rows first', () => {
    const csv = flowReportCsv(report);
    const records = parseCsv(csv, { columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(records[0]!)).toEqual([...CSV_COLUMNS]);
    const funnelRows = flow.versions.flatMap((v) => v.steps.flatMap((s) => s.variants.map((row) => ({ v, s, row }))));
    const entryRows = flow.versions.flatMap((v) => [v.entrants.treatment, ...(v.entrants.holdout.entered > 0 ? [v.entrants.holdout] : [])]);
    expect(records).toHaveLength(funnelRows.length + entryRows.length);
    for (const { v, s, row } of funnelRows) {
      const record = records.find((r) => r.flow_version === String(v.version) && r.step_id === s.stepId && r.variant === row.variant)!;
      expect(record).toMatchObject({ flow_id: 'cart', step_kind: s.kind, template: s.template ?? '', sent: String(row.sent), opened: String(row.opened), clicked: String(row.clicked), converted: String(row.converted) });
      expect(record.open_rate === '' ? null : Number(record.open_rate)).toEqual(row.rates.open === null ? null : expect.closeTo(row.rates.open.estimate, 5));
      expect(record.conversion_rate === '' ? null : Number(record.conversion_rate)).toEqual(row.rates.conversion === null ? null : expect.closeTo(row.rates.conversion.estimate, 5));
      expect(record.revenue_per_recipient === '' ? null : Number(record.revenue_per_recipient)).toEqual(row.sent === 0 ? null : expect.closeTo(row.revenue / row.sent, 5));
    }
    for (const v of flow.versions) {
      const holdout = records.find((r) => r.flow_version === String(v.version) && r.step_kind === 'entry' && r.variant === HOLDOUT_VARIANT);
      expect(Number(holdout?.entered ?? 0)).toBe(v.entrants.holdout.entered);
      const treatment = records.find((r) => r.flow_version === String(v.version) && r.step_kind === 'entry' && r.variant === '')!;
      expect(Number(treatment.entered)).toBe(v.entrants.treatment.entered);
      expect(Number(treatment.conversion_rate)).toBeCloseTo(v.entrants.treatment.conversionRate!.estimate, 5);
    }
  });

  it('quotes CSV text that holds a comma, or would read as a spreadsheet formula', () => {
    // Flow files cannot name such templates; a stored definition is still text from elsewhere.
    const odd = structuredClone(V3);
    (odd.nodes['steps[0]'] as { template: string }).template = 'cart,reminder';
    (odd.nodes['steps[1]'] as { template: string }).template = '=HYPERLINK("x")';
    const csv = flowReportCsv(flowReport(input(log, { definitions: [odd, V4] })));
    expect(csv).toContain(',"cart,reminder",');
    expect(csv).toContain(',"=HYPERLINK(""x"")",');
    const records = parseCsv(csv, { columns: true }) as Array<Record<string, string>>;
    expect(records.filter((r) => r.flow_version === '3' && r.step_kind === 'send').map((r) => r.template)).toEqual(['cart,reminder', '=HYPERLINK("x")']);
  });

  it('prints tables naming every step in order, the lift and the bases', () => {
    const text = formatFlowReport(report);
    expect(text).toContain('== cart (version 4 now, holdout 10%, attribution window 3d)');
    expect(text).toContain('open = opened / (sent - bounced)');
    const positions = V4_STEPS.map((id) => text.indexOf(`\n  ${id} `, text.indexOf('Version 4:')));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(text).toMatch(/Lift against the holdout \(all versions\) \(treatment vs holdout, 95% intervals\):\n {2}conversion rate {8}\d+\.\d\d% \(/);
  });
});

describe('edge cases', () => {
  const row = (stepId: string, variant: string, metric: string, count: number, amount = 0, flowVersion = 4): ReportCounter => ({ flowId: 'cart', flowVersion, stepId, variant, metric, count, amount, amountSquares: amount * amount });

  it('matches the published worked example of a difference of rates (Newcombe 1998, 56/70 − 48/80: 0.0524 to 0.3339)', () => {
    const counters = [row('', '', 'entered', 70), row('', '', 'converted', 56, 56 * 10), row('', HOLDOUT_VARIANT, 'entered', 80), row('', HOLDOUT_VARIANT, 'converted', 48, 48 * 10)];
    const lift = flowReport({ definitions: [V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD }).flows[0]!.lift!;
    expect(lift.conversionRateDifference!.estimate).toBeCloseTo(0.2, 10);
    expect(lift.conversionRateDifference!.lower).toBeCloseTo(0.0524, 4);
    expect(lift.conversionRateDifference!.upper).toBeCloseTo(0.3339, 4);
    expect(lift.conversionRateRelative).toBeCloseTo((0.8 - 0.6) / 0.6, 12);
  });

  it('caps a count above its base (a send credited with two orders) and leaves rates without a base null', () => {
    const counters = [row('steps[2]', 'control', 'sent', 3), row('steps[2]', 'control', 'converted', 5, 50), row('steps[2]', 'control', 'bounced', 3), row('steps[2]', 'control', 'opened', 1)];
    const step = flowReport({ definitions: [V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD }).flows[0]!.versions[0]!.steps.find((s) => s.stepId === 'steps[2]')!;
    const r = step.variants[0]!;
    expect(r).toMatchObject({ sent: 3, converted: 5, reached: 0, revenue: 50 });
    expectInterval(r.rates.conversion, refWilson(3, 3));
    expect(r.rates.open).toBeNull();
    expect(r.rates.click).toBeNull();
  });

  it('shows a flow nobody entered with its steps at zero, a version without a definition and steps it lacks as unknown', () => {
    const empty = flowReport({ definitions: [V3, V4], counters: [], lifetimeCounters: [], experiments: [], period: PERIOD }).flows[0]!;
    expect(empty.versions.map((v) => v.version)).toEqual([4]);
    expect(empty.versions[0]!.steps.map((s) => s.stepId)).toEqual(V4_STEPS);
    expect(empty.versions[0]!.steps[0]!.variants.map((r: FunnelRow) => [r.variant, r.assigned, r.rates.open])).toEqual([
      ['control', 0, null],
      ['discount', 0, null],
    ]);
    expect(empty.lift).toBeNull();
    expect(formatFlowReport(flowReport({ definitions: [V4], counters: [], lifetimeCounters: [], experiments: [], period: PERIOD }))).toContain('Lift against the holdout: none (no holdout entrant counted)');

    const counters = [row('steps[9]', '', 'sent', 4, 0, 2), row('steps[7]', '', 'sent', 2, 0, 4)];
    const odd = flowReport({ definitions: [V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD }).flows[0]!;
    expect(odd.versions.map((v) => [v.version, v.defined, v.steps.map((s) => `${s.stepId}:${s.kind}`)])).toEqual([
      [2, false, ['steps[9]:unknown']],
      [4, true, [...V4_STEPS.map((id) => `${id}:${id === 'steps[1]' ? 'ab_split' : 'send'}`), 'steps[7]:unknown']],
    ]);
    expect(odd.latestVersion).toBe(4);
  });

  it('reports only the flows asked for, and a flow known only from its counters', () => {
    const counters = [row('', '', 'entered', 2), { ...row('', '', 'entered', 5), flowId: 'winback', flowVersion: 1 }];
    const all = flowReport({ definitions: [V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD });
    expect(all.flows.map((f) => [f.flowId, f.latestVersion, f.entrants.treatment.entered])).toEqual([
      ['cart', 4, 2],
      ['winback', null, 5],
    ]);
    const one = flowReport({ definitions: [V4], counters, lifetimeCounters: counters, experiments: [], period: PERIOD, flowIds: ['winback'] });
    expect(one.flows.map((f) => f.flowId)).toEqual(['winback']);
  });
});

describe('experiments', () => {
  const row = (stepId: string, variant: string, metric: string, count: number): ReportCounter => ({ flowId: 'cart', flowVersion: 4, stepId, variant, metric, count, amount: 0, amountSquares: 0 });
  const CONTROL = 'steps[1].variants[0].steps[0]';
  const DISCOUNT = 'steps[1].variants[1].steps[0]';
  const experiment = (overrides: Partial<ReportExperiment>): ReportExperiment => ({
    experimentId: 'cart-subject-test',
    flowId: 'cart',
    stepId: 'steps[1]',
    startedAt: NOW - 10 * DAY,
    state: 'running',
    winner: null,
    decidedAt: null,
    reason: null,
    figures: null,
    evidence: null,
    assigned: new Map([
      ['control', 400],
      ['discount', 410],
    ]),
    ...overrides,
  });

  it('shows the recorded decision, with figures on the lifetime counts of every step of each variant', () => {
    const period = [row(CONTROL, 'control', 'clicked', 20), row(DISCOUNT, 'discount', 'clicked', 41)];
    // Older days: clicks the period leaves out, which the experiment's cumulative figures include.
    const lifetime = [...period, row(CONTROL, 'control', 'clicked', 8), row('steps[2]', 'control', 'clicked', 2), row('steps[2]', 'discount', 'clicked', 19), row(DISCOUNT, 'discount', 'unsubscribed', 3)];
    const recorded = experiment({ state: 'decided', winner: 'discount', decidedAt: NOW - DAY, reason: 'discount wins on click rate (recorded)', figures: { recorded: true } });
    const report = flowReport({ definitions: [V4], counters: period, lifetimeCounters: lifetime, experiments: [recorded], period: PERIOD });
    const e = report.flows[0]!.experiments[0]!;
    expect(e).toMatchObject({
      experimentId: 'cart-subject-test',
      stepId: 'steps[1]',
      state: 'decided',
      winner: 'discount',
      decidedAt: NOW - DAY,
      reason: 'discount wins on click rate (recorded)',
      rule: { metric: 'click', minPerVariant: 50, confidence: 0.95, maxDurationMs: 14 * DAY },
      variants: [
        { name: 'control', weight: 50, assigned: 400 },
        { name: 'discount', weight: 50, assigned: 410 },
      ],
      decisionFigures: { recorded: true },
    });
    // A decision is final: the current check keeps the recorded winner.
    expect(e.current).toMatchObject({ state: 'decided', winner: 'discount' });
    const [control, discount] = e.current!.variants;
    expect(control!.recipients).toBe(400);
    expectInterval(control!.rate, refWilson(20 + 8 + 2, 400));
    expectInterval(discount!.rate, refWilson(41 + 19, 410));
    expectInterval(discount!.unsubscribeRate, refWilson(3, 410));
    // The funnel reads the period only.
    expect(report.flows[0]!.versions[0]!.steps.find((s) => s.stepId === CONTROL)!.variants[0]!.clicked).toBe(20);
    const text = formatFlowReport(report);
    expect(text).toContain(`Experiment cart-subject-test at steps[1]: decided: discount won at ${new Date(NOW - DAY).toISOString()} (winner on click at 95%, min 50 per variant, max 2w)`);
    expect(text).toContain('discount wins on click rate (recorded)');
    expect(text).toMatch(/discount \(winner\)\s+50\s+410\s+14\.63% \(/);
  });

  it('runs the current check from the stored evidence, which may already have decided what the counts alone do not', () => {
    const counts = [row(CONTROL, 'control', 'clicked', 44), row(DISCOUNT, 'discount', 'clicked', 41)];
    const evidence = { pairs: [{ a: 'control', b: 'discount', measure: 'click', aAbove: 0.0001, aBelow: 1 }], winner: null };
    const withEvidence = flowReport({ definitions: [V4], counters: counts, lifetimeCounters: counts, experiments: [experiment({ evidence })], period: PERIOD }).flows[0]!.experiments[0]!;
    const without = flowReport({ definitions: [V4], counters: counts, lifetimeCounters: counts, experiments: [experiment({})], period: PERIOD }).flows[0]!.experiments[0]!;
    expect(without.current).toMatchObject({ state: 'running', winner: null });
    expect(withEvidence.current).toMatchObject({ state: 'decided', winner: 'control' });
    expect(withEvidence.current!.comparisons.find((c) => c.measure === 'click')!.aAbove).toBe(0.0001);
    // Still running as recorded: the report shows what the runtime recorded, the check is for display.
    expect(withEvidence.state).toBe('running');
    expect(formatFlowReport(flowReport({ definitions: [V4], counters: counts, lifetimeCounters: counts, experiments: [experiment({})], period: PERIOD }))).toContain("At the current counts (for display; the runtime's next check records its own): No winner yet");
    // Evidence of another shape is ignored, not trusted.
    const garbled = flowReport({ definitions: [V4], counters: counts, lifetimeCounters: counts, experiments: [experiment({ evidence: { pairs: [{ a: 'control', b: 'discount', measure: 'click', aAbove: 'low' }] } })], period: PERIOD });
    expect(garbled.flows[0]!.experiments[0]!.current).toMatchObject({ state: 'running' });
  });

  it('an experiment whose split has no winner rule, or is gone from the definitions, shows its assignments only', () => {
    const noRule = compile(['id: cart', 'version: 5', 'priority: 90', 'trigger: { event: Product Added }', 'steps:', '  - ab_split:', '      experiment: cart-subject-test', '      variants:', '        - { name: a, weight: 70, steps: [ { send: { template: cart-reminder } } ] }', '        - { name: b, weight: 30 }']);
    const assigned = new Map([
      ['b', 3],
      ['a', 7],
    ]);
    const [e] = flowReport({ definitions: [V4, noRule], counters: [], lifetimeCounters: [], experiments: [experiment({ assigned })], period: PERIOD }).flows[0]!.experiments;
    expect(e).toMatchObject({ rule: null, current: null, variants: [{ name: 'a', weight: 70, assigned: 7 }, { name: 'b', weight: 30, assigned: 3 }] });
    const [gone] = flowReport({ definitions: [], counters: [], lifetimeCounters: [], experiments: [experiment({ assigned, state: 'inconclusive', reason: 'Inconclusive after 2w' })], period: PERIOD }).flows[0]!.experiments;
    expect(gone).toMatchObject({ state: 'inconclusive', reason: 'Inconclusive after 2w', rule: null, current: null, variants: [{ name: 'a', weight: null, assigned: 7 }, { name: 'b', weight: null, assigned: 3 }] });
  });
});
