// The overlap and fatigue audit on SQLite and PostgreSQL: a generated history written through the store (decisions,
// claimed and delivered sends, Unsubscribed / Email Marked as Spam events), read back for a period by auditRows and
// reported by core/audit, equals a brute-force computation written here from the definition: it shares no code with
// core/audit and reads the kind of every decision and the week of every row from how the generator made them, not
// from their text or timestamps. The same report is GET /api/audit behind the admin key.
import type { NewEvent } from '../../core/event';
import { auditReport, type AuditReport } from '../../core/audit';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import type { DecisionRecord } from '../../store/store';
import { adminFetch, TEST_ADMIN_KEY } from '../support/http';
import { seededRandom } from '../support/seeded-random';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
/** Monday 2026-10-26 00:00 UTC, the first instant of ISO week 2026-W44; the history spans W44 to W49. */
const MONDAY = Date.UTC(2026, 9, 26);
const FIRST_WEEK = 44;
const WEEKS = 6;
/** The audited period: W45 to W48, and the first instant of W49 (both ends are inclusive). */
const TO = MONDAY + 5 * WEEK;
const SINCE = '28d';
const FROM = TO - 28 * DAY;
const FLOWS = ['browse', 'cart', 'winback', 'review'];
const BANDS = ['0', '1', '2', '3', '4', '5+'];
const HELD_BACK = ['preempted', 'suppressed', 'queued', 'deferredByCap', 'skippedByCap', 'quietHours'];

/** What a generated decision is, known from how it was made. */
interface DecisionKind {
  outcome: string;
  reason: string;
  resolution: string | null;
  sendStep: 'skip' | 'defer' | null;
}

const KINDS: DecisionKind[] = [
  { outcome: 'started', reason: 'entry condition met', resolution: null, sendStep: null },
  { outcome: 'skipped', reason: 'already in this flow: run 1 since yesterday', resolution: null, sendStep: null },
  { outcome: 'completed', reason: 'reached the end', resolution: null, sendStep: null },
  { outcome: 'preempted', reason: 'a higher-priority flow started', resolution: 'preempted', sendStep: null },
  { outcome: 'suppressed', reason: 'group marketing: a stronger run holds it', resolution: 'suppressed', sendStep: null },
  { outcome: 'queued', reason: 'group marketing is busy; queued until it ends', resolution: 'queued', sendStep: null },
  { outcome: 'skipped', reason: 'send email-1 (nudge) skipped: unsubscribed', resolution: null, sendStep: 'skip' },
  { outcome: 'skipped', reason: 'send email-2 (nudge) skipped: suppressed: complaint', resolution: null, sendStep: 'skip' },
  { outcome: 'skipped', reason: 'send email-1 (nudge) skipped: cap marketing-daily is full', resolution: 'skippedByCap', sendStep: 'skip' },
  { outcome: 'deferred', reason: 'send email-1 (nudge) deferred: cap marketing-daily until tomorrow', resolution: 'deferredByCap', sendStep: 'defer' },
  { outcome: 'deferred', reason: 'send email-1 (nudge) deferred: quiet hours 21:00-08:00', resolution: 'quietHours', sendStep: 'defer' },
];

interface Seeded {
  decisions: Array<{ customer: string; flow: string; at: number; kind: DecisionKind }>;
  sends: Array<{ customer: string; flow: string; at: number; delivered: boolean }>;
  events: Array<{ customer: string; name: string; at: number }>;
}

function generate(random: () => number, prefix: string): Seeded {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const anyTime = () => MONDAY + Math.floor(random() * WEEKS * WEEK);
  // The edges of the period, and a millisecond past each, come up often enough to matter.
  const time = () => (random() < 0.15 ? pick([FROM - 1, FROM, TO, TO + 1]) : anyTime());
  const customers = Array.from({ length: 24 }, (_, i) => `${prefix}-c${i}`);
  const seeded: Seeded = { decisions: [], sends: [], events: [] };
  for (const customer of customers) {
    const flows = FLOWS.filter(() => random() < 0.5);
    for (const flow of flows) {
      for (let n = Math.floor(random() * 4); n >= 0; n--) seeded.decisions.push({ customer, flow, at: time(), kind: pick(KINDS) });
      for (let n = Math.floor(random() * 5); n > 0; n--) seeded.sends.push({ customer, flow, at: time(), delivered: random() < 0.85 });
    }
    for (let n = Math.floor(random() * 3); n > 0; n--) seeded.events.push({ customer, name: pick(['Unsubscribed', 'Email Marked as Spam', 'Product Viewed']), at: time() });
  }
  return seeded;
}

/** The week a generated time is in, from its offset to MONDAY: no ISO-week arithmetic. */
const weekOf = (at: number) => `2026-W${FIRST_WEEK + Math.floor((at - MONDAY) / WEEK)}`;
const inPeriod = (at: number) => at >= FROM && at <= TO;

/** The audit computed from the generator's own records, one definition at a time. */
function reference(seeded: Seeded): Pick<AuditReport, 'pairs' | 'emailsPerWeek' | 'ratesByVolume' | 'flows' | 'mostlyHeld'> {
  const decisions = seeded.decisions.filter((d) => inPeriod(d.at));
  const sends = seeded.sends.filter((s) => inPeriod(s.at));
  const events = seeded.events.filter((e) => inPeriod(e.at) && (e.name === 'Unsubscribed' || e.name === 'Email Marked as Spam'));
  const customers = [...new Set([...decisions.map((d) => d.customer), ...sends.map((s) => s.customer), ...events.map((e) => e.customer)])];

  const pairs = [];
  for (const a of FLOWS) {
    for (const b of FLOWS) {
      if (!(a < b)) continue;
      const cases = customers.filter((c) => decisions.some((d) => d.customer === c && d.flow === a) && decisions.some((d) => d.customer === c && d.flow === b));
      if (cases.length === 0) continue;
      const kindsOf = (c: string) => decisions.filter((d) => d.customer === c && (d.flow === a || d.flow === b) && d.kind.resolution !== null).map((d) => d.kind.resolution!);
      pairs.push({
        flows: [a, b],
        customers: cases.length,
        resolutions: Object.fromEntries(HELD_BACK.map((r) => [r, cases.filter((c) => kindsOf(c).includes(r)).length])),
        unresolved: cases.filter((c) => kindsOf(c).length === 0).length,
      });
    }
  }
  pairs.sort((x, y) => y.customers - x.customers || (x.flows.join('\n') < y.flows.join('\n') ? -1 : 1));

  const bandOf = (n: number) => (n >= 5 ? '5+' : String(n));
  const weeks = [];
  const total = Object.fromEntries(BANDS.map((b) => [b, 0]));
  const rates = BANDS.map((band) => ({ band, customers: 0, unsubscribed: 0, complained: 0 }));
  const weekLabels = [...new Set([...decisions.map((d) => d.at), ...sends.map((s) => s.at), ...events.map((e) => e.at)].map(weekOf))].sort();
  for (const week of weekLabels) {
    const histogram = Object.fromEntries(BANDS.map((b) => [b, 0]));
    for (const c of customers) {
      const seen = decisions.some((d) => d.customer === c && weekOf(d.at) === week) || sends.some((s) => s.customer === c && weekOf(s.at) === week) || events.some((e) => e.customer === c && weekOf(e.at) === week);
      if (!seen) continue;
      const band = bandOf(sends.filter((s) => s.customer === c && s.delivered && weekOf(s.at) === week).length);
      histogram[band]!++;
      total[band]!++;
      const rate = rates.find((r) => r.band === band)!;
      rate.customers++;
      if (events.some((e) => e.customer === c && e.name === 'Unsubscribed' && weekOf(e.at) === week)) rate.unsubscribed++;
      if (events.some((e) => e.customer === c && e.name === 'Email Marked as Spam' && weekOf(e.at) === week)) rate.complained++;
    }
    weeks.push({ week, customers: histogram });
  }

  const flows = FLOWS.slice()
    .sort()
    .map((flowId) => {
      const claimed = sends.filter((s) => s.flow === flowId);
      const skipped = decisions.filter((d) => d.flow === flowId && d.kind.sendStep === 'skip').length;
      const deferred = decisions.filter((d) => d.flow === flowId && d.kind.sendStep === 'defer').length;
      const attempts = claimed.length + skipped + deferred;
      return { flowId, attempts, sent: claimed.filter((s) => s.delivered).length, skipped, deferred, heldShare: attempts === 0 ? 0 : (skipped + deferred) / attempts };
    })
    .filter((f) => f.attempts > 0);

  return {
    pairs: pairs as AuditReport['pairs'],
    emailsPerWeek: { total: total as AuditReport['emailsPerWeek']['total'], weeks: weeks as AuditReport['emailsPerWeek']['weeks'] },
    ratesByVolume: rates.map((r) => ({ ...r, unsubscribeRate: r.customers === 0 ? null : r.unsubscribed / r.customers, complaintRate: r.customers === 0 ? null : r.complained / r.customers })) as AuditReport['ratesByVolume'],
    flows,
    mostlyHeld: flows.filter((f) => (f.skipped + f.deferred) * 2 > f.attempts).map((f) => f.flowId),
  };
}

async function seed(store: KyselyStore, seeded: Seeded, prefix: string): Promise<void> {
  let n = 0;
  await store.recordDecisions(
    seeded.decisions.map((d): DecisionRecord => ({ key: `${prefix}-d${++n}`, customerId: d.customer, at: d.at, flowId: d.flow, flowVersion: 1, outcome: d.kind.outcome, reason: d.kind.reason, eventMessageId: null, workflowId: `flow/${d.flow}/${d.customer}/1` })),
  );
  for (const s of seeded.sends) {
    const deliveryKey = `${prefix}-s${++n}`;
    const to = `${s.customer}@example.com`;
    await store.claimSend({ deliveryKey, customerId: s.customer, flowId: s.flow, flowVersion: 1, workflowId: `flow/${s.flow}/${s.customer}/1`, nodeId: 'email-1', template: 'nudge', to, subject: 'Hello', transport: 'outbox', scheduledAt: s.at });
    if (s.delivered) await store.deliverToOutbox({ deliveryKey, to, from: 'shop@example.com', subject: 'Hello', html: '<p>Hello</p>', text: 'Hello', headers: {}, createdAt: s.at + 1000 }, `<${deliveryKey}@example.com>`);
  }
  const events = seeded.events.map(
    (e): NewEvent => ({ messageId: `${prefix}-e${++n}`, type: 'track', customerId: e.customer, userId: e.customer, anonymousId: null, name: e.name, properties: {}, traits: {}, context: {}, timestamp: e.at, receivedAt: e.at, origin: 'internal' }),
  );
  const recorded = await store.recordEvents(events, { needsDispatch: () => false });
  expect(recorded.filter((r) => r.duplicate || r.refused || r.dropped)).toEqual([]);
}

for (const backend of storeBackends('audit-contract')) {
  backend.describe(`the overlap and fatigue audit: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    const seedNumber = Number(process.env.AUDIT_SEED ?? Date.now() % 1_000_000);
    let seeded: Seeded;

    beforeAll(async () => {
      store = await backend.open();
      seeded = generate(seededRandom(seedNumber), `audit-${backend.name}`);
      await seed(store, seeded, `audit-${backend.name}`);
      app = await serveApp({ store, config: { writeKey: 'audit-write-key', adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: () => undefined, now: () => TO });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it(`reports what a brute-force count of the seeded history says (replay with AUDIT_SEED=${seedNumber})`, async () => {
      const expected = reference(seeded);
      // The generator must have made something to disagree about.
      expect(expected.pairs.length).toBeGreaterThan(0);
      expect(expected.emailsPerWeek.weeks.length).toBeGreaterThan(2);

      const rows = await store.auditRows({ from: FROM, to: TO });
      expect(rows.truncated).toBe(false);
      const report = auditReport(rows, { from: FROM, to: TO });
      expect({ seed: seedNumber, ...report }).toEqual({ seed: seedNumber, period: { from: FROM, to: TO }, truncated: false, ...expected });
    });

    it('reads only the period, and says when a kind of row was cut at the bound', async () => {
      const rows = await store.auditRows({ from: FROM, to: TO }, 3);
      expect(rows.truncated).toBe(true);
      expect([rows.decisions.length, rows.sends.length]).toEqual([3, 3]);
      const all = await store.auditRows({ from: FROM, to: TO });
      expect([...all.decisions.map((d) => d.at), ...all.sends.map((s) => s.scheduledAt), ...all.events.map((e) => e.at)].every(inPeriod)).toBe(true);
      expect(all.decisions.length).toBe(seeded.decisions.filter((d) => inPeriod(d.at)).length);
      expect(all.events.every((e) => e.name === 'Unsubscribed' || e.name === 'Email Marked as Spam')).toBe(true);
    });

    it('GET /api/audit answers the same report behind the admin key: 401 without it, 400 for a bad period', async () => {
      const before = await store.tableCounts();
      for (const headers of [{}, { authorization: 'Bearer audit-write-key' }] as Array<Record<string, string>>) {
        expect((await fetch(`${app.url}/api/audit?since=${SINCE}`, { headers })).status).toBe(401);
      }
      const bad = await adminFetch(`${app.url}/api/audit?since=lots`);
      expect(bad.status).toBe(400);
      expect(JSON.stringify(await bad.json())).toContain('since');

      const res = await adminFetch(`${app.url}/api/audit?since=${SINCE}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ period: { from: FROM, to: TO }, truncated: false, ...reference(seeded) });
      expect(await store.tableCounts()).toEqual(before);
    });
  });
}
