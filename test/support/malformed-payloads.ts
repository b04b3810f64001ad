// Malformed Segment calls for the ingest fuzz's regression set: deterministic for a seed, each breaking the ingest
// rules in one known way, and every batch whose body parses holding only invalid items, so a correct server answers
// every one with 400 (or 401 for the write-key cases) and stores nothing.
import { gzipSync } from 'node:zlib';
import { seededRandom } from './seeded-random';

export const FUZZ_WRITE_KEY = 'fuzz-write-key';
export const FUZZ_ENDPOINTS = ['/v1/track', '/v1/identify', '/v1/page', '/v1/screen', '/v1/group', '/v1/alias', '/v1/batch'] as const;
export type FuzzEndpoint = (typeof FUZZ_ENDPOINTS)[number];

/** The limits the corpus is built against: decoded body bytes per call, per batch, and nesting levels. */
export const EVENT_LIMIT_BYTES = 32 * 1024;
export const BATCH_LIMIT_BYTES = 500 * 1024;
export const MAX_DEPTH = 32;

export const MALFORMED_KINDS = [
  'wrong-type',
  'missing-required',
  'oversized',
  'deep-nesting',
  'invalid-utf8',
  'huge-number',
  'duplicate-key',
  'non-object-body',
  'truncated-json',
  'trailing-garbage',
  'not-strict-json',
  'bad-batch',
  'auth',
] as const;
export type MalformedKind = (typeof MALFORMED_KINDS)[number];

const KIND_LABELS: Record<MalformedKind, string> = {
  'wrong-type': 'wrong type',
  'missing-required': 'missing required field',
  oversized: 'oversized',
  'deep-nesting': 'deep nesting',
  'invalid-utf8': 'invalid UTF-8',
  'huge-number': 'huge number',
  'duplicate-key': 'duplicate key',
  'non-object-body': 'body not a JSON object',
  'truncated-json': 'truncated JSON',
  'trailing-garbage': 'trailing garbage',
  'not-strict-json': 'not strict JSON',
  'bad-batch': 'bad batch',
  auth: 'write key',
};

export interface MalformedPayload {
  endpoint: FuzzEndpoint;
  body: Buffer;
  /** Every request header to send: content-type, authorization (absent when the entry tests a missing key), content-encoding. */
  headers?: Record<string, string>;
  /** What is wrong, in words, e.g. "POST /v1/track: wrong type: properties is a string". */
  description: string;
  expectedStatus: 400 | 401;
  kind: MalformedKind;
  /** The error code the answer must carry where only one is right (payload_too_large, unauthorized). */
  expectedError?: string;
}

export function basicAuth(username: string, password = ''): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** A seed's whole corpus: the same seed always gives the same entries in the same order. */
export function malformedPayloads(seed = 0x5eed): MalformedPayload[] {
  const random = new Random(seed);
  return [
    ...wrongTypes(random),
    ...missingRequired(random),
    ...oversized(random),
    ...deepNesting(random),
    ...invalidUtf8(random),
    ...hugeNumbers(random),
    ...duplicateKeys(random),
    ...nonObjectBodies(random),
    ...truncatedJson(random),
    ...trailingGarbage(random),
    ...notStrictJson(random),
    ...badBatches(random),
    ...wrongWriteKeys(random),
  ];
}

// --- a JSON model that can also write what JSON.stringify cannot ------------------------------------------

/** Bytes written into the document as they are: invalid UTF-8, huge numbers, deep nesting, broken syntax. */
class Raw {
  readonly bytes: Buffer;
  constructor(bytes: string | Buffer | number[]) {
    this.bytes = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes);
  }
}

/** An object written member by member, so a key can repeat or be raw bytes. */
class Members {
  constructor(readonly members: ReadonlyArray<readonly [string | Raw, Json]>) {}
}

type Json = null | boolean | number | string | Raw | Members | Json[] | { [key: string]: Json };
type Call = { [key: string]: Json };

function encode(value: Json): Buffer {
  const parts: Buffer[] = [];
  let text = '';
  const flush = () => {
    if (text) parts.push(Buffer.from(text, 'utf8'));
    text = '';
  };
  const write = (v: Json): void => {
    if (v instanceof Raw) {
      flush();
      parts.push(v.bytes);
    } else if (v instanceof Members) {
      text += '{';
      v.members.forEach(([key, member], i) => {
        if (i > 0) text += ',';
        write(key);
        text += ':';
        write(member);
      });
      text += '}';
    } else if (Array.isArray(v)) {
      text += '[';
      v.forEach((item, i) => {
        if (i > 0) text += ',';
        write(item);
      });
      text += ']';
    } else if (v !== null && typeof v === 'object') {
      write(new Members(Object.entries(v)));
    } else {
      text += JSON.stringify(v);
    }
  };
  write(value);
  flush();
  return Buffer.concat(parts);
}

/** Seeded (mulberry32): Math.random would make failures unrepeatable. */
class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** `n` distinct items in random order. */
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, n);
  }
  id(prefix: string): string {
    return `${prefix}-${this.int(2 ** 31).toString(36)}`;
  }
}

// --- valid calls, which each kind then breaks ----------------------------------------------------------------

type CallType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';
const CALL_TYPES: readonly CallType[] = ['track', 'identify', 'page', 'screen', 'group', 'alias'];
const endpointOf = (type: CallType): FuzzEndpoint => `/v1/${type}`;

const EVENT_NAMES = ['Product Added', 'Order Completed', 'Checkout Started', 'Café Visited', 'Signed Up 🎉', 'Cart "Viewed"'];
const PROPERTY_KEYS = ['product_id', 'price', 'quantity', 'currency', 'sku', 'category', 'coupon', 'revenue', 'tags', 'in_stock', 'url', 'note'];
const WORDS = ['shoes', 'naïve', 'crème brûlée', '東京', 'emoji 😀', 'back\\slash', 'line\nbreak', 'tab\there', ''];

/** A plain object whose own shape is always valid: the field that holds it is what the kinds break. */
function smallObject(random: Random, depth = 0): Call {
  const object: Call = {};
  for (const key of random.sample(PROPERTY_KEYS, 1 + random.int(4))) {
    const roll = random.next();
    if (roll < 0.3) object[key] = random.pick(WORDS);
    else if (roll < 0.5) object[key] = random.int(100_000);
    else if (roll < 0.65) object[key] = Math.round(random.next() * 1e6) / 100;
    else if (roll < 0.75) object[key] = random.chance(0.5);
    else if (roll < 0.8) object[key] = null;
    else if (roll < 0.9 && depth < 2) object[key] = [random.pick(WORDS), random.int(10)];
    else object[key] = depth < 2 ? smallObject(random, depth + 1) : random.pick(WORDS);
  }
  return object;
}

function isoTime(random: Random): string {
  return new Date(Date.UTC(2024, 0, 1) + random.int(365 * 86_400_000)).toISOString();
}

function identityValue(random: Random): string | number {
  return random.chance(0.2) ? 1 + random.int(1_000_000) : random.id('user');
}

function validCall(random: Random, type: CallType): Call {
  const call: Call = {};
  const roll = random.next();
  if (type === 'alias') {
    call.userId = identityValue(random);
    call.previousId = random.chance(0.7) ? random.id('anon') : 1 + random.int(1_000_000);
  } else if (roll < 0.4) {
    call.userId = identityValue(random);
  } else if (roll < 0.7) {
    call.anonymousId = random.id('anon');
  } else {
    call.userId = identityValue(random);
    call.anonymousId = random.id('anon');
  }
  if (type === 'track') {
    call.event = random.pick(EVENT_NAMES);
    call.properties = smallObject(random);
  } else if (type === 'page' || type === 'screen') {
    if (random.chance(0.7)) call.name = random.pick(['Home', 'Pricing', 'Checkout', 'Réglages']);
    call.properties = smallObject(random);
  } else if (type === 'group') {
    call.groupId = random.chance(0.7) ? random.id('group') : 1 + random.int(10_000);
    call.traits = smallObject(random);
  } else if (type === 'identify') {
    call.traits = { email: `${random.id('someone')}@example.com`, ...smallObject(random) };
  }
  if (random.chance(0.6)) call.messageId = random.id('msg');
  if (random.chance(0.4)) call.timestamp = isoTime(random);
  if (random.chance(0.5)) call.context = { ip: `10.0.${random.int(256)}.${random.int(256)}`, locale: 'fr-FR', page: { path: '/products/42', title: random.pick(WORDS) } };
  if (random.chance(0.2)) call.integrations = { All: true, Mixpanel: false };
  return call;
}

function validItem(random: Random, type: CallType = random.pick(CALL_TYPES)): Call {
  return { type, ...validCall(random, type) };
}

function validBatch(random: Random, items = 1 + random.int(4)): Call {
  const body: Call = { batch: Array.from({ length: items }, () => validItem(random)) };
  if (random.chance(0.3)) body.sentAt = isoTime(random);
  return body;
}

/** The field of a call that holds an object of its own choosing: where padding, nesting and odd values go. */
function objectFieldOf(type: CallType): 'properties' | 'traits' | 'context' {
  if (type === 'track' || type === 'page' || type === 'screen') return 'properties';
  if (type === 'identify' || type === 'group') return 'traits';
  return 'context';
}

/** The object inside a call of `type` that `objectFieldOf` names, created if the call has none. */
function holderOf(call: Call, type: CallType): Call {
  const field = objectFieldOf(type);
  const existing = call[field];
  if (existing !== null && typeof existing === 'object' && !Array.isArray(existing) && !(existing instanceof Raw) && !(existing instanceof Members)) return existing;
  const created: Call = {};
  call[field] = created;
  return created;
}

// --- entries ---------------------------------------------------------------------------------------------

interface EntryOptions {
  expectedStatus?: 400 | 401;
  expectedError?: string;
  /** The Authorization header; null sends none. The valid write key by default. */
  authorization?: string | null;
  gzip?: boolean;
}

function entry(random: Random, kind: MalformedKind, endpoint: FuzzEndpoint, what: string, body: Json | Buffer, options: EntryOptions = {}): MalformedPayload {
  let bytes = Buffer.isBuffer(body) ? body : encode(body);
  // Segment clients differ in Content-Type (analytics.js beacons send text/plain); the server takes any.
  const headers: Record<string, string> = { 'content-type': random.chance(0.1) ? 'text/plain' : 'application/json' };
  const authorization = options.authorization === undefined ? basicAuth(FUZZ_WRITE_KEY) : options.authorization;
  if (authorization !== null) headers.authorization = authorization;
  if (options.gzip) {
    bytes = gzipSync(bytes);
    headers['content-encoding'] = 'gzip';
  }
  return {
    endpoint,
    body: bytes,
    headers,
    description: `POST ${endpoint}: ${KIND_LABELS[kind]}: ${what}`,
    expectedStatus: options.expectedStatus ?? 400,
    kind,
    ...(options.expectedError ? { expectedError: options.expectedError } : {}),
  };
}

/** Describes a wrong value for messages: `a string ("yesterday")`, `an array`, `the number 42`. */
function describeValue(value: Json): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array';
  if (typeof value === 'object') return Object.keys(value).length === 0 ? 'an empty object' : 'an object';
  if (typeof value === 'string') return value === '' ? 'an empty string' : `the string ${JSON.stringify(value)}`;
  return `the ${typeof value} ${String(value)}`;
}

// --- wrong types ---------------------------------------------------------------------------------------------

const WRONG_IDENTITY: Json[] = [{}, { id: 'u1' }, [], ['u1'], true, false];
const WRONG_STRING: Json[] = [42, 0, {}, [], ['x'], true, false];
const WRONG_EVENT: Json[] = ['', ...WRONG_STRING];
const WRONG_ID: Json[] = [{}, { id: 'g1' }, [], ['g1'], true, false];
const WRONG_TIME: Json[] = [
  1714564800000,
  1714564800,
  {},
  [],
  true,
  'yesterday',
  'not a date',
  '2024-13-01T00:00:00Z',
  '2024-02-30T12:00:00Z',
  '2024-05-01T25:00:00Z',
  '2024-05-01T12:60:00Z',
  '2024-05-01T12:00:00+25:00',
  '2024-5-1T12:00:00Z',
  '05/01/2024',
  'Wed, 01 May 2024 12:00:00 GMT',
  '1714564800000',
];
const WRONG_OBJECT: Json[] = ['a string', '{"plan":"pro"}', 42, [], [{ plan: 'pro' }], true, false];

/** A field and wrong values for it; the first is always used, the others sampled. */
type FieldRule = readonly [field: string, wrong: Json[]];
const COMMON_FIELDS: readonly FieldRule[] = [
  ['userId', WRONG_IDENTITY],
  ['anonymousId', WRONG_IDENTITY],
  ['messageId', WRONG_STRING],
  ['timestamp', WRONG_TIME],
  ['originalTimestamp', WRONG_TIME],
  ['sentAt', WRONG_TIME],
  ['context', WRONG_OBJECT],
  ['integrations', WRONG_OBJECT],
];
const TYPE_FIELDS: Record<CallType, readonly FieldRule[]> = {
  track: [
    ['event', WRONG_EVENT],
    ['properties', WRONG_OBJECT],
  ],
  identify: [['traits', WRONG_OBJECT]],
  page: [
    ['name', WRONG_STRING],
    ['properties', WRONG_OBJECT],
  ],
  screen: [
    ['name', WRONG_STRING],
    ['properties', WRONG_OBJECT],
  ],
  group: [
    ['groupId', WRONG_ID],
    ['traits', WRONG_OBJECT],
  ],
  alias: [['previousId', WRONG_ID]],
};
const fieldsOf = (type: CallType) => [...COMMON_FIELDS, ...TYPE_FIELDS[type]];

function wrongTypes(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const type of CALL_TYPES) {
    for (const [field, wrong] of fieldsOf(type)) {
      for (const value of [wrong[0]!, ...random.sample(wrong.slice(1), 2)]) {
        const call = validCall(random, type);
        call[field] = value;
        out.push(entry(random, 'wrong-type', endpointOf(type), `${field} is ${describeValue(value)}`, call));
      }
    }
  }
  for (let i = 0; i < 40; i++) {
    const body = validBatch(random);
    const broken = (body.batch as Call[]).map((item) => {
      const [field, wrong] = random.pick(fieldsOf(item.type as CallType));
      const value = random.pick(wrong);
      item[field] = value;
      return `${item.type as string} item with ${field} ${describeValue(value)}`;
    });
    out.push(entry(random, 'wrong-type', '/v1/batch', `every item has a wrong type: ${broken.join('; ')}`, body));
  }
  return out;
}

// --- missing required fields ---------------------------------------------------------------------------------

interface Removal {
  what: string;
  /** Types it applies to; all but batch when absent. */
  types?: readonly CallType[];
  apply(call: Call): void;
}

const REMOVALS: readonly Removal[] = [
  {
    what: 'neither userId nor anonymousId',
    apply: (c) => {
      delete c.userId;
      delete c.anonymousId;
    },
  },
  {
    what: 'userId is "" and there is no anonymousId',
    apply: (c) => {
      delete c.anonymousId;
      c.userId = '';
    },
  },
  {
    what: 'anonymousId is "" and there is no userId',
    types: ['track', 'identify', 'page', 'screen', 'group'],
    apply: (c) => {
      delete c.userId;
      c.anonymousId = '';
    },
  },
  {
    what: 'userId and anonymousId are null',
    apply: (c) => {
      c.userId = null;
      c.anonymousId = null;
    },
  },
  {
    what: 'userId and anonymousId are both ""',
    apply: (c) => {
      c.userId = '';
      c.anonymousId = '';
    },
  },
  { what: 'no event', types: ['track'], apply: (c) => delete c.event },
  { what: 'event is null', types: ['track'], apply: (c) => (c.event = null) },
  { what: 'no groupId', types: ['group'], apply: (c) => delete c.groupId },
  { what: 'groupId is null', types: ['group'], apply: (c) => (c.groupId = null) },
  { what: 'no previousId', types: ['alias'], apply: (c) => delete c.previousId },
  { what: 'previousId is null', types: ['alias'], apply: (c) => (c.previousId = null) },
  {
    what: 'no userId, only an anonymousId',
    types: ['alias'],
    apply: (c) => {
      delete c.userId;
      c.anonymousId = 'anon-1';
    },
  },
  {
    what: 'neither userId nor previousId',
    types: ['alias'],
    apply: (c) => {
      delete c.userId;
      delete c.previousId;
      c.anonymousId = 'anon-1';
    },
  },
];

const removalsFor = (type: CallType) => REMOVALS.filter((r) => (r.types ?? CALL_TYPES).includes(type));

function missingRequired(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const type of CALL_TYPES) {
    for (const removal of removalsFor(type)) {
      for (let i = 0; i < 3; i++) {
        const call = validCall(random, type);
        removal.apply(call);
        out.push(entry(random, 'missing-required', endpointOf(type), removal.what, call));
      }
    }
  }
  const batchCases: Array<[string, (item: Call) => void, CallType[]?]> = [
    ['every item has neither userId nor anonymousId', (item) => REMOVALS[0]!.apply(item)],
    ['every item lacks type', (item) => delete item.type],
    ['every item is a track call without event', (item) => delete item.event, ['track']],
    ['every item is a group call without groupId', (item) => delete item.groupId, ['group']],
    ['every item is an alias call without previousId', (item) => delete item.previousId, ['alias']],
    ['every item lacks a field its type requires', (item) => random.pick(removalsFor(item.type as CallType)).apply(item)],
  ];
  for (const [what, remove, types] of batchCases) {
    for (let i = 0; i < 4; i++) {
      const body: Call = { batch: Array.from({ length: 1 + random.int(4) }, () => validItem(random, types ? random.pick(types) : undefined)) };
      (body.batch as Call[]).forEach(remove);
      out.push(entry(random, 'missing-required', '/v1/batch', what, body));
    }
  }
  for (const body of [{}, { sentAt: '2024-05-01T12:00:00Z' }, { context: { library: { name: 'analytics-node' } } }, { events: [validItem(random)] }]) {
    out.push(entry(random, 'missing-required', '/v1/batch', `no batch field (keys: ${Object.keys(body).join(', ') || 'none'})`, body as Call));
  }
  return out;
}

// --- oversized -----------------------------------------------------------------------------------------------

/** Sets `holder.padding` so that `body` encodes to exactly `target` bytes, padding with `unit` (1, 2, 3 or 4 bytes). */
function padTo(body: Json, holder: Call, target: number, unit: string): void {
  holder.padding = '';
  const missing = target - encode(body).length;
  if (missing < 0) throw new Error(`padTo: the body is already over ${target} bytes`);
  const unitBytes = Buffer.byteLength(unit);
  holder.padding = unit.repeat(Math.floor(missing / unitBytes)) + 'x'.repeat(missing % unitBytes);
  if (encode(body).length !== target) throw new Error('padTo: missed the target size');
}

const PADDING_UNITS = [
  ['x', 'ASCII'],
  ['é', '2-byte é, fewer characters than bytes'],
  ['中', '3-byte 中'],
  ['😀', '4-byte emoji'],
] as const;

function oversized(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  const tooLarge = { expectedError: 'payload_too_large' };
  const sizes = [EVENT_LIMIT_BYTES + 1, EVENT_LIMIT_BYTES + 1, EVENT_LIMIT_BYTES + 3, 40_000, 64 * 1024, 100_000, 1024 * 1024];
  for (const type of CALL_TYPES) {
    for (const size of sizes) {
      const [unit, unitName] = random.pick(PADDING_UNITS);
      const call = validCall(random, type);
      padTo(call, holderOf(call, type), size, unit);
      out.push(entry(random, 'oversized', endpointOf(type), `event of ${size} bytes (limit ${EVENT_LIMIT_BYTES}), padded with ${unitName}`, call, tooLarge));
    }
    for (const size of [EVENT_LIMIT_BYTES + 1, 4 * 1024 * 1024]) {
      const call = validCall(random, type);
      padTo(call, holderOf(call, type), size, 'x');
      out.push(entry(random, 'oversized', endpointOf(type), `gzipped event of ${size} bytes once decoded (limit ${EVENT_LIMIT_BYTES})`, call, { ...tooLarge, gzip: true }));
    }
  }
  // Oversized batches hold valid items of about 20 KB each: only the batch size is wrong, so a server that lets
  // the body through would store them.
  const batchOf = (size: number): Call => {
    const body: Call = { batch: [] };
    const items = body.batch as Call[];
    let length = encode(body).length;
    while (length < size - 25_000) {
      const item = validItem(random, 'track');
      holderOf(item, 'track').padding = 'x'.repeat(20_000);
      items.push(item);
      length += encode(item).length + 1;
    }
    padTo(body, holderOf(items[0]!, 'track'), size, 'x');
    return body;
  };
  for (const size of [BATCH_LIMIT_BYTES + 1, BATCH_LIMIT_BYTES + 1, BATCH_LIMIT_BYTES + 1000, 600_000, 1024 * 1024, 2 * 1024 * 1024]) {
    out.push(entry(random, 'oversized', '/v1/batch', `batch of ${size} bytes (limit ${BATCH_LIMIT_BYTES}) of valid ~20 KB items`, batchOf(size), tooLarge));
  }
  for (const size of [BATCH_LIMIT_BYTES + 1, 3 * 1024 * 1024]) {
    out.push(
      entry(random, 'oversized', '/v1/batch', `gzipped batch of ${size} bytes once decoded (limit ${BATCH_LIMIT_BYTES}) of valid ~20 KB items`, batchOf(size), {
        ...tooLarge,
        gzip: true,
      }),
    );
  }
  return out;
}

// --- deep nesting --------------------------------------------------------------------------------------------

type NestingStyle = 'objects' | 'arrays' | 'mixed';

/** `levels` nested containers around a leaf, written directly: a recursive encoder would overflow on the deep ones. */
function nested(levels: number, style: NestingStyle): Raw {
  if (style === 'objects') return new Raw(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
  if (style === 'arrays') return new Raw(`${'['.repeat(levels)}1${']'.repeat(levels)}`);
  let open = '';
  let close = '';
  for (let i = 0; i < levels; i++) {
    open += i % 2 === 0 ? '[' : '{"k":';
    close = (i % 2 === 0 ? ']' : '}') + close;
  }
  return new Raw(`${open}1${close}`);
}

function deepNesting(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  const styles: readonly NestingStyle[] = ['objects', 'arrays', 'mixed'];
  // The body is level 1, so a value holding n containers makes the document n + 1 levels deep.
  for (const type of CALL_TYPES) {
    for (const depth of [MAX_DEPTH + 1, MAX_DEPTH + 1, MAX_DEPTH + 2, 40, 64, 200, 1000, 5000]) {
      let style = random.pick(styles);
      const call = validCall(random, type);
      const field = objectFieldOf(type);
      call[field] = nested(depth - 1, style);
      // Kept under the size limit, so it is the depth that must be refused.
      if (encode(call).length > EVENT_LIMIT_BYTES) {
        style = 'arrays';
        call[field] = nested(depth - 1, style);
      }
      out.push(entry(random, 'deep-nesting', endpointOf(type), `${depth} levels deep (${style}) through ${field}`, call));
    }
    const call = validCall(random, type);
    call[objectFieldOf(type)] = nested(1_000_000, 'arrays');
    out.push(entry(random, 'deep-nesting', endpointOf(type), `very deep: 1,000,000 levels of arrays in ${objectFieldOf(type)} (also over the size limit)`, call));
    out.push(entry(random, 'deep-nesting', endpointOf(type), 'very deep: a body of 1,000,000 unclosed [', Buffer.alloc(1_000_000, '[')));
  }
  // A batch item is level 3; items are refused past 32 levels of their own too, so these pass 32 either way.
  for (const itemDepth of [MAX_DEPTH + 1, MAX_DEPTH + 2, 50, 100, 1000, 10_000, 200_000]) {
    // One item only when very deep, so the batch stays under its size limit and it is the depth that is refused.
    const body = validBatch(random, itemDepth > 5000 ? 1 : undefined);
    const items = body.batch as Call[];
    const style = itemDepth > 5000 ? 'arrays' : random.pick(styles);
    for (const item of items) item[objectFieldOf(item.type as CallType)] = nested(itemDepth - 1, style);
    const very = itemDepth >= 10_000 ? 'very deep: ' : '';
    out.push(entry(random, 'deep-nesting', '/v1/batch', `${very}every item ${itemDepth} levels deep (${style}), the body ${itemDepth + 2}`, body));
  }
  out.push(entry(random, 'deep-nesting', '/v1/batch', 'very deep: a body of 1,000,000 unclosed [', Buffer.alloc(1_000_000, '[')));
  out.push(entry(random, 'deep-nesting', '/v1/batch', 'very deep: the batch array 100,000 levels deep', { batch: nested(100_000, 'arrays') }));
  return out;
}

// --- invalid UTF-8 -------------------------------------------------------------------------------------------

const BAD_UTF8: ReadonlyArray<{ bytes: number[]; what: string }> = [
  { bytes: [0x80], what: 'a lone continuation byte 0x80' },
  { bytes: [0xbf], what: 'a lone continuation byte 0xBF' },
  { bytes: [0x80, 0x80, 0x80], what: 'a lone continuation run 80 80 80' },
  { bytes: [0xc0, 0xaf], what: 'an overlong "/" (C0 AF)' },
  { bytes: [0xc1, 0x81], what: 'an overlong "A" (C1 81)' },
  { bytes: [0xc0, 0x80], what: 'an overlong NUL (C0 80)' },
  { bytes: [0xe0, 0x80, 0xaf], what: 'a 3-byte overlong (E0 80 AF)' },
  { bytes: [0xf0, 0x80, 0x80, 0xaf], what: 'a 4-byte overlong (F0 80 80 AF)' },
  { bytes: [0xc3], what: 'a truncated 2-byte sequence (C3)' },
  { bytes: [0xe2, 0x82], what: 'a truncated 3-byte sequence (E2 82)' },
  { bytes: [0xf0, 0x9f, 0x98], what: 'a truncated 4-byte sequence (F0 9F 98)' },
  { bytes: [0xed, 0xa0, 0x80], what: 'an encoded surrogate (ED A0 80)' },
  { bytes: [0xed, 0xbf, 0xbf], what: 'an encoded surrogate (ED BF BF)' },
  { bytes: [0xf4, 0x90, 0x80, 0x80], what: 'a code point beyond U+10FFFF (F4 90 80 80)' },
  { bytes: [0xf5, 0x80, 0x80, 0x80], what: 'a lead byte beyond U+10FFFF (F5)' },
  { bytes: [0xff], what: 'the byte 0xFF' },
  { bytes: [0xfe, 0xff], what: 'a UTF-16 byte order mark (FE FF)' },
  { bytes: [0x63, 0x61, 0x66, 0xe9], what: 'Latin-1 "café" (E9)' },
];

/** A string token with `bad` bytes in its middle. */
const badString = (bad: number[]) => new Raw(Buffer.concat([Buffer.from('"bad'), Buffer.from(bad), Buffer.from('value"')]));

/** Puts `bad` into a call of `type` as a key or as a value; says where. */
function placeBadUtf8(random: Random, call: Call, type: CallType, bad: number[]): string {
  if (random.chance(0.4)) {
    const holder = holderOf(call, type);
    const field = objectFieldOf(type);
    call[field] = new Members([...Object.entries(holder), [badString(bad), 1]]);
    return `in a key of ${field}`;
  }
  const where = random.pick(['identity', 'name', 'property', 'context'] as const);
  if (where === 'identity') {
    call[call.userId !== undefined ? 'userId' : 'anonymousId'] = badString(bad);
    return `in a value (${call.userId !== undefined ? 'userId' : 'anonymousId'})`;
  }
  if (where === 'name' && type === 'track') {
    call.event = badString(bad);
    return 'in a value (event)';
  }
  if (where === 'context') {
    call.context = { page: { title: badString(bad) } };
    return 'in a value (context.page.title)';
  }
  holderOf(call, type).note = badString(bad);
  return `in a value (${objectFieldOf(type)}.note)`;
}

function invalidUtf8(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const type of CALL_TYPES) {
    for (const { bytes, what } of BAD_UTF8) {
      const call = validCall(random, type);
      const where = placeBadUtf8(random, call, type, bytes);
      out.push(entry(random, 'invalid-utf8', endpointOf(type), `${what} ${where}`, call));
    }
    // A body cut inside a multi-byte character: the sequence is truncated by the end of the data.
    const call = validCall(random, type);
    holderOf(call, type).note = 'prix: 10 €';
    const text = encode(call);
    const euro = text.lastIndexOf(Buffer.from('€'));
    out.push(entry(random, 'invalid-utf8', endpointOf(type), 'a truncated 3-byte sequence: the body ends inside "€" (E2 82)', text.subarray(0, euro + 2)));
  }
  for (const { bytes, what } of BAD_UTF8) {
    const body = validBatch(random);
    const items = body.batch as Call[];
    const item = items[random.int(items.length)]!;
    const where = placeBadUtf8(random, item, item.type as CallType, bytes);
    out.push(entry(random, 'invalid-utf8', '/v1/batch', `${what} ${where} of one item`, body));
  }
  return out;
}

// --- huge numbers --------------------------------------------------------------------------------------------

const HUGE_NUMBERS = [
  '1e400',
  '-1e999',
  '12345678901234567890',
  '-12345678901234567890',
  '9007199254740993',
  '-9007199254740992',
  '1e309',
  '-1.8e308',
  '2E+308',
  '123456789012345678901234567890',
  '18446744073709551616',
  '9'.repeat(400),
];

function hugeNumbers(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  const abbreviated = (n: string) => (n.length > 30 ? `${n.slice(0, 12)}… (${n.length} digits)` : n);
  const place = (call: Call, type: CallType, n: string): string => {
    const raw = new Raw(n);
    const roll = random.next();
    if (roll < 0.5) {
      holderOf(call, type).revenue = raw;
      return `${objectFieldOf(type)}.revenue`;
    }
    if (roll < 0.65) {
      holderOf(call, type).values = [1, 2, raw];
      return `${objectFieldOf(type)}.values[2]`;
    }
    if (roll < 0.75) {
      call.context = { device: { id: raw } };
      return 'context.device.id';
    }
    const field = type === 'group' && roll < 0.85 ? 'groupId' : type === 'alias' && roll < 0.85 ? 'previousId' : call.userId !== undefined ? 'userId' : 'anonymousId';
    call[field] = raw;
    return field;
  };
  for (const type of CALL_TYPES) {
    for (const n of HUGE_NUMBERS) {
      const call = validCall(random, type);
      out.push(entry(random, 'huge-number', endpointOf(type), `${abbreviated(n)} in ${place(call, type, n)}`, call));
    }
    for (const n of ['12345678901234567890', '1e400']) {
      const call = validCall(random, type);
      const field = type === 'alias' || call.userId !== undefined ? 'userId' : 'anonymousId';
      call[field] = new Raw(n);
      out.push(entry(random, 'huge-number', endpointOf(type), `${n} as ${field}`, call));
    }
  }
  for (const n of HUGE_NUMBERS) {
    const body = validBatch(random);
    const items = body.batch as Call[];
    const item = items[random.int(items.length)]!;
    out.push(entry(random, 'huge-number', '/v1/batch', `${abbreviated(n)} in ${place(item, item.type as CallType, n)} of one item`, body));
  }
  return out;
}

// --- duplicate keys ------------------------------------------------------------------------------------------

/** The members of `object` with `key` written again after its first occurrence, optionally spelled differently. */
function withDuplicate(random: Random, object: Call, key: string, value: Json, spelling?: Raw): Members {
  const members: Array<readonly [string | Raw, Json]> = Object.entries(object);
  const first = members.findIndex(([k]) => k === key);
  if (first === -1) members.push([key, value]);
  const at = members.findIndex(([k]) => k === key);
  members.splice(at + 1 + random.int(members.length - at), 0, [spelling ?? key, value]);
  return new Members(members);
}

/** `"\u0075serId"`: the same key as "userId" once unescaped. */
const escapedKey = (key: string) => new Raw(`"\\u${key.charCodeAt(0).toString(16).padStart(4, '0')}${key.slice(1)}"`);

function duplicateKeys(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  const dup = (type: CallType, call: Call, endpoint: FuzzEndpoint, wrap: (m: Members) => Json = (m) => m, prefix = '') => {
    const roll = random.next();
    const keys = Object.keys(call);
    if (roll < 0.2) {
      const key = random.pick(keys);
      return entry(random, 'duplicate-key', endpoint, `${prefix}top level: "${key}" twice with the same value`, wrap(withDuplicate(random, call, key, call[key]!)));
    }
    if (roll < 0.4) {
      const key = call.userId !== undefined ? 'userId' : 'anonymousId';
      return entry(random, 'duplicate-key', endpoint, `${prefix}top level: "${key}" twice with different values`, wrap(withDuplicate(random, call, key, random.id('other'))));
    }
    if (roll < 0.5) {
      const key = random.pick(keys);
      return entry(random, 'duplicate-key', endpoint, `${prefix}top level: "${key}" and its \\u-escaped spelling`, wrap(withDuplicate(random, call, key, call[key]!, escapedKey(key))));
    }
    if (roll < 0.85) {
      const holder = holderOf(call, type);
      const field = objectFieldOf(type);
      if (Object.keys(holder).length === 0) holder.sku = 'sku-1';
      const key = random.pick(Object.keys(holder));
      const escaped = random.chance(0.2);
      call[field] = withDuplicate(random, holder, key, random.pick<Json>([holder[key]!, 'other', 2, null]), escaped ? escapedKey(key) : undefined);
      return entry(random, 'duplicate-key', endpoint, `${prefix}nested: "${key}" twice in ${field}${escaped ? ', once \\u-escaped' : ''}`, wrap(new Members(Object.entries(call))));
    }
    const page = { path: '/a', title: 'A' };
    call.context = { locale: 'fr-FR', page: withDuplicate(random, page, 'path', '/b') };
    return entry(random, 'duplicate-key', endpoint, `${prefix}nested: "path" twice in context.page`, wrap(new Members(Object.entries(call))));
  };
  for (const type of CALL_TYPES) {
    for (let i = 0; i < 16; i++) out.push(dup(type, validCall(random, type), endpointOf(type)));
  }
  for (let i = 0; i < 12; i++) {
    const body = validBatch(random);
    const items = body.batch as Json[];
    const index = random.int(items.length);
    const item = items[index] as Call;
    out.push(
      dup(item.type as CallType, item, '/v1/batch', (m) => {
        items[index] = m;
        return body;
      }, `item ${index}, `),
    );
  }
  for (let i = 0; i < 4; i++) {
    const body = withDuplicate(random, { batch: [{ type: 'track', event: 'x' }] }, 'batch', validBatch(random).batch!);
    out.push(entry(random, 'duplicate-key', '/v1/batch', 'top level: "batch" twice, the first invalid and the second valid', body));
  }
  return out;
}

// --- bodies that are not a JSON object -----------------------------------------------------------------------

function nonObjectBodies(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const endpoint of FUZZ_ENDPOINTS) {
    const type = endpoint === '/v1/batch' ? undefined : (endpoint.slice(4) as CallType);
    const call = type ? validCall(random, type) : validBatch(random);
    const cases: Array<[string, Buffer]> = [
      ['an empty body', Buffer.alloc(0)],
      ['an empty body of whitespace only', Buffer.from(' \r\n\t ')],
      ['an empty array', Buffer.from('[]')],
      ['an array holding the call', encode([call])],
      ['an array of arrays', Buffer.from('[[]]')],
      ['a string', Buffer.from('"hello"')],
      ['an empty string', Buffer.from('""')],
      ['a string holding the call as JSON text (encoded twice)', Buffer.from(JSON.stringify(encode(call).toString('utf8')))],
      ['null', Buffer.from('null')],
      ['a number', Buffer.from(String(random.int(1000)))],
      ['a negative number', Buffer.from('-1.5e3')],
      ['a number zero', Buffer.from('0')],
      ['true', Buffer.from('true')],
      ['false', Buffer.from('false')],
    ];
    if (endpoint === '/v1/batch') cases.push(['a bare array of items, without the batch wrapper', encode((call as { batch: Json[] }).batch)]);
    for (const [what, body] of cases) out.push(entry(random, 'non-object-body', endpoint, what, body));
  }
  return out;
}

// --- truncated JSON, trailing garbage, and JSON that is not RFC 8259 -----------------------------------------

function validBodyFor(random: Random, endpoint: FuzzEndpoint): Call {
  return endpoint === '/v1/batch' ? validBatch(random) : validCall(random, endpoint.slice(4) as CallType);
}

function truncatedJson(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const endpoint of FUZZ_ENDPOINTS) {
    for (let i = 0; i < 14; i++) {
      const text = encode(validBodyFor(random, endpoint));
      // Never the whole text, never nothing: every proper prefix of an object is unfinished.
      const cut = i === 0 ? 1 : i === 1 ? text.length - 1 : 1 + random.int(text.length - 1);
      out.push(entry(random, 'truncated-json', endpoint, `cut after ${cut} of ${text.length} bytes: …${JSON.stringify(text.subarray(Math.max(0, cut - 12), cut).toString('utf8'))}`, text.subarray(0, cut)));
    }
  }
  return out;
}

const GARBAGE = [
  '}',
  ']',
  ',',
  'x',
  '{}',
  '[]',
  'null',
  '0',
  '"',
  ';',
  '\u0000',
  ' // trailing comment',
  '/* trailing */',
  '\n{"userId":"u2","event":"Second Event"}',
  ',{}',
  ' garbage',
  '\r\n--boundary--',
  '\u001a',
  '\ufeff',
];

function trailingGarbage(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const endpoint of FUZZ_ENDPOINTS) {
    for (const garbage of random.sample(GARBAGE, 13)) {
      const body = Buffer.concat([encode(validBodyFor(random, endpoint)), Buffer.from(random.chance(0.3) ? ` \n${garbage}` : garbage)]);
      out.push(entry(random, 'trailing-garbage', endpoint, `${JSON.stringify(garbage)} after the object`, body));
    }
  }
  return out;
}

/** Ways to write "almost JSON" that JavaScript, JSON5 or Python accept and RFC 8259 does not. */
const LAX_JSON: ReadonlyArray<{ what: string; apply(holder: Call): void; text?: (json: string) => string }> = [
  { what: 'a trailing comma after the last member', apply: () => undefined, text: (json) => `${json.slice(0, -1)},}` },
  { what: 'a trailing comma in an array', apply: (h) => (h.tags = new Raw('["a","b",]')) },
  { what: 'an empty array element', apply: (h) => (h.tags = new Raw('["a",,"b"]')) },
  { what: 'a line comment', apply: () => undefined, text: (json) => `{// sent by the shop\n${json.slice(1)}` },
  { what: 'a block comment', apply: () => undefined, text: (json) => `{/* sent by the shop */${json.slice(1)}` },
  { what: 'NaN as a value', apply: (h) => (h.price = new Raw('NaN')) },
  { what: 'Infinity as a value', apply: (h) => (h.price = new Raw('Infinity')) },
  { what: '-Infinity as a value', apply: (h) => (h.price = new Raw('-Infinity')) },
  { what: 'undefined as a value', apply: (h) => (h.coupon = new Raw('undefined')) },
  { what: 'Python True as a value', apply: (h) => (h.in_stock = new Raw('True')) },
  { what: 'Python None as a value', apply: (h) => (h.coupon = new Raw('None')) },
  { what: 'a single-quoted string value', apply: (h) => (h.sku = new Raw("'sku-1'")) },
  { what: 'a single-quoted key', apply: () => undefined, text: (json) => `{'plan':"pro",${json.slice(1)}` },
  { what: 'an unquoted key', apply: () => undefined, text: (json) => `{plan:"pro",${json.slice(1)}` },
  { what: 'a raw newline in a string', apply: (h) => (h.note = new Raw('"line\nbreak"')) },
  { what: 'a raw tab in a string', apply: (h) => (h.note = new Raw('"tab\there"')) },
  { what: 'a raw NUL in a string', apply: (h) => (h.note = new Raw('"nul\u0000here"')) },
  { what: 'a raw U+001F in a string', apply: (h) => (h.note = new Raw('"unit\u001fseparator"')) },
  { what: 'a hex number', apply: (h) => (h.quantity = new Raw('0x1F')) },
  { what: 'a number with a leading zero', apply: (h) => (h.quantity = new Raw('007')) },
  { what: 'a number with a + sign', apply: (h) => (h.quantity = new Raw('+1')) },
  { what: 'a number starting with a point', apply: (h) => (h.price = new Raw('.5')) },
  { what: 'a number ending with a point', apply: (h) => (h.price = new Raw('1.')) },
  { what: 'an exponent with no digits', apply: (h) => (h.price = new Raw('1e')) },
  { what: 'an invalid escape \\x', apply: (h) => (h.note = new Raw('"\\x41"')) },
  { what: "an invalid escape \\'", apply: (h) => (h.note = new Raw('"it\\\'s"')) },
  { what: 'a \\u escape with 2 hex digits', apply: (h) => (h.note = new Raw('"\\u41"')) },
  { what: 'a \\U escape', apply: (h) => (h.note = new Raw('"\\U0001F600"')) },
  { what: 'a missing colon', apply: () => undefined, text: (json) => `{"plan" "pro",${json.slice(1)}` },
  { what: 'a missing comma between members', apply: () => undefined, text: (json) => `{"plan":"pro" ${json.slice(1)}` },
];

function notStrictJson(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  for (const endpoint of FUZZ_ENDPOINTS) {
    for (const lax of random.sample(LAX_JSON, 12)) {
      const body = validBodyFor(random, endpoint);
      const target = endpoint === '/v1/batch' ? (body.batch as Call[])[0]! : body;
      lax.apply(holderOf(target, (target.type as CallType | undefined) ?? (endpoint.slice(4) as CallType)));
      const bytes = lax.text ? Buffer.from(lax.text(encode(body).toString('utf8'))) : encode(body);
      out.push(entry(random, 'not-strict-json', endpoint, lax.what, bytes));
    }
  }
  return out;
}

// --- batches that are wrong as batches -----------------------------------------------------------------------

function badBatches(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  const item = () => validItem(random);
  const cases: Array<[string, () => Json]> = [
    ['batch is an object', () => ({ '0': item() })],
    ['batch is an empty object', () => ({})],
    ['batch is a string', () => 'track'],
    ['batch is a string holding the items as JSON text', () => encode([item()]).toString('utf8')],
    ['batch is a number', () => 3],
    ['batch is true', () => true],
    ['batch is null', () => null],
    ['batch is an empty array', () => []],
    ['every item is a number', () => [1, 2, 3]],
    ['every item is a string', () => ['track', 'identify']],
    ['every item is a call encoded as JSON text', () => [encode(item()).toString('utf8'), encode(item()).toString('utf8')]],
    ['every item is null', () => [null, null]],
    ['every item is an array', () => [[], [1]]],
    ['every item is an array holding a valid call', () => [[item()], [item()]]],
    ['every item is a boolean', () => [true, false]],
  ];
  const badTypes: Json[] = ['purchase', 'event', 'batch', '', 42, null, true, {}, ['track'], { type: 'track' }];
  for (const [what, batch] of cases) {
    for (let i = 0; i < 2; i++) out.push(entry(random, 'bad-batch', '/v1/batch', what, { batch: batch() }));
  }
  for (const badType of badTypes) {
    for (let i = 0; i < 2; i++) {
      const body = validBatch(random);
      for (const it of body.batch as Call[]) it.type = badType;
      out.push(entry(random, 'bad-batch', '/v1/batch', `every item has type ${describeValue(badType)}`, body));
    }
  }
  for (let i = 0; i < 10; i++) {
    // Each item wrong in its own way: not an object, an unknown type, or a call missing what its type requires.
    const items: Json[] = [];
    const reasons: string[] = [];
    for (let n = 2 + random.int(4); n > 0; n--) {
      const roll = random.next();
      if (roll < 0.3) {
        items.push(random.pick<Json>([1, 'x', null, [], true]));
        reasons.push('not an object');
      } else if (roll < 0.6) {
        const it = validItem(random);
        it.type = random.pick(badTypes);
        items.push(it);
        reasons.push('unknown type');
      } else {
        const it = validItem(random);
        const removal = random.pick(removalsFor(it.type as CallType));
        removal.apply(it);
        items.push(it);
        reasons.push(`${it.type as string}: ${removal.what}`);
      }
    }
    out.push(entry(random, 'bad-batch', '/v1/batch', `every item wrong its own way (${reasons.join('; ')})`, { batch: items }));
  }
  return out;
}

// --- write keys ----------------------------------------------------------------------------------------------

const WRONG_AUTHORIZATION: ReadonlyArray<[string, string | null]> = [
  ['missing Authorization header', null],
  ['wrong write key', basicAuth('not-the-fuzz-key')],
  ['wrong write key differing only in case', basicAuth(FUZZ_WRITE_KEY.toUpperCase())],
  ['wrong write key one character short', basicAuth(FUZZ_WRITE_KEY.slice(0, -1))],
  ['wrong write key with a suffix', basicAuth(`${FUZZ_WRITE_KEY}-2`)],
  ['missing write key: the key sent as the password, the username empty', basicAuth('', FUZZ_WRITE_KEY)],
  ['missing write key: Bearer instead of Basic', `Bearer ${FUZZ_WRITE_KEY}`],
  ['missing write key: the key sent bare, without a scheme', FUZZ_WRITE_KEY],
  ['missing write key: Basic with no credentials', 'Basic'],
  ['missing write key: an empty Authorization header', ''],
];

function wrongWriteKeys(random: Random): MalformedPayload[] {
  const out: MalformedPayload[] = [];
  FUZZ_ENDPOINTS.forEach((endpoint, e) => {
    // A valid body, so only the key is wrong: a server that let it through would store it.
    for (let i = 0; i < 4; i++) {
      const [what, authorization] = WRONG_AUTHORIZATION[(e * 4 + i) % WRONG_AUTHORIZATION.length]!;
      out.push(entry(random, 'auth', endpoint, `${what}, with a valid body`, validBodyFor(random, endpoint), { expectedStatus: 401, expectedError: 'unauthorized', authorization }));
    }
  });
  // Segment also takes the key as "writeKey" in the body when there is no Authorization header.
  const bodyKeys: ReadonlyArray<[string, Json]> = [
    ['a wrong "writeKey" in the body', 'not-the-fuzz-key'],
    ['an empty "writeKey" in the body', ''],
    ['a "writeKey" in the body that is not a string', 42],
  ];
  for (const endpoint of ['/v1/track', '/v1/batch'] as const) {
    for (const [what, writeKey] of bodyKeys) {
      const body = { ...validBodyFor(random, endpoint), writeKey };
      out.push(entry(random, 'auth', endpoint, `no Authorization header and ${what}`, body, { expectedStatus: 401, expectedError: 'unauthorized', authorization: null }));
    }
  }
  return out;
}
