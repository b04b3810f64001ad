import { ArbiterState, SEEN_IDS_KEPT, summarizeEntryHistory } from '../../core/arbiter-state';
import type { FlowPolicy } from '../../core/flow-types';
import type { EventFacts } from '../../core/triggers';

const T0 = Date.UTC(2026, 10, 28, 12);
const ok = { matched: true, reason: 'ok' };

function policy(flowId: string, priority: number, extra: Partial<FlowPolicy> = {}): FlowPolicy {
  return { flowId, version: 1, priority, group: 'marketing', reentry: { kind: 'always' }, onConflict: 'suppress', exitOn: [{ event: 'Order Completed' }], listensTo: [], ...extra };
}

function event(name: string, messageId = name, properties: Record<string, unknown> = {}): EventFacts {
  return { messageId, name, type: 'track', properties, timestamp: T0 };
}

describe('ArbiterState', () => {
  it('numbers runs per flow from the stored history', () => {
    const state = ArbiterState.fresh('c1', summarizeEntryHistory([{ flowId: 'cart', enteredAt: T0 - 30 * 86_400_000, triggerMessageId: null }]));
    const result = state.decide(policy('cart', 90), ok, event('Product Added'), T0);
    expect(result.start?.workflowId).toBe('flow/cart/c1/2');
    expect(state.activeRuns.map((r) => r.workflowId)).toEqual(['flow/cart/c1/2']);
  });

  it('preemption stops the lower run and logs both decisions with reasons', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('browse', 50), ok, event('Product Viewed', 'm1'), T0);
    const result = state.decide(policy('cart', 90), ok, event('Product Added', 'm2'), T0 + 1000);
    expect(result.stop.map((r) => r.workflowId)).toEqual(['flow/browse/c1/1']);
    expect(result.start?.workflowId).toBe('flow/cart/c1/1');
    expect(state.decisions.map((d) => [d.flowId, d.outcome])).toEqual([
      ['browse', 'started'],
      ['browse', 'preempted'],
      ['cart', 'started'],
    ]);
    expect(state.decisions[1]?.reason).toContain('preempted by cart');
    // the preempted run's own end report is then ignored: it was already logged
    expect(state.runEnded('flow/browse/c1/1', 'preempted', 'stopped', T0 + 2000)).toBeUndefined();
  });

  it('suppression leaves the active run alone', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90), ok, event('Product Added', 'm1'), T0);
    const result = state.decide(policy('browse', 50), ok, event('Product Viewed', 'm2'), T0 + 1000);
    expect(result.decision.outcome).toBe('suppressed');
    expect(result.start).toBeUndefined();
    expect(state.activeRuns.map((r) => r.flowId)).toEqual(['cart']);
    expect(state.decisions.at(-1)).toMatchObject({ flowId: 'browse', outcome: 'suppressed', eventMessageId: 'm2' });
  });

  it('an exit event removes matching runs at once and logs a conversion', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90), ok, event('Product Added', 'm1'), T0);
    state.decide(policy('post-purchase', 40, { group: 'post', exitOn: [] }), ok, event('x', 'm0'), T0);
    const exits = state.exitRunsOn(event('Order Completed', 'm2'), T0 + 5000);
    expect(exits.map((e) => e.run.flowId)).toEqual(['cart']);
    expect(exits[0]?.logged).toMatchObject({ outcome: 'converted', eventMessageId: 'm2', workflowId: 'flow/cart/c1/1' });
    expect(state.activeRuns.map((r) => r.flowId)).toEqual(['post-purchase']);
  });

  it('exit matchers with a filter only match matching events', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90, { exitOn: [{ event: 'Order Completed', where: { 'event.properties.total': { gte: 10 } } }] }), ok, event('Product Added'), T0);
    expect(state.exitRunsOn(event('Order Completed', 'small', { total: 5 }), T0)).toHaveLength(0);
    expect(state.exitRunsOn(event('Order Completed', 'big', { total: 50 }), T0)).toHaveLength(1);
  });

  it('a trigger that happened before a goal event already handled starts no run, and the log says why', () => {
    const at = (name: string, messageId: string, offset: number): EventFacts => ({ ...event(name, messageId), timestamp: T0 + offset });
    const state = ArbiterState.fresh('c1');
    state.noteExits(at('Order Completed', 'order', 10_000), ['cart']);
    // The add that preceded the order arrives after it (a slow server): no cart reminder over an emptied cart.
    const late = state.decide(policy('cart', 90), ok, at('Product Added', 'late-add', 5_000), T0 + 60_000);
    expect(late.start).toBeUndefined();
    expect(late.logged[0]).toMatchObject({ flowId: 'cart', outcome: 'skipped', eventMessageId: 'late-add' });
    expect(late.logged[0]!.reason).toContain('"Order Completed" (order) happened at');
    // An add at the order's own millisecond or later is a new cart.
    expect(state.decide(policy('cart', 90), ok, at('Product Added', 'same-time', 10_000), T0 + 61_000).start).toBeDefined();
    // Another flow's triggers are not held back by it.
    expect(state.decide(policy('browse', 95, { group: 'other' }), ok, at('Product Viewed', 'view', 1_000), T0 + 62_000).start).toBeDefined();
  });

  it('a goal event older than a run\'s trigger does not end that run; a later one does', () => {
    const at = (name: string, messageId: string, offset: number): EventFacts => ({ ...event(name, messageId), timestamp: T0 + offset });
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90), ok, at('Product Added', 'add', 10_000), T0 + 10_000);
    expect(state.exitRunsOn(at('Order Completed', 'old-order', 5_000), T0 + 20_000)).toEqual([]);
    expect(state.activeRuns.map((r) => r.flowId)).toEqual(['cart']);
    expect(state.exitRunsOn(at('Order Completed', 'new-order', 15_000), T0 + 21_000).map((e) => e.run.flowId)).toEqual(['cart']);
    // And it is remembered: the same flow's older triggers start nothing now.
    expect(state.decide(policy('cart', 90), ok, at('Product Added', 'older', 12_000), T0 + 22_000).decision.outcome).toBe('skipped');
  });

  it('a fresh arbiter knows the goal events its customer had before it started; snapshots keep them', () => {
    const lastExits = { cart: { at: T0, name: 'Order Completed', messageId: 'stored-order' } };
    const state = ArbiterState.fresh('c1', { flows: [], recentTriggerIds: [], lastExits });
    expect(state.decide(policy('cart', 90), ok, { ...event('Product Added', 'a'), timestamp: T0 - 1 }, T0 + 5).decision.outcome).toBe('skipped');
    expect(new ArbiterState(state.snapshot()).snapshot().lastExits).toEqual(lastExits);
    // Snapshots written before the field existed still load.
    const { lastExits: _dropped, ...old } = state.snapshot();
    expect(new ArbiterState(old).decide(policy('cart', 90), ok, { ...event('Product Added', 'b'), timestamp: T0 - 1 }, T0 + 6).decision.outcome).toBe('started');
  });

  it('queued triggers come back when the blocking run ends', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90), ok, event('Product Added', 'm1'), T0);
    state.decide(policy('winback', 30, { onConflict: 'queue' }), ok, event('sweep', 'm2'), T0);
    expect(state.takeRunnableQueued()).toHaveLength(0);
    expect(state.isIdle()).toBe(false);
    state.runEnded('flow/cart/c1/1', 'completed', 'done', T0 + 1000);
    const runnable = state.takeRunnableQueued();
    expect(runnable.map((q) => q.policy.flowId)).toEqual(['winback']);
    expect(state.isIdle()).toBe(true);
  });

  it('recognises a redelivered event and bounds its memory', () => {
    const state = ArbiterState.fresh('c1');
    expect(state.firstSighting('m1')).toBe(true);
    expect(state.firstSighting('m1')).toBe(false);
    for (let i = 0; i < SEEN_IDS_KEPT; i++) state.firstSighting(`x${i}`);
    expect(state.snapshot().seenMessageIds).toHaveLength(SEEN_IDS_KEPT);
  });

  it('an event that started a stored run counts as seen by a fresh arbiter (redelivery after the arbiter ended)', () => {
    const state = ArbiterState.fresh('c1', summarizeEntryHistory([{ flowId: 'cart', enteredAt: T0 - 1000, triggerMessageId: 'added-1' }]));
    expect(state.firstSighting('added-1')).toBe(false);
    expect(state.firstSighting('added-2')).toBe(true);
  });

  it('summarizes stored entries per flow: count, latest entry, recent trigger ids in entry order', () => {
    const history = summarizeEntryHistory([
      { flowId: 'cart', enteredAt: T0 - 10, triggerMessageId: 'b' },
      { flowId: 'winback', enteredAt: T0 - 30, triggerMessageId: null },
      { flowId: 'cart', enteredAt: T0 - 20, triggerMessageId: 'a' },
    ]);
    expect(history).toEqual({
      flows: [
        { flowId: 'cart', runs: 2, lastEnteredAt: T0 - 10 },
        { flowId: 'winback', runs: 1, lastEnteredAt: T0 - 30 },
      ],
      recentTriggerIds: ['a', 'b'],
    });
    const state = ArbiterState.fresh('c1', history);
    expect(state.decide(policy('cart', 90), ok, event('Product Added', 'c'), T0).start?.workflowId).toBe('flow/cart/c1/3');
    expect(state.snapshot().pastEntries).toEqual([
      { flowId: 'winback', enteredAt: T0 - 30 },
      { flowId: 'cart', enteredAt: T0 },
    ]);
  });

  it('survives a snapshot round trip (continue-as-new)', () => {
    const state = ArbiterState.fresh('c1');
    state.decide(policy('cart', 90), ok, event('Product Added', 'm1'), T0);
    const copy = new ArbiterState(JSON.parse(JSON.stringify(state.snapshot())));
    expect(copy.decide(policy('cart', 90), ok, event('Product Added', 'm3'), T0).decision.outcome).toBe('skipped');
    expect(copy.decisions).toHaveLength(2);
  });
});
