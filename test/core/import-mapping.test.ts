// Import mappings: the YAML is checked with file:line:col like flow files, and each row maps to the Segment call the
// HTTP API would accept, or fails with the column and the reason.
import { createHash } from 'node:crypto';
import { InvalidFileError } from '../../core/errors';
import type { FileProblem } from '../../core/errors';
import { compileFlow } from '../../core/flow-compiler';
import {
  canonicalJson,
  checkHeader,
  checkImportMapping,
  closestEventName,
  compileImportMapping,
  computedFieldsRead,
  eventNamesReadBy,
  importRow,
  lookupColumn,
  mapRow,
  RowSkipped,
  unusedEventNames,
} from '../../core/import-mapping';
import { wallClockInZone } from '../../core/import-dates';
import type { ImportKind, ImportMapping } from '../../core/import-mapping';
import { parseSegmentFile } from '../../core/segment-definition';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';
const FILE = 'mappings/test.yaml';

const PROFILES = yaml(
  'user_id: Customer ID', //                                      1
  'traits:', //                                                    2
  '  email: Email', //                                             3
  '  first_name: First Name', //                                   4
  '  lifetime_value: { column: LTV, type: number }', //            5
  '  vip: { column: VIP, type: boolean }', //                      6
  '  signup_date: { column: Created, type: date }', //             7
  '  source: { value: shopify-export }', //                        8
  'consent:', //                                                   9
  '  email_marketing: Opted In', //                                10
);

const EVENTS = yaml(
  'user_id: customer.id',
  'event: { value: Order Completed }',
  'timestamp: ordered_at',
  'message_id: order_id',
  'properties:',
  '  order_id: order_id',
  '  total: { column: amount, type: number }',
  '  products: { column: items, type: json }',
  '  first_sku: items.0.sku',
);

const profiles = (): ImportMapping => compileImportMapping(PROFILES, FILE, 'profiles');
const events = (): ImportMapping => compileImportMapping(EVENTS, FILE, 'events');

const ROW = { 'Customer ID': 'c1', Email: 'ana@example.com', 'First Name': 'Ana', LTV: '120.50', VIP: 'Yes', Created: '2024-01-02', 'Opted In': 'true' };

function errors(source: string, kind: ImportKind = 'profiles'): FileProblem[] {
  return checkImportMapping(source, FILE, kind).problems.filter((p) => p.severity === 'error');
}

function onlyError(source: string, kind: ImportKind = 'profiles'): FileProblem {
  const found = errors(source, kind);
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The message of the BadRowError that mapping `record` throws. */
function rowError(mapping: ImportMapping, record: Record<string, unknown>): string {
  try {
    importRow(mapping, record, { receivedAt: 0, sha256 });
  } catch (err) {
    expect((err as { code?: string }).code).toBe('bad_row');
    return (err as Error).message;
  }
  throw new Error('expected the row to be rejected');
}

describe('mapping rows: profiles', () => {
  test('each column becomes a trait of its type; consent goes under traits.consent', () => {
    const call = mapRow(profiles(), ROW, sha256);
    expect(call).toEqual({
      messageId: expect.stringMatching(/^import:profiles:[0-9a-f]{64}$/),
      userId: 'c1',
      traits: {
        email: 'ana@example.com',
        first_name: 'Ana',
        lifetime_value: 120.5,
        vip: true,
        signup_date: '2024-01-02T00:00:00.000Z',
        source: 'shopify-export',
        consent: { email_marketing: true },
      },
      context: { library: { name: 'microflows-import' } },
    });
  });

  test('the identify call is validated by the HTTP API parser and happens at the import start', () => {
    const event = importRow(profiles(), ROW, { receivedAt: 1_700_000_000_000, sha256 });
    expect(event).toMatchObject({ type: 'identify', customerId: 'c1', userId: 'c1', name: null, timestamp: 1_700_000_000_000, receivedAt: 1_700_000_000_000 });
    expect(event.traits.email).toBe('ana@example.com');
  });

  // Imports go through the identify parser, so the phishing-relay addresses are refused here too, blamed on their column.
  test.each([
    ['a list', 'ana@example.com, second@example.org', /^column "Email": holds 2 addresses/],
    ['a group', 'friends: ana@example.com, b@example.org;', /^column "Email": is an address group/],
    ['CRLF', 'ana@example.com\r\nBcc: x@example.org', /^column "Email": contains a control character/],
    ['a display name', 'Ana <ana@example.com>', /^column "Email": has a display name/],
  ])('a row whose email is %s is rejected, naming the column', (_what, email, message) => {
    expect(rowError(profiles(), { ...ROW, Email: email })).toMatch(message);
  });

  test('an email from a constant that is not one mailbox is blamed on the mapped call', () => {
    const mapping = compileImportMapping(yaml('user_id: id', 'traits:', '  email: { value: "a@example.com, b@example.com" }'), FILE, 'profiles');
    expect(rowError(mapping, { id: 'c1' })).toMatch(/^the mapped call is invalid: traits\.email: holds 2 addresses/);
  });

  test('the message id hashes the content: equal rows dedupe, any change is a new call', () => {
    const mapping = profiles();
    const id = (record: Record<string, unknown>) => mapRow(mapping, record, sha256).messageId;
    const call = mapRow(mapping, ROW, sha256);
    const { messageId: _id, context: _context, ...content } = call;
    expect(call.messageId).toBe(`import:profiles:${sha256(canonicalJson(content))}`);
    // Same values written differently (column order, number and date notation) are the same call.
    expect(id({ ...ROW, LTV: '120.5', Created: '2024-01-02T00:00:00Z' })).toBe(call.messageId);
    expect(id({ ...ROW, Email: 'other@example.com' })).not.toBe(call.messageId);
  });

  test('blank cells leave the trait out; the customer id is trimmed', () => {
    const call = mapRow(profiles(), { ...ROW, 'Customer ID': ' c1 ', 'First Name': '', LTV: '  ', 'Opted In': '' }, sha256);
    expect(call.userId).toBe('c1');
    expect(call.traits).not.toHaveProperty('first_name');
    expect(call.traits).not.toHaveProperty('lifetime_value');
    expect(call.traits).not.toHaveProperty('consent');
  });

  test.each([
    [{ LTV: '12,x' }, 'column "LTV": "12,x" is not a number'],
    [{ LTV: '1,234' }, 'column "LTV": "1,234" is not a number'],
    [{ VIP: 'maybe' }, 'column "VIP": "maybe" is not a boolean (use true/false, yes/no or 1/0)'],
    [{ Created: '05/01/2024' }, 'column "Created": "05/01/2024" is not an ISO-8601 date'],
    [{ Created: '2024-02-30' }, 'column "Created": "2024-02-30" is not an ISO-8601 date'],
    [{ 'Opted In': 'si' }, 'column "Opted In": "si" is not a boolean'],
    [{ 'Customer ID': '' }, 'column "Customer ID": is empty'],
  ])('a bad value names the column and the reason: %j', (change, message) => {
    expect(rowError(profiles(), { ...ROW, ...change })).toContain(message);
  });

  test('booleans accept the usual spellings', () => {
    const mapping = profiles();
    for (const [text, value] of [['TRUE', true], ['y', true], ['1', true], ['No', false], ['f', false], ['0', false]] as const) {
      expect(mapRow(mapping, { ...ROW, VIP: text }, sha256).traits!.vip).toBe(value);
    }
  });

  test('required: true makes a blank optional trait a bad row', () => {
    const mapping = compileImportMapping(yaml('user_id: id', 'traits:', '  email: { column: Email, required: true }'), FILE, 'profiles');
    expect(rowError(mapping, { id: 'c1', Email: ' ' })).toBe('column "Email": is empty');
    expect(rowError(mapping, { id: 'c1' })).toBe('column "Email": is missing');
  });

  test('a profiles timestamp dates the identify (consent is recorded at that time)', () => {
    const mapping = compileImportMapping(yaml('user_id: id', 'timestamp: { column: at }', 'consent:', '  email_marketing: { column: ok }'), FILE, 'profiles');
    const event = importRow(mapping, { id: 'c1', at: '2023-06-01T08:00:00+02:00', ok: 'yes' }, { receivedAt: 0, sha256 });
    expect(event.timestamp).toBe(Date.UTC(2023, 5, 1, 6));
    expect(event.traits).toEqual({ consent: { email_marketing: true } });
  });
});

describe('mapping rows: events (JSONL)', () => {
  const ORDER = {
    customer: { id: 42 },
    order_id: 'o-1',
    ordered_at: '2024-03-01T10:00:00.250+02:00',
    amount: 99.5,
    items: [{ sku: 'sku-1', price: 49.75 }],
  };

  test('dotted columns read nested objects and arrays; JSON values keep their type', () => {
    const call = mapRow(events(), ORDER, sha256);
    expect(call).toEqual({
      messageId: 'import:events:o-1',
      userId: '42',
      event: 'Order Completed',
      timestamp: '2024-03-01T08:00:00.250Z',
      properties: { order_id: 'o-1', total: 99.5, products: [{ sku: 'sku-1', price: 49.75 }], first_sku: 'sku-1' },
      context: { library: { name: 'microflows-import' } },
    });
  });

  test('the track call keeps the time the event happened', () => {
    const event = importRow(events(), ORDER, { receivedAt: 1_800_000_000_000, sha256 });
    expect(event).toMatchObject({ type: 'track', name: 'Order Completed', customerId: '42', messageId: 'import:events:o-1', receivedAt: 1_800_000_000_000 });
    expect(event.timestamp).toBe(Date.parse('2024-03-01T08:00:00.250Z'));
  });

  test('type json parses a JSON string (a CSV cell) and keeps a JSON value as it is', () => {
    expect(mapRow(events(), { ...ORDER, items: '[{"sku":"a"}]' }, sha256).properties!.products).toEqual([{ sku: 'a' }]);
    expect(rowError(events(), { ...ORDER, items: '[{"sku":' })).toContain('column "items": "[{\\"sku\\":" is not valid JSON');
  });

  test('a missing or blank required field is a bad row, an optional one is left out', () => {
    expect(rowError(events(), { ...ORDER, customer: {} })).toBe('column "customer.id": is missing');
    expect(rowError(events(), { ...ORDER, ordered_at: null })).toBe('column "ordered_at": is empty');
    expect(rowError(events(), { ...ORDER, order_id: '' })).toBe('column "order_id": is empty');
    expect(mapRow(events(), { ...ORDER, amount: null }, sha256).properties).not.toHaveProperty('total');
  });

  test('values of the wrong JSON type are bad rows', () => {
    expect(rowError(events(), { ...ORDER, customer: { id: { nested: 1 } } })).toBe('column "customer.id": a JSON object is not text (use type: json to keep it as it is)');
    expect(rowError(events(), { ...ORDER, amount: '99.5 EUR' })).toContain('column "amount": "99.5 EUR" is not a number');
    expect(rowError(events(), { ...ORDER, ordered_at: 1709280000 })).toContain('column "ordered_at": a number is not an ISO-8601 date');
  });

  test('the event name can come from a column; without message_id the id hashes the content', () => {
    const mapping = compileImportMapping(yaml('user_id: user', 'event: name', 'timestamp: at'), FILE, 'events');
    const call = mapRow(mapping, { user: 'u1', name: 'Product Viewed', at: '2024-01-01' }, sha256);
    expect(call.event).toBe('Product Viewed');
    expect(call.messageId).toBe(`import:events:${sha256(canonicalJson({ userId: 'u1', event: 'Product Viewed', timestamp: '2024-01-01T00:00:00.000Z', properties: {} }))}`);
  });

  test('message_id with required: false falls back to the content hash', () => {
    const mapping = compileImportMapping(yaml('user_id: u', 'event: e', 'timestamp: t', 'message_id: { column: id, required: false }'), FILE, 'events');
    expect(mapRow(mapping, { u: 'u1', e: 'X', t: '2024-01-01', id: 'm1' }, sha256).messageId).toBe('import:events:m1');
    expect(mapRow(mapping, { u: 'u1', e: 'X', t: '2024-01-01', id: '' }, sha256).messageId).toMatch(/^import:events:[0-9a-f]{64}$/);
  });

  test('a key with the whole dotted name wins over the path; prototype keys read nothing', () => {
    expect(lookupColumn({ 'a.b': 1, a: { b: 2 } }, 'a.b')).toBe(1);
    expect(lookupColumn({ a: { b: 2 } }, 'a.b')).toBe(2);
    expect(lookupColumn({ a: [{ b: 3 }] }, 'a.0.b')).toBe(3);
    expect(lookupColumn({}, 'constructor')).toBeUndefined();
    expect(lookupColumn({ a: {} }, 'a.__proto__')).toBeUndefined();
  });

  test('text no store keeps as sent (U+0000, a lone surrogate) is a bad row naming where, as over HTTP', () => {
    const mapping = compileImportMapping(yaml('user_id: u', 'event: e', 'timestamp: t', 'properties:', '  note: note'), FILE, 'events');
    expect(rowError(mapping, { u: 'u1', e: 'X', t: '2024-01-01', note: 'a\u0000b' })).toMatch(/\$\.properties\.note: a string holds \\u0000/);
    expect(rowError(mapping, { u: 'u\ud800', e: 'X', t: '2024-01-01', note: 'ok' })).toMatch(/\$\.userId: a string holds the lone high surrogate/);
    expect(importRow(mapping, { u: 'u1', e: 'X', t: '2024-01-01', note: 'emoji 😀' }, { receivedAt: 0, sha256 }).properties).toEqual({ note: 'emoji 😀' });
  });

  test('a call over the 32 KB Segment limit is a bad row', () => {
    expect(rowError(events(), { ...ORDER, items: 'x'.repeat(40_000) })).toContain('not valid JSON');
    const mapping = compileImportMapping(yaml('user_id: u', 'event: e', 'timestamp: t', 'properties:', '  note: note'), FILE, 'events');
    expect(rowError(mapping, { u: 'u1', e: 'X', t: '2024-01-01', note: 'x'.repeat(40_000) })).toMatch(/over the 32768-byte limit/);
  });
});

describe('mapping files: every problem with file:line:col and path', () => {
  test('valid mappings compile', () => {
    expect(checkImportMapping(PROFILES, FILE, 'profiles').problems).toEqual([]);
    expect(checkImportMapping(EVENTS, FILE, 'events').problems).toEqual([]);
  });

  test('an invalid mapping throws InvalidFileError listing all its errors', () => {
    const source = yaml('user_id: id', 'traits:', '  ltv: { column: LTV, type: numbr }', '  vip: { colum: VIP }');
    expect(() => compileImportMapping(source, FILE, 'profiles')).toThrow(InvalidFileError);
    try {
      compileImportMapping(source, FILE, 'profiles');
    } catch (err) {
      expect((err as InvalidFileError).problems.map((p) => `${p.line}:${p.column} ${p.path}`)).toEqual(['3:29 traits.ltv.type', '4:8 traits.vip.column', '4:10 traits.vip.colum']);
      expect((err as Error).message.split('\n')[0]).toBe(
        `${FILE}:3:29 (traits.ltv.type): error: unknown type "numbr" (did you mean "number"?): trait "ltv" takes one of string, number, boolean, date, json`,
      );
    }
  });

  test.each([
    ['missing user_id', ['traits:', '  email: Email'], 'profiles', 1, 1, 'user_id', 'missing "user_id": the column holding the customer id'],
    ['unknown top-level key', ['user_id: id', 'trait:', '  email: Email'], 'profiles', 2, 1, 'trait', 'unknown key "trait" in a mapping for "import profiles" (did you mean "traits"?)'],
    ['properties in a profiles mapping', ['user_id: id', 'properties: { a: b }'], 'profiles', 2, 1, 'properties', 'allowed keys: user_id, traits, consent, timestamp, message_id'],
    ['traits in an events mapping', ['user_id: id', 'event: e', 'timestamp: t', 'traits: { a: b }'], 'events', 4, 1, 'traits', 'unknown key "traits" in a mapping for "import events"'],
    ['missing timestamp in events', ['user_id: id', 'event: { value: Signed Up }'], 'events', 1, 1, 'timestamp', 'missing "timestamp": the column holding when each event happened'],
    ['a number is not a column name', ['user_id: id', 'traits:', '  year: 2024'], 'profiles', 3, 9, 'traits.year', 'quote a column name ("2024") or write a constant as { value: 2024 }'],
    ['a constant with a column', ['user_id: id', 'traits:', '  src: { value: x, column: y }'], 'profiles', 3, 20, 'traits.src.column', 'a constant ({ value: ... }) reads no column'],
    ['consent of a non-boolean type', ['user_id: id', 'consent:', '  email_marketing: { column: ok, type: string }'], 'profiles', 3, 40, 'consent.email_marketing.type', 'takes type boolean only'],
    ['unknown consent kind', ['user_id: id', 'consent:', '  marketing: ok'], 'profiles', 3, 3, 'consent.marketing', 'allowed keys: email_marketing, behavioral_tracking'],
    ['consent as a trait', ['user_id: id', 'traits:', '  consent: ok'], 'profiles', 3, 3, 'traits.consent', 'consent is not a trait'],
    ['user_id may not be optional', ['user_id: { column: id, required: false }'], 'profiles', 1, 34, 'user_id.required', 'user_id is always required'],
    ['user_id is text', ['user_id: { column: id, type: number }'], 'profiles', 1, 30, 'user_id.type', 'type "number": user_id takes type string only'],
    ['an empty event constant', ['user_id: id', 'event: { value: "" }', 'timestamp: t'], 'events', 2, 17, 'event.value', 'the constant must be non-empty text'],
    ['traits that are not a map', ['user_id: id', 'traits: [email]'], 'profiles', 2, 9, 'traits', 'traits must be a map of trait name -> column'],
  ])('%s', (_name, lines, kind, line, column, path, message) => {
    const problem = onlyError(yaml(...lines), kind as ImportKind);
    expect(problem).toMatchObject({ file: FILE, line, column, path });
    expect(problem.message).toContain(message);
  });

  test('YAML syntax errors and empty files', () => {
    expect(onlyError('user_id: [id\n')).toMatchObject({ file: FILE, line: 2, message: expect.stringContaining('YAML syntax') });
    expect(onlyError('')).toMatchObject({ line: 1, message: expect.stringContaining('empty file') });
    expect(onlyError('user_id: a\nuser_id: b\n')).toMatchObject({ line: 2, message: expect.stringContaining('Map keys must be unique') });
  });

  test('a profiles mapping without traits or consent is only a warning', () => {
    const { mapping, problems } = checkImportMapping('user_id: id\n', FILE, 'profiles');
    expect(mapping).toBeDefined();
    expect(problems).toEqual([expect.objectContaining({ severity: 'warning', message: expect.stringContaining('no traits and no consent') })]);
  });
});

describe('checkHeader: the CSV header against the mapping, before any row', () => {
  test('a column missing from the header is reported at the mapping line that names it, with the closest name', () => {
    const header = ['Customer ID', 'Email', 'First Name', 'Lifetime Value', 'VIP', 'Created', 'Opted In'];
    expect(checkHeader(profiles(), header, 'customers.csv')).toEqual([
      {
        file: FILE,
        line: 5,
        column: 29,
        path: 'traits.lifetime_value.column',
        severity: 'error',
        message: 'column "LTV" is not in the header of customers.csv; its columns are: Customer ID, Email, First Name, Lifetime Value, VIP, Created, Opted In',
      },
    ]);
    const typo = checkHeader(profiles(), ['customer id', 'email', 'First Name', 'LTV', 'VIP', 'Created', 'Opted In'], 'c.csv');
    expect(typo.map((p) => `${p.line}:${p.column} ${p.message.split(';')[0]}`)).toEqual([
      '1:10 column "Customer ID" is not in the header of c.csv (did you mean "customer id"?)',
      '3:10 column "Email" is not in the header of c.csv (did you mean "email"?)',
    ]);
  });

  test('a mapped column that appears twice is ambiguous', () => {
    const header = ['Customer ID', 'Email', 'Email', 'First Name', 'LTV', 'VIP', 'Created', 'Opted In'];
    expect(checkHeader(profiles(), header, 'c.csv')).toEqual([expect.objectContaining({ line: 3, message: expect.stringContaining('appears 2 times') })]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Real exports: date formats, value maps, derived properties, and the event names an import brings in

/** An events mapping whose timestamp is `timestamp` (a YAML flow value), reading columns u, e and t. */
const eventsWith = (timestamp: string, ...more: string[]): ImportMapping => compileImportMapping(yaml('user_id: u', 'event: e', `timestamp: ${timestamp}`, ...more), FILE, 'events');
const timeOf = (mapping: ImportMapping, t: unknown): string | undefined => mapRow(mapping, { u: 'u1', e: 'X', t }, sha256).timestamp;

describe('date formats: each declared format reads its own notation, and only it', () => {
  test('a pattern with literal text: a shop export\'s "2019-10-01 00:00:00 UTC"', () => {
    const mapping = eventsWith(`{ column: t, format: "yyyy-MM-dd HH:mm:ss 'UTC'" }`);
    expect(timeOf(mapping, '2019-10-01 00:00:00 UTC')).toBe('2019-10-01T00:00:00.000Z');
    expect(timeOf(mapping, ' 2019-12-31 23:59:59 UTC ')).toBe('2019-12-31T23:59:59.000Z');
  });

  test('a zone-less pattern in a declared zone; a pattern that reads offsets takes each value\'s own', () => {
    const berlin = eventsWith('{ column: t, format: "yyyy-MM-dd HH:mm:ss", zone: Europe/Berlin }');
    expect(timeOf(berlin, '2019-10-01 00:00:00')).toBe('2019-09-30T22:00:00.000Z'); // CEST, +02:00
    expect(timeOf(berlin, '2019-12-01 00:00:00')).toBe('2019-11-30T23:00:00.000Z'); // CET, +01:00
    const offsets = eventsWith(`{ column: t, format: "dd.MM.yyyy HH:mm ZZ" }`);
    expect(timeOf(offsets, '01.10.2019 08:00 -05:00')).toBe('2019-10-01T13:00:00.000Z');
  });

  test('month names and a 12-hour clock read in English whatever the machine says', () => {
    const mapping = eventsWith('{ column: t, format: "LLL d, yyyy h:mm a" }');
    expect(timeOf(mapping, 'Oct 1, 2019 5:07 PM')).toBe('2019-10-01T17:07:00.000Z');
  });

  test('the result does not depend on the time zone of the machine running the import', () => {
    const mapping = eventsWith('{ column: t, format: "yyyy-MM-dd HH:mm", zone: America/New_York }');
    const saved = process.env.TZ;
    const read: Array<string | undefined> = [];
    try {
      for (const tz of ['UTC', 'Asia/Tokyo', 'America/Los_Angeles']) {
        process.env.TZ = tz;
        read.push(timeOf(mapping, '2019-11-03 01:30'));
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
    expect(read).toEqual(['2019-11-03T05:30:00.000Z', '2019-11-03T05:30:00.000Z', '2019-11-03T05:30:00.000Z']);
  });

  test.each([
    // [zone, wall clock, instant]: the repeated autumn hour is its first occurrence, the skipped spring hour an hour later
    ['Europe/Berlin', '2019-10-27T02:30', '2019-10-27T00:30:00.000Z'],
    ['America/New_York', '2019-11-03T01:30', '2019-11-03T05:30:00.000Z'],
    ['Australia/Sydney', '2019-04-07T02:30', '2019-04-06T15:30:00.000Z'],
    ['Europe/Berlin', '2019-03-31T02:30', '2019-03-31T01:30:00.000Z'],
    ['America/New_York', '2019-03-10T02:30', '2019-03-10T07:30:00.000Z'],
    ['Australia/Sydney', '2019-10-06T02:30', '2019-10-05T16:30:00.000Z'],
    ['Asia/Kolkata', '2019-06-01T12:00', '2019-06-01T06:30:00.000Z'],
  ])('clock changes read the same in every hemisphere: %s %s', (zone, wall, instant) => {
    expect(new Date(wallClockInZone(Date.parse(`${wall}Z`), zone)).toISOString()).toBe(instant);
  });

  test('epoch seconds and milliseconds, as CSV text or JSON numbers', () => {
    const seconds = eventsWith('{ column: t, format: epoch_seconds }');
    expect(timeOf(seconds, '1569888000')).toBe('2019-10-01T00:00:00.000Z');
    expect(timeOf(seconds, 1569888000.25)).toBe('2019-10-01T00:00:00.250Z');
    const millis = eventsWith('{ column: t, format: epoch_millis }');
    expect(timeOf(millis, '1569888000123')).toBe('2019-10-01T00:00:00.123Z');
    expect(timeOf(millis, 1569888000123)).toBe('2019-10-01T00:00:00.123Z');
  });

  test('format implies type date, for traits too; iso is the default and can be named', () => {
    const mapping = compileImportMapping(yaml('user_id: id', 'traits:', '  signup: { column: Created, format: "dd/MM/yyyy" }', '  seen: { column: Seen, format: iso }'), FILE, 'profiles');
    expect(mapRow(mapping, { id: 'c1', Created: '02/01/2024', Seen: '2024-03-04T05:06:07+01:00' }, sha256).traits).toEqual({ signup: '2024-01-02T00:00:00.000Z', seen: '2024-03-04T04:06:07.000Z' });
  });

  test.each([
    [`{ column: t, format: "yyyy-MM-dd HH:mm:ss 'UTC'" }`, '2019-10-01T00:00:00Z', `column "t": "2019-10-01T00:00:00Z" does not match the date format "yyyy-MM-dd HH:mm:ss 'UTC'" (e.g. 2001-02-03 04:05:06 UTC)`],
    [`{ column: t, format: "yyyy-MM-dd HH:mm:ss 'UTC'" }`, '2019-02-30 00:00:00 UTC', 'column "t": "2019-02-30 00:00:00 UTC" does not match the date format "yyyy-MM-dd HH:mm:ss \'UTC\'" (e.g. 2001-02-03 04:05:06 UTC) (you specified 30 (of type number) as a day, which is invalid)'],
    [`{ column: t, format: "yyyy-MM-dd" }`, 20191001, 'column "t": a number is not text in the date format "yyyy-MM-dd" (e.g. 2001-02-03)'],
    ['{ column: t, format: epoch_seconds }', '2019-10-01', 'column "t": "2019-10-01" is not a number of seconds since 1970-01-01 UTC (format: epoch_seconds)'],
    ['{ column: t, format: epoch_seconds }', '1569888000123', 'column "t": "1569888000123" is too large for seconds since 1970 (it would be after the year 5000): it looks like milliseconds, use format: epoch_millis'],
    ['{ column: t, format: epoch_millis }', '1569888000', 'column "t": "1569888000" milliseconds since 1970 is before March 1973: it looks like seconds, use format: epoch_seconds'],
    ['{ column: t, format: epoch_millis }', '9e15', 'column "t": "9e15" is outside the range of dates'],
  ])('a value that does not match %s is a bad row naming the column, the value and the format (%j)', (timestamp, value, message) => {
    expect(rowError(eventsWith(timestamp), { u: 'u1', e: 'X', t: value })).toContain(message);
  });
});

describe('value maps', () => {
  const SHOP_EVENTS = yaml(
    'user_id: user_id', //                          1
    'event:', //                                     2
    '  from: event_type', //                         3
    '  map:', //                                     4
    '    view: Product Viewed', //                   5
    '    cart: Product Added', //                    6
    '    purchase: Order Completed', //              7
    'timestamp: t', //                               8
  );
  const row = (eventType: unknown) => ({ user_id: 'u1', event_type: eventType, t: '2019-10-01' });

  test('a value in the map becomes its target; the key is matched after trimming', () => {
    const mapping = compileImportMapping(SHOP_EVENTS, FILE, 'events');
    expect(mapRow(mapping, row('view'), sha256).event).toBe('Product Viewed');
    expect(mapRow(mapping, row(' purchase '), sha256).event).toBe('Order Completed');
  });

  test('unmapped: keep (the default) keeps the value as it is', () => {
    const mapping = compileImportMapping(SHOP_EVENTS, FILE, 'events');
    expect(mapRow(mapping, row('remove_from_cart'), sha256).event).toBe('remove_from_cart');
    expect(mapRow(mapping, row('View'), sha256).event).toBe('View'); // exact: the map does not guess at case
  });

  test('unmapped: skip leaves the row out with the reason; unmapped: bad_row makes it a bad row listing the map', () => {
    const skip = compileImportMapping(SHOP_EVENTS.replace('timestamp: t', '  unmapped: skip\ntimestamp: t'), FILE, 'events');
    expect(() => mapRow(skip, row('wishlist'), sha256)).toThrow(RowSkipped);
    expect(() => mapRow(skip, row('wishlist'), sha256)).toThrow('column "event_type": "wishlist" is not in its map (unmapped: skip)');
    const bad = compileImportMapping(SHOP_EVENTS.replace('timestamp: t', '  unmapped: bad_row\ntimestamp: t'), FILE, 'events');
    expect(rowError(bad, row('wishlist'))).toBe('column "event_type": "wishlist" is not in the map (it lists view, cart, purchase; unmapped: bad_row)');
    expect(mapRow(bad, row('cart'), sha256).event).toBe('Product Added');
  });

  test('a blank cell is blank, not looked up: a required field is a bad row, an optional one left out', () => {
    expect(rowError(compileImportMapping(SHOP_EVENTS, FILE, 'events'), row(' '))).toBe('column "event_type": is empty');
    const mapping = compileImportMapping(yaml('user_id: id', 'traits:', '  tier: { column: Tier, map: { g: gold } }'), FILE, 'profiles');
    expect(mapRow(mapping, { id: 'c1', Tier: '' }, sha256).traits).toEqual({});
  });

  test('the mapped value is then typed: numbers and booleans as targets, numeric keys as text', () => {
    const mapping = compileImportMapping(
      yaml('user_id: id', 'traits:', '  vip: { column: Tier, map: { gold: true, basic: false }, type: boolean }', '  rank: { column: Level, map: { 1: 10, 2: 20 }, type: number }'),
      FILE,
      'profiles',
    );
    expect(mapRow(mapping, { id: 'c1', Tier: 'gold', Level: '2' }, sha256).traits).toEqual({ vip: true, rank: 20 });
    expect(rowError(mapping, { id: 'c1', Tier: 'platinum', Level: '1' })).toContain('column "Tier": "platinum" is not a boolean');
  });

  test('a JSON object cannot be a map key: a bad row', () => {
    expect(rowError(compileImportMapping(SHOP_EVENTS, FILE, 'events'), row({ a: 1 }))).toBe('column "event_type": a JSON object cannot be looked up in the map');
  });
});

describe('derived properties: a product of columns, and objects built from line columns', () => {
  const LINES = yaml(
    'user_id: customer', //                                                1
    'event: { value: Order Completed }', //                                2
    'timestamp: at', //                                                    3
    'properties:', //                                                      4
    '  total: { multiply: [price, quantity] }', //                         5
    '  cents: { multiply: [price, 100, quantity], required: true }', //   6
    '  products:', //                                                      7
    '    - product_id: sku', //                                            8
    '      category: category_code', //                                    9
    '      price: { column: price, type: number }', //                     10
    '      quantity: { column: quantity, type: number }', //               11
  );
  const line = { customer: 'c1', at: '2024-01-01', sku: 'A-1', category_code: 'shoes', price: '4.35', quantity: '3' };

  test('total = price x quantity, without floating-point noise; products from the line columns', () => {
    const call = mapRow(compileImportMapping(LINES, FILE, 'events'), line, sha256);
    expect(call.properties).toEqual({ total: 13.05, cents: 1305, products: [{ product_id: 'A-1', category: 'shoes', price: 4.35, quantity: 3 }] });
  });

  test('an empty cell leaves its field out of the object, never ""; an item with nothing left is dropped', () => {
    const mapping = compileImportMapping(LINES, FILE, 'events');
    expect(mapRow(mapping, { ...line, category_code: '' }, sha256).properties!.products).toEqual([{ product_id: 'A-1', price: 4.35, quantity: 3 }]);
    const bare = compileImportMapping(yaml('user_id: customer', 'event: e', 'timestamp: at', 'properties:', '  products:', '    - product_id: sku', '      category: category_code'), FILE, 'events');
    expect(mapRow(bare, { customer: 'c1', e: 'Product Viewed', at: '2024-01-01', sku: ' ', category_code: '' }, sha256).properties).toEqual({});
  });

  test('a blank factor leaves an optional product out and makes a required one a bad row; a non-number is a bad row', () => {
    const mapping = compileImportMapping(LINES, FILE, 'events');
    expect(rowError(mapping, { ...line, quantity: '' })).toBe('column "quantity": is empty');
    const optional = compileImportMapping(yaml('user_id: customer', 'event: e', 'timestamp: at', 'properties:', '  total: { multiply: [price, quantity] }'), FILE, 'events');
    expect(mapRow(optional, { customer: 'c1', e: 'X', at: '2024-01-01', price: '2', quantity: '' }, sha256).properties).toEqual({});
    expect(rowError(optional, { customer: 'c1', e: 'X', at: '2024-01-01', price: '2 EUR', quantity: '1' })).toContain('column "price": "2 EUR" is not a number');
  });

  test('the header check sees the columns inside products and lists, at their own line:col', () => {
    const header = ['customer', 'at', 'sku', 'category_code', 'price', 'qty'];
    expect(checkHeader(compileImportMapping(LINES, FILE, 'events'), header, 'lines.csv').map((p) => `${p.line}:${p.column} ${p.path} ${p.message.split(';')[0]}`)).toEqual([
      '5:30 properties.total.multiply[1] column "quantity" is not in the header of lines.csv',
      '6:35 properties.cents.multiply[2] column "quantity" is not in the header of lines.csv',
      '11:27 properties.products[0].quantity.column column "quantity" is not in the header of lines.csv',
    ]);
  });
});

describe('mapping files: the new keys, every problem with file:line:col and path', () => {
  test('the shipped shop-export mapping and every existing form stay valid', () => {
    expect(checkImportMapping(yaml('user_id: u', 'event: { column: e, map: { view: Product Viewed }, unmapped: bad_row }', 'timestamp: { column: t, format: epoch_millis }'), FILE, 'events').problems).toEqual([]);
    expect(checkImportMapping(PROFILES, FILE, 'profiles').problems).toEqual([]);
    expect(checkImportMapping(EVENTS, FILE, 'events').problems).toEqual([]);
  });

  test.each([
    ['moment-style tokens', ['user_id: u', 'event: e', 'timestamp: { column: t, format: "YYYY-MM-DD HH:mm:ss" }'], 3, 33, 'timestamp.format', '"YYYY" is not a date token (Luxon writes the year yyyy and the day of the month dd: YYYY and DD are moment/dayjs spellings)'],
    ['an unquoted literal', ['user_id: u', 'event: e', 'timestamp: { column: t, format: "yyyy-MM-dd HH:mm:ss UTC" }'], 3, 33, 'timestamp.format', '"U", "C" are not date tokens'],
    ['a pattern without a year', ['user_id: u', 'event: e', 'timestamp: { column: t, format: "MM-dd HH:mm" }'], 3, 33, 'timestamp.format', 'has no year (yyyy): without one each date would fall in the current year'],
    ['an unknown time zone', ['user_id: u', 'event: e', 'timestamp: { column: t, format: "yyyy-MM-dd", zone: Europe/Berln }'], 3, 53, 'timestamp.zone', 'unknown time zone "Europe/Berln" (did you mean "Europe/Berlin"?)'],
    ['a zone beside ISO', ['user_id: u', 'event: e', 'timestamp: { column: t, zone: Europe/Berlin }'], 3, 25, 'timestamp.zone', 'zone does not apply to format iso: an ISO-8601 value carries its own offset'],
    ['a zone beside epoch', ['user_id: u', 'event: e', 'timestamp: { column: t, format: epoch_seconds, zone: UTC }'], 3, 48, 'timestamp.zone', 'an epoch time is an instant, the same in every zone'],
    ['a zone beside a pattern that reads offsets', ['user_id: u', 'event: e', 'timestamp: { column: t, format: "yyyy-MM-dd HH:mm ZZ", zone: UTC }'], 3, 56, 'timestamp.zone', 'reads each value\'s own offset or zone, so zone does not apply'],
    ['a format on a number', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  n: { column: n, type: number, format: epoch_seconds }'], 5, 33, 'properties.n.format', 'format applies to dates: property "n" is of type number (remove the type, or write type: date)'],
    ['a format on the event name', ['user_id: u', 'event: { column: e, format: iso }', 'timestamp: t'], 2, 21, 'event.format', 'format applies to dates: event is of type string'],
    ['a map that is a list', ['user_id: u', 'event: { column: e, map: [view] }', 'timestamp: t'], 2, 26, 'event.map', 'map must be a non-empty map of value in the file -> value to use'],
    ['an event mapped to a boolean', ['user_id: u', 'event: { column: e, map: { view: true } }', 'timestamp: t'], 2, 34, 'event.map.view', 'map: "view" must map to non-empty text, got true'],
    ['a map target that is a list', ['user_id: u', 'traits:', '  tier: { column: t, map: { g: [gold] } }'], 3, 32, 'traits.tier.map.g', 'must map to text, a number or true/false'],
    ['unmapped without a map', ['user_id: u', 'event: { column: e, unmapped: skip }', 'timestamp: t'], 2, 21, 'event.unmapped', 'unmapped says what a value missing from "map" does: it needs a map'],
    ['an unknown unmapped choice', ['user_id: u', 'event: { column: e, map: { a: b }, unmapped: skipp }', 'timestamp: t'], 2, 46, 'event.unmapped', 'unmapped: "skipp" (did you mean "skip"?) is not one of keep, skip, bad_row'],
    ['column and from together', ['user_id: u', 'event: { column: e, from: f }', 'timestamp: t'], 2, 21, 'event.from', '"from" is another name for "column": give one of them'],
    ['multiply with one factor', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  total: { multiply: [price] }'], 5, 22, 'properties.total.multiply', 'multiply takes a list of two or more columns or numbers'],
    ['multiply of constants only', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  total: { multiply: [2, 3] }'], 5, 22, 'properties.total.multiply', 'multiply needs at least one column'],
    ['a factor that is a map', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  total: { multiply: [price, { column: q }] }'], 5, 30, 'properties.total.multiply[1]', 'each factor is a column name or a number, got a map'],
    ['multiply beside a column key', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  total: { multiply: [a, b], type: number }'], 5, 30, 'properties.total.type', 'multiply reads each of its columns as a number, so "type" does not apply'],
    ['multiply for the event name', ['user_id: u', 'event: { multiply: [a, b] }', 'timestamp: t'], 2, 10, 'event.multiply', 'multiply makes a number: it builds traits and properties, not event'],
    ['a list for user_id', ['user_id: [a, b]', 'event: e', 'timestamp: t'], 1, 10, 'user_id', 'got a list (lists of objects, e.g. products, are built in traits and properties only)'],
    ['an empty list', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  products: []'], 5, 13, 'properties.products', 'an empty list builds nothing'],
    ['a list item that is not a map', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  products: [sku]'], 5, 14, 'properties.products[0]', 'each item of a list is a map of field name -> column'],
    ['a bad field inside a list item', ['user_id: u', 'event: e', 'timestamp: t', 'properties:', '  products:', '    - price: { column: p, type: money }'], 6, 33, 'properties.products[0].price.type', 'unknown type "money"'],
  ])('%s', (_name, lines, line, column, path, message) => {
    const problem = onlyError(yaml(...lines), lines.some((l) => l.startsWith('traits')) ? 'profiles' : 'events');
    expect(problem).toMatchObject({ file: FILE, line, column, path });
    expect(problem.message).toContain(message);
  });
});

describe('event names an import brings in, against what reads them', () => {
  test('the computed fields read the Segment e-commerce and email names, and not a shop\'s own or a misspelling', () => {
    const read = ['Product Viewed', 'Product Added', 'Product Removed', 'Order Completed', 'Checkout Started', 'Cart Viewed', 'Product List Viewed', 'Email Opened', 'Email Link Clicked', 'Email Delivered', 'Email Bounced', 'Email Marked as Spam'];
    expect(read.filter((name) => !computedFieldsRead(name))).toEqual([]);
    expect(['view', 'cart', 'purchase', 'remove_from_cart', 'Product Addd', 'product viewed', 'Signed Up', 'Segment Entered'].filter(computedFieldsRead)).toEqual([]);
  });

  const flow = compileFlow(
    yaml(
      'id: welcome',
      'version: 1',
      'priority: 10',
      'trigger: { event: Signed Up }',
      'exit: { on_event: Unsubscribed From Newsletter }',
      'steps:',
      '  - wait_for: { event: Profile Completed, timeout: 1d, on_event: [ { exit: done } ], on_timeout: [ { exit: timed-out } ] }',
    ),
    'flows/welcome.yaml',
    { templateExists: () => true, sha256: 'x' },
  );
  const dormant = compileFlow(yaml('id: dormant', 'version: 1', 'priority: 10', 'trigger: { inactivity: { event: Logged In, for: 30d } }', 'steps:', '  - exit: bye'), 'flows/dormant.yaml', { templateExists: () => true, sha256: 'y' });
  const segment = parseSegmentFile(yaml('id: reviewers', 'rules:', '  - performed: { event: Review Written, within: 30d }', '  - not: { last_performed: { event: Refund Requested, after: 7d } }'), 'segments/reviewers.yaml').segment!;

  test('flows (trigger, exit, wait_for, inactivity) and segment rules read the names they name', () => {
    expect([...eventNamesReadBy([flow, dormant], [segment])].sort()).toEqual(['Logged In', 'Profile Completed', 'Refund Requested', 'Review Written', 'Signed Up', 'Unsubscribed From Newsletter']);
  });

  test('the unused names, in the order given', () => {
    expect(unusedEventNames(['view', 'Signed Up', 'Order Completed', 'Review Written', 'Logged In', 'wishlist'], [flow, dormant], [segment])).toEqual(['view', 'wishlist']);
    expect(unusedEventNames(['view', 'Signed Up'], [], [])).toEqual(['view', 'Signed Up']);
  });

  test('a close known name is suggested for a typo or a case slip, nothing for a different word', () => {
    const known = ['Product Viewed', 'Product Added', 'Order Completed'];
    expect(closestEventName('Product Addd', known)).toBe('Product Added');
    expect(closestEventName('order completed', known)).toBe('Order Completed');
    expect(closestEventName('view', known)).toBeUndefined();
  });
});
