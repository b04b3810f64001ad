// Parses ingest bodies as strict RFC 8259 JSON and refuses what JSON.parse lets through silently (invalid UTF-8,
// duplicate keys, numbers that lose precision, nesting deep enough to hurt, text no store keeps as sent: U+0000 and
// lone surrogates), saying what to fix and where.
import { BadEventError } from './errors';

export interface StrictJsonOptions {
  /** Objects and arrays nested deeper than this are refused; the outermost one is level 1. Default 32. */
  maxDepth?: number;
  /** What the bytes are, for messages ("the body is not valid JSON: …"). Default 'the body'. */
  label?: string;
}

export const DEFAULT_MAX_DEPTH = 32;

// Fatal, so a bad byte is an error rather than a U+FFFD that would be stored as if the client had sent it.
// ignoreBOM is left false: the decoder drops one leading BOM, which RFC 8259 allows parsers to ignore.
const utf8 = new TextDecoder('utf-8', { fatal: true });

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LOWER_E = 0x65;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

/**
 * Parses UTF-8 bytes as one JSON value and returns what JSON.parse would return for them, or throws
 * BadEventError saying what is wrong and where: a byte offset for bad UTF-8, line and column for syntax,
 * and the JSON path (as `field`) for duplicate keys, nesting deeper than `maxDepth`, numbers that are
 * not finite or are integers beyond Number.MAX_SAFE_INTEGER, and strings holding \u0000 or a lone surrogate.
 */
export function parseStrictJson(bytes: Uint8Array, options: StrictJsonOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!(maxDepth >= 1) || (maxDepth !== Infinity && !Number.isInteger(maxDepth))) {
    throw new RangeError(`maxDepth must be a positive integer or Infinity, got ${maxDepth}`);
  }
  const label = options.label ?? 'the body';
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new BadEventError(`${label} is not valid UTF-8: ${describeInvalidUtf8(bytes)}; send the text encoded as UTF-8`);
  }
  return new StrictJsonParser(text, maxDepth, label).parse();
}

type Container = Record<string, unknown> | unknown[];

/**
 * A single pass with an explicit stack instead of recursion, so no input can overflow the call stack whatever
 * maxDepth is. The stack also gives the JSON path of an error without tracking it for every value.
 */
class StrictJsonParser {
  /** Where the string or number read last ended (one past its last character). */
  private end = 0;
  /** containers[i] is the open object or array at nesting level i (0 = outermost). */
  private readonly containers: Container[] = [];
  /** keys[i] is the key whose value is being read in containers[i], when that is an object. */
  private readonly keys: string[] = [];

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    private readonly label: string,
  ) {}

  parse(): unknown {
    const text = this.text;
    const containers = this.containers;
    const keys = this.keys;
    const maxDepth = this.maxDepth;
    let depth = 0;
    let pos = skipWhitespace(text, 0);
    if (pos >= text.length) {
      throw new BadEventError(`${this.label} is empty${text.length > 0 ? ' (only whitespace)' : ''}: send a JSON object`);
    }
    let value: unknown;

    for (;;) {
      // A value starts at `pos`, whitespace already skipped.
      let c = text.charCodeAt(pos);
      if (c === QUOTE) {
        value = this.readString(pos + 1, depth);
        pos = this.end;
      } else if (c === LBRACE) {
        if (depth >= maxDepth) throw this.tooDeep(depth);
        pos = skipWhitespace(text, pos + 1);
        if (text.charCodeAt(pos) === RBRACE) {
          value = {};
          pos++;
        } else {
          const object: Record<string, unknown> = {};
          containers[depth] = object;
          pos = this.readKey(object, depth, pos);
          depth++;
          continue;
        }
      } else if (c === LBRACKET) {
        if (depth >= maxDepth) throw this.tooDeep(depth);
        pos = skipWhitespace(text, pos + 1);
        if (text.charCodeAt(pos) === RBRACKET) {
          value = [];
          pos++;
        } else {
          containers[depth] = [];
          depth++;
          continue;
        }
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        value = this.readNumber(pos, depth);
        pos = this.end;
      } else if (c === 0x74 /* t */ && text.startsWith('true', pos)) {
        value = true;
        pos += 4;
      } else if (c === 0x66 /* f */ && text.startsWith('false', pos)) {
        value = false;
        pos += 5;
      } else if (c === 0x6e /* n */ && text.startsWith('null', pos)) {
        value = null;
        pos += 4;
      } else {
        throw this.unexpected(pos, depth, 'expected a value');
      }

      // The value is complete: add it to its container, and close every container it completes.
      for (;;) {
        pos = skipWhitespace(text, pos);
        if (depth === 0) {
          if (pos < text.length) throw this.unexpected(pos, 0, `expected the end: ${this.label} must hold exactly one JSON value`);
          return value;
        }
        const container = containers[depth - 1]!;
        c = text.charCodeAt(pos);
        if (Array.isArray(container)) {
          container.push(value);
          if (c === COMMA) {
            pos = skipWhitespace(text, pos + 1);
            break;
          }
          if (c !== RBRACKET) throw this.unexpected(pos, depth - 1, "expected ',' or ']'");
        } else {
          const key = keys[depth - 1]!;
          // Assigning "__proto__" would set the prototype; JSON.parse makes it an own property, and so do we.
          if (key === '__proto__') Object.defineProperty(container, key, { value, writable: true, enumerable: true, configurable: true });
          else container[key] = value;
          if (c === COMMA) {
            pos = this.readKey(container, depth - 1, skipWhitespace(text, pos + 1));
            break;
          }
          if (c !== RBRACE) throw this.unexpected(pos, depth - 1, "expected ',' or '}'");
        }
        pos++;
        value = container;
        depth--;
      }
    }
  }

  /** Reads `"key" :` at `pos` for the object at nesting `level`; returns where its value starts. */
  private readKey(object: Record<string, unknown>, level: number, pos: number): number {
    const text = this.text;
    if (text.charCodeAt(pos) !== QUOTE) throw this.unexpected(pos, level, 'expected a key in double quotes');
    const key = this.readString(pos + 1, level);
    if (Object.prototype.hasOwnProperty.call(object, key)) {
      const path = this.pathTo(level);
      throw new BadEventError(`duplicate key ${JSON.stringify(key)}; each key may appear only once in an object`, path);
    }
    this.keys[level] = key;
    pos = skipWhitespace(text, this.end);
    if (text.charCodeAt(pos) !== COLON) throw this.unexpected(pos, level + 1, "expected ':' after the key");
    return skipWhitespace(text, pos + 1);
  }

  /**
   * Reads a string whose opening quote is just before `start`, a value at nesting `levels` or a key of the object
   * there; sets `end` past the closing quote.
   */
  private readString(start: number, levels: number): string {
    const text = this.text;
    const length = text.length;
    for (let i = start; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.end = i + 1;
        return text.slice(start, i);
      }
      if (c === BACKSLASH) return this.readEscapedString(start, i, levels);
      if (c < SPACE) throw this.controlCharacter(i);
    }
    throw this.unterminatedString(start - 1);
  }

  /** The slow path of readString, from the first backslash at `i`: plain runs are sliced, escapes appended. */
  private readEscapedString(start: number, i: number, levels: number): string {
    const text = this.text;
    const length = text.length;
    let out = text.slice(start, i);
    for (;;) {
      // text[i] is a backslash.
      const e = text.charCodeAt(i + 1);
      switch (e) {
        case QUOTE:
          out += '"';
          break;
        case BACKSLASH:
          out += '\\';
          break;
        case SLASH:
          out += '/';
          break;
        case 0x62 /* b */:
          out += '\b';
          break;
        case 0x66 /* f */:
          out += '\f';
          break;
        case 0x6e /* n */:
          out += '\n';
          break;
        case 0x72 /* r */:
          out += '\r';
          break;
        case 0x74 /* t */:
          out += '\t';
          break;
        case 0x75 /* u */: {
          const code = hex4(text, i + 2);
          if (code < 0) throw this.badEscape(i, 'a \\u escape takes exactly 4 hex digits, e.g. \\u00e9');
          // JSON.parse keeps both, but PostgreSQL refuses U+0000 in text, and a lone surrogate has no UTF-8 form: a
          // store would turn it into U+FFFD, so two different ids would become one. Refused, so nothing is stored changed.
          if (code === 0) throw this.unstorable(i, levels, '\\u0000 (the NUL character)', 'remove it; no store keeps it in text');
          if (code >= 0xdc00 && code <= 0xdfff) throw this.unstorable(i, levels, `the lone low surrogate \\u${text.slice(i + 2, i + 6)}`, 'a low surrogate must follow a high one (\\ud800-\\udbff)');
          if (code >= 0xd800 && code <= 0xdbff) {
            const low = text.charCodeAt(i + 6) === BACKSLASH && text.charCodeAt(i + 7) === 0x75 /* u */ ? hex4(text, i + 8) : -1;
            if (low < 0xdc00 || low > 0xdfff) throw this.unstorable(i, levels, `the lone high surrogate \\u${text.slice(i + 2, i + 6)}`, 'follow it with its low surrogate (\\udc00-\\udfff), or send the character as UTF-8');
            out += String.fromCharCode(code, low);
            i += 10;
            break;
          }
          out += String.fromCharCode(code);
          i += 4;
          break;
        }
        default:
          if (i + 1 >= length) throw this.unterminatedString(start - 1);
          throw this.badEscape(i, 'the escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX');
      }
      i += 2;
      const run = i;
      for (;;) {
        if (i >= length) throw this.unterminatedString(start - 1);
        const c = text.charCodeAt(i);
        if (c === QUOTE) {
          this.end = i + 1;
          return run === i ? out : out + text.slice(run, i);
        }
        if (c === BACKSLASH) break;
        if (c < SPACE) throw this.controlCharacter(i);
        i++;
      }
      if (run !== i) out += text.slice(run, i);
    }
  }

  /** Reads a number at `start` (a '-' or digit) at nesting `depth`; sets `end` past it. */
  private readNumber(start: number, depth: number): number {
    const text = this.text;
    let i = start;
    let c = text.charCodeAt(i);
    const negative = c === MINUS;
    if (negative) c = text.charCodeAt(++i);
    const digitsStart = i;
    // Accumulated on the way: exact for up to 15 digits, which saves Number() on the common small integer.
    let integer = 0;
    if (c === ZERO) {
      c = text.charCodeAt(++i);
      if (c >= ZERO && c <= NINE) throw this.unexpected(i, depth, 'a JSON number has no leading zeros: write 7, not 07, or send it as a string');
    } else if (c > ZERO && c <= NINE) {
      do {
        integer = integer * 10 + (c - ZERO);
        c = text.charCodeAt(++i);
      } while (c >= ZERO && c <= NINE);
    } else {
      throw this.unexpected(i, depth, "expected a digit after '-'");
    }
    const digits = i - digitsStart;
    let isInteger = true;
    if (c === DOT) {
      isInteger = false;
      c = text.charCodeAt(++i);
      if (!(c >= ZERO && c <= NINE)) throw this.unexpected(i, depth, "expected a digit after the decimal point: write 1.0 or 1, not 1.");
      do c = text.charCodeAt(++i);
      while (c >= ZERO && c <= NINE);
    }
    if (c === LOWER_E || c === UPPER_E) {
      isInteger = false;
      c = text.charCodeAt(++i);
      if (c === PLUS || c === MINUS) c = text.charCodeAt(++i);
      if (!(c >= ZERO && c <= NINE)) throw this.unexpected(i, depth, 'expected a digit in the exponent, e.g. 1e6');
      do c = text.charCodeAt(++i);
      while (c >= ZERO && c <= NINE);
    }
    this.end = i;
    if (isInteger && digits <= 15) return negative ? -integer : integer;
    const value = Number(text.slice(start, i));
    if (!Number.isFinite(value)) {
      throw new BadEventError(`${abbreviate(text.slice(start, i))} is too large for a 64-bit float; send it as a string`, this.pathTo(depth));
    }
    if (isInteger && Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new BadEventError(
        `${abbreviate(text.slice(start, i))} is beyond ±${Number.MAX_SAFE_INTEGER} (Number.MAX_SAFE_INTEGER) and would lose precision; send it as a string`,
        this.pathTo(depth),
      );
    }
    return value;
  }

  // --- errors: only reached on bad input, so clarity over speed ------------------------------------------

  /** The JSON path of the value being read at nesting `levels`: `$`, `$.properties`, `$.batch[3].traits`. */
  private pathTo(levels: number): string {
    let path = '$';
    for (let i = 0; i < levels; i++) {
      const container = this.containers[i]!;
      path += Array.isArray(container) ? `[${container.length}]` : pathSegment(this.keys[i]!);
    }
    return path;
  }

  private tooDeep(depth: number): BadEventError {
    return new BadEventError(
      `nested more than ${this.maxDepth} levels deep (objects and arrays); flatten the data or send the deep part as a string`,
      this.pathTo(depth),
    );
  }

  /** `<label> is not valid JSON: <problem> at line L, column C (in <path>): <fix>` */
  private syntaxError(pos: number, levels: number, problem: string, fix: string): BadEventError {
    const { line, column } = lineAndColumn(this.text, pos);
    const where = levels > 0 ? ` (in ${this.pathTo(levels)})` : '';
    return new BadEventError(`${this.label} is not valid JSON: ${problem} at line ${line}, column ${column}${where}: ${fix}`);
  }

  /** `fix` says what was expected instead, e.g. "expected ',' or '}'". */
  private unexpected(pos: number, levels: number, fix: string): BadEventError {
    const text = this.text;
    if (pos >= text.length) return this.syntaxError(pos, levels, 'unexpected end of input', `${fix}; the JSON is cut short`);
    return this.syntaxError(pos, levels, `unexpected ${describeCharacter(text, pos)}`, `${fix}${hintFor(text, pos)}`);
  }

  private controlCharacter(pos: number): BadEventError {
    const c = this.text.charCodeAt(pos);
    const escape = CONTROL_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    return this.syntaxError(pos, 0, `unescaped control character ${codePoint(c)} in a string`, `write it as ${escape}`);
  }

  /** A string holding a character no store keeps as sent, at the path of the value (or of the object, for a key). */
  private unstorable(pos: number, levels: number, what: string, fix: string): BadEventError {
    const { line, column } = lineAndColumn(this.text, pos);
    return new BadEventError(`a string holds ${what} at line ${line}, column ${column}, which cannot be stored as sent: ${fix}`, this.pathTo(levels));
  }

  private badEscape(pos: number, fix: string): BadEventError {
    const text = this.text;
    let end = pos + 2;
    if (text.charCodeAt(pos + 1) === 0x75 /* u */) while (end < pos + 6 && end < text.length && text.charCodeAt(end) !== QUOTE) end++;
    return this.syntaxError(pos, 0, `invalid escape '${text.slice(pos, end)}' in a string`, fix);
  }

  private unterminatedString(openingQuote: number): BadEventError {
    return this.syntaxError(openingQuote, 0, 'unterminated string starting', 'close it with a double quote; the JSON may be cut short');
  }
}

function skipWhitespace(text: string, pos: number): number {
  for (;;) {
    const c = text.charCodeAt(pos);
    if (c > SPACE || (c !== SPACE && c !== LF && c !== CR && c !== TAB)) return pos;
    pos++;
  }
}

/** 0-15 for a hex digit, and a large negative number otherwise, so one bad digit makes the OR-ed code negative. */
/** The code unit of the 4 hex digits at `pos`, or a negative number when they are not 4 hex digits. */
function hex4(text: string, pos: number): number {
  return (hexDigit(text.charCodeAt(pos)) << 12) | (hexDigit(text.charCodeAt(pos + 1)) << 8) | (hexDigit(text.charCodeAt(pos + 2)) << 4) | hexDigit(text.charCodeAt(pos + 3));
}

function hexDigit(c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -0x10000;
}

const CONTROL_ESCAPES: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };

function codePoint(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

function describeCharacter(text: string, pos: number): string {
  const c = text.codePointAt(pos)!;
  if (c === 0x27) return `"'"`;
  if (c > SPACE && c < 0x7f) return `'${String.fromCharCode(c)}'`;
  if (c < 0x7f || c === 0xfeff || (c >= 0x80 && c < 0xa0)) return codePoint(c);
  return `'${String.fromCodePoint(c)}' (${codePoint(c)})`;
}

/** What the usual non-JSON habits look like, and what to send instead. */
function hintFor(text: string, pos: number): string {
  const c = text.charCodeAt(pos);
  if (c === RBRACE || c === RBRACKET) {
    let before = pos - 1;
    while (before >= 0 && isWhitespace(text.charCodeAt(before))) before--;
    if (text.charCodeAt(before) === COMMA) return ' (JSON allows no comma after the last member)';
  }
  if (c === 0x27 /* ' */) return ' (JSON strings and keys take double quotes)';
  if (c === SLASH) return ' (JSON has no comments)';
  if (c === PLUS) return " (a JSON number takes no '+' sign)";
  if (c === DOT) return ' (write 0.5, not .5)';
  if (text.startsWith('NaN', pos) || text.startsWith('Infinity', pos) || text.startsWith('-Infinity', pos)) {
    return ' (JSON has no NaN or Infinity: send null or a string)';
  }
  if (c === 0xfeff) return ' (a byte order mark is allowed only at the very start)';
  return '';
}

function isWhitespace(c: number): boolean {
  return c === SPACE || c === LF || c === CR || c === TAB;
}

/** 1-based line, and column in characters (code points), of `pos`. */
function lineAndColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  let column = 1;
  for (let i = lineStart; i < pos; i++) {
    const c = text.charCodeAt(i);
    // The second half of a surrogate pair is part of the same character.
    if (!(c >= 0xdc00 && c <= 0xdfff && i > lineStart && isHighSurrogate(text.charCodeAt(i - 1)))) column++;
  }
  return { line, column };
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const MAX_KEY_IN_PATH = 64;

function pathSegment(key: string): string {
  if (IDENTIFIER.test(key) && key.length <= MAX_KEY_IN_PATH) return `.${key}`;
  return `[${JSON.stringify(abbreviate(key, MAX_KEY_IN_PATH))}]`;
}

function abbreviate(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/**
 * Where and why `bytes` are not UTF-8, by the well-formed sequences of Unicode table 3-7. Only called once
 * TextDecoder has refused the bytes, so it need not be fast.
 */
export function describeInvalidUtf8(bytes: Uint8Array): string {
  const hex = (b: number) => `0x${b.toString(16).toUpperCase().padStart(2, '0')}`;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else if (b >= 0x80 && b <= 0xbf) {
      return `byte ${hex(b)} at offset ${i} is a continuation byte with no lead byte before it`;
    } else if (b === 0xc0 || b === 0xc1) {
      return `byte ${hex(b)} at offset ${i} starts an overlong encoding of an ASCII character`;
    } else {
      return `byte ${hex(b)} at offset ${i} never appears in UTF-8`;
    }
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return `the ${need + 1}-byte sequence starting with ${hex(b)} at offset ${i} is cut short by the end of the data`;
      const next = bytes[i + k]!;
      const min = k === 1 ? low : 0x80;
      const max = k === 1 ? high : 0xbf;
      if (next < min || next > max) {
        if (k === 1 && next >= 0x80 && next <= 0xbf) {
          const why = b === 0xed ? 'encodes a UTF-16 surrogate' : b === 0xf4 ? 'is beyond U+10FFFF' : 'is an overlong encoding';
          return `the sequence ${hex(b)} ${hex(next)} at offset ${i} ${why}`;
        }
        return `the ${need + 1}-byte sequence starting with ${hex(b)} at offset ${i} is cut short by byte ${hex(next)} at offset ${i + k}`;
      }
    }
    i += need + 1;
  }
  // TextDecoder refused bytes this check accepts: should not happen, but the caller still needs a reason.
  return 'it holds a byte sequence that is not UTF-8';
}
