// The shipped emails read right in every branch: for each template and each of its conditional blocks, a customer
// whose data makes that block fall back gets the block's fallback sentence and not the sentence that announces what
// is missing (no "We saved your cart" above an empty cart). Rendered from the real templates/, brand.yaml and sample
// catalog. A block that no case makes fall back fails the coverage test, so a new block needs a case here.
import path from 'node:path';
import type { RenderedEmail } from '../../activities/templates';
import { parseBrand, type Brand } from '../../core/brand';
import { loadCatalogDir } from '../../cli/catalog-files';
import { BARE_CUSTOMER, customerWith, FULL_CUSTOMER, renderFor, ROOT, shippedLibrary, type Customer } from './shipped-emails';

const library = shippedLibrary();
const ALL_PRODUCT_IDS = loadCatalogDir(path.join(ROOT, 'catalog')).products.map((p) => p.product_id);

/** One render and what it must and must not say. */
interface Case {
  name: string;
  customer: Customer;
  /** Blocks (as the render records them: `#if profile.first_name`) that must fall back in this render. */
  fallsBack: string[];
  /** In the subject, preheader or text part. */
  shows: string[];
  hides: string[];
}

interface TemplateSpec {
  /** What the full customer's email says, and which fallback sentences it must not. */
  full: { shows: string[]; hides: string[] };
  cases: Case[];
  /** Blocks that cannot fall back on their own, with why (an {{#each}} inside an {{#if}} on the same list). */
  guarded: string[];
}

const noName = (base = FULL_CUSTOMER) => customerWith(base, { profile: { first_name: undefined } });
const emptyCart = customerWith(FULL_CUSTOMER, { profile: { cart: [] } });
/** A cart line the catalog does not know and that has no price: the cart shows, its subtotal cannot. */
const pricelessCart = customerWith(FULL_CUSTOMER, { profile: { cart: [{ product_id: 'gift-wrap', quantity: 1 }] } });
/** A customer who has bought the whole catalog: nothing is left to recommend. */
const boughtEverything = customerWith(FULL_CUSTOMER, { profile: { purchased_product_ids: ALL_PRODUCT_IDS } });
const noOrder = customerWith(FULL_CUSTOMER, { profile: { last_order_products: [], purchased_product_ids: [] } });
/** The last order's product has no name: the catalog still gives its card one. */
const unnamedOrder = customerWith(FULL_CUSTOMER, { profile: { last_order_products: [{ product_id: 'sku-1', quantity: 1 }] } });
const noCodes = customerWith(FULL_CUSTOMER, { offerCodes: new Map() });
const EACH_CART = '#each (recommend "cart" limit=6)';
const EACH_TOP_RATED = '#each (recommend "top_rated" limit=3)';

const SPECS: Record<string, TemplateSpec> = {
  'browse-reminder': {
    full: {
      shows: ['More Accessories picked for you', 'The best-rated Accessories at Harbour & Hide, chosen for you.', 'Hi Ana, still looking at Accessories?', 'You were looking at Leather Boot', 'Top rated by our customers', 'Merino Trail Socks'],
      hides: ['Still looking around', 'Thank you for stopping by', 'New pieces arrive every week'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['Still looking at Accessories?'], hides: ['Hi '] },
      {
        name: 'no browsed category',
        customer: customerWith(FULL_CUSTOMER, { profile: { last_browsed_category: undefined } }),
        fallsBack: ['#if profile.last_browsed_category'],
        shows: ['Picked for you', 'The pieces our customers rate highest, chosen for you.', 'Hi Ana, still looking around?'],
        hides: ['More ', 'still looking at'],
      },
      {
        name: 'no product viewed',
        customer: customerWith(FULL_CUSTOMER, { profile: { last_viewed_product: undefined } }),
        fallsBack: ['#with profile.last_viewed_product'],
        shows: ['Thank you for stopping by Harbour & Hide.'],
        hides: ['You were looking at', 'still here when you are ready'],
      },
      {
        name: 'nothing to recommend',
        customer: boughtEverything,
        fallsBack: ['#if (recommend "top_rated" limit=3)'],
        shows: ['New pieces arrive every week: come and see what is in.'],
        hides: ['Top rated by our customers'],
      },
    ],
    guarded: [EACH_TOP_RATED],
  },
  'cart-reminder': {
    full: {
      shows: ['Ana, you left something in your cart', 'Still thinking it over, Ana?', 'We saved your cart, so you can pick up where you left off:', 'Canvas Runner', 'Qty 2', '£118.00', 'Subtotal £140.00', 'Return to your cart', 'Welcome back: as a returning customer'],
      hides: ['sold out since', "Shop what's in stock", 'First order?'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['You left something in your cart', 'Still thinking it over?'], hides: ['Ana'] },
      {
        name: 'a cart with nothing left to show',
        customer: emptyCart,
        fallsBack: ['#if (recommend "cart" limit=6)'],
        shows: ['The pieces you picked have been popular, and some have sold out since. Have a look at what is in stock now.', "Shop what's in stock"],
        hides: ['We saved your cart', 'Subtotal', 'Return to your cart'],
      },
      {
        name: 'a cart without prices',
        customer: pricelessCart,
        fallsBack: ['#if (subtotal (recommend "cart" limit=6))'],
        shows: ['We saved your cart, so you can pick up where you left off:', 'gift-wrap', 'Return to your cart'],
        hides: ['Subtotal', 'Shipping and taxes'],
      },
      {
        name: 'a first order',
        customer: customerWith(FULL_CUSTOMER, { profile: { orders_count: undefined } }),
        fallsBack: ['#when profile.orders_count gte=1'],
        shows: ['First order? Returns are free for 30 days.'],
        hides: ['Welcome back'],
      },
    ],
    guarded: [EACH_CART],
  },
  'cart-discount': {
    full: {
      shows: ['10% off the items in your cart', 'Ana, here is 10% off your order', 'Use your code CART-7Q2X at checkout.', 'The offer ends soon:', 'Offer ends Thursday, 12 March 2026', 'It takes 10% off everything still in your cart:', 'Subtotal before your discount £140.00', 'Complete my order (https://shop.example/cart?discount=CART-7Q2X)'],
      hides: ['CART10', 'sold out since'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['Here is 10% off your order'], hides: ['Ana'] },
      {
        name: 'an empty code pool',
        customer: noCodes,
        fallsBack: ['#if (offer_code pool=data.code_pool)'],
        shows: ['Use code CART10 at checkout.', 'Complete my order (https://shop.example/cart?discount=CART10)'],
        hides: ['Use your code', 'CART-7Q2X'],
      },
      {
        name: 'no deadline',
        customer: customerWith(FULL_CUSTOMER, { data: { offer_ends: undefined } }),
        fallsBack: ['#if data.offer_ends'],
        shows: ['Use your code CART-7Q2X at checkout.'],
        hides: ['The offer ends soon', 'Offer ends'],
      },
      {
        name: 'a cart with nothing left to show',
        customer: emptyCart,
        fallsBack: ['#if (recommend "cart" limit=6)'],
        shows: ['Some of the pieces you picked have sold out since, but the code works on everything in the shop.', 'Shop with 10% off (https://shop.example/?discount=CART-7Q2X)'],
        hides: ['everything still in your cart', 'Subtotal', 'Complete my order'],
      },
      {
        name: 'a cart with nothing left and an empty pool',
        customer: customerWith(emptyCart, { offerCodes: new Map() }),
        fallsBack: ['#if (recommend "cart" limit=6)', '#if (offer_code pool=data.code_pool)'],
        shows: ['Use code CART10 at checkout.', 'Shop with 10% off (https://shop.example/?discount=CART10)'],
        hides: ['CART-7Q2X'],
      },
      {
        name: 'a cart without prices',
        customer: pricelessCart,
        fallsBack: ['#if (subtotal (recommend "cart" limit=6))'],
        shows: ['It takes 10% off everything still in your cart:', 'gift-wrap'],
        hides: ['Subtotal'],
      },
    ],
    guarded: [EACH_CART],
  },
  'cart-reviews': {
    full: {
      shows: ['What other customers say about your cart', 'A second opinion, Ana', 'Customers who bought the pieces in your cart rate them highly. Here is what you picked:', 'Rated 4.4 / 5 from 158 reviews', 'Subtotal £140.00', 'See reviews and check out'],
      hides: ['sold out since'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['A second opinion'], hides: ['Ana'] },
      {
        name: 'a cart with nothing left to show',
        customer: emptyCart,
        fallsBack: ['#if (recommend "cart" limit=6)'],
        shows: ['Some of the pieces you picked have sold out since. Every product page in the shop shows what customers who bought it say.', 'Read reviews in the shop'],
        hides: ['Here is what you picked', 'Subtotal', 'See reviews and check out'],
      },
      { name: 'a cart without prices', customer: pricelessCart, fallsBack: ['#if (subtotal (recommend "cart" limit=6))'], shows: ['Here is what you picked:', 'gift-wrap'], hides: ['Subtotal'] },
    ],
    guarded: [EACH_CART],
  },
  'order-thank-you': {
    full: {
      shows: ['Thank you for your order HH-1042', 'We have your order HH-1042 and are getting it ready.', 'Thank you, Ana!', 'Order number: HH-1042', 'What you ordered', 'Trail Shoe', 'Shoe Care Kit', 'Order total £108.50', 'View your order'],
      hides: ['listed in your account', 'Unsubscribe', 'Manage preferences'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['Thank you!'], hides: ['Ana'] },
      {
        name: 'an order event without id or total',
        customer: customerWith(FULL_CUSTOMER, { event: { name: 'Order Completed', properties: {} } }),
        fallsBack: ['#if event.properties.order_id', '#if event.properties.total'],
        shows: ['Thank you for your order', 'We have your order and are getting it ready.', 'What you ordered'],
        hides: ['Order number', 'HH-1042', 'Order total'],
      },
      {
        name: 'no items known',
        customer: noOrder,
        fallsBack: ['#if (recommend "last_order" limit=10)'],
        shows: ['Every item of your order is listed in your account.', 'Order total £108.50'],
        hides: ['What you ordered'],
      },
    ],
    guarded: ['#each (recommend "last_order" limit=10)'],
  },
  'review-request': {
    full: {
      shows: ['How do you like your Trail Shoe?', 'Ana, how is it going?', 'Tell other shoppers what you think of your order: a line or two helps them choose.', 'Trail Shoe', 'Write a review'],
      hides: ['your last order for a little while'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['How is it going?'], hides: ['Ana'] },
      { name: 'an unnamed product', customer: unnamedOrder, fallsBack: ['#if profile.last_order_products.0.name'], shows: ['How do you like your purchase?', 'Trail Shoe'], hides: ['your Trail Shoe?'] },
      {
        name: 'no order known',
        customer: noOrder,
        fallsBack: ['#if (recommend "last_order" limit=4)'],
        shows: ['You have had your last order for a little while now. How are you finding it? A line or two helps other shoppers choose.', 'Write a review'],
        hides: ['Tell other shoppers what you think of your order'],
      },
    ],
    guarded: ['#each (recommend "last_order" limit=4)'],
  },
  'upsell-related': {
    full: {
      shows: ['Goes well with your Trail Shoe', 'Complete the set', 'Customers who bought Trail Shoe also chose these:', 'Merino Trail Socks', 'Shop the collection'],
      hides: ['Thank you for shopping with us', 'New pieces arrive'],
    },
    cases: [
      {
        name: 'an unnamed product',
        customer: unnamedOrder,
        fallsBack: ['#if profile.last_order_products.0.name'],
        shows: ['Picked to go with your order', 'Customers who bought the same as you also chose these:'],
        hides: ['Goes well with', 'Customers who bought Trail Shoe'],
      },
      {
        name: 'a product with nothing related',
        customer: customerWith(FULL_CUSTOMER, { profile: { last_order_products: [{ product_id: 'sku-5', name: 'Coastal Sandal', price: 39, quantity: 1 }] } }),
        fallsBack: ['#if (recommend "related" product=profile.last_order_products.0.product_id limit=4)'],
        shows: ['Goes well with your Coastal Sandal', 'Thank you for shopping with us', 'We hope you are enjoying your order. New pieces arrive every week: come and see what is in.', "See what's new"],
        hides: ['Complete the set', 'also chose these', 'Shop the collection'],
      },
    ],
    guarded: ['#each (recommend "related" product=profile.last_order_products.0.product_id limit=4)'],
  },
  'winback-miss-you': {
    full: {
      shows: ['We miss you, Ana', 'It has been a while, Ana.', 'Since you picked up your Trail Shoe, we have added new pieces we think you will like.', 'your loyalty perks are waiting', 'Picked for you', "See what's new"],
      hides: ['A lot has changed since your last visit, and', 'New pieces arrive every week'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['We miss you', 'It has been a while.'], hides: ['Ana'] },
      {
        name: 'no order known',
        customer: noOrder,
        fallsBack: ['#if profile.last_order_products'],
        shows: ['A lot has changed since your last visit, and we would love to show you.'],
        hides: ['Since you picked up'],
      },
      { name: 'a small spender', customer: customerWith(FULL_CUSTOMER, { profile: { total_spent: 80 } }), fallsBack: [], shows: ['Picked for you'], hides: ['loyalty perks'] },
      { name: 'spending unknown', customer: customerWith(FULL_CUSTOMER, { profile: { total_spent: undefined } }), fallsBack: ['#when profile.total_spent gte=200'], shows: ['Picked for you'], hides: ['loyalty perks'] },
      {
        name: 'nothing to recommend',
        customer: boughtEverything,
        fallsBack: ['#if (recommend "top_rated" limit=3)'],
        shows: ['New pieces arrive every week: come and see what is in.'],
        hides: ['Picked for you'],
      },
    ],
    guarded: [EACH_TOP_RATED],
  },
  'winback-offer': {
    full: {
      shows: ['10% off your next order', 'Ana, come back for 10% off', 'Use your code BACK-9K3M at checkout, valid for 14 days.', 'A few customer favourites to start with', 'Shop with 10% off (https://shop.example/?discount=BACK-9K3M)'],
      hides: ['BACK10', 'New pieces arrive every week'],
    },
    cases: [
      { name: 'no name', customer: noName(), fallsBack: ['#if profile.first_name'], shows: ['Come back for 10% off'], hides: ['Ana'] },
      {
        name: 'an empty code pool',
        customer: noCodes,
        fallsBack: ['#if (offer_code pool=data.code_pool)'],
        shows: ['Use code BACK10 at checkout, valid for 14 days.', 'Shop with 10% off (https://shop.example/?discount=BACK10)'],
        hides: ['Use your code', 'BACK-9K3M'],
      },
      {
        name: 'nothing to recommend',
        customer: boughtEverything,
        fallsBack: ['#if (recommend "top_rated" limit=3)'],
        shows: ['New pieces arrive every week, and the code works on all of them.'],
        hides: ['customer favourites'],
      },
    ],
    guarded: [EACH_TOP_RATED],
  },
};

/** Everything a reader sees: subject, preheader and the plain-text part (the HTML's words, links as `label (url)`). */
const shown = (email: RenderedEmail) => `${email.subject}\n${email.preheader ?? ''}\n${email.text}`;

function expectCopy(email: RenderedEmail, shows: string[], hides: string[]): void {
  const words = shown(email);
  for (const sentence of shows) expect(words).toContain(sentence);
  for (const sentence of hides) expect(words).not.toContain(sentence);
  expect(`${words}\n${email.html}`).not.toMatch(/\{\{|\}\}|MFHB|MFLK|undefined|NaN|\[object/);
}

/** The conditional blocks a template's own file holds, as `file:line expression`. */
function blocksOf(template: string): string[] {
  return library
    .get(template)
    .sites.filter((site) => site.at.startsWith(`templates/${template}.mjml:`) && site.expression.startsWith('#'))
    .map((site) => `${site.at} ${site.expression}`);
}

test('every shipped template has a spec here', () => {
  expect(Object.keys(SPECS).sort()).toEqual(library.names().sort());
});

describe.each(Object.keys(SPECS))('%s', (template) => {
  const spec = SPECS[template]!;

  test('the full customer: every announcing sentence, no fallback sentence', () => {
    const email = renderFor(library, template, FULL_CUSTOMER);
    expectCopy(email, spec.full.shows, spec.full.hides);
    expect(email.fallbacks.filter((f) => f.at.startsWith(`templates/${template}.mjml`) && f.expression.startsWith('#'))).toEqual([]);
  });

  test.each(spec.cases.map((c) => [c.name, c] as const))('falls back right: %s', (_name, c) => {
    const email = renderFor(library, template, c.customer);
    const fellBack = email.fallbacks.map((f) => f.expression);
    for (const block of c.fallsBack) expect(fellBack).toContain(block);
    expectCopy(email, c.shows, c.hides);
  });

  test('the bare customer (an address, nothing else) gets a whole email', () => {
    const email = renderFor(library, template, BARE_CUSTOMER);
    expectCopy(email, [], ['Ana', '£0.00']);
    expect(email.text).toContain('Harbour & Hide Ltd, 12 Quay Street');
  });

  test('each conditional block has a case that makes it fall back', () => {
    const covered = new Set<string>();
    for (const customer of [...spec.cases.map((c) => c.customer), BARE_CUSTOMER]) {
      for (const f of renderFor(library, template, customer).fallbacks) covered.add(`${f.at} ${f.expression}`);
    }
    const missing = blocksOf(template).filter((block) => !covered.has(block) && !spec.guarded.some((g) => block.endsWith(` ${g}`)));
    expect(missing).toEqual([]);
  });
});

/** Whether `email`'s render fell back at block `expression` of partials/`partial`.mjml. */
function fellBackIn(email: RenderedEmail, partial: string, expression: string): boolean {
  return email.fallbacks.some((f) => f.at.startsWith(`templates/partials/${partial}.mjml:`) && f.expression === expression);
}

const brandText = (extra: string) => ['name: Harbour & Hide', 'postal_address: Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ, United Kingdom', extra].join('\n') + '\n';
const withBrand = (brand: Brand) => shippedLibrary(brand);

describe('the shared partials', () => {

  test('header: the logo linked to the shop with the brand name as alt text; without a logo, the name as a wordmark', () => {
    const logo = renderFor(library, 'cart-reminder', FULL_CUSTOMER);
    expect(logo.html).toMatch(/<a href="https:\/\/shop\.example\/?"[^>]*><img src="https:\/\/shop\.example\/brand\/logo\.png" alt="Harbour &amp; Hide" width="160"/);
    const plain = renderFor(withBrand(parseBrand(brandText(''), 'brand.yaml')), 'cart-reminder', FULL_CUSTOMER);
    // A brand without a logo is the brand file's choice, not a customer's missing data: no fallback is recorded.
    expect(plain.fallbacks.filter((f) => f.expression.includes('brand.'))).toEqual([]);
    expect(plain.html).not.toContain('<img src="https://shop.example/brand/logo.png"');
    expect(plain.text).toContain('Harbour & Hide (https://shop.example/)');
  });

  test('footer: the support contact as far as brand.yaml gives one; the marketing links and the address always', () => {
    const both = renderFor(library, 'cart-reminder', FULL_CUSTOMER);
    expect(both.text).toContain('Need help? Visit our help centre (https://shop.example/help) or write to help@shop.example (mailto:help@shop.example).');
    const urlOnly = renderFor(withBrand(parseBrand(brandText('support: { url: "https://shop.example/help" }'), 'brand.yaml')), 'cart-reminder', FULL_CUSTOMER);
    expect(urlOnly.text).toContain('Need help? Visit our help centre (https://shop.example/help).');
    expect(urlOnly.text).not.toContain('write to');
    const emailOnly = renderFor(withBrand(parseBrand(brandText('support: { email: help@shop.example }'), 'brand.yaml')), 'cart-reminder', FULL_CUSTOMER);
    expect(emailOnly.text).toContain('Need help? Write to help@shop.example (mailto:help@shop.example).');
    expect(emailOnly.text).not.toContain('help centre');
    const none = renderFor(withBrand(parseBrand(brandText(''), 'brand.yaml')), 'cart-reminder', FULL_CUSTOMER);
    expect(none.text).not.toContain('Need help?');
    for (const email of [both, urlOnly, emailOnly, none]) {
      expect(email.text).toContain('You get this email because you shop with Harbour & Hide.');
      expect(email.html).toContain('href="https://mf.example/preferences/token"');
      expect(email.html).toContain('href="https://mf.example/u/token"');
      expect(email.text).toContain('Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ, United Kingdom');
      expect(email.text).not.toContain('Follow us');
    }
  });

  test('footer: social links when brand.yaml lists some, linked when their domains are link domains', () => {
    const brand = parseBrand(brandText('social: { Instagram: "https://instagram.com/harbourandhide" }'), 'brand.yaml');
    const email = renderFor(shippedLibrary(brand, { linkDomains: ['shop.example', 'instagram.com'] }), 'cart-reminder', FULL_CUSTOMER);
    expect(email.text).toContain('Follow us: Instagram (https://instagram.com/harbourandhide)');
  });

  test('transactional footer: the support contact and the address, no marketing links', () => {
    const email = renderFor(library, 'order-thank-you', FULL_CUSTOMER);
    expect(email.text).toContain('Questions about your order? Visit our help centre (https://shop.example/help) or write to help@shop.example (mailto:help@shop.example).');
    expect(email.text).toContain('You get this email because you placed an order with Harbour & Hide.');
    expect(email.html).not.toContain('mf.example/u/');
    const emailOnly = renderFor(withBrand(parseBrand(brandText('support: { email: help@shop.example }'), 'brand.yaml')), 'order-thank-you', FULL_CUSTOMER);
    expect(emailOnly.text).toContain('Questions about your order? Write to help@shop.example (mailto:help@shop.example).');
    const none = renderFor(withBrand(parseBrand(brandText(''), 'brand.yaml')), 'order-thank-you', FULL_CUSTOMER);
    expect(none.text).not.toContain('Questions about your order?');
    expect(none.text).toContain('Harbour & Hide Ltd, 12 Quay Street');
  });

  test('product card: picture, linked name, unit price, quantity and line total; what is missing is left out, not shown blank', () => {
    const cart = (items: unknown[]) => renderFor(library, 'cart-reminder', customerWith(FULL_CUSTOMER, { profile: { cart: items } }));
    const full = cart([{ product_id: 'sku-2', quantity: 2 }]);
    expect(full.html).toMatch(/<img[^>]*alt="Canvas Runner"[^>]*src="https:\/\/shop\.example\/img\/sku-2\.jpg"|<img[^>]*src="https:\/\/shop\.example\/img\/sku-2\.jpg"[^>]*alt="Canvas Runner"/);
    expect(full.text).toContain('Canvas Runner (https://shop.example/p/sku-2)\n\n£59.00 each · Qty 2\n\n£118.00\n\nRated 4.4 / 5 from 158 reviews');

    // Not in the catalog: no picture, no price, no rating; the rating without a review count.
    const bare = cart([{ product_id: 'gift-wrap', quantity: 1 }, { product_id: 'mystery', name: 'Mystery Box', price: 5, quantity: 1, rating: 4 }]);
    for (const block of ['#if image_url', '#if price', '#if rating', '#if review_count']) expect(fellBackIn(bare, 'product-card', block)).toBe(true);
    expect(bare.text).toContain('gift-wrap (https://shop.example/products/gift-wrap)');
    expect(bare.text).toContain('Mystery Box (https://shop.example/products/mystery)\n\n£5.00 each · Qty 1\n\n£5.00\n\nRated 4.0 / 5');
    expect(bare.text).not.toMatch(/Rated 4\.0 \/ 5 from/);
    expect(bare.html).not.toMatch(/<img[^>]*alt="gift-wrap"/);

    // A recommended product has no quantity: its price alone.
    const recommended = renderFor(library, 'upsell-related', FULL_CUSTOMER);
    expect(fellBackIn(recommended, 'product-card', '#if quantity')).toBe(true);
    expect(recommended.text).toContain('Merino Trail Socks (https://shop.example/p/sku-10)\n\n£14.50\n\nRated 4.8 / 5 from 389 reviews');
    expect(recommended.text).not.toContain('each · Qty');
  });
});

test('each conditional block of the partials has a render above that makes it fall back', () => {
  const bareKit = withBrand(parseBrand(brandText(''), 'brand.yaml'));
  const urlOnly = withBrand(parseBrand(brandText('support: { url: "https://shop.example/help" }'), 'brand.yaml'));
  const oddCart = customerWith(FULL_CUSTOMER, { profile: { cart: [{ product_id: 'gift-wrap', quantity: 1 }, { product_id: 'mystery', name: 'Mystery Box', price: 5, quantity: 1, rating: 4 }] } });
  const renders = [
    renderFor(bareKit, 'cart-reminder', FULL_CUSTOMER),
    renderFor(bareKit, 'order-thank-you', FULL_CUSTOMER),
    renderFor(urlOnly, 'cart-reminder', FULL_CUSTOMER),
    renderFor(urlOnly, 'order-thank-you', FULL_CUSTOMER),
    renderFor(library, 'cart-reminder', oddCart),
    renderFor(library, 'upsell-related', FULL_CUSTOMER),
  ];
  const covered = new Set(renders.flatMap((email) => email.fallbacks.map((f) => `${f.at} ${f.expression}`)));
  const partialBlocks = new Set(library.names().flatMap((name) => library.get(name).sites.filter((site) => site.at.startsWith('templates/partials/') && site.expression.startsWith('#')).map((site) => `${site.at} ${site.expression}`)));
  // Blocks on the brand kit alone (logo, support, social) are the same for every recipient and record no fallback:
  // the renders with a bare kit above show their else branches.
  expect([...partialBlocks].filter((block) => !covered.has(block))).toEqual([]);
  expect([...partialBlocks].filter((block) => block.includes('brand.'))).toEqual([]);
  expect(partialBlocks.size).toBeGreaterThan(4);
});

test('without a catalog, the cart and order blocks show the items as the events described them', () => {
  const plain = (template: string) => library.render(template, { profile: FULL_CUSTOMER.profile, consent: { email_marketing: true }, event: FULL_CUSTOMER.event, data: FULL_CUSTOMER.data }, { recommend: null });
  expect(plain('order-thank-you').text).toContain('What you ordered');
  expect(plain('order-thank-you').text).toContain('Trail Shoe (https://shop.example/products/sku-1)');
  expect(plain('review-request').text).toContain('Shoe Care Kit');
  expect(plain('cart-reminder').text).toContain('Subtotal £140.00');
  // Nothing to recommend without a catalog: the fallback sentence, not an empty list under its heading.
  expect(plain('upsell-related').text).toContain('Thank you for shopping with us');
});
