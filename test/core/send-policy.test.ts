// The send policy file is read with every mistake at its line, and the cap decision never lets more than `max`
// emails into any window, says when the next slot opens, and turns into defer or skip as the policy says.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { InvalidFileError, type FileProblem } from '../../core/errors';
import {
  capLookbackMs,
  capOutcome,
  compileSendPolicy,
  DEFAULT_SEND_POLICY,
  evaluateCaps,
  orderWaitingSends,
  parseSendPolicy,
  type CapCandidate,
  type FrequencyCap,
  type RecentSend,
} from '../../core/send-policy';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FILE = 'flows/policy.yaml';
/** Joins lines so that the line numbers the tests assert are the array index + 1. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

function errors(source: string): FileProblem[] {
  return parseSendPolicy(source, FILE).problems.filter((p) => p.severity === 'error');
}

function onlyError(source: string): FileProblem {
  const found = errors(source);
  expect(found).toHaveLength(1);
  return found[0]!;
}

describe('parseSendPolicy: a valid file', () => {
  it('reads the example from the file header, every field', () => {
    const source = fs.readFileSync(path.join(__dirname, '../fixtures/policy/policy.yaml'), 'utf8');
    const policy = compileSendPolicy(source, FILE);
    expect(policy).toEqual({
      caps: [
        { name: 'marketing-daily', group: 'marketing', topic: null, transactional: false, max: 1, perMs: DAY },
        { name: 'marketing-weekly', group: 'marketing', topic: null, transactional: false, max: 3, perMs: 7 * DAY },
        { name: 'total', group: null, topic: null, transactional: false, max: 5, perMs: 7 * DAY },
        { name: 'reminders', group: null, topic: 'cart-reminders', transactional: false, max: 2, perMs: 7 * DAY },
        { name: 'receipts', group: null, topic: null, transactional: true, max: 10, perMs: DAY },
      ],
      onCap: 'defer',
      deferMaxMs: 48 * HOUR,
      quietHours: { from: { hour: 21, minute: 0 }, to: { hour: 8, minute: 0 } },
      defaultTimezone: 'America/New_York',
    });
  });

  it('fills in the defaults: no caps, defer up to 48h, no quiet hours, UTC', () => {
    expect(compileSendPolicy(yaml('on_cap: skip'), FILE)).toEqual({ ...DEFAULT_SEND_POLICY, onCap: 'skip' });
    expect(compileSendPolicy('', FILE)).toEqual(DEFAULT_SEND_POLICY);
    expect(compileSendPolicy(yaml('quiet_hours: off'), FILE).quietHours).toBeNull();
  });
});

describe('parseSendPolicy: every mistake at its line', () => {
  it('an unknown top-level key, with a suggestion', () => {
    const problem = onlyError(yaml('caps: []', 'quiet_hour: { from: "21:00", to: "08:00" }'));
    expect(problem).toMatchObject({ file: FILE, line: 2, path: 'quiet_hour' });
    expect(problem.message).toContain('did you mean "quiet_hours"');
  });

  it('an unknown key in a cap', () => {
    const problem = onlyError(yaml('caps:', '  - name: daily', '    max: 1', '    per: 24h', '    window: 7d'));
    expect(problem).toMatchObject({ line: 5, path: 'caps[0].window' });
    expect(problem.message).toContain('allowed keys: name, group, topic, transactional, max, per');
  });

  it('max below 1, and max that is not a whole number', () => {
    expect(onlyError(yaml('caps:', '  - { name: a, max: 0, per: 24h }'))).toMatchObject({ line: 2, path: 'caps[0].max' });
    const problem = onlyError(yaml('caps:', '  - { name: a, max: 1, per: 24h }', '  - { name: b, max: 1.5, per: 24h }'));
    expect(problem).toMatchObject({ line: 3, path: 'caps[1].max' });
    expect(problem.message).toContain('a positive whole number');
  });

  it('a duplicate cap name points at the second one and names the first', () => {
    const problem = onlyError(yaml('caps:', '  - { name: daily, max: 1, per: 24h }', '  - { name: daily, max: 3, per: 7d }'));
    expect(problem).toMatchObject({ line: 3, path: 'caps[1].name' });
    expect(problem.message).toContain('first used by caps[0]');
  });

  it('a missing or bad window', () => {
    expect(onlyError(yaml('caps:', '  - { name: a, max: 1 }')).message).toContain('missing "per"');
    const bad = onlyError(yaml('caps:', '  - { name: a, max: 1, per: daily }'));
    expect(bad).toMatchObject({ line: 2, path: 'caps[0].per' });
    expect(bad.message).toContain('not a duration');
  });

  it('bad quiet-hours times: out of range, not HH:MM, a number, equal ends', () => {
    expect(onlyError(yaml('quiet_hours:', '  from: "25:00"', '  to: "08:00"'))).toMatchObject({ line: 2, path: 'quiet_hours.from' });
    expect(onlyError(yaml('quiet_hours:', '  from: "21:00"', '  to: "8am"'))).toMatchObject({ line: 3, path: 'quiet_hours.to' });
    expect(onlyError(yaml('quiet_hours: { from: 2100, to: "08:00" }')).message).toContain('"HH:MM"');
    expect(onlyError(yaml('quiet_hours: { from: "08:00", to: "08:00" }')).message).toContain('empty or the whole day');
    expect(onlyError(yaml('quiet_hours: { from: "21:00" }')).message).toContain('missing "to"');
  });

  it('on_cap, defer, transactional, topic and the time zone are checked', () => {
    expect(onlyError(yaml('on_cap: drop')).message).toContain('defer');
    expect(onlyError(yaml('defer: { max: soon }'))).toMatchObject({ line: 1, path: 'defer.max' });
    expect(onlyError(yaml('defer: { maximum: 48h }')).message).toContain('unknown key "maximum"');
    expect(onlyError(yaml('caps:', '  - { name: a, transactional: yes, max: 1, per: 1d }'))).toMatchObject({ path: 'caps[0].transactional' });
    expect(onlyError(yaml('caps:', '  - { name: a, topic: Cart Reminders, max: 1, per: 1d }')).message).toContain('kebab-case');
    const zone = onlyError(yaml('caps: []', 'default_timezone: America/Nowhere'));
    expect(zone).toMatchObject({ line: 2, path: 'default_timezone' });
    expect(zone.message).toContain('IANA');
  });

  it('reports every problem at once and compileSendPolicy throws them all', () => {
    const source = yaml('caps:', '  - { name: a, max: 0, per: 24h }', 'on_cap: never', 'quiet_hours: { from: "9pm", to: "08:00" }');
    expect(errors(source).map((p) => p.line)).toEqual([2, 3, 4]);
    expect(() => compileSendPolicy(source, FILE)).toThrow(InvalidFileError);
  });

  it('a YAML syntax error stops there', () => {
    const { policy, problems } = parseSendPolicy('caps: [\n', FILE);
    expect(policy).toBeNull();
    expect(problems[0]!.message).toContain('YAML syntax');
  });
});

// --- caps --------------------------------------------------------------------------------------------------------

const T = Date.UTC(2026, 5, 1, 12);
const cap = (over: Partial<FrequencyCap> & Pick<FrequencyCap, 'name' | 'max' | 'perMs'>): FrequencyCap => ({ group: null, topic: null, transactional: false, ...over });
const marketing = (over: Partial<CapCandidate> = {}): CapCandidate => ({ flowId: 'browse', group: 'marketing', topic: null, category: 'marketing', priority: 10, ...over });
const sent = (at: number, over: Partial<RecentSend> = {}): RecentSend => ({ at, group: 'marketing', topic: null, category: 'marketing', ...over });

describe('evaluateCaps', () => {
  const policy = {
    caps: [
      cap({ name: 'marketing-daily', group: 'marketing', max: 1, perMs: DAY }),
      cap({ name: 'marketing-weekly', group: 'marketing', max: 3, perMs: 7 * DAY }),
      cap({ name: 'reminders', topic: 'cart-reminders', max: 2, perMs: 7 * DAY }),
      cap({ name: 'receipts', transactional: true, max: 2, perMs: DAY }),
    ],
  };

  it('allows when no matching window is full', () => {
    expect(evaluateCaps(policy, marketing(), [], T)).toEqual({ allowed: true });
    expect(evaluateCaps(policy, marketing(), [sent(T - DAY)], T)).toEqual({ allowed: true }); // exactly one window ago: out
  });

  it('blocks inside the window and gives the moment the oldest counted send leaves it', () => {
    expect(evaluateCaps(policy, marketing(), [sent(T - 2 * HOUR)], T)).toEqual({ allowed: false, cap: 'marketing-daily', fullCaps: ['marketing-daily'], nextSlotAt: T - 2 * HOUR + DAY });
  });

  it('combines windows: the next slot is when every window has room', () => {
    const history = [sent(T - 5 * DAY), sent(T - 3 * DAY), sent(T - HOUR)];
    const decision = evaluateCaps(policy, marketing(), history, T);
    // Daily opens at T + 23h, weekly only when the send of 5 days ago leaves: T + 2d.
    expect(decision).toEqual({ allowed: false, cap: 'marketing-weekly', fullCaps: ['marketing-daily', 'marketing-weekly'], nextSlotAt: T + 2 * DAY });
  });

  it('counts only sends the cap matches: other groups, other topics, the other category', () => {
    const other = [sent(T - HOUR, { group: 'lifecycle' }), sent(T - HOUR, { category: 'transactional' })];
    expect(evaluateCaps(policy, marketing(), other, T)).toEqual({ allowed: true });
    const reminders = [sent(T - 3 * DAY, { group: 'lifecycle', topic: 'cart-reminders' }), sent(T - 2 * DAY, { group: 'lifecycle', topic: 'cart-reminders' })];
    expect(evaluateCaps(policy, marketing({ group: 'lifecycle', topic: 'cart-reminders' }), reminders, T)).toMatchObject({ allowed: false, cap: 'reminders', nextSlotAt: T + 4 * DAY });
    expect(evaluateCaps(policy, marketing({ group: 'lifecycle', topic: 'winback' }), reminders, T)).toEqual({ allowed: true });
  });

  it('exempts transactional email unless a cap names it', () => {
    const receipts = [sent(T - 3 * HOUR, { category: 'transactional' }), sent(T - HOUR, { category: 'transactional' })];
    const receipt = marketing({ category: 'transactional' });
    expect(evaluateCaps(policy, receipt, receipts, T)).toMatchObject({ allowed: false, cap: 'receipts' });
    expect(evaluateCaps({ caps: policy.caps.filter((c) => !c.transactional) }, receipt, [...receipts, sent(T - HOUR)], T)).toEqual({ allowed: true });
  });

  it('counts slots reserved for later', () => {
    expect(evaluateCaps(policy, marketing(), [sent(T + HOUR)], T)).toMatchObject({ allowed: false, nextSlotAt: T + HOUR + DAY });
  });

  it('the lookback is the longest window', () => {
    expect(capLookbackMs(policy)).toBe(7 * DAY);
    expect(capLookbackMs({ caps: [] })).toBe(0);
  });
});

/** Reference, from the definition and brute force: does any half-open window [a, a + per) hold more than max? */
function overfullWindow(caps: FrequencyCap[], sends: RecentSend[]): string | null {
  for (const c of caps) {
    const mine = sends.filter((s) => (c.transactional ? s.category === 'transactional' : s.category === 'marketing') && (c.group === null || c.group === s.group) && (c.topic === null || c.topic === s.topic));
    for (const start of mine) {
      const inWindow = mine.filter((s) => s.at >= start.at && s.at < start.at + c.perMs).length;
      if (inWindow > c.max) return `${c.name}: ${inWindow} sends in the window from ${start.at}`;
    }
  }
  return null;
}

describe('evaluateCaps: properties over random send sequences', () => {
  const capArb = fc.record({
    name: fc.string({ minLength: 1, maxLength: 4 }),
    group: fc.option(fc.constantFrom('marketing', 'lifecycle'), { nil: null }),
    topic: fc.option(fc.constantFrom('cart-reminders', 'news'), { nil: null }),
    transactional: fc.boolean(),
    max: fc.integer({ min: 1, max: 4 }),
    perMs: fc.integer({ min: 1, max: 10 * DAY }),
  });
  const attemptArb = fc.record({
    gap: fc.integer({ min: 0, max: 2 * DAY }),
    group: fc.constantFrom('marketing', 'lifecycle'),
    topic: fc.constantFrom<string | null>('cart-reminders', 'news', null),
    category: fc.constantFrom<'marketing' | 'transactional'>('marketing', 'transactional'),
  });

  it('never lets more than max sends into any window, and the next slot is the earliest that allows', () => {
    fc.assert(
      fc.property(fc.array(capArb, { minLength: 1, maxLength: 4 }), fc.array(attemptArb, { minLength: 1, maxLength: 40 }), (caps, attempts) => {
        const policy = { caps };
        const made: RecentSend[] = [];
        let now = T;
        for (const attempt of attempts) {
          now += attempt.gap;
          const send = { flowId: 'f', group: attempt.group, topic: attempt.topic, category: attempt.category, priority: 1 };
          const decision = evaluateCaps(policy, send, made, now);
          if (decision.allowed) {
            made.push({ at: now, group: send.group, topic: send.topic, category: send.category });
            continue;
          }
          expect(decision.nextSlotAt).toBeGreaterThan(now);
          expect(evaluateCaps(policy, send, made, decision.nextSlotAt).allowed).toBe(true);
          expect(evaluateCaps(policy, send, made, decision.nextSlotAt - 1).allowed).toBe(false);
        }
        expect(overfullWindow(caps, made)).toBeNull();
      }),
    );
  });

  it('the check that would fail: allowing every send overfills some window', () => {
    const caps = [cap({ name: 'daily', max: 1, perMs: DAY })];
    expect(overfullWindow(caps, [sent(T), sent(T + HOUR)])).not.toBeNull();
  });
});

describe('capOutcome', () => {
  const policy = { onCap: 'defer' as const, deferMaxMs: 48 * HOUR };
  const blocked = { allowed: false as const, cap: 'marketing-daily', fullCaps: ['marketing-daily'], nextSlotAt: T + 20 * HOUR };

  it('sends when allowed', () => {
    expect(capOutcome({ allowed: true }, { dueAt: T }, policy)).toEqual({ action: 'send' });
  });

  it('defers to the next slot within defer.max, counted from when the send was first due', () => {
    expect(capOutcome(blocked, { dueAt: T }, policy)).toEqual({ action: 'defer', until: T + 20 * HOUR, cap: 'marketing-daily' });
    expect(capOutcome(blocked, { dueAt: T - 30 * HOUR }, policy)).toEqual({ action: 'skip', cap: 'marketing-daily', reason: 'defer_limit' });
    expect(capOutcome(blocked, { dueAt: T, deferMaxMs: 12 * HOUR }, policy)).toMatchObject({ action: 'skip', reason: 'defer_limit' });
  });

  it('skips when the flow or the policy says skip', () => {
    expect(capOutcome(blocked, { dueAt: T, onCap: 'skip' }, policy)).toEqual({ action: 'skip', cap: 'marketing-daily', reason: 'on_cap_skip' });
    expect(capOutcome(blocked, { dueAt: T }, { ...policy, onCap: 'skip' })).toMatchObject({ action: 'skip', reason: 'on_cap_skip' });
    expect(capOutcome(blocked, { dueAt: T, onCap: 'defer' }, { ...policy, onCap: 'skip' })).toMatchObject({ action: 'defer' });
  });
});

describe('orderWaitingSends', () => {
  it('higher priority first, then earliest due, then id', () => {
    const waiting = [
      { id: 'winback', priority: 10, dueAt: T },
      { id: 'cart', priority: 90, dueAt: T + HOUR },
      { id: 'browse-b', priority: 50, dueAt: T },
      { id: 'browse-a', priority: 50, dueAt: T },
      { id: 'browse-late', priority: 50, dueAt: T - HOUR },
    ];
    expect(orderWaitingSends(waiting).map((w) => w.id)).toEqual(['cart', 'browse-late', 'browse-a', 'browse-b', 'winback']);
  });
});
