// The README gallery's pure parts: its sample customers are valid Segment calls whose folded profiles fit the flows
// they stand for, every template finds a family, the placeholders and table cells escape what they show, and the
// README section is replaced between its markers and nowhere else.
import fs from 'node:fs';
import path from 'node:path';
import { parseCatalogJson } from '../../core/catalog';
import { applyEventsToProfile, emptyProfile, profileContext } from '../../core/profile';
import { parseBatchCall } from '../../core/segment-spec';
import { familyOf, sampleCustomers, SAMPLE_CUSTOMER_IDS, type TemplateFamily } from '../../scripts/gallery-customers';
import { GALLERY_END, GALLERY_START, gallerySection, initialsOf, markdownCellText, placeholderSvg, productPlaceholder, replaceGallerySection } from '../../scripts/gallery-markup';

const ROOT = path.resolve(__dirname, '../..');
const DAY = 86_400_000;
const NOW = Date.UTC(2025, 5, 2, 15, 0, 0);
const catalog = parseCatalogJson(fs.readFileSync(path.join(ROOT, 'catalog/products.json'), 'utf8'), 'catalog/products.json');

/** The customer's profile as templates read it, folded from the calls as ingest parses them. */
function profileOf(family: TemplateFamily): Record<string, any> {
  const customer = sampleCustomers(catalog, NOW).find((c) => c.family === family)!;
  let n = 0;
  const { events, rejected } = parseBatchCall({ batch: customer.calls }, NOW, () => `generated-${++n}`);
  expect(rejected).toEqual([]);
  expect(events).toHaveLength(customer.calls.length);
  const profile = applyEventsToProfile(
    emptyProfile(customer.customerId, NOW),
    [...events].sort((a, b) => a.timestamp - b.timestamp).map((event) => ({ event, now: NOW })),
  );
  return profileContext(profile, NOW).profile;
}

describe('sample customers', () => {
  test('one per family, each identified with a first name, an en-GB or en-US locale and email consent', () => {
    const customers = sampleCustomers(catalog, NOW);
    expect(customers.map((c) => c.family).sort()).toEqual(['browse', 'cart', 'order', 'post-purchase', 'winback']);
    for (const customer of customers) {
      expect(customer.customerId).toBe(SAMPLE_CUSTOMER_IDS[customer.family]);
      const profile = profileOf(customer.family);
      expect(profile.first_name).toMatch(/^[A-Z][a-z]+$/);
      expect(['en-GB', 'en-US']).toContain(profile.locale);
      expect(profile.email).toMatch(/@example\.com$/);
    }
  });

  test('every call is in the past, so the preview renders a history and not a future', () => {
    for (const customer of sampleCustomers(catalog, NOW)) {
      for (const call of customer.calls) expect(Date.parse(call.timestamp as string)).toBeLessThan(NOW);
    }
  });

  test('cart: a returning customer with items in her cart, and the cart flow trigger', () => {
    const profile = profileOf('cart');
    expect(profile.cart).toHaveLength(2);
    expect(profile.orders_count).toBeGreaterThanOrEqual(1);
    expect(profile.cart_url).toMatch(/^https:\/\/shop\.example\//);
    expect(sampleCustomers(catalog, NOW).find((c) => c.family === 'cart')!.trigger).toMatchObject({ event: 'Product Added' });
  });

  test('browse: three views of one category this week, nothing in the cart, no order in 30 days', () => {
    const profile = profileOf('browse');
    expect(profile.last_browsed_category).toBe('Shoes');
    expect(profile.product_views).toBeGreaterThanOrEqual(3);
    expect(profile.cart ?? []).toEqual([]);
    expect(NOW - profile.last_order_at).toBeGreaterThan(30 * DAY);
  });

  test('order and post-purchase: their last order has products, the first with related products; the trigger is that order', () => {
    for (const family of ['order', 'post-purchase'] as const) {
      const profile = profileOf(family);
      expect(profile.last_order_products.length).toBeGreaterThanOrEqual(2);
      const trigger = sampleCustomers(catalog, NOW).find((c) => c.family === family)!.trigger!;
      expect(trigger.event).toBe('Order Completed');
      expect((trigger.properties as { total: number }).total).toBeCloseTo(profile.total_spent, 2); // their only order
    }
    const bought = profileOf('post-purchase').last_order_products[0].product_id;
    expect(catalog.find((p) => p.product_id === bought)!.related_ids.length).toBeGreaterThan(0);
  });

  test('winback: over 200 spent, and the last order more than 60 days ago (the lapsed segment)', () => {
    const profile = profileOf('winback');
    expect(profile.total_spent).toBeGreaterThanOrEqual(200);
    expect(NOW - profile.last_order_at).toBeGreaterThan(60 * DAY);
  });

  test('a catalog without a product the customers use is refused, naming it', () => {
    expect(() => sampleCustomers(catalog.filter((p) => p.product_id !== 'sku-13'), NOW)).toThrow(/sku-13.*catalog no longer has/);
  });
});

test('every shipped template has the family its flow sends it in', () => {
  const expected: Record<string, TemplateFamily> = {
    'order-thank-you': 'order',
    'cart-reminder': 'cart',
    'cart-discount': 'cart',
    'cart-reviews': 'cart',
    'browse-reminder': 'browse',
    'review-request': 'post-purchase',
    'upsell-related': 'post-purchase',
    'winback-miss-you': 'winback',
    'winback-offer': 'winback',
  };
  for (const [template, family] of Object.entries(expected)) expect([template, familyOf(template)]).toEqual([template, family]);
});

describe('placeholders and table cells', () => {
  test('initials of the first two words', () => {
    expect(initialsOf('Trail Shoe')).toBe('TS');
    expect(initialsOf('Harbour & Hide')).toBe('HH');
    expect(initialsOf('USB-C Charger')).toBe('UC');
    expect(initialsOf('  ')).toBe('?');
  });

  test('the SVG escapes the label and font, and is tinted with the brand colours', () => {
    const svg = placeholderSvg({ label: 'Harbour & Hide <Ltd>', width: 160, height: 40 }, { primary: '#1f5f73', surface: '#ffffff' }, "'Helvetica Neue', Arial");
    expect(svg).toContain('>Harbour &amp; Hide &lt;Ltd&gt;</text>');
    expect(svg).toContain('font-family="&apos;Helvetica Neue&apos;, Arial"');
    expect(svg).toContain('fill="#1f5f73"');
    expect(svg).not.toContain('fill="#ffffff"'); // the box is a tint, not the bare surface
    expect(productPlaceholder('Trail Shoe')).toEqual({ label: 'TS', width: 480, height: 480 });
  });

  test('a subject cannot break the table or start markup', () => {
    expect(markdownCellText('50% off | *today* <b>only</b> & [free]')).toBe('50% off \\| \\*today\\* &lt;b&gt;only&lt;/b&gt; &amp; \\[free\\]');
  });
});

describe('the README section', () => {
  const readme = `# Shop\n\n## What the emails look like\n\n${GALLERY_START}\nold table\n${GALLERY_END}\n\n## Next\nkept\n`;
  const section = gallerySection([{ template: 'cart-reminder', subject: 'Olivia, you left something', customer: 'Olivia (en-GB)' }]);

  test('replaces what is between the markers and keeps the rest; a rerun changes nothing', () => {
    const once = replaceGallerySection(readme, section);
    expect(once).not.toContain('old table');
    expect(once.startsWith('# Shop\n\n## What the emails look like\n\n')).toBe(true);
    expect(once.endsWith(`${GALLERY_END}\n\n## Next\nkept\n`)).toBe(true);
    expect(once).toContain('<img src="docs/gallery/cart-reminder-desktop.jpg" width="288"');
    expect(once).toContain('<img src="docs/gallery/cart-reminder-phone.jpg" width="180"');
    expect(once).toContain('**Olivia, you left something**');
    expect(once).toContain('`npm run gallery`');
    expect(replaceGallerySection(once, section)).toBe(once);
  });

  test('missing, reversed or repeated markers are refused, saying what to add', () => {
    expect(() => replaceGallerySection('# Shop\n', section)).toThrow(/needs the markers <!-- gallery:start --> and <!-- gallery:end -->/);
    expect(() => replaceGallerySection(`${GALLERY_END}\n${GALLERY_START}\n`, section)).toThrow(/in that order/);
    expect(() => replaceGallerySection(`${readme}${GALLERY_START}\n`, section)).toThrow(/more than once/);
  });
});
