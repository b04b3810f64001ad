// Hostile URLs in data, checked in real Chromium: a customer whose profile and events carry javascript:, data: and
// off-domain URLs gets emails (the outbox HTML, as sent through the real flow and worker) and admin previews in
// which no link goes anywhere but the shop (through the click redirect in the email), no image loads a data: or
// javascript: URL, and clicking every link runs no script.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { adminFetch, adminHeaders, post, waitUntil } from '../support/http';
import { startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';

const CUSTOMER = `victim-${process.pid}`;
const EMAIL = `${CUSTOMER}@example.com`;
const HOSTILE = {
  script: 'javascript:alert(document.domain)',
  dataPage: 'data:text/html,<script>alert(1)</script>',
  offDomain: 'https://evil.example/x',
};
const products = [
  { product_id: 'p-js', name: 'Script Shoe', price: 10, quantity: 1, url: HOSTILE.script, image_url: 'javascript:alert(2)' },
  { product_id: 'p-data', name: 'Data Shoe', price: 20, quantity: 1, url: HOSTILE.dataPage, image_url: 'data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)"/>' },
  { product_id: 'p-evil', name: 'Evil Shoe', price: 30, quantity: 1, url: HOSTILE.offDomain, image_url: 'https://shop.example/img/evil.png' },
  { product_id: 'p-ok', name: 'Real Shoe', price: 40, quantity: 1, url: 'https://shop.example/p/real', image_url: 'https://shop.example/img/real.png' },
];

let stack: TimeSkippingStack;
let browser: Browser;
let context: BrowserContext;
const dialogs: string[] = [];
/** Every page (top-level) navigation any tab of the context made. */
const navigations: string[] = [];

const SUPPORT_MAILTO = 'mailto:help@shop.example';

function allowedHost(url: string): boolean {
  const { protocol, host, hostname } = new URL(url);
  if (url === 'about:blank') return true;
  // The footer's support address (brand.yaml), the one address the shipped emails link to.
  if (protocol === 'mailto:') return url === SUPPORT_MAILTO;
  if (protocol !== 'http:' && protocol !== 'https:') return false;
  return host === new URL(stack.url).host || hostname === 'shop.example' || hostname.endsWith('.shop.example');
}

beforeAll(async () => {
  stack = await startTimeSkippingStack({ MICROFLOWS_SIGNING_SECRET: 'links-browser-secret', SMTP_URL: '' });
  expect((await post(`${stack.url}/v1/identify`, { userId: CUSTOMER, traits: { email: EMAIL, first_name: 'Vic', cart_url: HOSTILE.script, consent: { email_marketing: true } } }, WRITE_KEY)).status).toBe(200);
  for (const product of products) expect((await post(`${stack.url}/v1/track`, { userId: CUSTOMER, event: 'Product Added', properties: product }, WRITE_KEY)).status).toBe(200);
  expect((await post(`${stack.url}/v1/track`, { userId: CUSTOMER, event: 'Order Completed', properties: { order_id: 'o-77', total: 100, products } }, WRITE_KEY)).status).toBe(200);
  await stack.runtime.dispatcher.idle();

  browser = await launchChromium();
  // The preview is an admin route: every request of this context carries the admin key.
  context = await browser.newContext({ extraHTTPHeaders: adminHeaders() });
  context.on('request', (request) => {
    if (request.isNavigationRequest()) navigations.push(request.url());
  });
  const watch = (page: Page) => page.on('dialog', (dialog) => void (dialogs.push(dialog.message()), dialog.dismiss()));
  context.on('page', watch);
  // The shop is not on this machine's network: its pages are answered here, so a navigation to it completes.
  await context.route('**/*', (route) =>
    route.request().url().startsWith(stack.url) ? route.continue() : route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>shop</title><p>shop</p>' }),
  );
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

/** Every link and image as Chromium resolved it, then every link clicked: where each click went, and no dialog. */
async function clickEverything(page: Page): Promise<{ hrefs: string[]; images: string[]; landed: string[] }> {
  const hrefs = await page.$$eval('a[href], area[href]', (links) => links.map((a) => (a as unknown as { href: string }).href));
  const images = await page.$$eval('img[src]', (imgs) => imgs.map((img) => (img as unknown as { src: string }).src));
  // Checked before any click, so a live link to where it must not go fails here, naming it.
  for (const href of hrefs) expect({ href, allowed: allowedHost(href) }).toEqual({ href, allowed: true });
  for (const src of images) expect(src).toMatch(/^https?:\/\//);
  const landed: string[] = [];
  const anchors = await page.locator('a').all();
  expect(anchors.length).toBeGreaterThan(0);
  for (const anchor of anchors) {
    const href = await anchor.evaluate((a) => (a as unknown as { getAttribute(name: string): string | null }).getAttribute('href'));
    const target = await anchor.getAttribute('target');
    // The support address opens the mail program, not a page: checked above, not clicked.
    if (href === SUPPORT_MAILTO) continue;
    if (href !== null && target === '_blank' && !href.startsWith('#')) {
      // Where the new tab lands: its first navigation answer that is not a redirect (the click redirect's 302).
      const landing = context.waitForEvent('response', (r) => r.request().isNavigationRequest() && (r.status() < 300 || r.status() >= 400));
      const [popup] = await Promise.all([context.waitForEvent('page'), anchor.click()]);
      landed.push((await landing).url());
      await popup.close();
    } else {
      // No address (left unlinked) or an in-page #fragment: the click must go nowhere and run nothing.
      await anchor.click();
      landed.push(page.url());
    }
  }
  return { hrefs, images, landed };
}

function expectSafe(shown: { hrefs: string[]; images: string[]; landed: string[] }): void {
  for (const url of shown.landed) expect({ url, allowed: allowedHost(url) }).toEqual({ url, allowed: true });
  for (const url of navigations) expect({ url, allowed: allowedHost(url) }).toEqual({ url, allowed: true });
  expect(dialogs).toEqual([]);
}

test('attack: hostile product URLs in the order-thank-you email as sent: every link goes through the click redirect to the shop, none runs script', async () => {
  const [sent] = await waitUntil('the thank-you in the outbox', async () => {
    const { messages } = (await (await adminFetch(`${stack.url}/api/outbox?to=${encodeURIComponent(EMAIL)}`)).json()) as { messages: Array<{ subject: string; html: string }> };
    const thanks = messages.filter((m) => m.subject.startsWith('Thank you for your order'));
    return thanks.length > 0 ? thanks : undefined;
  });
  const page = await context.newPage();
  await page.setContent(sent!.html, { waitUntil: 'domcontentloaded' });
  const text = await page.innerText('body');
  for (const product of products) expect(text).toContain(product.name);
  const shown = await clickEverything(page);
  // The one real product's picture and name, and the brand's logo and help centre: tracked links, which land on the
  // shop; the support address is the one other link.
  const web = shown.hrefs.filter((href) => href !== SUPPORT_MAILTO);
  expect(web.length).toBeGreaterThan(0);
  for (const href of web) expect(href.startsWith(`${stack.url}/t/c/`)).toBe(true);
  expect(shown.landed.filter((url) => url.startsWith('https://shop.example/p/real'))).toHaveLength(2);
  expectSafe(shown);
  await page.close();
});

test.each([
  // The real product's picture and name link to it; the hostile ones are shown, unlinked.
  ['order-thank-you', ['Real Shoe', 'Script Shoe', 'Data Shoe', 'Evil Shoe'], 2],
  // The profile's cart_url is a javascript: URL: the shipped cart email links to the shop's own cart page instead.
  ['cart-reminder', ['Still thinking it over, Vic?'], 0],
])('attack: hostile URLs in the profile and events, in the admin preview of %s: no live link off the shop, none runs script', async (template, texts, shopLinks) => {
  const page = await context.newPage();
  const response = await page.goto(`${stack.url}/api/templates/${template}/preview?profile=${CUSTOMER}&format=html`, { waitUntil: 'domcontentloaded' });
  expect(response?.status()).toBe(200);
  const text = await page.innerText('body');
  for (const shown of texts) expect(text).toContain(shown);
  const shown = await clickEverything(page);
  expect(shown.landed.filter((url) => url.startsWith('https://shop.example/p/real'))).toHaveLength(shopLinks);
  expectSafe(shown);
  await page.close();
});
