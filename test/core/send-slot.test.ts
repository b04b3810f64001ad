// decideSlot: a send takes a slot when every cap that counts it has room and no higher-priority send waiting for the
// same slot is due; otherwise it waits for the next slot (or steps back a minute) within defer.max of when it was
// first due, or gives up. Properties: it never claims past a full cap (a brute-force count decides "full"), and sends
// that decide through it over time never put more than max into any window nor go later than defer.max.
import fc from 'fast-check';
import { compileSendPolicy, type FrequencyCap, type RecentSend, type SendPolicy } from '../../core/send-policy';
import { decideSlot, isCapped, WAIT_STALE_AFTER_MS, YIELD_RETRY_MS, type SlotCandidate, type SlotRequest, type SlotVerdict, type WaitingSlot } from '../../core/send-slot';
import type { TemplateCategory } from '../../core/suppression';
import { fuzzRun } from '../support/fuzz-seed';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 11, 1, 12);
const FILE = 'flows/policy.yaml';
const policyOf = (...lines: string[]): SendPolicy => compileSendPolicy(lines.join('\n') + '\n', FILE);
const DAILY = policyOf('caps:', '  - { name: daily, max: 1, per: 24h }', 'on_cap: defer', 'defer: { max: 48h }');
const DAILY_SKIP = policyOf('caps:', '  - { name: daily, max: 1, per: 24h }', 'on_cap: skip');
const GROUPS = policyOf(
  'caps:',
  '  - { name: newsletter-daily, group: newsletter, max: 1, per: 24h }',
  '  - { name: promo-daily, group: promo, max: 1, per: 24h }',
  '  - { name: receipts, transactional: true, max: 10, per: 24h }',
);
const iso = (at: number) => new Date(at).toISOString();

const fuzz = fuzzRun('test/core/send-slot.test.ts');

const candidate = (fields: Partial<SlotCandidate> = {}): SlotCandidate => ({ deliveryKey: 'run-a/steps[1]', flowId: 'cart', group: 'marketing', topic: null, category: 'marketing', priority: 1, ...fields });
const request = (fields: Partial<SlotRequest> = {}): SlotRequest => ({ candidate: candidate(), now: NOW, dueAt: NOW, ...fields });
const sent = (at: number, fields: Partial<RecentSend> = {}): RecentSend => ({ at, group: 'marketing', topic: null, category: 'marketing', ...fields });
/** A send of another run waiting for the same slot: due now, priority 5. */
const rival = (fields: Partial<WaitingSlot> = {}): WaitingSlot => ({ deliveryKey: 'run-b/steps[2]', flowId: 'browse', priority: 5, dueAt: NOW - HOUR, until: NOW, group: 'marketing', topic: null, category: 'marketing', ...fields });

describe('decideSlot: the caps', () => {
  it('claims when every cap that counts the send has room', () => {
    expect(decideSlot(DAILY, request(), [], [])).toEqual({ action: 'claim' });
    // A send exactly one window ago has left it.
    expect(decideSlot(DAILY, request(), [sent(NOW - DAY)], [])).toEqual({ action: 'claim' });
    // Transactional email is counted by no cap here, however full the marketing cap is.
    expect(decideSlot(DAILY, request({ candidate: candidate({ category: 'transactional' }) }), [sent(NOW - HOUR)], [])).toEqual({ action: 'claim' });
    // Nor does a transactional send fill the marketing cap.
    expect(decideSlot(DAILY, request(), [sent(NOW - HOUR, { category: 'transactional' })], [])).toEqual({ action: 'claim' });
  });

  it('waits for the next slot, naming the full cap and when the slot opens', () => {
    expect(decideSlot(DAILY, request(), [sent(NOW - HOUR)], [])).toEqual({ action: 'wait', until: NOW + 23 * HOUR, reason: `cap daily (1 per 1d) is full; next slot at ${iso(NOW + 23 * HOUR)}` });
    expect(iso(NOW + 23 * HOUR)).toBe('2026-12-02T11:00:00.000Z');
    // One ms inside the window still counts.
    expect(decideSlot(DAILY, request(), [sent(NOW - DAY + 1)], [])).toMatchObject({ action: 'wait', until: NOW + 1 });
    // A slot reserved for later counts too.
    expect(decideSlot(DAILY, request(), [sent(NOW + 2 * HOUR)], [])).toMatchObject({ action: 'wait', until: NOW + 26 * HOUR });
  });

  it('names the cap that opens last when several are full', () => {
    const policy = policyOf('caps:', '  - { name: daily, max: 1, per: 24h }', '  - { name: weekly, max: 2, per: 7d }', 'defer: { max: 7d }');
    expect(decideSlot(policy, request(), [sent(NOW - 3 * DAY), sent(NOW - HOUR)], [])).toEqual({ action: 'wait', until: NOW + 4 * DAY, reason: `cap weekly (2 per 1w) is full; next slot at ${iso(NOW + 4 * DAY)}` });
  });

  it('skips when on_cap is skip, the policy’s or the flow’s, and the flow’s defer overrides the policy’s skip', () => {
    const skipped = { action: 'skip', reason: "cap daily (1 per 1d) is full and the flow's on_cap is skip" };
    expect(decideSlot(DAILY_SKIP, request(), [sent(NOW - HOUR)], [])).toEqual(skipped);
    expect(decideSlot(DAILY, request({ onCap: 'skip' }), [sent(NOW - HOUR)], [])).toEqual(skipped);
    expect(decideSlot(DAILY_SKIP, request({ onCap: 'defer' }), [sent(NOW - HOUR)], [])).toMatchObject({ action: 'wait', until: NOW + 23 * HOUR });
  });

  it('skips when the next slot is more than defer.max after the send was first due, however many waits came before', () => {
    const next = NOW + 23 * HOUR;
    const recent = [sent(NOW - HOUR)];
    expect(decideSlot(DAILY, request({ dueAt: next - 48 * HOUR }), recent, [])).toMatchObject({ action: 'wait', until: next });
    expect(decideSlot(DAILY, request({ dueAt: next - 48 * HOUR - 1 }), recent, [])).toEqual({
      action: 'skip',
      reason: `cap daily (1 per 1d) is full; its next slot, ${iso(next)}, is more than defer.max 2d after the send was due (${iso(next - 48 * HOUR - 1)})`,
    });
    // The flow's defer.max overrides the policy's.
    expect(decideSlot(DAILY, request({ deferMaxMs: 23 * HOUR }), recent, [])).toMatchObject({ action: 'wait', until: next });
    expect(decideSlot(DAILY, request({ deferMaxMs: 23 * HOUR - 1 }), recent, [])).toMatchObject({ action: 'skip', reason: expect.stringContaining('more than defer.max 22h59m59s') });
  });
});

describe('decideSlot: sends waiting for the same slot', () => {
  it('steps back for a minute while a higher-priority send that is due takes the slot', () => {
    expect(decideSlot(DAILY, request(), [], [rival()])).toEqual({
      action: 'wait',
      until: NOW + YIELD_RETRY_MS,
      reason: `cap daily (1 per 1d): its next slot goes first to flow browse (priority 5 over 1), which waits for it; retry at ${iso(NOW + YIELD_RETRY_MS)}`,
    });
  });

  it('goes first when it outranks every due rival: higher priority, or the same and due earlier, or the same and the smaller key', () => {
    expect(decideSlot(DAILY, request({ candidate: candidate({ priority: 6 }) }), [], [rival()])).toEqual({ action: 'claim' });
    const equal = candidate({ priority: 5 });
    expect(decideSlot(DAILY, request({ candidate: equal, dueAt: NOW - 2 * HOUR }), [], [rival()])).toEqual({ action: 'claim' });
    expect(decideSlot(DAILY, request({ candidate: equal, dueAt: NOW }), [], [rival()])).toMatchObject({ action: 'wait', until: NOW + YIELD_RETRY_MS });
    expect(decideSlot(DAILY, request({ candidate: equal, dueAt: NOW - HOUR }), [], [rival()])).toEqual({ action: 'claim' });
    expect(decideSlot(DAILY, request({ candidate: { ...equal, deliveryKey: 'run-c/steps[1]' }, dueAt: NOW - HOUR }), [], [rival()])).toMatchObject({ action: 'wait' });
    // The highest of several rivals is the one named.
    expect(decideSlot(DAILY, request(), [], [rival(), rival({ deliveryKey: 'run-d/steps[1]', flowId: 'winback', priority: 8 })])).toMatchObject({
      action: 'wait',
      reason: expect.stringContaining('goes first to flow winback (priority 8 over 1)'),
    });
  });

  it('ignores a rival whose retry time has not come', () => {
    expect(decideSlot(DAILY, request(), [], [rival({ until: NOW + 1 })])).toEqual({ action: 'claim' });
    expect(decideSlot(DAILY, request(), [], [rival({ until: NOW })])).toMatchObject({ action: 'wait' });
  });

  it('ignores a stale rival, one not back WAIT_STALE_AFTER_MS after its retry time', () => {
    expect(decideSlot(DAILY, request(), [], [rival({ until: NOW - WAIT_STALE_AFTER_MS })])).toEqual({ action: 'claim' });
    expect(decideSlot(DAILY, request(), [], [rival({ until: NOW - WAIT_STALE_AFTER_MS + 1 })])).toMatchObject({ action: 'wait', until: NOW + YIELD_RETRY_MS });
  });

  it('ignores a rival that no cap counts along with the send', () => {
    const newsletter = request({ candidate: candidate({ group: 'newsletter' }) });
    expect(decideSlot(GROUPS, newsletter, [], [rival({ group: 'promo' })])).toEqual({ action: 'claim' });
    expect(decideSlot(GROUPS, newsletter, [], [rival({ group: 'newsletter', category: 'transactional' })])).toEqual({ action: 'claim' });
    expect(decideSlot(GROUPS, newsletter, [], [rival({ group: 'newsletter' })])).toMatchObject({ action: 'wait', reason: expect.stringMatching(/^cap newsletter-daily \(1 per 1d\): its next slot goes first to flow browse/) });
    // A send no cap counts never yields.
    expect(decideSlot(GROUPS, request({ candidate: candidate({ group: 'other' }) }), [], [rival({ group: 'other' })])).toEqual({ action: 'claim' });
  });

  it('ignores its own waiting row', () => {
    expect(decideSlot(DAILY, request(), [], [rival({ deliveryKey: candidate().deliveryKey, priority: 9 })])).toEqual({ action: 'claim' });
  });

  it('gives up instead of stepping back when on_cap is skip, or when the minute would pass defer.max', () => {
    expect(decideSlot(DAILY, request({ onCap: 'skip' }), [], [rival()])).toEqual({
      action: 'skip',
      reason: "cap daily (1 per 1d): its next slot goes first to flow browse (priority 5 over 1), which waits for it, and the flow's on_cap is skip",
    });
    const lastDue = NOW + YIELD_RETRY_MS - 48 * HOUR;
    expect(decideSlot(DAILY, request({ dueAt: lastDue }), [], [rival()])).toMatchObject({ action: 'wait', until: NOW + YIELD_RETRY_MS });
    expect(decideSlot(DAILY, request({ dueAt: lastDue - 1 }), [], [rival()])).toEqual({
      action: 'skip',
      reason: `cap daily (1 per 1d): its next slot goes first to flow browse (priority 5 over 1), which waits for it; waiting longer would pass defer.max 2d after the send was due (${iso(lastDue - 1)})`,
    });
  });
});

describe('isCapped', () => {
  it('says whether any cap counts the send', () => {
    expect(isCapped(DAILY, candidate())).toBe(true);
    expect(isCapped(DAILY, candidate({ category: 'transactional' }))).toBe(false);
    expect(isCapped(GROUPS, candidate({ group: 'newsletter' }))).toBe(true);
    expect(isCapped(GROUPS, candidate({ group: 'other' }))).toBe(false);
    expect(isCapped(GROUPS, candidate({ group: 'other', category: 'transactional' }))).toBe(true);
    const topical = policyOf('caps:', '  - { name: reminders, topic: cart-reminders, max: 2, per: 7d }');
    expect(isCapped(topical, candidate({ topic: 'cart-reminders' }))).toBe(true);
    expect(isCapped(topical, candidate({ topic: null }))).toBe(false);
    expect(isCapped(policyOf('caps: []'), candidate())).toBe(false);
  });
});

// --- properties: a reference written from the policy file's definition, sharing no code with core ------------------

/** Whether a cap counts a send, from the definition: category agrees, then group and topic when the cap names one. */
function counts(cap: FrequencyCap, send: { group: string; topic: string | null; category: TemplateCategory }): boolean {
  const categoryAgrees = cap.transactional ? send.category === 'transactional' : send.category === 'marketing';
  return categoryAgrees && (cap.group === null || cap.group === send.group) && (cap.topic === null || cap.topic === send.topic);
}

/** The caps counting `send` that already hold max sends in the window ending at `now` (or reserved after it). */
function fullCaps(caps: FrequencyCap[], send: SlotCandidate, recent: RecentSend[], now: number): FrequencyCap[] {
  return caps.filter((cap) => counts(cap, send) && recent.filter((r) => counts(cap, r) && now - r.at < cap.perMs).length >= cap.max);
}

const GROUP_NAMES = ['newsletter', 'promo'] as const;
const arbCounts = fc.record({
  group: fc.constantFrom(...GROUP_NAMES),
  topic: fc.constantFrom(null, 'cart-reminders'),
  category: fc.constantFrom<TemplateCategory>('marketing', 'marketing', 'transactional'),
});
const arbCap = fc.record({
  group: fc.constantFrom(null, ...GROUP_NAMES),
  topic: fc.constantFrom(null, 'cart-reminders'),
  transactional: fc.boolean(),
  max: fc.integer({ min: 1, max: 3 }),
  perMs: fc.constantFrom(HOUR, DAY, 3 * DAY, 7 * DAY),
});
const arbPolicy = fc.record({
  caps: fc.array(arbCap, { minLength: 1, maxLength: 3 }).map((caps) => caps.map((cap, i): FrequencyCap => ({ name: `cap-${i}`, ...cap }))),
  onCap: fc.constantFrom('defer' as const, 'skip' as const),
  deferMaxMs: fc.constantFrom(HOUR, DAY, 2 * DAY, 5 * DAY),
});

describe('decideSlot: properties', () => {
  it('never claims while a cap that counts the send is full; waits only forward, within defer.max of the due time', () => {
    const arbWaiting = fc.record({
      deliveryKey: fc.constantFrom('w-1', 'w-2', 'w-3', 'self'),
      flowId: fc.constantFrom('browse', 'winback'),
      priority: fc.integer({ min: 0, max: 5 }),
      dueAt: fc.integer({ min: NOW - 2 * DAY, max: NOW }),
      until: fc.integer({ min: NOW - 2 * WAIT_STALE_AFTER_MS, max: NOW + HOUR }),
    });
    fuzz.check(
      fc.property(
        arbPolicy,
        arbCounts,
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 3 * DAY }),
        fc.array(fc.tuple(arbCounts, fc.integer({ min: -8 * DAY, max: DAY })), { maxLength: 8 }),
        fc.array(fc.tuple(arbWaiting, arbCounts), { maxLength: 4 }),
        (policy, sendCounts, priority, dueAgo, recentAt, waitingAt) => {
          const send = candidate({ deliveryKey: 'self', ...sendCounts, priority });
          const recent = recentAt.map(([c, offset]) => sent(NOW + offset, c));
          const waiting = waitingAt.map(([w, c]): WaitingSlot => ({ ...w, ...c }));
          const dueAt = NOW - dueAgo;
          const verdict = decideSlot(policy, { candidate: send, now: NOW, dueAt }, recent, waiting);
          const full = fullCaps(policy.caps, send, recent, NOW);
          if (full.length > 0) expect(verdict.action).not.toBe('claim');
          if (verdict.action === 'wait') {
            expect(verdict.until).toBeGreaterThan(NOW);
            expect(verdict.until - dueAt).toBeLessThanOrEqual(policy.deferMaxMs);
            expect(policy.onCap).toBe('defer');
          }
          // Room, and no other send sharing a cap with it is due and fresh: nothing can stop it.
          const rivals = waiting.filter((w) => w.deliveryKey !== 'self' && w.until <= NOW && NOW - w.until < WAIT_STALE_AFTER_MS && policy.caps.some((cap) => counts(cap, w) && counts(cap, send)));
          if (full.length === 0 && rivals.length === 0) expect(verdict).toEqual({ action: 'claim' });
          // Room, and it outranks every rival on priority: it claims.
          if (full.length === 0 && rivals.every((w) => w.priority < priority)) expect(verdict).toEqual({ action: 'claim' });
        },
      ),
      500,
    );
  });

  it('sends deciding through it over time never put more than max of a cap into any window, and go within defer.max', () => {
    const arbRequest = fc.record({ at: fc.integer({ min: 0, max: 4 * DAY }), priority: fc.integer({ min: 0, max: 3 }), counts: arbCounts });
    fuzz.check(
      fc.property(arbPolicy, fc.array(arbRequest, { minLength: 1, maxLength: 12 }), (policy, requests) => {
        const claims: Array<RecentSend & { key: string; dueAt: number }> = [];
        const waiting = new Map<string, WaitingSlot>();
        const outcome = new Map<string, SlotVerdict['action']>();
        // Each send asks when due, and again exactly when a wait says; ties in time go in the order they were queued.
        const queue = requests.map((r, i) => ({ key: `send-${i}`, at: NOW + r.at, seq: i }));
        let seq = queue.length;
        for (let steps = 0; queue.length > 0; steps++) {
          expect(steps).toBeLessThan(100_000);
          queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
          const { key, at } = queue.shift()!;
          const r = requests[Number(key.slice(5))]!;
          const dueAt = NOW + r.at;
          const send = candidate({ deliveryKey: key, flowId: `flow-${key}`, priority: r.priority, ...r.counts });
          const verdict = decideSlot(policy, { candidate: send, now: at, dueAt }, claims, [...waiting.values()]);
          outcome.set(key, verdict.action);
          if (verdict.action === 'claim') {
            claims.push({ key, at, dueAt, ...r.counts });
            waiting.delete(key);
          } else if (verdict.action === 'skip') {
            waiting.delete(key);
          } else {
            expect(verdict.until).toBeGreaterThan(at);
            waiting.set(key, { deliveryKey: key, flowId: send.flowId, priority: r.priority, dueAt, until: verdict.until, ...r.counts });
            queue.push({ key, at: verdict.until, seq: seq++ });
          }
        }
        // Every send ended claimed or skipped, none later than defer.max after it was due.
        expect([...outcome.values()].filter((a) => a === 'wait')).toEqual([]);
        for (const c of claims) expect(c.at - c.dueAt).toBeLessThanOrEqual(policy.deferMaxMs);
        // The busiest window of a cap starts at one of the sends it counts.
        for (const cap of policy.caps) {
          const counted = claims.filter((c) => counts(cap, c));
          for (const start of counted) {
            const inWindow = counted.filter((c) => c.at >= start.at && c.at < start.at + cap.perMs);
            expect(inWindow.length).toBeLessThanOrEqual(cap.max);
          }
        }
      }),
      300,
    );
  });
});
