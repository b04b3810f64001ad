// The key API on a real port and a real store (SQLite, and PostgreSQL with TEST_DATABASE_URL), mounted in a bare
// express app as the admin listener mounts it: POST answers a key's text once and stores only its digest, GET lists
// keys without their text, DELETE revokes once; bad requests are 400s naming the field and change nothing. Who may
// call these routes (the admin scope) is the admin listener's middleware, tested with it.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler } from 'express';
import { KEY_PREFIX, keyDigest } from '../../core/api-keys';
import type { KyselyStore } from '../../store/kysely-store';
import { errorAnswer } from '../../server/http-errors';
import { keyRoutes } from '../../server/key-routes';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

async function call(base: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Reply> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

/** The routes in an app of their own, with the error handler every microflows app has (server/http-errors). */
async function serveKeyRoutes(store: KyselyStore, now: () => number): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.use(keyRoutes({ store, now }));
  const handleErrors: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    const answer = errorAnswer(err, () => undefined);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };
  app.use(handleErrors);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

for (const backend of storeBackends('key routes')) {
  backend.describe(`key API over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: { url: string; close(): Promise<void> };
    let clock = NOW;

    beforeAll(async () => {
      store = await backend.open();
      app = await serveKeyRoutes(store, () => clock);
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it('POST makes a key of each kind: 201 with its text once (not cached), the store keeps only its digest', async () => {
      for (const [kind, scopes] of [['admin', ['write', 'read']], ['server', undefined], ['client', []]] as const) {
        clock += 1;
        const name = unique(`${kind} key`);

        const made = await call(app.url, 'POST', '/api/keys', { kind, name, ...(scopes ? { scopes } : {}) });

        expect(made.status).toBe(201);
        expect(made.headers.get('cache-control')).toBe('no-store');
        expect(made.body.key).toMatch(new RegExp(`^${KEY_PREFIX[kind]}[A-Za-z0-9_-]{43}$`));
        expect(made.body.record).toEqual({
          id: expect.stringMatching(/^key_[0-9a-f]{12}$/),
          kind,
          name,
          scopes: kind === 'admin' ? ['read', 'write'] : [],
          hint: `${made.body.key.slice(0, KEY_PREFIX[kind].length + 4)}…`,
          createdAt: clock,
          revokedAt: null,
        });
        const stored = (await store.listApiKeys()).find((r) => r.id === made.body.record.id);
        expect(stored).toEqual({ ...made.body.record, digest: keyDigest(made.body.key) });
      }
    });

    it('GET lists every key, newest first, revoked ones too, never the text nor the digest', async () => {
      clock += 1;
      const made = await call(app.url, 'POST', '/api/keys', { kind: 'server', name: unique('listed') });
      await store.revokeApiKey(made.body.record.id, clock + 1);

      const listed = await call(app.url, 'GET', '/api/keys');

      expect(listed.status).toBe(200);
      expect(listed.headers.get('cache-control')).toBe('no-store');
      const stored = await store.listApiKeys();
      expect(listed.body.keys).toEqual(stored.map(({ digest: _digest, ...rest }) => rest));
      expect(listed.body.keys.find((k: any) => k.id === made.body.record.id)).toMatchObject({ revokedAt: clock + 1 });
      const text = JSON.stringify(listed.body);
      expect(text).not.toContain(made.body.key);
      for (const record of stored) expect(text).not.toContain(record.digest);
    });

    it('DELETE revokes a key and answers the revoked record; again, the first time stays', async () => {
      const made = await call(app.url, 'POST', '/api/keys', { kind: 'client', name: unique('revoked') });
      clock += 10;
      const revokedAt = clock;

      const first = await call(app.url, 'DELETE', `/api/keys/${made.body.record.id}`);
      clock += 10;
      const again = await call(app.url, 'DELETE', `/api/keys/${encodeURIComponent(made.body.record.hint)}`);

      expect(first).toMatchObject({ status: 200, body: { ...made.body.record, revokedAt } });
      expect(again).toMatchObject({ status: 200, body: { ...made.body.record, revokedAt } });
      expect((await store.activeApiKeys()).some((r) => r.id === made.body.record.id)).toBe(false);
    });

    it('DELETE of an unknown id is a 404 that says where the ids are, and revokes nothing', async () => {
      const before = await store.listApiKeys();

      const missing = await call(app.url, 'DELETE', `/api/keys/${unique('key_nobody')}`);

      expect(missing.status).toBe(404);
      expect(missing.body).toEqual({ error: 'not_found', message: expect.stringContaining('GET /api/keys') });
      expect(await store.listApiKeys()).toEqual(before);
    });

    const refused: Array<[string, unknown, string | undefined, RegExp]> = [
      ['an unknown kind', { kind: 'root', name: 'x' }, 'kind', /unknown key kind "root": use admin, server, client/],
      ['no kind', { name: 'x' }, 'kind', /admin, server or client/],
      ['no name', { kind: 'server' }, 'name', /name/],
      ['a blank name', { kind: 'server', name: '   ' }, 'name', /1 to 100 characters/],
      ['a name over 100 characters', { kind: 'server', name: 'n'.repeat(101) }, 'name', /1 to 100 characters/],
      ['an admin key without scopes', { kind: 'admin', name: 'x' }, 'scopes', /at least one scope/],
      ['an unknown scope', { kind: 'admin', name: 'x', scopes: ['read', 'root'] }, 'scopes', /unknown scope "root"/],
      ['scopes as a string', { kind: 'admin', name: 'x', scopes: 'read,write' }, 'scopes', /list of strings/],
      ['scopes on a source key', { kind: 'client', name: 'x', scopes: ['read'] }, 'scopes', /only admin keys have scopes/],
      ['a misspelt field', { kind: 'admin', name: 'x', scope: ['read'] }, 'scope', /unknown field: a key request has kind, name, scopes/],
      ['a list instead of an object', [{ kind: 'server', name: 'x' }], undefined, /JSON object/],
      ['no body', '', undefined, /JSON object/],
      ['text that is not JSON', 'kind=server&name=x', undefined, /not valid JSON/],
      ['a duplicate key', '{"kind":"client","name":"x","kind":"server"}', '$', /duplicate key "kind"/],
      ['a body over 4 KB', { kind: 'server', name: 'x', pad: 'p'.repeat(5000) }, undefined, /over 4096 bytes/],
    ];
    for (const [what, body, field, message] of refused) {
      it(`POST with ${what} is a 400 naming the field, and stores nothing`, async () => {
        const before = await store.tableCounts();

        const reply = await call(app.url, 'POST', '/api/keys', body);

        expect(reply.status).toBe(400);
        expect(reply.body.message).toMatch(message);
        expect(reply.body.field).toBe(field);
        expect(await store.tableCounts()).toEqual(before);
      });
    }
  });
}
