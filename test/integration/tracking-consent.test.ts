// Behavioral tracking consent on the real path (time-skipping Temporal, HTTP ingest, SMTP socket), on SQLite and
// PostgreSQL: a customer who refused tracking has no browsing stored, no cart flow, no behavior fields, and emails
// without the open pixel or tracked links; a control customer has all of those; withdrawing deletes the browsing
// and leaves the behavior segments; the consent trail records each change; MICROFLOWS_TRACKING_DEFAULT=denied
// tracks no one who did not grant it.
import { adminFetch, post, waitUntil } from '../support/http';
import { stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const SECRET = 'tracking-consent-test-secret';
const DAY = 24 * 60 * 60 * 1000;
/** On the shop's domain (the default link domain), with an image: the order email links it. */
const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes', quantity: 1, image_url: 'https://shop.example/img/sku-1.jpg', url: 'https://shop.example/p/sku-1' };
const BROWSING = ['Product Viewed', 'Product Added'];

interface TrailRow {
  kind: string;
  granted: boolean;
  source: string;
  at: number;
  recordedAt: number;
  eventMessageId: string | null;
}

function harness(stack: () => TimeSkippingStack) {
  const url = () => stack().url;
  const store = () => stack().runtime.store;
  return {
    async identify(userId: string, consent: Record<string, boolean> | null, messageId: string, timestamp = new Date().toISOString()) {
      const traits = { email: `${userId}@example.com`, first_name: 'Ana', ...(consent ? { consent } : {}) };
      const res = await post(`${url()}/v1/identify`, { userId, traits, messageId, timestamp }, WRITE_KEY);
      expect(res).toEqual({ status: 200, json: { success: true } });
      return Date.parse(timestamp);
    },
    async track(userId: string, event: string, properties: Record<string, unknown>, timestamp?: string) {
      const res = await post(`${url()}/v1/track`, { userId, event, properties, ...(timestamp ? { timestamp } : {}) }, WRITE_KEY);
      expect(res.status).toBe(200);
      await stack().runtime.dispatcher.idle();
      return res.json as { success: boolean; dropped?: { reason: string } };
    },
    async storedNames(userId: string, names = BROWSING) {
      return (await store().eventsOf(userId, { names })).map((e) => e.name).sort();
    },
    mailsTo(userId: string) {
      return stack().smtp.messages.filter((m) => m.to.includes(`${userId}@example.com`));
    },
    async thankYou(userId: string) {
      const [mail] = await waitUntil(`the thank-you to ${userId}`, async () => {
        const mails = this.mailsTo(userId).filter((m) => m.subject.startsWith('Thank you for your order'));
        return mails.length > 0 ? mails : undefined;
      });
      return mail!;
    },
    async trail(userId: string): Promise<{ consent: Record<string, { granted: boolean; source: string }>; trail: TrailRow[] }> {
      const res = await adminFetch(`${url()}/api/customers/${userId}/consent`);
      expect(res.status).toBe(200);
      return (await res.json()) as { consent: Record<string, { granted: boolean; source: string }>; trail: TrailRow[] };
    },
  };
}

for (const database of stackDatabases('tracking-consent')) {
  describeOn(database, `tracking consent on ${database}`, () => {
    let stack: TimeSkippingStack;
    const h = harness(() => stack);

    beforeAll(async () => {
      stack = await startTimeSkippingStack({ MICROFLOWS_SIGNING_SECRET: SECRET }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it('a customer who refused tracking: browsing not stored, no cart flow, no behavior fields, an order email without pixel or tracked links; the trail says so', async () => {
      const id = `refuser-${database}`;
      const identifiedAt = await h.identify(id, { email_marketing: true, behavioral_tracking: false }, `identify-${id}`);

      // A 200 that says the events were not stored: the customer's choice, not the client's error.
      for (const event of BROWSING) {
        expect(await h.track(id, event, shoe)).toEqual({ success: true, dropped: { reason: expect.stringMatching(/behavioral tracking/) } });
      }
      const batch = await post(
        `${stack.url}/v1/batch`,
        {
          batch: [
            { type: 'page', userId: id, name: 'Home' },
            { type: 'track', userId: id, event: 'Wishlist Shared', properties: {} },
            { type: 'identify', userId: id, traits: { plan: 'gold' } },
          ],
        },
        WRITE_KEY,
      );
      expect(batch).toEqual({
        status: 200,
        json: { success: true, accepted: 1, duplicates: 0, rejected: [], dropped: [{ index: 0, reason: expect.any(String) }, { index: 1, reason: expect.any(String) }] },
      });
      await stack.runtime.dispatcher.idle();
      expect(await h.storedNames(id, [...BROWSING, 'Wishlist Shared'])).toEqual([]);
      expect((await stack.runtime.store.recentEvents(id, 50)).map((e) => e.type)).toEqual(['identify', 'identify']);

      // Nothing to start the cart flow: an hour on, no run and no decision about it.
      await stack.env.sleep('2h');
      expect(await stack.runtime.store.flowEntriesOf(id)).toEqual([]);
      expect((await stack.runtime.store.decisionsOf(id)).filter((d) => d.flowId === 'cart-abandonment')).toEqual([]);
      const before = (await stack.runtime.store.getProfile(id))!;
      expect(before.traits.plan).toBe('gold');
      for (const field of ['cart', 'product_views', 'page_views', 'visit_days', '_behavior_score', '_category_views']) expect([field, field in before.computed]).toEqual([field, false]);

      // A purchase is kept: the transactional email goes out, with plain links (UTM tags) and no pixel.
      expect(await h.track(id, 'Order Completed', { order_id: 'o-untracked', total: 89.5, products: [shoe] })).toEqual({ success: true });
      const mail = await h.thankYou(id);
      expect(mail.html).toContain('https://shop.example/p/sku-1?utm_');
      expect(mail.html).not.toContain(`${stack.url}/t/`);
      expect(mail.html).not.toMatch(/\/t\/[oc]\//);
      const after = (await stack.runtime.store.getProfile(id))!;
      expect(after.computed).toMatchObject({ orders_count: 1, total_spent: 89.5 });
      // An order folds into the cart and the score too; for this customer they stay cleared.
      expect('cart' in after.computed || '_behavior_score' in after.computed).toBe(false);

      const { consent, trail } = await h.trail(id);
      expect(consent.behavioral_tracking).toMatchObject({ granted: false, source: 'identify' });
      expect(trail).toEqual([
        { customerId: id, kind: 'behavioral_tracking', granted: false, source: 'api', at: identifiedAt, recordedAt: expect.any(Number), eventMessageId: `identify-${id}` },
        { customerId: id, kind: 'email_marketing', granted: true, source: 'api', at: identifiedAt, recordedAt: expect.any(Number), eventMessageId: `identify-${id}` },
      ]);
      // The trail is admin data: no key, no answer.
      expect((await fetch(`${stack.url}/api/customers/${id}/consent`)).status).toBe(401);
    });

    it('a customer who allows tracking is tracked; withdrawing deletes their browsing, clears the cart, leaves the behavior segments, and is in the trail', async () => {
      const id = `allower-${database}`;
      const grantedAt = await h.identify(id, { email_marketing: true, behavioral_tracking: true }, `grant-${id}`, new Date(Date.now() - 2 * DAY).toISOString());
      expect(await h.track(id, 'Product Viewed', shoe, new Date(Date.now() - DAY).toISOString())).toEqual({ success: true });
      expect(await h.track(id, 'Product Viewed', shoe)).toEqual({ success: true });
      expect(await h.track(id, 'Product Added', shoe)).toEqual({ success: true });
      expect(await h.storedNames(id)).toEqual(['Product Added', 'Product Viewed', 'Product Viewed']);
      await waitUntil('the cart flow', async () => (await stack.runtime.store.flowEntriesOf(id)).find((e) => e.flowId === 'cart-abandonment'));
      expect((await stack.runtime.store.segmentsOf(id)).map((s) => s.segmentId)).toContain('repeat-visitors');
      expect((await stack.runtime.store.getProfile(id))!.computed).toMatchObject({ cart: [expect.objectContaining({ product_id: 'sku-1' })], product_views: 2 });

      expect(await h.track(id, 'Order Completed', { order_id: 'o-tracked', total: 89.5, products: [shoe] })).toEqual({ success: true });
      const mail = await h.thankYou(id);
      expect(mail.html).toContain(`${stack.url}/t/o/`);
      expect(mail.html).toContain(`${stack.url}/t/c/`);

      const withdrawnAt = await h.identify(id, { behavioral_tracking: false }, `withdraw-${id}`);
      await stack.runtime.dispatcher.idle();
      expect(await h.storedNames(id, [...BROWSING, 'Order Completed'])).toEqual(['Order Completed']);
      const profile = (await stack.runtime.store.getProfile(id))!;
      expect(profile.computed).toMatchObject({ orders_count: 1, total_spent: 89.5 });
      for (const field of ['cart', 'product_views', 'visit_days', '_behavior_score', '_category_views', 'last_viewed_product']) expect([field, field in profile.computed]).toEqual([field, false]);
      expect((await stack.runtime.store.segmentsOf(id)).map((s) => s.segmentId)).not.toContain('repeat-visitors');
      const exits = await stack.runtime.store.eventsOf(id, { names: ['Segment Exited'] });
      expect(exits.map((e) => e.properties.segment_id)).toContain('repeat-visitors');
      // From now on their browsing is dropped.
      expect(await h.track(id, 'Product Viewed', shoe)).toMatchObject({ dropped: expect.anything() });
      expect(await h.storedNames(id)).toEqual([]);

      const { trail } = await h.trail(id);
      expect(trail.filter((row) => row.kind === 'behavioral_tracking')).toEqual([
        { customerId: id, kind: 'behavioral_tracking', granted: true, source: 'api', at: grantedAt, recordedAt: expect.any(Number), eventMessageId: `grant-${id}` },
        { customerId: id, kind: 'behavioral_tracking', granted: false, source: 'api', at: withdrawnAt, recordedAt: expect.any(Number), eventMessageId: `withdraw-${id}` },
      ]);
      // A repeated grant or refusal is no change: the trail does not grow.
      await h.identify(id, { email_marketing: true, behavioral_tracking: false }, `again-${id}`);
      expect((await h.trail(id)).trail).toHaveLength(trail.length);
    });
  });

  describeOn(database, `MICROFLOWS_TRACKING_DEFAULT=denied on ${database}`, () => {
    let stack: TimeSkippingStack;
    const h = harness(() => stack);

    beforeAll(async () => {
      stack = await startTimeSkippingStack({ MICROFLOWS_SIGNING_SECRET: SECRET, MICROFLOWS_TRACKING_DEFAULT: 'denied' }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it('a customer without a consent record is not tracked; one who grants tracking is', async () => {
      const silent = `silent-${database}`;
      await h.identify(silent, { email_marketing: true }, `identify-${silent}`);
      expect(await h.track(silent, 'Product Added', shoe)).toMatchObject({ dropped: expect.anything() });
      expect(await h.storedNames(silent)).toEqual([]);
      expect(await h.track(silent, 'Order Completed', { order_id: 'o-silent', total: 10, products: [shoe] })).toEqual({ success: true });
      const mail = await h.thankYou(silent);
      expect(mail.html).toContain('https://shop.example/p/sku-1?utm_');
      expect(mail.html).not.toMatch(/\/t\/[oc]\//);
      expect((await stack.runtime.store.flowEntriesOf(silent)).map((e) => e.flowId)).toEqual(['post-purchase']);

      const opted = `opted-in-${database}`;
      await h.identify(opted, { email_marketing: true, behavioral_tracking: true }, `identify-${opted}`);
      expect(await h.track(opted, 'Product Added', shoe)).toEqual({ success: true });
      expect(await h.storedNames(opted)).toEqual(['Product Added']);
      await waitUntil('the cart flow', async () => (await stack.runtime.store.flowEntriesOf(opted)).find((e) => e.flowId === 'cart-abandonment'));
    });
  });
}
