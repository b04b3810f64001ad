// What event retention relies on in the fold: folding the events before a horizon into a baseline, then the rest
// from that baseline, gives exactly the fold of the whole history (foldAll, and ProfileHistory at any moment at or
// after the horizon). Over generated histories (fresh seed each run, FUZZ_SEED replays).
import fc from 'fast-check';
import { foldAll, type BehaviorEvent } from '../../core/behavior';
import { applyEventsToProfile, emptyProfile, type ProfileEvent } from '../../core/profile';
import { profileAsOf } from '../../core/profile-as-of';
import { fuzzRun } from '../support/fuzz-seed';

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const fuzz = fuzzRun('test/core/retention-fold.test.ts');

const eventArbitrary: fc.Arbitrary<BehaviorEvent> = fc
  .tuple(
    fc.integer({ min: 0, max: 24 * 90 }),
    fc.constantFrom('Product Viewed', 'Product Added', 'Product Removed', 'Order Completed', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'page'),
    fc.constantFrom('a', 'b', 'c'),
    fc.integer({ min: 1, max: 200 }),
  )
  .map(([hour, kind, product, total]): BehaviorEvent => {
    const timestamp = T0 + hour * HOUR;
    if (kind === 'page') return { type: 'page', name: 'Home', properties: {}, traits: {}, timestamp };
    return { type: 'track', name: kind, properties: { product_id: product, category: product.toUpperCase(), total, products: [{ product_id: product }] }, traits: {}, timestamp };
  });

/** In the fold's order: time, then arrival. */
const inTimeOrder = <T extends { timestamp: number }>(events: T[]): T[] =>
  events
    .map((event, arrival) => ({ event, arrival }))
    .sort((a, b) => a.event.timestamp - b.event.timestamp || a.arrival - b.arrival)
    .map(({ event }) => event);

describe('a baseline of the events before a horizon', () => {
  it('then the rest folded from it equals the fold of the whole history', () => {
    fuzz.check(
      fc.property(fc.array(eventArbitrary, { maxLength: 40 }), fc.integer({ min: 0, max: 24 * 91 }), (events, horizonHour) => {
        const horizon = T0 + horizonHour * HOUR;
        const ordered = inTimeOrder(events);
        const base = foldAll(ordered.filter((e) => e.timestamp < horizon));
        const baseBefore = JSON.stringify(base);
        expect(foldAll(ordered.filter((e) => e.timestamp >= horizon), base)).toEqual(foldAll(ordered));
        expect(JSON.stringify(base)).toBe(baseBefore); // the baseline is not modified
      }),
      300,
    );
  });

  it('gives the profile as of any moment at or after the horizon from the kept events alone', () => {
    fuzz.check(
      fc.property(fc.array(eventArbitrary, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 24 * 91 }), fc.integer({ min: 0, max: 24 * 91 }), (events, horizonHour, laterHours) => {
        const horizon = T0 + horizonHour * HOUR;
        const at = horizon + laterHours * HOUR;
        const ordered = inTimeOrder(events) as ProfileEvent[];
        const today = applyEventsToProfile(emptyProfile('c1', T0), ordered.map((event) => ({ event, now: event.timestamp })));
        const kept = ordered.filter((e) => e.timestamp >= horizon);
        const base = foldAll(ordered.filter((e) => e.timestamp < horizon));
        expect(profileAsOf(today, kept, at, base)!.computed).toEqual(profileAsOf(today, ordered, at)!.computed);
      }),
      300,
    );
  });
});
