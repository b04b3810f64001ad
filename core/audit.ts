// The overlap and fatigue audit (issue 15, item 5): from what really happened (decisions, sends, unsubscribe and
// complaint events of a period), which flows collided for the same customers and how, how much mail each customer
// got per week, how unsubscribes and complaints rise with that volume, and which flows mostly fail to send.
import { parseDuration } from './duration';
import { BadInputError, isMicroflowsError } from './errors';

/** One logged decision (store decisions table), as the audit reads it. */
export interface AuditDecisionRow {
  customerId: string;
  flowId: string;
  /** started | skipped | suppressed | queued | preempted | converted | completed | exited | failed (and later deferred…) */
  outcome: string;
  reason: string;
  at: number;
}

/** One claimed send (store sends table). `scheduledAt` is the flow's own time of the send step. */
export interface AuditSendRow {
  customerId: string;
  flowId: string;
  status: string;
  scheduledAt: number;
}

/** One Unsubscribed or Email Marked as Spam event. */
export interface AuditEventRow {
  customerId: string;
  name: string;
  at: number;
}

export interface AuditRows {
  decisions: AuditDecisionRow[];
  sends: AuditSendRow[];
  events: AuditEventRow[];
  /** The store stopped at its row bound: the report covers part of the period only. */
  truncated: boolean;
}

export const UNSUBSCRIBED_EVENT = 'Unsubscribed';
export const COMPLAINT_EVENT = 'Email Marked as Spam';
export const AUDIT_EVENT_NAMES: readonly string[] = [UNSUBSCRIBED_EVENT, COMPLAINT_EVENT];

/** How a conflict between flows (or a cap, or quiet hours) held a send or a run back. */
export const RESOLUTIONS = ['preempted', 'suppressed', 'queued', 'deferredByCap', 'skippedByCap', 'quietHours'] as const;
export type Resolution = (typeof RESOLUTIONS)[number];

/** Weekly volume bands: emails a customer got in one ISO week. */
export const VOLUME_BANDS = ['0', '1', '2', '3', '4', '5+'] as const;
export type VolumeBand = (typeof VOLUME_BANDS)[number];
export type BandCounts = Record<VolumeBand, number>;

export interface FlowPairReport {
  /** The two flow ids, a < b. */
  flows: [string, string];
  /** Customers with a decision for both flows in the period. */
  customers: number;
  /** Of those customers, how many had each kind of resolution logged for either flow (one customer may have several). */
  resolutions: Record<Resolution, number>;
  /** Of those customers, how many had none of these logged: both flows ran for them side by side. */
  unresolved: number;
}

export interface WeekHistogram {
  /** ISO week, e.g. 2026-W49 (UTC). */
  week: string;
  customers: BandCounts;
}

export interface BandRates {
  band: VolumeBand;
  /** Customer-weeks in this band. */
  customers: number;
  unsubscribed: number;
  complained: number;
  /** unsubscribed ÷ customers; null when the band is empty. */
  unsubscribeRate: number | null;
  complaintRate: number | null;
}

export interface FlowSendReport {
  flowId: string;
  /** Every time a send step of the flow asked to send: claimed sends + skipped sends + deferrals. */
  attempts: number;
  sent: number;
  skipped: number;
  deferred: number;
  /** (skipped + deferred) ÷ attempts. */
  heldShare: number;
}

export interface AuditReport {
  period: { from: number; to: number };
  pairs: FlowPairReport[];
  emailsPerWeek: { total: BandCounts; weeks: WeekHistogram[] };
  ratesByVolume: BandRates[];
  flows: FlowSendReport[];
  /** The flows whose sends were mostly (over half) deferred or skipped. */
  mostlyHeld: string[];
  truncated: boolean;
}

export const DEFAULT_AUDIT_SINCE = '30d';

/**
 * `--since 30d` / `?since=30d`: the period's length in ms; a BadInputError naming `field` when it is not a duration.
 * The flow report reads its period the same way, saying `what` looks back.
 */
export function parseAuditSince(text: string | undefined, field = 'since', what = 'the audit'): number {
  try {
    return parseDuration(text ?? DEFAULT_AUDIT_SINCE);
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    throw new BadInputError(`${err.message} (how far back ${what} looks, e.g. 30d or 2w)`, field);
  }
}

/** A send step's skip or deferral reason reads `send <node> (<template>) skipped: <why>`; the audit reads <why>. */
function reasonDetail(reason: string): string {
  return reason.replace(/^send \S+ \([^)]*\) [a-z ]+?: /i, '').trim().toLowerCase();
}

/** What a decision says about a held-back send or run, if anything. Cap and quiet-hours decisions are recognised by
 *  their outcome or reason prefixes, so they count as soon as the send side records them. */
export function resolutionOf(decision: Pick<AuditDecisionRow, 'outcome' | 'reason'>): Resolution | null {
  const outcome = decision.outcome.toLowerCase();
  const detail = reasonDetail(decision.reason);
  if (outcome === 'preempted') return 'preempted';
  if (outcome === 'suppressed') return 'suppressed';
  if (outcome === 'queued') return 'queued';
  if (outcome.startsWith('quiet') || detail.startsWith('quiet hours')) return 'quietHours';
  if (outcome === 'skipped') return detail.startsWith('cap') ? 'skippedByCap' : null;
  if (outcome.startsWith('deferred') || detail.startsWith('cap')) return 'deferredByCap';
  return null;
}

/** A skip logged by a send step (not an entry skip: those have no `send <node>` prefix), or a skip by cap. */
function isSendSkip(decision: AuditDecisionRow): boolean {
  return decision.outcome === 'skipped' && (/^send \S+ \(/.test(decision.reason) || resolutionOf(decision) === 'skippedByCap');
}

function isDeferral(decision: AuditDecisionRow): boolean {
  const resolution = resolutionOf(decision);
  return resolution === 'deferredByCap' || (resolution === 'quietHours' && decision.outcome !== 'skipped');
}

/** The ISO 8601 week (Monday first, week 1 holds the year's first Thursday) of a UTC instant: `2026-W49`. */
export function isoWeek(at: number): string {
  const date = new Date(at);
  const day = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  // The Thursday of this week decides the week's year.
  const thursday = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() - day + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

export function volumeBand(emails: number): VolumeBand {
  return emails >= 5 ? '5+' : (String(emails) as VolumeBand);
}

const emptyBands = (): BandCounts => ({ '0': 0, '1': 0, '2': 0, '3': 0, '4': 0, '5+': 0 });
const emptyResolutions = (): Record<Resolution, number> => ({ preempted: 0, suppressed: 0, queued: 0, deferredByCap: 0, skippedByCap: 0, quietHours: 0 });
const within = (at: number, period: { from: number; to: number }) => at >= period.from && at <= period.to;

/** Keyed by customer, then flow: the kinds of resolution logged for that customer in that flow. */
function flowsByCustomer(decisions: AuditDecisionRow[]): Map<string, Map<string, Set<Resolution>>> {
  const customers = new Map<string, Map<string, Set<Resolution>>>();
  for (const d of decisions) {
    const flows = customers.get(d.customerId) ?? new Map<string, Set<Resolution>>();
    customers.set(d.customerId, flows);
    const kinds = flows.get(d.flowId) ?? new Set<Resolution>();
    flows.set(d.flowId, kinds);
    const resolution = resolutionOf(d);
    if (resolution) kinds.add(resolution);
  }
  return customers;
}

function flowPairs(decisions: AuditDecisionRow[]): FlowPairReport[] {
  const pairs = new Map<string, FlowPairReport>();
  for (const flows of flowsByCustomer(decisions).values()) {
    const ids = [...flows.keys()].sort();
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const a = ids[i]!;
        const b = ids[j]!;
        const key = JSON.stringify([a, b]);
        const pair = pairs.get(key) ?? { flows: [a, b], customers: 0, resolutions: emptyResolutions(), unresolved: 0 };
        pairs.set(key, pair);
        pair.customers++;
        const kinds = new Set([...flows.get(a)!, ...flows.get(b)!]);
        for (const kind of kinds) pair.resolutions[kind]++;
        if (kinds.size === 0) pair.unresolved++;
      }
    }
  }
  return [...pairs.values()].sort((x, y) => y.customers - x.customers || (x.flows.join('\n') < y.flows.join('\n') ? -1 : 1));
}

/**
 * Each customer seen in a week (any decision, send or unsubscribe/complaint event in it) with the emails sent to them
 * that week: customers active but not mailed are the 0 band. Weeks are UTC ISO weeks of the flow's own times.
 */
function customerWeeks(rows: AuditRows): Map<string, Map<string, { emails: number; unsubscribed: boolean; complained: boolean }>> {
  const weeks = new Map<string, Map<string, { emails: number; unsubscribed: boolean; complained: boolean }>>();
  const entry = (customerId: string, at: number) => {
    const week = isoWeek(at);
    const customers = weeks.get(week) ?? new Map<string, { emails: number; unsubscribed: boolean; complained: boolean }>();
    weeks.set(week, customers);
    const found = customers.get(customerId) ?? { emails: 0, unsubscribed: false, complained: false };
    customers.set(customerId, found);
    return found;
  };
  for (const d of rows.decisions) entry(d.customerId, d.at);
  for (const s of rows.sends) {
    const found = entry(s.customerId, s.scheduledAt);
    if (s.status === 'sent') found.emails++;
  }
  for (const e of rows.events) {
    const found = entry(e.customerId, e.at);
    if (e.name === UNSUBSCRIBED_EVENT) found.unsubscribed = true;
    if (e.name === COMPLAINT_EVENT) found.complained = true;
  }
  return weeks;
}

function flowSends(rows: AuditRows): FlowSendReport[] {
  const flows = new Map<string, FlowSendReport>();
  const of = (flowId: string) => {
    const found = flows.get(flowId) ?? { flowId, attempts: 0, sent: 0, skipped: 0, deferred: 0, heldShare: 0 };
    flows.set(flowId, found);
    return found;
  };
  for (const s of rows.sends) {
    const flow = of(s.flowId);
    flow.attempts++;
    if (s.status === 'sent') flow.sent++;
  }
  for (const d of rows.decisions) {
    if (isSendSkip(d)) {
      const flow = of(d.flowId);
      flow.attempts++;
      flow.skipped++;
    } else if (isDeferral(d)) {
      const flow = of(d.flowId);
      flow.attempts++;
      flow.deferred++;
    }
  }
  for (const flow of flows.values()) flow.heldShare = flow.attempts === 0 ? 0 : (flow.skipped + flow.deferred) / flow.attempts;
  return [...flows.values()].sort((a, b) => (a.flowId < b.flowId ? -1 : a.flowId > b.flowId ? 1 : 0));
}

/** The audit of `rows` over `period` (inclusive); rows outside it are left out, so a caller may pass a wider read. */
export function auditReport(input: AuditRows, period: { from: number; to: number }): AuditReport {
  const rows: AuditRows = {
    decisions: input.decisions.filter((d) => within(d.at, period)),
    sends: input.sends.filter((s) => within(s.scheduledAt, period)),
    events: input.events.filter((e) => AUDIT_EVENT_NAMES.includes(e.name) && within(e.at, period)),
    truncated: input.truncated,
  };

  const total = emptyBands();
  const weeks: WeekHistogram[] = [];
  const rates = new Map<VolumeBand, BandRates>(VOLUME_BANDS.map((band) => [band, { band, customers: 0, unsubscribed: 0, complained: 0, unsubscribeRate: null, complaintRate: null }]));
  for (const [week, customers] of [...customerWeeks(rows)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const histogram = emptyBands();
    for (const c of customers.values()) {
      const band = volumeBand(c.emails);
      histogram[band]++;
      total[band]++;
      const rate = rates.get(band)!;
      rate.customers++;
      if (c.unsubscribed) rate.unsubscribed++;
      if (c.complained) rate.complained++;
    }
    weeks.push({ week, customers: histogram });
  }
  for (const rate of rates.values()) {
    if (rate.customers === 0) continue;
    rate.unsubscribeRate = rate.unsubscribed / rate.customers;
    rate.complaintRate = rate.complained / rate.customers;
  }

  const flows = flowSends(rows);
  return {
    period,
    pairs: flowPairs(rows.decisions),
    emailsPerWeek: { total, weeks },
    ratesByVolume: [...rates.values()],
    flows,
    mostlyHeld: flows.filter((f) => f.heldShare > 0.5).map((f) => f.flowId),
    truncated: rows.truncated,
  };
}

/** Column titles of the resolutions in the text report. */
const RESOLUTION_TITLES: Record<Resolution, string> = { preempted: 'PREEMPTED', suppressed: 'SUPPRESSED', queued: 'QUEUED', deferredByCap: 'CAP-DEFERRED', skippedByCap: 'CAP-SKIPPED', quietHours: 'QUIET-HOURS' };

const percent = (rate: number | null) => (rate === null ? '-' : `${(rate * 100).toFixed(1)}%`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** The report as the CLI prints it: four sections of plain tables. */
export function formatAuditReport(report: AuditReport): string {
  const from = new Date(report.period.from).toISOString();
  const to = new Date(report.period.to).toISOString();
  const out: string[] = [`Audit ${from} .. ${to}${report.truncated ? ' (TRUNCATED: the period holds more rows than the audit reads; use a shorter --since)' : ''}`, ''];

  out.push('Flow pairs (customers with decisions for both, and how their cases were resolved):');
  out.push(
    report.pairs.length === 0
      ? '  none: no customer had decisions for two flows'
      : table(
          ['FLOW A', 'FLOW B', 'CUSTOMERS', ...RESOLUTIONS.map((r) => RESOLUTION_TITLES[r]), 'UNRESOLVED'],
          report.pairs.map((p) => [p.flows[0], p.flows[1], String(p.customers), ...RESOLUTIONS.map((r) => String(p.resolutions[r])), String(p.unresolved)]),
        ),
  );

  out.push('', 'Emails per customer per week (customers seen that week, by emails sent to them):');
  out.push(
    table(
      ['WEEK', ...VOLUME_BANDS],
      [...report.emailsPerWeek.weeks.map((w) => [w.week, ...VOLUME_BANDS.map((b) => String(w.customers[b]))]), ['all', ...VOLUME_BANDS.map((b) => String(report.emailsPerWeek.total[b]))]],
    ),
  );

  out.push('', 'Unsubscribe and complaint rates by weekly volume (customer-weeks):');
  out.push(
    table(
      ['EMAILS/WEEK', 'CUSTOMERS', 'UNSUBSCRIBED', 'RATE', 'COMPLAINED', 'RATE'],
      report.ratesByVolume.map((r) => [r.band, String(r.customers), String(r.unsubscribed), percent(r.unsubscribeRate), String(r.complained), percent(r.complaintRate)]),
    ),
  );

  out.push('', 'Sends per flow (held = skipped + deferred, of attempts):');
  out.push(
    report.flows.length === 0
      ? '  none: no send step ran in the period'
      : table(
          ['FLOW', 'ATTEMPTS', 'SENT', 'SKIPPED', 'DEFERRED', 'HELD'],
          report.flows.map((f) => [f.flowId, String(f.attempts), String(f.sent), String(f.skipped), String(f.deferred), percent(f.heldShare)]),
        ),
  );
  out.push(report.mostlyHeld.length === 0 ? 'No flow had most of its sends deferred or skipped.' : `Mostly deferred or skipped: ${report.mostlyHeld.join(', ')}`);
  return out.join('\n');
}
