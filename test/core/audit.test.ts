// The audit's computation on plain rows: which decisions count as which resolution (cap and quiet-hours ones by their
// prefixes), flow pairs per customer, ISO weeks at their edges, the weekly volume bands and their rates, and the
// flows whose send attempts were mostly held back (over half, not at half).
import fc from 'fast-check';
import { BadInputError } from '../../core/errors';
import {
  auditReport,
  formatAuditReport,
  isoWeek,
  parseAuditSince,
  resolutionOf,
  volumeBand,
  type AuditDecisionRow,
  type AuditEventRow,
  type AuditRows,
  type AuditSendRow,
} from '../../core/audit';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Monday 2026-11-30 00:00 UTC: the first day of ISO week 2026-W49. */
const MONDAY = Date.UTC(2026, 10, 30);
const PERIOD = { from: MONDAY - 14 * DAY, to: MONDAY + 14 * DAY };

const decision = (customerId: string, flowId: string, outcome: string, reason = 'why', at = MONDAY): AuditDecisionRow => ({ customerId, flowId, outcome, reason, at });
const sent = (customerId: string, flowId: string, at = MONDAY, status = 'sent'): AuditSendRow => ({ customerId, flowId, status, scheduledAt: at });
const event = (customerId: string, name: string, at = MONDAY): AuditEventRow => ({ customerId, name, at });
const rows = (parts: Partial<AuditRows>): AuditRows => ({ decisions: [], sends: [], events: [], truncated: false, ...parts });

describe('resolutionOf', () => {
  it.each([
    ['preempted', 'higher priority flow cart started', 'preempted'],
    ['suppressed', 'group marketing held by cart', 'suppressed'],
    ['queued', 'cart runs; queued until it ends', 'queued'],
    ['skipped', 'send email-1 (browse-1) skipped: cap marketing-daily is full', 'skippedByCap'],
    ['deferred', 'send email-1 (browse-1) deferred: cap marketing-daily until …', 'deferredByCap'],
    ['deferred_by_cap', 'marketing-daily', 'deferredByCap'],
    ['waiting', 'cap marketing-daily full until 2026-12-01', 'deferredByCap'],
    ['deferred', 'send email-1 (browse-1) deferred: quiet hours 21:00-08:00 until 08:00 local', 'quietHours'],
    ['quiet_hours', 'until 08:00 America/New_York', 'quietHours'],
  ] as const)('%s / %s → %s', (outcome, reason, expected) => {
    expect(resolutionOf({ outcome, reason })).toBe(expected);
  });

  it.each([
    ['started', 'entry condition met'],
    ['skipped', 'already in this flow: cart #1'],
    ['skipped', 'send email-1 (browse-1) skipped: unsubscribed'],
    ['skipped', 'send email-1 (browse-1) skipped: suppressed: complaint'],
    ['completed', 'reached the end'],
    ['converted', 'Order Completed'],
  ])('%s / %s is no resolution', (outcome, reason) => {
    expect(resolutionOf({ outcome, reason })).toBeNull();
  });
});

describe('flow pairs', () => {
  it('counts each customer once per pair of flows they had decisions for, with the resolutions of either flow', () => {
    const report = auditReport(
      rows({
        decisions: [
          decision('c1', 'browse', 'started'),
          decision('c1', 'cart', 'started'),
          decision('c1', 'browse', 'preempted'),
          decision('c1', 'winback', 'queued'),
          decision('c1', 'winback', 'queued', 'again'),
          decision('c2', 'cart', 'started'),
          decision('c2', 'browse', 'started'),
          decision('c3', 'cart', 'started'),
          // Outside the period: not a case.
          decision('c3', 'browse', 'suppressed', 'late', PERIOD.to + 1),
        ],
      }),
      PERIOD,
    );
    const zero = { preempted: 0, suppressed: 0, queued: 0, deferredByCap: 0, skippedByCap: 0, quietHours: 0 };
    expect(report.pairs).toEqual([
      { flows: ['browse', 'cart'], customers: 2, resolutions: { ...zero, preempted: 1 }, unresolved: 1 },
      { flows: ['browse', 'winback'], customers: 1, resolutions: { ...zero, preempted: 1, queued: 1 }, unresolved: 0 },
      { flows: ['cart', 'winback'], customers: 1, resolutions: { ...zero, queued: 1 }, unresolved: 0 },
    ]);
  });
});

describe('isoWeek', () => {
  it.each([
    [Date.UTC(2026, 10, 30), '2026-W49'],
    [Date.UTC(2026, 10, 29, 23, 59, 59, 999), '2026-W48'],
    [Date.UTC(2026, 11, 31), '2026-W53'],
    [Date.UTC(2027, 0, 3, 12), '2026-W53'],
    [Date.UTC(2027, 0, 4), '2027-W01'],
    [Date.UTC(2024, 11, 30), '2025-W01'],
    [Date.UTC(2021, 0, 3), '2020-W53'],
  ])('%i is in %s', (at, week) => {
    expect(isoWeek(at)).toBe(week);
  });

  it('agrees with a count of Thursdays (ISO: a week belongs to the year of its Thursday)', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2090, 0, 1) }), (at) => {
        const midnight = Math.floor(at / DAY) * DAY;
        // Walk to this week's Thursday one day at a time.
        let thursday = midnight;
        while (new Date(thursday).getUTCDay() !== 4) thursday += new Date(thursday).getUTCDay() === 0 || new Date(thursday).getUTCDay() > 4 ? -DAY : DAY;
        const year = new Date(thursday).getUTCFullYear();
        let thursdays = 0;
        for (let day = Date.UTC(year, 0, 1); day <= thursday; day += DAY) if (new Date(day).getUTCDay() === 4) thursdays++;
        expect(isoWeek(at)).toBe(`${year}-W${String(thursdays).padStart(2, '0')}`);
      }),
    );
  });
});

describe('emails per week and rates by volume', () => {
  it('bands customers seen in a week by the emails sent to them that week; pending sends are not emails', () => {
    const report = auditReport(
      rows({
        decisions: [decision('idle', 'browse', 'skipped', 'entry condition not met: x')],
        sends: [
          sent('one', 'cart'),
          sent('one', 'cart', MONDAY + DAY, 'pending'),
          ...Array.from({ length: 6 }, (_, i) => sent('six', 'cart', MONDAY + i * HOUR)),
          sent('two', 'cart', MONDAY - DAY),
          sent('two', 'browse', MONDAY),
        ],
        events: [event('one', 'Unsubscribed', MONDAY + 2 * DAY), event('six', 'Email Marked as Spam'), event('six', 'Unsubscribed'), event('idle', 'Some Other Event')],
      }),
      PERIOD,
    );
    expect(report.emailsPerWeek.weeks).toEqual([
      { week: '2026-W48', customers: { '0': 0, '1': 1, '2': 0, '3': 0, '4': 0, '5+': 0 } },
      { week: '2026-W49', customers: { '0': 1, '1': 2, '2': 0, '3': 0, '4': 0, '5+': 1 } },
    ]);
    expect(report.emailsPerWeek.total).toEqual({ '0': 1, '1': 3, '2': 0, '3': 0, '4': 0, '5+': 1 });
    expect(report.ratesByVolume).toEqual([
      { band: '0', customers: 1, unsubscribed: 0, complained: 0, unsubscribeRate: 0, complaintRate: 0 },
      { band: '1', customers: 3, unsubscribed: 1, complained: 0, unsubscribeRate: 1 / 3, complaintRate: 0 },
      { band: '2', customers: 0, unsubscribed: 0, complained: 0, unsubscribeRate: null, complaintRate: null },
      { band: '3', customers: 0, unsubscribed: 0, complained: 0, unsubscribeRate: null, complaintRate: null },
      { band: '4', customers: 0, unsubscribed: 0, complained: 0, unsubscribeRate: null, complaintRate: null },
      { band: '5+', customers: 1, unsubscribed: 1, complained: 1, unsubscribeRate: 1, complaintRate: 1 },
    ]);
  });

  it.each([
    [0, '0'],
    [4, '4'],
    [5, '5+'],
    [40, '5+'],
  ])('%i emails → band %s', (emails, band) => {
    expect(volumeBand(emails)).toBe(band);
  });
});

describe('flows whose sends are mostly held back', () => {
  it('counts send skips and deferrals against attempts, entry skips not at all, and flags over half only', () => {
    const report = auditReport(
      rows({
        sends: [sent('a', 'half'), sent('a', 'most'), sent('b', 'clean')],
        decisions: [
          decision('a', 'half', 'skipped', 'send e1 (t1) skipped: unsubscribed'),
          decision('a', 'most', 'skipped', 'send e1 (t1) skipped: cap marketing-daily is full'),
          decision('a', 'most', 'deferred', 'send e2 (t2) deferred: cap marketing-daily'),
          decision('b', 'clean', 'skipped', 'already in this flow: clean #1'),
          decision('b', 'clean', 'started', 'entry condition met'),
        ],
      }),
      PERIOD,
    );
    expect(report.flows).toEqual([
      { flowId: 'clean', attempts: 1, sent: 1, skipped: 0, deferred: 0, heldShare: 0 },
      { flowId: 'half', attempts: 2, sent: 1, skipped: 1, deferred: 0, heldShare: 0.5 },
      { flowId: 'most', attempts: 3, sent: 1, skipped: 1, deferred: 1, heldShare: 2 / 3 },
    ]);
    expect(report.mostlyHeld).toEqual(['most']);
    expect(formatAuditReport(report)).toContain('Mostly deferred or skipped: most');
  });
});

describe('the report as text and the period', () => {
  it('prints every section, and says when the store cut the read short', () => {
    const text = formatAuditReport(auditReport(rows({ truncated: true }), PERIOD));
    expect(text).toContain('TRUNCATED');
    expect(text).toContain('Flow pairs');
    expect(text).toContain('Emails per customer per week');
    expect(text).toContain('Unsubscribe and complaint rates');
    expect(text).toContain('No flow had most of its sends deferred or skipped.');
  });

  it('reads --since as a duration, 30 days by default, and names the parameter when it is not one', () => {
    expect(parseAuditSince(undefined)).toBe(30 * DAY);
    expect(parseAuditSince('2w')).toBe(14 * DAY);
    expect(() => parseAuditSince('lots', '--since')).toThrow(BadInputError);
    expect(() => parseAuditSince('lots', '--since')).toThrow(/^--since: .*e\.g\. 30d/);
  });
});
