// Property tests of the ingest endpoints over real HTTP on a real store, with requests generated anew each run:
// every answer is a 200 with each event stored once per messageId, or a 4xx with { error, message } and nothing
// stored; never a 5xx, never a hang. Retries are deduplicated; a batch keeps its good items and names the bad ones.
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { deepDifference } from '../support/deep-difference';
import { openEventsTable, type EventRow, type EventsTable } from '../support/events-table';
import { fuzzRun } from '../support/fuzz-seed';
import { anyBatchBody, anyBytes, anyValidCall, brokenBatch, itemPath, jsonValue, mutation, padTo, scrambledCall, validBatch, validCall, withBrokenItems, withUnstorableText, type Call } from '../support/segment-arbitraries';
import { BATCH_LIMIT, batchVerdict, CALL_TYPES, callFaults, EVENT_LIMIT, expectedEvent, isPlainObject, isStrictSafe, type CallType } from '../support/segment-reference';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

// Each run here costs milliseconds of HTTP and SQL, so a failure's shrinking is cut short sooner than in core.
const fuzz = fuzzRun('test/server/ingest-properties.test.ts', { searchLimitMs: 30_000 });
const WRITE_KEY = 'property-write-key';
/** Long enough for any answer on a loaded machine; a request still unanswered by then has hung. */
const HANG_MS = 20_000;

// --- requests -------------------------------------------------------------------------------------------------------

type Endpoint = CallType | 'batch';
interface Route {
  path: string;
  endpoint: Endpoint;
}
/** Every ingest path, with the one-letter ones analytics.js posts to. */
const ROUTES: Route[] = [
  ...CALL_TYPES.flatMap((type) => [
    { path: `/v1/${type}`, endpoint: type },
    { path: `/v1/${type[0]}`, endpoint: type },
  ]),
  { path: '/v1/batch', endpoint: 'batch' },
  { path: '/v1/import', endpoint: 'batch' },
];

/** How a client spells a path: routes match as express would, in any case, with one trailing slash or a query. */
type Spelling = 'as-is' | 'upper-case' | 'trailing-slash' | 'query';
const spelling = fc.constantFrom<Spelling>('as-is', 'as-is', 'upper-case', 'trailing-slash', 'query');
const SPELL: Record<Spelling, (path: string) => string> = {
  'as-is': (p) => p,
  'upper-case': (p) => p.toUpperCase(),
  'trailing-slash': (p) => `${p}/`,
  query: (p) => `${p}?source=web`,
};

/** The write key: as Basic-auth user (with or without a password), wrong, absent, as a Bearer token, or in the body. */
type Auth = 'basic' | 'basic-with-password' | 'wrong-key' | 'none' | 'bearer' | 'in-body' | 'wrong-in-body';
const auth = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<Auth>('basic') },
  { weight: 4, arbitrary: fc.constantFrom<Auth>('basic-with-password', 'wrong-key', 'none', 'bearer', 'in-body', 'wrong-in-body') },
);

type Body = { json: unknown } | { bytes: Uint8Array };

function bodyFor(endpoint: Endpoint): fc.Arbitrary<Body> {
  const json = (arb: fc.Arbitrary<unknown>) => arb.map((value): Body => ({ json: value }));
  const other = [
    { weight: 1, arbitrary: json(anyValidCall.map((c) => c.call)) },
    { weight: 1, arbitrary: json(jsonValue(3)) },
    { weight: 1, arbitrary: anyBytes.map((bytes): Body => ({ bytes })) },
  ];
  if (endpoint === 'batch') {
    return fc.oneof({ weight: 4, arbitrary: json(validBatch(5)) }, { weight: 4, arbitrary: json(anyBatchBody) }, ...other);
  }
  return fc.oneof(
    { weight: 4, arbitrary: json(validCall(endpoint)) },
    { weight: 2, arbitrary: json(fc.tuple(validCall(endpoint), mutation(endpoint)).map(([call, m]) => m.apply(call))) },
    { weight: 2, arbitrary: json(scrambledCall(endpoint)) },
    { weight: 1, arbitrary: json(validBatch(3)) },
    ...other,
  );
}

/** A request to one route; one arbitrary per route rather than a chain, so shrinking keeps the body it failed with. */
const requestTo = (route: Route) =>
  fc.record({ route: fc.constant(route), spell: spelling, auth, body: bodyFor(route.endpoint), gzip: fc.boolean(), contentType: fc.constantFrom('application/json', 'text/plain', undefined) });

// The two batch routes get a third of the runs, the twelve call routes the rest.
const anyRequest = fc.oneof(...ROUTES.map((route) => ({ weight: route.endpoint === 'batch' ? 3 : 1, arbitrary: requestTo(route) })));

type AnyRequest = typeof anyRequest extends fc.Arbitrary<infer R> ? R : never;

const basic = (user: string, password = '') => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const HEADERS: Record<Auth, string | undefined> = {
  basic: basic(WRITE_KEY),
  'basic-with-password': basic(WRITE_KEY, 'ignored'),
  'wrong-key': basic(`${WRITE_KEY}-not`),
  none: undefined,
  bearer: `Bearer ${WRITE_KEY}`,
  'in-body': undefined,
  'wrong-in-body': undefined,
};

/** The JSON value sent (with the write key put in it when the request carries it there), or undefined for raw bytes. */
function sentValue(request: AnyRequest): unknown {
  if (!('json' in request.body)) return undefined;
  const value = request.body.json;
  if (!isPlainObject(value)) return value;
  if (request.auth === 'in-body') return { ...value, writeKey: WRITE_KEY };
  if (request.auth === 'wrong-in-body') return { ...value, writeKey: 'not-the-key' };
  return value;
}

interface Sent {
  path: string;
  headers: Record<string, string>;
  /** The body before any gzip: what the limits apply to. */
  bytes: Buffer;
  value: unknown;
}

/** A value as the server reads it: what its JSON keeps (no undefined members, plain prototypes). */
const wire = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

function toSent(request: AnyRequest): Sent {
  const value = wire(sentValue(request));
  const bytes = 'json' in request.body ? Buffer.from(JSON.stringify(value), 'utf8') : Buffer.from(request.body.bytes);
  const headers: Record<string, string> = {};
  const authorization = HEADERS[request.auth];
  if (authorization !== undefined) headers.authorization = authorization;
  if (request.contentType !== undefined) headers['content-type'] = request.contentType;
  if (request.gzip) headers['content-encoding'] = 'gzip';
  return { path: SPELL[request.spell](request.route.path), headers, bytes, value };
}

interface Reply {
  status: number;
  text: string;
  json: Record<string, unknown> | undefined;
}

async function post(base: string, path: string, headers: Record<string, string>, bytes: Buffer): Promise<Reply> {
  const body = headers['content-encoding'] === 'gzip' ? gzipSync(bytes) : bytes;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(HANG_MS) });
  } catch (err) {
    throw new Error(`POST ${path}: no answer (${(err as Error).message}); the server hung or closed the connection`);
  }
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

// --- what the README promises for a request -------------------------------------------------------------------------

interface Expected {
  status: 200 | 400 | 401;
  error?: 'bad_event' | 'payload_too_large' | 'unauthorized';
  /** For a batch answered 200: the indexes of the rejected items. */
  rejected?: number[];
}

/**
 * The answer the ingest rules call for, in the order the server meets them (size, header key, JSON, body key,
 * the calls), or undefined when only the general promises apply (raw bytes whose meaning this does not judge).
 */
function expectedAnswer(endpoint: Endpoint, request: AnyRequest, sent: Sent): Expected | undefined {
  if (sent.bytes.length > (endpoint === 'batch' ? BATCH_LIMIT : EVENT_LIMIT)) return { status: 400, error: 'payload_too_large' };
  const headerKey = request.auth === 'basic' || request.auth === 'basic-with-password' ? WRITE_KEY : request.auth === 'wrong-key' ? 'wrong' : undefined;
  if (headerKey !== undefined && headerKey !== WRITE_KEY) return { status: 401, error: 'unauthorized' };
  if (!('json' in request.body)) return undefined;
  const value = sent.value;
  if (!isStrictSafe(value)) return { status: 400, error: 'bad_event' };
  if (headerKey === undefined && !(isPlainObject(value) && value.writeKey === WRITE_KEY)) return { status: 401, error: 'unauthorized' };
  if (endpoint !== 'batch') return callFaults(endpoint, value).length === 0 ? { status: 200 } : { status: 400, error: 'bad_event' };
  const verdict = batchVerdict(value);
  const rejected = verdict.itemFaults.flatMap((faults, index) => (faults.length > 0 ? [index] : []));
  if (verdict.batchFaults.length > 0 || rejected.length === verdict.itemFaults.length) return { status: 400, error: 'bad_event' };
  return { status: 200, rejected };
}

// --- checking an answer against the store ----------------------------------------------------------------------------

const explicitId = (item: unknown): string | undefined => (isPlainObject(item) && typeof item.messageId === 'string' && item.messageId !== '' ? item.messageId : undefined);

/** A stored row in the form the reference describes an event (the store's customer resolution aside). */
function rowAsEvent(row: EventRow) {
  return { messageId: row.messageId, type: row.type, userId: row.userId, anonymousId: row.anonymousId, name: row.name, properties: row.properties, traits: row.traits, context: row.context, timestamp: row.timestamp, receivedAt: row.receivedAt };
}

/** What the reference says a row for `item` must hold, given the time the server received it. */
function expectedRow(type: CallType, item: Call, receivedAt: number, shared: Call) {
  const { customerId: _customerId, ...event } = expectedEvent(type, item, receivedAt, explicitId(item)!, shared);
  return event;
}

for (const backend of storeBackends('ingest-properties')) {
  backend.describe(`ingest properties over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let events: EventsTable;
    const logged: string[] = [];
    /** The row first stored under each messageId any property sent: what every later answer must leave alone. */
    const firstRows = new Map<string, EventRow>();
    let run = 0;

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({ store, config: { writeKey: WRITE_KEY }, dispatcher: noDispatch, log: (m) => logged.push(m) });
      events = openEventsTable(backend);
    });

    /**
     * Property runs not yet finished. When its search time runs out, fast-check stops waiting for the run in
     * progress; each test waits for it here, so that it cannot write into the rows the next test counts.
     */
    const running = new Set<Promise<void>>();
    function tracked<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
      return (...args) => {
        const promise = run(...args);
        running.add(promise);
        promise.then(
          () => running.delete(promise),
          () => running.delete(promise),
        );
        return promise;
      };
    }

    afterEach(async () => {
      await Promise.allSettled([...running]);
    });

    afterAll(async () => {
      await app?.close();
      await events?.close();
      await backend.dispose();
    });

    /** The rows under `ids`, each of which must be stored exactly once; remembers the first row of each. */
    async function storedOnce(ids: readonly string[]): Promise<Map<string, EventRow>> {
      const rows = await events.rowsFor([...new Set(ids)]);
      const byId = new Map<string, EventRow>();
      const counts = new Map<string, number>();
      for (const row of rows) {
        byId.set(row.messageId, row);
        counts.set(row.messageId, (counts.get(row.messageId) ?? 0) + 1);
        if (!firstRows.has(row.messageId)) firstRows.set(row.messageId, row);
      }
      const notOnce = [...new Set(ids)].filter((id) => counts.get(id) !== 1).map((id) => `${JSON.stringify(id)} stored ${counts.get(id) ?? 0} times`);
      expect(notOnce).toEqual([]);
      return byId;
    }

    /** A 5xx fails the property with what the server logged about it. */
    function noServerError(path: string, ...replies: Reply[]): void {
      for (const reply of replies) {
        if (reply.status >= 500) throw new Error(`POST ${path} answered ${reply.status} ${reply.text.slice(0, 300)}; the server logged: ${logged.slice(-2).join('\n') || 'nothing'}`);
      }
    }

    const refusalShape = (reply: Reply) => ({
      status: reply.status,
      error: typeof reply.json?.error === 'string' ? 'a code' : reply.json?.error,
      message: typeof reply.json?.message === 'string' && reply.json.message.trim() !== '' ? 'a reason' : reply.json?.message,
    });

    /** Makes every messageId of a batch (or a call) unique to this run, keeping which items share one. */
    function ownIds<T extends Call>(body: T, unique: boolean): T {
      const tag = `run-${++run}`;
      const rename = (item: Call, i: number) => ({ ...item, messageId: unique ? `${tag}-${i}` : `${tag}:${String(item.messageId ?? '')}` });
      return (Array.isArray(body.batch) ? { ...body, batch: (body.batch as Call[]).map(rename) } : rename(body, 0)) as T;
    }

    it('answers any request with 200 and each accepted event stored once, or with 4xx { error, message } and nothing stored; never 5xx', async () => {
      await fuzz.checkAsync(
        fc.asyncProperty(anyRequest, tracked(async (request) => {
          const { endpoint } = request.route;
          const sent = toSent(request);
          const expected = expectedAnswer(endpoint, request, sent);
          const before = await store.tableCounts();
          const reply = await post(app.url, sent.path, sent.headers, sent.bytes);
          const after = await store.tableCounts();

          noServerError(sent.path, reply);
          if (reply.status !== 200) {
            expect(refusalShape(reply)).toEqual({ status: reply.status, error: 'a code', message: 'a reason' });
            expect(reply.status).toBeGreaterThanOrEqual(400);
            if (expected) expect({ status: reply.status, error: reply.json?.error }).toEqual({ status: expected.status, error: expected.error });
            expect(after).toEqual(before);
            return;
          }
          if (expected) expect(reply.status).toBe(expected.status);

          // Accepted: the items the answer does not reject are stored, each under its messageId exactly once.
          const value = sent.value ?? JSON.parse(new TextDecoder().decode(sent.bytes));
          const items: unknown[] = endpoint === 'batch' ? (value as Call).batch as unknown[] : [value];
          const rejected = endpoint === 'batch' ? ((reply.json?.rejected ?? []) as Array<{ index: number; field?: string; message: string }>) : [];
          if (expected?.rejected) expect(rejected.map((r) => r.index)).toEqual(expected.rejected);
          const accepted = items.filter((_, i) => !rejected.some((r) => r.index === i)) as Call[];
          const known = new Set(firstRows.keys());
          const newIds = [...new Set(accepted.map(explicitId).filter((id): id is string => id !== undefined && !known.has(id)))];
          const newEvents = accepted.filter((item) => explicitId(item) === undefined).length + newIds.length;
          if (endpoint === 'batch') expect({ accepted: reply.json?.accepted, duplicates: reply.json?.duplicates }).toEqual({ accepted: accepted.length, duplicates: accepted.length - newEvents });

          const rows = await storedOnce(accepted.map(explicitId).filter((id): id is string => id !== undefined));
          expect(after.events! - before.events!).toBe(newEvents);
          const shared = endpoint === 'batch' ? (value as Call) : {};
          for (const id of newIds) {
            const item = accepted.find((it) => explicitId(it) === id)!;
            const row = rows.get(id)!;
            const type = (endpoint === 'batch' ? item.type : endpoint) as CallType;
            expect(deepDifference(rowAsEvent(row), expectedRow(type, item, row.receivedAt, shared))).toBeUndefined();
          }
          // A messageId seen before is a retry: its row stays as first stored.
          for (const [id, row] of rows) if (known.has(id)) expect(deepDifference(row, firstRows.get(id))).toBeUndefined();
        })),
        500,
      );
    });

    it('stores each event of a batch sent twice (one after the other, or at once) exactly once', async () => {
      await fuzz.checkAsync(
        fc.asyncProperty(validBatch(6), fc.boolean(), tracked(async (generated, atOnce) => {
          const body = ownIds(generated, false);
          const ids = (body.batch as Call[]).map((item) => item.messageId as string);
          const distinct = new Set(ids).size;
          const send = () => post(app.url, '/v1/batch', { authorization: HEADERS.basic!, 'content-type': 'application/json' }, Buffer.from(JSON.stringify(body)));
          const before = await store.tableCounts();
          let replies: Reply[];
          if (atOnce) replies = await Promise.all([send(), send()]);
          else replies = [await send(), await send()];
          const after = await store.tableCounts();

          noServerError('/v1/batch', ...replies);
          expect(replies.map((r) => ({ status: r.status, accepted: r.json?.accepted, rejected: r.json?.rejected }))).toEqual(replies.map(() => ({ status: 200, accepted: ids.length, rejected: [] })));
          // Each copy after the first of a messageId, in the batch or across the two sends, is a duplicate.
          expect(replies.reduce((sum, r) => sum + (r.json?.duplicates as number), 0)).toBe(2 * ids.length - distinct);
          if (!atOnce) expect(replies[1]!.json?.duplicates).toBe(ids.length);
          expect(after.events! - before.events!).toBe(distinct);
          await storedOnce(ids);
        })),
        100,
      );
    });

    it('keeps the good items of a batch with one bad item, and rejects that one by its index and field', async () => {
      await fuzz.checkAsync(
        fc.asyncProperty(brokenBatch({ minItems: 2, maxBroken: 1 }), tracked(async ({ body: generated, broken: [pick] }) => {
          const [index, broken] = pick!;
          const valid = wire(ownIds(generated, true));
          const body = wire(withBrokenItems(valid, [[index, broken]]));
          const field = itemPath(index, broken.field);
          const items = valid.batch as Call[];
          const before = await store.tableCounts();
          const reply = await post(app.url, '/v1/batch', { authorization: HEADERS.basic! }, Buffer.from(JSON.stringify(body)));
          const after = await store.tableCounts();

          noServerError('/v1/batch', reply);
          const rejected = (reply.json?.rejected ?? []) as Array<{ index: number; field?: string; message: string }>;
          expect({ status: reply.status, accepted: reply.json?.accepted, duplicates: reply.json?.duplicates, rejected: rejected.map((r) => ({ index: r.index, field: r.field })) }).toEqual({
            status: 200,
            accepted: items.length - 1,
            duplicates: 0,
            rejected: [{ index, field }],
          });
          expect(rejected[0]!.message.startsWith(`${field}: `)).toBe(true);
          expect(after.events! - before.events!).toBe(items.length - 1);
          const good = items.filter((_, i) => i !== index);
          const rows = await storedOnce(good.map((item) => item.messageId as string));
          for (const item of good) {
            const row = rows.get(item.messageId as string)!;
            expect(deepDifference(rowAsEvent(row), expectedRow(item.type as CallType, item, row.receivedAt, body))).toBeUndefined();
          }
          expect(await events.rowsFor([items[index]!.messageId as string])).toEqual([]);
        })),
        200,
      );
    });

    it('refuses a call or batch holding U+0000 or a lone surrogate, naming its JSON path, and stores nothing, even when retried', async () => {
      const unstorable = fc.oneof(
        ...CALL_TYPES.map((type) => fc.record({ endpoint: fc.constant<Endpoint>(type), batchIndex: fc.constant(-1), others: fc.constant<Call[]>([]), bad: withUnstorableText(type) })),
        {
          weight: 3,
          arbitrary: fc
            .tuple(fc.constantFrom(...CALL_TYPES), validBatch(3), fc.nat(3))
            .chain(([type, batch, at]) => fc.record({ endpoint: fc.constant<Endpoint>('batch'), batchIndex: fc.constant(Math.min(at, (batch.batch as Call[]).length)), others: fc.constant(batch.batch as Call[]), bad: withUnstorableText(type).map((b) => ({ ...b, call: { ...b.call, type } })) })),
        },
      );
      await fuzz.checkAsync(
        fc.asyncProperty(unstorable, tracked(async ({ endpoint, batchIndex, others, bad }) => {
          const generated = bad.call as Call;
          const call = ownIds(generated, true);
          // The bad text may be the messageId itself: keep it, with this run's tag in front.
          if (bad.path === '$.messageId') call.messageId = `${call.messageId as string}${generated.messageId as string}`;
          const items = [...others.slice(0, batchIndex), call, ...others.slice(batchIndex)].map((item) => (item === call ? item : ownIds(item, true)));
          const body = endpoint === 'batch' ? { batch: items } : call;
          const path = endpoint === 'batch' ? bad.path.replace(/^\$/, `$.batch[${batchIndex}]`) : bad.path;
          const before = await store.tableCounts();
          // Sent twice: a store that kept the text changed would find no copy on the retry and fail on its unique index.
          const replies = [];
          for (let attempt = 0; attempt < 2; attempt++) replies.push(await post(app.url, `/v1/${endpoint}`, { authorization: HEADERS.basic! }, Buffer.from(JSON.stringify(body))));
          const after = await store.tableCounts();
          noServerError(`/v1/${endpoint}`, ...replies);
          for (const reply of replies) {
            expect({ status: reply.status, error: reply.json?.error, field: reply.json?.field }).toEqual({ status: 400, error: 'bad_event', field: path });
            expect(String(reply.json?.message).startsWith(`${path}: `)).toBe(true);
          }
          expect(after).toEqual(before);
        })),
        100,
      );
    });

    it('takes a call or a batch up to its size limit and refuses one byte more, gzipped or not, storing nothing', async () => {
      const sized = fc.oneof(
        ...CALL_TYPES.map((type) => fc.record({ endpoint: fc.constant<Endpoint>(type), delta: fc.integer({ min: -8, max: 8 }), gzip: fc.boolean(), body: validCall(type) })),
        { weight: 3, arbitrary: fc.record({ endpoint: fc.constant<Endpoint>('batch'), delta: fc.integer({ min: -8, max: 8 }), gzip: fc.boolean(), body: validBatch(3) }) },
      );
      await fuzz.checkAsync(
        fc.asyncProperty(sized, tracked(async ({ endpoint, delta, gzip, body: generated }) => {
          const limit = endpoint === 'batch' ? BATCH_LIMIT : EVENT_LIMIT;
          const own = ownIds(generated, true);
          // A call carries the padding in its context; a batch in a field of its own, so no item passes 32 KB.
          const body = endpoint === 'batch' ? padTo({ padded: {}, ...own }, limit + delta, 'padded') : padTo(own, limit + delta);
          const bytes = Buffer.from(JSON.stringify(body));
          expect(bytes.length).toBe(limit + delta);
          const before = await store.tableCounts();
          const reply = await post(app.url, `/v1/${endpoint}`, { authorization: HEADERS.basic!, ...(gzip ? { 'content-encoding': 'gzip' } : {}) }, bytes);
          const after = await store.tableCounts();
          const ids = (endpoint === 'batch' ? (own.batch as Call[]) : [own]).map((item) => item.messageId as string);
          noServerError(`/v1/${endpoint}`, reply);
          if (delta <= 0) {
            expect({ status: reply.status, body: reply.text.slice(0, 200) }).toEqual({ status: 200, body: reply.text.slice(0, 200) });
            expect(after.events! - before.events!).toBe(ids.length);
            await storedOnce(ids);
          } else {
            expect({ status: reply.status, error: reply.json?.error }).toEqual({ status: 400, error: 'payload_too_large' });
            expect(after).toEqual(before);
          }
        })),
        60,
      );
    });
  });
}
