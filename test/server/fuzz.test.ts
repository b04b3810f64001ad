// The ingest fuzz's regression set: the fixed corpus of malformed Segment calls (test/support/malformed-payloads.ts)
// on all seven endpoints over real HTTP, each refused with its status and a reason, and not one row stored.
// The fuzzer whose inputs change every run is test/server/ingest-properties.test.ts; the one over key kinds, client-key
// rules and rate limits, checked against a model after every call, is test/server/fuzz-keys.test.ts.
import { gunzipSync } from 'node:zlib';
import { parseStrictJson } from '../../core/strict-json';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import {
  BATCH_LIMIT_BYTES,
  EVENT_LIMIT_BYTES,
  FUZZ_ENDPOINTS,
  FUZZ_WRITE_KEY,
  MALFORMED_KINDS,
  MAX_DEPTH,
  malformedPayloads,
  type MalformedKind,
  type MalformedPayload,
} from '../support/malformed-payloads';
import { storeBackends } from '../support/store-backends';
import { serveApp, type RunningApp } from '../support/serve-app';

const payloads = malformedPayloads();
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 30_000;
/** How many failures the assertion lists in full; the rest are counted by kind. */
const FAILURES_SHOWN = 12;

// --- an independent reading of the ingest rules, to prove every entry breaks them ---------------------------

type Violation = 'auth' | 'size' | 'utf8' | 'syntax' | 'empty' | 'duplicate' | 'depth' | 'number' | 'not-object' | 'field';

/** Why each kind is refused: the first rule the server meets that the entry breaks. */
const EXPECTED_VIOLATIONS: Record<MalformedKind, readonly Violation[]> = {
  'wrong-type': ['field'],
  'missing-required': ['field'],
  oversized: ['size'],
  'deep-nesting': ['depth', 'size'],
  'invalid-utf8': ['utf8'],
  'huge-number': ['number'],
  'duplicate-key': ['duplicate'],
  'non-object-body': ['not-object', 'empty'],
  'truncated-json': ['syntax', 'utf8'],
  'trailing-garbage': ['syntax'],
  'not-strict-json': ['syntax'],
  'bad-batch': ['field'],
  auth: ['auth'],
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null;
/** An identity: a non-empty string or a finite number. */
const isIdentity = (v: unknown) => (typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v));

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:[Zz]|[+-](\d{2})(?::?(\d{2}))?)?)?$/;

/** Lenient on purpose (date-only, no offset, leap second): an entry counts as broken only if no fair reading accepts it. */
function isIsoTimestamp(value: unknown): boolean {
  const m = typeof value === 'string' ? ISO_8601.exec(value) : null;
  if (!m) return false;
  const [, year, month, day, hour = '0', minute = '0', second = '0', offsetHours = '0', offsetMinutes = '0'] = m;
  const daysInMonth = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  return (
    Number(month) >= 1 &&
    Number(month) <= 12 &&
    Number(day) >= 1 &&
    Number(day) <= daysInMonth &&
    Number(hour) <= 23 &&
    Number(minute) <= 59 &&
    Number(second) <= 60 &&
    Number(offsetHours) <= 23 &&
    Number(offsetMinutes) <= 59
  );
}

const CALL_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'];

/** Why a call of `type` is invalid, or undefined if it is valid. */
function callViolation(type: string, call: Json): string | undefined {
  for (const field of ['userId', 'anonymousId']) {
    const value = call[field];
    if (present(value) && value !== '' && !isIdentity(value)) return `${field} is neither a string nor a finite number`;
  }
  if (type === 'alias') {
    if (!isIdentity(call.userId)) return 'alias without userId';
  } else if (!isIdentity(call.userId) && !isIdentity(call.anonymousId)) {
    return 'neither userId nor anonymousId';
  }
  if (present(call.messageId) && typeof call.messageId !== 'string') return 'messageId is not a string';
  for (const field of ['timestamp', 'originalTimestamp', 'sentAt']) {
    if (present(call[field]) && !isIsoTimestamp(call[field])) return `${field} is not an ISO-8601 string`;
  }
  // Only the object fields a type reads: a server may ignore properties on identify, say.
  const objectFields = ['context', 'integrations', ...(['track', 'page', 'screen'].includes(type) ? ['properties'] : []), ...(['identify', 'group'].includes(type) ? ['traits'] : [])];
  for (const field of objectFields) {
    if (present(call[field]) && !isObject(call[field])) return `${field} is not an object`;
  }
  const idLike = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
  if (type === 'track' && !(typeof call.event === 'string' && call.event !== '')) return 'event is not a non-empty string';
  if ((type === 'page' || type === 'screen') && present(call.name) && typeof call.name !== 'string') return 'name is not a string';
  if (type === 'group' && !idLike(call.groupId)) return 'groupId missing or of a wrong type';
  if (type === 'alias' && !idLike(call.previousId)) return 'previousId missing or of a wrong type';
  return undefined;
}

function writeKeyOf(authorization: string | undefined): string | undefined {
  const match = authorization === undefined ? null : /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  return decoded.slice(0, decoded.includes(':') ? decoded.indexOf(':') : undefined);
}

/** The first rule `p` breaks in the order a server meets them (key, size, JSON, shape), or undefined if it breaks none. */
function violationOf(p: MalformedPayload): { violation: Violation; reason: string } | undefined {
  if (writeKeyOf(p.headers?.authorization) !== FUZZ_WRITE_KEY) return { violation: 'auth', reason: 'no valid write key' };
  const bytes = p.headers?.['content-encoding'] === 'gzip' ? gunzipSync(p.body) : p.body;
  const limit = p.endpoint === '/v1/batch' ? BATCH_LIMIT_BYTES : EVENT_LIMIT_BYTES;
  if (bytes.length > limit) return { violation: 'size', reason: `${bytes.length} bytes` };
  let body: unknown;
  try {
    body = parseStrictJson(bytes, { maxDepth: MAX_DEPTH });
  } catch (err) {
    const reason = (err as Error).message;
    const violation: Violation = /not valid UTF-8/.test(reason)
      ? 'utf8'
      : /duplicate key/.test(reason)
        ? 'duplicate'
        : /nested more than/.test(reason)
          ? 'depth'
          : /lose precision|too large for a 64-bit float/.test(reason)
            ? 'number'
            : /is empty/.test(reason)
              ? 'empty'
              : 'syntax';
    return { violation, reason };
  }
  if (!isObject(body)) return { violation: 'not-object', reason: 'not an object' };
  if (p.endpoint !== '/v1/batch') {
    const reason = callViolation(p.endpoint.slice(4), body);
    return reason ? { violation: 'field', reason } : undefined;
  }
  const batch = body.batch;
  if (!Array.isArray(batch) || batch.length === 0) return { violation: 'field', reason: 'batch is not a non-empty array' };
  // Every item must be refused, or a server that stores the good ones of a batch would store it.
  for (const item of batch) {
    if (!isObject(item)) continue;
    if (typeof item.type !== 'string' || !CALL_TYPES.includes(item.type)) continue;
    if (callViolation(item.type, item) === undefined) return undefined;
  }
  return { violation: 'field', reason: 'no valid item' };
}

/** Sub-cases the corpus must hold, by kind and description: each one a way a client gets a call wrong. */
const REQUIRED_CASES: ReadonlyArray<[string, MalformedKind, RegExp]> = [
  ['a wrong userId', 'wrong-type', /userId is/],
  ['a wrong anonymousId', 'wrong-type', /anonymousId is/],
  ['a wrong messageId', 'wrong-type', /messageId is/],
  ['a wrong timestamp', 'wrong-type', /: timestamp is/],
  ['a wrong originalTimestamp', 'wrong-type', /originalTimestamp is/],
  ['a wrong sentAt', 'wrong-type', /sentAt is/],
  ['wrong properties', 'wrong-type', /properties is/],
  ['wrong traits', 'wrong-type', /traits is/],
  ['a wrong context', 'wrong-type', /context is/],
  ['wrong integrations', 'wrong-type', /integrations is/],
  ['a wrong event', 'wrong-type', /event is/],
  ['an empty event', 'wrong-type', /event is an empty string/],
  ['a wrong name', 'wrong-type', /name is/],
  ['a wrong groupId', 'wrong-type', /groupId is/],
  ['a wrong previousId', 'wrong-type', /previousId is/],
  ['wrong types in batch items', 'wrong-type', /batch: .*every item/],
  ['no identity', 'missing-required', /neither userId nor anonymousId/],
  ['no event', 'missing-required', /no event/],
  ['no groupId', 'missing-required', /no groupId/],
  ['no previousId', 'missing-required', /no previousId/],
  ['alias without userId', 'missing-required', /alias: .*no userId/],
  ['batch items without type', 'missing-required', /every item lacks type/],
  ['no batch field', 'missing-required', /no batch field/],
  ['an oversized event', 'oversized', /track: .*event of 32769 bytes/],
  ['an oversized gzipped event', 'oversized', /gzipped event/],
  ['an oversized batch', 'oversized', /batch of 512001 bytes/],
  ['an oversized gzipped batch', 'oversized', /gzipped batch/],
  ['nesting one level too deep', 'deep-nesting', /: 33 levels deep/],
  ['very deep nesting', 'deep-nesting', /very deep: .*1,000,000/],
  ['deep nesting in batch items', 'deep-nesting', /batch: .*every item \d+ levels deep/],
  ['invalid UTF-8 in a key', 'invalid-utf8', /in a key/],
  ['invalid UTF-8 in a value', 'invalid-utf8', /in a value/],
  ['truncated multi-byte sequences', 'invalid-utf8', /truncated/],
  ['overlong encodings', 'invalid-utf8', /overlong/],
  ['lone continuation bytes', 'invalid-utf8', /lone continuation/],
  ['encoded surrogates', 'invalid-utf8', /surrogate/],
  ['1e400', 'huge-number', /: 1e400 /],
  ['-1e999', 'huge-number', /: -1e999 /],
  ['12345678901234567890', 'huge-number', /: 12345678901234567890 /],
  ['duplicate keys at the top level', 'duplicate-key', /top level/],
  ['nested duplicate keys', 'duplicate-key', /nested/],
  ['duplicate keys that differ only in escaping', 'duplicate-key', /escaped/],
  ['an array body', 'non-object-body', /an array holding the call/],
  ['a string body', 'non-object-body', /: a string$/],
  ['a null body', 'non-object-body', /: null$/],
  ['a number body', 'non-object-body', /: a number$/],
  ['an empty body', 'non-object-body', /: an empty body$/],
  ['a body cut short', 'truncated-json', /cut after/],
  ['garbage after the object', 'trailing-garbage', /after the object/],
  ['comments', 'not-strict-json', /comment/],
  ['trailing commas', 'not-strict-json', /trailing comma/],
  ['a batch that is not an array', 'bad-batch', /batch is a string/],
  ['an empty batch', 'bad-batch', /batch is an empty array/],
  ['batch items of unknown type', 'bad-batch', /every item has type/],
  ['a missing write key', 'auth', /missing Authorization header/],
  ['a wrong write key', 'auth', /wrong write key/],
];

/**
 * What is wrong with the corpus as a regression set: too small or not repeatable, a kind or endpoint or required
 * case missing, or an entry that breaks no rule (or another one than its kind says, so its expected answer is wrong).
 */
function corpusProblems(): string[] {
  const problems: string[] = [];
  if (payloads.length < 1000) problems.push(`only ${payloads.length} entries, fewer than 1,000`);
  const fingerprint = (list: MalformedPayload[]) => list.map((p) => `${p.endpoint} ${p.description} ${p.body.toString('base64')}`).join('\n');
  if (fingerprint(malformedPayloads()) !== fingerprint(payloads)) problems.push('two builds from the same seed differ: a failure could not be replayed');
  if (fingerprint(malformedPayloads(7)) === fingerprint(payloads)) problems.push('another seed builds the same corpus: the seed is ignored');

  const count = (kind: MalformedKind, endpoint?: string) => payloads.filter((p) => p.kind === kind && (endpoint === undefined || p.endpoint === endpoint)).length;
  for (const kind of MALFORMED_KINDS) {
    if (count(kind) < (kind === 'auth' ? 14 : 50)) problems.push(`${kind}: only ${count(kind)} entries`);
    const endpoints = kind === 'bad-batch' ? ['/v1/batch'] : FUZZ_ENDPOINTS;
    for (const endpoint of endpoints) if (count(kind, endpoint) === 0) problems.push(`no ${kind} entry on ${endpoint}`);
  }
  for (const [what, kind, description] of REQUIRED_CASES) {
    if (!payloads.some((p) => p.kind === kind && description.test(p.description))) problems.push(`no entry with ${what} (${kind})`);
  }

  payloads.forEach((p, i) => {
    const found = violationOf(p);
    if (!found) problems.push(`#${i} ${p.description}: breaks no rule`);
    else if (!EXPECTED_VIOLATIONS[p.kind].includes(found.violation)) problems.push(`#${i} ${p.description}: refused for ${found.violation} (${found.reason.slice(0, 200)})`);
    else if ((p.expectedStatus === 401) !== (found.violation === 'auth')) problems.push(`#${i} ${p.description}: expects ${p.expectedStatus}`);
  });
  return problems;
}

// A guard, not a test: a corpus that no longer breaks the rules as its kinds say would make the regression test
// below pass or fail for the wrong reason, so nothing runs on it. (The rule check parses with core/strict-json.ts,
// so a strict parser that stops refusing duplicate keys, say, is reported here too.)
beforeAll(() => {
  const problems = corpusProblems();
  if (problems.length > 0) {
    throw new Error(
      `the malformed payload corpus (test/support/malformed-payloads.ts) is broken, or core/strict-json.ts no longer refuses what it must:\n  ${problems.slice(0, FAILURES_SHOWN).join('\n  ')}${problems.length > FAILURES_SHOWN ? `\n  and ${problems.length - FAILURES_SHOWN} more` : ''}`,
    );
  }
});

// --- the real app -------------------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: unknown;
  text: string;
}

async function send(base: string, p: MalformedPayload): Promise<Reply> {
  const res = await fetch(`${base}${p.endpoint}`, { method: 'POST', headers: p.headers, body: p.body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

/** What is wrong with the server's answer to `p`, or undefined if it is right. */
function answerProblem(p: MalformedPayload, reply: Reply): string | undefined {
  const shown = reply.text.length > 160 ? `${reply.text.slice(0, 160)}…` : reply.text;
  const expected = `${p.expectedStatus}${p.expectedError ? ` ${p.expectedError}` : ''}`;
  if (reply.status !== p.expectedStatus) return `expected ${expected}, got ${reply.status} ${shown}`;
  const body = reply.body as { message?: unknown; error?: unknown } | undefined;
  if (typeof body?.message !== 'string' || body.message.trim() === '') return `expected a JSON body with a message (the reason), got ${shown}`;
  if (p.expectedError && body.error !== p.expectedError) return `expected ${expected}, got error ${String(body.error)}: ${body.message}`;
  return undefined;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function forEachLimit<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const backends = storeBackends('fuzz');

for (const backend of backends) {
  backend.describe(`fuzzed ingest over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    const logged: string[] = [];

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({ store, config: { writeKey: FUZZ_WRITE_KEY }, dispatcher: noDispatch, log: (m) => logged.push(m) });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it(`refuses all ${payloads.length} malformed payloads with a reason, and stores nothing`, async () => {
      const before = await store.tableCounts();
      const failures: Array<{ index: number; kind: MalformedKind; line: string }> = [];

      await forEachLimit(payloads, CONCURRENCY, async (p, index) => {
        let problem: string | undefined;
        try {
          problem = answerProblem(p, await send(app.url, p));
        } catch (err) {
          problem = `no answer: ${(err as Error).message}`;
        }
        if (problem) failures.push({ index, kind: p.kind, line: `#${index} ${p.description}: ${problem}` });
      });

      const after = await store.tableCounts();
      const tablesChanged: Record<string, string> = {};
      for (const table of new Set([...Object.keys(before), ...Object.keys(after)])) {
        if (before[table] !== after[table]) tablesChanged[table] = `${before[table] ?? 0} rows before, ${after[table] ?? 0} after`;
      }
      failures.sort((a, b) => a.index - b.index);
      const failedByKind: Record<string, number> = {};
      for (const f of failures) failedByKind[f.kind] = (failedByKind[f.kind] ?? 0) + 1;

      expect({
        failed: `${failures.length} of ${payloads.length}`,
        failedByKind,
        firstFailures: failures.slice(0, FAILURES_SHOWN).map((f) => f.line),
        tablesChanged,
        serverLog: logged.slice(0, 3),
      }).toEqual({ failed: `0 of ${payloads.length}`, failedByKind: {}, firstFailures: [], tablesChanged: {}, serverLog: [] });
    });
  });
}
