// The four flows' templates as a customer's mail client would show them: events go in through /v1/batch, the
// catalog through PUT /api/catalog/products, and real headless Chromium loads each template's preview for two
// different customers from the running server. Checked on the page: which conditional blocks show, the fallback
// that stands in for a missing field, and the product blocks (the expected products, none bought, none out of stock).
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { catalogReader } from '../../activities/catalog';
import { TemplateLibrary } from '../../activities/templates';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { launchChromium } from '../support/browser';
import { adminFetch, adminHeaders, basicAuth, TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const WRITE_KEY = 'browser-test-key';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.now();

const CATALOG = [
  { id: 'S1', name: 'Trail Shoe', category: 'Shoes', price: 89.5, url: 'https://shop.example/p/S1', image: 'https://img.example/S1.png', rating: 4.8, reviews: 120, stock: 10, related: ['A1', 'A2', 'A3'] },
  { id: 'S2', name: 'Canvas Runner', category: 'Shoes', price: 59, url: 'https://shop.example/p/S2', rating: 4.6, reviews: 80, stock: 5 },
  { id: 'S3', name: 'Court Classic', category: 'Shoes', price: 99, url: 'https://shop.example/p/S3', rating: 4.9, reviews: 300, stock: 0 },
  { id: 'S4', name: 'City Loafer', category: 'Shoes', price: 120, url: 'https://shop.example/p/S4', rating: 4.2, reviews: 40, stock: 3 },
  { id: 'S5', name: 'Hiking Boot', category: 'Shoes', price: 140, url: 'https://shop.example/p/S5', rating: 4.7, reviews: 90, stock: 7 },
  { id: 'A1', name: 'Shoe Care Kit', category: 'Accessories', price: 19, url: 'https://shop.example/p/A1', rating: 4.5, reviews: 60, stock: 50 },
  { id: 'A2', name: 'Wool Socks', category: 'Accessories', price: 12, url: 'https://shop.example/p/A2', rating: 4.4, reviews: 70, stock: 0 },
  { id: 'A3', name: 'Insoles', category: 'Accessories', price: 25, url: 'https://shop.example/p/A3', rating: 4.1, reviews: 20, stock: 30 },
  { id: 'E1', name: 'Headphones', category: 'Electronics', price: 199, url: 'https://shop.example/p/E1', rating: 4.7, reviews: 500, stock: 8 },
  { id: 'E2', name: 'Speaker', category: 'Electronics', price: 79, url: 'https://shop.example/p/E2', rating: 4.3, reviews: 150, stock: 4 },
  { id: 'H1', name: 'Desk Lamp', category: 'Home', price: 45, url: 'https://shop.example/p/H1', rating: 4.0, reviews: 10, stock: 9 },
];
const product = (id: string) => {
  const p = CATALOG.find((c) => c.id === id)!;
  return { product_id: p.id, name: p.name, price: p.price, category: p.category };
};

let sequence = 0;
const identify = (userId: string, traits: Record<string, unknown>, at = NOW - 30 * DAY) => ({ type: 'identify', userId, traits: { email: `${userId}@example.com`, consent: { email_marketing: true }, ...traits }, timestamp: new Date(at).toISOString(), messageId: `m-${++sequence}` });
const track = (userId: string, event: string, properties: Record<string, unknown>, at: number) => ({ type: 'track', userId, event, properties, timestamp: new Date(at).toISOString(), messageId: `m-${++sequence}` });
const order = (userId: string, ids: string[], total: number, at: number) => track(userId, 'Order Completed', { order_id: `o-${sequence}`, total, products: ids.map(product) }, at);

const EVENTS = [
  // cart-reminder
  identify('ana-cart', { first_name: 'Ana' }),
  order('ana-cart', ['E2'], 79, NOW - 20 * DAY),
  track('ana-cart', 'Product Added', product('S1'), NOW - 3 * HOUR),
  track('ana-cart', 'Product Added', product('A2'), NOW - 3 * HOUR + 1000),
  track('ana-cart', 'Product Added', product('S2'), NOW - 2 * HOUR),
  identify('bob-cart', {}),
  track('bob-cart', 'Product Added', product('A2'), NOW - 2 * HOUR),
  // browse-reminder
  identify('ana-browse', { first_name: 'Ana' }),
  order('ana-browse', ['S2'], 59, NOW - 10 * DAY),
  track('ana-browse', 'Product Viewed', product('S1'), NOW - 3 * DAY),
  track('ana-browse', 'Product Viewed', product('S4'), NOW - 2 * DAY),
  track('ana-browse', 'Product Viewed', product('S5'), NOW - 1 * DAY),
  identify('bob-browse', {}),
  { type: 'page', userId: 'bob-browse', name: 'Home', properties: {}, timestamp: new Date(NOW - DAY).toISOString(), messageId: `m-${++sequence}` },
  // winback-miss-you
  identify('ana-winback', { first_name: 'Ana' }),
  order('ana-winback', ['E1', 'H1'], 244, NOW - 70 * DAY),
  identify('bob-winback', {}),
  // upsell-related (post-purchase)
  identify('ana-pp', { first_name: 'Ana' }),
  order('ana-pp', ['S1'], 89.5, NOW - 14 * DAY),
  identify('bob-pp', {}),
  order('bob-pp', ['H1'], 45, NOW - 14 * DAY),
];

const [backend] = storeBackends('templates-browser');
let store: KyselyStore;
let app: RunningApp;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  store = await backend!.open();
  app = await serveApp({
    store,
    config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY },
    dispatcher: noDispatch,
    templates: new TemplateLibrary(path.resolve(__dirname, '../../templates')),
    catalog: catalogReader(store),
    log: () => undefined,
  });
  const headers = { 'content-type': 'application/json', authorization: basicAuth(WRITE_KEY) };
  const catalog = await adminFetch(`${app.url}/api/catalog/products`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CATALOG) });
  expect(catalog.status).toBe(200);
  const batch = await fetch(`${app.url}/v1/batch`, { method: 'POST', headers, body: JSON.stringify({ batch: EVENTS }) });
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

interface Shown {
  text: string;
  has: (cssClass: string) => Promise<boolean>;
  products: string[];
  fallbacks: Array<{ at: string; expression: string }>;
}

/** Loads the preview in Chromium, and the JSON preview for the fallbacks the render recorded. */
async function open(template: string, customerId: string): Promise<Shown> {
  const response = await page.goto(`${app.url}/api/templates/${template}/preview?profile=${customerId}&format=html`, { waitUntil: 'domcontentloaded' });
  expect(response?.status()).toBe(200);
  const text = await page.innerText('body');
  expect(text).not.toMatch(/\{\{|\}\}|MFHB|MFLK/);
  const products = await page.$$eval('.product-name', (cells) => cells.map((cell) => (cell.textContent ?? '').split('×')[0]!.trim()));
  const json = (await (await adminFetch(`${app.url}/api/templates/${template}/preview?profile=${customerId}`)).json()) as { fallbacks: Shown['fallbacks'] };
  return { text, products, fallbacks: json.fallbacks, has: async (cssClass) => (await page.locator(`.${cssClass}`).count()) > 0 };
}

describe('cart-reminder', () => {
  test('a returning customer with a name: her cart in stock, with ratings, and the returning-customer block', async () => {
    const shown = await open('cart-reminder', 'ana-cart');
    expect(shown.text).toContain('Still thinking it over, Ana?');
    expect(shown.text).toContain('We saved your cart, so you can pick up where you left off:');
    expect(shown.products).toEqual(['Trail Shoe', 'Canvas Runner']); // Wool Socks is out of stock
    expect(shown.text).toContain('Rated 4.8 / 5 from 120 reviews');
    expect(await shown.has('returning-customer')).toBe(true);
    expect(await shown.has('first-order')).toBe(false);
    expect(await shown.has('cart-fallback')).toBe(false);
    expect(shown.fallbacks.map((f) => f.expression)).not.toContain('#if profile.first_name');
  });

  test('a first-time shopper without a name and with only an out-of-stock item: the fallbacks', async () => {
    const shown = await open('cart-reminder', 'bob-cart');
    expect(shown.text).toContain('Still thinking it over?');
    expect(shown.text).not.toContain('Hi ,');
    expect(shown.products).toEqual([]);
    expect(await shown.has('cart-fallback')).toBe(true);
    // The sentence that announces the cart goes with it: the fallback says what is true instead.
    expect(shown.text).not.toContain('We saved your cart');
    expect(shown.text).toContain('some have sold out since');
    expect(await shown.has('first-order')).toBe(true);
    expect(await shown.has('returning-customer')).toBe(false);
    expect(shown.fallbacks).toEqual(expect.arrayContaining([expect.objectContaining({ at: 'templates/cart-reminder.mjml:9', expression: '#if profile.first_name' })]));
  });
});

describe('browse-reminder', () => {
  test('a browser of shoes: top rated shoes, none bought, none out of stock, not the one she just viewed', async () => {
    const shown = await open('browse-reminder', 'ana-browse');
    expect(shown.text).toContain('still looking at Shoes?');
    expect(shown.text).toContain('You were looking at Hiking Boot.');
    // Court Classic (4.9) is out of stock, Hiking Boot is the viewed product, Canvas Runner was bought.
    expect(shown.products).toEqual(['Trail Shoe', 'City Loafer']);
    expect(await shown.has('last-viewed-fallback')).toBe(false);
  });

  test('a visitor who viewed no product: the last-viewed fallback and the best of the whole catalog', async () => {
    const shown = await open('browse-reminder', 'bob-browse');
    expect(shown.text).toContain('Thank you for stopping by Sample Shop.');
    expect(shown.text).not.toContain('You were looking at');
    expect(await shown.has('last-viewed')).toBe(false);
    expect(shown.products).toEqual(['Trail Shoe', 'Headphones', 'Hiking Boot']);
    expect(shown.fallbacks.map((f) => f.expression)).toEqual(expect.arrayContaining(['#with profile.last_viewed_product', 'recommend "top_rated" limit=3']));
  });
});

describe('winback-miss-you', () => {
  test('a big spender: the loyalty block, her last order, recommendations without what she bought', async () => {
    const shown = await open('winback-miss-you', 'ana-winback');
    expect(shown.text).toContain('It has been a while, Ana.');
    expect(shown.text).toContain('Since you picked up your Headphones, we have added new pieces we think you will like.');
    expect(await shown.has('loyal-note')).toBe(true);
    expect(shown.products).toEqual(['Trail Shoe', 'Hiking Boot', 'Canvas Runner']);
    expect(shown.products).not.toContain('Headphones');
  });

  test('a customer with no order and no name: the fallbacks, no loyalty block', async () => {
    const shown = await open('winback-miss-you', 'bob-winback');
    expect(shown.text).toContain('It has been a while.');
    expect(await shown.has('last-order-fallback')).toBe(true);
    expect(shown.text).toContain('A lot has changed since your last visit');
    expect(shown.text).not.toContain('Since you picked up');
    expect(await shown.has('loyal-note')).toBe(false);
    expect(shown.fallbacks.map((f) => f.expression)).toEqual(expect.arrayContaining(['#if profile.last_order_products', '#if profile.first_name']));
  });
});

describe('upsell-related (post-purchase)', () => {
  test('accessories of the shoe she bought, in stock', async () => {
    const shown = await open('upsell-related', 'ana-pp');
    expect(shown.text).toContain('Customers who bought Trail Shoe also chose these:');
    expect(shown.products).toEqual(['Shoe Care Kit', 'Insoles']); // Wool Socks is out of stock
    expect(await shown.has('related-fallback')).toBe(false);
  });

  test('a product with nothing related: the fallback block, and no sentence announcing products that are not there', async () => {
    const shown = await open('upsell-related', 'bob-pp');
    expect(shown.text).not.toContain('Customers who bought Desk Lamp');
    expect(shown.text).toContain('Thank you for shopping with us');
    expect(shown.products).toEqual([]);
    expect(await shown.has('related-fallback')).toBe(true);
  });
});
