// The flow report (`microflows report`, GET /api/reports/flows): from the report counters (store/metrics-store), the
// experiments and the flow definitions, each flow's funnel per version, step and variant with rates and their
// intervals, its lift against the holdout, and its experiments' state, as JSON (the types below), text tables or CSV.
// Pure: no I/O, no clock.
//
// What each rate divides by (RATE_BASES, and the README's "Reports"). "reached" is sent − bounced, the "delivered" of
// Klaviyo and Mailchimp: it needs no ESP delivery webhook, so open and click rates mean the same with and without one
// (the ESP-confirmed `delivered` counter gives the delivery rate alone). Conversions divide by sent, since core/attribution
// credits a goal event to any send the customer got, bounced or not being unknown to it. Every count is unique per send
// (store/metrics-store) except conversions, which count goal events: a rate's numerator is capped at its base, so a
// rate is the share of sends (or entrants) with the outcome, as the experiment decision counts it too.
import { attributionWindowMs } from './attribution';
import { formatDuration } from './duration';
import { HOLDOUT_VARIANT } from './experiment-assignment';
import { variantCounts } from './experiment-decision';
import {
  decideWinner,
  meanDifference,
  meanInterval,
  proportionDifference,
  wilsonInterval,
  type ComparisonFigures,
  type ExperimentEvidence,
  type ExperimentState as DecisionState,
  type GuardrailBlock,
  type Interval,
  type Measure,
  type PairEvidence,
  type VariantFigures,
} from './experiment-stats';
import type { FlowDefinition, FlowNode, FlowNodeKind, WinnerRule } from './flow-types';

/** The confidence of every interval in the report (experiments' own figures use their rule's). */
export const REPORT_CONFIDENCE = 0.95;

/** What each rate divides by; the report carries this table so a reader of its JSON or CSV need not guess. */
export const RATE_BASES = {
  delivery: 'delivered / sent',
  bounce: 'bounced / sent',
  open: 'opened / (sent - bounced)',
  machineOpen: 'opened_machine / (sent - bounced)',
  click: 'clicked / (sent - bounced)',
  unsubscribe: 'unsubscribed / (sent - bounced)',
  complaint: 'complained / (sent - bounced)',
  conversion: 'converted / sent (flow level: converted / entered)',
  revenuePerRecipient: 'revenue / sent (flow level: revenue / entered)',
} as const;

export type StepRate = 'delivery' | 'bounce' | 'open' | 'machineOpen' | 'click' | 'unsubscribe' | 'complaint' | 'conversion';
const STEP_RATES: readonly StepRate[] = ['delivery', 'bounce', 'open', 'machineOpen', 'click', 'unsubscribe', 'complaint', 'conversion'];

// --- input -------------------------------------------------------------------------------------------------------------

/** One report counter summed over the days read (store/metrics-store MetricRow). */
export interface ReportCounter {
  flowId: string;
  flowVersion: number;
  /** the send or ab_split node; '' for the flow itself (entered, and conversions by entry) */
  stepId: string;
  /** '' outside experiments; HOLDOUT_VARIANT for holdout entries */
  variant: string;
  metric: string;
  count: number;
  amount: number;
  amountSquares: number;
}

/** An experiment as the store records it (store/experiments-store ExperimentRecord), with its assignments per variant. */
export interface ReportExperiment {
  experimentId: string;
  flowId: string;
  stepId: string;
  startedAt: number;
  state: 'running' | 'decided' | 'inconclusive';
  winner: string | null;
  decidedAt: number | null;
  reason: string | null;
  figures: Record<string, unknown> | null;
  evidence: Record<string, unknown> | null;
  /** customers first assigned to each variant (all time) */
  assigned: ReadonlyMap<string, number>;
}

export interface FlowReportInput {
  /** each flow's versions that the counters name, and its newest; a version without one is reported as unknown steps */
  definitions: readonly FlowDefinition[];
  /** the counters over the period reported */
  counters: readonly ReportCounter[];
  /** the counters of every day, of the same flows: an experiment's figures are cumulative, like its evidence */
  lifetimeCounters: readonly ReportCounter[];
  experiments: readonly ReportExperiment[];
  /** the period the counters cover: `from` the first instant of its first UTC day */
  period: { from: number; to: number };
  /** the flows to report (default: every flow the definitions, counters or experiments name) */
  flowIds?: readonly string[];
  confidence?: number;
}

// --- output (the JSON shape; README "Reports") -------------------------------------------------------------------------

export interface FlowsReport {
  period: { from: number; to: number };
  confidence: number;
  rateBases: typeof RATE_BASES;
  flows: FlowReport[];
}

export interface FlowReport {
  flowId: string;
  /** the newest version defined, or null when no definition is known */
  latestVersion: number | null;
  /** the newest version's holdout share (0..1), or null without one */
  holdout: number | null;
  attributionWindowMs: number | null;
  /** entrants over the period, all versions: treatment (variant '') and holdout (HOLDOUT_VARIANT) */
  entrants: Entrants;
  /** all versions together; null when no holdout entrant was counted */
  lift: Lift | null;
  versions: VersionReport[];
  experiments: ExperimentReport[];
}

export interface VersionReport {
  version: number;
  /** false when the counters name a version whose definition is not known: its steps are labelled `unknown` */
  defined: boolean;
  entrants: Entrants;
  lift: Lift | null;
  /** send and ab_split steps in file order, then any other step counted (`unknown` when the definition lacks it) */
  steps: StepReport[];
}

export interface StepReport {
  stepId: string;
  kind: FlowNodeKind | 'unknown';
  /** a send's template; null for other steps */
  template: string | null;
  /** an ab_split's experiment id; null for other steps */
  experiment: string | null;
  /** the step's line in its flow file, when known */
  line: number | null;
  variants: FunnelRow[];
}

export interface FunnelRow {
  /** '' outside an experiment */
  variant: string;
  /** customers assigned to the variant at this ab_split (0 on send steps) */
  assigned: number;
  sent: number;
  delivered: number;
  bounced: number;
  /** sent − bounced (never below 0): the base of the engagement rates */
  reached: number;
  /** unique people's opens */
  opened: number;
  /** unique opens the ESP flagged as a machine's (privacy proxies, scanners), apart from `opened` */
  openedMachine: number;
  clicked: number;
  unsubscribed: number;
  complained: number;
  /** goal events credited to the step's sends (core/attribution) */
  converted: number;
  revenue: number;
  /** each with its Wilson interval; null when its base is 0 */
  rates: Record<StepRate, Interval | null>;
  /** revenue / sent, with a normal-approximation interval; null with fewer than two sends */
  revenuePerRecipient: Interval | null;
}

export interface CohortFigures {
  entered: number;
  converted: number;
  revenue: number;
  conversionRate: Interval | null;
  revenuePerRecipient: Interval | null;
}

export interface Entrants {
  treatment: CohortFigures;
  holdout: CohortFigures;
}

/** Treatment entrants against holdout entrants (Entrants): the flow's incremental effect. */
export interface Lift {
  /** treatment − holdout conversion rate, Newcombe's interval */
  conversionRateDifference: Interval | null;
  /** (treatment − holdout) / holdout conversion rate; null when the holdout's is 0 */
  conversionRateRelative: number | null;
  /** treatment − holdout revenue per entrant, Welch's interval */
  revenuePerRecipientDifference: Interval | null;
  revenuePerRecipientRelative: number | null;
}

export interface ExperimentReport {
  experimentId: string;
  stepId: string;
  /** as recorded: running until the winner rule decides, then decided or inconclusive for good */
  state: 'running' | 'decided' | 'inconclusive';
  winner: string | null;
  startedAt: number;
  decidedAt: number | null;
  /** the recorded reason of a decided or inconclusive experiment */
  reason: string | null;
  /** the newest definition's rule; null without one (the split stays at its weights) */
  rule: Pick<WinnerRule, 'metric' | 'minPerVariant' | 'confidence' | 'maxDurationMs'> | null;
  variants: Array<{ name: string; weight: number | null; assigned: number }>;
  /** the figures recorded with the decision, as recorded */
  decisionFigures: Record<string, unknown> | null;
  /**
   * The sequential test on the current counts (all time) and the stored evidence, for display only: the recorded
   * state is the runtime's, whose next check of a running experiment sees the same. Null without a rule.
   */
  current: {
    state: DecisionState;
    winner: string | null;
    reason: string;
    decisionAlpha: number;
    variants: VariantFigures[];
    comparisons: ComparisonFigures[];
    blocked: GuardrailBlock[];
  } | null;
}

// --- the report --------------------------------------------------------------------------------------------------------

interface Sum {
  count: number;
  amount: number;
  amountSquares: number;
}

type Sums = Map<string, Sum>;

const ZERO: Sum = Object.freeze({ count: 0, amount: 0, amountSquares: 0 });

/** counters keyed by version, step and variant, then metric */
function group(counters: readonly ReportCounter[]): Map<string, Sums> {
  const out = new Map<string, Sums>();
  for (const row of counters) {
    const key = cellKey(row.flowVersion, row.stepId, row.variant);
    const sums = out.get(key) ?? new Map<string, Sum>();
    const sum = sums.get(row.metric) ?? { count: 0, amount: 0, amountSquares: 0 };
    sum.count += row.count;
    sum.amount += row.amount;
    sum.amountSquares += row.amountSquares;
    sums.set(row.metric, sum);
    out.set(key, sums);
  }
  return out;
}

const cellKey = (version: number, stepId: string, variant: string) => JSON.stringify([version, stepId, variant]);

export function flowReport(input: FlowReportInput): FlowsReport {
  const confidence = input.confidence ?? REPORT_CONFIDENCE;
  const ids = new Set<string>(input.flowIds ?? [...input.definitions.map((d) => d.id), ...input.counters.map((c) => c.flowId), ...input.experiments.map((e) => e.flowId)]);
  const flows = [...ids].sort(compareText).map((flowId) =>
    oneFlow(
      flowId,
      input.definitions.filter((d) => d.id === flowId),
      input.counters.filter((c) => c.flowId === flowId),
      input.lifetimeCounters.filter((c) => c.flowId === flowId),
      input.experiments.filter((e) => e.flowId === flowId),
      confidence,
    ),
  );
  return { period: { ...input.period }, confidence, rateBases: RATE_BASES, flows };
}

function oneFlow(flowId: string, definitions: FlowDefinition[], counters: ReportCounter[], lifetime: ReportCounter[], experiments: ReportExperiment[], confidence: number): FlowReport {
  const byVersion = new Map<number, FlowDefinition>();
  for (const d of definitions) byVersion.set(d.version, d);
  const newestFirst = [...byVersion.values()].sort((a, b) => b.version - a.version);
  const latest = newestFirst[0] ?? null;
  const cells = group(counters);
  const counted = [...new Set(counters.map((c) => c.flowVersion))].sort((a, b) => a - b);
  const versions = (counted.length > 0 ? counted : latest ? [latest.version] : []).map((version) => versionReport(version, byVersion.get(version) ?? null, counters, cells, confidence));
  const cohort = (variant: string) => flowLevel(counters.filter((c) => c.stepId === '' && c.variant === variant));
  return {
    flowId,
    latestVersion: latest?.version ?? null,
    holdout: latest?.holdout ?? null,
    attributionWindowMs: latest ? attributionWindowMs(latest) : null,
    entrants: { treatment: cohortFigures(cohort(''), confidence), holdout: cohortFigures(cohort(HOLDOUT_VARIANT), confidence) },
    lift: liftOf(cohort(''), cohort(HOLDOUT_VARIANT), confidence),
    versions,
    experiments: [...experiments].sort((a, b) => compareText(a.experimentId, b.experimentId)).map((e) => experimentReport(e, newestFirst, lifetime)),
  };
}

function flowLevel(rows: ReportCounter[]): { entered: Sum; converted: Sum } {
  const total = (metric: string): Sum =>
    rows.filter((r) => r.metric === metric).reduce((s, r) => ({ count: s.count + r.count, amount: s.amount + r.amount, amountSquares: s.amountSquares + r.amountSquares }), ZERO);
  return { entered: total('entered'), converted: total('converted') };
}

function versionReport(version: number, definition: FlowDefinition | null, counters: ReportCounter[], cells: Map<string, Sums>, confidence: number): VersionReport {
  const mine = counters.filter((c) => c.flowVersion === version);
  const cohort = (variant: string) => flowLevel(mine.filter((c) => c.stepId === '' && c.variant === variant));
  const nodes = definition ? Object.values(definition.nodes).filter((n) => n.kind === 'send' || n.kind === 'ab_split') : [];
  nodes.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || compareNodeIds(a.id, b.id));
  const known = new Set(nodes.map((n) => n.id));
  const strays = [...new Set(mine.filter((c) => c.stepId !== '' && !known.has(c.stepId)).map((c) => c.stepId))].sort(compareNodeIds);
  const order = variantOrder(definition);
  const steps: StepReport[] = [...nodes.map((n) => ({ id: n.id, node: n as FlowNode | null })), ...strays.map((id) => ({ id, node: definition?.nodes[id] ?? null }))].map(({ id, node }) => {
    const variants = [...new Set(mine.filter((c) => c.stepId === id).map((c) => c.variant))];
    // A step nobody reached yet still shows, with zeros: each variant of a split, or the plain step.
    if (variants.length === 0) variants.push(...(node?.kind === 'ab_split' ? node.variants.map((v) => v.name) : ['']));
    variants.sort((a, b) => order(a) - order(b) || compareText(a, b));
    return {
      stepId: id,
      kind: node?.kind ?? 'unknown',
      template: node?.kind === 'send' ? node.template : null,
      experiment: node?.kind === 'ab_split' ? node.experiment : null,
      line: node?.line ?? null,
      variants: variants.map((variant) => funnelRow(variant, cells.get(cellKey(version, id, variant)) ?? new Map(), confidence)),
    };
  });
  return {
    version,
    defined: definition !== null,
    entrants: { treatment: cohortFigures(cohort(''), confidence), holdout: cohortFigures(cohort(HOLDOUT_VARIANT), confidence) },
    lift: liftOf(cohort(''), cohort(HOLDOUT_VARIANT), confidence),
    steps,
  };
}

/** Variants in the order the flow's splits list them; '' first, anything unknown after them. */
function variantOrder(definition: FlowDefinition | null): (variant: string) => number {
  const rank = new Map<string, number>([['', 0]]);
  for (const node of Object.values(definition?.nodes ?? {}).sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || compareNodeIds(a.id, b.id))) {
    if (node.kind !== 'ab_split') continue;
    for (const v of node.variants) if (!rank.has(v.name)) rank.set(v.name, rank.size);
  }
  return (variant) => rank.get(variant) ?? Number.MAX_SAFE_INTEGER;
}

/** A rate of `count` out of `base` with its Wilson interval, the count capped at the base; null without a base. */
function rate(count: number, base: number, confidence: number): Interval | null {
  return base === 0 ? null : wilsonInterval(Math.min(count, base), base, confidence);
}

function plain(interval: Interval | null): Interval | null {
  return interval && { estimate: interval.estimate, lower: interval.lower, upper: interval.upper };
}

function funnelRow(variant: string, sums: Sums, confidence: number): FunnelRow {
  const n = (metric: string) => sums.get(metric)?.count ?? 0;
  const sent = n('sent');
  const bounced = n('bounced');
  const reached = Math.max(0, sent - bounced);
  const conversions = sums.get('converted') ?? ZERO;
  return {
    variant,
    assigned: n('assigned'),
    sent,
    delivered: n('delivered'),
    bounced,
    reached,
    opened: n('opened'),
    openedMachine: n('opened_machine'),
    clicked: n('clicked'),
    unsubscribed: n('unsubscribed'),
    complained: n('complained'),
    converted: conversions.count,
    revenue: conversions.amount,
    rates: {
      delivery: rate(n('delivered'), sent, confidence),
      bounce: rate(bounced, sent, confidence),
      open: rate(n('opened'), reached, confidence),
      machineOpen: rate(n('opened_machine'), reached, confidence),
      click: rate(n('clicked'), reached, confidence),
      unsubscribe: rate(n('unsubscribed'), reached, confidence),
      complaint: rate(n('complained'), reached, confidence),
      conversion: rate(conversions.count, sent, confidence),
    },
    revenuePerRecipient: plain(meanInterval({ count: sent, sum: conversions.amount, sumOfSquares: conversions.amountSquares }, confidence)),
  };
}

function cohortFigures(c: { entered: Sum; converted: Sum }, confidence: number): CohortFigures {
  return {
    entered: c.entered.count,
    converted: c.converted.count,
    revenue: c.converted.amount,
    conversionRate: rate(c.converted.count, c.entered.count, confidence),
    revenuePerRecipient: plain(meanInterval({ count: c.entered.count, sum: c.converted.amount, sumOfSquares: c.converted.amountSquares }, confidence)),
  };
}

function liftOf(treatment: { entered: Sum; converted: Sum }, holdout: { entered: Sum; converted: Sum }, confidence: number): Lift | null {
  if (holdout.entered.count === 0) return null;
  const proportion = (c: { entered: Sum; converted: Sum }) => ({ successes: Math.min(c.converted.count, c.entered.count), trials: c.entered.count });
  const amounts = (c: { entered: Sum; converted: Sum }) => ({ count: c.entered.count, sum: c.converted.amount, sumOfSquares: c.converted.amountSquares });
  const relative = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? null : (a - b) / b);
  const rateOf = (c: { entered: Sum; converted: Sum }) => (c.entered.count === 0 ? undefined : Math.min(c.converted.count, c.entered.count) / c.entered.count);
  const meanOf = (c: { entered: Sum; converted: Sum }) => (c.entered.count === 0 ? undefined : c.converted.amount / c.entered.count);
  return {
    conversionRateDifference: proportionDifference(proportion(treatment), proportion(holdout), confidence),
    conversionRateRelative: relative(rateOf(treatment), rateOf(holdout)),
    revenuePerRecipientDifference: plain(meanDifference(amounts(treatment), amounts(holdout), confidence)),
    revenuePerRecipientRelative: relative(meanOf(treatment), meanOf(holdout)),
  };
}

function experimentReport(experiment: ReportExperiment, newestFirst: FlowDefinition[], lifetime: ReportCounter[]): ExperimentReport {
  // The newest version that has the split: its variants and rule are the ones the runtime checks.
  let split: Extract<FlowNode, { kind: 'ab_split' }> | null = null;
  for (const definition of newestFirst) {
    const found = Object.values(definition.nodes).find((n): n is Extract<FlowNode, { kind: 'ab_split' }> => n.kind === 'ab_split' && n.experiment === experiment.experimentId);
    if (found) {
      split = found;
      break;
    }
  }
  const names = split ? split.variants.map((v) => v.name) : [...experiment.assigned.keys()].sort(compareText);
  const rule = split?.winner ?? null;
  let current: ExperimentReport['current'] = null;
  if (rule && names.length >= 2) {
    const decision = decideWinner({
      variants: variantCounts(names, experiment.assigned, lifetime, rule),
      metric: rule.metric,
      confidence: rule.confidence,
      minPerVariant: rule.minPerVariant,
      previous: storedEvidence(experiment),
    });
    current = {
      state: decision.state,
      winner: decision.winner,
      reason: decision.reason,
      decisionAlpha: decision.decisionAlpha,
      variants: decision.variants,
      comparisons: decision.comparisons,
      blocked: decision.blocked,
    };
  }
  return {
    experimentId: experiment.experimentId,
    stepId: experiment.stepId,
    state: experiment.state,
    winner: experiment.winner,
    startedAt: experiment.startedAt,
    decidedAt: experiment.decidedAt,
    reason: experiment.reason,
    rule: rule && { metric: rule.metric, minPerVariant: rule.minPerVariant, confidence: rule.confidence, maxDurationMs: rule.maxDurationMs },
    variants: names.map((name) => ({ name, weight: split?.variants.find((v) => v.name === name)?.weight ?? null, assigned: experiment.assigned.get(name) ?? 0 })),
    decisionFigures: experiment.figures,
    current,
  };
}

const MEASURES: readonly Measure[] = ['click', 'conversion', 'unsubscribe', 'complaint'];

/** The evidence the runtime stored (what it passes to its next check); a decided experiment's winner stays final. */
function storedEvidence(experiment: ReportExperiment): ExperimentEvidence | null {
  const raw = experiment.evidence?.pairs;
  const pairs = Array.isArray(raw) ? raw.filter(isPairEvidence) : [];
  const winner = experiment.state === 'decided' ? experiment.winner : null;
  return pairs.length === 0 && winner === null ? null : { pairs, winner };
}

function isPairEvidence(value: unknown): value is PairEvidence {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const p = (x: unknown) => typeof x === 'number' && x >= 0 && x <= 1;
  return typeof v.a === 'string' && typeof v.b === 'string' && MEASURES.includes(v.measure as Measure) && p(v.aAbove) && p(v.aBelow);
}

// --- formats -----------------------------------------------------------------------------------------------------------

/** The columns of the CSV, in order: one row per flow, version, step (flow level: step '' and kind `entry`) and variant. */
export const CSV_COLUMNS = [
  'flow_id',
  'flow_version',
  'step_id',
  'step_kind',
  'template',
  'variant',
  'entered',
  'assigned',
  'sent',
  'delivered',
  'bounced',
  'reached',
  'opened',
  'opened_machine',
  'clicked',
  'unsubscribed',
  'complained',
  'converted',
  'revenue',
  'delivery_rate',
  'bounce_rate',
  'open_rate',
  'machine_open_rate',
  'click_rate',
  'unsubscribe_rate',
  'complaint_rate',
  'conversion_rate',
  'revenue_per_recipient',
] as const;

/**
 * The report as CSV (RFC 4180, header first): rates are fractions (0.1234), empty where they have no base. Each
 * version starts with its flow-level rows (step '', kind `entry`, variant '' and `(holdout)` when counted), whose
 * conversion rate and revenue per recipient divide by entered.
 */
export function flowReportCsv(report: FlowsReport): string {
  const lines: string[][] = [[...CSV_COLUMNS]];
  const number = (x: number) => String(Number(x.toFixed(6)));
  const fraction = (i: Interval | null) => (i ? number(i.estimate) : '');
  // Straight from the sums: the JSON's interval needs two recipients, the mean only one.
  const perRecipient = (revenue: number, recipients: number) => (recipients === 0 ? '' : number(revenue / recipients));
  for (const flow of report.flows) {
    for (const version of flow.versions) {
      const cohorts: Array<[string, CohortFigures]> = [['', version.entrants.treatment]];
      if (version.entrants.holdout.entered > 0) cohorts.push([HOLDOUT_VARIANT, version.entrants.holdout]);
      for (const [variant, c] of cohorts) {
        lines.push([
          flow.flowId,
          String(version.version),
          '',
          'entry',
          '',
          variant,
          String(c.entered),
          ...Array<string>(10).fill('0'),
          String(c.converted),
          number(c.revenue),
          ...Array<string>(7).fill(''),
          fraction(c.conversionRate),
          perRecipient(c.revenue, c.entered),
        ]);
      }
      for (const step of version.steps) {
        for (const row of step.variants) {
          lines.push([
            flow.flowId,
            String(version.version),
            step.stepId,
            step.kind,
            step.template ?? '',
            row.variant,
            '0',
            String(row.assigned),
            String(row.sent),
            String(row.delivered),
            String(row.bounced),
            String(row.reached),
            String(row.opened),
            String(row.openedMachine),
            String(row.clicked),
            String(row.unsubscribed),
            String(row.complained),
            String(row.converted),
            number(row.revenue),
            ...STEP_RATES.map((r) => fraction(row.rates[r])),
            perRecipient(row.revenue, row.sent),
          ]);
        }
      }
    }
  }
  return lines.map((line) => line.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** One CSV field: quoted when it holds a comma, quote or line break; text starting =, +, - or @ is quoted so a spreadsheet reads text. */
function csvField(text: string): string {
  return /[",\r\n]|^[=+\-@]/.test(text) && !/^-?\d+(\.\d+)?(e-?\d+)?$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The report as text tables, for a terminal. */
export function formatFlowReport(report: FlowsReport): string {
  const level = `${trim(report.confidence * 100)}%`;
  const out: string[] = [
    `Flow report ${day(report.period.from)} .. ${new Date(report.period.to).toISOString()} (whole UTC days: sends and their engagement and conversions by the send's day, entries by the entry's)`,
    `Rates (${level} Wilson intervals in parentheses): ${Object.entries(RATE_BASES).map(([name, base]) => `${name} = ${base}`).join('; ')}.`,
  ];
  if (report.flows.length === 0) out.push('', 'No flow is registered yet: start microflows with flows in MICROFLOWS_FLOWS_DIR.');
  for (const flow of report.flows) {
    out.push('');
    const facts = [
      flow.latestVersion === null ? 'no definition known' : `version ${flow.latestVersion} now`,
      flow.holdout === null ? 'no holdout' : `holdout ${trim(flow.holdout * 100)}%`,
      ...(flow.attributionWindowMs === null ? [] : [`attribution window ${formatDuration(flow.attributionWindowMs)}`]),
    ];
    out.push(`== ${flow.flowId} (${facts.join(', ')})`);
    out.push(...entrantLines(flow.entrants, flow.lift, level, flow.versions.length > 1 ? 'all versions' : null));
    for (const version of flow.versions) {
      out.push('', `Version ${version.version}${version.defined ? '' : ' (definition not found: steps as counted)'}:`);
      if (flow.versions.length > 1) out.push(...entrantLines(version.entrants, version.lift, level, `version ${version.version}`).map((l) => `  ${l}`));
      const rows = version.steps.flatMap((step) => step.variants.map((row) => ({ step, row })));
      if (rows.length === 0) {
        out.push('  no send or ab_split steps');
        continue;
      }
      out.push(
        indent(
          table(
            ['STEP', 'KIND', 'TEMPLATE', 'VARIANT', 'ASSIGNED', 'SENT', 'DELIVERED', 'BOUNCED', 'OPENED', 'MACHINE OPENS', 'CLICKED', 'UNSUBSCRIBED', 'COMPLAINED', 'CONVERTED', 'REVENUE'],
            rows.map(({ step, row }) => [
              step.stepId,
              step.kind,
              step.template ?? step.experiment ?? '-',
              row.variant || '-',
              String(row.assigned),
              String(row.sent),
              String(row.delivered),
              String(row.bounced),
              String(row.opened),
              String(row.openedMachine),
              String(row.clicked),
              String(row.unsubscribed),
              String(row.complained),
              String(row.converted),
              money(row.revenue),
            ]),
          ),
        ),
      );
      const sendRows = rows.filter(({ row }) => row.sent > 0);
      if (sendRows.length > 0) {
        out.push('');
        out.push(
          indent(
            table(
              ['STEP', 'VARIANT', 'DELIVERY', 'OPEN', 'CLICK', 'CONVERSION', 'UNSUBSCRIBE', 'COMPLAINT', 'REVENUE/RECIPIENT'],
              sendRows.map(({ step, row }) => [
                step.stepId,
                row.variant || '-',
                withInterval(row.rates.delivery),
                withInterval(row.rates.open),
                withInterval(row.rates.click),
                withInterval(row.rates.conversion),
                withInterval(row.rates.unsubscribe),
                withInterval(row.rates.complaint),
                row.revenuePerRecipient ? `${money(row.revenuePerRecipient.estimate)} (${money(row.revenuePerRecipient.lower)}..${money(row.revenuePerRecipient.upper)})` : '-',
              ]),
            ),
          ),
        );
      }
      if (rows.some(({ row }) => row.sent > 0) && rows.every(({ row }) => row.delivered === 0)) {
        out.push('  (delivered counts ESP delivery reports; none arrived for this version, so the delivery rate reads 0)');
      }
    }
    for (const e of flow.experiments) out.push('', ...experimentLines(e));
  }
  return out.join('\n');
}

function entrantLines(entrants: Entrants, lift: Lift | null, level: string, scope: string | null): string[] {
  const label = scope ? ` (${scope})` : '';
  const { treatment, holdout } = entrants;
  const rpr = (c: CohortFigures) => (c.revenuePerRecipient ? `${money(c.revenuePerRecipient.estimate)} (${money(c.revenuePerRecipient.lower)}..${money(c.revenuePerRecipient.upper)})` : '-');
  const out = [
    `Entered${label}: ${treatment.entered + holdout.entered} (treatment ${treatment.entered}, holdout ${holdout.entered}); ` +
      `treatment conversion ${withInterval(treatment.conversionRate)}, revenue per recipient ${rpr(treatment)}`,
  ];
  if (!lift) return [...out, `Lift against the holdout${label}: none (no holdout entrant counted)`];
  const points = (x: number) => `${x >= 0 ? '+' : '-'}${(Math.abs(x) * 100).toFixed(2)}`;
  const signedMoney = (x: number) => `${x >= 0 ? '+' : '-'}${money(Math.abs(x))}`;
  const relative = (x: number | null) => (x === null ? '' : `; relative ${x >= 0 ? '+' : '-'}${(Math.abs(x) * 100).toFixed(1)}%`);
  const d = lift.conversionRateDifference;
  const r = lift.revenuePerRecipientDifference;
  return [
    ...out,
    `Lift against the holdout${label} (treatment vs holdout, ${level} intervals):`,
    `  conversion rate        ${withInterval(treatment.conversionRate)} vs ${withInterval(holdout.conversionRate)}: ` +
      (d ? `${points(d.estimate)} points (${points(d.lower)} to ${points(d.upper)})` : 'not measurable yet') +
      relative(lift.conversionRateRelative),
    `  revenue per recipient  ${rpr(treatment)} vs ${rpr(holdout)}: ` +
      (r ? `${signedMoney(r.estimate)} (${signedMoney(r.lower)} to ${signedMoney(r.upper)})` : 'needs two entrants on each side') +
      relative(lift.revenuePerRecipientRelative),
  ];
}

function experimentLines(e: ExperimentReport): string[] {
  const head =
    e.state === 'decided'
      ? `decided: ${e.winner} won${e.decidedAt === null ? '' : ` at ${new Date(e.decidedAt).toISOString()}`}`
      : e.state === 'inconclusive'
        ? `inconclusive${e.decidedAt === null ? '' : ` at ${new Date(e.decidedAt).toISOString()}`}`
        : `running since ${new Date(e.startedAt).toISOString()}`;
  const rule = e.rule ? `winner on ${e.rule.metric} at ${trim(e.rule.confidence * 100)}%, min ${e.rule.minPerVariant} per variant, max ${formatDuration(e.rule.maxDurationMs)}` : 'no winner rule';
  const out = [`Experiment ${e.experimentId} at ${e.stepId}: ${head} (${rule})`];
  if (e.reason) out.push(`  ${e.reason}`);
  else if (e.current) out.push(`  At the current counts (for display; the runtime's next check records its own): ${e.current.reason}`);
  const figures = new Map((e.current?.variants ?? []).map((v) => [v.name, v]));
  out.push(
    indent(
      table(
        ['VARIANT', 'WEIGHT', 'ASSIGNED', ...(e.current ? [`${e.rule!.metric.toUpperCase()} RATE`, 'UNSUBSCRIBE RATE', 'COMPLAINT RATE'] : [])],
        e.variants.map((v) => {
          const f = figures.get(v.name);
          return [v.name + (e.winner === v.name ? ' (winner)' : ''), v.weight === null ? '-' : String(v.weight), String(v.assigned), ...(e.current ? [withInterval(f?.rate ?? null), withInterval(f?.unsubscribeRate ?? null), withInterval(f?.complaintRate ?? null)] : [])];
        }),
      ),
    ),
  );
  return out;
}

function withInterval(i: Interval | null): string {
  if (!i) return '-';
  return `${pct(i.estimate)} (${pct(i.lower)}..${pct(i.upper)})`;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const money = (x: number) => x.toFixed(2);
const trim = (x: number) => String(Number(x.toFixed(2)));
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!))).join('  ')).join('\n');
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Node ids by their numbers, so steps[2] comes before steps[10]. */
function compareNodeIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
