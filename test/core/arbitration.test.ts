import { arbitrate, type ActiveRun, type ArbitrationInput } from '../../core/arbitration';
import type { FlowPolicy, ReentryRule } from '../../core/flow-types';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 10, 28, 12);

function policy(overrides: Partial<FlowPolicy> = {}): FlowPolicy {
  return { flowId: 'cart', version: 1, priority: 90, group: 'marketing', reentry: { kind: 'always' }, onConflict: 'suppress', exitOn: [], listensTo: [], ...overrides };
}

function run(overrides: Partial<ActiveRun> = {}): ActiveRun {
  return { workflowId: 'flow/browse/c1/1', flowId: 'browse', version: 1, priority: 50, group: 'marketing', exitOn: [], listensTo: [], startedAt: NOW - HOUR, ...overrides };
}

function input(overrides: Partial<ArbitrationInput> = {}): ArbitrationInput {
  return { candidate: policy(), entry: { matched: true, reason: 'ok' }, activeRuns: [], pastEntries: [], now: NOW, ...overrides };
}

describe('arbitrate', () => {
  it('starts a flow when nothing competes', () => {
    const d = arbitrate(input());
    expect(d).toEqual({ outcome: 'started', reason: expect.stringContaining('no other run in group "marketing"'), preempt: [] });
  });

  it('skips when the entry condition is false, before anything else', () => {
    const d = arbitrate(input({ entry: { matched: false, reason: 'consent.email_marketing is false' }, activeRuns: [run({ priority: 10 })] }));
    expect(d.outcome).toBe('skipped');
    expect(d.reason).toBe('entry condition not met: consent.email_marketing is false');
  });

  it('skips a second run of the same flow while one is active', () => {
    const d = arbitrate(input({ activeRuns: [run({ flowId: 'cart', priority: 90, workflowId: 'flow/cart/c1/1' })] }));
    expect(d.outcome).toBe('skipped');
    expect(d.reason).toContain('already in this flow');
    expect(d.reason).toContain('flow/cart/c1/1');
  });

  describe('re-entry', () => {
    const cases: Array<[string, ReentryRule, number[], 'started' | 'skipped']> = [
      ['always, entered before', { kind: 'always' }, [NOW - HOUR], 'started'],
      ['once, never entered', { kind: 'once' }, [], 'started'],
      ['once, entered long ago', { kind: 'once' }, [NOW - 365 * DAY], 'skipped'],
      ['cooldown 7d, entered 6d ago', { kind: 'cooldown', ms: 7 * DAY }, [NOW - 6 * DAY], 'skipped'],
      ['cooldown 7d, entered exactly 7d ago', { kind: 'cooldown', ms: 7 * DAY }, [NOW - 7 * DAY], 'started'],
      ['cooldown 7d, entered 7d minus 1ms ago', { kind: 'cooldown', ms: 7 * DAY }, [NOW - 7 * DAY + 1], 'skipped'],
      ['cooldown 7d, latest of several entries counts', { kind: 'cooldown', ms: 7 * DAY }, [NOW - 30 * DAY, NOW - DAY, NOW - 20 * DAY], 'skipped'],
    ];
    it.each(cases)('%s', (_name, reentry, enteredAt, expected) => {
      const d = arbitrate(input({ candidate: policy({ reentry }), pastEntries: enteredAt.map((t) => ({ flowId: 'cart', enteredAt: t })) }));
      expect(d.outcome).toBe(expected);
      if (expected === 'skipped') expect(d.reason).toMatch(/re-entry/);
    });

    it('ignores entries of other flows', () => {
      const d = arbitrate(input({ candidate: policy({ reentry: { kind: 'once' } }), pastEntries: [{ flowId: 'browse', enteredAt: NOW - HOUR }] }));
      expect(d.outcome).toBe('started');
    });

    it('names the time the next entry is allowed', () => {
      const d = arbitrate(input({ candidate: policy({ reentry: { kind: 'cooldown', ms: 7 * DAY } }), pastEntries: [{ flowId: 'cart', enteredAt: NOW - DAY }] }));
      expect(d.reason).toContain(new Date(NOW + 6 * DAY).toISOString());
    });
  });

  describe('priority within a group', () => {
    it('preempts every lower-priority run of the group', () => {
      const low1 = run({ workflowId: 'flow/browse/c1/1', priority: 50 });
      const low2 = run({ workflowId: 'flow/winback/c1/1', flowId: 'winback', priority: 30 });
      const d = arbitrate(input({ activeRuns: [low1, low2] }));
      expect(d.outcome).toBe('started');
      expect(d.outcome === 'started' && d.preempt.map((r) => r.workflowId)).toEqual(['flow/browse/c1/1', 'flow/winback/c1/1']);
      expect(d.reason).toContain('preempting');
    });

    it('suppresses a newcomer when a higher-priority run is active', () => {
      const cart = run({ workflowId: 'flow/cart/c1/1', flowId: 'cart', priority: 90 });
      const d = arbitrate(input({ candidate: policy({ flowId: 'browse', priority: 50 }), activeRuns: [cart] }));
      expect(d).toEqual({ outcome: 'suppressed', reason: expect.stringContaining('has higher priority'), by: cart });
    });

    it('suppresses on equal priority (the incumbent keeps the customer)', () => {
      const other = run({ flowId: 'other', priority: 90 });
      const d = arbitrate(input({ activeRuns: [other] }));
      expect(d.outcome).toBe('suppressed');
      expect(d.reason).toContain('has equal priority');
    });

    it('queues instead of suppressing when the flow says on_conflict: queue', () => {
      const cart = run({ flowId: 'cart', priority: 90, workflowId: 'flow/cart/c1/1' });
      const d = arbitrate(input({ candidate: policy({ flowId: 'winback', priority: 30, onConflict: 'queue' }), activeRuns: [cart] }));
      expect(d.outcome).toBe('queued');
      expect(d.outcome === 'queued' && d.behind.workflowId).toBe('flow/cart/c1/1');
    });

    it('compares against the strongest rival: one higher run blocks even if others are lower', () => {
      const d = arbitrate(input({ candidate: policy({ flowId: 'mid', priority: 60 }), activeRuns: [run({ priority: 50 }), run({ flowId: 'cart', priority: 90, workflowId: 'flow/cart/c1/1' })] }));
      expect(d.outcome === 'suppressed' && d.by.workflowId).toBe('flow/cart/c1/1');
    });

    it('runs in other groups neither block nor get preempted', () => {
      const elsewhere = run({ group: 'post-purchase', priority: 100, flowId: 'post-purchase' });
      const d = arbitrate(input({ activeRuns: [elsewhere] }));
      expect(d).toMatchObject({ outcome: 'started', preempt: [] });
    });
  });
});
