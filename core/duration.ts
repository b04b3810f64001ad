// Reads the durations authors write in flow files (`90s`, `1h`, `7d`, `2w`, `1h30m`) as milliseconds.
import { InvalidDurationError } from './errors';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;

/** Parses a duration; throws InvalidDurationError naming the accepted units. */
export function parseDuration(text: unknown): number {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new InvalidDurationError(`expected a duration such as "30m", "1h" or "7d", got ${JSON.stringify(text)}`);
  }
  const source = text.replace(/\s+/g, '');
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < source.length) {
    const start = PART.lastIndex;
    const match = PART.exec(source);
    if (!match || match.index !== start) {
      throw new InvalidDurationError(
        `"${text}" is not a duration: write a number followed by a unit (ms, s, m, h, d, w), e.g. "1h30m" or "7d"`,
      );
    }
    total += Number(match[1]) * (UNIT_MS[match[2]!] as number);
  }
  if (!(total > 0)) throw new InvalidDurationError(`"${text}" is zero: a duration must be positive`);
  return Math.round(total);
}

/** The shortest readable form of a duration, for diagrams and logs. */
export function formatDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ['w', UNIT_MS.w!],
    ['d', UNIT_MS.d!],
    ['h', UNIT_MS.h!],
    ['m', UNIT_MS.m!],
    ['s', UNIT_MS.s!],
  ];
  let rest = ms;
  let out = '';
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  if (rest > 0 || out === '') out += `${rest}ms`;
  return out;
}
