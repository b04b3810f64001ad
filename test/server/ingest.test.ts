// The real app on a real port and a real store: valid Segment calls are stored once, bad ones are refused with
// a reason and change nothing, and the admin API reads back what the store holds. Dispatch to a running Temporal
// is tested in test/integration/dispatch.test.ts; here the real dispatcher faces a Temporal that is down.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { freePort } from '../../cli/dev-server';
import { temporalHealth } from '../../cli/runtime';
import { loadFlowFiles } from '../../cli/project-files';
import { segmentIdsIn } from '../../cli/segment-files';
import { EVENT_LIMIT_BYTES } from '../../server/app';
import { noDispatch } from '../../server/dispatcher';
import { TemporalDispatcher } from '../../server/temporal-dispatcher';
import { openPostgresStore } from '../../store/postgres';
import { openSqliteStore } from '../../store/sqlite';
import type { KyselyStore } from '../../store/kysely-store';
import type { Store } from '../../store/store';
import { storeBackends } from '../support/store-backends';
import { serveApp, type RunningApp } from '../support/serve-app';
import { TEST_ADMIN_KEY, adminHeaders } from '../support/http';

const WRITE_KEY = 'test-write-key';
const basic = (username: string, password = '') => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;


interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function post(base: string, path: string, body: unknown, options: { auth?: string | null; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  const auth = options.auth === undefined ? basic(WRITE_KEY) : options.auth;
  if (auth !== null) headers.authorization = auth;
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: payload });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function get(base: string, path: string): Promise<Reply> {
  const res = await fetch(`${base}${path}`, { headers: adminHeaders() });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

const backends = storeBackends('ingest');

for (const backend of backends) {
  backend.describe(`ingest over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    const logged: string[] = [];

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: (m) => logged.push(m) });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    describe('valid calls', () => {
      it('stores a track call once and folds it into the profile', async () => {
        const customer = unique('c');
        const before = await store.tableCounts();
        const reply = await post(app.url, '/v1/track', {
          userId: customer,
          event: 'Product Added',
          properties: { product_id: 'p1', price: 12, quantity: 2 },
          messageId: unique('m'),
          timestamp: '2024-05-01T12:00:00Z',
        });

        expect(reply).toMatchObject({ status: 200, body: { success: true } });
        const events = await store.eventsOf(customer);
        expect(events).toEqual([
          expect.objectContaining({ type: 'track', name: 'Product Added', userId: customer, timestamp: Date.UTC(2024, 4, 1, 12), dispatched: true }),
        ]);
        expect((await store.getProfile(customer))?.computed.cart).toEqual([expect.objectContaining({ product_id: 'p1', quantity: 2 })]);
        expect((await store.tableCounts()).events).toBe((before.events ?? 0) + 1);
      });

      it('stores an identify call and takes its traits', async () => {
        const customer = unique('c');
        const before = await store.tableCounts();
        const reply = await post(app.url, '/v1/identify', { userId: customer, traits: { email: 'ada@example.com', consent: { email_marketing: true } } });

        expect(reply).toMatchObject({ status: 200, body: { success: true } });
        const profile = await store.getProfile(customer);
        expect(profile?.email).toBe('ada@example.com');
        expect(profile?.consent.email_marketing?.granted).toBe(true);
        expect((await store.tableCounts()).events).toBe((before.events ?? 0) + 1);
      });

      it('stores a repeated messageId once and answers 200 both times', async () => {
        const customer = unique('c');
        const call = { anonymousId: customer, event: 'Product Added', properties: { product_id: 'p1' }, messageId: unique('m') };
        const before = await store.tableCounts();

        expect((await post(app.url, '/v1/track', call)).status).toBe(200);
        expect((await post(app.url, '/v1/track', call)).status).toBe(200);

        expect((await store.tableCounts()).events).toBe((before.events ?? 0) + 1);
        expect((await store.getProfile(customer))?.computed.cart).toEqual([expect.objectContaining({ quantity: 1 })]);
      });

      it('accepts any Content-Type and a gzipped body, as Segment clients send', async () => {
        const customer = unique('c');
        const plain = await post(app.url, '/v1/track', { userId: customer, event: 'Product Viewed' }, { headers: { 'content-type': 'text/plain' } });
        const gzipped = await post(app.url, '/v1/track', gzipSync(JSON.stringify({ userId: customer, event: 'Cart Viewed' })), {
          headers: { 'content-encoding': 'gzip' },
        });
        expect([plain.status, gzipped.status]).toEqual([200, 200]);
        expect((await store.eventsOf(customer)).map((e) => e.name).sort()).toEqual(['Cart Viewed', 'Product Viewed']);
      });

      it('accepts a body of exactly 32 KB', async () => {
        const customer = unique('c');
        const call = { userId: customer, event: 'Product Viewed', properties: { padding: '' } };
        call.properties.padding = 'x'.repeat(EVENT_LIMIT_BYTES - Buffer.byteLength(JSON.stringify(call)));
        expect(Buffer.byteLength(JSON.stringify(call))).toBe(EVENT_LIMIT_BYTES);
        expect((await post(app.url, '/v1/track', call)).status).toBe(200);
      });
    });

    describe('bad calls: refused with a reason, nothing stored', () => {
      const oversized = () => {
        const call = { userId: 'u', event: 'Product Viewed', properties: { padding: 'x'.repeat(40_000) } };
        return JSON.stringify(call);
      };

      it.each<[string, () => { path?: string; body: unknown; auth?: string | null }, number, Record<string, unknown>, RegExp]>([
        ['a body that is not JSON', () => ({ body: '{"userId": "u", event: ' }), 400, { error: 'bad_event' }, /not valid JSON/],
        ['an empty body', () => ({ body: '' }), 400, { error: 'bad_event' }, /body is empty/],
        ['a JSON array', () => ({ body: [{ userId: 'u', event: 'x' }] }), 400, { error: 'bad_event' }, /JSON object, got an array/],
        ['neither userId nor anonymousId', () => ({ body: { event: 'Product Viewed' } }), 400, { error: 'bad_event', field: 'userId' }, /anonymousId/],
        ['a track call without event', () => ({ body: { userId: 'u' } }), 400, { error: 'bad_event', field: 'event' }, /event: is required/],
        ['an identify call with array traits', () => ({ path: '/v1/identify', body: { userId: 'u', traits: [] } }), 400, { field: 'traits' }, /traits/],
        ['a bad timestamp', () => ({ body: { userId: 'u', event: 'x', timestamp: 'tomorrow' } }), 400, { field: 'timestamp' }, /ISO-8601/],
        [
          'a body over 32 KB',
          () => ({ body: oversized() }),
          400,
          { error: 'payload_too_large' },
          new RegExp(`^event is ${Buffer.byteLength(oversized())} bytes; the limit is 32 KB per event$`),
        ],
        ['a wrong write key', () => ({ body: { userId: 'u', event: 'x' }, auth: basic('not-the-key') }), 401, { error: 'unauthorized' }, /wrong write key/],
        ['a missing Authorization header', () => ({ body: { userId: 'u', event: 'x' }, auth: null }), 401, { error: 'unauthorized' }, /missing write key/],
        ['a non-Basic Authorization header', () => ({ body: { userId: 'u', event: 'x' }, auth: `Bearer ${WRITE_KEY}` }), 401, { error: 'unauthorized' }, /missing write key/],
        ['the write key as password instead of username', () => ({ body: { userId: 'u', event: 'x' }, auth: basic('', WRITE_KEY) }), 401, { error: 'unauthorized' }, /missing write key/],
      ])('%s', async (_case, request, status, shape, message) => {
        const { path = '/v1/track', body, auth } = request();
        const before = await store.tableCounts();

        const reply = await post(app.url, path, body, { auth });

        expect(reply.status).toBe(status);
        expect(reply.body).toMatchObject(shape);
        expect(reply.body.message).toMatch(message);
        expect(await store.tableCounts()).toEqual(before);
      });

      it('asks for Basic auth on 401', async () => {
        const reply = await post(app.url, '/v1/track', { userId: 'u', event: 'x' }, { auth: null });
        expect(reply.headers.get('www-authenticate')).toBe('Basic realm="microflows"');
      });

      it('refuses an oversized body sent without Content-Length (chunked)', async () => {
        const before = await store.tableCounts();
        const chunks = [Buffer.from('{"userId":"u","event":"x","properties":{"p":"'), Buffer.from('x'.repeat(40_000)), Buffer.from('"}}')];
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const chunk of chunks) controller.enqueue(chunk);
            controller.close();
          },
        });
        const res = await fetch(`${app.url}/v1/track`, {
          method: 'POST',
          headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' },
          body: stream,
          duplex: 'half',
        } as RequestInit);
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({ error: 'payload_too_large', message: `event is more than ${EVENT_LIMIT_BYTES} bytes; the limit is 32 KB per event` });
        expect(await store.tableCounts()).toEqual(before);
      });
    });

    describe('dispatch', () => {
      it('answers 200 while Temporal is down, logs the failed dispatch, and keeps the event owed for the next start', async () => {
        const root = path.resolve(__dirname, '../..');
        const { flows } = loadFlowFiles(path.join(root, 'flows'), path.join(root, 'templates'), segmentIdsIn(path.join(root, 'segments')));
        // Nothing listens on this port; one attempt per call, so the failure comes at once instead of after retries.
        const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 1 }))] });
        const log: string[] = [];
        const dispatcher = new TemporalDispatcher(store, { client: new Client({ connection }), taskQueue: 'nowhere', searchAttributes: false }, flows, (m) => log.push(m));
        const other = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher, log: (m) => log.push(m) });
        try {
          const customer = unique('c');
          const messageId = unique('m');
          // Product Added starts the shipped cart-abandonment flow: it is owed to Temporal.
          const reply = await post(other.url, '/v1/track', { userId: customer, event: 'Product Added', properties: { product_id: 'p' }, messageId });
          expect(reply).toMatchObject({ status: 200, body: { success: true } });
          await dispatcher.idle();
          expect(dispatcher.failureCount).toBe(1);
          expect(log.join('\n')).toContain(`[dispatch] event ${messageId} for ${customer} not delivered yet`);
          expect((await store.eventsOf(customer)).map((e) => [e.messageId, e.dispatched])).toEqual([[messageId, false]]);
          expect((await store.listUndispatched(100_000)).map((e) => e.messageId)).toContain(messageId);
        } finally {
          await other.close();
          await connection.close();
        }
      });
    });

    describe('admin API', () => {
      it('reports health: the store, and how many events wait for Temporal (an app without Temporal reports the store alone)', async () => {
        const owed = await store.undispatchedSummary();
        const reply = await get(app.url, '/api/health');
        expect(reply.status).toBe(200);
        expect(reply.body).toEqual({
          status: 'ok',
          store: { ok: true, backend: backend.name },
          undispatched: { count: owed.count, oldestReceivedAt: owed.oldestReceivedAt, oldestAgeMs: owed.oldestReceivedAt === null ? null : expect.any(Number) },
        });
      });

      it('answers 503 naming Temporal and its address when Temporal does not answer, and says how long the oldest event has waited', async () => {
        const address = `127.0.0.1:${await freePort()}`;
        const temporal = temporalHealth(address);
        const at = Date.now();
        const customer = unique('health');
        await store.recordEvent(
          { messageId: unique('m'), type: 'track', customerId: customer, userId: customer, anonymousId: null, name: 'Product Added', properties: {}, traits: {}, context: {}, timestamp: at - 5000, receivedAt: at - 5000 },
          { needsDispatch: true },
        );
        const down = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, temporal, now: () => at });
        try {
          const reply = await get(down.url, '/api/health');
          expect(reply.status).toBe(503);
          expect(reply.body).toMatchObject({ status: 'unavailable', store: { ok: true, backend: backend.name }, temporal: { ok: false, address, error: expect.any(String) } });
          const owed = reply.body.undispatched as { count: number; oldestReceivedAt: number; oldestAgeMs: number };
          expect(owed.count).toBeGreaterThanOrEqual(1);
          expect(owed.oldestAgeMs).toBe(at - owed.oldestReceivedAt);
          expect(owed.oldestAgeMs).toBeGreaterThanOrEqual(5000);
        } finally {
          await down.close();
          await temporal.close();
          for (const event of await store.eventsOf(customer)) await store.markDispatched([event.id]);
        }
      });

      it('answers 503 naming the store when the store does not answer', async () => {
        // SQLite: a store whose connection is closed; PostgreSQL: a server that refuses the connection.
        const file = path.join(os.tmpdir(), `microflows-health-${unique('db')}.sqlite`);
        const closed = backend.name === 'sqlite' ? openSqliteStore(file) : openPostgresStore(`postgres://postgres@127.0.0.1:${await freePort()}/nowhere`);
        if (backend.name === 'sqlite') await closed.close();
        const down = await serveApp({ store: closed, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: () => undefined });
        try {
          const reply = await get(down.url, '/api/health');
          expect(reply.status).toBe(503);
          expect(reply.body).toEqual({ status: 'unavailable', store: { ok: false, backend: backend.name, error: expect.any(String) }, undispatched: null });
        } finally {
          await down.close();
          if (backend.name === 'postgres') await closed.close();
          for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${file}${suffix}`, { force: true });
        }
      });

      it('lists the outbox newest last, optionally for one recipient', async () => {
        const customer = unique('c');
        const to = `${customer}@example.com`;
        for (const key of [unique('dk'), unique('dk')]) {
          await store.claimSend({
            deliveryKey: key,
            customerId: customer,
            flowId: 'cart',
            flowVersion: 1,
            workflowId: `flow/cart/${customer}/1`,
            nodeId: 'steps[1]',
            template: 'cart-reminder',
            to,
            subject: key,
            transport: 'outbox',
            scheduledAt: 1,
          });
          await store.deliverToOutbox({ deliveryKey: key, to, from: 'shop@example.com', subject: key, html: '<p/>', text: '', headers: {}, createdAt: 1 }, `<${key}>`);
        }
        const mine = await get(app.url, `/api/outbox?to=${encodeURIComponent(to)}`);
        expect(mine.status).toBe(200);
        expect((mine.body.messages as { to: string; subject: string }[]).map((m) => m.to)).toEqual([to, to]);
        const all = (await get(app.url, '/api/outbox')).body.messages as { to: string }[];
        expect(all.slice(-2).map((m) => m.to)).toEqual([to, to]);
        expect(await get(app.url, '/api/outbox?to=a&to=b')).toMatchObject({ status: 400, body: { error: 'bad_request', field: 'to' } });
      });

      it("lists a customer's decisions and runs", async () => {
        const customer = unique('c');
        const decision = { key: `${customer}/1`, customerId: customer, at: 5, flowId: 'cart', flowVersion: 1, outcome: 'started', reason: 'trigger fired', eventMessageId: null, workflowId: null };
        await store.recordDecisions([decision]);
        await store.recordFlowEntry({ customerId: customer, flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId: `flow/cart/${customer}/1`, enteredAt: 5, triggerMessageId: 'm-1' });

        expect((await get(app.url, `/api/customers/${encodeURIComponent(customer)}/decisions`)).body).toEqual({ decisions: [decision] });
        expect((await get(app.url, `/api/customers/${encodeURIComponent(customer)}/runs`)).body).toEqual({
          runs: [expect.objectContaining({ workflowId: `flow/cart/${customer}/1`, outcome: null })],
        });
      });

      it('answers unknown routes with a JSON 404', async () => {
        expect(await get(app.url, '/api/nope')).toMatchObject({ status: 404, body: { error: 'not_found', message: 'no route for GET /api/nope' } });
      });

      it('routes the ingest paths as express would: any case, a trailing slash, a query string; other methods get 404', async () => {
        const customer = unique('route');
        const reply = await post(app.url, '/V1/Track/?source=test', { userId: customer, event: 'Cart Viewed' });
        expect(reply).toMatchObject({ status: 200, body: { success: true } });
        expect(reply.headers.get('content-type')).toBe('application/json; charset=utf-8');
        expect(await store.eventsOf(customer)).toHaveLength(1);
        expect(await get(app.url, '/v1/track')).toMatchObject({ status: 404, body: { error: 'not_found', message: 'no route for GET /v1/track' } });
        expect((await post(app.url, '/v1/tracks', { userId: customer, event: 'Cart Viewed' })).status).toBe(404);
        expect(await store.eventsOf(customer)).toHaveLength(1);
      });

      it('answers an unexpected failure on the ingest path with 500 and no stack trace, and stores nothing', async () => {
        const broken = Object.create(store) as Store;
        broken.recordEvents = async () => {
          throw new Error('secret connection string postgres://admin:hunter2@db');
        };
        const log: string[] = [];
        const other = await serveApp({ store: broken, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: (m) => log.push(m) });
        try {
          const customer = unique('broken');
          const reply = await post(other.url, '/v1/batch', { batch: [{ type: 'track', userId: customer, event: 'Cart Viewed' }] });
          expect(reply).toMatchObject({ status: 500, body: { error: 'internal_error', message: 'internal error; the server log has the details' } });
          expect(log.join('\n')).toMatch(/hunter2/);
          expect(await store.eventsOf(customer)).toHaveLength(0);
        } finally {
          await other.close();
        }
      });

      it('answers an unexpected failure with 500 and no stack trace', async () => {
        const broken = Object.create(store) as Store;
        broken.decisionsOf = async () => {
          throw new Error('secret connection string postgres://admin:hunter2@db');
        };
        const log: string[] = [];
        const other = await serveApp({ store: broken, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: (m) => log.push(m) });
        try {
          const reply = await get(other.url, '/api/customers/x/decisions');
          expect(reply.status).toBe(500);
          expect(reply.body).toEqual({ error: 'internal_error', message: 'internal error; the server log has the details' });
          expect(log.join('\n')).toMatch(/hunter2/);
        } finally {
          await other.close();
        }
      });
    });
  });
}
