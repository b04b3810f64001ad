import { isValidTimeZone, msUntilTimeOfDay } from '../../core/time-of-day';

const HOUR = 3_600_000;

describe('msUntilTimeOfDay', () => {
  it('waits until later today in the zone', () => {
    // 12:00 UTC is 07:00 in New York (EST, UTC-5) on 28 Nov
    expect(msUntilTimeOfDay(Date.UTC(2026, 10, 28, 12), 9, 0, 'America/New_York')).toBe(2 * HOUR);
  });

  it('waits until tomorrow when the time has passed, and never returns 0', () => {
    expect(msUntilTimeOfDay(Date.UTC(2026, 10, 28, 12), 9, 0, 'UTC')).toBe(21 * HOUR);
    expect(msUntilTimeOfDay(Date.UTC(2026, 10, 28, 9), 9, 0, 'UTC')).toBe(24 * HOUR);
  });

  it('accounts for seconds and milliseconds already past', () => {
    expect(msUntilTimeOfDay(Date.UTC(2026, 10, 28, 8, 59, 30, 250), 9, 0, 'UTC')).toBe(29_750);
  });

  it('falls back to UTC for an unknown zone', () => {
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(msUntilTimeOfDay(Date.UTC(2026, 10, 28, 8), 9, 0, 'Mars/Olympus')).toBe(HOUR);
  });
});
