// How long until the next HH:MM on the wall clock of a time zone (for `wait: { until: "09:00" }`).
// Pure: `now` is passed in (workflow time), zone rules come from Intl.

function wallClockSeconds(now: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(now));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return get('hour') * 3600 + get('minute') * 60 + get('second');
}

/** True when Intl knows the zone name (e.g. "Europe/Paris"). */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** Milliseconds from `now` to the next time the zone's clock shows hour:minute (never 0: tomorrow if it is that minute now). */
export function msUntilTimeOfDay(now: number, hour: number, minute: number, timeZone: string): number {
  const zone = isValidTimeZone(timeZone) ? timeZone : 'UTC';
  const target = hour * 3600 + minute * 60;
  let deltaSeconds = target - wallClockSeconds(now, zone);
  if (deltaSeconds <= 0) deltaSeconds += 86_400;
  return deltaSeconds * 1000 - (now % 1000);
}
