import { evaluateEntry, evaluateRequires, fireTrigger } from '../../core/entry';
import type { FlowDefinition } from '../../core/flow-types';
import { emptyProfile } from '../../core/profile';

const flow: FlowDefinition = {
  id: 'cart',
  version: 3,
  priority: 90,
  group: 'marketing',
  topic: null,
  trigger: { kind: 'event', event: 'Product Added' },
  entry: { when: { 'consent.email_marketing': true, 'event.properties.price': { gte: 10 } }, reentry: { kind: 'cooldown', ms: 1000 }, onConflict: 'suppress' },
  exit: { onEvents: [{ event: 'Order Completed' }] },
  start: null,
  nodes: {},
  defaultTimezone: 'UTC',
  source: { file: 'flows/cart.yaml', sha256: 'x' },
};
const event = (price: number) => ({ messageId: 'm', name: 'Product Added', type: 'track' as const, properties: { price }, timestamp: 0 });

describe('entry', () => {
  const consenting = { ...emptyProfile('c1', 0), consent: { email_marketing: { granted: true, source: 'identify', at: 0 } } };

  it('reads the profile, consent and the triggering event', () => {
    expect(evaluateEntry(flow, consenting, event(12)).matched).toBe(true);
    expect(evaluateEntry(flow, consenting, event(5)).matched).toBe(false);
    expect(evaluateEntry(flow, emptyProfile('c1', 0), event(12))).toEqual({ matched: false, reason: expect.stringContaining('is false') });
    expect(evaluateEntry(flow, undefined, event(12)).matched).toBe(false);
  });

  it('a flow without a condition admits everyone', () => {
    expect(evaluateEntry({ ...flow, entry: { ...flow.entry, when: undefined } }, undefined, event(1))).toEqual({ matched: true, reason: 'no entry condition' });
  });

  it("the flow's reason (requires) must hold at entry too, and is read as of the moment asked", () => {
    const cartFlow: FlowDefinition = { ...flow, requires: { 'profile.cart': { exists: true }, not: { 'profile.cart': { size: 0 } } } };
    const withCart = { ...consenting, computed: { cart: [{ product_id: 'p1', quantity: 1 }] } };
    expect(evaluateEntry(cartFlow, withCart, event(12))).toEqual({ matched: true, reason: expect.stringContaining('requires') });
    expect(evaluateEntry(cartFlow, { ...consenting, computed: { cart: [] } }, event(12))).toEqual({ matched: false, reason: expect.stringMatching(/^requires .* is false$/) });
    expect(evaluateEntry(cartFlow, withCart, event(5))).toEqual({ matched: false, reason: expect.stringMatching(/^entry.when .* is false$/) });
    expect(evaluateEntry({ ...cartFlow, entry: { ...cartFlow.entry, when: undefined } }, { ...consenting, computed: {} }, event(1)).matched).toBe(false);
    expect(evaluateRequires(flow, undefined, event(1), 0)).toEqual({ matched: true, reason: 'no requires' });
    expect(evaluateRequires(cartFlow, withCart, event(1), 0).matched).toBe(true);
  });

  it('a fired trigger carries the policy the arbiter decides with', () => {
    expect(fireTrigger(flow, consenting, event(12))).toEqual({
      policy: { flowId: 'cart', version: 3, priority: 90, group: 'marketing', reentry: { kind: 'cooldown', ms: 1000 }, onConflict: 'suppress', exitOn: [{ event: 'Order Completed' }], listensTo: [] },
      entry: { matched: true, reason: expect.stringContaining('is true') },
    });
  });
});
