// Issue 17's acceptance test for the shipped emails: every template of templates/ (found in the folder), rendered by
// the real preview API of a running app for a customer with every field filled and for one with only an address and
// consent, loaded in real headless Chromium at 600 and 375 px wide, in the light and the dark colour scheme. In each
// of those views: no horizontal scroll, every image described, every link to the shop (or the preview's own
// unsubscribe and preference placeholders, or the brand's support address), no serious or critical axe-core finding
// (colour contrast included), and no raw Handlebars in what the reader sees. A failure names the template, customer,
// width and scheme, and for axe the rule, impact and element, so the template's author can fix it. A deliberately
// broken email, served under the preview's own Content-Security-Policy, shows that each check finds its fault.
import fs from 'node:fs';
import path from 'node:path';
import type { AxeResults, ImpactValue } from 'axe-core';
import type { Browser, Page } from 'playwright-core';
import { catalogReader } from '../../activities/catalog';
import { TemplateLibrary } from '../../activities/templates';
import { loadBrandFile } from '../../cli/brand-file';
import { loadFlowFiles } from '../../cli/project-files';
import type { FlowNode } from '../../core/flow-types';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { launchChromium } from '../support/browser';
import { adminFetch, adminHeaders, basicAuth, TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const ROOT = path.resolve(__dirname, '../..');
const TEMPLATES_DIR = path.join(ROOT, 'templates');
/** Every shipped template: a new one is checked without anyone adding it here. */
const TEMPLATES = fs
  .readdirSync(TEMPLATES_DIR)
  .filter((file) => file.endsWith('.mjml'))
  .map((file) => file.slice(0, -'.mjml'.length))
  .sort();
const BRAND = loadBrandFile(path.join(ROOT, 'brand.yaml'));
const SHOP_URL = 'https://shop.example';
const SHOP_HOST = new URL(SHOP_URL).hostname;
/** The links a preview shows where a send has the customer's own unsubscribe and preference center links. */
const PREVIEW_PLACEHOLDERS = ['#unsubscribe-preview', '#preferences-preview'];
/** The click redirect (server/tracking-routes.ts): how a sent email's links reach the shop. */
const TRACKING_CLICK_PATH = '/t/c/';
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BLOCKING_IMPACTS: readonly ImpactValue[] = ['serious', 'critical'];
const RAW_TEMPLATE_TEXT = /\{\{|\}\}|MFHB|MFLK/;
/** A fallback expression that guards a block of products: a recommendation, or a list of the customer's products. */
const PRODUCT_BLOCK = /^#each\b|\brecommend\b|\bprofile\.(cart|last_order_products|last_viewed_product)\b/;

const WRITE_KEY = 'email-quality-key';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.now();

// A leather-goods shop with long product names (the narrow layout must wrap them), images for every product (so the
// alt texts are checked), out-of-stock items and related products, so every product block has something to show.
const CATALOG = [
  { id: 'B1', name: 'Harbour Weekender Holdall in Waxed Canvas and Bridle Leather', category: 'Bags', price: 245, rating: 4.9, reviews: 312, stock: 12, related: ['W1', 'W2', 'C1', 'C2', 'A1'] },
  { id: 'B2', name: 'Quay Leather Tote', category: 'Bags', price: 165, rating: 4.7, reviews: 188, stock: 6 },
  { id: 'B3', name: 'Rolltop Backpack', category: 'Bags', price: 189, rating: 4.95, reviews: 95, stock: 0 },
  { id: 'B4', name: 'Crossbody Satchel with Antique Brass Buckles', category: 'Bags', price: 139, rating: 4.5, reviews: 77, stock: 9 },
  { id: 'B5', name: 'Messenger Bag', category: 'Bags', price: 175, rating: 4.8, reviews: 140, stock: 4 },
  { id: 'B6', name: 'Padded Laptop Sleeve', category: 'Bags', price: 79, rating: 4.4, reviews: 60, stock: 20 },
  { id: 'B7', name: 'Leather Duffle', category: 'Bags', price: 229, rating: 4.6, reviews: 51, stock: 3 },
  { id: 'W1', name: 'Bifold Wallet', category: 'Small Leather Goods', price: 49, rating: 4.8, reviews: 410, stock: 30 },
  { id: 'W2', name: 'Card Holder', category: 'Small Leather Goods', price: 29, rating: 4.6, reviews: 220, stock: 0 },
  { id: 'W3', name: 'Key Fob', category: 'Small Leather Goods', price: 15, rating: 4.3, reviews: 55, stock: 40 },
  { id: 'C1', name: 'Leather Care Balm', category: 'Care', price: 14, rating: 4.7, reviews: 130, stock: 50 },
  { id: 'C2', name: 'Horsehair Brush', category: 'Care', price: 12, rating: 4.5, reviews: 45, stock: 25 },
  { id: 'A1', name: 'Luggage Tag', category: 'Accessories', price: 19, rating: 4.2, reviews: 30, stock: 18 },
  { id: 'A2', name: 'Full-Grain Belt', category: 'Accessories', price: 55, rating: 4.6, reviews: 90, stock: 11 },
].map((p) => ({ ...p, url: `${SHOP_URL}/p/${p.id}`, image: `https://cdn.${SHOP_HOST}/img/${p.id}.jpg` }));

/** A product as events carry it: what the store front knows when the customer acts. */
function product(id: string, quantity = 1) {
  const p = CATALOG.find((c) => c.id === id);
  if (!p) throw new Error(`no product ${id} in this test's CATALOG`);
  return { product_id: p.id, name: p.name, price: p.price, category: p.category, url: p.url, image_url: p.image, quantity };
}

interface Customer {
  id: string;
  label: 'full' | 'bare';
  description: string;
}
const FULL: Customer = { id: 'full-customer', label: 'full', description: 'name, locale, two orders, a cart, browsing' };
const BARE: Customer = { id: 'bare-customer', label: 'bare', description: 'only an email address and consent' };
const CUSTOMERS = [FULL, BARE];

let sequence = 0;
interface TrackCall {
  type: 'track';
  userId: string;
  event: string;
  properties: Record<string, unknown>;
  timestamp: string;
  messageId: string;
}
const identify = (userId: string, traits: Record<string, unknown>, at: number) => ({
  type: 'identify',
  userId,
  traits: { email: `${userId}@example.com`, consent: { email_marketing: true }, ...traits },
  timestamp: new Date(at).toISOString(),
  messageId: `q-${++sequence}`,
});
const track = (userId: string, event: string, properties: Record<string, unknown>, at: number): TrackCall => ({ type: 'track', userId, event, properties, timestamp: new Date(at).toISOString(), messageId: `q-${++sequence}` });
const order = (userId: string, items: Array<ReturnType<typeof product>>, at: number) =>
  track(userId, 'Order Completed', { order_id: `HH-${1000 + sequence}`, total: items.reduce((sum, item) => sum + item.price * item.quantity, 0), currency: 'GBP', products: items }, at);

// One customer rich enough for every template: total spent over 200 (the loyalty blocks), a last order whose first
// product has related products in stock, a cart added after that order, three bags viewed since.
const FULL_EVENTS: TrackCall[] = [
  order(FULL.id, [product('A2')], NOW - 200 * DAY),
  order(FULL.id, [product('B1'), product('C1', 2)], NOW - 70 * DAY),
  track(FULL.id, 'Product Viewed', product('B2'), NOW - 3 * DAY),
  track(FULL.id, 'Product Viewed', product('B4'), NOW - 2 * DAY),
  track(FULL.id, 'Product Viewed', product('B5'), NOW - DAY),
  track(FULL.id, 'Product Added', product('B2'), NOW - 3 * HOUR),
  track(FULL.id, 'Product Added', product('W3', 2), NOW - 3 * HOUR + 1000),
];
const EVENTS = [
  identify(
    FULL.id,
    { first_name: 'Eleanor', last_name: 'Fairweather-Ashdown', locale: 'en-GB', currency: 'GBP', timezone: 'Europe/London', cart_url: `${SHOP_URL}/cart/restore/c-8841` },
    NOW - 400 * DAY,
  ),
  ...FULL_EVENTS,
  identify(BARE.id, {}, NOW - 30 * DAY),
];

const FLOWS = loadFlowFiles(path.join(ROOT, 'flows'), TEMPLATES_DIR).flows;

/** What a send of `template` gets from the shipped flows: the send step's data, and the flow's trigger event name. */
function flowSendOf(template: string): { data: Record<string, unknown>; triggerEvent: string | null } {
  for (const flow of FLOWS) {
    const send = Object.values(flow.nodes).find((node): node is Extract<FlowNode, { kind: 'send' }> => node.kind === 'send' && node.template === template);
    if (send) return { data: send.data, triggerEvent: flow.trigger.kind === 'inactivity' ? null : flow.trigger.event };
  }
  return { data: {}, triggerEvent: null };
}

/**
 * The preview URL as a send would render: the flow's data for both customers; for the full one also the trigger
 * event (their latest of that name, e.g. the order that started post-purchase), when they have one.
 */
function previewPath(template: string, customer: Customer, format: 'html' | 'json'): string {
  const { data, triggerEvent } = flowSendOf(template);
  const query = new URLSearchParams({ profile: customer.id, format });
  if (Object.keys(data).length > 0) query.set('data', JSON.stringify(data));
  const trigger = customer === FULL ? FULL_EVENTS.filter((e) => e.event === triggerEvent).at(-1) : undefined;
  if (trigger) query.set('event', JSON.stringify({ event: trigger.event, properties: trigger.properties, timestamp: trigger.timestamp }));
  return `/api/templates/${template}/preview?${query}`;
}

const [backend] = storeBackends('email-quality-browser');
let store: KyselyStore;
let app: RunningApp;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  expect(TEMPLATES.length).toBeGreaterThan(0);
  store = await backend!.open();
  app = await serveApp({
    store,
    config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, shopUrl: SHOP_URL },
    dispatcher: noDispatch,
    templates: new TemplateLibrary(TEMPLATES_DIR, { shopUrl: SHOP_URL, brand: BRAND }),
    catalog: catalogReader(store),
    brand: BRAND,
    log: () => undefined,
  });
  const catalog = await adminFetch(`${app.url}/api/catalog/products`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CATALOG) });
  expect(catalog.status).toBe(200);
  const batch = await fetch(`${app.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basicAuth(WRITE_KEY) }, body: JSON.stringify({ batch: EVENTS }) });
  expect(batch.status).toBe(200);
  browser = await launchChromium();
  // The preview is an admin route: the page's requests carry the admin key.
  page = await browser.newPage({ extraHTTPHeaders: adminHeaders() });
  // The emails' images and fonts live on the internet, which this test has no business reaching.
  await page.route('**/*', (route) => (route.request().url().startsWith(app.url) ? route.continue() : route.abort()));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await backend?.dispose();
});

/** The preview page currently in the tab; the four views of one template and customer share one load. */
let shownPath: string | null = null;

/**
 * Loads the preview exactly as the server answers it, Content-Security-Policy (script-src 'none') included, and
 * puts axe-core in the page through the DevTools protocol (page.evaluate), which that policy does not govern, as it
 * does govern a <script> tag (addScriptTag). axe-core itself needs no eval, so it runs under the page's own policy.
 */
async function show(previewPath: string): Promise<void> {
  if (shownPath === previewPath) return;
  shownPath = null;
  const response = await page.goto(`${app.url}${previewPath}`, { waitUntil: 'load' });
  expect(response?.status()).toBe(200);
  await page.evaluate(AXE_SOURCE);
  shownPath = previewPath;
}

interface PageFacts {
  scrollWidth: number;
  innerWidth: number;
  text: string;
  images: Array<{ html: string; alt: string | null; width: string | null; height: string | null; decorative: boolean }>;
  links: Array<{ href: string; resolved: string; text: string }>;
}

/** What the checks read from the page, in one round trip. Typed loosely: the project compiles without the DOM lib. */
function readPage(): Promise<PageFacts> {
  return page.evaluate(() => {
    interface El {
      getAttribute(name: string): string | null;
      outerHTML: string;
      textContent: string | null;
      href: string;
    }
    const view = globalThis as unknown as { innerWidth: number; document: { documentElement: { scrollWidth: number }; body: { innerText: string }; querySelectorAll(selector: string): ArrayLike<El> } };
    const all = (selector: string) => Array.from(view.document.querySelectorAll(selector));
    return {
      scrollWidth: view.document.documentElement.scrollWidth,
      innerWidth: view.innerWidth,
      text: view.document.body.innerText,
      images: all('img').map((img) => ({
        html: img.outerHTML.slice(0, 160),
        alt: img.getAttribute('alt'),
        width: img.getAttribute('width'),
        height: img.getAttribute('height'),
        decorative: ['presentation', 'none'].includes(img.getAttribute('role') ?? '') || img.getAttribute('aria-hidden') === 'true',
      })),
      links: all('a[href], area[href]').map((a) => ({ href: a.getAttribute('href') ?? '', resolved: a.href, text: (a.textContent ?? '').trim().slice(0, 40) })),
    };
  });
}

interface AxeFinding {
  id: string;
  impact: ImpactValue | undefined;
  help: string;
  nodes: Array<{ target: string; message: string }>;
}

/** axe-core's violations on the page as it is now (viewport and colour scheme applied). */
function runAxe(): Promise<AxeFinding[]> {
  return page.evaluate(async () => {
    const { axe } = globalThis as unknown as { axe: { run(options: object): Promise<AxeResults> } };
    const results = await axe.run({ resultTypes: ['violations'] });
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.map((node) => ({
        target: node.target.map(String).join(' '),
        message: [...node.any, ...node.all, ...node.none].map((check) => check.message).join('; '),
      })),
    }));
  });
}

/** Where a link may go: the shop (or a subdomain) over https, this app's click redirect, a preview placeholder, the support address. */
function linkProblem(link: PageFacts['links'][number]): string | null {
  if (PREVIEW_PLACEHOLDERS.includes(link.href)) return null;
  if (link.href.toLowerCase().startsWith('mailto:')) {
    const written = link.href.slice('mailto:'.length).split('?')[0] ?? '';
    let address: string;
    try {
      address = decodeURIComponent(written).toLowerCase();
    } catch {
      return `a mailto: link with a malformed address "${written}"`;
    }
    const support = BRAND?.support.email?.toLowerCase() ?? null;
    return support && address === support ? null : `a mailto: link to "${address}", which is not brand.yaml's support.email (${support ?? 'none set'})`;
  }
  let url: URL;
  try {
    url = new URL(link.resolved);
  } catch {
    return `an href Chromium cannot resolve`;
  }
  if (url.protocol === 'https:' && (url.hostname === SHOP_HOST || url.hostname.endsWith(`.${SHOP_HOST}`))) return null;
  if (url.origin === new URL(app.url).origin && url.pathname.startsWith(TRACKING_CLICK_PATH)) return null;
  return `goes to ${link.resolved}, which is neither the shop (https://${SHOP_HOST} or a subdomain), the click redirect, nor a preview placeholder (${PREVIEW_PLACEHOLDERS.join(', ')})`;
}

/** An image is described by its alt; alt="" only for a 1×1 tracking pixel or a decorative spacer marked as such. */
function imageProblem(image: PageFacts['images'][number]): string | null {
  const onePixel = image.width === '1' && image.height === '1';
  if (image.alt === null) return 'has no alt attribute (write what it shows, or alt="" on a 1x1 pixel or a role="presentation" spacer)';
  if (onePixel && image.alt !== '') return `is a 1x1 pixel with alt="${image.alt}": a tracking pixel takes alt=""`;
  if (image.alt.trim() === '' && !onePixel && !image.decorative) return 'has an empty alt but is neither a 1x1 pixel nor marked decorative (role="presentation"): say what it shows';
  return null;
}

const VIEWS = [600, 375].flatMap((width) => (['light', 'dark'] as const).map((scheme) => ({ width, scheme })));

type View = (typeof VIEWS)[number];

/** Every problem of the shown page in one view, each prefixed with `where` (template, customer, width, scheme). */
async function problemsInView({ width, scheme }: View, where: string): Promise<string[]> {
  await page.setViewportSize({ width, height: 900 });
  await page.emulateMedia({ colorScheme: scheme });
  const facts = await readPage();
  const problems: string[] = [];
  if (facts.scrollWidth > facts.innerWidth) problems.push(`${where}: scrolls sideways: the page is ${facts.scrollWidth}px wide in a ${facts.innerWidth}px window`);
  for (const image of facts.images) {
    const problem = imageProblem(image);
    if (problem) problems.push(`${where}: image ${image.html} ${problem}`);
  }
  for (const link of facts.links) {
    const problem = linkProblem(link);
    if (problem) problems.push(`${where}: link "${link.text}" (href="${link.href}") ${problem}`);
  }
  const rawAt = facts.text.search(RAW_TEMPLATE_TEXT);
  if (rawAt >= 0) problems.push(`${where}: raw template text on the page: …${facts.text.slice(Math.max(0, rawAt - 40), rawAt + 40)}…`);
  for (const finding of await runAxe()) {
    if (!BLOCKING_IMPACTS.includes(finding.impact ?? null)) continue;
    for (const node of finding.nodes) problems.push(`${where}: axe ${finding.id} (${finding.impact}) at ${node.target}: ${node.message || finding.help}`);
  }
  return problems;
}

/**
 * An email with one of each fault the checks look for, on this app's origin and under the preview's own
 * Content-Security-Policy, to show that each check finds its fault (and passes what is allowed). Its text reads well
 * in light (7:1) and not in dark (1.2:1), so a fault of the dark scheme alone must be found in the dark view alone.
 */
const BROKEN_EMAIL = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A broken email</title>
<style>
  .copy { color: #595959; background: #ffffff; }
  @media (prefers-color-scheme: dark) { .copy { color: #3a3a3a !important; background: #2b2b2b !important; } }
</style></head>
<body><table role="presentation" style="width: 480px"><tr><td>
  <p class="copy">Hi {{profile.first_name}}, your cart is waiting.</p>
  <img src="https://cdn.${SHOP_HOST}/img/no-alt.jpg" width="120" height="80">
  <img src="https://cdn.${SHOP_HOST}/img/empty-alt.jpg" alt="" width="120" height="80">
  <img src="https://cdn.${SHOP_HOST}/img/described.jpg" alt="A tan leather tote" width="120" height="80">
  <img src="https://t.${SHOP_HOST}/pixel.gif" alt="" width="1" height="1">
  <p class="copy"><a class="copy" href="https://shop.example.evil.test/p/B1">Look-alike shop</a>
  <a class="copy" href="mailto:someone@elsewhere.example">Write to someone</a>
  <a class="copy" href="http://${SHOP_HOST}/p/B2">Plain-http shop</a>
  <a class="copy" href="https://${SHOP_HOST}/p/B1">Shop</a> <a class="copy" href="https://cdn.${SHOP_HOST}/size-guide">Size guide</a>
  ${BRAND?.support.email ? `<a class="copy" href="mailto:${BRAND.support.email}?subject=Help">Help</a>` : ''}
  <a class="copy" href="#unsubscribe-preview">Unsubscribe</a> <a class="copy" href="#preferences-preview">Preferences</a></p>
</td></tr></table></body></html>`;

describe('the checks themselves', () => {
  test('find each fault of a deliberately broken email, in the view where it shows, and pass what is allowed', async () => {
    const preview = await adminFetch(`${app.url}${previewPath(TEMPLATES[0]!, BARE, 'html')}`);
    const policy = preview.headers.get('content-security-policy');
    expect(policy).toContain("script-src 'none'");
    const brokenPath = '/checks-control/broken-email';
    await page.route(`${app.url}${brokenPath}`, (route) => route.fulfill({ status: 200, contentType: 'text/html', headers: { 'content-security-policy': policy! }, body: BROKEN_EMAIL }));
    try {
      await show(brokenPath);
      const light = await problemsInView({ width: 375, scheme: 'light' }, 'broken');
      const dark = await problemsInView({ width: 600, scheme: 'dark' }, 'broken');
      const found = (problems: string[], pattern: RegExp) => problems.filter((p) => pattern.test(p)).length;
      expect(found(light, /scrolls sideways/)).toBe(1);
      expect(found(dark, /scrolls sideways/)).toBe(0);
      for (const problems of [light, dark]) {
        expect(found(problems, /no-alt\.jpg.*has no alt attribute/)).toBe(1);
        expect(found(problems, /empty-alt\.jpg.*has an empty alt/)).toBe(1);
        expect(found(problems, /described\.jpg|pixel\.gif/)).toBe(0);
        expect(found(problems, /^broken: link /)).toBe(3);
        expect(found(problems, /Look-alike shop.*neither the shop/)).toBe(1);
        expect(found(problems, /Write to someone.*not brand\.yaml's support\.email/)).toBe(1);
        expect(found(problems, /Plain-http shop.*neither the shop/)).toBe(1);
        expect(found(problems, /raw template text on the page: .*\{\{profile\.first_name\}\}/)).toBe(1);
      }
      expect(found(light, /axe color-contrast/)).toBe(0);
      expect(found(dark, /axe color-contrast \(serious\) at .*insufficient color contrast/)).toBeGreaterThan(0);
    } finally {
      await page.unroute(`${app.url}${brokenPath}`);
    }
  });
});

describe.each(TEMPLATES)('%s', (template) => {
  describe.each(CUSTOMERS)('for the $label customer ($description)', (customer) => {
    test('renders no raw Handlebars in subject, preheader, text or HTML' + (customer === FULL ? ', and fills every product block' : ''), async () => {
      const response = await adminFetch(`${app.url}${previewPath(template, customer, 'json')}`);
      expect(response.status).toBe(200);
      const preview = (await response.json()) as { subject: string; preheader: string | null; text: string; html: string; fallbacks: Array<{ at: string; expression: string }> };
      const raw = Object.entries({ subject: preview.subject, preheader: preview.preheader ?? '', text: preview.text, html: preview.html })
        .filter(([, value]) => RAW_TEMPLATE_TEXT.test(value))
        .map(([part, value]) => `${template} / ${customer.label}: raw template text in the ${part}: …${value.slice(Math.max(0, value.search(RAW_TEMPLATE_TEXT) - 40), value.search(RAW_TEMPLATE_TEXT) + 40)}…`);
      expect(raw).toEqual([]);
      // The full customer is the test's promise that every product block shows items: a block that fell back (an
      // empty recommendation, cart, order or viewed product) is this test's data to fix, not the template.
      if (customer === FULL) expect(preview.fallbacks.filter((f) => PRODUCT_BLOCK.test(f.expression))).toEqual([]);
    });

    test.each(VIEWS)('at $width px in the $scheme colour scheme: no horizontal scroll, images described, links to the shop, no serious axe finding', async ({ width, scheme }) => {
      await show(previewPath(template, customer, 'html'));
      expect(await problemsInView({ width, scheme }, `${template} / ${customer.label} customer / ${width}px / ${scheme}`)).toEqual([]);
    });
  });
});
