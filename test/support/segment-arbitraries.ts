// fast-check arbitraries for Segment calls: valid calls and batches of every type, and mutations that break
// exactly one rule at a known field, for the property tests of the ingest parser and the ingest endpoints.
import fc from 'fast-check';
import { CALL_TYPES, EVENT_LIMIT, isoToMs, isPlainObject, isStrictSafe, isUnsafeNumber, type CallType } from './segment-reference';

export type Call = Record<string, unknown>;

// --- leaves -----------------------------------------------------------------------------------------------------

/** Any code point but U+0000 (control characters included): what a JSON string can carry and a store keeps. */
const textUnit = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => c !== '\u0000');

/** Any text a store keeps as sent (see unstorableText for the rest). */
export const anyText = (maxLength = 12) => fc.string({ unit: textUnit, maxLength });

/** Text holding what JSON can carry but no store keeps as sent: U+0000, or a surrogate without its pair. */
export const unstorableText = fc
  .tuple(anyText(6), fc.oneof(fc.constant('\u0000'), fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))), anyText(6))
  .filter(([, , after]) => !/^[\udc00-\udfff]/.test(after))
  .map(([before, bad, after]) => `${before}${bad}${after}`);
const someText = fc.string({ unit: textUnit, minLength: 1, maxLength: 12 });

/** A finite double whose JSON form a strict parser keeps (integers beyond 2^53 are written without exponent). */
const safeDouble = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !isUnsafeNumber(n));

/** A JSON value as it comes back from the wire (JSON.parse of its JSON), with nothing a strict parser refuses. */
export const jsonValue = (maxDepth = 3) =>
  fc
    .jsonValue({ maxDepth, stringUnit: 'binary' })
    .filter((v) => isStrictSafe(v))
    .map((v) => JSON.parse(JSON.stringify(v)) as unknown);

/** Keys the product reads, keys that are special in JavaScript, and any text. */
const objectKey = fc.oneof(
  { weight: 3, arbitrary: anyText(8) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('category', 'email', 'timezone', 'consent', 'integrations', 'product_id', 'sku', 'price', 'quantity', 'revenue', 'total', 'products', '__proto__', 'constructor', 'toString'),
  },
);

export const jsonObject = (maxKeys = 5): fc.Arbitrary<Call> =>
  fc.dictionary(objectKey, jsonValue(2), { maxKeys, noNullPrototype: true }).map((o) => JSON.parse(JSON.stringify(o)) as Call);

/** Anything that is not a JSON object (and not null, which means "not sent"). */
export const notAnObject = fc.oneof(anyText(), safeDouble, fc.boolean(), fc.array(jsonValue(1), { maxLength: 3 }));
/** Anything that is neither a string nor a number, nor null. */
export const notAnId = fc.oneof(fc.boolean(), jsonObject(2), fc.array(jsonValue(1), { maxLength: 3 }));
/** Anything that is not a string, nor null. */
export const notAString = fc.oneof(safeDouble, fc.boolean(), jsonObject(2), fc.array(jsonValue(1), { maxLength: 3 }));

/** userId, anonymousId, groupId, previousId: a few shared values (so calls join), any text, or a number. */
export const idValue: fc.Arbitrary<string | number> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('user-1', 'user-2', 'anon-1', 'anon-2', 'Zoë', '42', ' ') },
  { weight: 3, arbitrary: someText },
  { weight: 2, arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }) },
  { weight: 1, arbitrary: safeDouble },
);

/** Not sent, in the three ways a client says so. */
const blank = fc.constantFrom(undefined, null, '');
const isBlank = (value: unknown) => value === undefined || value === null || value === '';

// --- ISO-8601 times ---------------------------------------------------------------------------------------------

const MINUTE = 60_000;
/** Years 1001-9998, so any offset keeps a four-digit year. */
const anyInstant = fc.integer({ min: Date.UTC(1001, 0, 1), max: Date.UTC(9998, 11, 31) });
const recentInstant = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) });

export interface IsoStyle {
  precision: 'date' | 'minutes' | 'seconds' | 'millis' | 'micros';
  separator: 'T' | 't' | ' ';
  decimal: '.' | ',';
  /** null: no zone (UTC); a number: the offset in minutes from UTC. */
  zone: 'Z' | 'z' | null | number;
  offsetForm: 'hh:mm' | 'hhmm' | 'hh';
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Writes `ms` as an ISO-8601 string in `style`, truncated to its precision. */
export function formatIso(ms: number, style: IsoStyle): string {
  const offset = typeof style.zone === 'number' ? style.zone : 0;
  const local = new Date(ms + offset * MINUTE);
  const date = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}`;
  if (style.precision === 'date') return date;
  let time = `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}`;
  if (style.precision !== 'minutes') time += `:${pad(local.getUTCSeconds())}`;
  if (style.precision === 'millis') time += `${style.decimal}${pad(local.getUTCMilliseconds(), 3)}`;
  if (style.precision === 'micros') time += `${style.decimal}${pad(local.getUTCMilliseconds(), 3)}${pad(Math.abs(ms) % 997, 3)}`;
  let zone = '';
  if (style.zone === 'Z' || style.zone === 'z') zone = style.zone;
  else if (typeof style.zone === 'number') {
    const sign = style.zone < 0 ? '-' : '+';
    const hours = pad(Math.floor(Math.abs(style.zone) / 60));
    const minutes = pad(Math.abs(style.zone) % 60);
    zone = style.offsetForm === 'hh:mm' ? `${sign}${hours}:${minutes}` : style.offsetForm === 'hhmm' ? `${sign}${hours}${minutes}` : `${sign}${hours}`;
  }
  return `${date}${style.separator}${time}${zone}`;
}

const isoStyle: fc.Arbitrary<IsoStyle> = fc.record({
  precision: fc.constantFrom('date', 'minutes', 'seconds', 'millis', 'millis', 'millis', 'micros'),
  separator: fc.constantFrom('T', 'T', 't', ' '),
  decimal: fc.constantFrom('.', '.', ','),
  zone: fc.oneof(fc.constantFrom<'Z' | 'z' | null>('Z', 'Z', 'z', null), fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 })),
  offsetForm: fc.constantFrom('hh:mm', 'hhmm', 'hh'),
});

/** A way to write an instant exactly (to the millisecond), with any zone and separator: for formatIso. */
export const exactIsoStyle: fc.Arbitrary<IsoStyle> = isoStyle.map((style) => ({
  ...style,
  precision: 'millis',
  // The `hh` form holds whole hours only.
  zone: typeof style.zone === 'number' && style.offsetForm === 'hh' ? Math.trunc(style.zone / 60) * 60 : style.zone,
}));

/** A valid ISO-8601 time: mostly of recent years, sometimes of any year from 1001 to 9998. */
export const isoTime: fc.Arbitrary<string> = fc
  .tuple(fc.oneof({ weight: 3, arbitrary: recentInstant }, { weight: 1, arbitrary: anyInstant }), isoStyle)
  // The `hh` form holds whole hours only.
  .map(([ms, style]) => formatIso(ms, typeof style.zone === 'number' && style.offsetForm === 'hh' ? { ...style, zone: Math.trunc(style.zone / 60) * 60 } : style));

/** Strings that look like ISO-8601 times but break it in one place. */
export const brokenIsoTime: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.integer({ min: 1000, max: 9999 }), fc.constantFrom(0, 13, 99), fc.integer({ min: 1, max: 28 })).map(([y, m, d]) => `${y}-${pad(m)}-${pad(d)}T12:00:00Z`),
  fc.tuple(fc.integer({ min: 1000, max: 9999 }), fc.integer({ min: 1, max: 12 })).map(([y, m]) => `${y}-${pad(m)}-32T00:00:00Z`),
  fc.integer({ min: 1001, max: 9999 }).map((y) => `${y}-02-30`),
  fc.integer({ min: 1, max: 24 }).map((k) => `${1900 + 4 * k - 1}-02-29T00:00:00Z`),
  fc.constantFrom(
    '2024-05-01T24:00:00Z',
    '2024-05-01T12:60:00Z',
    '2024-05-01T12:00:60Z',
    '2024-05-01T12:00:00+24:00',
    '2024-05-01T12:00:00+05:60',
    '2024-5-1T12:00:00Z',
    '24-05-01T12:00:00Z',
    '2024-05-01T',
    '2024-05-01T12Z',
    '2024-05-01T12:00:00.Z',
    '2024-05-01T12:00:00ZZ',
    '2024-05-01T12:00:00 Z',
    '2024-05-01T12:00:00+5',
    '05/01/2024',
    'Wed, 01 May 2024 12:00:00 GMT',
    '1714564800000',
    'yesterday',
    '',
  ),
  anyText(20),
).filter((text) => isoToMs(text) === undefined);

/** A wrong time: a broken string, or not a string at all (epoch numbers included). */
export const wrongTime = fc.oneof(brokenIsoTime, notAString, fc.integer({ min: 0, max: 2 ** 41 }));

// --- valid calls --------------------------------------------------------------------------------------------------

const EVENT_NAMES = ['Product Viewed', 'Product Added', 'Product Removed', 'Order Completed', 'Checkout Started', 'Email Opened', 'Email Bounced', 'Segment Entered', 'Signed Up 🎉'];

/** A track event name: one the product folds into behavior, or any text with a visible character. */
const eventName = fc.oneof(fc.constantFrom(...EVENT_NAMES), someText.filter((s) => s.trim() !== ''));

/** properties a track call's name gives meaning to (cart items, orders, opens), with fitting or odd values. */
const behaviorProperties = fc.record(
  {
    product_id: fc.oneof(someText, fc.integer(), jsonValue(1)),
    sku: someText,
    quantity: fc.oneof(fc.integer({ min: -5, max: 100 }), jsonValue(1)),
    price: fc.oneof(safeDouble, jsonValue(1)),
    name: jsonValue(1),
    category: jsonValue(1),
    total: jsonValue(1),
    revenue: fc.oneof(safeDouble, jsonValue(1)),
    products: fc.oneof(fc.array(jsonObject(4), { maxLength: 3 }), jsonValue(2)),
    machine_open: jsonValue(1),
    bounce_type: fc.oneof(fc.constantFrom('soft', 'hard'), jsonValue(1)),
  },
  { requiredKeys: [], noNullPrototype: true },
);

/** identify traits: the ones the profile reads (email, timezone, consent), fitting or odd, beside any others. */
const traits = fc
  .tuple(
    jsonObject(3),
    fc.record(
      {
        // One plain mailbox, or cleared (a list, a group, CR/LF or a number is a mutation: see badEmail).
        email: fc.oneof(fc.constantFrom('ada@example.com', 'ADA@Example.COM', '', null), fc.emailAddress().filter((address) => address.length <= 254)),
        timezone: fc.oneof(fc.constantFrom('Europe/Paris', 'Not/AZone', ''), jsonValue(1)),
        // Never a tracking refusal: it drops and deletes behavioral events (core/tracking-consent), which the ingest
        // properties' counts do not follow; test/integration/tracking-consent.test.ts does.
        consent: fc.oneof(
          fc.record({ email_marketing: fc.oneof(fc.boolean(), jsonValue(1)), behavioral_tracking: fc.oneof(fc.constant(true), jsonValue(1).filter((v) => v !== false)) }, { requiredKeys: [], noNullPrototype: true }),
          jsonValue(2),
        ),
      },
      { requiredKeys: [], noNullPrototype: true },
    ),
  )
  // `others` may hold an email key of any value: the one from `known` replaces it, or none is sent.
  .map(([{ email: _email, ...others }, known]) => ({ ...others, ...known }));

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });
/** Not sent (absent or null), or `arb`. */
const optionalOrNull = <T>(arb: fc.Arbitrary<T>) => fc.oneof(fc.constantFrom(undefined, null), arb);

/** Identities a valid call of `type` can carry: alias needs userId; the others userId, anonymousId or both. */
function identities(type: CallType): fc.Arbitrary<Call> {
  if (type === 'alias') return fc.record({ userId: idValue, anonymousId: fc.oneof(blank, idValue) });
  return fc.oneof(
    fc.record({ userId: idValue, anonymousId: blank }),
    fc.record({ userId: blank, anonymousId: idValue }),
    fc.record({ userId: idValue, anonymousId: idValue }),
  );
}

/** Fields a call of `type` does not read, with any value: they must be ignored. */
function ignoredFields(type: CallType, inBatch: boolean): fc.Arbitrary<Call> {
  const ignored = ['library', 'channel', 'version', 'options', ...(inBatch ? [] : ['type'])];
  if (type !== 'track') ignored.push('event');
  if (type === 'identify' || type === 'group' || type === 'alias') ignored.push('properties');
  if (type !== 'page' && type !== 'screen') ignored.push('name', 'category');
  if (type !== 'group') ignored.push('groupId');
  if (type !== 'alias') ignored.push('previousId');
  return fc.record(Object.fromEntries(ignored.map((field) => [field, jsonValue(2)])), { requiredKeys: [], noNullPrototype: true });
}

/** A valid call of `type`, as its JSON body (in a batch, `inBatch` adds its `type`). Absent fields are undefined. */
export function validCall(type: CallType, inBatch = false): fc.Arbitrary<Call> {
  const own: Record<string, fc.Arbitrary<unknown>> = {};
  if (type === 'track') {
    own.event = eventName;
    own.properties = optionalOrNull(fc.oneof(jsonObject(), behaviorProperties));
  } else if (type === 'page' || type === 'screen') {
    own.name = optionalOrNull(anyText());
    own.category = optionalOrNull(anyText());
    own.properties = optionalOrNull(jsonObject());
  } else if (type === 'group') {
    own.groupId = idValue;
    own.traits = optionalOrNull(jsonObject());
  } else if (type === 'alias') {
    own.previousId = idValue;
  } else {
    own.traits = optionalOrNull(traits);
  }
  return fc
    .record({
      ids: identities(type),
      own: fc.record(own),
      messageId: fc.oneof({ weight: 1, arbitrary: blank }, { weight: 4, arbitrary: someText }),
      timestamp: optional(isoTime),
      originalTimestamp: optional(isoTime),
      sentAt: optional(isoTime),
      context: optionalOrNull(jsonObject()),
      integrations: optionalOrNull(fc.dictionary(anyText(8), fc.oneof(fc.boolean(), jsonObject(2)), { maxKeys: 3, noNullPrototype: true })),
      traits: type === 'identify' || type === 'group' ? fc.constant(undefined) : optionalOrNull(jsonObject(2)),
      ignored: ignoredFields(type, inBatch),
    })
    .map(({ ids, own: fields, ignored, ...rest }) => ({ ...ignored, ...(inBatch ? { type } : {}), ...ids, ...rest, ...fields }));
}

export const callType = fc.constantFrom(...CALL_TYPES);

/**
 * One arbitrary per call type, tagged with it. Used instead of callType.chain(...): fast-check regenerates what a
 * chain derives whenever it shrinks the source, so a failing call would lose what made it fail at every step.
 */
function perType<T>(of: (type: CallType) => fc.Arbitrary<T>): fc.Arbitrary<{ type: CallType } & T> {
  return fc.oneof(...CALL_TYPES.map((type) => of(type).map((value) => ({ type, ...value }))));
}

/** A call of a random type, tagged with it. */
export const anyValidCall: fc.Arbitrary<{ type: CallType; call: Call }> = perType((type) => validCall(type).map((call) => ({ call })));

/** A valid batch body: `minItems`-`maxItems` valid items and, sometimes, a shared context, integrations and sentAt. */
export function validBatch(maxItems = 6, minItems = 1): fc.Arbitrary<Call> {
  return fc.record({
    batch: fc.array(fc.oneof(...CALL_TYPES.map((type) => validCall(type, true))), { minLength: minItems, maxLength: maxItems }),
    context: optional(jsonObject(3)),
    integrations: optional(fc.dictionary(anyText(8), fc.boolean(), { maxKeys: 2, noNullPrototype: true })),
    sentAt: optional(isoTime),
  });
}

// --- mutations: one broken rule, at a known field ----------------------------------------------------------------

export interface Mutation {
  /** The field the broken rule is about: what a refusal must name ('' for a batch item as a whole). */
  field: string;
  what: string;
  apply(call: Call): Call;
}

/** A mutation that a counterexample shows by what it does, not as a function's source. */
function mutationOf(field: string, what: string, apply: (call: Call) => Call): Mutation {
  return { field, what, apply, [fc.toStringMethod]: () => `(${what})` } as Mutation;
}

const set = (field: string, value: unknown, what = `${field} is ${fc.stringify(value)}`): Mutation => mutationOf(field, what, (call) => ({ ...call, [field]: value }));
const drop = (field: string, what: string): Mutation => mutationOf(field, what, (call) => ({ ...call, [field]: undefined }));

/** Email traits that are not one plain mailbox: lists, groups, display names, injected lines, over-long, not text. */
const badEmail = fc.oneof(
  fc.constantFrom('victim@example.com, second@example.org', 'a@example.com;b@example.org', 'friends: a@example.com, b@example.org;', 'Ana <ana@example.com>', '<ana@example.com>', 'ana@example.com (Ana)', 'ana@example.com\r\nBcc: x@example.org', ' ana@example.com', 'no-at-sign', 'ana@localhost', `${'a'.repeat(64)}@${'b'.repeat(190)}.com`),
  fc.tuple(fc.emailAddress(), fc.emailAddress()).map(([a, b]) => `${a}, ${b}`),
  safeDouble,
  fc.boolean(),
  jsonObject(1),
);

/** A mutation that makes a valid call of `type` invalid at exactly one field. */
export function mutation(type: CallType): fc.Arbitrary<Mutation> {
  const options: Array<fc.Arbitrary<Mutation>> = [
    notAnId.map((v) => set('userId', v)),
    // With a userId beside it, so the wrong anonymousId is the only thing wrong.
    notAnId.map((v) => mutationOf('anonymousId', `anonymousId is ${fc.stringify(v)}`, (call) => ({ ...call, anonymousId: v, userId: isBlank(call.userId) ? 'user-1' : call.userId }))),
    notAString.map((v) => set('messageId', v)),
    fc.tuple(fc.constantFrom('timestamp', 'originalTimestamp', 'sentAt'), wrongTime).map(([field, v]) => set(field, v)),
    fc.tuple(fc.constantFrom('context', 'integrations', 'traits'), notAnObject).map(([field, v]) => set(field, v)),
  ];
  if (type === 'alias') {
    options.push(blank.map((v) => set('userId', v, `alias with userId ${fc.stringify(v)}`)));
    options.push(fc.oneof(blank, notAnId).map((v) => set('previousId', v)));
  } else {
    // Both identities gone: the call belongs to no one, which the parser reports at userId.
    options.push(fc.tuple(blank, blank).map(([u, a]) => mutationOf('userId', `no userId (${fc.stringify(u)}) nor anonymousId (${fc.stringify(a)})`, (call) => ({ ...call, userId: u, anonymousId: a }))));
  }
  if (type === 'track') {
    options.push(fc.constant(drop('event', 'no event')));
    options.push(fc.oneof(notAString, fc.constantFrom(null, '', ' ', '\t\n', '\u00a0', '\u2028', '\ufeff')).map((v) => set('event', v)));
  }
  if (type === 'track' || type === 'page' || type === 'screen') options.push(notAnObject.map((v) => set('properties', v)));
  if (type === 'page' || type === 'screen') options.push(fc.tuple(fc.constantFrom('name', 'category'), notAString).map(([field, v]) => set(field, v)));
  if (type === 'group') options.push(fc.oneof(blank, notAnId).map((v) => set('groupId', v)));
  if (type === 'identify') {
    options.push(
      badEmail.map((v) => mutationOf('traits.email', `traits.email is ${fc.stringify(v)}`, (call) => ({ ...call, traits: { ...(isPlainObject(call.traits) ? call.traits : {}), email: v } }))),
    );
  }
  return fc.oneof(...options);
}

/**
 * A valid call of `type` with unstorable text put in one place every call type has, and the JSON path a strict
 * parser names for it: a value's own path, or for a key, the path of its object.
 */
export function withUnstorableText(type: CallType): fc.Arbitrary<{ call: Call; path: string; what: string }> {
  return fc.tuple(validCall(type), unstorableText, fc.constantFrom('userId', 'messageId', 'context value', 'context key')).map(([call, text, place]) => {
    const context = isPlainObject(call.context) ? call.context : {};
    const what = `${place} ${fc.stringify(text)}`;
    if (place === 'context value') return { call: { ...call, context: { ...context, note: text } }, path: '$.context.note', what };
    if (place === 'context key') return { call: { ...call, context: { ...context, [text]: 'x' } }, path: '$.context', what };
    return { call: { ...call, [place]: text }, path: `$.${place}`, what };
  });
}

/** Near-valid calls of `type`: a valid one with a few fields replaced by any JSON value or removed, so every check is reached. */
export function scrambledCall(type: CallType): fc.Arbitrary<Call> {
  const fields = ['userId', 'anonymousId', 'messageId', 'event', 'name', 'category', 'groupId', 'previousId', 'properties', 'traits', 'context', 'integrations', 'timestamp', 'originalTimestamp', 'sentAt'];
  const change = fc.tuple(fc.constantFrom(...fields), fc.option(fc.oneof(jsonValue(2), wrongTime), { nil: undefined }));
  return fc.tuple(validCall(type), fc.array(change, { maxLength: 3 })).map(([call, changes]) => changes.reduce<Call>((c, [field, value]) => ({ ...c, [field]: value }), call));
}

/** A near-valid call of a random type, tagged with it. */
export const anyScrambledCall: fc.Arbitrary<{ type: CallType; call: Call }> = perType((type) => scrambledCall(type).map((call) => ({ call })));

/** A valid call of a random type and one mutation of it. */
export const mutatedCall: fc.Arbitrary<{ type: CallType; call: Call; mutation: Mutation }> = perType((type) =>
  fc.tuple(validCall(type), mutation(type)).map(([call, m]) => ({ call: m.apply(call), mutation: m })),
);

/**
 * A mutation that gets a batch item of `type` rejected, at the field (relative to the item) its rejection names:
 * a broken rule of its call type, an unknown type, an item that is not an object, or one over 32 KB.
 */
export function batchItemMutation(type: CallType): fc.Arbitrary<Mutation> {
  return fc.oneof(
    { weight: 6, arbitrary: mutation(type) },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom<unknown>(undefined, null, '', 'Track', 'batch', 'purchase'), notAString).map((v) => set('type', v)) },
    { weight: 1, arbitrary: fc.oneof(notAnObject, fc.constant(null)).map((v) => mutationOf('', `the item is ${fc.stringify(v)}`, () => v as unknown as Call)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }).map((over) => mutationOf('', `the item is ${over} bytes over 32 KB`, (call) => padTo(call, EVENT_LIMIT + over))) },
  );
}

/** The JSON path a rejection of item `index` names for a mutation at `field`. */
export const itemPath = (index: number, field: string) => `batch[${index}]${field === '' ? '' : `.${field}`}`;

/** `call` with a padding string in its context, so that its JSON is exactly `bytes` long (if it was shorter). */
export function padTo(call: Call, bytes: number, field = 'context'): Call {
  const holder = isPlainObject(call[field]) ? (call[field] as Call) : {};
  const padded = { ...call, [field]: { ...holder, padding: '' } };
  const missing = bytes - Buffer.byteLength(JSON.stringify(padded));
  if (missing < 0) throw new Error(`padTo: the call is already ${-missing} bytes over ${bytes}`);
  return { ...call, [field]: { ...holder, padding: 'x'.repeat(missing) } };
}

/** One item mutation per call type, generated apart from the batch, so that shrinking the batch keeps them. */
const mutationByType = fc.record(Object.fromEntries(CALL_TYPES.map((type) => [type, batchItemMutation(type)])) as Record<CallType, fc.Arbitrary<Mutation>>);

export interface BrokenBatch {
  /** The batch before its items were broken. */
  body: Call;
  /** Which items to break, and how. */
  broken: Array<[index: number, mutation: Mutation]>;
}

/** A valid batch and 1 to `maxBroken` of its items to break (items are picked by position, each once). */
export function brokenBatch(options: { minItems?: number; maxItems?: number; maxBroken?: number } = {}): fc.Arbitrary<BrokenBatch> {
  return fc
    .record({
      body: validBatch(options.maxItems ?? 6, options.minItems ?? 1),
      picks: fc.array(fc.tuple(fc.nat(), mutationByType), { minLength: 1, maxLength: options.maxBroken ?? 6 }),
    })
    .map(({ body, picks }) => {
      const items = body.batch as Call[];
      const broken = new Map<number, Mutation>();
      for (const [pick, byType] of picks) {
        const index = pick % items.length;
        if (!broken.has(index)) broken.set(index, byType[items[index]!.type as CallType]);
      }
      return { body, broken: [...broken] };
    });
}

export function withBrokenItems(body: Call, broken: BrokenBatch['broken']): Call {
  const batch = [...(body.batch as Call[])];
  for (const [i, m] of broken) batch[i] = m.apply(batch[i]!);
  return { ...body, batch };
}

/** A batch body that is refused whole: a wrong shared context, integrations or sentAt, or no items to read. */
export const wholeBrokenBatch: fc.Arbitrary<Call> = fc.oneof(
  fc.tuple(validBatch(3), fc.constantFrom('context', 'integrations'), notAnObject).map(([body, field, value]) => ({ ...body, [field]: value })),
  fc.tuple(validBatch(3), wrongTime).map(([body, sentAt]) => ({ ...body, sentAt })),
  fc.tuple(validBatch(3), fc.oneof(fc.constantFrom(undefined, null, []), notAnObject.filter((v) => !Array.isArray(v) || v.length === 0))).map(([body, batch]) => ({ ...body, batch })),
);

/** Any body a batch endpoint might get: broken whole, not a batch, or valid items among junk and near-limit items. */
export const anyBatchBody: fc.Arbitrary<unknown> = fc.oneof(
  wholeBrokenBatch,
  jsonValue(3),
  brokenBatch({ maxItems: 4 }).map(({ body, broken }) => withBrokenItems(body, broken)),
  fc.tuple(validBatch(4), fc.array(jsonValue(2), { maxLength: 3 })).map(([body, junk]) => ({ ...body, batch: [...(body.batch as unknown[]), ...junk] })),
  // The first item within a few bytes of the 32 KB per-event limit, on either side.
  fc.tuple(validBatch(2), fc.integer({ min: -3, max: 3 })).map(([body, delta]) => ({ ...body, batch: (body.batch as Call[]).map((item, i) => (i === 0 ? padTo(item, EVENT_LIMIT + delta) : item)) })),
);

// --- bytes ----------------------------------------------------------------------------------------------------------

/** Tokens of JSON and of what is near it, so random sequences reach every branch of a parser. */
const TOKENS = ['{', '}', '[', ']', ',', ':', '"a"', '"a"', '"\\u0061"', '"é"', '"\\ud800"', '"\\x"', '"\\u12"', '"', '\\', '0', '-0', '07', '1.', '.5', '1e', '1e400', '-1e-400', '9007199254740992', '9007199254740991', '12345678901234567890.5', '1E+2', 'true', 'false', 'null', 'nul', 'NaN', ' ', '\n', '\t', '\u00a0', '\ufeff', '//', '/*', "'x'", '\u0000', '\u001f'];

const utf8 = (text: string) => Uint8Array.from(Buffer.from(text, 'utf8'));

/** Bytes of every kind: random, random text, token soup, and valid JSON with a few bytes changed. */
export const anyBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }).map(utf8),
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 24 }).map((tokens) => utf8(tokens.join(''))),
  fc
    .tuple(jsonValue(4), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 3 }))
    .map(([value, edits]) => {
      const bytes = [...utf8(JSON.stringify(value))];
      for (const [at, byte, how] of edits) {
        const i = bytes.length === 0 ? 0 : at % bytes.length;
        if (how === 'set' && bytes.length > 0) bytes[i] = byte;
        else if (how === 'insert') bytes.splice(i, 0, byte);
        else bytes.splice(i, 1);
      }
      return Uint8Array.from(bytes);
    }),
);
