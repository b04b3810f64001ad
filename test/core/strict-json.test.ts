// parseStrictJson returns exactly what JSON.parse returns for RFC 8259 JSON, and refuses everything else with a
// BadEventError that says what to fix and where.
import { BadEventError } from '../../core/errors';
import { parseStrictJson } from '../../core/strict-json';
import { seededRandom } from '../support/seeded-random';

const bytes = (text: string) => Buffer.from(text, 'utf8');
const parse = (text: string, options?: Parameters<typeof parseStrictJson>[1]) => parseStrictJson(bytes(text), options);

/** The error parseStrictJson throws for `input`, or a failure if it throws nothing or something else. */
function refusal(input: string | Uint8Array, options?: Parameters<typeof parseStrictJson>[1]): BadEventError {
  try {
    parseStrictJson(typeof input === 'string' ? bytes(input) : input, options);
  } catch (err) {
    if (err instanceof BadEventError) return err;
    throw err;
  }
  throw new Error(`accepted ${typeof input === 'string' ? JSON.stringify(input.slice(0, 80)) : 'the bytes'}`);
}

/** Deep equality that JSON.parse's output must meet: Object.is for leaves (so -0 counts), key order, prototypes. */
function difference(actual: unknown, expected: unknown, path = '$'): string | undefined {
  if (typeof expected !== 'object' || expected === null) {
    return Object.is(actual, expected) ? undefined : `${path}: ${String(actual)} instead of ${String(expected)}`;
  }
  if (typeof actual !== 'object' || actual === null) return `${path}: ${String(actual)} instead of a container`;
  if (Object.getPrototypeOf(actual) !== Object.getPrototypeOf(expected)) return `${path}: another prototype`;
  const actualKeys = Object.keys(actual);
  const expectedKeys = Object.keys(expected);
  if (actualKeys.join('\u0000') !== expectedKeys.join('\u0000')) return `${path}: keys ${actualKeys.join(',')} instead of ${expectedKeys.join(',')}`;
  for (const key of expectedKeys) {
    const d = difference((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}.${key}`);
    if (d) return d;
  }
  return undefined;
}


/** Writes random valid JSON text directly (not via JSON.stringify), to reach escapes, spacing and number forms. */
function randomDocument(random: () => number): string {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const space = () => (random() < 0.7 ? '' : pick([' ', '\n', '\t', '\r\n', '  \n  ']));
  const characters = ['a', 'Z', '0', ' ', '"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u0001', '\u001f', 'é', 'ß', '中', '😀', '\u2028', '\ufeff'];
  const shortEscapes: Record<string, string> = { '"': '\\"', '\\': '\\\\', '/': '\\/', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  const unicodeEscape = (unit: number) => {
    const hex = unit.toString(16).padStart(4, '0');
    return `\\u${random() < 0.5 ? hex : hex.toUpperCase()}`;
  };
  const string = () => {
    let out = '"';
    const length = int(12);
    for (let i = 0; i < length; i++) {
      const ch = pick(characters);
      const mustEscape = ch === '"' || ch === '\\' || ch < ' ';
      // An astral character is two UTF-16 units: escaped as a pair, or written as it is.
      if (ch.length === 2) out += random() < 0.5 ? unicodeEscape(ch.charCodeAt(0)) + unicodeEscape(ch.charCodeAt(1)) : ch;
      else if (mustEscape || random() < 0.2) out += shortEscapes[ch] !== undefined && random() < 0.7 ? shortEscapes[ch] : unicodeEscape(ch.charCodeAt(0));
      else out += ch;
    }
    return `${out}"`;
  };
  const digits = (n: number) => Array.from({ length: n }, () => String(int(10))).join('');
  const number = () => {
    const sign = random() < 0.3 ? '-' : '';
    const integer = random() < 0.2 ? '0' : `${1 + int(9)}${digits(int(15))}`;
    const fraction = random() < 0.4 ? `.${digits(1 + int(20))}` : '';
    const exponent = random() < 0.3 ? `${pick(['e', 'E'])}${pick(['', '+', '-'])}${int(300)}` : '';
    return `${sign}${integer}${fraction}${exponent}`;
  };
  const value = (depth: number): string => {
    const roll = random();
    if (depth < 6 && roll < 0.2) {
      const keys = new Set<string>();
      const members: string[] = [];
      for (let n = int(6); n > 0; n--) {
        const key = random() < 0.1 ? pick(['"__proto__"', '"constructor"', '"toString"', '"2"', '"10"', '"1"', '""']) : string();
        const decoded = JSON.parse(key) as string;
        if (keys.has(decoded)) continue;
        keys.add(decoded);
        members.push(`${space()}${key}${space()}:${space()}${value(depth + 1)}${space()}`);
      }
      return `{${members.join(',') || space()}}`;
    }
    if (depth < 6 && roll < 0.35) return `[${Array.from({ length: int(6) }, () => `${space()}${value(depth + 1)}${space()}`).join(',') || space()}]`;
    if (roll < 0.6) return string();
    if (roll < 0.9) return number();
    return pick(['true', 'false', 'null', '-0', '0', '-0.0', '0e0', '1E+2', '-1e-7']);
  };
  return `${space()}${value(0)}${space()}`;
}

describe('parseStrictJson: valid JSON', () => {
  it('returns exactly what JSON.parse returns, on generated documents', () => {
    const random = seededRandom(8259);
    const mismatches: string[] = [];
    let documents = 0;
    for (let i = 0; i < 3000; i++) {
      const text = randomDocument(random);
      // Number forms that are refused on purpose (integers beyond 2^53, overflow to Infinity) are tested below.
      let expected: unknown;
      try {
        expected = JSON.parse(text);
      } catch {
        mismatches.push(`generator wrote invalid JSON: ${text}`);
        continue;
      }
      let actual: unknown;
      try {
        actual = parse(text, { maxDepth: 64 });
      } catch (err) {
        if (/would lose precision|too large for a 64-bit float/.test((err as Error).message)) continue;
        mismatches.push(`${text}: ${(err as Error).message}`);
        continue;
      }
      documents++;
      const d = difference(actual, expected);
      if (d) mismatches.push(`${text}: ${d}`);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(documents).toBeGreaterThan(2000);
  });

  it.each([
    ['-0', -0],
    ['0', 0],
    ['-0.0e-0', -0],
    ['1E2', 100],
    ['1e-7', 1e-7],
    ['1e-400', 0],
    ['0.1', 0.1],
    ['1.7976931348623157e308', Number.MAX_VALUE],
    ['5e-324', Number.MIN_VALUE],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
    ['-9007199254740991', Number.MIN_SAFE_INTEGER],
    ['123456789012345', 123456789012345],
    ['1234567890123456', 1234567890123456],
    ['12345678901234567890.5', 12345678901234567890.5],
    ['1e20', 1e20],
  ])('reads the number %s as JSON.parse does', (text, expected) => {
    expect(Object.is(parse(text), expected)).toBe(true);
    expect(Object.is(parse(text), JSON.parse(text))).toBe(true);
  });

  it.each([
    ['"\\u00e9\\u00E9"', 'éé'],
    ['"\\ud83d\\ude00"', '😀'],
    ['"😀"', '😀'],
    ['"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\/\b\f\n\r\t'],
    ['"plain run \\n then plain again"', 'plain run \n then plain again'],
    ['"\u2028\u2029\u007f"', '\u2028\u2029\u007f'],
    ['""', ''],
  ])('reads the string %s', (text, expected) => {
    expect(parse(text)).toBe(expected);
    expect(parse(text)).toBe(JSON.parse(text));
  });

  it('reads containers, literals and whitespace', () => {
    const text = ' \t\r\n{ "a" : [ 1 , [ ] , { } , true , false , null ] ,\n"b":{"c":{"d":[[["deep"]]]}} } \n';
    expect(difference(parse(text), JSON.parse(text))).toBeUndefined();
  });

  it('keeps key order as JSON.parse does, integer-like keys included', () => {
    const text = '{"b":1,"2":2,"a":3,"1":4}';
    expect(Object.keys(parse(text) as object)).toEqual(Object.keys(JSON.parse(text) as object));
  });

  it('makes __proto__ an own property and never sets the prototype', () => {
    const value = parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: true });
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(difference(value, JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}'))).toBeUndefined();
  });

  it('skips a leading UTF-8 byte order mark', () => {
    expect(parseStrictJson(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes('{"a":1}')]))).toEqual({ a: 1 });
  });

  it('accepts nesting of exactly maxDepth levels', () => {
    expect(() => parse(`${'['.repeat(32)}${']'.repeat(32)}`)).not.toThrow();
    expect(() => parse(`${'{"a":'.repeat(31)}[]${'}'.repeat(31)}`)).not.toThrow();
    expect(() => parse('[[[]]]', { maxDepth: 3 })).not.toThrow();
  });

  it('parses 100,000 levels without recursion when maxDepth allows it', () => {
    let value = parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`, { maxDepth: Infinity });
    let depth = 0;
    while (Array.isArray(value)) {
      depth++;
      value = value[0];
    }
    expect(depth).toBe(100_000);
  });
});

describe('parseStrictJson: refusals', () => {
  it('refuses with a BadEventError (HTTP 400, bad_event)', () => {
    const err = refusal('{');
    expect(err).toBeInstanceOf(BadEventError);
    expect([err.status, err.code]).toEqual([400, 'bad_event']);
  });

  it('refuses an empty body, and one of whitespace only', () => {
    expect(refusal('').message).toBe('the body is empty: send a JSON object');
    expect(refusal(' \n').message).toBe('the body is empty (only whitespace): send a JSON object');
  });

  it.each<[string, number[], RegExp]>([
    ['a lone continuation byte', [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d], /byte 0x80 at offset 6 is a continuation byte/],
    ['an overlong encoding of "/"', [0x22, 0xc0, 0xaf, 0x22], /byte 0xC0 at offset 1 starts an overlong encoding/],
    ['a 3-byte overlong', [0x22, 0xe0, 0x80, 0xaf, 0x22], /0xE0 0x80 at offset 1 is an overlong encoding/],
    ['an encoded surrogate', [0x22, 0xed, 0xa0, 0x80, 0x22], /0xED 0xA0 at offset 1 encodes a UTF-16 surrogate/],
    ['a code point beyond U+10FFFF', [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22], /0xF4 0x90 at offset 1 is beyond U\+10FFFF/],
    ['a sequence cut by another byte', [0x22, 0xe2, 0x82, 0x22], /3-byte sequence starting with 0xE2 at offset 1 is cut short by byte 0x22 at offset 3/],
    ['a sequence cut by the end', [0x22, 0x61, 0xf0, 0x9f, 0x98], /4-byte sequence starting with 0xF0 at offset 2 is cut short by the end/],
    ['a byte that never appears in UTF-8', [0x22, 0xff, 0x22], /byte 0xFF at offset 1 never appears in UTF-8/],
    ['a bad byte in a key', [0x7b, 0x22, 0xfe, 0x22, 0x3a, 0x31, 0x7d], /byte 0xFE at offset 2/],
  ])('refuses invalid UTF-8: %s, giving the byte offset', (_case, input, message) => {
    const err = refusal(Uint8Array.from(input));
    expect(err.message).toMatch(/^the body is not valid UTF-8: /);
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/send the text encoded as UTF-8$/);
  });

  it.each<[string, string, string]>([
    ['a trailing comma in an object', '{"userId":"u1",}', "unexpected '}' at line 1, column 16: expected a key in double quotes (JSON allows no comma after the last member)"],
    ['a trailing comma in an array', '{"a":[1,2,]}', "unexpected ']' at line 1, column 11 (in $.a[2]): expected a value (JSON allows no comma after the last member)"],
    ['a comma where a value belongs', '{"userId":"u1","event":,}', "unexpected ',' at line 1, column 24 (in $.event): expected a value"],
    ['a line comment', '{"a":1 // note\n}', "unexpected '/' at line 1, column 8: expected ',' or '}' (JSON has no comments)"],
    ['a block comment', '/* c */{}', "unexpected '/' at line 1, column 1: expected a value (JSON has no comments)"],
    ['NaN', '{"a":NaN}', "unexpected 'N' at line 1, column 6 (in $.a): expected a value (JSON has no NaN or Infinity: send null or a string)"],
    ['Infinity', '[Infinity]', "unexpected 'I' at line 1, column 2 (in $[0]): expected a value (JSON has no NaN or Infinity: send null or a string)"],
    ['-Infinity', '[-Infinity]', "unexpected 'I' at line 1, column 3 (in $[0]): expected a digit after '-' (JSON has no NaN or Infinity: send null or a string)"],
    ['single-quoted strings', "{'a':1}", 'unexpected "\'" at line 1, column 2: expected a key in double quotes (JSON strings and keys take double quotes)'],
    ['single-quoted values', "{\"a\":'b'}", 'unexpected "\'" at line 1, column 6 (in $.a): expected a value (JSON strings and keys take double quotes)'],
    ['an unquoted key', '{a:1}', "unexpected 'a' at line 1, column 2: expected a key in double quotes"],
    ['a missing colon', '{"a" 1}', "unexpected '1' at line 1, column 6 (in $.a): expected ':' after the key"],
    ['a missing comma', '{"a":1 "b":2}', "unexpected '\"' at line 1, column 8: expected ',' or '}'"],
    ['a raw newline in a string', '{"a":"x\ny"}', 'unescaped control character U+000A in a string at line 1, column 8: write it as \\n'],
    ['a raw tab in a string', '"\t"', 'unescaped control character U+0009 in a string at line 1, column 2: write it as \\t'],
    ['a raw NUL in a string', '"\u0000"', 'unescaped control character U+0000 in a string at line 1, column 2: write it as \\u0000'],
    ['an unknown escape', '"\\x41"', "invalid escape '\\x' in a string at line 1, column 2: the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX"],
    ['a short \\u escape', '"\\u12"', "invalid escape '\\u12' in a string at line 1, column 2: a \\u escape takes exactly 4 hex digits, e.g. \\u00e9"],
    ['an unterminated string', '{"a":"abc', 'unterminated string starting at line 1, column 6: close it with a double quote; the JSON may be cut short'],
    ['an unterminated escape', '"abc\\', 'unterminated string starting at line 1, column 1: close it with a double quote; the JSON may be cut short'],
    ['a truncated object', '{"a":{"b":1', 'unexpected end of input at line 1, column 12 (in $.a): expected \',\' or \'}\'; the JSON is cut short'],
    ['a truncated literal', '[tru', "unexpected 't' at line 1, column 2 (in $[0]): expected a value"],
    ['a leading zero', '[01]', "unexpected '1' at line 1, column 3 (in $[0]): a JSON number has no leading zeros: write 7, not 07, or send it as a string"],
    ['a plus sign', '[+1]', "unexpected '+' at line 1, column 2 (in $[0]): expected a value (a JSON number takes no '+' sign)"],
    ['a bare fraction', '[.5]', "unexpected '.' at line 1, column 2 (in $[0]): expected a value (write 0.5, not .5)"],
    ['a trailing decimal point', '[1.]', "unexpected ']' at line 1, column 4 (in $[0]): expected a digit after the decimal point: write 1.0 or 1, not 1."],
    ['an empty exponent', '[1e]', "unexpected ']' at line 1, column 4 (in $[0]): expected a digit in the exponent, e.g. 1e6"],
    ['a hex number', '[0x10]', "unexpected 'x' at line 1, column 3: expected ',' or ']'"],
    ['a lone minus', '-', "unexpected end of input at line 1, column 2: expected a digit after '-'; the JSON is cut short"],
    ['trailing garbage', '{"a":1} x', "unexpected 'x' at line 1, column 9: expected the end: the body must hold exactly one JSON value"],
    ['two values', '{}{}', "unexpected '{' at line 1, column 3: expected the end: the body must hold exactly one JSON value"],
    ['a byte order mark after the start', '{}\ufeff', 'unexpected U+FEFF at line 1, column 3: expected the end: the body must hold exactly one JSON value (a byte order mark is allowed only at the very start)'],
    ['a non-ASCII character out of place', '{"a":1,é}', "unexpected 'é' (U+00E9) at line 1, column 8: expected a key in double quotes"],
    ['a control character out of place', '{"a":1,\u0007}', 'unexpected U+0007 at line 1, column 8: expected a key in double quotes'],
  ])('refuses %s with line and column', (_case, input, message) => {
    expect(() => JSON.parse(input)).toThrow();
    expect(refusal(input).message).toBe(`the body is not valid JSON: ${message}`);
  });

  it('counts lines and columns in characters, across lines and astral characters', () => {
    expect(refusal('{\n  "a": "😀😀",\n  "b": @\n}').message).toMatch(/unexpected '@' at line 3, column 8 \(in \$\.b\)/);
    expect(refusal('{\r\n"a":1,\r\n}').message).toMatch(/unexpected '}' at line 3, column 1/);
  });

  it('names the label in messages', () => {
    expect(refusal('[', { label: 'batch item 3' }).message).toMatch(/^batch item 3 is not valid JSON: /);
    expect(refusal(Uint8Array.from([0xff]), { label: 'batch item 3' }).message).toMatch(/^batch item 3 is not valid UTF-8: /);
    expect(refusal('', { label: 'batch item 3' }).message).toBe('batch item 3 is empty: send a JSON object');
  });

  describe('text no store keeps as sent', () => {
    it.each<[string, string, string, RegExp]>([
      ['an escaped NUL', '{"userId":"u\\u0000"}', '$.userId', /^\$\.userId: a string holds \\u0000 \(the NUL character\) at line 1, column 13, which cannot be stored as sent: remove it/],
      ['a lone high surrogate', '{"messageId":"m\\ud800"}', '$.messageId', /lone high surrogate \\ud800 at line 1, column 16, .*follow it with its low surrogate/],
      ['a high surrogate followed by another escape', '["\\uD800\\u0041"]', '$[0]', /lone high surrogate \\uD800 at line 1, column 3/],
      ['a lone low surrogate', '{"properties":{"name":"\\udc00x"}}', '$.properties.name', /lone low surrogate \\udc00 .*must follow a high one/],
      ['a NUL in a key (named by its object)', '{"context":{"a\\u0000":1}}', '$.context', /\\u0000 \(the NUL character\)/],
    ])('refuses %s, naming the path', (_case, input, path, message) => {
      const err = refusal(input);
      expect(err.field).toBe(path);
      expect(err.message).toMatch(message);
    });

    it('keeps a surrogate pair written as two escapes', () => {
      expect(parse('"\\ud83d\\ude00\\uD83D\\uDE00"')).toBe('😀😀');
    });
  });

  describe('duplicate keys', () => {
    it.each<[string, string, string]>([
      ['at the top level', '{"userId":"u1","event":"a","event":"b"}', '$'],
      ['in properties', '{"userId":"u1","properties":{"event":1,"x":2,"event":1}}', '$.properties'],
      ['inside an array', '{"batch":[{"type":"track"},{"type":"track","type":"identify"}]}', '$.batch[1]'],
      ['under a key that is not an identifier', '{"my key":{"a":1,"a":1}}', '$["my key"]'],
    ])('refuses them %s, naming the path', (_case, input, path) => {
      const err = refusal(input);
      expect(err.field).toBe(path);
      expect(err.message).toMatch(new RegExp(`^${path.replace(/[$[\]().]/g, '\\$&')}: duplicate key "(event|type|a)"; each key may appear only once in an object$`));
    });

    it('refuses keys that are equal once unescaped', () => {
      expect(refusal('{"properties":{"event":1,"\\u0065vent":2}}')).toMatchObject({ field: '$.properties', message: '$.properties: duplicate key "event"; each key may appear only once in an object' });
    });

    it('refuses a repeated __proto__, which JSON.parse would fold into one', () => {
      expect(refusal('{"__proto__":1,"__proto__":2}').field).toBe('$');
    });
  });

  describe('nesting', () => {
    it('refuses level 33 by default, naming the path of the container too deep', () => {
      const input = `{"properties":${'{"a":'.repeat(30)}{"b":[1]}${'}'.repeat(30)}}`;
      const err = refusal(input);
      expect(err.field).toBe(`$.properties${'.a'.repeat(30)}.b`);
      expect(err.message).toBe(`${err.field}: nested more than 32 levels deep (objects and arrays); flatten the data or send the deep part as a string`);
    });

    it('takes maxDepth from options', () => {
      expect(refusal('[[[[]]]]', { maxDepth: 3 })).toMatchObject({ field: '$[0][0][0]', message: expect.stringMatching(/nested more than 3 levels deep/) });
      expect(() => parse('[]', { maxDepth: 0 })).toThrow(RangeError);
      expect(() => parse('[]', { maxDepth: 1.5 })).toThrow(RangeError);
    });

    it('refuses 1,000,000 open brackets without overflowing the stack', () => {
      expect(refusal('['.repeat(1_000_000)).field).toBe(`$${'[0]'.repeat(32)}`);
      expect(refusal('{"a":'.repeat(1_000_000)).field).toBe(`$${'.a'.repeat(32)}`);
      expect(refusal('['.repeat(1_000_000), { maxDepth: Infinity }).message).toMatch(/unexpected end of input at line 1, column 1000001/);
    });
  });

  describe('numbers that JSON.parse would change silently', () => {
    it.each<[string, string, RegExp]>([
      ['1e400', '$.properties.price', /^\$\.properties\.price: 1e400 is too large for a 64-bit float; send it as a string$/],
      ['-1e999', '$.properties.price', /^\$\.properties\.price: -1e999 is too large for a 64-bit float; send it as a string$/],
      ['1.8e308', '$.properties.price', /too large for a 64-bit float/],
      ['12345678901234567890', '$.properties.price', /^\$\.properties\.price: 12345678901234567890 is beyond ±9007199254740991 \(Number\.MAX_SAFE_INTEGER\) and would lose precision; send it as a string$/],
      ['9007199254740992', '$.properties.price', /would lose precision/],
      ['-9007199254740993', '$.properties.price', /would lose precision/],
    ])('refuses %s, naming the path', (number, path, message) => {
      const err = refusal(`{"properties":{"price":${number}}}`);
      expect(err.field).toBe(path);
      expect(err.message).toMatch(message);
    });

    it('names array positions and the top level', () => {
      expect(refusal('{"batch":[{},{"userId":12345678901234567890}]}').field).toBe('$.batch[1].userId');
      expect(refusal('1e400').field).toBe('$');
    });

    it('abbreviates a very long number in the message', () => {
      const err = refusal(`[${'9'.repeat(5000)}]`);
      expect(err.message.length).toBeLessThan(200);
      expect(err.message).toMatch(/^\$\[0\]: 9{40}… is too large/);
    });
  });
});
