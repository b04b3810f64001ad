// The conversion rule (core/attribution): goal events are the flow's exit matchers; last touch within the window
// credits a send, the latest entry within the window credits the flow (holdout entries alike); revenue from revenue,
// total or value. A generated check compares creditConversion with a brute-force reading of the rule.
import fc from 'fast-check';
import {
  attributionWindowMs,
  creditConversion,
  DEFAULT_ATTRIBUTION_WINDOW_MS,
  flowsWithGoal,
  isGoalOf,
  revenueOf,
  type ClickTouch,
  type EntryTouch,
  type SendTouch,
} from '../../core/attribution';
import type { FlowDefinition } from '../../core/flow-types';
import { fuzzRun } from '../support/fuzz-seed';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T = Date.UTC(2026, 5, 10, 12);
const fuzz = fuzzRun('test/core/attribution.test.ts');

type RuleFlow = Pick<FlowDefinition, 'exit' | 'attribution'>;

const cart: RuleFlow = { exit: { onEvents: [{ event: 'Order Completed' }] } };
const bigOrders: RuleFlow = { exit: { onEvents: [{ event: 'Order Completed', where: { 'event.properties.total': { gte: 100 } } }, { event: 'Subscribed' }] }, attribution: { windowMs: DAY } };

const goal = (at: number, properties: Record<string, unknown> = {}) => ({ type: 'track', name: 'Order Completed', properties, timestamp: at });
const send = (deliveryKey: string, at: number): SendTouch => ({ deliveryKey, at });
const click = (deliveryKey: string, at: number): ClickTouch => ({ deliveryKey, at });
const entry = (workflowId: string, at: number, holdout = false): EntryTouch => ({ workflowId, at, holdout });
const none = { sends: [], clicks: [], entries: [] };

describe('attribution window', () => {
  it('defaults to 5 days, and a flow may set its own', () => {
    expect(DEFAULT_ATTRIBUTION_WINDOW_MS).toBe(5 * DAY);
    expect(attributionWindowMs(cart)).toBe(5 * DAY);
    expect(attributionWindowMs(bigOrders)).toBe(DAY);
  });
});

describe('goal events', () => {
  it('are the track events the flow exit matchers match, filters included', () => {
    expect(isGoalOf(cart, goal(T))).toBe(true);
    expect(isGoalOf(cart, { ...goal(T), name: 'Product Viewed' })).toBe(false);
    expect(isGoalOf(cart, { ...goal(T), type: 'page' })).toBe(false);
    expect(isGoalOf(bigOrders, goal(T, { total: 150 }))).toBe(true);
    expect(isGoalOf(bigOrders, goal(T, { total: 50 }))).toBe(false);
    expect(isGoalOf(bigOrders, { ...goal(T), name: 'Subscribed' })).toBe(true);
  });

  it('a flow without exit events has none', () => {
    expect(isGoalOf({ exit: { onEvents: [] } }, goal(T))).toBe(false);
  });

  it('flowsWithGoal keeps the flows an event is a goal of, in order', () => {
    const flows = [
      { id: 'a', ...cart },
      { id: 'b', ...bigOrders },
      { id: 'c', exit: { onEvents: [{ event: 'Order Completed' }] } },
    ];
    expect(flowsWithGoal(flows, goal(T, { total: 20 })).map((f) => f.id)).toEqual(['a', 'c']);
    expect(flowsWithGoal(flows, goal(T, { total: 200 })).map((f) => f.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('revenue', () => {
  it('reads revenue, else total, else value', () => {
    expect(revenueOf({ revenue: 12.5, total: 99, value: 7 })).toBe(12.5);
    expect(revenueOf({ total: 99, value: 7 })).toBe(99);
    expect(revenueOf({ value: 7 })).toBe(7);
    expect(revenueOf({ revenue: 0, total: 99 })).toBe(0);
  });

  it('skips what is not a finite number of at least 0, and is 0 without any', () => {
    expect(revenueOf({ revenue: '12.50', total: 30 })).toBe(30);
    expect(revenueOf({ revenue: -5, total: 30 })).toBe(30);
    expect(revenueOf({ revenue: Number.NaN, value: 4 })).toBe(4);
    expect(revenueOf({ revenue: Number.POSITIVE_INFINITY })).toBe(0);
    expect(revenueOf({ revenue: null, total: { amount: 3 }, value: [1] })).toBe(0);
    expect(revenueOf({})).toBe(0);
  });
});

describe('creditConversion', () => {
  it('credits the send whose touch is the latest before the goal, within the window (both ends inclusive)', () => {
    const touches = { sends: [send('s1', T - 3 * DAY), send('s2', T - DAY)], clicks: [], entries: [] };
    expect(creditConversion(cart, goal(T), touches)?.deliveryKey).toBe('s2');
    const edge = { sends: [send('s1', T - 5 * DAY)], clicks: [], entries: [] };
    expect(creditConversion(cart, goal(T), edge)?.deliveryKey).toBe('s1');
    expect(creditConversion(cart, goal(T + 1), edge)).toBeNull();
    expect(creditConversion(cart, goal(T), { ...edge, sends: [send('s0', T)] })?.deliveryKey).toBe('s0');
  });

  it('a click on an older send makes that send the last touch, and extends the window from the click', () => {
    const touches = { sends: [send('s1', T - 10 * DAY), send('s2', T - 2 * DAY)], clicks: [click('s1', T - DAY)], entries: [] };
    expect(creditConversion(cart, goal(T), touches)?.deliveryKey).toBe('s1');
    const onlyOld = { sends: [send('s1', T - 10 * DAY)], clicks: [click('s1', T - 4 * DAY)], entries: [] };
    expect(creditConversion(cart, goal(T), onlyOld)?.deliveryKey).toBe('s1');
    expect(creditConversion(cart, goal(T), { ...onlyOld, clicks: [] })).toBeNull();
  });

  it('touches after the goal do not count, nor a click naming a send that is not the flow customer’s', () => {
    const touches = { sends: [send('s1', T - DAY), send('s2', T + HOUR)], clicks: [click('s1', T + 2 * HOUR), click('other', T - HOUR)], entries: [] };
    expect(creditConversion(cart, goal(T), touches)?.deliveryKey).toBe('s1');
    const onlyForeign = { sends: [send('s1', T - 6 * DAY)], clicks: [click('other', T - HOUR)], entries: [] };
    expect(creditConversion(cart, goal(T), onlyForeign)).toBeNull();
  });

  it('at one moment a click is the later touch than a send', () => {
    const touches = { sends: [send('s1', T - 9 * DAY), send('s2', T - DAY)], clicks: [click('s1', T - DAY)], entries: [] };
    expect(creditConversion(cart, goal(T), touches)?.deliveryKey).toBe('s1');
  });

  it('credits the latest entry at flow level within the window, holdout entries alike', () => {
    const entries = [entry('run1', T - 10 * DAY), entry('run2', T - 2 * DAY, true)];
    expect(creditConversion(cart, goal(T, { revenue: 40 }), { ...none, entries })).toEqual({ deliveryKey: null, workflowId: 'run2', revenue: 40 });
    expect(creditConversion(cart, goal(T), { ...none, entries: [entry('run1', T - 10 * DAY)] })).toBeNull();
  });

  it('decides send and entry credit apart: a goal long after entry but soon after a send credits the send only', () => {
    const touches = { sends: [send('s1', T - DAY)], clicks: [], entries: [entry('run1', T - 8 * DAY)] };
    expect(creditConversion(cart, goal(T, { total: 25 }), touches)).toEqual({ deliveryKey: 's1', workflowId: null, revenue: 25 });
    const both = { ...touches, entries: [entry('run1', T - 8 * DAY), entry('run2', T - 3 * DAY)] };
    expect(creditConversion(cart, goal(T, { total: 25 }), both)).toEqual({ deliveryKey: 's1', workflowId: 'run2', revenue: 25 });
  });

  it('uses the flow’s own window', () => {
    const touches = { sends: [send('s1', T - 2 * DAY)], clicks: [], entries: [entry('run1', T - 2 * DAY)] };
    expect(creditConversion(cart, goal(T), touches)).not.toBeNull();
    expect(creditConversion(bigOrders, goal(T), touches)).toBeNull();
  });

  it('matches a brute-force reading of the rule on generated touches', () => {
    const WINDOW = 3 * DAY;
    const flow: RuleFlow = { ...cart, attribution: { windowMs: WINDOW } };
    // Distinct times (no ties), spread on both sides of the goal and beyond the window.
    const times = fc.uniqueArray(fc.integer({ min: -8 * DAY, max: 2 * DAY }), { minLength: 0, maxLength: 14 });
    fuzz.check(
      fc.property(times, fc.array(fc.nat(), { maxLength: 14 }), fc.array(fc.boolean(), { maxLength: 14 }), (offsets, picks, kinds) => {
        const sends: SendTouch[] = [];
        const clicks: ClickTouch[] = [];
        const entries: EntryTouch[] = [];
        offsets.forEach((offset, i) => {
          const kind = (picks[i] ?? 0) % 4;
          if (kind === 0 || sends.length === 0) sends.push(send(`s${i}`, T + offset));
          else if (kind === 1) clicks.push(click(sends[(picks[i] ?? 0) % sends.length]!.deliveryKey, T + offset));
          else if (kind === 2) clicks.push(click(`foreign${i}`, T + offset));
          else entries.push(entry(`run${i}`, T + offset, kinds[i] ?? false));
        });
        // The rule read another way: some touch lies in [goal - window, goal]; the one with the greatest time earns it.
        const known = new Set(sends.map((s) => s.deliveryKey));
        const inWindow = <X extends { at: number }>(xs: X[]) => xs.filter((x) => x.at <= T && x.at >= T - WINDOW);
        const touchesIn = inWindow([...sends, ...clicks.filter((c) => known.has(c.deliveryKey))]);
        const entriesIn = inWindow(entries);
        const greatest = <X extends { at: number }>(xs: X[]) => xs.reduce<X | null>((best, x) => (best === null || x.at > best.at ? x : best), null);
        const expectedKey = greatest(touchesIn)?.deliveryKey ?? null;
        const expectedRun = greatest(entriesIn)?.workflowId ?? null;
        const credit = creditConversion(flow, goal(T, { value: 3 }), { sends, clicks, entries });
        if (expectedKey === null && expectedRun === null) return credit === null;
        return credit !== null && credit.deliveryKey === expectedKey && credit.workflowId === expectedRun && credit.revenue === 3;
      }),
      500,
    );
  });
});
