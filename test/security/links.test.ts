// Attacks on tracked links and their tokens, replayed over real HTTP: the signed open redirect (a data-supplied
// off-domain URL in an email sent through the real flow, worker and outbox), expired and old-format tokens, token
// payloads that would show whose email it is, replayed clicks and opens, and one token hammered past its limit.
// Each attack is refused with its status and changes nothing it should not.
import { signClickToken, signOpenToken, signUnsubscribeToken, tokenExpiry, type ClickClaims } from '../../core/tracking';
import { createHmac } from 'node:crypto';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { adminFetch, post, TEST_ADMIN_KEY, waitUntil } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { storeBackends } from '../support/store-backends';
import { subscribedCustomer } from '../support/subscribed-customer';

const SECRET = 'links-security-test-secret';
const SHOP = 'https://shop.example';
const PER_TOKEN = 8;
const DAY = 86_400_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

/** A token of the earlier format (readable payload, HMAC): what emails sent before tokens expired carry. */
function legacyToken(kind: string, payload: Record<string, unknown>): string {
  const segment = Buffer.from(JSON.stringify({ k: kind, ...payload })).toString('base64url');
  return `${segment}.${createHmac('sha256', SECRET).update(`${kind}${segment}`).digest().subarray(0, 16).toString('base64url')}`;
}

const identify = subscribedCustomer;

for (const backend of storeBackends('security/links')) {
  backend.describe(`attacks on tracked links: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    /** The server's clock: tokens expire against it. */
    let now = Date.now();

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, signingSecret: SECRET, shopUrl: SHOP, linkDomains: ['shop.example'], rateLimitPerToken: PER_TOKEN },
        dispatcher: noDispatch,
        now: () => now,
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    beforeEach(() => {
      now = Date.now();
    });

    const claimsFor = (customerId: string, url: string, literal: boolean): ClickClaims => ({
      customerId,
      deliveryKey: `flow/post-purchase/${customerId}/1/thanks`,
      flowId: 'post-purchase',
      stepId: 'thanks',
      url,
      literal,
    });
    const click = (token: string) => fetch(`${app.url}/t/c/${token}`, { redirect: 'manual' });
    const pixel = (token: string) => fetch(`${app.url}/t/o/${token}.gif`);
    const oneClick = (token: string) => fetch(`${app.url}/u/${token}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    const clicksOf = async (customerId: string) => (await store.eventsOf(customerId)).filter((e) => e.name === 'Email Link Clicked');

    test('attack: a click token whose link came from data, to a host off the link domains, redirects to the shop home, never to that host', async () => {
      const customer = unique('c');
      // Signed while the host was allowed (or by a signer with a bug): the redirect checks it again.
      const res = await click(signClickToken(SECRET, claimsFor(customer, 'https://evil.example/login', false), tokenExpiry(now)));
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(SHOP);
      // The template's own link to a partner is the author's choice, and goes where it says.
      const partner = await click(signClickToken(SECRET, claimsFor(customer, 'https://partner.example/terms', true), tokenExpiry(now)));
      expect(partner.headers.get('location')).toMatch(/^https:\/\/partner\.example\/terms\?utm_source=microflows/);
    });

    test('attack: an expired click token lands on the shop home and records nothing', async () => {
      const customer = unique('c');
      // Tokens keep whole seconds.
      const expiresAt = Math.floor((now + DAY) / 1000) * 1000;
      const token = signClickToken(SECRET, claimsFor(customer, 'https://shop.example/cart', true), expiresAt);
      now = expiresAt;
      const before = await store.tableCounts();
      const res = await click(token);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(SHOP);
      expect(await store.tableCounts()).toEqual(before);
      // One millisecond earlier it was a click like any other.
      now -= 1;
      expect((await click(token)).headers.get('location')).toMatch(/^https:\/\/shop\.example\/cart\?utm_source=/);
      expect(await clicksOf(customer)).toHaveLength(1);
    });

    test('attack: an old-format click token (no expiry, readable payload) lands on the shop home and records nothing', async () => {
      const customer = unique('c');
      const before = await store.tableCounts();
      const res = await click(legacyToken('c', { c: customer, d: 'd-1', f: 'f', s: 's', u: 'https://evil.example/' }));
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(SHOP);
      expect(await store.tableCounts()).toEqual(before);
    });

    test('attack: an expired open pixel still answers the GIF and records nothing', async () => {
      const customer = unique('c');
      const { url: _url, literal: _literal, ...claims } = claimsFor(customer, SHOP, true);
      const token = signOpenToken(SECRET, claims, now - 1);
      const before = await store.tableCounts();
      const res = await pixel(token);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/gif');
      expect(await store.tableCounts()).toEqual(before);
    });

    test('an expired unsubscribe link, and one of the earlier format, still unsubscribe (the law wants them to keep working)', async () => {
      for (const [customer, token] of [
        [unique('u'), (id: string) => signUnsubscribeToken(SECRET, { customerId: id, deliveryKey: `flow/x/${id}/1/s`, flowId: 'x' }, now - 400 * DAY)],
        [unique('u'), (id: string) => legacyToken('u', { c: id, d: `flow/x/${id}/1/s`, f: 'x' })],
      ] as const) {
        await store.recordEvents([identify(customer, now - DAY)], { needsDispatch: () => false });
        expect((await store.getProfile(customer))!.consent.email_marketing).toMatchObject({ granted: true });
        const page = await fetch(`${app.url}/u/${token(customer)}`);
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('<button type="submit">Unsubscribe</button>');
        const res = await oneClick(token(customer));
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('You are unsubscribed');
        expect((await store.getProfile(customer))!.consent.email_marketing).toMatchObject({ granted: false, source: 'unsubscribe' });
      }
    });

    test('attack: a token with one bit flipped is refused (400) and records nothing', async () => {
      const customer = unique('c');
      const bytes = Buffer.from(signClickToken(SECRET, claimsFor(customer, 'https://shop.example/', true), tokenExpiry(now)), 'base64url');
      bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0x40;
      const before = await store.tableCounts();
      const res = await click(bytes.toString('base64url'));
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.json()).toEqual({ error: 'invalid_tracking_token', message: "the click token's signature does not match: it was altered or signed with another secret" });
      expect(await store.tableCounts()).toEqual(before);
    });

    test('attack: replaying a click within ten minutes records one click; every replay still redirects', async () => {
      const customer = unique('c');
      const token = signClickToken(SECRET, claimsFor(customer, 'https://shop.example/p/1', true), tokenExpiry(now));
      for (let i = 0; i < 5; i++) {
        const res = await click(token);
        expect(res.status).toBe(302);
        expect(res.headers.get('location')).toMatch(/^https:\/\/shop\.example\/p\/1\?utm_source=microflows/);
      }
      expect(await clicksOf(customer)).toHaveLength(1);
      // Another link of the same email is another click.
      expect((await click(signClickToken(SECRET, claimsFor(customer, 'https://shop.example/p/2', true), tokenExpiry(now)))).status).toBe(302);
      expect(await clicksOf(customer)).toHaveLength(2);
    });

    test('attack: replaying an open pixel within ten minutes records one open', async () => {
      const customer = unique('c');
      const { url: _url, literal: _literal, ...claims } = claimsFor(customer, SHOP, true);
      const token = signOpenToken(SECRET, claims, tokenExpiry(now));
      for (let i = 0; i < 5; i++) expect((await pixel(token)).status).toBe(200);
      expect((await store.eventsOf(customer)).filter((e) => e.name === 'Email Opened')).toHaveLength(1);
    });

    test(`attack: one click token hammered past ${PER_TOKEN} a minute gets 429 with Retry-After and records nothing more; other tokens still work`, async () => {
      const customer = unique('c');
      const token = signClickToken(SECRET, claimsFor(customer, 'https://shop.example/p/9', true), tokenExpiry(now));
      for (let i = 0; i < PER_TOKEN; i++) expect((await click(token)).status).toBe(302);
      const before = await store.tableCounts();
      const res = await click(token);
      expect(res.status).toBe(429);
      expect(res.headers.get('location')).toBeNull();
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.json()).toMatchObject({ error: 'rate_limited', message: expect.stringContaining(`this link was followed too often: more than ${PER_TOKEN} per 60 s`) });
      expect(await store.tableCounts()).toEqual(before);
      expect((await click(signClickToken(SECRET, claimsFor(customer, 'https://shop.example/p/9', true), tokenExpiry(now)))).status).toBe(302);
    });

    test(`attack: one unsubscribe link hammered past ${PER_TOKEN} a minute gets a 429 page and records nothing more`, async () => {
      const customer = unique('u');
      await store.recordEvents([identify(customer, now - DAY)], { needsDispatch: () => false });
      const token = signUnsubscribeToken(SECRET, { customerId: customer, deliveryKey: `flow/x/${customer}/1/s`, flowId: 'x' }, tokenExpiry(now));
      for (let i = 0; i < PER_TOKEN; i++) expect((await oneClick(token)).status).toBe(200);
      const before = await store.tableCounts();
      const res = await oneClick(token);
      expect(res.status).toBe(429);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.text()).toContain('Please try again in a minute');
      expect(await store.tableCounts()).toEqual(before);
    });
  });
}

describe('attack: the signed open redirect, through a real send (flow, worker, outbox)', () => {
  let stack: TimeSkippingStack;

  beforeAll(async () => {
    // No SMTP: the email lands in the outbox, as sent.
    stack = await startTimeSkippingStack({ MICROFLOWS_SIGNING_SECRET: SECRET, SMTP_URL: '' });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('an Order Completed whose products link to evil.example, javascript: and data: sends a thank-you with no live link to them, and no tracked link in it leaves the shop', async () => {
    const customer = unique('mallory');
    const email = `${customer}@example.com`;
    expect((await post(`${stack.url}/v1/identify`, { userId: customer, traits: { email, first_name: 'Mallory' } }, WRITE_KEY)).status).toBe(200);
    const products = [
      { product_id: 'p-evil', name: 'Evil Site', price: 1, quantity: 1, url: 'https://evil.example/login', image_url: 'https://shop.example/img/p-evil.png' },
      { product_id: 'p-js', name: 'Evil Script', price: 1, quantity: 1, url: 'javascript:alert(document.cookie)', image_url: 'javascript:alert(2)' },
      { product_id: 'p-data', name: 'Evil Data', price: 1, quantity: 1, url: 'data:text/html,<script>alert(1)</script>', image_url: 'data:image/svg+xml,<svg onload=alert(3)>' },
      { product_id: 'p-ok', name: 'Real Shoe', price: 89.5, quantity: 1, url: 'https://www.shop.example/p/shoe', image_url: 'https://shop.example/img/shoe.png' },
    ];
    expect((await post(`${stack.url}/v1/track`, { userId: customer, event: 'Order Completed', properties: { order_id: 'o-1', total: 92.5, products } }, WRITE_KEY)).status).toBe(200);
    await stack.runtime.dispatcher.idle();

    const [sent] = await waitUntil('the thank-you in the outbox', async () => {
      const res = await adminFetch(`${stack.url}/api/outbox?to=${encodeURIComponent(email)}`);
      const { messages } = (await res.json()) as { messages: Array<{ html: string; text: string; deliveryKey: string }> };
      return messages.length > 0 ? messages : undefined;
    });
    const html = sent!.html;
    for (const name of ['Evil Site', 'Evil Script', 'Evil Data', 'Real Shoe']) expect(html).toContain(name);
    const hrefs = [...html.matchAll(/<a\b[^>]*?\shref="([^"]*)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
    // Besides the brand's own links (logo, help centre: the shop) and its support address, only the real product is
    // linked (its picture and its name), and every web link goes through the click redirect.
    const mailto = hrefs.filter((href) => href.startsWith('mailto:'));
    expect(mailto).toEqual(['mailto:help@shop.example']);
    const web = hrefs.filter((href) => !href.startsWith('mailto:'));
    expect(web.length).toBeGreaterThan(0);
    for (const href of web) expect(href.startsWith(`${stack.url}/t/c/`)).toBe(true);
    expect(html).not.toMatch(/evil\.example|javascript:|data:text|data:image/i);
    expect(sent!.text).not.toMatch(/evil\.example|javascript:|data:/i);
    const landings: URL[] = [];
    for (const href of web) {
      const res = await fetch(href, { redirect: 'manual' });
      expect(res.status).toBe(302);
      landings.push(new URL(res.headers.get('location')!));
    }
    for (const landing of landings) expect(landing.hostname === 'shop.example' || landing.hostname.endsWith('.shop.example')).toBe(true);
    expect(landings.filter((landing) => landing.hostname === 'www.shop.example').map((landing) => landing.pathname)).toEqual(['/p/shoe', '/p/shoe']);
    // The send's record says which links were left unlinked, and why.
    const [send] = await stack.runtime.store.listSends({ customerId: customer });
    expect(send!.fallbacks.map((f) => f.reason)).toEqual(
      expect.arrayContaining([
        expect.stringContaining('not linked: the link from data goes to evil.example'),
        'not linked: the link from data is javascript:, not http(s)',
        'not linked: the link from data is data:, not http(s)',
        'no image: the image source from data is javascript:, not http(s)',
        'no image: the image source from data is data:, not http(s)',
      ]),
    );

    // attack: reading whose email it is from its links. No token shows the customer id, delivery key or flow.
    const tokens = [...html.matchAll(/\/t\/[co]\/([A-Za-z0-9_-]+)/g)].map((m) => m[1]!);
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    for (const token of tokens) {
      const decoded = Buffer.from(token, 'base64url').toString('latin1');
      for (const secret of [customer, sent!.deliveryKey, 'post-purchase']) {
        expect(token).not.toContain(secret);
        expect(decoded).not.toContain(secret);
      }
    }
  }, 120_000);
});
