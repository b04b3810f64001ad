import fc from 'fast-check';
import { bestSendAt, bestSendHour, engagementByHour, populationPrior, type EngagementSample } from '../../core/best-send-time';
import { fuzzRun } from '../support/fuzz-seed';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 5, 15, 12); // 15 June 2026, 08:00 in New York (EDT, UTC-4)
const NY = 'America/New_York';
const NO_PRIOR = new Array<number>(24).fill(0);

const opened = (timestamp: number, properties: Record<string, unknown> = {}): EngagementSample => ({ type: 'track', name: 'Email Opened', properties, timestamp });
const clicked = (timestamp: number): EngagementSample => ({ type: 'track', name: 'Email Link Clicked', properties: { url: 'https://shop.example/' }, timestamp });
/** UTC ms of `hour`:`minute` in New York on a June 2026 day (EDT, UTC-4), `daysAgo` before NOW's date. */
const nyJune = (daysAgo: number, hour: number, minute = 0): number => Date.UTC(2026, 5, 15 - daysAgo, hour + 4, minute);
/** A prior whose mass sits at `hour`, with a little everywhere else. */
const priorPeakingAt = (hour: number): number[] => Array.from({ length: 24 }, (_, h) => (h === hour ? 30 : 1));

const fuzz = fuzzRun('test/core/best-send-time.test.ts');

describe('bestSendHour', () => {
  it('picks the local hour where opens and clicks cluster', () => {
    const events = [opened(nyJune(1, 19, 5)), opened(nyJune(3, 19, 40)), clicked(nyJune(3, 19, 42)), opened(nyJune(8, 19, 10)), opened(nyJune(10, 7, 30))];
    const result = bestSendHour(events, NY, NOW, priorPeakingAt(10));
    expect(result.hour).toBe(19);
    expect(result.reason).toMatch(/^19:00 local \(America\/New_York\): 3\.\d of 4\.\d weighted opens\/clicks in the last 90 days at 19h/);
    expect(result.reason).toContain("population prior weight 5 (population's hour 10h)");
  });

  it("gives a customer without history the population's hour, and says so", () => {
    const result = bestSendHour([], NY, NOW, priorPeakingAt(10));
    expect(result).toEqual({ hour: 10, reason: expect.stringContaining('no opens or clicks by this customer') });
    expect(result.reason).toMatch(/^10:00 local/);
  });

  it("keeps a customer with one stray open on the population's hour, and moves one with a habit", () => {
    expect(bestSendHour([opened(nyJune(1, 23))], NY, NOW, priorPeakingAt(10)).hour).toBe(10);
    const habit = [1, 2, 4, 6, 9, 12].map((d) => opened(nyJune(d, 23, 15)));
    expect(bestSendHour(habit, NY, NOW, priorPeakingAt(10)).hour).toBe(23);
  });

  it('ignores machine opens (Apple Mail Privacy Protection fetches flagged by the ESP)', () => {
    const machine = Array.from({ length: 20 }, (_, d) => opened(nyJune(d, 3, 2), { machine_open: true, provider: 'sendgrid' }));
    const human = [opened(nyJune(2, 20), { machine_open: false }), opened(nyJune(5, 20)), clicked(nyJune(6, 20))];
    expect(bestSendHour([...machine, ...human], NY, NOW, NO_PRIOR).hour).toBe(20);
    expect(engagementByHour(machine, NY, NOW)[3]).toBe(0);
  });

  it('counts only opens and clicks, by the customer, before now and within the lookback', () => {
    const noise: EngagementSample[] = [
      { type: 'track', name: 'Email Delivered', properties: {}, timestamp: nyJune(1, 4) },
      { type: 'track', name: 'Order Completed', properties: {}, timestamp: nyJune(1, 4) },
      { type: 'page', name: 'Email Opened', properties: {}, timestamp: nyJune(1, 4) },
      opened(NOW + HOUR), // after now: a replay must not see it
      opened(nyJune(91, 4)), // beyond the 90-day lookback
    ];
    expect(engagementByHour(noise, NY, NOW)).toEqual(NO_PRIOR);
    expect(bestSendHour([...noise, opened(nyJune(1, 16))], NY, NOW, NO_PRIOR).hour).toBe(16);
  });

  it('lets recent opens outweigh more numerous old ones', () => {
    const old = Array.from({ length: 6 }, (_, i) => opened(nyJune(75 + i, 8)));
    const recent = [opened(nyJune(1, 21)), opened(nyJune(4, 21)), opened(nyJune(6, 21))];
    expect(bestSendHour([...old, ...recent], NY, NOW, NO_PRIOR).hour).toBe(21);
    // The same six at 8h, undecayed (half-life far longer than their age), would win: decay is what decides.
    expect(bestSendHour([...old, ...recent], NY, NOW, NO_PRIOR, { halfLifeMs: 10_000 * DAY }).hour).toBe(8);
  });

  it('reads hours on the local clock across DST: 19:00 in winter and in summer is one hour', () => {
    const now = Date.UTC(2026, 11, 1);
    // 19:00 EST = 00:00 UTC next day; 19:00 EDT = 23:00 UTC.
    const winter = [Date.UTC(2026, 10, 2, 0), Date.UTC(2026, 10, 5, 0), Date.UTC(2026, 10, 20, 0)];
    const summer = [Date.UTC(2026, 9, 30, 23), Date.UTC(2026, 9, 31, 23), Date.UTC(2026, 9, 25, 23)];
    const histogram = engagementByHour([...winter, ...summer].map((t) => opened(t)), NY, now);
    expect(histogram.map((w, h) => (w > 0 ? h : -1)).filter((h) => h >= 0)).toEqual([19]);
    expect(bestSendHour([...winter, ...summer].map((t) => opened(t)), NY, now, NO_PRIOR).hour).toBe(19);
  });

  it('reads the same instants as different hours in different zones', () => {
    const events = [opened(Date.UTC(2026, 5, 14, 10)), opened(Date.UTC(2026, 5, 13, 10))];
    expect(bestSendHour(events, 'Asia/Tokyo', NOW, NO_PRIOR).hour).toBe(19);
    expect(bestSendHour(events, NY, NOW, NO_PRIOR).hour).toBe(6);
  });

  it('falls back to UTC for an unknown zone and says so', () => {
    const result = bestSendHour([opened(Date.UTC(2026, 5, 14, 10))], 'Mars/Olympus', NOW, NO_PRIOR);
    expect(result.hour).toBe(10);
    expect(result.reason).toContain('UTC (unknown time zone "Mars/Olympus")');
  });

  it('uses the default hour when nobody has engaged yet', () => {
    expect(bestSendHour([], NY, NOW, NO_PRIOR)).toEqual({ hour: 10, reason: expect.stringContaining('by this customer or anyone') });
    expect(bestSendHour([], NY, NOW, NO_PRIOR, { defaultHour: 9 }).hour).toBe(9);
  });

  it('refuses a prior that is not 24 non-negative weights', () => {
    expect(() => bestSendHour([], NY, NOW, [1, 2, 3])).toThrow(/24 non-negative finite weights/);
    expect(() => bestSendHour([], NY, NOW, [...NO_PRIOR.slice(1), -1])).toThrow(/24 non-negative/);
  });
});

describe('populationPrior', () => {
  it('counts each customer once, so one heavy reader does not set everyone’s hour', () => {
    const heavy = { timeZone: NY, events: Array.from({ length: 50 }, (_, i) => opened(nyJune(i % 20, 22))) };
    const light = [1, 2, 3].map((d) => ({ timeZone: NY, events: [opened(nyJune(d, 9))] }));
    const prior = populationPrior([heavy, ...light], NOW);
    expect(prior[22]).toBeCloseTo(1);
    expect(prior[9]).toBeCloseTo(3);
    expect(bestSendHour([], NY, NOW, prior).hour).toBe(9);
  });

  it("reads each customer's hours in their own zone", () => {
    const at = Date.UTC(2026, 5, 14, 10);
    const prior = populationPrior([{ timeZone: 'Asia/Tokyo', events: [opened(at)] }, { timeZone: 'Europe/Paris', events: [opened(at)] }], NOW);
    expect(prior[19]).toBeCloseTo(1);
    expect(prior[12]).toBeCloseTo(1);
  });
});

/** When `timeZone`'s clock shows `hour` (Intl, not Luxon: a reference that shares nothing with the code). */
const formatters = new Map<string, Intl.DateTimeFormat>();
function intlHour(at: number, timeZone: string): number {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, format);
  }
  return Number(format.formatToParts(new Date(at)).find((p) => p.type === 'hour')!.value);
}

/** Quiet hours from `start` to `end` o'clock local, by brute force: step a minute at a time until the clock leaves them. */
function quietBetween(start: number, end: number, timeZone: string): (at: number) => number {
  const quiet = (at: number): boolean => {
    const h = intlHour(at, timeZone);
    return start > end ? h >= start || h < end : h >= start && h < end;
  };
  return (at) => {
    if (!quiet(at)) return at;
    let t = Math.floor(at / MINUTE) * MINUTE + MINUTE;
    while (quiet(t)) t += MINUTE;
    return t;
  };
}

describe('bestSendAt', () => {
  const june15 = (hour: number, minute = 0): number => Date.UTC(2026, 5, 15, hour + 4, minute); // New York, EDT

  it('waits for the hour later today, or tomorrow when it has passed', () => {
    expect(bestSendAt(june15(10), DAY, 19, NY).at).toBe(june15(19));
    expect(bestSendAt(june15(20), DAY, 19, NY).at).toBe(june15(19) + DAY);
    expect(bestSendAt(june15(10), DAY, 19, NY).reason).toMatch(/^19:00 local \(America\/New_York\): the customer's best hour, 9 h after/);
    // Due a few seconds after 10:00 (a send step runs a moment after its wait ends): the delay rounds to "9 h", not "8 h 60 min".
    expect(bestSendAt(june15(10) + 3_000, DAY, 19, NY).reason).toContain('the customer\'s best hour, 9 h after');
  });

  it('sends at once when the customer is already in their hour', () => {
    expect(bestSendAt(june15(19, 35), DAY, 19, NY)).toEqual({ at: june15(19, 35), reason: expect.stringContaining('the current hour') });
  });

  it('sends when due when the hour does not come within the allowed delay', () => {
    expect(bestSendAt(june15(10), 3 * HOUR, 19, NY)).toEqual({ at: june15(10), reason: expect.stringContaining('does not occur within 3 h') });
    expect(bestSendAt(june15(10), 9 * HOUR, 19, NY).at).toBe(june15(19)); // the boundary itself is within
  });

  it('keeps the local hour across the March DST change, and skips the hour the clock jumps over', () => {
    const march7 = Date.UTC(2026, 2, 7, 5); // 00:00 EST on Saturday 7 March; clocks go 02:00 -> 03:00 on Sunday 8 March
    expect(bestSendAt(march7, DAY, 8, NY).at).toBe(Date.UTC(2026, 2, 7, 13)); // 08:00 EST
    expect(bestSendAt(march7 + DAY, DAY, 8, NY).at).toBe(Date.UTC(2026, 2, 8, 12)); // 08:00 EDT
    // 02:00 does not exist on 8 March: the first 02:00 after midnight that day is on 9 March.
    const march8 = Date.UTC(2026, 2, 8, 5);
    expect(bestSendAt(march8, 20 * HOUR, 2, NY).at).toBe(march8);
    expect(bestSendAt(march8, 2 * DAY, 2, NY).at).toBe(Date.UTC(2026, 2, 9, 6)); // 02:00 EDT
  });

  it('keeps the local hour across the November DST change, and takes a repeated hour at its first occurrence', () => {
    const oct31 = Date.UTC(2026, 9, 31, 4); // 00:00 EDT; clocks go 02:00 EDT -> 01:00 EST on Sunday 1 November
    expect(bestSendAt(oct31, DAY, 19, NY).at).toBe(Date.UTC(2026, 9, 31, 23)); // 19:00 EDT
    expect(bestSendAt(oct31 + 20 * HOUR, DAY, 19, NY).at).toBe(Date.UTC(2026, 10, 2, 0)); // 19:00 EST on 1 November
    expect(bestSendAt(oct31 + DAY, DAY, 1, NY).at).toBe(Date.UTC(2026, 10, 1, 5)); // the first 01:00, EDT
    expect(bestSendAt(Date.UTC(2026, 10, 1, 6), DAY, 1, NY).at).toBe(Date.UTC(2026, 10, 1, 6)); // the second 01:00 (EST) is the current hour
  });

  it('handles half-hour DST (Lord Howe moves from +10:30 to +11 at 02:00, so 02:00-02:29 does not exist)', () => {
    // 4 October 2026, 00:00 local (+10:30) is 3 October 13:30 UTC; 02:30 local (+11) is 15:30 UTC.
    expect(bestSendAt(Date.UTC(2026, 9, 3, 13, 30), 6 * HOUR, 2, 'Australia/Lord_Howe').at).toBe(Date.UTC(2026, 9, 3, 15, 30));
  });

  it('passes over a quiet moment for a later one at the hour, and moves out of quiet hours when the hour is quiet', () => {
    const quiet = quietBetween(21, 8, NY);
    expect(bestSendAt(june15(10), DAY, 19, NY, quiet).at).toBe(june15(19));
    const late = bestSendAt(june15(15), DAY, 23, NY, quiet);
    expect(late.at).toBe(june15(8) + DAY);
    expect(late.reason).toContain('falls in quiet hours');
    // A send due at 23:30 with no best hour in reach goes at 08:00.
    expect(bestSendAt(june15(23, 30), HOUR, 19, NY, quiet).at).toBe(june15(8) + DAY);
  });

  it('refuses an hour outside 0..23 and a negative delay', () => {
    expect(() => bestSendAt(NOW, DAY, 24, NY)).toThrow(/whole hour from 0 to 23/);
    expect(() => bestSendAt(NOW, -1, 3, NY)).toThrow(/within must be a non-negative duration/);
  });

  const zones = ['UTC', NY, 'Europe/London', 'Asia/Tokyo', 'Asia/Kathmandu', 'Pacific/Chatham', 'Australia/Lord_Howe', 'America/Sao_Paulo', 'America/St_Johns'];
  const from = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2030, 0, 1) });
  const within = fc.integer({ min: 0, max: 2 * DAY });

  it('always answers within [from, from + within], at the first moment there whose local hour is the hour (brute force)', () => {
    fuzz.check(
      fc.property(from, within, fc.integer({ min: 0, max: 23 }), fc.constantFrom(...zones), (start, delay, hour, zone) => {
        const { at } = bestSendAt(start, delay, hour, zone);
        expect(at).toBeGreaterThanOrEqual(start);
        expect(at).toBeLessThanOrEqual(start + delay);
        let expected = start;
        if (intlHour(start, zone) !== hour) {
          expected = start;
          for (let t = Math.floor(start / MINUTE) * MINUTE + MINUTE; t <= start + delay; t += MINUTE) {
            if (intlHour(t, zone) === hour) {
              expected = t;
              break;
            }
          }
        }
        expect(at).toBe(expected);
      }),
      60,
    );
  });

  it('never sends in quiet hours, and stays within the window whenever the window has a moment outside them', () => {
    fuzz.check(
      fc.property(from, within, fc.integer({ min: 0, max: 23 }), fc.constantFrom(...zones), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 23 }), (start, delay, hour, zone, qFrom, qTo) => {
        fc.pre(qFrom !== qTo);
        const quiet = quietBetween(qFrom, qTo, zone);
        const { at } = bestSendAt(start, delay, hour, zone, quiet);
        expect(at).toBeGreaterThanOrEqual(start);
        expect(quiet(at)).toBe(at);
        const firstAllowed = quiet(start);
        if (firstAllowed <= start + delay) expect(at).toBeLessThanOrEqual(start + delay);
      }),
      60,
    );
  });
});
