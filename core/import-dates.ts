// The dates of an import file: the formats a mapping declares (ISO-8601, epoch seconds or milliseconds, a Luxon
// pattern with a zone), checked when the mapping compiles and applied to each value. Pure but for Luxon's parser,
// which is always given the zone, so the machine's own time zone never matters.
import { DateTime, IANAZone } from 'luxon';
import { DAY_MS } from './behavior';
import { parseIsoTimestamp } from './segment-spec';
import { suggest } from './yaml-reader';

/**
 * How a date column is written. `iso`: ISO-8601, UTC without an offset. `epoch_seconds` / `epoch_millis`: a number
 * since 1970-01-01 UTC. `pattern`: a Luxon token pattern (`yyyy-MM-dd HH:mm:ss 'UTC'`); a value without an offset of
 * its own is a wall-clock time in `zone`.
 */
export type DateFormat =
  | { kind: 'iso' }
  | { kind: 'epoch_seconds' }
  | { kind: 'epoch_millis' }
  | { kind: 'pattern'; pattern: string; zone: string; readsOffset: boolean; example: string };

export const NAMED_DATE_FORMATS = ['iso', 'epoch_seconds', 'epoch_millis'] as const;

export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a JSON array';
  if (typeof value === 'object') return 'a JSON object';
  return `a ${typeof value}`;
}

/** A value as an error message shows it: text quoted (cut at 80 characters), anything else by its kind. */
export const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value) : kindOf(value));

/** A plain decimal number as text: no thousands separators, no units. */
export const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** A moment whose every unit differs, so a pattern's example shows which unit each token prints. */
const PATTERN_PROBE_MS = Date.UTC(2001, 1, 3, 4, 5, 6, 7);
/** Month and weekday names are English whatever the machine's locale: exports are not localized per reader. */
const PATTERN_LOCALE = 'en-US';

/**
 * Checks a Luxon date pattern with Luxon's own parser: the pattern writes an example (2001-02-03 04:05:06.007), which
 * must read back through the same pattern with every letter a token (Luxon takes unknown letters as literal text, so
 * an unquoted "UTC" would only fail on the first real row) and with a year (without one Luxon takes today's).
 */
export function compileDatePattern(pattern: string, zone: string): Extract<DateFormat, { kind: 'pattern' }> | { problem: string } {
  const example = DateTime.fromMillis(PATTERN_PROBE_MS, { zone }).toFormat(pattern, { locale: PATTERN_LOCALE });
  const mixedUp = /Y|D/.test(pattern.replace(/'[^']*'/g, '')) ? ' (Luxon writes the year yyyy and the day of the month dd: YYYY and DD are moment/dayjs spellings)' : '';
  const tokensHelp = `Luxon tokens: yyyy year, MM month, dd day, HH hour, mm minute, ss second, SSS millisecond, ZZ offset; literal text in single quotes, e.g. "yyyy-MM-dd HH:mm:ss 'UTC'"`;
  let explained: ReturnType<typeof DateTime.fromFormatExplain>;
  try {
    explained = DateTime.fromFormatExplain(example, pattern, { locale: PATTERN_LOCALE, zone: 'utc' });
  } catch (err) {
    return { problem: `date format "${pattern}": ${err instanceof Error ? err.message : String(err)}` };
  }
  const matches = explained.matches;
  if (explained.invalidReason || !matches || !explained.result) {
    return { problem: `date format "${pattern}" cannot read back the dates it writes (2001-02-03T04:05:06.007Z as "${example}")${mixedUp}; ${tokensHelp}` };
  }
  const unknown = [...new Set(explained.tokens.filter((t) => !t.literal && /^[A-Za-z]+$/.test(t.val) && !(t.val[0]! in matches)).map((t) => t.val))];
  if (unknown.length > 0) {
    const listed = unknown.map((t) => `"${t}"`).join(', ');
    return { problem: `date format "${pattern}": ${listed} ${unknown.length === 1 ? 'is not a date token' : 'are not date tokens'}${mixedUp}; ${tokensHelp}` };
  }
  if (explained.result.year === undefined && explained.result.weekYear === undefined) {
    return { problem: `date format "${pattern}" has no year (yyyy): without one each date would fall in the current year` };
  }
  return { kind: 'pattern', pattern, zone, readsOffset: explained.zone !== null && explained.zone !== undefined, example };
}

/** Whether Luxon (and so Intl) knows the IANA zone. */
export function isKnownZone(zone: string): boolean {
  return IANAZone.isValidZone(zone);
}

/** ` (did you mean "Europe/Berlin"?)` for a zone name a typo away from a real one, else nothing. */
export function closestZone(zone: string): string {
  return suggest(zone, typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [], 0);
}

/** Epoch values this far from 1970 in the other unit: 1e11 seconds is the year 5138, 1e11 ms is March 1973. */
const EPOCH_UNIT_MIX_UP = 1e11;
/** The range of a JavaScript Date, ±100,000,000 days around 1970. */
const MAX_DATE_MS = 8.64e15;

/** A date value in its declared format, as epoch ms. */
export function parseDate(value: unknown, format: DateFormat, fail: (reason: string) => never): number {
  switch (format.kind) {
    case 'iso': {
      const ms = typeof value === 'string' ? parseIsoTimestamp(value) : undefined;
      if (ms === undefined || !Number.isFinite(ms)) return fail(`${shown(value)} is not an ISO-8601 date (e.g. 2024-05-01 or 2024-05-01T12:00:00Z; without an offset it is UTC)`);
      return ms;
    }
    case 'epoch_seconds':
    case 'epoch_millis': {
      const seconds = format.kind === 'epoch_seconds';
      const unit = seconds ? 'seconds' : 'milliseconds';
      const n = typeof value === 'number' ? value : typeof value === 'string' && NUMBER.test(value.trim()) ? Number(value.trim()) : NaN;
      if (!Number.isFinite(n)) return fail(`${shown(value)} is not a number of ${unit} since 1970-01-01 UTC (format: ${format.kind})`);
      // Seconds read as milliseconds land in January 1970, milliseconds read as seconds in the far future: both are
      // refused rather than imported as history nobody lived.
      if (seconds && Math.abs(n) >= EPOCH_UNIT_MIX_UP) return fail(`${shown(value)} is too large for seconds since 1970 (it would be after the year 5000): it looks like milliseconds, use format: epoch_millis`);
      if (!seconds && Math.abs(n) < EPOCH_UNIT_MIX_UP) return fail(`${shown(value)} milliseconds since 1970 is before March 1973: it looks like seconds, use format: epoch_seconds`);
      const ms = Math.round(seconds ? n * 1000 : n);
      if (Math.abs(ms) > MAX_DATE_MS) return fail(`${shown(value)} is outside the range of dates (${unit} since 1970 up to ±${seconds ? MAX_DATE_MS / 1000 : MAX_DATE_MS})`);
      return ms;
    }
    case 'pattern': {
      const expected = `the date format "${format.pattern}" (e.g. ${format.example})`;
      if (typeof value !== 'string') return fail(`${kindOf(value)} is not text in ${expected}`);
      // Read as a UTC wall-clock time, then placed in the zone here: parsing in the zone directly starts from the
      // zone's offset today, so a repeated autumn hour would read differently in summer and in winter.
      const parsed = DateTime.fromFormat(value.trim(), format.pattern, { zone: 'utc', setZone: true, locale: PATTERN_LOCALE });
      if (!parsed.isValid) {
        const detail = parsed.invalidReason === 'unparsable' || !parsed.invalidExplanation ? '' : ` (${parsed.invalidExplanation})`;
        return fail(`${shown(value)} does not match ${expected}${detail}`);
      }
      const ms = format.readsOffset ? parsed.toMillis() : wallClockInZone(parsed.toMillis(), format.zone);
      if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS) return fail(`${shown(value)} is outside the range of dates`);
      return ms;
    }
  }
}

/**
 * The instant a wall-clock time (written as if it were UTC) shows in `zone`. A time the autumn change repeats is its
 * first occurrence; a time the spring change skips is read an hour later, as the clocks had already moved on.
 */
export function wallClockInZone(wallAsUtc: number, zone: string): number {
  const tz = IANAZone.create(zone);
  // The offsets in force a day either side: a wall-clock time can only ever mean one of these.
  const offsetBefore = tz.offset(wallAsUtc - DAY_MS);
  const offsetAfter = tz.offset(wallAsUtc + DAY_MS);
  const instants = [offsetBefore, offsetAfter].map((offset) => ({ offset, at: wallAsUtc - offset * 60_000 }));
  const consistent = instants.filter(({ offset, at }) => tz.offset(at) === offset).map(({ at }) => at);
  return consistent.length > 0 ? Math.min(...consistent) : wallAsUtc - offsetBefore * 60_000;
}

