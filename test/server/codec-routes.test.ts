// The codec endpoint on a real socket and a real store (SQLite, and PostgreSQL with TEST_DATABASE_URL), in the real
// app: POST /codec/decode opens sealed payloads for an admin key (Bearer, or the session cookie of /codec/login) and
// answers 401 without one; a payload whose key was shredded comes back unchanged, not as an error; encoding needs
// the write scope; the Web UI's origin gets CORS with credentials (preflight included), other origins none; the
// login page has the strict CSP and a cookie that holds no key.
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { EncryptingPayloadCodec } from '../../client/payload-codec';
import { PayloadKeyring } from '../../client/payload-keys';
import { customerWorkflowId } from '../../core/arbiter-state';
import { newApiKey } from '../../core/api-keys';
import { parseMasterKey } from '../../core/payload-crypto';
import { noDispatch } from '../../server/dispatcher';
import { KeyRing, KEYS_REFRESH_MS } from '../../server/auth';
import { CODEC_SESSION_COOKIE } from '../../server/codec-routes';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const UI_ORIGIN = 'http://127.0.0.1:8233';
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

type JsonPayload = { metadata: Record<string, string>; data: string };
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});
const valueOf = (p: JsonPayload): unknown =>
  defaultPayloadConverter.fromPayload({ metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])), data: Buffer.from(p.data, 'base64') });

for (const backend of storeBackends('codec routes')) {
  backend.describe(`the codec endpoint: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let codec: EncryptingPayloadCodec;
    let readKey: string;
    // The key ring's clock: moved past its refresh interval to see a revocation without waiting for it.
    let clock = Date.now();

    beforeAll(async () => {
      store = await backend.open();
      codec = new EncryptingPayloadCodec(new PayloadKeyring(store, { current: parseMasterKey(randomBytes(32).toString('hex'), 'MICROFLOWS_MASTER_KEY'), previous: [] }, { pseudonymousIds: false }), { encrypt: true });
      const read = newApiKey('admin', 'ui operator', ['read'], Date.now());
      await store.createApiKey(read.record);
      readKey = read.key;
      app = await serveApp({
        store,
        config: { writeKey: 'codec-test-write-key', adminKey: TEST_ADMIN_KEY, signingSecret: 's'.repeat(64) },
        dispatcher: noDispatch,
        keys: new KeyRing(store, { writeKey: 'codec-test-write-key', adminKey: TEST_ADMIN_KEY }, () => clock),
        log: () => undefined,
        payloads: { codec, allowedOrigins: [UI_ORIGIN] },
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    async function sealedFor(customer: string, value: unknown): Promise<JsonPayload> {
      const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(value)], { type: 'workflow', namespace: 'default', workflowId: customerWorkflowId(customer) });
      return toJson(sealed!);
    }

    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers }, body: JSON.stringify(body) });

    it('decodes for an admin key, answers 401 without one, and gives back unchanged what a shredded key sealed', async () => {
      const [kept, erased] = [unique('kept'), unique('erased')];
      const payloads = [await sealedFor(kept, { email: `${kept}@example.com` }), await sealedFor(erased, { email: `${erased}@example.com` }), toJson(defaultPayloadConverter.toPayload('plain'))];
      const attempts: Array<Record<string, string>> = [{}, { authorization: 'Bearer mf_admin_wrong' }, { authorization: 'Basic eDo=' }];
      for (const headers of attempts) {
        const refused = await post('/codec/decode', { payloads }, headers);
        expect(refused.status).toBe(401);
        // Bearer, never Basic: a Basic challenge opens a browser's credentials dialog over the Web UI.
        expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="microflows-admin"');
        expect(JSON.stringify(await refused.json())).not.toContain('@example.com');
      }
      const decoded = await post('/codec/decode', { payloads }, { authorization: `Bearer ${readKey}` });
      expect(decoded.status).toBe(200);
      expect(((await decoded.json()) as { payloads: JsonPayload[] }).payloads.map(valueOf)).toEqual([{ email: `${kept}@example.com` }, { email: `${erased}@example.com` }, 'plain']);

      expect(await codec.keyring.shred(erased)).toBe(true);
      const after = await post('/codec/decode', { payloads }, { authorization: `Bearer ${TEST_ADMIN_KEY}` });
      expect(after.status).toBe(200);
      const body = (await after.json()) as { payloads: JsonPayload[] };
      expect(valueOf(body.payloads[0]!)).toEqual({ email: `${kept}@example.com` });
      expect(body.payloads[1]).toEqual(payloads[1]);
      expect(JSON.stringify(body.payloads[1])).not.toContain(Buffer.from(erased).toString('base64').slice(0, 8));
    });

    it('encodes only for a key with the write scope, under the system key; a malformed body is a 400', async () => {
      const payloads = [toJson(defaultPayloadConverter.toPayload({ signal: 'hello' }))];
      expect((await post('/codec/encode', { payloads }, { authorization: `Bearer ${readKey}` })).status).toBe(403);
      const encoded = await post('/codec/encode', { payloads }, { authorization: `Bearer ${TEST_ADMIN_KEY}` });
      expect(encoded.status).toBe(200);
      const sealed = ((await encoded.json()) as { payloads: JsonPayload[] }).payloads[0]!;
      expect(Buffer.from(sealed.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
      expect(Buffer.from(sealed.metadata['encryption-key-id']!, 'base64').toString()).toBe('~system');
      const back = await post('/codec/decode', { payloads: [sealed] }, { authorization: `Bearer ${readKey}` });
      expect(valueOf(((await back.json()) as { payloads: JsonPayload[] }).payloads[0]!)).toEqual({ signal: 'hello' });
      for (const bad of [{}, { payloads: 'x' }, { payloads: [{ metadata: { encoding: 1 }, data: '' }] }, { payloads: [{ data: 5 }] }]) {
        expect((await post('/codec/decode', bad, { authorization: `Bearer ${readKey}` })).status).toBe(400);
      }
    });

    it("lets the Web UI's origin call it with credentials (preflight too), and no other origin", async () => {
      const preflight = await fetch(`${app.url}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin: UI_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
      expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-namespace');
      const answer = await post('/codec/decode', { payloads: [] }, { origin: UI_ORIGIN, authorization: `Bearer ${readKey}` });
      expect(answer.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
      const stranger = await fetch(`${app.url}/codec/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
      expect(stranger.headers.get('access-control-allow-origin')).toBeNull();
      const strangerPost = await post('/codec/decode', { payloads: [] }, { origin: 'http://evil.example', authorization: `Bearer ${readKey}` });
      expect(strangerPost.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('signs an operator in with a form (strict CSP, no script), in a cookie that holds no key and opens decode only', async () => {
      const form = await fetch(`${app.url}/codec/login`);
      expect(form.status).toBe(200);
      expect(form.headers.get('content-security-policy')).toContain("script-src 'none'");
      const html = await form.text();
      expect(html).toContain('<label for="key">');
      expect(html).not.toContain('<script');

      const wrong = await fetch(`${app.url}/codec/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'key=mf_admin_nope', redirect: 'manual' });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('set-cookie')).toBeNull();

      const login = await fetch(`${app.url}/codec/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `key=${encodeURIComponent(readKey)}`, redirect: 'manual' });
      expect(login.status).toBe(200);
      const setCookie = login.headers.get('set-cookie') ?? '';
      expect(setCookie).toMatch(new RegExp(`^${CODEC_SESSION_COOKIE}=`));
      expect(setCookie).toMatch(/HttpOnly/i);
      expect(setCookie).toMatch(/SameSite=Strict/i);
      expect(setCookie).toMatch(/Path=\/codec/i);
      expect(setCookie).not.toContain(readKey);
      const cookie = setCookie.split(';')[0]!;

      const customer = unique('cookie');
      const payloads = [await sealedFor(customer, { address: '12 Rue de la Paix' })];
      const decoded = await post('/codec/decode', { payloads }, { cookie, origin: UI_ORIGIN });
      expect(decoded.status).toBe(200);
      expect(((await decoded.json()) as { payloads: JsonPayload[] }).payloads.map(valueOf)).toEqual([{ address: '12 Rue de la Paix' }]);
      // A forged or altered cookie opens nothing; the read key's session cannot encode.
      const [name, value] = cookie.split('=') as [string, string];
      const altered = `${name}=${value.slice(0, -2)}${value.endsWith('A') ? 'B' : 'A'}${value.slice(-1)}`;
      expect((await post('/codec/decode', { payloads }, { cookie: altered })).status).toBe(401);
      expect((await post('/codec/encode', { payloads }, { cookie })).status).toBe(403);
      // Revoking the key ends its sessions.
      const [record] = (await store.listApiKeys()).filter((k) => k.name === 'ui operator');
      await store.revokeApiKey(record!.id, Date.now());
      clock += KEYS_REFRESH_MS;
      expect((await post('/codec/decode', { payloads }, { cookie })).status).toBe(401);
    });
  });
}
