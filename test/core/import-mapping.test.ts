// Import mappings: the YAML is checked with file:line:col like flow files, and each row maps to the Segment call the
// HTTP API would accept, or fails with the column and the reason.
import { createHash } from 'node:crypto';
import { InvalidFileError } from '../../core/errors';
import type { FileProblem } from '../../core/errors';
import { canonicalJson, checkHeader, checkImportMapping, compileImportMapping, importRow, lookupColumn, mapRow } from '../../core/import-mapping';
import type { ImportKind, ImportMapping } from '../../core/import-mapping';

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
