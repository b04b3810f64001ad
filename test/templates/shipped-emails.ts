// The shipped templates as the tests of test/templates render them: the real templates/ folder, the real brand.yaml
// and the real sample catalog (catalog/), for a FULL customer (a name, a locale, a cart, a last order, browsing) and
// a BARE one (an email address and consent, nothing else), with the send-time options a send passes (offer codes,
// the countdown image, the unsubscribe and preference links).
import path from 'node:path';
import { catalogRenderOptions } from '../../activities/catalog';
import { TemplateLibrary, type RenderedEmail } from '../../activities/templates';
import { loadBrandFile } from '../../cli/brand-file';
import { loadCatalogDir } from '../../cli/catalog-files';
import type { Brand } from '../../core/brand';
import { catalogIndex } from '../../core/recommendations';

export const ROOT = path.resolve(__dirname, '../..');
export const SHOP_URL = 'https://shop.example';
/** The moment every test render happens at (countdowns compare their deadline with it). */
export const NOW = Date.UTC(2026, 2, 10, 9, 0, 0);
export const UNSUBSCRIBE_URL = 'https://mf.example/u/token';
export const PREFERENCES_URL = 'https://mf.example/preferences/token';

const CATALOG = catalogRenderOptions(catalogIndex(loadCatalogDir(path.join(ROOT, 'catalog')).products));

/** Everything a render of one customer takes: the data and the send's own options. */
export interface Customer {
  profile: Record<string, unknown>;
  event: Record<string, unknown>;
  data: Record<string, unknown>;
  /** Codes the send claimed, by pool; a pool absent or null had none. */
  offerCodes: ReadonlyMap<string, string | null>;
}

/**
 * A customer with everything the templates can show, all of it in the sample catalog: two pairs of Canvas Runners and
 * a Travel Pouch in the cart, a last order of a Trail Shoe and a Shoe Care Kit, a Leather Boot viewed last.
 */
export const FULL_CUSTOMER: Customer = {
  profile: {
    email: 'ana@example.com',
    first_name: 'Ana',
    locale: 'en-GB',
    orders_count: 2,
    total_spent: 320,
    last_browsed_category: 'Accessories',
    last_viewed_product: { product_id: 'sku-3', name: 'Leather Boot', price: 149, quantity: 1, category: 'Shoes' },
    cart: [
      { product_id: 'sku-2', name: 'Canvas Runner', price: 59, quantity: 2, category: 'Shoes' },
      { product_id: 'sku-15', name: 'Travel Pouch', price: 22, quantity: 1, category: 'Accessories' },
    ],
    last_order_products: [
      { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, quantity: 1, category: 'Shoes' },
      { product_id: 'sku-11', name: 'Shoe Care Kit', price: 19, quantity: 1, category: 'Accessories' },
    ],
    purchased_product_ids: ['sku-1', 'sku-11'],
  },
  event: { name: 'Order Completed', properties: { order_id: 'HH-1042', total: 108.5 } },
  data: { discount_pct: 10, offer_ends: new Date(NOW + 2 * 86_400_000).toISOString() },
  offerCodes: new Map([
    ['cart-10', 'CART-7Q2X'],
    ['winback-10', 'BACK-9K3M'],
  ]),
};

/** A customer the store knows nothing about but an address and consent, whose offer pools have run dry. */
export const BARE_CUSTOMER: Customer = {
  profile: { email: 'bare@example.com' },
  event: {},
  data: {},
  offerCodes: new Map([
    ['cart-10', null],
    ['winback-10', null],
  ]),
};

/** The customer with `changes` over its profile, event, data or offer codes. */
export function customerWith(base: Customer, changes: { profile?: Record<string, unknown>; event?: Record<string, unknown>; data?: Record<string, unknown>; offerCodes?: ReadonlyMap<string, string | null> }): Customer {
  return {
    profile: { ...base.profile, ...changes.profile },
    event: changes.event ?? base.event,
    data: { ...base.data, ...changes.data },
    offerCodes: changes.offerCodes ?? base.offerCodes,
  };
}

/** The project's brand.yaml, or the one at `file`. */
export function shippedBrand(file = path.join(ROOT, 'brand.yaml')): Brand {
  const brand = loadBrandFile(file);
  if (!brand) throw new Error(`no brand file at ${file}`);
  return brand;
}

/** The templates of `dir` (default: the shipped ones) compiled with `brand`; links from data may go to `linkDomains` (default: the shop's). */
export function shippedLibrary(brand: Brand = shippedBrand(), options: { dir?: string; linkDomains?: string[] } = {}): TemplateLibrary {
  return new TemplateLibrary(options.dir ?? path.join(ROOT, 'templates'), { brand, shopUrl: SHOP_URL, currency: 'GBP', linkDomains: options.linkDomains });
}

/** The pool each offer template's send step names in the shipped flows (`data: { code_pool: … }`). */
const CODE_POOLS: Record<string, string> = { 'cart-discount': 'cart-10', 'winback-offer': 'winback-10' };

/** One template rendered for `customer` the way a send renders it (catalog, offer codes, countdown, footer links). */
export function renderFor(library: TemplateLibrary, template: string, customer: Customer): RenderedEmail {
  return library.render(
    template,
    { profile: customer.profile, consent: { email_marketing: true }, event: customer.event, data: { ...(CODE_POOLS[template] ? { code_pool: CODE_POOLS[template] } : {}), ...customer.data } },
    {
      ...CATALOG,
      unsubscribeUrl: UNSUBSCRIBE_URL,
      preferencesUrl: PREFERENCES_URL,
      offerCodes: customer.offerCodes,
      now: NOW,
      countdownUrl: (until) => `https://mf.example/c/countdown/${until}.gif`,
    },
  );
}
