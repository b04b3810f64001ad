// Countdown timers in emails ({{countdown until=…}}): the time left until a deadline, the frame that shows it (four
// boxes DD HH MM SS with labels, drawn with a small bitmap font into an indexed pixel buffer in the brand's colours),
// the "offer ended" frame, the sentence that states the deadline (alt text and plain-text part), and the signed token
// that carries the deadline in the image's URL. Pure: the caller passes the clock, the secret and the colours;
// core/countdown-gif turns frames into GIFs.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { BadInputError } from './errors';

/** What is left until a deadline, as the boxes show it. */
export interface TimeLeft {
  days: number;
  hours: number;
  minutes: number;
  seconds: number;
  /** The deadline has passed (or is now): every field is 0. */
  ended: boolean;
}

/** The time left from `now` until `untilMs` (epoch ms), in whole seconds rounded down: 59.9 s left shows 00:00:00:59. */
export function timeLeft(now: number, untilMs: number): TimeLeft {
  const ms = untilMs - now;
  if (!(ms > 0)) return { days: 0, hours: 0, minutes: 0, seconds: 0, ended: true };
  const total = Math.floor(ms / 1000);
  return { days: Math.floor(total / 86_400), hours: Math.floor(total / 3600) % 24, minutes: Math.floor(total / 60) % 60, seconds: total % 60, ended: false };
}

/** The brand's colours, as hex: `#RRGGBB` (or `#RGB`). */
export interface CountdownStyle {
  /** Around and behind everything. */
  background: string;
  /** The digits, and the "offer ended" text. */
  text: string;
  /** Labels, separators, and the zeros of an ended countdown; the boxes are a tint of it. */
  muted: string;
}

/** The colours a countdown has when the brand gives none. */
export const DEFAULT_COUNTDOWN_STYLE: CountdownStyle = { background: '#FFFFFF', text: '#1F2328', muted: '#57606A' };

export type Rgb = [number, number, number];

/** Palette indexes of a frame's pixels. */
export const COUNTDOWN_COLOURS = { background: 0, box: 1, text: 2, muted: 3 } as const;

const HEX_COLOUR = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i;
/** How much of the muted colour tints the boxes over the background. */
const BOX_TINT = 0.12;

function parseHex(value: unknown, field: keyof CountdownStyle): Rgb {
  if (typeof value !== 'string' || !HEX_COLOUR.test(value.trim())) {
    throw new BadInputError(`a countdown colour is a hex colour such as "#1F2328", got ${JSON.stringify(value)}`, `countdown style ${field}`);
  }
  let hex = value.trim().slice(1);
  if (hex.length === 3) hex = [...hex].map((c) => c + c).join('');
  return [parseInt(hex.slice(0, 2), 16), parseInt(hex.slice(2, 4), 16), parseInt(hex.slice(4, 6), 16)];
}

/**
 * The frame palette in COUNTDOWN_COLOURS order: background, box (the background tinted with the muted colour), text,
 * muted. Throws BadInputError naming the colour that is not hex.
 */
export function countdownPalette(style: CountdownStyle): Rgb[] {
  const background = parseHex(style.background, 'background');
  const text = parseHex(style.text, 'text');
  const muted = parseHex(style.muted, 'muted');
  const box = background.map((channel, i) => Math.round(channel + (muted[i]! - channel) * BOX_TINT)) as Rgb;
  return [background, box, text, muted];
}

/**
 * The bitmap font: each glyph is 7 rows of 5 columns, '#' drawn and '.' not. Exported so tests can read drawn text
 * back from pixels. No glyph has an empty column between drawn ones, so glyphs separate at blank columns. The digit 0
 * and the letter O share a shape: numbers and words are drawn in different places, never mixed.
 */
export const COUNTDOWN_FONT: Readonly<Record<string, readonly string[]>> = {
  '0': ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['####.', '....#', '....#', '.###.', '....#', '....#', '####.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['.###.', '#....', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '....#', '.###.'],
  ':': ['.....', '..#..', '..#..', '.....', '..#..', '..#..', '.....'],
  ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  C: ['.####', '#....', '#....', '#....', '#....', '#....', '.####'],
  D: ['####.', '#...#', '#...#', '#...#', '#...#', '#...#', '####.'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  F: ['#####', '#....', '#....', '####.', '#....', '#....', '#....'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  I: ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  M: ['#...#', '##.##', '#.#.#', '#.#.#', '#...#', '#...#', '#...#'],
  N: ['#...#', '##..#', '#.#.#', '#..##', '#...#', '#...#', '#...#'],
  O: ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  R: ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
  S: ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
  U: ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  Y: ['#...#', '#...#', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
};

export const GLYPH_COLUMNS = 5;
export const GLYPH_ROWS = 7;

/** Frame size in pixels: the image is shown at this width (or narrower, scaled) in the email. */
export const COUNTDOWN_WIDTH = 480;
export const COUNTDOWN_HEIGHT = 120;

/** The four boxes: where they are, and the labels under them. */
const BOX = { top: 8, width: 96, height: 80, gap: 24, left: 12 } as const;
const LABELS = ['DAYS', 'HOURS', 'MINS', 'SECS'] as const;
const DIGIT_SCALE = 6;
/** Days past 99 take a third digit, drawn smaller to fit the box; past 999 the box shows 999. */
const SMALL_DIGIT_SCALE = 4;
const MAX_DAYS_SHOWN = 999;
const LABEL_SCALE = 2;
const LABEL_TOP = BOX.top + BOX.height + 8;
/** The text of the frame an ended countdown shows, over its zeros. */
export const ENDED_TEXT = 'OFFER ENDED';
const ENDED_SCALE = 5;
const ENDED_ZEROS = '00:00:00:00';
const ENDED_ZEROS_SCALE = 3;

/** Width in pixels of `text` drawn at `scale`: glyphs one scaled column apart. */
function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_COLUMNS + 1) - 1) * scale;
}

function fillRect(pixels: Uint8Array, x: number, y: number, width: number, height: number, colour: number): void {
  for (let row = Math.max(0, y); row < Math.min(COUNTDOWN_HEIGHT, y + height); row++) {
    pixels.fill(colour, row * COUNTDOWN_WIDTH + Math.max(0, x), row * COUNTDOWN_WIDTH + Math.min(COUNTDOWN_WIDTH, x + width));
  }
}

/** Draws `text` with its top-left corner at (x, y), each font cell a `scale`×`scale` square. */
function drawText(pixels: Uint8Array, text: string, x: number, y: number, scale: number, colour: number): void {
  let left = x;
  for (const char of text) {
    const glyph = COUNTDOWN_FONT[char];
    if (!glyph) throw new Error(`the countdown font has no glyph for ${JSON.stringify(char)}`);
    glyph.forEach((row, r) => {
      for (let c = 0; c < GLYPH_COLUMNS; c++) if (row[c] === '#') fillRect(pixels, left + c * scale, y + r * scale, scale, scale, colour);
    });
    left += (GLYPH_COLUMNS + 1) * scale;
  }
}

function drawCentred(pixels: Uint8Array, text: string, centreX: number, centreY: number, scale: number, colour: number): void {
  drawText(pixels, text, Math.round(centreX - textWidth(text, scale) / 2), Math.round(centreY - (GLYPH_ROWS * scale) / 2), scale, colour);
}

function twoDigits(n: number): string {
  return String(n).padStart(2, '0');
}

/** A running countdown: four boxes with DD HH MM SS, colons between them, labels under them. */
export function drawCountdownFrame(left: TimeLeft): Uint8Array {
  const pixels = new Uint8Array(COUNTDOWN_WIDTH * COUNTDOWN_HEIGHT);
  const days = Math.min(left.days, MAX_DAYS_SHOWN);
  const values = [days >= 100 ? String(days) : twoDigits(days), twoDigits(left.hours), twoDigits(left.minutes), twoDigits(left.seconds)];
  const middleY = BOX.top + BOX.height / 2;
  values.forEach((value, i) => {
    const x = BOX.left + i * (BOX.width + BOX.gap);
    fillRect(pixels, x, BOX.top, BOX.width, BOX.height, COUNTDOWN_COLOURS.box);
    drawCentred(pixels, value, x + BOX.width / 2, middleY, value.length > 2 ? SMALL_DIGIT_SCALE : DIGIT_SCALE, COUNTDOWN_COLOURS.text);
    drawCentred(pixels, LABELS[i]!, x + BOX.width / 2, LABEL_TOP + (GLYPH_ROWS * LABEL_SCALE) / 2, LABEL_SCALE, COUNTDOWN_COLOURS.muted);
    if (i < values.length - 1) drawCentred(pixels, ':', x + BOX.width + BOX.gap / 2, middleY, DIGIT_SCALE, COUNTDOWN_COLOURS.muted);
  });
  return pixels;
}

/** The frame an ended countdown shows for good: "OFFER ENDED" over 00:00:00:00. */
export function drawEndedFrame(): Uint8Array {
  const pixels = new Uint8Array(COUNTDOWN_WIDTH * COUNTDOWN_HEIGHT);
  drawCentred(pixels, ENDED_TEXT, COUNTDOWN_WIDTH / 2, 38, ENDED_SCALE, COUNTDOWN_COLOURS.text);
  drawCentred(pixels, ENDED_ZEROS, COUNTDOWN_WIDTH / 2, 84, ENDED_ZEROS_SCALE, COUNTDOWN_COLOURS.muted);
  return pixels;
}

// The deadline in the image's URL. Format: base64url(JSON {u: deadline epoch ms, v: 1}) "." base64url(HMAC-SHA256).
// The MAC key is derived from the signing secret for this use alone, so no other token kind's MAC is ever a valid
// countdown MAC (or the reverse). The deadline is no personal data, and every email with that deadline shares the
// token; an ended one keeps answering the "offer ended" image, so it needs no expiry.

/** A countdown token was malformed, forged or altered. The endpoint answers 404. */
export class InvalidCountdownTokenError extends BadInputError {
  override readonly code = 'invalid_countdown_token';
  override name = 'InvalidCountdownTokenError';
}

const TOKEN_VERSION = 1;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Deadlines a token may carry: from 1970 to the end of year 9999. */
const LATEST_DEADLINE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const macKeys = new Map<string, Buffer>();

function macKey(secret: string): Buffer {
  let key = macKeys.get(secret);
  if (!key) {
    if (macKeys.size >= 16) macKeys.clear();
    macKeys.set(secret, (key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), 'microflows countdown token v1 hmac-sha256', 32))));
  }
  return key;
}

function mac(secret: string, payloadSegment: string): string {
  return createHmac('sha256', macKey(secret)).update(payloadSegment, 'latin1').digest('base64url');
}

function isDeadline(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= LATEST_DEADLINE_MS;
}

export function signCountdownToken(secret: string, untilMs: number): string {
  if (typeof secret !== 'string' || secret === '') throw new BadInputError('the signing secret is empty: set MICROFLOWS_SIGNING_SECRET', 'signingSecret');
  if (!isDeadline(untilMs)) throw new BadInputError(`a countdown deadline is whole epoch milliseconds between 1970 and 9999, got ${String(untilMs)}`, 'until');
  const segment = Buffer.from(JSON.stringify({ u: untilMs, v: TOKEN_VERSION }), 'utf8').toString('base64url');
  return `${segment}.${mac(secret, segment)}`;
}

/** The deadline (epoch ms) a token carries; throws InvalidCountdownTokenError unless it is unaltered and signed with `secret`. */
export function verifyCountdownToken(secret: string, token: string): number {
  const parts = token.split('.');
  if (parts.length !== 2 || !BASE64URL.test(parts[0]!) || !BASE64URL.test(parts[1]!)) {
    throw new InvalidCountdownTokenError('malformed countdown token: expected <payload>.<signature> in base64url');
  }
  const [segment, given] = parts as [string, string];
  // The MAC text is compared, not decoded bytes: decoding ignores a last character's spare bits.
  const expected = Buffer.from(mac(secret, segment), 'utf8');
  const actual = Buffer.from(given, 'utf8');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new InvalidCountdownTokenError("the countdown token's signature does not match: it was altered or signed with another secret");
  }
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCountdownTokenError('malformed countdown token: the payload is not JSON');
  }
  const fields = payload as { u?: unknown; v?: unknown } | null;
  if (typeof fields !== 'object' || fields === null || fields.v !== TOKEN_VERSION || !isDeadline(fields.u)) {
    throw new InvalidCountdownTokenError(`malformed countdown token: expected {"u": <deadline ms>, "v": ${TOKEN_VERSION}}`);
  }
  return fields.u;
}

/** The countdown image's address: `${baseUrl}/c/countdown/<token>.gif`. */
export function countdownImageUrl(baseUrl: string, secret: string, untilMs: number): string {
  return `${baseUrl.replace(/\/+$/, '')}/c/countdown/${signCountdownToken(secret, untilMs)}.gif`;
}

/**
 * A deadline as templates give it: epoch milliseconds (a number, or a string of digits) or an ISO 8601 time with
 * its offset ("2026-12-24T18:00:00Z"). undefined for anything else, including a date without a time zone, whose
 * moment would depend on the server's zone.
 */
export function parseDeadline(value: unknown): number | undefined {
  if (typeof value === 'number') return isDeadline(value) ? value : undefined;
  if (value instanceof Date) return isDeadline(value.getTime()) ? value.getTime() : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return isDeadline(Number(text)) ? Number(text) : undefined;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) return undefined;
  const ms = Date.parse(text);
  return isDeadline(ms) ? ms : undefined;
}

const deadlineFormats = new Map<string, Intl.DateTimeFormat>();

function deadlineFormat(locale: string, timeZone: string | null): Intl.DateTimeFormat {
  const key = `${locale}|${timeZone ?? ''}`;
  let format = deadlineFormats.get(key);
  if (!format) {
    const options: Intl.DateTimeFormatOptions = { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' };
    try {
      format = new Intl.DateTimeFormat(locale, { ...options, timeZone: timeZone ?? 'UTC' });
    } catch {
      // A bad locale or zone from a profile gives the deadline in UTC, in English, rather than no sentence.
      format = new Intl.DateTimeFormat('en-US', { ...options, timeZone: 'UTC' });
    }
    if (deadlineFormats.size >= 1000) deadlineFormats.clear();
    deadlineFormats.set(key, format);
  }
  return format;
}

/**
 * The sentence that states the deadline in the reader's locale and time zone, e.g. "Offer ends Thursday, 24 December
 * 2026 at 18:00 GMT": the image's alt text, and what the plain-text part shows. `label` leads it.
 */
export function countdownSentence(untilMs: number, label: string, locale: string, timeZone: string | null): string {
  return `${label} ${deadlineFormat(locale, timeZone).format(untilMs)}`;
}
