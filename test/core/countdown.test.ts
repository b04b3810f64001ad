// Countdown timers: the time-left breakdown (against a second-by-second reference), the signed deadline token (forged,
// altered, malformed and other-kind tokens refused), the drawn frames read back from their pixels with the font table,
// and the GIFs: frame count, delays, looping, every composed frame's time, the ended image, and the frame cache.
import { createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { CountdownGifs } from '../../core/countdown-gif';
import {
  COUNTDOWN_FONT,
  COUNTDOWN_HEIGHT,
  COUNTDOWN_WIDTH,
  DEFAULT_COUNTDOWN_STYLE,
  GLYPH_COLUMNS,
  GLYPH_ROWS,
  InvalidCountdownTokenError,
  countdownImageUrl,
  countdownPalette,
  countdownSentence,
  drawCountdownFrame,
  drawEndedFrame,
  parseDeadline,
  signCountdownToken,
  timeLeft,
  verifyCountdownToken,
  type Rgb,
  type TimeLeft,
} from '../../core/countdown';
import { signOpenToken, tokenExpiry } from '../../core/tracking';
import { CAPITALS, DIGITS, decodeGif, indexedToRgba, readLines } from '../support/countdown-reader';

const SECRET = 'countdown-test-secret';
const SECOND = 1000;
const DAY = 86_400_000;
const palette = countdownPalette(DEFAULT_COUNTDOWN_STYLE);
const [, , TEXT, MUTED] = palette as [Rgb, Rgb, Rgb, Rgb];

/** DD HH MM SS as the boxes show it (days: at least two digits, at most 999). */
function shown(left: TimeLeft): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(Math.min(left.days, 999))} ${two(left.hours)} ${two(left.minutes)} ${two(left.seconds)}`;
}

/** The time left by counting: whole days, then hours, minutes and seconds, one unit at a time off the total. */
function referenceTimeLeft(now: number, until: number): TimeLeft {
  if (until <= now) return { days: 0, hours: 0, minutes: 0, seconds: 0, ended: true };
  let rest = until - now;
  const take = (unit: number) => {
    let count = 0;
    while (rest >= unit) {
      rest -= unit;
      count++;
    }
    return count;
  };
  const days = take(DAY);
  const hours = take(3_600_000);
  const minutes = take(60_000);
  const seconds = take(SECOND);
  return { days, hours, minutes, seconds, ended: false };
}

describe('the time left', () => {
  test.each([
    [0, 1, { days: 0, hours: 0, minutes: 0, seconds: 0, ended: false }],
    [0, 999, { days: 0, hours: 0, minutes: 0, seconds: 0, ended: false }],
    [0, 59_999, { days: 0, hours: 0, minutes: 0, seconds: 59, ended: false }],
    [0, DAY, { days: 1, hours: 0, minutes: 0, seconds: 0, ended: false }],
    [500, DAY + 3_600_000 * 2 + 60_000 * 3 + 4_500, { days: 1, hours: 2, minutes: 3, seconds: 4, ended: false }],
    [5_000, 5_000, { days: 0, hours: 0, minutes: 0, seconds: 0, ended: true }],
    [6_000, 5_000, { days: 0, hours: 0, minutes: 0, seconds: 0, ended: true }],
  ])('from %i until %i', (now, until, expected) => {
    expect(timeLeft(now, until)).toEqual(expected);
  });

  test('agrees with counting the units off one at a time, for any now and deadline', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }), fc.integer({ min: -DAY, max: 40 * DAY }), (now, offset) => {
        expect(timeLeft(now, now + offset)).toEqual(referenceTimeLeft(now, now + offset));
      }),
    );
  });
});

describe('the deadline token', () => {
  const until = Date.UTC(2026, 11, 24, 18);

  test('carries the deadline and nothing else readable', () => {
    const token = signCountdownToken(SECRET, until);
    expect(verifyCountdownToken(SECRET, token)).toBe(until);
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'))).toEqual({ u: until, v: 1 });
    expect(countdownImageUrl('https://mail.shop.example/', SECRET, until)).toBe(`https://mail.shop.example/c/countdown/${token}.gif`);
  });

  test('a token signed with another secret is refused', () => {
    expect(() => verifyCountdownToken(SECRET, signCountdownToken('another-secret', until))).toThrow(InvalidCountdownTokenError);
  });

  test('a payload changed to another deadline, keeping the signature, is refused', () => {
    const [, signature] = signCountdownToken(SECRET, until).split('.');
    const later = Buffer.from(JSON.stringify({ u: until + 7 * DAY, v: 1 })).toString('base64url');
    expect(() => verifyCountdownToken(SECRET, `${later}.${signature}`)).toThrow(/signature does not match/);
  });

  test('any one character changed anywhere in the token is refused', () => {
    const token = signCountdownToken(SECRET, until);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    fc.assert(
      fc.property(fc.nat({ max: token.length - 1 }), fc.constantFrom(...alphabet), (at, char) => {
        fc.pre(token[at] !== char);
        const altered = token.slice(0, at) + char + token.slice(at + 1);
        expect(() => verifyCountdownToken(SECRET, altered)).toThrow(InvalidCountdownTokenError);
      }),
    );
  });

  test.each([
    ['empty', ''],
    ['no signature', 'eyJ1IjoxLCJ2IjoxfQ'],
    ['three parts', 'a.b.c'],
    ['not base64url', 'eyJ1Ijox!.abc'],
    ['a tracking open token', signOpenToken(SECRET, { customerId: 'c1', deliveryKey: 'd1', flowId: 'f', stepId: 's' }, tokenExpiry(0))],
  ])('a malformed token is refused: %s', (_what, token) => {
    expect(() => verifyCountdownToken(SECRET, token)).toThrow(InvalidCountdownTokenError);
  });

  test('a correctly signed payload that is not a deadline is refused (the verifier checks what it reads)', () => {
    // Signed from the definition: HMAC-SHA256 of the payload segment, keyed by HKDF of the secret for this use.
    const key = hkdfSync('sha256', Buffer.from(SECRET), Buffer.alloc(0), 'microflows countdown token v1 hmac-sha256', 32);
    const signed = (payload: string) => {
      const segment = Buffer.from(payload).toString('base64url');
      return `${segment}.${createHmac('sha256', Buffer.from(key)).update(segment).digest('base64url')}`;
    };
    expect(verifyCountdownToken(SECRET, signed(JSON.stringify({ u: until, v: 1 })))).toBe(until);
    for (const payload of ['{"u":-1,"v":1}', '{"u":"1798135200000","v":1}', '{"u":1.5,"v":1}', `{"u":${until},"v":2}`, `[${until},1]`, 'null', 'not json']) {
      expect(() => verifyCountdownToken(SECRET, signed(payload))).toThrow(/malformed countdown token/);
    }
  });

  test('signing refuses what is not a deadline, and an empty secret', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER]) expect(() => signCountdownToken(SECRET, bad)).toThrow(/whole epoch milliseconds/);
    expect(() => signCountdownToken('', until)).toThrow(/signing secret is empty/);
  });
});

describe('deadlines as templates give them', () => {
  test.each([
    ['2026-12-24T18:00:00Z', Date.UTC(2026, 11, 24, 18)],
    ['2026-12-24T19:00:00+01:00', Date.UTC(2026, 11, 24, 18)],
    ['2026-12-24T18:00Z', Date.UTC(2026, 11, 24, 18)],
    [Date.UTC(2026, 11, 24, 18), Date.UTC(2026, 11, 24, 18)],
    [String(Date.UTC(2026, 11, 24, 18)), Date.UTC(2026, 11, 24, 18)],
  ])('%p is read', (value, expected) => {
    expect(parseDeadline(value)).toBe(expected);
  });

  test.each([['2026-12-24'], ['2026-12-24T18:00:00'], ['next friday'], [''], [null], [undefined], [1.5], [-5], [{}], [true]])('%p is not a deadline', (value) => {
    expect(parseDeadline(value)).toBeUndefined();
  });

  test("the sentence states the deadline in the reader's locale and time zone", () => {
    const until = Date.UTC(2026, 11, 24, 18);
    expect(countdownSentence(until, 'Offer ends', 'en-GB', 'Europe/London')).toBe('Offer ends Thursday, 24 December 2026 at 18:00 GMT');
    expect(countdownSentence(until, 'Offer ends', 'en-US', 'America/New_York')).toBe('Offer ends Thursday, December 24, 2026 at 1:00 PM EST');
    expect(countdownSentence(until, 'Angebot endet', 'de-DE', 'Europe/Berlin')).toBe('Angebot endet Donnerstag, 24. Dezember 2026 um 19:00 MEZ');
    // A bad zone from a profile still gives a sentence, in UTC.
    expect(countdownSentence(until, 'Offer ends', 'en-US', 'Mars/Olympus')).toBe('Offer ends Thursday, December 24, 2026 at 6:00 PM UTC');
  });
});

describe('the font and the palette', () => {
  test('every glyph is 7 rows of 5 columns, with no blank column between drawn ones (glyphs split at blank columns)', () => {
    for (const [char, rows] of Object.entries(COUNTDOWN_FONT)) {
      expect({ char, rows: rows.length }).toEqual({ char, rows: GLYPH_ROWS });
      for (const row of rows) expect({ char, row, ok: row.length === GLYPH_COLUMNS && /^[#.]+$/.test(row) }).toEqual({ char, row, ok: true });
      const used = [...Array(GLYPH_COLUMNS).keys()].map((c) => rows.some((row) => row[c] === '#'));
      const first = used.indexOf(true);
      const last = used.lastIndexOf(true);
      if (first !== -1) expect({ char, gap: used.slice(first, last + 1).includes(false) }).toEqual({ char, gap: false });
    }
  });

  test('digits differ from each other, and so do letters (0 and O share a shape: they are never drawn in one place)', () => {
    const distinct = (chars: string) => new Set([...chars].map((c) => COUNTDOWN_FONT[c]!.join('/'))).size;
    const digits = [...DIGITS].join('');
    const letters = Object.keys(COUNTDOWN_FONT).filter((c) => /[A-Z]/.test(c)).join('');
    expect(distinct(digits)).toBe(digits.length);
    expect(distinct(letters)).toBe(letters.length);
    for (const letter of 'DAYSHOURMINECF') expect(COUNTDOWN_FONT[letter]).toBeDefined();
  });

  test('the palette is the brand colours, with the boxes a tint of the muted colour; #RGB works; a bad colour is named', () => {
    expect(countdownPalette({ background: '#fff', text: '#000000', muted: '#FF0000' })).toEqual([
      [255, 255, 255],
      [255, 224, 224],
      [0, 0, 0],
      [255, 0, 0],
    ]);
    expect(() => countdownPalette({ ...DEFAULT_COUNTDOWN_STYLE, muted: 'grey' })).toThrow('countdown style muted: a countdown colour is a hex colour such as "#1F2328", got "grey"');
    expect(() => countdownPalette({ ...DEFAULT_COUNTDOWN_STYLE, text: '#12345' })).toThrow(/countdown style text/);
  });
});

describe('drawing', () => {
  const read = (pixels: Uint8Array, colour: Rgb, alphabet: string) => readLines(indexedToRgba(pixels, COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT, palette), colour, alphabet);

  test('a running countdown reads back as DD HH MM SS over DAYS HOURS MINS SECS', () => {
    const left = timeLeft(0, 3 * DAY + 4 * 3_600_000 + 5 * 60_000 + 6 * SECOND);
    const pixels = drawCountdownFrame(left);
    expect(pixels).toHaveLength(COUNTDOWN_WIDTH * COUNTDOWN_HEIGHT);
    expect(read(pixels, TEXT, DIGITS)).toEqual(['03 04 05 06']);
    // Muted: the colons' dots (two rows of them), then the labels.
    expect(read(pixels, MUTED, CAPITALS).at(-1)).toBe('DAYS HOURS MINS SECS');
  });

  test('any time left reads back as drawn', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1200 }), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 }), (days, hours, minutes, seconds) => {
        const left = { days, hours, minutes, seconds, ended: false };
        expect(read(drawCountdownFrame(left), TEXT, DIGITS)).toEqual([shown(left)]);
      }),
      { numRuns: 60 },
    );
  });

  test('the ended frame reads OFFER ENDED over 00:00:00:00', () => {
    const pixels = drawEndedFrame();
    expect(read(pixels, TEXT, CAPITALS)).toEqual(['OFFER ENDED']);
    expect(read(pixels, MUTED, `${DIGITS}:`)).toEqual(['00:00:00:00']);
  });
});

describe('GIFs and the frame cache', () => {
  const minute = 60_000;
  /** A moment 17.25 s into a minute. */
  const now = Date.UTC(2026, 11, 20, 9, 30) + 17_250;
  const until = Date.UTC(2026, 11, 24, 18);
  const framesTime = (gif: Uint8Array, colour: Rgb = TEXT) => decodeGif(gif).frames.map((frame) => readLines(frame.image, colour, DIGITS).join('|'));

  test('an open gets 60 one-second frames from its second, looping, each showing the time left at its second', () => {
    const gifs = new CountdownGifs();
    const decoded = decodeGif(gifs.gif(until, now, DEFAULT_COUNTDOWN_STYLE));
    expect([decoded.width, decoded.height]).toEqual([COUNTDOWN_WIDTH, COUNTDOWN_HEIGHT]);
    expect(decoded.frames).toHaveLength(60);
    expect(decoded.loopCount).toBe(0);
    expect(new Set(decoded.frames.map((f) => f.delayCs))).toEqual(new Set([100]));
    // Whole first frame, then changes only, each kept for the next to draw over.
    expect(decoded.frames.map((f) => f.transparent)).toEqual([false, ...Array(59).fill(true)]);
    expect(new Set(decoded.frames.map((f) => f.disposal))).toEqual(new Set([1]));
    const second = Math.floor(now / SECOND) * SECOND;
    expect(decoded.frames.map((frame) => readLines(frame.image, TEXT, DIGITS).join('|'))).toEqual(decoded.frames.map((_f, k) => shown(timeLeft(second + k * SECOND, until))));
  });

  test('when the deadline falls inside the minute, the frames end on 00 00 00 00 and play once', () => {
    const gifs = new CountdownGifs();
    const deadline = now + 12_400;
    const decoded = decodeGif(gifs.gif(deadline, now, DEFAULT_COUNTDOWN_STYLE));
    // From the frame at 17 s (12.65 s left, showing 12) down to the one showing 0.
    expect(decoded.loopCount).toBeNull();
    expect(decoded.frames.map((frame) => readLines(frame.image, TEXT, DIGITS).join('|'))).toEqual([...Array(13).keys()].map((k) => `00 00 00 ${String(12 - k).padStart(2, '0')}`));
  });

  test('past the deadline: one static frame reading OFFER ENDED, in the style given, cached', () => {
    const gifs = new CountdownGifs();
    const style = { background: '#101010', text: '#FAFAFA', muted: '#808080' };
    const gif = gifs.gif(until, until, style);
    const decoded = decodeGif(gif);
    expect(decoded.frames).toHaveLength(1);
    expect(decoded.loopCount).toBeNull();
    expect(readLines(decoded.frames[0]!.image, [250, 250, 250], CAPITALS)).toEqual(['OFFER ENDED']);
    expect(readLines(decoded.frames[0]!.image, [128, 128, 128], `${DIGITS}:`)).toEqual(['00:00:00:00']);
    const drawn = gifs.stats.framesDrawn;
    expect(gifs.gif(until, until + DAY, style)).toEqual(gif);
    expect(gifs.stats.framesDrawn).toBe(drawn);
  });

  test('a repeated open in the same second only concatenates; another second of the minute encodes its first frame alone', () => {
    const gifs = new CountdownGifs();
    const first = gifs.gif(until, now, DEFAULT_COUNTDOWN_STYLE);
    expect(gifs.stats.coldOpens).toBe(1);
    const { framesDrawn, framesEncoded } = gifs.stats;
    // 17 s in: this minute's and the next minute's frames, plus the first, whole frame.
    expect(framesEncoded).toBe(121);
    expect(gifs.gif(until, now + 500, DEFAULT_COUNTDOWN_STYLE)).toEqual(first);
    expect(gifs.stats).toMatchObject({ framesDrawn, framesEncoded, warmOpens: 1, coldOpens: 1 });
    const later = gifs.gif(until, now + 20 * SECOND, DEFAULT_COUNTDOWN_STYLE);
    expect(gifs.stats).toMatchObject({ framesDrawn: framesDrawn + 1, framesEncoded: framesEncoded + 1, warmOpens: 2, coldOpens: 1 });
    expect(framesTime(later)[0]).toBe(shown(timeLeft(Math.floor(now / SECOND) * SECOND + 20 * SECOND, until)));
  });

  test('another style gets its own frames, in its colours', () => {
    const gifs = new CountdownGifs();
    gifs.gif(until, now, DEFAULT_COUNTDOWN_STYLE);
    const encoded = gifs.stats.framesEncoded;
    const branded = gifs.gif(until, now, { background: '#000000', text: '#00FF00', muted: '#FFFFFF' });
    expect(gifs.stats.framesEncoded).toBeGreaterThan(encoded);
    expect(framesTime(branded, [0, 255, 0])[0]).toBe(shown(timeLeft(Math.floor(now / SECOND) * SECOND, until)));
  });

  test('the cache keeps at most maxMinutes minutes, dropping the least recently used', () => {
    const gifs = new CountdownGifs({ maxMinutes: 3 });
    const start = Date.UTC(2026, 11, 20, 9, 30); // second 0: one minute per open
    gifs.gif(until, start, DEFAULT_COUNTDOWN_STYLE);
    gifs.gif(until, start + minute, DEFAULT_COUNTDOWN_STYLE);
    gifs.gif(until, start + 2 * minute, DEFAULT_COUNTDOWN_STYLE);
    gifs.gif(until, start, DEFAULT_COUNTDOWN_STYLE); // the first minute is used again: now the most recent
    expect(gifs.stats.coldOpens).toBe(3);
    gifs.gif(until, start + 3 * minute, DEFAULT_COUNTDOWN_STYLE); // drops start + 1 minute, the least recent
    expect(gifs.cachedMinutes).toBe(3);
    gifs.gif(until, start, DEFAULT_COUNTDOWN_STYLE);
    expect(gifs.stats.coldOpens).toBe(4);
    gifs.gif(until, start + minute, DEFAULT_COUNTDOWN_STYLE);
    expect(gifs.stats.coldOpens).toBe(5);
  });

  test('a bad style is refused with the colour named', () => {
    expect(() => new CountdownGifs().gif(until, now, { ...DEFAULT_COUNTDOWN_STYLE, background: 'white' })).toThrow('countdown style background');
  });
});
