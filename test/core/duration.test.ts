// Durations as authors write them, read as milliseconds, and printed back in their shortest form.
import { formatDuration, parseDuration } from '../../core/duration';
import { InvalidDurationError } from '../../core/errors';

describe('parseDuration', () => {
  test.each([
    ['250ms', 250],
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['1h30m', 5_400_000],
    ['1h 30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['1d12h', 129_600_000],
  ])('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each([
    ['3 days', 'is not a duration'],
    ['1y', 'is not a duration'],
    ['h', 'is not a duration'],
    ['10', 'is not a duration'],
    ['0s', 'is zero'],
    ['', 'expected a duration'],
  ])('%j is rejected (%s)', (text, message) => {
    expect(() => parseDuration(text)).toThrow(InvalidDurationError);
    expect(() => parseDuration(text)).toThrow(message);
  });

  test('non-text is rejected with what was given', () => {
    expect(() => parseDuration(3600)).toThrow('expected a duration such as "30m", "1h" or "7d", got 3600');
    expect(() => parseDuration(null)).toThrow('got null');
  });
});

describe('formatDuration', () => {
  test.each([
    [3_600_000, '1h'],
    [5_400_000, '1h30m'],
    [604_800_000, '1w'],
    [90_000, '1m30s'],
    [250, '250ms'],
    [0, '0ms'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  test('round-trips through parseDuration', () => {
    for (const text of ['1h30m', '2w3d', '45s', '1d1h1m1s']) expect(formatDuration(parseDuration(text))).toBe(text);
  });
});
