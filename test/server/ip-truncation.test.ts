// IP truncation at ingest (MICROFLOWS_IP_TRUNCATION) over real HTTP on each store backend: the client IP a Segment
// client sends in context.ip (single calls and a batch's shared context) and the one the server records on a click
// (the proxy's X-Forwarded-For, as MICROFLOWS_TRUST_PROXY allows) are stored truncated by default, and whole when
// truncation is off.
import { signClickToken, tokenExpiry } from '../../core/tracking';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { basicAuth, TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const WRITE_KEY = 'test-write-key';
const SIGNING_SECRET = 'test-signing-secret';
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

async function send(app: RunningApp, route: string, body: unknown): Promise<void> {
  const res = await fetch(`${app.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basicAuth(WRITE_KEY) }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
}

async function click(app: RunningApp, customerId: string, forwardedFor: string): Promise<void> {
  const claims = { customerId, deliveryKey: `winback:${customerId}:1:offer`, flowId: 'winback', stepId: 'offer', url: 'https://shop.example/offer', literal: true };
  const res = await fetch(`${app.url}/t/c/${signClickToken(SIGNING_SECRET, claims, tokenExpiry(Date.now()))}`, { redirect: 'manual', headers: { 'x-forwarded-for': forwardedFor } });
  expect(res.status).toBe(302);
}

for (const backend of storeBackends('ip-truncation')) {
  backend.describe(`client IPs stored at ingest: ${backend.name}`, () => {
    let store: KyselyStore;
    /** MICROFLOWS_IP_TRUNCATION unset (its default, on), and set to false. */
    let truncating: RunningApp;
    let keeping: RunningApp;

    beforeAll(async () => {
      store = await backend.open();
      // The test's requests come from loopback, the proxy whose X-Forwarded-For the server believes.
      const config = { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, signingSecret: SIGNING_SECRET, trustProxy: 'loopback' };
      truncating = await serveApp({ store, config, dispatcher: noDispatch, log: () => undefined });
      keeping = await serveApp({ store, config: { ...config, ipTruncation: false }, dispatcher: noDispatch, log: () => undefined });
    });

    afterAll(async () => {
      await truncating?.close();
      await keeping?.close();
      await backend.dispose();
    });

    const storedIp = async (customerId: string, name: string) => (await store.eventsOf(customerId, { names: [name] }))[0]?.context.ip;

    it("truncates the IP a client sends, on a single call and in a batch's shared context, and keeps the rest of the context", async () => {
      const single = unique('single');
      const batched = unique('batched');
      await send(truncating, '/v1/track', { userId: single, event: 'Product Viewed', context: { ip: '198.51.100.77', locale: 'fr-FR', userAgent: 'Mozilla/5.0' } });
      await send(truncating, '/v1/batch', { context: { ip: '2001:db8:85a3:8d3:1319:8a2e:370:7348' }, batch: [{ type: 'track', userId: batched, event: 'Product Added', properties: { product_id: 'p1' } }] });

      const [event] = await store.eventsOf(single, { names: ['Product Viewed'] });
      expect(event!.context).toEqual({ ip: '198.51.100.0', locale: 'fr-FR', userAgent: 'Mozilla/5.0' });
      expect(await storedIp(batched, 'Product Added')).toBe('2001:db8:85a3::');
    });

    it('truncates the IP the server records on a click', async () => {
      const v4 = unique('clicker');
      const v6 = unique('clicker');
      await click(truncating, v4, '203.0.113.77');
      await click(truncating, v6, '2001:db8:abcd:12::9');
      expect(await storedIp(v4, 'Email Link Clicked')).toBe('203.0.113.0');
      expect(await storedIp(v6, 'Email Link Clicked')).toBe('2001:db8:abcd::');
    });

    it('drops a context.ip that is no IP address', async () => {
      const customerId = unique('garbage');
      await send(truncating, '/v1/track', { userId: customerId, event: 'Product Viewed', context: { ip: 'my house', locale: 'en' } });
      expect((await store.eventsOf(customerId, { names: ['Product Viewed'] }))[0]!.context).toEqual({ locale: 'en' });
    });

    it('stores IPs whole when truncation is off', async () => {
      const sender = unique('whole');
      const clicker = unique('whole-click');
      await send(keeping, '/v1/track', { userId: sender, event: 'Product Viewed', context: { ip: '198.51.100.77' } });
      await click(keeping, clicker, '203.0.113.77');
      expect(await storedIp(sender, 'Product Viewed')).toBe('198.51.100.77');
      expect(await storedIp(clicker, 'Email Link Clicked')).toBe('203.0.113.77');
    });
  });
}
