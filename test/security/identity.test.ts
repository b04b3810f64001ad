// Identity, reserved events and the email trait, attacked over real HTTP on both store backends with a client source
// key (the public one analytics.js puts in every page) and with the server key (MICROFLOWS_WRITE_KEY). Each test names
// the attack it replays, checks the status and the field named, and that nothing changed: row counts, the profiles,
// identities and events of everyone involved.
import { newApiKey } from '../../core/api-keys';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { post, TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';
import { identitySnapshot } from '../support/identity-snapshot';

const SERVER_KEY = 'identity-server-key-0123456789abcdef';
const DAY = 86_400_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

/** A Segment call with `key` as the write key: status and parsed answer. */
const send = (base: string, path: string, key: string, body: unknown) => post(`${base}${path}`, body, key);

for (const backend of storeBackends('security: identity')) {
  backend.describe(`identity, reserved events and the email trait over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let clientKey: string;

    const snapshot = (ids: string[]) => identitySnapshot(store, ids);

    const asClient = (path: string, body: unknown) => send(app.url, path, clientKey, body);
    const asServer = (path: string, body: unknown) => send(app.url, path, SERVER_KEY, body);

    /** A customer the shop's backend identified: email, marketing consent withdrawn, a cart. */
    const victim = async (id = unique('victim')): Promise<string> => {
      expect((await asServer('/v1/identify', { userId: id, traits: { email: `${id}@example.com`, consent: { email_marketing: false } } })).status).toBe(200);
      expect((await asServer('/v1/track', { userId: id, event: 'Product Added', properties: { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5 } })).status).toBe(200);
      return id;
    };

    beforeAll(async () => {
      store = await backend.open();
      const client = newApiKey('client', 'storefront', [], Date.now());
      await store.createApiKey(client.record);
      clientKey = client.key;
      app = await serveApp({
        store,
        config: { writeKey: SERVER_KEY, adminKey: TEST_ADMIN_KEY },
        ingestLimits: { perKey: null, perIp: null },
        dispatcher: noDispatch,
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it('attack: identity takeover: a client key identify { userId: attacker, anonymousId: <victim userId> } is refused (403 naming anonymousId) and merges nothing', async () => {
      const [target, attacker] = [await victim(), await victim(unique('attacker'))];
      const before = await snapshot([target, attacker]);
      const reply = await asClient('/v1/identify', { userId: attacker, anonymousId: target, traits: { email: `${attacker}@example.com` } });
      expect(reply.status).toBe(403);
      expect(reply.json).toMatchObject({ error: 'forbidden', field: 'anonymousId', message: expect.stringMatching(/^anonymousId: .*already identified.*server key/) });
      expect(await snapshot([target, attacker])).toEqual(before);
    });

    it('attack: identity takeover by alias: a client key alias { previousId: <victim>, userId: attacker } is refused (403 naming previousId) and merges nothing', async () => {
      const [target, attacker] = [await victim(), await victim(unique('attacker'))];
      const before = await snapshot([target, attacker]);
      const reply = await asClient('/v1/alias', { previousId: target, userId: attacker });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', field: 'previousId' } });
      expect(await snapshot([target, attacker])).toEqual(before);
    });

    it("attack: mail redirection: a client key identify { userId: victim, traits: { email: attacker } } is refused (403 naming traits.email) and changes nothing", async () => {
      const target = await victim();
      const before = await snapshot([target]);
      const reply = await asClient('/v1/identify', { userId: target, traits: { email: 'attacker@example.org' } });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', field: 'traits.email' } });
      expect(await snapshot([target])).toEqual(before);
    });

    it("attack: forged opt-in: a client key identify granting the victim's email_marketing consent is refused (403 naming traits.consent.email_marketing) and changes nothing", async () => {
      const target = await victim();
      const before = await snapshot([target]);
      const reply = await asClient('/v1/identify', { userId: target, traits: { consent: { email_marketing: true } } });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', field: 'traits.consent.email_marketing' } });
      expect(await snapshot([target])).toEqual(before);
    });

    it("attack: takeover through the login merge: a visitor's own email and consent do not reach the victim they log in as", async () => {
      const target = await victim();
      const anon = unique('anon');
      expect((await asClient('/v1/identify', { anonymousId: anon, traits: { email: 'attacker@example.org', consent: { email_marketing: true } } })).status).toBe(200);
      expect((await asClient('/v1/identify', { userId: target, anonymousId: anon })).status).toBe(200);
      const profile = await store.getProfile(target);
      expect([profile?.email, profile?.consent.email_marketing?.granted]).toEqual([`${target}@example.com`, false]);
    });

    it.each([
      ['Segment Entered', { segment_id: 'lapsed-customers' }],
      ['Segment Exited', { segment_id: 'vip' }],
      ['Email Opened', { delivery_key: 'x' }],
      ['Email Link Clicked', { url: 'https://evil.example' }],
      ['Email Bounced', { bounce_type: 'hard' }],
      ['Email Marked as Spam', {}],
      ['Unsubscribed', {}],
    ])('attack: a client key sends the reserved event %p: refused (403 naming event), records nothing', async (event, properties) => {
      const target = await victim();
      const before = await snapshot([target]);
      const reply = await asClient('/v1/track', { userId: target, event, properties });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', field: 'event', message: expect.stringMatching(/reserved for events microflows records itself/) } });
      expect(await snapshot([target])).toEqual(before);
    });

    it('attack: a client key backfills history (an order 30 days ago): refused (403 naming timestamp), records nothing', async () => {
      const target = await victim();
      const before = await snapshot([target]);
      const reply = await asClient('/v1/track', { userId: target, event: 'Order Completed', properties: { total: 1 }, timestamp: new Date(Date.now() - 30 * DAY).toISOString() });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', field: 'timestamp' } });
      expect(await snapshot([target])).toEqual(before);
    });

    it('attack: a client key batch hides a takeover among good calls: the good ones are kept, the takeover is rejected at batch[1], nothing of it written', async () => {
      const [target, attacker] = [await victim(), await victim(unique('attacker'))];
      const before = await snapshot([target]);
      const viewed = { type: 'track', userId: attacker, event: 'Product Viewed', properties: { product_id: 'sku-2' }, messageId: unique('m') };
      const reply = await asClient('/v1/batch', { batch: [viewed, { type: 'identify', userId: attacker, anonymousId: target, messageId: unique('m') }, { type: 'track', userId: attacker, event: 'Segment Entered', messageId: unique('m') }] });
      expect(reply.status).toBe(200);
      expect(reply.json).toMatchObject({ success: true, accepted: 1, duplicates: 0 });
      expect(reply.json.rejected.map((r: { index: number; field: string }) => [r.index, r.field])).toEqual([
        [1, 'batch[1].anonymousId'],
        [2, 'batch[2].event'],
      ]);
      // The target is untouched; the one event stored is the good call's.
      const after = await snapshot([target]);
      expect(after.people).toEqual(before.people);
      expect(after.counts).toEqual({ ...before.counts, events: (before.counts.events ?? 0) + 1 });
      expect((await store.recentEvents(attacker, 10)).map((e) => e.messageId)).toContain(viewed.messageId);
    });

    it('attack: a client key batch of takeovers only: 403, nothing written', async () => {
      const [target, attacker] = [await victim(), await victim(unique('attacker'))];
      const before = await snapshot([target, attacker]);
      const reply = await asClient('/v1/batch', { batch: [{ type: 'alias', previousId: target, userId: attacker }] });
      expect(reply).toMatchObject({ status: 403, json: { error: 'forbidden', rejected: [{ index: 0, field: 'batch[0].previousId' }] } });
      expect(await snapshot([target, attacker])).toEqual(before);
    });

    it.each([
      ['a list', 'victim@example.com, second@example.org', /holds 2 addresses/],
      ['a group', 'friends: victim@example.com, second@example.org;', /address group/],
      ['CRLF', 'victim@example.com\r\nBcc: second@example.org', /control character/],
    ])('attack: phishing relay: identify with an email trait holding %s is refused (400 naming traits.email) from either key, storing nothing', async (_what, email, message) => {
      const target = unique('relay');
      const before = await snapshot([target]);
      for (const key of [clientKey, SERVER_KEY]) {
        const reply = await send(app.url, '/v1/identify', key, { userId: target, traits: { email } });
        expect(reply).toMatchObject({ status: 400, json: { error: 'bad_event', field: 'traits.email', message: expect.stringMatching(message) } });
        const batched = await send(app.url, '/v1/batch', key, { batch: [{ type: 'identify', userId: target, traits: { email } }] });
        expect(batched).toMatchObject({ status: 400, json: { rejected: [{ index: 0, field: 'batch[0].traits.email' }] } });
      }
      expect(await snapshot([target])).toEqual(before);
    });

    it('the server key may merge customers, send reserved events and backfill; a client key logs an anonymous visitor in', async () => {
      const [target, attacker] = [await victim(), await victim(unique('attacker'))];
      expect((await asServer('/v1/identify', { userId: attacker, anonymousId: target })).status).toBe(200);
      expect(await store.resolveCustomerId(target)).toBe(attacker);
      expect((await asServer('/v1/track', { userId: attacker, event: 'Email Opened', properties: { delivery_key: 'd' } })).status).toBe(200);
      expect((await asServer('/v1/track', { userId: attacker, event: 'Order Completed', properties: { total: 5 }, timestamp: new Date(Date.now() - 30 * DAY).toISOString() })).status).toBe(200);
      const customer = await victim();
      const anon = unique('anon');
      expect((await asClient('/v1/page', { anonymousId: anon, name: 'Home' })).status).toBe(200);
      expect((await asClient('/v1/identify', { userId: customer, anonymousId: anon, traits: { email: `${customer}@example.com` } })).status).toBe(200);
      expect(await store.resolveCustomerId(anon)).toBe(customer);
      expect((await store.getProfile(customer))?.computed.page_views).toBe(1);
    });
  });
}
