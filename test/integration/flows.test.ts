// The four shipped flows end to end on the time-skipping test server: events in through HTTP, emails
// out over a real SMTP socket at the skipped times, arbitration and dedupe on the real path.
import { customerWorkflowId } from '../../core/arbiter-state';
import { decisionsQuery } from '../../workflows/messages';
import { adminFetch, post, waitUntil } from '../support/http';
import { stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';
import type { ReceivedMail } from '../support/smtp-sink';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

for (const database of stackDatabases('flows')) {
  describeOn(database, `on ${database}`, () => {
    let stack: TimeSkippingStack;

    beforeAll(async () => {
      stack = await startTimeSkippingStack({}, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    async function identify(userId: string, traits: Record<string, unknown> = {}): Promise<void> {
      const res = await post(`${stack.url}/v1/identify`, {
        userId,
        traits: { email: `${userId}@example.com`, first_name: 'Ana', consent: { email_marketing: true }, ...traits },
      }, WRITE_KEY);
      expect(res.status).toBe(200);
    }

    async function track(userId: string, event: string, properties: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<void> {
      const res = await post(`${stack.url}/v1/track`, { userId, event, properties, ...extra }, WRITE_KEY);
      expect(res.status).toBe(200);
      // The 200 comes after the durable write; the signal to Temporal follows. Wait for it, or a
      // result() call (which lets the test server skip time) could race ahead of the event.
      await stack.runtime.dispatcher.idle();
    }

    function mailsTo(userId: string, flowId?: string): ReceivedMail[] {
      return stack.smtp.messages.filter(
        (m) => m.to.includes(`${userId}@example.com`) && (!flowId || String(m.headers.get('x-microflows-flow')).startsWith(`${flowId}@`)),
      );
    }

    async function waitForMails(userId: string, count: number, flowId?: string): Promise<ReceivedMail[]> {
      return waitUntil(`${count} email(s) to ${userId}${flowId ? ` from ${flowId}` : ''}`, async () => {
        const mails = mailsTo(userId, flowId);
        return mails.length >= count ? mails : undefined;
      });
    }

    async function entryOf(userId: string, flowId: string, runNumber = 1) {
      return waitUntil(`${flowId} run ${runNumber} for ${userId}`, async () =>
        (await stack.runtime.store.flowEntriesOf(userId)).find((e) => e.flowId === flowId && e.runNumber === runNumber),
      );
    }

    async function runResult(workflowId: string): Promise<{ outcome: string; sends: number }> {
      return stack.env.client.workflow.getHandle(workflowId).result();
    }

    /** The Date header carries the flow's (skipped) time of sending. */
    function offsetFromEntry(mail: ReceivedMail, enteredAt: number): number {
      return mail.date.getTime() - enteredAt;
    }

    function expectOffset(mail: ReceivedMail, enteredAt: number, expected: number): void {
      const offset = offsetFromEntry(mail, enteredAt);
      expect(offset).toBeGreaterThanOrEqual(expected - 1000);
      expect(offset).toBeLessThan(expected + 60_000);
    }

    const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes', quantity: 1 };

    describe('cart abandonment', () => {
      it('sends the reminder after 1h and the discount 23h later, with the cart in it', async () => {
        await identify('cart-1');
        await track('cart-1', 'Product Added', shoe);
        const entry = await entryOf('cart-1', 'cart-abandonment');
        expect(entry.flowVersion).toBe(4);

        await stack.env.sleep('59m');
        expect(mailsTo('cart-1')).toHaveLength(0);
        await stack.env.sleep('1m');
        const [reminder] = await waitForMails('cart-1', 1);
        expect(reminder!.subject).toBe('Ana, you left something in your cart');
        expect(reminder!.html).toContain('Trail Shoe');
        expect(reminder!.text).toContain('$89.50');
        expectOffset(reminder!, entry.enteredAt, HOUR);
        // RFC 8058 one-click unsubscribe on a marketing email: an https link with a signed token, and the POST header.
        const listUnsubscribe = reminder!.rawHeaders.get('list-unsubscribe');
        expect(listUnsubscribe).toMatch(new RegExp(`^<${stack.url}/u/[A-Za-z0-9_-]+>$`));
        expect(reminder!.rawHeaders.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
        // The same link is visible in the body, and the plain-text part has the words, the links, and no markup.
        const unsubscribeLink = listUnsubscribe!.slice(1, -1);
        expect(reminder!.html).toContain(`href="${unsubscribeLink}"`);
        expect(reminder!.text).toContain('Still thinking it over, Ana?');
        expect(reminder!.text).toContain(`Unsubscribe (${unsubscribeLink})`);
        expect(reminder!.text).toMatch(new RegExp(`Return to your cart \\(${stack.url}/t/c/[^)]+\\)`));
        expect(reminder!.text).not.toMatch(/<[a-z]|\{\{/i);
        // Every other link but the preference center's is tracked: it goes through the signed click redirect, which lands with UTM tags.
        const tracked = [...reminder!.html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!).filter((href) => href !== unsubscribeLink && !href.includes('fonts.googleapis') && !href.startsWith(`${stack.url}/preferences/`) && !href.startsWith('mailto:'));
        expect(tracked.length).toBeGreaterThan(0);
        for (const href of tracked) expect(href.startsWith(`${stack.url}/t/c/`)).toBe(true);
        const landing = await fetch(tracked.find((href) => reminder!.text.includes(`Return to your cart (${href})`))!, { redirect: 'manual' });
        expect(landing.status).toBe(302);
        expect(landing.headers.get('location')).toBe('https://shop.example/cart?utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=steps%5B1%5D');

        await stack.env.sleep('23h');
        const mails = await waitForMails('cart-1', 2);
        expect(mails[1]!.subject).toBe('10% off the items in your cart');
        expect(mails[1]!.html).toContain('CART10');
        expectOffset(mails[1]!, entry.enteredAt, DAY);

        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed', sends: 2 });
        expect((await stack.runtime.store.getFlowEntry(entry.workflowId))?.outcome).toBe('completed');
      });

      it('a customer lacking half the fields still gets a complete email, and the send records the fallbacks', async () => {
        // No name, no cart URL trait, no order history; the cart item has an id and nothing else.
        const res = await post(`${stack.url}/v1/identify`, { userId: 'cart-sparse', traits: { email: 'cart-sparse@example.com', consent: { email_marketing: true } } }, WRITE_KEY);
        expect(res.status).toBe(200);
        await track('cart-sparse', 'Product Added', { product_id: 'sku-unnamed' });
        const entry = await entryOf('cart-sparse', 'cart-abandonment');
        await stack.env.sleep('1h');
        const [reminder] = await waitForMails('cart-sparse', 1);
        expect(reminder!.subject).toBe('You left something in your cart');
        for (const part of [reminder!.html, reminder!.text]) {
          expect(part).toContain('Still thinking it over?');
          expect(part).toContain('sku-unnamed');
          expect(part).toContain('First order? Returns are free for 30 days.');
          expect(part).toContain('Return to your cart');
          expect(part).toContain('Unsubscribe');
          expect(part).not.toMatch(/\{\{|\}\}|undefined|null|NaN/);
        }
        const [send] = await stack.runtime.store.listSends({ customerId: 'cart-sparse' });
        expect(send!.workflowId).toBe(entry.workflowId);
        expect(send!.fallbacks.map((f) => `${f.at} ${f.expression}`)).toEqual(
          expect.arrayContaining([
            'templates/cart-reminder.mjml:2 #if profile.first_name',
            'templates/cart-reminder.mjml:9 #if profile.first_name',
            'templates/partials/product-card.mjml:11 default name product_id',
            'templates/partials/product-card.mjml:12 #if price',
            'templates/cart-reminder.mjml:23 #if (subtotal (recommend "cart" limit=6))',
          ]),
        );
      });

      it('a purchase during the wait ends the run at once: no cart email, conversion recorded', async () => {
        await identify('cart-2');
        await track('cart-2', 'Product Added', shoe);
        const entry = await entryOf('cart-2', 'cart-abandonment');
        await stack.env.sleep('30m');
        await track('cart-2', 'Order Completed', { order_id: 'o-2', total: 89.5, products: [shoe] }, { messageId: 'order-cart-2' });

        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'converted', sends: 0 });
        const stored = await stack.runtime.store.getFlowEntry(entry.workflowId);
        expect(stored).toMatchObject({ outcome: 'converted', conversionMessageId: 'order-cart-2' });

        await stack.env.sleep('2d');
        expect(mailsTo('cart-2', 'cart-abandonment')).toHaveLength(0);
        // the purchase itself started post-purchase, whose transactional thank-you did go out
        expect(mailsTo('cart-2', 'post-purchase').map((m) => m.subject)).toContain('Thank you for your order o-2');
      });

      it('a cart emptied during the wait: no reminder over an empty cart, the run takes its exit and says why', async () => {
        await identify('cart-4');
        await track('cart-4', 'Product Added', shoe);
        const entry = await entryOf('cart-4', 'cart-abandonment');
        // Not a purchase (no conversion): the item is taken out again, so the flow's reason (requires) is gone.
        await track('cart-4', 'Product Removed', { product_id: shoe.product_id });
        await stack.env.sleep('1h');
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'exited', sends: 0, reason: expect.stringContaining("the flow's reason no longer holds") });
        expect(mailsTo('cart-4')).toHaveLength(0);
        const logged = await waitUntil('the exit in the decision log', async () => (await stack.runtime.store.decisionsOf('cart-4')).find((d) => d.outcome === 'exited'));
        expect(logged.reason).toContain('send ');
      });

      it('the same event sent twice with one messageId gives one run and one email', async () => {
        await identify('cart-3');
        const body = { userId: 'cart-3', event: 'Product Added', properties: shoe, messageId: 'dup-1' };
        expect((await post(`${stack.url}/v1/track`, body, WRITE_KEY)).status).toBe(200);
        expect((await post(`${stack.url}/v1/track`, body, WRITE_KEY)).status).toBe(200);
        const entry = await entryOf('cart-3', 'cart-abandonment');
        await stack.env.sleep('1h');
        await waitForMails('cart-3', 1);
        await stack.env.sleep('1h');
        expect(mailsTo('cart-3')).toHaveLength(1);
        expect((await stack.runtime.store.flowEntriesOf('cart-3')).map((e) => e.workflowId)).toEqual([entry.workflowId]);
        expect(await stack.runtime.store.eventsOf('cart-3', { names: ['Product Added'] })).toHaveLength(1);
      });
    });

    describe('arbitration between browse and cart', () => {
      async function viewThree(userId: string): Promise<void> {
        for (let i = 0; i < 3; i++) await track(userId, 'Product Viewed', { ...shoe, product_id: `sku-${i}`, name: `Shoe ${i}` });
      }

      it('browse active, then a cart trigger: browse is preempted and cart runs', async () => {
        await identify('arb-1');
        await viewThree('arb-1');
        const browse = await entryOf('arb-1', 'browse-abandonment');
        await track('arb-1', 'Product Added', shoe);
        const cart = await entryOf('arb-1', 'cart-abandonment');

        await expect(runResult(browse.workflowId)).resolves.toMatchObject({ outcome: 'preempted', sends: 0 });
        const res = await adminFetch(`${stack.url}/api/customers/arb-1/decisions`);
        const { decisions } = (await res.json()) as { decisions: Array<{ flowId: string; outcome: string; reason: string }> };
        expect(decisions.map((d) => `${d.flowId}:${d.outcome}`)).toEqual(
          expect.arrayContaining(['browse-abandonment:started', 'browse-abandonment:preempted', 'cart-abandonment:started']),
        );
        expect(decisions.find((d) => d.outcome === 'preempted')!.reason).toContain('preempted by cart-abandonment');

        await stack.env.sleep('1h');
        const [mail] = await waitForMails('arb-1', 1);
        expect(String(mail!.headers.get('x-microflows-flow'))).toBe('cart-abandonment@4');
        expect(cart.workflowId).toBe('flow/cart-abandonment/arb-1/1');
      });

      it('cart active, then a browse trigger: browse is suppressed, and the query shows why', async () => {
        await identify('arb-2');
        await track('arb-2', 'Product Added', shoe);
        await entryOf('arb-2', 'cart-abandonment');
        // the cart is emptied (browse's entry condition holds again) but the cart run is still active
        await track('arb-2', 'Product Removed', { product_id: shoe.product_id });
        await viewThree('arb-2');
        const decisions = await waitUntil('browse suppressed', async () => {
          const all = await stack.env.client.workflow.getHandle(customerWorkflowId('arb-2')).query(decisionsQuery);
          return all.some((d) => d.flowId === 'browse-abandonment') ? all : undefined;
        });
        const suppressed = decisions.find((d) => d.flowId === 'browse-abandonment')!;
        expect(suppressed.outcome).toBe('suppressed');
        expect(suppressed.reason).toContain('cart-abandonment');
        expect(suppressed.reason).toContain('higher');
        expect((await stack.runtime.store.flowEntriesOf('arb-2')).map((e) => e.flowId)).toEqual(['cart-abandonment']);
        const stored = await stack.runtime.store.decisionsOf('arb-2');
        expect(stored.map((d) => `${d.flowId}:${d.outcome}`)).toEqual(['cart-abandonment:started', 'browse-abandonment:suppressed']);
      });
    });

    describe('browse abandonment', () => {
      it('three views in one category start it; the email names the category 2h later', async () => {
        await identify('browse-1');
        await track('browse-1', 'Product Viewed', { ...shoe, category: 'Hats' });
        await track('browse-1', 'Product Viewed', { ...shoe, product_id: 'a' });
        await track('browse-1', 'Product Viewed', { ...shoe, product_id: 'b' });
        await stack.runtime.dispatcher.idle();
        expect(await stack.runtime.store.flowEntriesOf('browse-1')).toHaveLength(0); // only 2 in Shoes
        await track('browse-1', 'Product Viewed', { ...shoe, product_id: 'c', name: 'Canvas Runner' });
        const entry = await entryOf('browse-1', 'browse-abandonment');
        await stack.env.sleep('2h');
        const [mail] = await waitForMails('browse-1', 1);
        expect(mail!.subject).toBe('More Shoes picked for you');
        expect(mail!.html).toContain('Canvas Runner');
        expectOffset(mail!, entry.enteredAt, 2 * HOUR);
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
      });

      it('views made before login count: two anonymous views, identify, one more view starts it', async () => {
        const anonymousId = 'anon-browse-2';
        for (const productId of ['h1', 'h2']) {
          const res = await post(`${stack.url}/v1/track`, { anonymousId, event: 'Product Viewed', properties: { ...shoe, product_id: productId, category: 'Hats' } }, WRITE_KEY);
          expect(res.status).toBe(200);
        }
        await stack.runtime.dispatcher.idle();
        const login = await post(
          `${stack.url}/v1/identify`,
          { userId: 'browse-2', anonymousId, traits: { email: 'browse-2@example.com', first_name: 'Ana', consent: { email_marketing: true } } },
          WRITE_KEY,
        );
        expect(login.status).toBe(200);
        expect((await stack.runtime.store.eventsOf('browse-2', { names: ['Product Viewed'] })).map((e) => e.anonymousId)).toEqual([anonymousId, anonymousId]);

        await track('browse-2', 'Product Viewed', { ...shoe, product_id: 'h3', name: 'Felt Fedora', category: 'Hats' });
        const entry = await entryOf('browse-2', 'browse-abandonment');
        await stack.env.sleep('2h');
        const [mail] = await waitForMails('browse-2', 1);
        expect(mail!.subject).toBe('More Hats picked for you');
        expect((await stack.runtime.store.getProfile('browse-2'))?.computed.product_views).toBe(3);
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
      });
    });

    describe('post-purchase', () => {
      it('thank-you at once, review request after 7 days, upsell after the review wait times out', async () => {
        await identify('pp-1');
        await track('pp-1', 'Order Completed', { order_id: 'o-77', total: 120, products: [{ ...shoe, name: 'Desk Lamp', category: 'Home' }] });
        const entry = await entryOf('pp-1', 'post-purchase');
        const [thanks] = await waitForMails('pp-1', 1);
        expect(thanks!.subject).toBe('Thank you for your order o-77');
        expect(thanks!.text).toContain('$120.00');
        // Transactional: no unsubscribe header or link.
        expect(thanks!.rawHeaders.has('list-unsubscribe')).toBe(false);
        expect(thanks!.html).not.toContain('/u/');
        expectOffset(thanks!, entry.enteredAt, 0);

        await stack.env.sleep('7d');
        const two = await waitForMails('pp-1', 2);
        expect(two[1]!.subject).toBe('How do you like your Desk Lamp?');
        expectOffset(two[1]!, entry.enteredAt, 7 * DAY);

        await stack.env.sleep('7d');
        const three = await waitForMails('pp-1', 3);
        expect(three[2]!.subject).toBe('Goes well with your Desk Lamp');
        // The catalog relates sku-1 to accessories: the upsell shows them.
        expect(three[2]!.text).toContain('Customers who bought Desk Lamp also chose these:');
        expect(three[2]!.text).toContain('Merino Trail Socks');
        expectOffset(three[2]!, entry.enteredAt, 14 * DAY);
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed', sends: 3 });
        expect((await stack.runtime.store.getProfile('pp-1'))?.tags).toEqual(['Post-Purchase Done']);
      });

      it('without marketing consent only the transactional thank-you goes out', async () => {
        await identify('pp-3', { consent: { email_marketing: false } });
        await track('pp-3', 'Order Completed', { order_id: 'o-79', total: 15, products: [shoe] });
        const entry = await entryOf('pp-3', 'post-purchase');
        await waitForMails('pp-3', 1);
        await stack.env.sleep('14d');
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
        expect(mailsTo('pp-3').map((m) => m.subject)).toEqual(['Thank you for your order o-79']);
      });

      it('a review during the wait takes the on_event branch at once', async () => {
        await identify('pp-2');
        await track('pp-2', 'Order Completed', { order_id: 'o-78', total: 20, products: [shoe] });
        const entry = await entryOf('pp-2', 'post-purchase');
        await stack.env.sleep('7d');
        await waitForMails('pp-2', 2);
        await track('pp-2', 'Product Reviewed', { product_id: 'sku-1', rating: 5 });
        const three = await waitForMails('pp-2', 3);
        expect(three[2]!.subject).toBe('Goes well with your Trail Shoe');
        expect(offsetFromEntry(three[2]!, entry.enteredAt)).toBeLessThan(7 * DAY + HOUR);
        await expect(runResult(entry.workflowId)).resolves.toMatchObject({ outcome: 'completed' });
        expect((await stack.runtime.store.getProfile('pp-2'))?.tags).toEqual(['Post-Purchase Done', 'Reviewer']);
      });
    });

    describe('winback', () => {
      it('a buyer whose last order turned 60 days old an hour ago enters lapsed-customers, which starts winback: both emails', async () => {
        await identify('wb-1');
        // (Had it turned 60 days old more than a day ago, the entry would be history, which starts no flow.)
        const longAgo = new Date(Date.now() - 60 * DAY - HOUR).toISOString();
        await track('wb-1', 'Order Completed', { order_id: 'o-old', total: 50 }, { timestamp: longAgo });
        const entry = await entryOf('wb-1', 'winback');
        expect((await stack.runtime.store.segmentsOf('wb-1')).map((m) => m.segmentId)).toContain('lapsed-customers');
        // a backfilled purchase is history: it starts no post-purchase run
        expect((await stack.runtime.store.flowEntriesOf('wb-1')).map((e) => e.flowId)).toEqual(['winback']);
        const [first] = await waitForMails('wb-1', 1);
        expect(first!.subject).toBe('We miss you, Ana');

        await stack.env.sleep('7d');
        const two = await waitForMails('wb-1', 2);
        expect(two[1]!.subject).toBe('10% off your next order');
        expectOffset(two[1]!, entry.enteredAt, 7 * DAY);

        // a segment sweep does not start it again: the customer is still in the segment, which entered once
        await stack.env.client.workflow.execute('segmentSweepWorkflow', { taskQueue: stack.runtime.config.taskQueue, workflowId: 'segment-sweep-test-wb', args: [{}] });
        await stack.env.sleep('1h');
        expect((await stack.runtime.store.flowEntriesOf('wb-1')).filter((e) => e.flowId === 'winback')).toHaveLength(1);
      });
    });
  });
}
