// The redispatch schedule: the polling period while deliveries go through, doubling while they fail, capped, and
// spread so servers sharing a database do not retry in step.
import { redispatchDelay, REDISPATCH_SCHEDULE } from '../../core/redispatch-backoff';

const MIDDLE = 0.5; // the undisturbed value

describe('redispatch backoff', () => {
  it('polls at the base period while passes go through, and doubles after each failed pass up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((failed) => redispatchDelay(failed, MIDDLE))).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  });

  it('starts over at the base period once a pass goes through (the caller resets the count)', () => {
    expect(redispatchDelay(0, MIDDLE)).toBe(REDISPATCH_SCHEDULE.baseMs);
  });

  it('keeps the cap after any number of failures, without overflowing', () => {
    expect(redispatchDelay(10_000, MIDDLE)).toBe(REDISPATCH_SCHEDULE.capMs);
    expect(redispatchDelay(Number.MAX_SAFE_INTEGER, MIDDLE)).toBe(REDISPATCH_SCHEDULE.capMs);
  });

  it('reads a count that is not a positive number as no failure', () => {
    for (const odd of [-3, Number.NaN, Number.NEGATIVE_INFINITY]) expect(redispatchDelay(odd, MIDDLE)).toBe(REDISPATCH_SCHEDULE.baseMs);
  });

  it('spreads each wait by at most the jitter fraction either way, also at the cap', () => {
    const schedule = { baseMs: 1_000, capMs: 30_000, jitter: 0.2 };
    expect(redispatchDelay(0, 0, schedule)).toBe(800);
    expect(redispatchDelay(0, 0.999999, schedule)).toBe(1_200);
    expect(redispatchDelay(9, 0, schedule)).toBe(24_000);
    expect(redispatchDelay(9, 0.999999, schedule)).toBe(36_000);
    // A random source out of range is held to it.
    expect(redispatchDelay(0, 7, schedule)).toBe(1_200);
    expect(redispatchDelay(0, -1, schedule)).toBe(800);
  });

  it('bounds the wait after Temporal returns: no wait of the shipped schedule exceeds 11 s', () => {
    for (let failed = 0; failed < 40; failed++) for (const r of [0, 0.5, 0.999999]) expect(redispatchDelay(failed, r)).toBeLessThanOrEqual(11_000);
  });
});
