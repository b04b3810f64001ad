// Quiet hours hold on the customer's own wall clock, across midnight and across both DST changes, and the
// customer's time zone is chosen from profile, latest event, flow and policy in that order.
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { chooseTimeZone, latestEventTimeZone, quietHoursEnd } from '../../core/quiet-hours';
import type { QuietHours } from '../../core/send-policy';

const NIGHT: QuietHours = { from: { hour: 21, minute: 0 }, to: { hour: 8, minute: 0 } };
const NY = 'America/New_York';
const local = (iso: string, zone = NY): number => DateTime.fromISO(iso, { zone }).toMillis();
const wallClock = (ms: number, zone = NY): string => DateTime.fromMillis(ms, { zone }).toFormat("yyyy-MM-dd'T'HH:mm");

describe('quietHoursEnd', () => {
  it('leaves a send outside the window where it is', () => {
    expect(quietHoursEnd(local('2026-06-10T12:00'), NIGHT, NY)).toBe(local('2026-06-10T12:00'));
    expect(quietHoursEnd(local('2026-06-10T08:00'), NIGHT, NY)).toBe(local('2026-06-10T08:00')); // the end is outside
    expect(quietHoursEnd(local('2026-06-10T20:59:59.999'), NIGHT, NY)).toBe(local('2026-06-10T20:59:59.999'));
    expect(quietHoursEnd(local('2026-06-10T23:30'), null, NY)).toBe(local('2026-06-10T23:30'));
  });

  it('a send due at 23:30 in New York goes at 08:00 local the next morning', () => {
    const at = quietHoursEnd(local('2026-06-10T23:30'), NIGHT, NY);
    expect(wallClock(at)).toBe('2026-06-11T08:00');
    expect(at).toBe(Date.UTC(2026, 5, 11, 12)); // EDT, UTC-4
  });

  it('after midnight, the window ends the same morning; at 21:00 sharp it has begun', () => {
    expect(wallClock(quietHoursEnd(local('2026-06-11T03:15'), NIGHT, NY))).toBe('2026-06-11T08:00');
    expect(wallClock(quietHoursEnd(local('2026-06-10T21:00'), NIGHT, NY))).toBe('2026-06-11T08:00');
    expect(wallClock(quietHoursEnd(local('2026-06-11T07:59:59.999'), NIGHT, NY))).toBe('2026-06-11T08:00');
  });

  it('the March change (clocks jump 02:00 → 03:00 on 8 March 2026): still 08:00 local, one hour less later', () => {
    const at = quietHoursEnd(local('2026-03-07T23:30'), NIGHT, NY);
    expect(wallClock(at)).toBe('2026-03-08T08:00');
    expect(at).toBe(Date.UTC(2026, 2, 8, 12)); // now EDT, UTC-4; the evening before was EST
    expect(at - local('2026-03-07T23:30')).toBe(7.5 * 3_600_000);
  });

  it('the November change (clocks fall back 02:00 → 01:00 on 1 November 2026): still 08:00 local', () => {
    const at = quietHoursEnd(local('2026-10-31T23:30'), NIGHT, NY);
    expect(wallClock(at)).toBe('2026-11-01T08:00');
    expect(at).toBe(Date.UTC(2026, 10, 1, 13)); // now EST, UTC-5
    expect(at - local('2026-10-31T23:30')).toBe(9.5 * 3_600_000);
    // In the repeated hour (the second 01:30, EST), the window still ends at 08:00.
    const secondOneThirty = Date.UTC(2026, 10, 1, 6, 30);
    expect(wallClock(secondOneThirty)).toBe('2026-11-01T01:30');
    expect(wallClock(quietHoursEnd(secondOneThirty, NIGHT, NY))).toBe('2026-11-01T08:00');
  });

  it('a window that does not cross midnight, and an end that falls in the spring-forward gap', () => {
    const lunch: QuietHours = { from: { hour: 12, minute: 0 }, to: { hour: 13, minute: 30 } };
    expect(wallClock(quietHoursEnd(local('2026-06-10T12:45'), lunch, NY))).toBe('2026-06-10T13:30');
    expect(quietHoursEnd(local('2026-06-10T13:30'), lunch, NY)).toBe(local('2026-06-10T13:30'));
    expect(quietHoursEnd(local('2026-06-10T11:00'), lunch, NY)).toBe(local('2026-06-10T11:00'));
    const early: QuietHours = { from: { hour: 1, minute: 0 }, to: { hour: 2, minute: 30 } };
    // 02:30 does not exist on 8 March; the send goes when the clock has moved past the gap, never before 01:xx ends.
    const at = quietHoursEnd(local('2026-03-08T01:30'), early, NY);
    expect(wallClock(at)).toBe('2026-03-08T03:30');
  });

  it('uses the zone given, and reads an unknown zone as UTC', () => {
    const at = Date.UTC(2026, 5, 10, 22, 0); // 22:00 UTC, 00:00 in Paris, 18:00 in New York
    expect(quietHoursEnd(at, NIGHT, NY)).toBe(at);
    expect(wallClock(quietHoursEnd(at, NIGHT, 'Europe/Paris'), 'Europe/Paris')).toBe('2026-06-11T08:00');
    expect(quietHoursEnd(at, NIGHT, 'Mars/Olympus')).toBe(Date.UTC(2026, 5, 11, 8));
  });

  it('property: the result is never earlier, is outside the window, and is at most one window away', () => {
    const zones = ['America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kolkata', 'UTC', 'America/Santiago'];
    const clock = fc.record({ hour: fc.integer({ min: 0, max: 23 }), minute: fc.integer({ min: 0, max: 59 }) });
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2028, 0, 1) }),
        clock,
        clock,
        fc.constantFrom(...zones),
        (at, from, to, zone) => {
          fc.pre(from.hour !== to.hour || from.minute !== to.minute);
          const quiet = { from, to };
          const end = quietHoursEnd(at, quiet, zone);
          expect(end).toBeGreaterThanOrEqual(at);
          expect(end - at).toBeLessThanOrEqual(25 * 3_600_000);
          // Reference from the definition: the local minute of the result is outside [from, to).
          const t = DateTime.fromMillis(end, { zone });
          const m = t.hour * 60 + t.minute;
          const f = from.hour * 60 + from.minute;
          const e = to.hour * 60 + to.minute;
          const inside = f < e ? m >= f && m < e : m >= f || m < e;
          expect(inside).toBe(false);
          expect(quietHoursEnd(end, quiet, zone)).toBe(end);
        },
      ),
    );
  });
});

describe('chooseTimeZone', () => {
  it('profile, else latest event, else flow, else policy, else UTC', () => {
    const all = { profile: 'Europe/Paris', latestEvent: 'Asia/Tokyo', flow: 'America/Chicago', policy: NY };
    expect(chooseTimeZone(all)).toEqual({ timeZone: 'Europe/Paris', source: 'profile' });
    expect(chooseTimeZone({ ...all, profile: null })).toEqual({ timeZone: 'Asia/Tokyo', source: 'event' });
    expect(chooseTimeZone({ ...all, profile: null, latestEvent: null })).toEqual({ timeZone: 'America/Chicago', source: 'flow' });
    expect(chooseTimeZone({ policy: NY })).toEqual({ timeZone: NY, source: 'policy' });
    expect(chooseTimeZone({})).toEqual({ timeZone: 'UTC', source: 'utc' });
  });

  it('passes over names no tz database knows, and blanks', () => {
    expect(chooseTimeZone({ profile: 'Paris', latestEvent: '  ', flow: 'America/Chicago' })).toEqual({ timeZone: 'America/Chicago', source: 'flow' });
  });
});

describe('latestEventTimeZone', () => {
  it('the latest event that carries a known zone, whatever the order', () => {
    const events = [
      { timestamp: 3, context: { timezone: 'Not/AZone' } },
      { timestamp: 1, context: { timezone: 'Europe/Paris' } },
      { timestamp: 2, context: { timezone: 'Asia/Tokyo' } },
      { timestamp: 4, context: {} },
      { timestamp: 5, context: null },
    ];
    expect(latestEventTimeZone(events)).toBe('Asia/Tokyo');
    expect(latestEventTimeZone([{ timestamp: 1 }])).toBeNull();
  });
});
