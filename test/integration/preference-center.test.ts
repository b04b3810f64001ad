// The preference center on the real path (time-skipping server, HTTP ingest, SMTP socket, real Chromium; SQLite and PostgreSQL): a customer
// opens the "Manage preferences" link of the cart reminder they got, unticks "Cart reminders" with JavaScript off,
// and saves; the cart flow's next send is then skipped, the decision log saying the topic is off, while winback for
// the same customer still sends; the change is in the consent trail. The page carries the strict CSP, labels every
// checkbox, shows a visible focus ring and readable contrast; a forged or expired link changes nothing; "leave
// everything" withdraws email_marketing and the page can grant it again.
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { parseBrand } from '../../core/brand';
import { preferencesUrl, signPreferencesToken } from '../../core/tracking';
import { launchChromium } from '../support/browser';
import { post, waitUntil } from '../support/http';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';
import type { ReceivedMail } from '../support/smtp-sink';

const SECRET = 'preference-center-secret';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const BRAND = parseBrand(fs.readFileSync(path.join(PROJECT_ROOT, 'brand.yaml'), 'utf8'), 'brand.yaml');

/** The stack of the database suite running (they run one after the other). */
let stack: TimeSkippingStack;
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function send(kind: 'identify' | 'track', body: Record<string, unknown>): Promise<void> {
  expect((await post(`${stack.url}/v1/${kind}`, body, WRITE_KEY)).status).toBe(200);
  await stack.runtime.dispatcher.idle();
}

function mailsTo(email: string, flowId: string): ReceivedMail[] {
  return stack.smtp.messages.filter((m) => m.to.includes(email) && String(m.headers.get('x-microflows-flow')).startsWith(`${flowId}@`));
}

function waitForMail(email: string, flowId: string, count = 1): Promise<ReceivedMail[]> {
  return waitUntil(`${count} ${flowId} email(s) to ${email}`, async () => {
    const mails = mailsTo(email, flowId);
    return mails.length >= count ? mails : undefined;
  });
}

/** The preference link of an email, as its HTML gives it. */
function preferenceLink(mail: ReceivedMail): string {
  const link = new RegExp(`href="(${stack.url}/preferences/[A-Za-z0-9_-]+)"`).exec(mail.html)?.[1];
  expect(link).toBeDefined();
  return link!;
}

async function consentOf(customerId: string) {
  return (await stack.runtime.store.getProfile(customerId))?.consent ?? {};
}

/** WCAG 2 contrast ratio of two `rgb(r, g, b)` colours, from the definition (relative luminance of sRGB). */
function contrast(foreground: string, background: string): number {
  const luminance = (css: string) => {
    const [r, g, b] = (css.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
  };
  const [hi, lo] = [luminance(foreground), luminance(background)].sort((a, b) => b - a);
  return (hi! + 0.05) / (lo! + 0.05);
}

for (const database of stackDatabases('preference-center')) describeOn(database, `the preference center on ${database}`, () => {
  const CUSTOMER = `prefs-${database}-${process.pid}`;
  const EMAIL = `${CUSTOMER}@example.com`;
  let cartReminder: ReceivedMail;
  let link: string;

  beforeAll(async () => {
    stack = await startTimeSkippingStack({ MICROFLOWS_SIGNING_SECRET: SECRET }, database);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('is linked from the footer of every marketing email, beside the unsubscribe link and the postal address', async () => {
    await send('identify', { userId: CUSTOMER, traits: { email: EMAIL, first_name: 'Ana', consent: { email_marketing: true } } });
    // A purchase 60 days ago less 22 hours: the customer lapses (lapsed-customers, winback) 22 hours from now.
    await send('track', { userId: CUSTOMER, event: 'Order Completed', properties: { order_id: 'o-old', total: 50 }, timestamp: new Date(Date.now() - 60 * DAY + 22 * HOUR).toISOString() });
    await send('track', { userId: CUSTOMER, event: 'Product Added', properties: { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, quantity: 1 } });
    await stack.env.sleep('1h');
    cartReminder = (await waitForMail(EMAIL, 'cart-abandonment'))[0]!;
    link = preferenceLink(cartReminder);
    expect(cartReminder.html).toContain('Manage preferences');
    expect(cartReminder.html).toMatch(new RegExp(`href="${stack.url}/u/[A-Za-z0-9_-]+"`));
    expect(cartReminder.text).toContain(BRAND.postalAddress);
    expect(cartReminder.text).toContain(`Manage preferences (${link})`);
  });

  it('in Chromium with JavaScript off: unticking "Cart reminders" stops the cart flow\'s next send, not winback', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      const response = await page.goto(link);
      expect(response!.status()).toBe(200);
      // The strict CSP: nothing may run, load or frame it; only the form may post, to this page.
      const csp = (await response!.allHeaders())['content-security-policy'];
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("form-action 'self'");
      expect(csp).not.toMatch(/script-src(?!-attr 'none')[^;]*'(unsafe-inline|self)'/);
      expect(await page.locator('script').count()).toBe(0);

      const cart = page.getByLabel(BRAND.topics['cart-reminders']!.label, { exact: true });
      const winback = page.getByLabel(BRAND.topics['winback-offers']!.label, { exact: true });
      expect(await cart.isChecked()).toBe(true);
      expect(await winback.isChecked()).toBe(true);
      await cart.uncheck();
      await page.getByRole('button', { name: 'Save preferences' }).click();
      await expect(page.getByRole('status').textContent()).resolves.toBe('Your preferences are saved.');
      expect(await page.getByLabel(BRAND.topics['cart-reminders']!.label, { exact: true }).isChecked()).toBe(false);
      expect(await page.getByLabel(BRAND.topics['winback-offers']!.label, { exact: true }).isChecked()).toBe(true);
    } finally {
      await context.close();
    }
    expect((await consentOf(CUSTOMER))['topic:cart-reminders']).toMatchObject({ granted: false, source: 'preference_center' });

    // The cart flow's second send (23 h after the first) is skipped, and says why.
    await stack.env.sleep('23h');
    const decisions = await waitUntil('the skipped cart send', async () => {
      const all = await stack.runtime.store.decisionsOf(CUSTOMER);
      return all.some((d) => d.outcome === 'skipped' && d.flowId === 'cart-abandonment') ? all : undefined;
    });
    expect(decisions.filter((d) => d.outcome === 'skipped' && d.flowId === 'cart-abandonment').map((d) => d.reason)).toEqual([
      expect.stringMatching(/^send steps\[\d+\](\.\w+\[\d+\])* \(cart-(reviews|discount)\) skipped: customer turned off topic cart-reminders$/),
    ]);
    expect(mailsTo(EMAIL, 'cart-abandonment')).toHaveLength(1);

    // The lapse came 22 h after the start: the segment sweep finds it, and winback, another topic, still sends.
    await stack.env.client.workflow.execute('segmentSweepWorkflow', { taskQueue: stack.runtime.config.taskQueue, workflowId: `prefs-segment-sweep-${database}-${process.pid}`, args: [{}] });
    await stack.runtime.dispatcher.idle();
    const [winbackMail] = await waitForMail(EMAIL, 'winback');
    expect(winbackMail!.subject).toBe('We miss you, Ana');

    // The consent trail has the change, with its source.
    const trail = await stack.runtime.store.consentTrail(CUSTOMER);
    expect(trail).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'topic:cart-reminders', granted: false, source: 'preference_center' })]));
  });

  it('labels every checkbox, groups them in a fieldset with a legend, shows a focus ring and reads at 4.5:1 or more', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(link);
      expect(await page.getAttribute('html', 'lang')).toBe('en');
      expect(await page.title()).toBe('Your email preferences');
      const boxes = await page.$$eval('input[type=checkbox]', (inputs) =>
        inputs.map((input) => ({ id: input.id, labels: [...((input as unknown as { labels: Array<{ textContent: string }> }).labels ?? [])].map((l) => l.textContent.trim()), fieldset: input.closest('fieldset')?.querySelector('legend')?.textContent ?? null })),
      );
      // One checkbox per topic of the loaded flows, each with its brand label.
      expect(boxes.map((b) => b.labels)).toEqual(
        Object.values(BRAND.topics)
          .map((t) => [t.label])
          .sort((a, b) => a[0]!.localeCompare(b[0]!)),
      );
      for (const box of boxes) expect(box.fieldset).toBe('Send me emails about');

      // Keyboard focus is visible.
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const el = (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement;
        const style = (globalThis as unknown as { getComputedStyle(e: unknown): { outlineStyle: string; outlineWidth: string } }).getComputedStyle(el);
        return { tag: (el as { tagName: string }).tagName, outline: style.outlineStyle, width: style.outlineWidth };
      });
      expect(focused).toEqual({ tag: 'INPUT', outline: 'solid', width: '3px' });

      // Every piece of text against what is behind it.
      const colours = await page.$$eval('h1, h2, p, label, legend, button', (elements) =>
        elements.map((el) => {
          const view = globalThis as unknown as { getComputedStyle(e: unknown): { color: string; backgroundColor: string } };
          // The first opaque background from the element up; the page's white when none is set.
          type Node = { parentElement: Node | null };
          let background = 'rgba(0, 0, 0, 0)';
          for (let at: Node | null = el as unknown as Node; at && /rgba\(0, 0, 0, 0\)|transparent/.test(background); at = at.parentElement) background = view.getComputedStyle(at).backgroundColor;
          if (/rgba\(0, 0, 0, 0\)|transparent/.test(background)) background = 'rgb(255, 255, 255)';
          return { text: (el as { textContent: string }).textContent.trim().slice(0, 40), color: view.getComputedStyle(el).color, background };
        }),
      );
      expect(colours.length).toBeGreaterThan(5);
      for (const { text, color, background } of colours) expect({ text, ratio: contrast(color, background) >= 4.5 }).toEqual({ text, ratio: true });
    } finally {
      await context.close();
    }
  });

  it('a forged, altered or expired link gets a 4xx page and changes nothing', async () => {
    const before = await consentOf(CUSTOMER);
    const token = link.slice(link.lastIndexOf('/') + 1);
    const altered = `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
    const forged = signPreferencesToken('another-secret', { customerId: CUSTOMER, deliveryKey: 'd', flowId: 'cart-abandonment' }, Date.now() + DAY);
    const expired = preferencesUrl(stack.url, SECRET, { customerId: CUSTOMER, deliveryKey: 'd', flowId: 'cart-abandonment' }, Date.now() - 1000);
    const cases: Array<[string, number, string]> = [
      [`${stack.url}/preferences/${altered}`, 400, 'This preferences link is not valid'],
      [`${stack.url}/preferences/${forged}`, 400, 'This preferences link is not valid'],
      [expired, 410, 'This preferences link has expired'],
    ];
    for (const [url, status, title] of cases) {
      const shown = await fetch(url);
      expect({ url, status: shown.status }).toEqual({ url, status });
      expect(await shown.text()).toContain(title);
      const posted = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'action=leave' });
      expect({ url, status: posted.status }).toEqual({ url, status });
      expect(posted.headers.get('content-security-policy')).toContain("default-src 'none'");
    }
    // An unsubscribe token is not a preferences token.
    const unsubscribeToken = /\/u\/([A-Za-z0-9_-]+)/.exec(cartReminder.html)![1]!;
    expect((await fetch(`${stack.url}/preferences/${unsubscribeToken}`)).status).toBe(400);
    expect(await consentOf(CUSTOMER)).toEqual(before);
  });

  it('"leave everything" withdraws email_marketing; ticking "email me again" grants it back, each in the trail', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page: Page = await context.newPage();
      await page.goto(link);
      await page.getByRole('button', { name: 'Unsubscribe from all marketing emails' }).click();
      await expect(page.getByRole('status').textContent()).resolves.toBe('You are unsubscribed from all our marketing emails.');
      expect((await consentOf(CUSTOMER)).email_marketing).toMatchObject({ granted: false, source: 'preference_center' });

      await page.getByLabel('Email me again about the topics ticked above').check();
      await page.getByRole('button', { name: 'Save preferences' }).click();
      await expect(page.getByRole('status').textContent()).resolves.toBe('Your preferences are saved.');
      expect(await page.getByLabel('Email me again about the topics ticked above').count()).toBe(0);
    } finally {
      await context.close();
    }
    const consent = await consentOf(CUSTOMER);
    expect(consent.email_marketing).toMatchObject({ granted: true, source: 'preference_center' });
    // The topic turned off earlier stays off.
    expect(consent['topic:cart-reminders']).toMatchObject({ granted: false });
    const trail = (await stack.runtime.store.consentTrail(CUSTOMER)).filter((c) => c.kind === 'email_marketing' && c.source === 'preference_center');
    expect(trail.map((c) => c.granted)).toEqual([false, true]);
  });
});
