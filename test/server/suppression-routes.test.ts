// The suppression API in the real app on a real port (SQLite, and PostgreSQL with TEST_DATABASE_URL): behind the
// admin key (401 without one, 403 with a read key writing), listing a page at a time, adding one entry or many all or
// nothing (a bad one is a 400 naming it and its field), removing by address or hash.
import { addressHash } from '../../core/suppression';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { adminFetch, TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const WRITE_KEY = 'suppression-routes-write-key';
let sequence = 0;
const fresh = (name: string) => `${name}-${process.pid}-${++sequence}@example.com`;

for (const backend of storeBackends('suppression routes')) {
  backend.describe(`suppression API over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: () => undefined });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    const send = (method: string, path: string, body?: unknown) =>
      adminFetch(`${app.url}${path}`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) }) });

    it('answers 401 without an admin key, and with the write key, on every route; nothing changes', async () => {
      const before = await store.tableCounts();
      for (const headers of [{}, { authorization: `Bearer ${WRITE_KEY}` }] as Array<Record<string, string>>) {
        for (const [method, path] of [['GET', '/api/suppressions'], ['POST', '/api/suppressions'], ['DELETE', '/api/suppressions/a%40example.com']] as const) {
          const res = await fetch(`${app.url}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, ...(method === 'POST' ? { body: JSON.stringify({ address: 'a@example.com' }) } : {}) });
          expect([method, path, res.status]).toEqual([method, path, 401]);
        }
      }
      expect(await store.tableCounts()).toEqual(before);
    });

    it('adds one entry or many, lists them, removes by address or hash', async () => {
      const [one, two, three] = [fresh('api'), fresh('api'), fresh('api')];
      const added = await send('POST', '/api/suppressions', { address: one });
      expect(added.status).toBe(201);
      expect(await added.json()).toEqual({ added: 1 });
      expect((await send('POST', '/api/suppressions', [{ address: two, reason: 'complaint' }, { address: three, expires_at: '2099-01-01T00:00:00Z' }])).status).toBe(201);
      expect(await store.suppressionsFor(one, Date.now())).toEqual([expect.objectContaining({ address: one, reason: 'manual', scope: 'all', source: 'api' })]);
      expect(await store.suppressionsFor(two, Date.now())).toEqual([expect.objectContaining({ reason: 'complaint', scope: 'marketing' })]);

      const listed = await send('GET', '/api/suppressions?reason=complaint&limit=1000');
      expect(listed.status).toBe(200);
      const page = (await listed.json()) as { entries: Array<{ address: string }>; next: string | null };
      expect(page.entries.map((e) => e.address)).toContain(two);
      expect(page.entries.map((e) => e.address)).not.toContain(one);

      const removed = await send('DELETE', `/api/suppressions/${encodeURIComponent(one)}`);
      expect(removed.status).toBe(200);
      expect(await removed.json()).toEqual({ removed: 1 });
      expect((await send('DELETE', `/api/suppressions/${addressHash(two)}?reason=complaint`)).status).toBe(200);
      expect(await store.suppressionsFor(two, Date.now())).toEqual([]);
      const again = await send('DELETE', `/api/suppressions/${encodeURIComponent(one)}`);
      expect(again.status).toBe(404);
    });

    it.each([
      ['an empty body', undefined, /send a JSON entry/],
      ['not JSON', '{"address":', /JSON/],
      ['an empty list', [], /the list is empty/],
      ['a bad address', { address: 'nobody' }, /^address: /],
      ['a bad reason in a list', [{ address: 'ok@example.com' }, { address: 'ok2@example.com', reason: 'bored' }], /^\[1\]\.reason: unknown reason "bored"/],
      ['an unknown field', { address: 'ok@example.com', colour: 'red' }, /^colour: unknown field/],
    ])('refuses %s with a 400 naming the field, writing nothing', async (_what, body, message) => {
      const before = await store.tableCounts();
      const res = await send('POST', '/api/suppressions', body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(message);
      expect(await store.tableCounts()).toEqual(before);
    });

    it('refuses a bad reason, limit or cursor in the list query with a 400 naming it', async () => {
      for (const [query, field] of [['reason=bored', 'reason'], ['limit=0', 'limit'], ['limit=abc', 'limit'], ['after=xyz', 'after']]) {
        const res = await send('GET', `/api/suppressions?${query}`);
        expect([query, res.status]).toEqual([query, 400]);
        expect(((await res.json()) as { message: string }).message).toMatch(new RegExp(`^${field}: `));
      }
    });
  });
}
