// Property tests of the ingest parser (core/strict-json.ts, then core/segment-spec.ts) over generated input that
// changes every run: it throws nothing but BadEventError naming the field, and agrees with test/support/segment-reference.ts.
import fc from 'fast-check';
import { BadEventError } from '../../core/errors';
import { parseBatchCall, parseCallOfType } from '../../core/segment-spec';
import { parseStrictJson } from '../../core/strict-json';
import { deepDifference } from '../support/deep-difference';
import { fuzzRun } from '../support/fuzz-seed';
import { anyBatchBody, anyBytes, anyScrambledCall, anyValidCall, brokenBatch, callType, exactIsoStyle, formatIso, itemPath, jsonValue, mutatedCall, withBrokenItems, type Call } from '../support/segment-arbitraries';
import { batchVerdict, callFaults, expectedEvent, hasUnstorableText, isPlainObject, MAX_NESTING, type CallType } from '../support/segment-reference';

const fuzz = fuzzRun('test/core/ingest-parser.property.test.ts');
const RECEIVED_AT = Date.UTC(2025, 5, 1, 12);
const FALLBACK_ID = 'fallback-message-id';

const utf8 = (text: string) => Buffer.from(text, 'utf8');

/** What `work` throws, or undefined; anything but a BadEventError fails the property. */
function refusalOf(work: () => unknown): BadEventError | undefined {
  try {
    work();
    return undefined;
  } catch (err) {
    if (err instanceof BadEventError) return err;
    throw new Error(`threw ${(err as Error)?.name ?? typeof err} instead of BadEventError: ${(err as Error)?.stack ?? String(err)}`);
  }
}

/** A refusal must name its field first in its message, and say more than that. */
function expectNamed(err: BadEventError, field: string | undefined): void {
  expect(err.field).toBe(field);
  if (field !== undefined) expect(err.message.startsWith(`${field}: `)).toBe(true);
  expect(err.message.slice(field === undefined ? 0 : field.length + 2).trim()).not.toBe('');
}

// --- strict JSON --------------------------------------------------------------------------------------------------

/** A JSON document as written: keys as their literal text (so a key can repeat, or be spelled with escapes), numbers as text. */
type Doc =
  | { kind: 'object'; members: Array<{ key: string; literal: string; value: Doc }> }
  | { kind: 'array'; items: Doc[] }
  | { kind: 'number'; text: string }
  | { kind: 'literal'; text: string };

/** `"é"` or the same key with every character escaped, `"\u00e9"`: one key to a parser either way. */
const keyLiteral = fc.tuple(fc.oneof(fc.constantFrom('a', 'b', 'é', '__proto__', 'batch', 'a b', 'x'.repeat(70)), fc.string({ unit: 'binary', maxLength: 6 })), fc.boolean()).map(([key, escaped]) => ({
  key,
  literal: escaped ? `"${[...Array(key.length).keys()].map((i) => `\\u${key.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(key),
}));

const numberText = fc.oneof(
  fc.bigInt({ min: -(10n ** 22n), max: 10n ** 22n }).map(String),
  fc.bigInt({ min: -(2n ** 54n), max: 2n ** 54n }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc
    .tuple(fc.integer({ min: -20, max: 20 }), fc.nat(999), fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.nat(400))
    .map(([i, f, e, sign, exponent]) => `${i}.${f}${e}${sign}${exponent}`),
  fc.constantFrom('-0', '0', '1e400', '-1e400', '1e-400', '9007199254740991', '-9007199254740991', '9007199254740992', '1e21'),
);

const { doc } = fc.letrec<{ doc: Doc }>((tie) => ({
  doc: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(numberText.map((text) => ({ kind: 'number' as const, text })), fc.constantFrom('true', 'false', 'null', '""', '"x"', '"\\u0000"', '"a\\ud800"', '"\\udc00b"', '"\\ud83d\\ude00"', '"\\ud800\\u0041"').map((text) => ({ kind: 'literal' as const, text }))),
    fc.array(tie('doc'), { maxLength: 4 }).map((items) => ({ kind: 'array' as const, items })),
    fc.array(fc.tuple(keyLiteral, tie('doc')), { maxLength: 4 }).map((members) => ({ kind: 'object' as const, members: members.map(([k, value]) => ({ ...k, value })) })),
  ),
}));

/** Wraps `inner` in `levels` arrays or objects, to reach the nesting limit from either side. */
const nested: fc.Arbitrary<Doc> = fc
  .tuple(doc, fc.integer({ min: MAX_NESTING - 4, max: MAX_NESTING + 3 }), fc.array(fc.boolean(), { minLength: MAX_NESTING + 3, maxLength: MAX_NESTING + 3 }))
  .map(([inner, levels, asObject]) => {
    let out = inner;
    for (let i = 0; i < levels; i++) out = asObject[i] ? { kind: 'object', members: [{ key: 'k', literal: '"k"', value: out }] } : { kind: 'array', items: [out] };
    return out;
  });

function writeDoc(d: Doc, spaces: readonly string[]): string {
  let n = 0;
  const ws = () => spaces[n++ % spaces.length]!;
  const write = (v: Doc): string => {
    if (v.kind === 'number' || v.kind === 'literal') return v.text;
    if (v.kind === 'array') return `[${ws()}${v.items.map((item) => `${write(item)}${ws()}`).join(`,${ws()}`)}]`;
    return `{${ws()}${v.members.map((m) => `${m.literal}${ws()}:${ws()}${write(m.value)}${ws()}`).join(`,${ws()}`)}}`;
  };
  return `${ws()}${write(d)}${ws()}`;
}

/** The JSON path of a key as errors spell it: `.key` for identifiers, `["any key"]` (cut at 64 characters) otherwise. */
function keyPath(key: string): string {
  if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) && key.length <= 64) return `.${key}`;
  return `[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`;
}

/**
 * The paths at which a document breaks a strict rule: a duplicate key or a key with unstorable text (the object's
 * path), a container nested past the limit, a number that cannot be kept, a string with unstorable text.
 */
function brokenRules(d: Doc, path = '$', level = 0): string[] {
  if (d.kind === 'literal') return d.text.startsWith('"') && hasUnstorableText(JSON.parse(d.text) as string) ? [path] : [];
  if (d.kind === 'number') {
    const value = Number(d.text);
    const integerForm = !/[.eE]/.test(d.text);
    return !Number.isFinite(value) || (integerForm && Math.abs(value) > Number.MAX_SAFE_INTEGER) ? [path] : [];
  }
  if (level + 1 > MAX_NESTING) return [path];
  if (d.kind === 'array') return d.items.flatMap((item, i) => brokenRules(item, `${path}[${i}]`, level + 1));
  const keys = d.members.map((m) => m.key);
  const duplicate = new Set(keys).size !== keys.length || keys.some(hasUnstorableText) ? [path] : [];
  return [...duplicate, ...d.members.flatMap((m) => brokenRules(m.value, `${path}${keyPath(m.key)}`, level + 1))];
}

const whitespace = fc.array(fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  '), { minLength: 1, maxLength: 8 });

describe('parseStrictJson over generated bytes', () => {
  it('returns what JSON.parse returns, or throws BadEventError with a reason', () => {
    fuzz.check(
      fc.property(anyBytes, (bytes) => {
        let value: unknown;
        const err = refusalOf(() => (value = parseStrictJson(bytes)));
        if (err) {
          expect(err.message.trim()).not.toBe('');
          return;
        }
        // Accepted bytes are UTF-8 and JSON, so the lenient readers must read the same value.
        expect(deepDifference(value, JSON.parse(new TextDecoder().decode(bytes)))).toBeUndefined();
      }),
      3000,
    );
  });

  it('accepts a document that breaks no strict rule as JSON.parse reads it, and refuses one that does at the path of a broken rule', () => {
    fuzz.check(
      fc.property(fc.oneof({ weight: 3, arbitrary: doc }, { weight: 1, arbitrary: nested }), whitespace, (d, spaces) => {
        const text = writeDoc(d, spaces);
        const broken = brokenRules(d);
        let value: unknown;
        const err = refusalOf(() => (value = parseStrictJson(utf8(text))));
        if (broken.length === 0) {
          expect(err).toBeUndefined();
          expect(deepDifference(value, JSON.parse(text))).toBeUndefined();
        } else {
          expect(err).toBeDefined();
          expect(broken).toContain(err!.field);
          expectNamed(err!, err!.field);
        }
      }),
      1500,
    );
  });
});

// --- Segment calls ------------------------------------------------------------------------------------------------

/** The whole ingest parser for one call: bytes to event, as the server runs it. */
const parseCall = (type: CallType, body: unknown) => parseCallOfType(type, parseStrictJson(utf8(JSON.stringify(body))), RECEIVED_AT, FALLBACK_ID);
/** The call as the server reads it: what JSON keeps of it (absent fields gone). */
const wire = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

const anyCall = fc.oneof(
  { weight: 3, arbitrary: anyScrambledCall },
  { weight: 1, arbitrary: fc.tuple(callType, jsonValue(3)).map(([type, call]) => ({ type, call: call as unknown })) },
  { weight: 1, arbitrary: mutatedCall.map(({ type, call }) => ({ type, call: call as unknown })) },
);

describe('parseCallOfType over generated calls', () => {
  it('accepts what the reference accepts, as the event it describes, and refuses the rest naming a field the reference finds wrong', () => {
    fuzz.check(
      fc.property(anyCall, ({ type, call }) => {
        const body = wire(call);
        const faults = callFaults(type, body);
        let event: unknown;
        const err = refusalOf(() => (event = parseCall(type, body)));
        if (faults.length === 0) {
          expect(err).toBeUndefined();
          expect(deepDifference(event, expectedEvent(type, body as Call, RECEIVED_AT, FALLBACK_ID))).toBeUndefined();
        } else {
          expect(err).toBeDefined();
          const field = err!.field;
          expect(faults).toContain(field ?? '');
          expectNamed(err!, field);
        }
      }),
      3000,
    );
  });

  it('accepts every valid call and keeps its ids, name, properties, traits, context, messageId and time', () => {
    fuzz.check(
      fc.property(anyValidCall, ({ type, call }) => {
        const body = wire(call);
        expect(deepDifference(parseCall(type, body), expectedEvent(type, body, RECEIVED_AT, FALLBACK_ID))).toBeUndefined();
      }),
      2000,
    );
  });

  it('refuses a valid call with one rule broken, naming that field', () => {
    fuzz.check(
      fc.property(mutatedCall, ({ type, call, mutation }) => {
        const err = refusalOf(() => parseCall(type, wire(call)));
        expect(err).toBeDefined();
        expectNamed(err!, mutation.field);
      }),
      2000,
    );
  });

  it('places an event at its true time within the network delay, whatever the client clock says', () => {
    // The client's clock is off by `skew`; the event happened, was sent `queued` ms later, and arrived `network` ms
    // after that. The client writes both times by its clock, each in a style of its own.
    const timing = fc.record({
      happened: fc.integer({ min: Date.UTC(2015, 0, 1), max: Date.UTC(2035, 0, 1) }),
      skew: fc.oneof(fc.integer({ min: -60_000, max: 60_000 }), fc.integer({ min: -10 * 365 * 86_400_000, max: 10 * 365 * 86_400_000 })),
      queued: fc.integer({ min: 0, max: 7 * 86_400_000 }),
      network: fc.integer({ min: 0, max: 30_000 }),
      field: fc.constantFrom('originalTimestamp', 'timestamp'),
      happenedStyle: exactIsoStyle,
      sentStyle: exactIsoStyle,
    });
    fuzz.check(
      fc.property(timing, anyValidCall, (t, { type, call }) => {
        const receivedAt = t.happened + t.queued + t.network;
        const happenedText = formatIso(t.happened + t.skew, t.happenedStyle);
        const sentText = formatIso(t.happened + t.queued + t.skew, t.sentStyle);
        const body = wire({ ...call, timestamp: undefined, originalTimestamp: undefined, [t.field]: happenedText, sentAt: sentText });
        const event = parseCallOfType(type, parseStrictJson(utf8(JSON.stringify(body))), receivedAt, FALLBACK_ID);
        expect(event.timestamp).toBeGreaterThanOrEqual(t.happened);
        expect(event.timestamp).toBeLessThanOrEqual(t.happened + t.network);
        expect(event.receivedAt).toBe(receivedAt);
      }),
      1000,
    );
  });
});

describe('parseBatchCall over generated batches', () => {
  /** A fresh id per call, so a test can tell which ones the parser handed out. */
  const idSource = () => {
    const given: string[] = [];
    return { given, next: () => (given.push(`fresh-${given.length}`), given[given.length - 1]!) };
  };

  /** Checks a parse against the reference verdict: rejected items and their fields, and the accepted events in order. */
  function expectVerdict(body: Call, result: ReturnType<typeof parseBatchCall>, ids: string[], fieldOf: (index: number, faults: string[]) => string[]): void {
    const verdict = batchVerdict(body);
    const items = body.batch as unknown[];
    const rejectedIndexes = verdict.itemFaults.flatMap((faults, index) => (faults.length > 0 ? [index] : []));
    expect(result.rejected.map((r) => r.index)).toEqual(rejectedIndexes);
    for (const r of result.rejected) {
      expect(fieldOf(r.index, verdict.itemFaults[r.index]!)).toContain(r.field);
      expect(r.message.startsWith(`${r.field}: `)).toBe(true);
    }
    const accepted = items.flatMap((item, index) => (rejectedIndexes.includes(index) ? [] : [item as Call]));
    expect(result.events).toHaveLength(accepted.length);
    result.events.forEach((event, i) => {
      const item = accepted[i]!;
      // An item without messageId gets one of the fresh ids, each used once.
      const fallback = ids.includes(event.messageId) ? event.messageId : 'a fresh id';
      expect(deepDifference(event, expectedEvent(item.type as CallType, item, RECEIVED_AT, fallback, body))).toBeUndefined();
    });
    const fresh = result.events.map((e) => e.messageId).filter((id) => ids.includes(id));
    expect(new Set(fresh).size).toBe(fresh.length);
  }

  it('rejects exactly the broken items, each at its path, and keeps the others as they are', () => {
    const batches = brokenBatch().map(({ body, broken }) => ({ body: wire(withBrokenItems(body, broken)), fields: new Map(broken.map(([i, m]) => [i, itemPath(i, m.field)])) }));
    fuzz.check(
      fc.property(batches, ({ body, fields }) => {
        const ids = idSource();
        const result = parseBatchCall(parseStrictJson(utf8(JSON.stringify(body))), RECEIVED_AT, ids.next);
        expect(new Map(result.rejected.map((r) => [r.index, r.field]))).toEqual(fields);
        expectVerdict(body, result, ids.given, (index) => [fields.get(index)!]);
      }),
      1000,
    );
  });

  it('refuses a batch broken as a whole, naming the field, and reads any body as the reference does', () => {
    fuzz.check(
      fc.property(anyBatchBody, (raw) => {
        const body = wire(raw);
        const ids = idSource();
        let result: ReturnType<typeof parseBatchCall> | undefined;
        const err = refusalOf(() => (result = parseBatchCall(parseStrictJson(utf8(JSON.stringify(body))), RECEIVED_AT, ids.next)));
        const verdict = batchVerdict(body);
        if (verdict.batchFaults.length > 0) {
          expect(err).toBeDefined();
          expect(verdict.batchFaults).toContain(err!.field);
          expectNamed(err!, err!.field);
          return;
        }
        expect(err).toBeUndefined();
        expect(isPlainObject(body)).toBe(true);
        expectVerdict(body as Call, result!, ids.given, (_index, faults) => faults);
      }),
      1500,
    );
  });
});
