// The admin API and the HTTP surface, attacked over real HTTP on both store backends: every /api route needs an admin
// key with the right scope, the public write key opens nothing there, Host names the server does not answer to are
// refused (DNS rebinding), the admin routes can live on a port of their own, and every answer carries helmet's headers
// with a strict CSP on HTML. Each test names the attack it replays and checks that nothing changed.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { newApiKey } from '../../core/api-keys';
import { createApp, type AppDeps } from '../../server/app';
import { KEYS_REFRESH_MS, KeyRing } from '../../server/auth';
import { noDispatch } from '../../server/dispatcher';
import { limiter } from '../../server/rate-limits';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY, basicAuth } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const WRITE_KEY = 'security-write-key-0123456789abcdef';
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One request over node:http, which (unlike fetch) lets the test choose the Host header. */
function request(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> {
  const url = new URL(path, base);
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** Serves one of the app's listeners on its own port. */
async function listen(listener: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

for (const backend of storeBackends('security: admin API')) {
  backend.describe(`the admin API and the HTTP surface: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let clock = Date.now();
    let keys: KeyRing;
    const customer = unique('victim');

    const deps = (overrides: Partial<AppDeps> = {}): AppDeps => ({
      store,
      config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, rateLimitPerIp: 1000 },
      dispatcher: noDispatch,
      log: () => undefined,
      ...overrides,
    });

    beforeAll(async () => {
      store = await backend.open();
      keys = new KeyRing(store, { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, () => clock);
      app = await serveApp(deps({ keys }));
      const stored = await request(app.url, 'POST', '/v1/identify', {
        headers: { authorization: basicAuth(WRITE_KEY) },
        body: { userId: customer, traits: { email: 'victim@example.com' }, context: { ip: '203.0.113.9' } },
      });
      expect(stored.status).toBe(200);
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it('attack: reading a customer profile, the outbox and segment members with no credentials gets 401 and no data', async () => {
      for (const path of [`/api/profiles/${customer}`, '/api/outbox', '/api/segments/lapsed-customers/members', `/api/customers/${customer}/decisions`, '/api/keys', '/api/catalog/products/x']) {
        const reply = await request(app.url, 'GET', path);
        expect({ path, status: reply.status, error: reply.json?.error }).toEqual({ path, status: 401, error: 'unauthorized' });
        expect(reply.headers['www-authenticate']).toBe('Bearer realm="microflows-admin"');
        expect(reply.text).not.toContain('victim@example.com');
      }
      // The same request with the admin key reads the profile: the 401 was the key, not the route.
      const allowed = await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(TEST_ADMIN_KEY) });
      expect(allowed).toMatchObject({ status: 200, json: { customerId: customer, email: 'victim@example.com' } });
    });

    it('attack: the write key from a web page, or a client key, used as an admin credential gets 401', async () => {
      const client = newApiKey('client', unique('website'), [], Date.now());
      await store.createApiKey(client.record);
      clock += 1_000;
      for (const headers of [{ authorization: basicAuth(WRITE_KEY) }, bearer(WRITE_KEY), bearer(client.key), { authorization: basicAuth(client.key) }, bearer('mf_admin_guessed')]) {
        const reply = await request(app.url, 'GET', `/api/profiles/${customer}`, { headers });
        expect(reply.status).toBe(401);
        expect(reply.text).not.toContain('victim@example.com');
      }
      // And an admin key is no write key: ingest refuses it, storing nothing.
      const before = await store.tableCounts();
      const ingest = await request(app.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(TEST_ADMIN_KEY) }, body: { userId: customer, event: 'Product Viewed' } });
      expect(ingest.status).toBe(401);
      expect(await store.tableCounts()).toEqual(before);
    });

    it('attack: a read-only admin key changing the catalog or minting keys gets 403 and changes nothing', async () => {
      const reader = newApiKey('admin', unique('analyst'), ['read'], Date.now());
      await store.createApiKey(reader.record);
      clock += 1_000; // a new key works within a second
      const product = unique('sku');
      const keysBefore = (await store.listApiKeys()).length;
      const put = await request(app.url, 'PUT', '/api/catalog/products', { headers: bearer(reader.key), body: [{ id: product, name: 'Shoe', category: 'Shoes', price: 10, url: 'https://shop.example/p' }] });
      expect(put).toMatchObject({ status: 403, json: { error: 'forbidden' } });
      expect(put.json.message).toContain('needs an admin key with the "write" scope');
      const mint = await request(app.url, 'POST', '/api/keys', { headers: bearer(reader.key), body: { kind: 'admin', name: 'mine', scopes: ['admin'] } });
      expect(mint.status).toBe(403);
      expect(await store.catalogProduct(product)).toBeUndefined();
      expect((await store.listApiKeys()).length).toBe(keysBefore);
      // Reading is what the key is for.
      expect((await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(reader.key) })).status).toBe(200);
    });

    it('attack: a leaked admin key used after its revocation gets 401 once the key cache refreshes (at most 5 s)', async () => {
      const leaked = newApiKey('admin', unique('leaked'), ['read', 'write'], Date.now());
      await store.createApiKey(leaked.record);
      clock += 1_000;
      expect((await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(leaked.key) })).status).toBe(200);
      await store.revokeApiKey(leaked.record.id, Date.now());
      clock += KEYS_REFRESH_MS;
      const reply = await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(leaked.key) });
      expect(reply).toMatchObject({ status: 401, json: { error: 'unauthorized' } });
      expect(reply.text).not.toContain('victim@example.com');
    });

    it('attack: DNS rebinding (a page on a name the attacker controls, resolving to this server) gets 421 and stores nothing', async () => {
      const before = await store.tableCounts();
      const profile = await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: { ...bearer(TEST_ADMIN_KEY), host: 'rebind.attacker.example' } });
      expect(profile).toMatchObject({ status: 421, json: { error: 'host_not_allowed' } });
      expect(profile.text).not.toContain('victim@example.com');
      const track = await request(app.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(WRITE_KEY), host: 'rebind.attacker.example:3000' }, body: { userId: customer, event: 'Order Completed' } });
      expect(track).toMatchObject({ status: 421, json: { error: 'host_not_allowed' } });
      expect(await store.tableCounts()).toEqual(before);
      // The names the server answers to still work, and health probes (which use IPs) need no name.
      expect((await request(app.url, 'GET', `/api/profiles/${customer}`, { headers: { ...bearer(TEST_ADMIN_KEY), host: 'localhost' } })).status).toBe(200);
      expect((await request(app.url, 'GET', '/api/health', { headers: { host: '10.1.2.3:3000' } })).status).toBe(200);
    });

    it('serves helmet headers on every answer and a strict CSP that allows no script on HTML pages', async () => {
      const page = await request(app.url, 'GET', '/u/not-a-token');
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      const csp = new Map(
        String(page.headers['content-security-policy'])
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name!, values.join(' ')]),
      );
      expect(csp.get('default-src')).toBe("'none'");
      // No script of any kind: script-src is absent (default-src 'none' applies) or 'none'.
      expect(csp.get('script-src') ?? "'none'").toBe("'none'");
      expect(csp.get('frame-ancestors')).toBe("'none'");
      for (const reply of [page, await request(app.url, 'GET', `/api/profiles/${customer}`)]) {
        expect(reply.headers['x-content-type-options']).toBe('nosniff');
        expect(reply.headers['x-frame-options']).toBe('SAMEORIGIN');
        expect(reply.headers['x-powered-by']).toBeUndefined();
        expect(reply.headers['referrer-policy']).toBe('no-referrer');
      }
    });

    it('/api/health stays open: probes carry no key', async () => {
      expect(await request(app.url, 'GET', '/api/health')).toMatchObject({ status: 200, json: { status: 'ok' } });
    });

    it('attack: reaching the admin API through the public port when MICROFLOWS_ADMIN_PORT splits them gets 404; ingest is not on the admin port', async () => {
      const split = createApp(deps({ config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, adminPort: 1 } }));
      const publicPort = await listen(split.publicListener);
      const adminPort = await listen(split.adminListener);
      try {
        const viaPublic = await request(publicPort.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(TEST_ADMIN_KEY) });
        expect(viaPublic).toMatchObject({ status: 404, json: { error: 'not_found' } });
        expect(viaPublic.json.message).toContain('the admin API answers on MICROFLOWS_ADMIN_PORT');
        expect(viaPublic.text).not.toContain('victim@example.com');
        expect((await request(adminPort.url, 'GET', `/api/profiles/${customer}`)).status).toBe(401);
        expect(await request(adminPort.url, 'GET', `/api/profiles/${customer}`, { headers: bearer(TEST_ADMIN_KEY) })).toMatchObject({ status: 200, json: { email: 'victim@example.com' } });

        const before = await store.tableCounts();
        const ingestOnAdmin = await request(adminPort.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(WRITE_KEY) }, body: { userId: customer, event: 'Product Viewed' } });
        expect(ingestOnAdmin.status).toBe(404);
        expect(await store.tableCounts()).toEqual(before);
        expect((await request(publicPort.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(WRITE_KEY) }, body: { userId: customer, event: 'Product Viewed' } })).status).toBe(200);
        for (const port of [publicPort, adminPort]) expect((await request(port.url, 'GET', '/api/health')).status).toBe(200);
      } finally {
        await publicPort.close();
        await adminPort.close();
      }
    });

    it('attack: flooding ingest with the public client key from one IP gets 429 with Retry-After, and the refused calls store nothing', async () => {
      const client = newApiKey('client', unique('website'), [], Date.now());
      await store.createApiKey(client.record);
      // 3 a minute rather than a second, so a slow machine cannot spread the calls over two windows.
      const limited = await serveApp(deps({ ingestLimits: { perKey: null, perIp: limiter(3, 60) } }));
      try {
        const anonymousId = unique('visitor');
        const statuses: number[] = [];
        let refused: Reply | undefined;
        for (let i = 0; i < 5; i++) {
          const reply = await request(limited.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(client.key) }, body: { anonymousId, event: 'Product Viewed', messageId: `${anonymousId}-${i}` } });
          statuses.push(reply.status);
          if (reply.status === 429) refused ??= reply;
        }
        expect(statuses).toEqual([200, 200, 200, 429, 429]);
        expect(refused?.json).toMatchObject({ error: 'rate_limited' });
        expect(Number(refused?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        const stored = await store.recentEvents(anonymousId, 10);
        expect(stored.map((e) => e.messageId).sort()).toEqual([0, 1, 2].map((i) => `${anonymousId}-${i}`));
        // A server key (a shop's backend, one IP for every customer) is limited per key, not per IP.
        for (let i = 0; i < 5; i++) {
          expect((await request(limited.url, 'POST', '/v1/track', { headers: { authorization: basicAuth(WRITE_KEY) }, body: { userId: customer, event: 'Product Viewed' } })).status).toBe(200);
        }
      } finally {
        await limited.close();
      }
    });

    it('attack: a batch over the per-key rate gets 429 and stores none of its calls', async () => {
      const limited = await serveApp(deps({ ingestLimits: { perKey: limiter(5, 60), perIp: null } }));
      try {
        const userId = unique('flood');
        const batch = Array.from({ length: 6 }, (_, i) => ({ type: 'track', userId, event: 'Product Viewed', messageId: `${userId}-${i}` }));
        const within = await request(limited.url, 'POST', '/v1/batch', { headers: { authorization: basicAuth(WRITE_KEY) }, body: { batch: batch.slice(0, 5) } });
        expect(within.status).toBe(200);
        const reply = await request(limited.url, 'POST', '/v1/batch', { headers: { authorization: basicAuth(WRITE_KEY) }, body: { batch: batch.slice(5) } });
        expect(reply).toMatchObject({ status: 429, json: { error: 'rate_limited' } });
        expect((await store.recentEvents(userId, 10)).map((e) => e.messageId).sort()).toEqual(batch.slice(0, 5).map((c) => c.messageId).sort());
      } finally {
        await limited.close();
      }
    });
  });
}
