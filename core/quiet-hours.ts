// When a send may go given quiet hours in the customer's own time zone, and which zone that is. Pure: `at` is
// passed in (workflow time); zone rules come from luxon (the runtime's tz database), so DST nights are handled by
// asking for the local wall-clock time rather than adding hours.
import { DateTime } from 'luxon';
import type { QuietHours, TimeOfDay } from './send-policy';
import { isValidTimeZone } from './time-of-day';

const minuteOfDay = (t: TimeOfDay): number => t.hour * 60 + t.minute;

/** Whether the local time `minutes` (fractional, since midnight) lies in the window [from, to), which may cross midnight. */
function insideWindow(minutes: number, quiet: QuietHours): boolean {
  const from = minuteOfDay(quiet.from);
  const to = minuteOfDay(quiet.to);
  return from < to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
}

/**
 * `at` when it is outside the quiet hours in `timeZone`, else the end of the quiet window it falls in (the next
 * `to` on that zone's wall clock). An unknown zone is read as UTC, like `wait: { until }`: a customer's bad
 * timezone trait must not stop their flow. When `to` itself does not exist that day (it lies in a spring-forward
 * gap), luxon moves it forward by the gap's length: 02:30 becomes 03:30.
 */
export function quietHoursEnd(at: number, quiet: QuietHours | null, timeZone: string): number {
  if (!quiet) return at;
  const zone = isValidTimeZone(timeZone) ? timeZone : 'UTC';
  const local = DateTime.fromMillis(at, { zone });
  const minutes = local.hour * 60 + local.minute + local.second / 60 + local.millisecond / 60_000;
  if (!insideWindow(minutes, quiet)) return at;
  // Inside a window that crossed midnight and began this evening: it ends tomorrow morning. Otherwise today.
  const endsTomorrow = minutes >= minuteOfDay(quiet.to);
  const day = endsTomorrow ? local.startOf('day').plus({ days: 1 }) : local.startOf('day');
  return day.set({ hour: quiet.to.hour, minute: quiet.to.minute, second: 0, millisecond: 0 }).toMillis();
}

export type TimeZoneSource = 'profile' | 'event' | 'flow' | 'policy' | 'utc';

/**
 * The customer's time zone for quiet hours and best send time: the profile's timezone trait, else the
 * context.timezone of their latest event that carries one, else the flow's own `timezone:` (null when the flow
 * file wrote none: a compiled flow's UTC default is not a choice), else the policy default. Unknown zone names are
 * passed over, so one bad value falls through to the next. `source` says which one won, for the decision log.
 */
export function chooseTimeZone(candidates: {
  profile?: string | null;
  latestEvent?: string | null;
  flow?: string | null;
  policy?: string | null;
}): { timeZone: string; source: TimeZoneSource } {
  const order: Array<[Exclude<TimeZoneSource, 'utc'>, string | null | undefined]> = [
    ['profile', candidates.profile],
    ['event', candidates.latestEvent],
    ['flow', candidates.flow],
    ['policy', candidates.policy],
  ];
  for (const [source, zone] of order) {
    if (typeof zone === 'string' && zone.trim() !== '' && isValidTimeZone(zone.trim())) return { timeZone: zone.trim(), source };
  }
  return { timeZone: 'UTC', source: 'utc' };
}

/** The context.timezone of the latest event that names a known zone (events in any order); null when none does. */
export function latestEventTimeZone(events: ReadonlyArray<{ timestamp: number; context?: Record<string, unknown> | null }>): string | null {
  let best: { timestamp: number; zone: string } | null = null;
  for (const event of events) {
    const zone = event.context?.timezone;
    if (typeof zone !== 'string' || !isValidTimeZone(zone.trim()) || zone.trim() === '') continue;
    if (!best || event.timestamp > best.timestamp) best = { timestamp: event.timestamp, zone: zone.trim() };
  }
  return best?.zone ?? null;
}
