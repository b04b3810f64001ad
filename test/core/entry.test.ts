import { evaluateEntry, fireTrigger } from '../../core/entry';
import type { FlowDefinition } from '../../core/flow-types';
import { emptyProfile } from '../../core/profile';

const flow: FlowDefinition = {
  id: 'cart',
  version: 3,
  priority: 90,
  group: 'marketing',
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

  it('a fired trigger carries the policy the arbiter decides with', () => {
    expect(fireTrigger(flow, consenting, event(12))).toEqual({
      policy: { flowId: 'cart', version: 3, priority: 90, group: 'marketing', reentry: { kind: 'cooldown', ms: 1000 }, onConflict: 'suppress', exitOn: [{ event: 'Order Completed' }], listensTo: [] },
      entry: { matched: true, reason: expect.stringContaining('is true') },
    });
  });
});
