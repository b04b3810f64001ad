// The sample customers the README gallery (scripts/gallery.ts) renders the emails for: one realistic customer per
// template family, as the Segment calls a shop would have sent about them, and which family a template belongs to.
// Pure: the catalog's products and the moment come in, the calls go out.
import type { Product } from '../core/catalog';

/** The kinds of email the shipped flows send; each renders for a customer whose history fits it. */
export const TEMPLATE_FAMILIES = ['order', 'cart', 'browse', 'post-purchase', 'winback'] as const;
export type TemplateFamily = (typeof TEMPLATE_FAMILIES)[number];

/** A Segment call as POST /v1/batch takes it. */
export type SegmentCall = Record<string, unknown>;

export interface SampleCustomer {
  family: TemplateFamily;
  customerId: string;
  /** How the README names the customer, e.g. "Olivia (en-GB)". */
  description: string;
  /** The customer's history, oldest first: identify calls and track calls with explicit timestamps. */
  calls: SegmentCall[];
  /** The event that triggers this family's flow, as a track call for the preview's `event=`; null for flows a segment starts. */
  trigger: SegmentCall | null;
}

/** The customer ids the gallery uses, by family. */
export const SAMPLE_CUSTOMER_IDS: Record<TemplateFamily, string> = {
  order: 'gallery-isla',
  cart: 'gallery-olivia',
  browse: 'gallery-ethan',
  'post-purchase': 'gallery-amelia',
  winback: 'gallery-marcus',
};

/** Name patterns, tried in order; a template matching none is a post-purchase email (review request, upsell, …). */
const FAMILY_PATTERNS: Array<[RegExp, TemplateFamily]> = [
  [/order|receipt|thank|confirm|shipp/, 'order'],
  [/cart|checkout|basket/, 'cart'],
  [/browse|viewed/, 'browse'],
  [/winback|win-back|miss-you|lapsed|come-back/, 'winback'],
];

/** The family of a template, from its name (`cart-reminder` → cart). */
export function familyOf(template: string): TemplateFamily {
  for (const [pattern, family] of FAMILY_PATTERNS) if (pattern.test(template)) return family;
  return 'post-purchase';
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The customers' products, by catalog id: each must be in catalog/products.json. */
const PRODUCTS_USED = ['sku-1', 'sku-2', 'sku-3', 'sku-4', 'sku-10', 'sku-11', 'sku-12', 'sku-13', 'sku-14', 'sku-15', 'sku-20'];

/** Builds the Segment calls of one customer, numbering their messageIds so a rerun of the batch is deduplicated. */
class History {
  readonly calls: SegmentCall[] = [];

  constructor(
    private readonly customerId: string,
    private readonly products: ReadonlyMap<string, Product>,
  ) {}

  private push(call: SegmentCall, at: number): SegmentCall {
    const full = { ...call, userId: this.customerId, timestamp: new Date(at).toISOString(), messageId: `${this.customerId}-${this.calls.length + 1}` };
    this.calls.push(full);
    return full;
  }

  identify(traits: Record<string, unknown>, at: number): void {
    this.push({ type: 'identify', traits: { ...traits, consent: { email_marketing: true } } }, at);
  }

  /** A product as a shop's track calls describe it: the catalog's fields under Segment's ecommerce names. */
  product(id: string, quantity = 1): Record<string, unknown> {
    const p = this.products.get(id)!;
    return { product_id: p.product_id, sku: p.product_id, name: p.name, category: p.category, price: p.price, quantity, url: p.url, ...(p.image_url ? { image_url: p.image_url } : {}) };
  }

  track(event: string, properties: Record<string, unknown>, at: number): SegmentCall {
    return this.push({ type: 'track', event, properties }, at);
  }

  viewed(id: string, at: number): void {
    const { quantity: _quantity, ...product } = this.product(id);
    this.track('Product Viewed', product, at);
  }

  added(id: string, at: number, quantity = 1): SegmentCall {
    return this.track('Product Added', { ...this.product(id, quantity), cart_id: `cart-${this.customerId}` }, at);
  }

  ordered(orderId: string, items: Array<[string, number]>, at: number): SegmentCall {
    const products = items.map(([id, quantity]) => this.product(id, quantity));
    const total = Math.round(products.reduce((sum, p) => sum + (p.price as number) * (p.quantity as number), 0) * 100) / 100;
    return this.track('Order Completed', { order_id: orderId, total, revenue: total, products }, at);
  }
}

/** As the preview's `event=` takes a trigger: the track call without its envelope. */
function asTrigger(call: SegmentCall): SegmentCall {
  return { event: call.event, properties: call.properties, timestamp: call.timestamp };
}

/**
 * One customer per family, with a history as of `now`: names, locales (en-GB in pounds, en-US in dollars), orders
 * with products, cart items and product views, all from `catalog`. Throws naming the products the catalog lacks.
 */
export function sampleCustomers(catalog: readonly Product[], now: number): SampleCustomer[] {
  const products = new Map(catalog.map((p) => [p.product_id, p]));
  const missing = PRODUCTS_USED.filter((id) => !products.has(id));
  if (missing.length > 0) {
    throw new Error(`the gallery's sample customers buy and view ${missing.join(', ')}, which the catalog no longer has: add them back, or change PRODUCTS_USED and the histories in scripts/gallery-customers.ts`);
  }
  const person = (first: string, last: string, locale: 'en-GB' | 'en-US') => ({
    first_name: first,
    last_name: last,
    email: `${first}.${last}@example.com`.toLowerCase(),
    locale,
    currency: locale === 'en-GB' ? 'GBP' : 'USD',
    timezone: locale === 'en-GB' ? 'Europe/London' : 'America/New_York',
  });
  const customers: SampleCustomer[] = [];

  // Order thank-you: Isla, who bought a minute ago what she had just put in her cart.
  {
    const h = new History(SAMPLE_CUSTOMER_IDS.order, products);
    h.identify(person('Isla', 'Murray', 'en-GB'), now - 30 * DAY);
    h.viewed('sku-2', now - 45 * MINUTE);
    h.added('sku-2', now - 40 * MINUTE);
    h.viewed('sku-12', now - 35 * MINUTE);
    h.added('sku-12', now - 30 * MINUTE, 2);
    const order = h.ordered('HH-10872', [['sku-2', 1], ['sku-12', 2]], now - 2 * MINUTE);
    customers.push({ family: 'order', customerId: SAMPLE_CUSTOMER_IDS.order, description: 'Isla (en-GB), who just ordered', calls: h.calls, trigger: asTrigger(order) });
  }

  // Cart: Olivia, a returning customer who left two items in her cart this afternoon.
  {
    const h = new History(SAMPLE_CUSTOMER_IDS.cart, products);
    h.identify({ ...person('Olivia', 'Bennett', 'en-GB'), cart_url: 'https://shop.example/cart?restore=olivia' }, now - 120 * DAY);
    h.viewed('sku-14', now - 95 * DAY);
    h.ordered('HH-10231', [['sku-14', 1], ['sku-15', 1]], now - 94 * DAY);
    h.viewed('sku-1', now - 3 * HOUR);
    h.viewed('sku-3', now - 3 * HOUR + 5 * MINUTE);
    h.added('sku-1', now - 3 * HOUR + 10 * MINUTE);
    h.viewed('sku-10', now - 3 * HOUR + 15 * MINUTE);
    const added = h.added('sku-10', now - 3 * HOUR + 20 * MINUTE, 2);
    customers.push({ family: 'cart', customerId: SAMPLE_CUSTOMER_IDS.cart, description: 'Olivia (en-GB), with two items in her cart', calls: h.calls, trigger: asTrigger(added) });
  }

  // Browse: Ethan, who bought earbuds months ago and has been looking at shoes all week.
  {
    const h = new History(SAMPLE_CUSTOMER_IDS.browse, products);
    h.identify(person('Ethan', 'Walker', 'en-US'), now - 200 * DAY);
    h.ordered('HH-09817', [['sku-20', 1]], now - 160 * DAY);
    h.viewed('sku-1', now - 6 * DAY);
    h.viewed('sku-4', now - 4 * DAY);
    h.viewed('sku-2', now - 2 * DAY);
    h.viewed('sku-3', now - 1 * DAY);
    customers.push({ family: 'browse', customerId: SAMPLE_CUSTOMER_IDS.browse, description: 'Ethan (en-US), browsing shoes', calls: h.calls, trigger: null });
  }

  // Post-purchase: Amelia, whose trail shoes and laces arrived last week.
  {
    const h = new History(SAMPLE_CUSTOMER_IDS['post-purchase'], products);
    h.identify(person('Amelia', 'Hughes', 'en-GB'), now - 60 * DAY);
    h.viewed('sku-1', now - 12 * DAY);
    h.added('sku-1', now - 12 * DAY + 10 * MINUTE);
    h.added('sku-13', now - 12 * DAY + 15 * MINUTE);
    const order = h.ordered('HH-10544', [['sku-1', 1], ['sku-13', 1]], now - 12 * DAY + 20 * MINUTE);
    customers.push({ family: 'post-purchase', customerId: SAMPLE_CUSTOMER_IDS['post-purchase'], description: 'Amelia (en-GB), who bought trail shoes', calls: h.calls, trigger: asTrigger(order) });
  }

  // Winback: Marcus, a good customer (two orders, over 200 spent) with no order for 75 days.
  {
    const h = new History(SAMPLE_CUSTOMER_IDS.winback, products);
    h.identify(person('Marcus', 'Reed', 'en-US'), now - 400 * DAY);
    h.viewed('sku-3', now - 301 * DAY);
    h.ordered('HH-08102', [['sku-3', 1]], now - 300 * DAY);
    h.viewed('sku-4', now - 76 * DAY);
    h.ordered('HH-10003', [['sku-4', 1], ['sku-11', 1]], now - 75 * DAY);
    customers.push({ family: 'winback', customerId: SAMPLE_CUSTOMER_IDS.winback, description: 'Marcus (en-US), no order for 75 days', calls: h.calls, trigger: null });
  }
  return customers;
}
