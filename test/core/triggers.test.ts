import type { Trigger } from '../../core/flow-types';
import { eventMatches, historyNeeded, isBackfill, triggerFires, type EventFacts } from '../../core/triggers';

const DAY = 86_400_000;
const T = Date.UTC(2026, 10, 28);

function view(id: string, at: number, category = 'Shoes'): EventFacts {
  return { messageId: id, name: 'Product Viewed', type: 'track', properties: { category }, timestamp: at };
}

const browse: Trigger = { kind: 'event_count', event: 'Product Viewed', atLeast: 3, withinMs: 7 * DAY, sameProperty: 'properties.category' };

describe('triggers', () => {
  it('event trigger with a property filter', () => {
    const t: Trigger = { kind: 'event', event: 'Product Added', where: { 'event.properties.price': { gte: 10 } } };
    expect(triggerFires(t, { messageId: 'a', name: 'Product Added', type: 'track', properties: { price: 12 }, timestamp: T })).toBe(true);
    expect(triggerFires(t, { messageId: 'b', name: 'Product Added', type: 'track', properties: { price: 9 }, timestamp: T })).toBe(false);
    expect(triggerFires(t, { messageId: 'c', name: 'Product Viewed', type: 'track', properties: { price: 12 }, timestamp: T })).toBe(false);
  });

  it('count trigger: N-1 does not fire, N does, and the current event is counted once', () => {
    const current = view('m3', T);
    expect(triggerFires(browse, current, [view('m1', T - DAY)])).toBe(false);
    expect(triggerFires(browse, current, [view('m1', T - DAY), view('m2', T - 2 * DAY)])).toBe(true);
    expect(triggerFires(browse, current, [current, view('m1', T - DAY)])).toBe(false);
  });

  it('count trigger: the window edge is inclusive, one ms outside is not', () => {
    expect(triggerFires(browse, view('m3', T), [view('m1', T - 7 * DAY), view('m2', T - DAY)])).toBe(true);
    expect(triggerFires(browse, view('m3', T), [view('m1', T - 7 * DAY - 1), view('m2', T - DAY)])).toBe(false);
  });

  it('count trigger: only events with the same category count', () => {
    expect(triggerFires(browse, view('m3', T, 'Shoes'), [view('m1', T - DAY, 'Hats'), view('m2', T - DAY, 'Shoes')])).toBe(false);
    expect(historyNeeded(browse, view('m3', T))).toEqual({ name: 'Product Viewed', since: T - 7 * DAY });
  });

  it('inactivity triggers never fire from a single event', () => {
    expect(triggerFires({ kind: 'inactivity', event: 'Order Completed', forMs: 60 * DAY }, view('x', T))).toBe(false);
  });

  it('eventMatches compares names exactly', () => {
    expect(eventMatches({ event: 'Order Completed' }, { name: 'order completed', properties: {}, timestamp: T })).toBe(false);
  });
});

describe('backfill', () => {
  it('an event more than a day old on arrival is history, not a trigger', () => {
    expect(isBackfill({ timestamp: T - DAY }, T)).toBe(false);
    expect(isBackfill({ timestamp: T - DAY - 1 }, T)).toBe(true);
  });
});
