// The Segment HTTP Tracking API, the tracking links and the ESP webhooks end to end: the real app on a real port
// over each store backend, driven by the real Segment client library, by raw HTTP, and by the providers' payloads.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import path from 'node:path';
import { signClickToken, signOpenToken, tokenExpiry, type ClickClaims } from '../../core/tracking';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import type { StoredEvent } from '../../store/store';
import postmarkStory from '../fixtures/webhooks/postmark-story.json';
import sendgridStory from '../fixtures/webhooks/sendgrid-story.json';
import type { SegmentClientOptions, SegmentClientReport } from '../support/segment-client';
import { storeBackends } from '../support/store-backends';
import { serveApp, type RunningApp } from '../support/serve-app';
import { TEST_ADMIN_KEY, adminHeaders } from '../support/http';

const WRITE_KEY = 'test-write-key';
const SIGNING_SECRET = 'test-signing-secret';
/** The ESPs' credentials: a P-256 key pair standing in for SendGrid's signing key, and a Postmark Basic pair. */
const SENDGRID_KEYS = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const SENDGRID_VERIFICATION_KEY = SENDGRID_KEYS.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const POSTMARK_CREDENTIAL = 'postmark-hooks:test-password';
const HOUR_MS = 60 * 60 * 1000;
const basic = (username: string, password = '') => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;
const iso = (ms: number) => new Date(ms).toISOString();


interface Reply {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

async function post(base: string, route: string, body: unknown, auth: string | null = basic(WRITE_KEY)): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth !== null) headers.authorization = auth;
  const res = await fetch(`${base}${route}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

async function get(base: string, route: string): Promise<Reply> {
  const res = await fetch(`${base}${route}`, { headers: adminHeaders() });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

/** Runs test/support/segment-client.ts in a child process whose clock is `skewMs` ahead, and returns its report. */
function runSegmentClient(options: SegmentClientOptions, skewMs: number): Promise<SegmentClientReport> {
  const support = path.resolve(__dirname, '../support');
  const args = ['--require', require.resolve('tsx/cjs'), '--require', path.join(support, 'skewed-clock.ts'), path.join(support, 'segment-client.ts'), JSON.stringify(options)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, SKEW_MS: String(skewMs) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`segment client exited with ${code}:\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as SegmentClientReport);
      } catch {
        reject(new Error(`segment client printed no report:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** An event's name and the properties that make two providers' reports of it the same engagement. */
function canonical(event: StoredEvent): Record<string, unknown> {
  const { url, bounce_type, delivery_key, flow_id, step_id, variant } = event.properties;
  return { name: event.name, url, bounce_type, delivery_key, flow_id, step_id, variant };
}

const backends = storeBackends('segment-api');

for (const backend of backends) {
  backend.describe(`Segment API, tracking links and webhooks over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, signingSecret: SIGNING_SECRET, sendgridVerificationKey: SENDGRID_VERIFICATION_KEY, postmarkWebhookCredential: POSTMARK_CREDENTIAL },
        dispatcher: noDispatch,
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    describe('the real Segment client (@segment/analytics-node) with a clock two hours fast', () => {
      it('stores every call exactly once, with the right type and name, at the real time it was made', async () => {
        const userId = unique('client-user');
        const anonymousId = unique('client-anon');
        const legacyId = unique('client-legacy');
        const holdMs = 3000;
        const before = await store.tableCounts();
        const startedAt = Date.now();

        const report = await runSegmentClient({ url: app.url, writeKey: WRITE_KEY, userId, anonymousId, legacyId, holdMs }, 2 * HOUR_MS);

        expect(report.failures).toEqual([]);
        // 12 calls at 5 per batch: two full batches, and the rest sent by closeAndFlush.
        expect(report.statuses).toEqual([200, 200, 200]);
        const sent = new Map(report.calls.map((call) => [call.messageId, call]));
        expect(report.calls).toHaveLength(12);
        expect(sent.size).toBe(11);

        // Identify joined the anonymous id and alias the legacy one, so every call is the user's now.
        const stored = await store.recentEvents(userId, 100);
        expect(stored.map((e) => e.messageId).sort()).toEqual([...sent.keys()].sort());
        expect((await store.tableCounts()).events).toBe((before.events ?? 0) + sent.size);
        for (const event of stored) {
          const call = sent.get(event.messageId)!;
          expect({ messageId: event.messageId, type: event.type, name: event.name }).toEqual({ messageId: call.messageId, type: call.type, name: call.name });
          // The client stamped 2024-style times two hours ahead; the stored time is the real one, to network latency.
          expect(Math.abs(event.timestamp - call.realTime)).toBeLessThan(1500);
          expect(event.timestamp).toBeGreaterThanOrEqual(startedAt - 1500);
          expect(event.timestamp).toBeLessThanOrEqual(Date.now());
        }
        // The held calls arrived holdMs after they were made: their time is when they happened, not when they arrived.
        const held = stored.filter((e) => e.name === 'Checkout Started' || e.name === 'Order Completed');
        expect(held).toHaveLength(2);
        for (const event of held) expect(event.receivedAt - event.timestamp).toBeGreaterThan(holdMs - 1000);

        expect(stored.find((e) => e.type === 'group')?.properties).toEqual({ groupId: 'acme' });
        expect(stored.find((e) => e.type === 'alias')?.properties).toEqual({ previousId: legacyId });
        expect(stored.find((e) => e.type === 'page')?.properties).toEqual({ path: '/pricing', category: 'Docs' });
        for (const id of [anonymousId, legacyId]) {
          expect(await get(app.url, `/api/profiles/${encodeURIComponent(id)}`)).toMatchObject({ status: 200, body: { customerId: userId } });
        }
        expect((await get(app.url, `/api/profiles/${encodeURIComponent(userId)}`)).body).toMatchObject({
          email: `${userId}@example.com`,
          aliases: [anonymousId, legacyId].sort(),
        });
      });
    });

    describe('single calls', () => {
      const CALLS: Array<{ type: string; body: (customer: string) => Record<string, unknown>; stored: (customer: string) => Partial<StoredEvent> }> = [
        {
          type: 'track',
          body: (c) => ({ userId: c, event: 'Product Viewed', properties: { product_id: 'sku-1', category: 'Shoes', price: 80 } }),
          stored: () => ({ type: 'track', name: 'Product Viewed', properties: { product_id: 'sku-1', category: 'Shoes', price: 80 }, traits: {} }),
        },
        {
          type: 'identify',
          body: (c) => ({ userId: c, traits: { email: `${c}@example.com`, first_name: 'Ada' } }),
          stored: (c) => ({ type: 'identify', name: null, properties: {}, traits: { email: `${c}@example.com`, first_name: 'Ada' } }),
        },
        {
          type: 'page',
          body: (c) => ({ userId: c, name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } }),
          stored: () => ({ type: 'page', name: 'Pricing', properties: { path: '/pricing', category: 'Docs' } }),
        },
        {
          type: 'screen',
          body: (c) => ({ anonymousId: c, name: 'Home', properties: { orientation: 'portrait' } }),
          stored: () => ({ type: 'screen', name: 'Home', properties: { orientation: 'portrait' } }),
        },
        {
          type: 'group',
          body: (c) => ({ userId: c, groupId: 'acme', traits: { name: 'Acme Inc.', plan: 'enterprise' } }),
          stored: () => ({ type: 'group', name: null, properties: { groupId: 'acme' }, traits: { name: 'Acme Inc.', plan: 'enterprise' } }),
        },
        {
          type: 'alias',
          body: (c) => ({ userId: c, previousId: `${c}-before` }),
          stored: (c) => ({ type: 'alias', name: null, properties: { previousId: `${c}-before` } }),
        },
      ];
      const ROUTES = CALLS.flatMap((call) => [`/v1/${call.type}`, `/v1/${call.type[0]}`].map((route) => [route, call] as const));

      it.each(ROUTES)('POST %s stores one event of its type, name and properties', async (route, call) => {
        const customer = unique(call.type);
        const messageId = unique('m');

        const reply = await post(app.url, route, { ...call.body(customer), messageId });

        expect(reply).toMatchObject({ status: 200, body: { success: true } });
        expect(await store.recentEvents(customer, 10)).toEqual([expect.objectContaining({ messageId, customerId: customer, ...call.stored(customer) })]);
      });

      it('takes the write key from the body when there is no Authorization header', async () => {
        const customer = unique('c');

        const reply = await post(app.url, '/v1/track', { writeKey: WRITE_KEY, userId: customer, event: 'Product Viewed' }, null);

        expect(reply).toMatchObject({ status: 200, body: { success: true } });
        expect((await store.eventsOf(customer)).map((e) => e.name)).toEqual(['Product Viewed']);
      });

      it('refuses a wrong write key in the body with 401 and stores nothing', async () => {
        const before = await store.tableCounts();

        const reply = await post(app.url, '/v1/track', { writeKey: 'not-the-key', userId: unique('c'), event: 'Product Viewed' }, null);

        expect(reply.status).toBe(401);
        expect(reply.body).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/wrong write key/) });
        expect(reply.headers.get('www-authenticate')).toBe('Basic realm="microflows"');
        expect(await store.tableCounts()).toEqual(before);
      });

      it('refuses an event over 32 KB with 400 naming the event limit', async () => {
        const before = await store.tableCounts();
        const call = JSON.stringify({ userId: unique('c'), event: 'Product Viewed', properties: { padding: 'x'.repeat(33 * 1024) } });

        const reply = await post(app.url, '/v1/track', call);

        expect(reply.status).toBe(400);
        expect(reply.body).toEqual({ error: 'payload_too_large', message: `event is ${Buffer.byteLength(call)} bytes; the limit is 32 KB per event` });
        expect(await store.tableCounts()).toEqual(before);
      });
    });

    describe('batches', () => {
      it('keeps the good items around a bad one and names the bad one by index and field', async () => {
        const customer = unique('c');
        const batch = [
          { type: 'track', userId: customer, event: 'Product Viewed', messageId: unique('m') },
          { type: 'track', userId: customer, properties: { product_id: 'sku-1' } },
          { type: 'identify', userId: customer, traits: { email: `${customer}@example.com` }, messageId: unique('m') },
          { type: 'purchase', userId: customer },
        ];

        const reply = await post(app.url, '/v1/batch', { batch });

        expect(reply.status).toBe(200);
        expect(reply.body).toEqual({
          success: true,
          accepted: 2,
          duplicates: 0,
          rejected: [
            { index: 1, field: 'batch[1].event', message: expect.stringMatching(/^batch\[1\]\.event: is required for a track call/) },
            { index: 3, field: 'batch[3].type', message: expect.stringMatching(/^batch\[3\]\.type: must be one of track, identify, .* got "purchase"$/) },
          ],
        });
        const stored = await store.recentEvents(customer, 10);
        expect(stored.map((e) => e.messageId).sort()).toEqual([batch[0]!.messageId, batch[2]!.messageId].sort());
      });

      it('rejects an item over 32 KB by its index and keeps the others', async () => {
        const customer = unique('c');
        const big = { type: 'track', userId: customer, event: 'Product Viewed', properties: { padding: 'x'.repeat(33 * 1024) } };
        const batch = [
          { type: 'track', userId: customer, event: 'Cart Viewed' },
          big,
          { type: 'track', userId: customer, event: 'Checkout Started' },
        ];

        const reply = await post(app.url, '/v1/batch', { batch });

        expect(reply.status).toBe(200);
        expect(reply.body).toMatchObject({ accepted: 2, rejected: [{ index: 1, field: 'batch[1]', message: `batch[1]: event is ${Buffer.byteLength(JSON.stringify(big))} bytes; the limit is 32 KB per event` }] });
        expect((await store.eventsOf(customer)).map((e) => e.name).sort()).toEqual(['Cart Viewed', 'Checkout Started']);
      });

      it('answers 400 when no item is accepted', async () => {
        const before = await store.tableCounts();

        const reply = await post(app.url, '/v1/batch', { batch: [{ type: 'track', event: 'Product Viewed' }] });

        expect(reply.status).toBe(400);
        expect(reply.body).toMatchObject({ error: 'bad_event', rejected: [{ index: 0, field: 'batch[0].userId' }] });
        expect(await store.tableCounts()).toEqual(before);
      });

      it('refuses a batch over 500 KB with 400 naming the batch limit, storing none of it', async () => {
        const before = await store.tableCounts();
        const customer = unique('c');
        const item = { type: 'track', userId: customer, event: 'Product Viewed', properties: { padding: 'x'.repeat(20 * 1024) } };
        const body = JSON.stringify({ batch: Array.from({ length: 30 }, () => item) });

        const reply = await post(app.url, '/v1/batch', body);

        expect(reply.status).toBe(400);
        expect(reply.body).toEqual({ error: 'payload_too_large', message: `batch is ${Buffer.byteLength(body)} bytes; the limit is 500 KB per batch` });
        expect(await store.tableCounts()).toEqual(before);
      });

      it("merges the batch's context and integrations into each item, the item's own keys winning", async () => {
        const customer = unique('c');
        const batch = [
          { type: 'track', userId: customer, event: 'Product Viewed', messageId: unique('m'), context: { locale: 'fr-FR' } },
          { type: 'track', userId: customer, event: 'Cart Viewed', messageId: unique('m') },
          { type: 'track', userId: customer, event: 'Checkout Started', messageId: unique('m'), integrations: { Mixpanel: false } },
        ];

        const reply = await post(app.url, '/v1/batch', {
          context: { app: { name: 'shop', version: '2.1' }, locale: 'en-GB' },
          integrations: { All: true },
          batch,
        });

        expect(reply.status).toBe(200);
        const contextOf = new Map((await store.eventsOf(customer)).map((e) => [e.messageId, e.context]));
        expect(contextOf.get(batch[0]!.messageId)).toEqual({ app: { name: 'shop', version: '2.1' }, locale: 'fr-FR', integrations: { All: true } });
        expect(contextOf.get(batch[1]!.messageId)).toEqual({ app: { name: 'shop', version: '2.1' }, locale: 'en-GB', integrations: { All: true } });
        expect(contextOf.get(batch[2]!.messageId)).toEqual({ app: { name: 'shop', version: '2.1' }, locale: 'en-GB', integrations: { All: true, Mixpanel: false } });
      });
    });

    describe('event time', () => {
      /** The server's clock, pinned; the client's clock is two hours ahead of it. */
      const NOW = Date.UTC(2024, 5, 1, 12, 0, 0);
      const CLIENT_NOW = NOW + 2 * HOUR_MS;
      let pinned: RunningApp;

      beforeAll(async () => {
        pinned = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, now: () => NOW });
      });

      afterAll(async () => {
        await pinned?.close();
      });

      const storedTimeOf = async (route: string, call: Record<string, unknown>): Promise<number> => {
        const customer = unique('c');
        const reply = await post(pinned.url, route, route === '/v1/batch' ? { ...call, batch: [{ ...(call.batch as object[])[0], userId: customer }] } : { ...call, userId: customer });
        expect(reply.status).toBe(200);
        const [event] = await store.recentEvents(customer, 10);
        expect(event?.receivedAt).toBe(NOW);
        return event!.timestamp;
      };

      it('keeps an explicit historical timestamp sent without sentAt (a backfill)', async () => {
        expect(await storedTimeOf('/v1/track', { event: 'Order Completed', timestamp: '2023-01-15T10:00:00Z' })).toBe(Date.UTC(2023, 0, 15, 10));
      });

      it('takes the client skew out of originalTimestamp using sentAt', async () => {
        const call = { event: 'Product Viewed', originalTimestamp: iso(CLIENT_NOW - 90_000), sentAt: iso(CLIENT_NOW) };
        expect(await storedTimeOf('/v1/track', call)).toBe(NOW - 90_000);
      });

      it("applies the batch's sentAt to its items", async () => {
        const call = { sentAt: iso(CLIENT_NOW), batch: [{ type: 'track', event: 'Product Viewed', timestamp: iso(CLIENT_NOW - 30_000) }] };
        expect(await storedTimeOf('/v1/batch', call)).toBe(NOW - 30_000);
      });

      it('uses the arrival time when the call gives none', async () => {
        expect(await storedTimeOf('/v1/track', { event: 'Product Viewed' })).toBe(NOW);
      });
    });

    describe('overload', () => {
      it('answers 429 with Retry-After when too many events wait, and stores exactly the requests it accepted', async () => {
        const busy = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, ingestMaxPending: 1 }, dispatcher: noDispatch });
        try {
          const outcomes: Array<{ customer: string; messageIds: string[]; reply: Reply }> = [];
          // Concurrent requests pile up behind the first write; a few rounds make sure the race is seen.
          for (let round = 0; round < 5 && !outcomes.some((o) => o.reply.status === 429); round++) {
            const requests = Array.from({ length: 40 }, () => {
              const customer = unique('load');
              return { customer, messageIds: [unique('m'), unique('m'), unique('m')] };
            });
            const replies = await Promise.all(
              requests.map(({ customer, messageIds }) =>
                post(busy.url, '/v1/batch', { batch: messageIds.map((messageId) => ({ type: 'track', userId: customer, event: 'Product Viewed', messageId })) }),
              ),
            );
            requests.forEach((request, i) => outcomes.push({ ...request, reply: replies[i]! }));
          }

          const refused = outcomes.filter((o) => o.reply.status === 429);
          const accepted = outcomes.filter((o) => o.reply.status === 200);
          expect(refused.length).toBeGreaterThan(0);
          expect(accepted.length).toBeGreaterThan(0);
          expect(refused.length + accepted.length).toBe(outcomes.length);
          for (const { reply } of refused) {
            expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
            expect(reply.body).toEqual({ error: 'overloaded', message: expect.stringMatching(/events are waiting to be written \(limit 1\); retry after/) });
          }
          for (const { customer, messageIds, reply } of outcomes) {
            const stored = (await store.eventsOf(customer)).map((e) => e.messageId).sort();
            expect({ status: reply.status, stored }).toEqual({ status: reply.status, stored: reply.status === 200 ? [...messageIds].sort() : [] });
          }
        } finally {
          await busy.close();
        }
      });
    });

    describe('identity', () => {
      it("joins an anonymous visitor's history to the user who identifies with both ids", async () => {
        const userId = unique('user');
        const anonymousId = unique('anon');
        for (const category of ['Shoes', 'Shoes', 'Bags']) {
          expect((await post(app.url, '/v1/track', { anonymousId, event: 'Product Viewed', properties: { product_id: `${category}-1`, category } })).status).toBe(200);
        }

        expect((await post(app.url, '/v1/identify', { userId, anonymousId, traits: { email: `${userId}@example.com` } })).status).toBe(200);

        const profile = await get(app.url, `/api/profiles/${encodeURIComponent(userId)}`);
        expect(profile.status).toBe(200);
        expect(profile.body).toMatchObject({ customerId: userId, aliases: [anonymousId], email: `${userId}@example.com` });
        expect(profile.body.computed).toMatchObject({ last_browsed_category: 'Bags', category_views: { Shoes: 2, Bags: 1 }, preferred_category: 'Shoes' });
        const recent = profile.body.recentEvents as StoredEvent[];
        expect(recent.map((e) => e.type).sort()).toEqual(['identify', 'track', 'track', 'track']);
        expect(recent.filter((e) => e.name === 'Product Viewed').map((e) => ({ customerId: e.customerId, anonymousId: e.anonymousId }))).toEqual(
          Array.from({ length: 3 }, () => ({ customerId: userId, anonymousId })),
        );

        const byAnonymousId = await get(app.url, `/api/profiles/${encodeURIComponent(anonymousId)}`);
        expect(byAnonymousId.body).toMatchObject({ customerId: userId, aliases: [anonymousId] });
        expect(byAnonymousId.body.computed).toEqual(profile.body.computed);

        // The browser still only knows the anonymous id: its next event is the user's too.
        expect((await post(app.url, '/v1/track', { anonymousId, event: 'Product Viewed', properties: { category: 'Hats' } })).status).toBe(200);
        const after = await get(app.url, `/api/profiles/${encodeURIComponent(userId)}`);
        expect(after.body.computed).toMatchObject({ last_browsed_category: 'Hats', category_views: { Shoes: 2, Bags: 1, Hats: 1 } });
        expect(await store.getProfile(anonymousId)).toBeUndefined();
        expect(await store.recentEvents(anonymousId, 10)).toEqual([]);
      });
    });

    describe('tracking links', () => {
      const claimsFor = (customerId: string): ClickClaims => ({
        customerId,
        deliveryKey: `cart-abandonment:${customerId}:1:discount`,
        flowId: 'cart-abandonment',
        stepId: 'discount',
        variant: 'b',
        url: 'https://shop.example.com/cart?item=sku-1#summary',
        // The template's own link: redirected to as written (a link from data is checked against the link domains).
        literal: true,
      });
      const click = (token: string) => fetch(`${app.url}/t/c/${token}`, { redirect: 'manual' });

      it('redirects a signed click to the link with UTM tags and records Email Link Clicked', async () => {
        const customer = unique('c');

        const res = await click(signClickToken(SIGNING_SECRET, claimsFor(customer), tokenExpiry(Date.now())));

        expect(res.status).toBe(302);
        expect(res.headers.get('location')).toBe(
          'https://shop.example.com/cart?item=sku-1&utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=discount/b#summary',
        );
        expect(await store.eventsOf(customer)).toEqual([
          expect.objectContaining({
            type: 'track',
            name: 'Email Link Clicked',
            userId: customer,
            properties: { url: 'https://shop.example.com/cart?item=sku-1#summary', delivery_key: `cart-abandonment:${customer}:1:discount`, flow_id: 'cart-abandonment', step_id: 'discount', variant: 'b' },
            context: expect.objectContaining({ source: 'click-redirect' }),
          }),
        ]);
      });

      const forgeries: Array<[string, (claims: ClickClaims) => string, RegExp]> = [
        [
          'an altered payload',
          (claims) => {
            // One bit of the sealed claims flipped: the cipher's tag no longer matches.
            const bytes = Buffer.from(signClickToken(SIGNING_SECRET, claims, tokenExpiry(Date.now())), 'base64url');
            bytes[20] = bytes[20]! ^ 1;
            return bytes.toString('base64url');
          },
          /signature does not match: it was altered or signed with another secret/,
        ],
        ['a token signed with another secret', (claims) => signClickToken('another-secret', claims, tokenExpiry(Date.now())), /signature does not match/],
        ['an open token used as a click token', (claims) => signOpenToken(SIGNING_SECRET, claims, tokenExpiry(Date.now())), /this is an open token, not a click token/],
        ['a malformed token', () => 'not-a-token', /malformed click token/],
      ];

      it.each(forgeries)('answers %s with 400 and a reason, no redirect, nothing stored', async (_case, forge, reason) => {
        const customer = unique('c');
        const before = await store.tableCounts();

        const res = await click(forge(claimsFor(customer)));

        expect(res.status).toBe(400);
        expect(res.headers.get('location')).toBeNull();
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect(await res.json()).toEqual({ error: 'invalid_tracking_token', message: expect.stringMatching(reason) });
        expect(await store.tableCounts()).toEqual(before);
      });

      it('answers the open pixel with a GIF and records Email Opened', async () => {
        const customer = unique('c');
        const { url: _url, ...claims } = claimsFor(customer);

        const res = await fetch(`${app.url}/t/o/${signOpenToken(SIGNING_SECRET, claims, tokenExpiry(Date.now()))}.gif`);

        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('image/gif');
        expect(res.headers.get('cache-control')).toMatch(/no-store/);
        expect(Buffer.from(await res.arrayBuffer()).subarray(0, 6).toString('latin1')).toBe('GIF89a');
        expect(await store.eventsOf(customer)).toEqual([
          expect.objectContaining({
            name: 'Email Opened',
            properties: { delivery_key: `cart-abandonment:${customer}:1:discount`, flow_id: 'cart-abandonment', step_id: 'discount', variant: 'b' },
            context: expect.objectContaining({ source: 'open-pixel' }),
          }),
        ]);
      });
    });

    describe('ESP webhooks', () => {
      const FIXTURE_EMAIL = 'Ada.Lovelace@Example.com';

      /** The SendGrid story for another recipient, without customer_id, so the server must find them by email. */
      const sendgridFor = (email: string, idSuffix: string) =>
        sendgridStory.map(({ customer_id: _id, ...event }) => {
          expect(event.email).toBe(FIXTURE_EMAIL);
          return { ...event, email, sg_event_id: `${event.sg_event_id}-${idSuffix}` };
        });

      /** The Postmark story for another recipient, one body per POST, with that customer's id in its metadata. */
      const postmarkFor = (email: string, customerId: string, idSuffix: string) =>
        postmarkStory.map((event) => {
          const recipient = 'Email' in event ? { Email: email } : { Recipient: email };
          return { ...event, ...recipient, MessageID: `${event.MessageID}-${idSuffix}`, Metadata: { ...event.Metadata, customer_id: customerId } };
        });

      /** Posts as the provider does: SendGrid signs the exact bytes it sends, Postmark sends its Basic credential. */
      async function deliver(provider: 'sendgrid' | 'postmark', body: unknown): Promise<Reply> {
        const text = JSON.stringify(body);
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (provider === 'postmark') {
          headers.authorization = basic(...(POSTMARK_CREDENTIAL.split(':') as [string, string]));
        } else {
          const timestamp = String(Math.floor(Date.now() / 1000));
          headers['x-twilio-email-event-webhook-timestamp'] = timestamp;
          headers['x-twilio-email-event-webhook-signature'] = sign('sha256', Buffer.from(timestamp + text), { key: SENDGRID_KEYS.privateKey, dsaEncoding: 'der' }).toString('base64');
        }
        const res = await fetch(`${app.url}/webhooks/${provider}`, { method: 'POST', headers, body: text });
        return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
      }

      it('turns the SendGrid and the Postmark story into the same canonical events, and a repeat into nothing', async () => {
        const sendgridCustomer = unique('sg');
        const email = `Ada.${sendgridCustomer}@Example.com`;
        expect((await post(app.url, '/v1/identify', { userId: sendgridCustomer, traits: { email } })).status).toBe(200);
        const postmarkCustomer = unique('pm');
        const postmarkEmail = `ada.${postmarkCustomer}@example.com`;
        expect((await post(app.url, '/v1/identify', { userId: postmarkCustomer, traits: { email: postmarkEmail } })).status).toBe(200);
        const sendgridBody = sendgridFor(email, sendgridCustomer);
        const postmarkBodies = postmarkFor(postmarkEmail, postmarkCustomer, postmarkCustomer);

        const sendgridReply = await deliver('sendgrid', sendgridBody);
        const postmarkReplies = [];
        for (const body of postmarkBodies) postmarkReplies.push(await deliver('postmark', body));

        expect(sendgridReply).toMatchObject({ status: 200, body: { success: true, received: 7, ignored: [{ index: 0, reason: expect.stringMatching(/"processed" ignored/) }] } });
        expect(postmarkReplies.map((r) => [r.status, r.body.received, r.body.ignored.length])).toEqual([[200, 1, 0], [200, 1, 0], [200, 1, 0], [200, 1, 0], [200, 1, 1], [200, 1, 0], [200, 1, 0]]);

        const sendgridEvents = (await store.eventsOf(sendgridCustomer)).reverse();
        const postmarkEvents = (await store.eventsOf(postmarkCustomer)).reverse();
        const story = [
          { name: 'Email Delivered', delivery_key: 'cart-abandonment:cust_42:1:reminder', flow_id: 'cart-abandonment', step_id: 'reminder' },
          { name: 'Email Opened', delivery_key: 'cart-abandonment:cust_42:1:reminder', flow_id: 'cart-abandonment', step_id: 'reminder' },
          { name: 'Email Link Clicked', url: 'https://shop.example.com/cart?item=sku-1', delivery_key: 'cart-abandonment:cust_42:1:reminder', flow_id: 'cart-abandonment', step_id: 'reminder' },
          { name: 'Email Bounced', bounce_type: 'hard', delivery_key: 'cart-abandonment:cust_42:1:discount', flow_id: 'cart-abandonment', step_id: 'discount', variant: 'b' },
          { name: 'Email Marked as Spam', delivery_key: 'cart-abandonment:cust_42:1:reminder', flow_id: 'cart-abandonment', step_id: 'reminder' },
          { name: 'Unsubscribed', delivery_key: 'cart-abandonment:cust_42:1:reminder', flow_id: 'cart-abandonment', step_id: 'reminder' },
        ].map((event) => ({ url: undefined, bounce_type: undefined, variant: undefined, ...event }));
        expect(sendgridEvents.map(canonical)).toEqual(story);
        expect(postmarkEvents.map(canonical)).toEqual(story);
        // Both providers report each moment to within a second (SendGrid in whole seconds, Postmark to the ms).
        sendgridEvents.forEach((event, i) => expect(Math.abs(event.timestamp - postmarkEvents[i]!.timestamp)).toBeLessThan(1000));
        expect(sendgridEvents.map((e) => e.properties.provider)).toEqual(Array(6).fill('sendgrid'));
        expect(postmarkEvents.map((e) => e.properties.provider)).toEqual(Array(6).fill('postmark'));
        expect(sendgridEvents.map((e) => e.properties.email)).toEqual(Array(6).fill(email.toLowerCase()));

        // Providers retry webhooks: the same deliveries again add nothing, and are answered as the first time.
        const before = await store.tableCounts();
        expect(await deliver('sendgrid', sendgridBody)).toMatchObject({ status: 200, body: sendgridReply.body });
        for (const [i, body] of postmarkBodies.entries()) expect(await deliver('postmark', body)).toMatchObject({ status: 200, body: postmarkReplies[i]!.body });
        expect(await store.tableCounts()).toEqual(before);
      });

      it("a bounce for the address a customer has since changed is still theirs, tied by the Message-ID the email went out with", async () => {
        const customer = unique('moved');
        const oldEmail = `${customer}@old.example`;
        expect((await post(app.url, '/v1/identify', { userId: customer, traits: { email: oldEmail } })).status).toBe(200);
        const deliveryKey = `winback:${customer}:1:mail`;
        const messageId = `<${customer.replace(/[^a-z0-9]/gi, '')}@microflows>`;
        await store.claimSend({ deliveryKey, customerId: customer, flowId: 'winback', flowVersion: 1, workflowId: `wf-${customer}`, nodeId: 'mail', template: 'winback', to: oldEmail, subject: 'We miss you', transport: 'smtp', scheduledAt: Date.now() });
        await store.completeSend(deliveryKey, messageId, Date.now());
        expect((await post(app.url, '/v1/identify', { userId: customer, traits: { email: `${customer}@new.example` } })).status).toBe(200);
        const bounce = sendgridFor(oldEmail, customer)[4]!;
        expect(bounce.event).toBe('bounce');

        // The same bounce twice: with our Message-ID as smtp-id, and with SendGrid's own (the address alone then finds nobody).
        const reply = await deliver('sendgrid', [
          { ...bounce, 'smtp-id': messageId },
          { ...bounce, sg_event_id: `${bounce.sg_event_id}-theirs` },
        ]);

        expect(reply).toMatchObject({ status: 200, body: { success: true, received: 2, ignored: [] } });
        expect((await store.eventsOf(customer, { names: ['Email Bounced'] })).map((e) => [e.messageId, e.properties.email])).toEqual([[`sendgrid:${bounce.sg_event_id}`, oldEmail]]);
      });

      it.each(['sendgrid', 'postmark'])('refuses a %s webhook without its own credential, or with the write key, with 401, storing nothing', async (provider) => {
        const customer = unique(provider);
        const body = provider === 'sendgrid' ? sendgridStory.map((event) => ({ ...event, customer_id: customer })) : postmarkFor(FIXTURE_EMAIL, customer, customer)[0];
        const before = await store.tableCounts();

        const missing = await post(app.url, `/webhooks/${provider}`, body, null);
        const writeKey = await post(app.url, `/webhooks/${provider}`, body, basic(WRITE_KEY));

        expect([missing.status, writeKey.status]).toEqual([401, 401]);
        expect(missing.body).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(provider === 'sendgrid' ? /^missing X-Twilio-Email-Event-Webhook-Signature/ : /^missing credential/) });
        expect(writeKey.body).toMatchObject({ error: 'unauthorized' });
        expect(await store.tableCounts()).toEqual(before);
      });
    });
  });
}
