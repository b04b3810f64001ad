// brand.yaml: the sender's name and postal address (required), topic labels (optional), every problem reported with
// file:line and the field; the shipped file parses and labels every topic the shipped flows declare.
import fs from 'node:fs';
import path from 'node:path';
import { brandTemplateData, checkBrand, DEFAULT_COLORS, DEFAULT_DARK_COLORS, DEFAULT_FONT_FAMILY, humanizeTopic, parseBrand, topicLabel } from '../../core/brand';
import { InvalidFileError } from '../../core/errors';

const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

describe('parseBrand', () => {
  test('reads name, the postal address on one line, and topic labels', () => {
    const brand = parseBrand(
      yaml('name: Harbour & Hide', 'postal_address: |', '  Harbour & Hide Ltd', '  12 Quay Street', '  Bristol BS1 4DJ', 'topics:', '  cart-reminders:', '    label: Cart reminders', '    description: Items you left.', '  winback-offers: { label: Offers }'),
      'brand.yaml',
    );
    expect(brand).toEqual({
      name: 'Harbour & Hide',
      postalAddress: 'Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ',
      topics: { 'cart-reminders': { label: 'Cart reminders', description: 'Items you left.' }, 'winback-offers': { label: 'Offers', description: null } },
      // No kit in the file: neutral defaults that read well in both schemes.
      logo: null,
      colors: DEFAULT_COLORS,
      darkColors: DEFAULT_DARK_COLORS,
      fontFamily: DEFAULT_FONT_FAMILY,
      support: { email: null, url: null },
      social: [],
    });
  });

  test('reads the brand kit: logo, both colour schemes over their defaults, font, support and social links', () => {
    const brand = parseBrand(
      yaml(
        'name: Shop',
        'postal_address: 1 Main St',
        'logo: { url: "https://shop.example/logo.png", alt: Shop logo, width: 140 }',
        'colors: { primary: "#7A1F3D", background: "#FAF7F2" }',
        'dark_colors: { primary: "#F0A8C0", primary_text: "#2A0A14" }',
        'font_family: "Georgia, \'Times New Roman\', serif"',
        'support: { email: help@shop.example, url: "https://shop.example/help" }',
        'social: { Instagram: "https://instagram.com/shop", Pinterest: "https://pinterest.com/shop" }',
      ),
      'brand.yaml',
    );
    expect(brand.logo).toEqual({ url: 'https://shop.example/logo.png', alt: 'Shop logo', width: 140 });
    expect(brand.colors).toEqual({ ...DEFAULT_COLORS, primary: '#7a1f3d', background: '#faf7f2' });
    expect(brand.darkColors).toEqual({ ...DEFAULT_DARK_COLORS, primary: '#f0a8c0', primary_text: '#2a0a14' });
    expect(brand.fontFamily).toBe("Georgia, 'Times New Roman', serif");
    expect(brand.support).toEqual({ email: 'help@shop.example', url: 'https://shop.example/help' });
    expect(brand.social).toEqual([
      { name: 'Instagram', url: 'https://instagram.com/shop' },
      { name: 'Pinterest', url: 'https://pinterest.com/shop' },
    ]);
    expect(brandTemplateData(brand)).toMatchObject({ colors: { primary: '#7a1f3d' }, dark_colors: { primary: '#f0a8c0' }, font_family: brand.fontFamily, logo: brand.logo });
  });

  test('topics are optional', () => {
    expect(parseBrand(yaml('name: Shop', 'postal_address: 1 Main St'), 'brand.yaml').topics).toEqual({});
  });

  test.each([
    [yaml('name: Shop'), 1, 'postal_address', 'missing "postal_address": the sender\'s postal address, which every marketing email must show'],
    [yaml('postal_address: 1 Main St'), 1, 'name', 'missing "name"'],
    [yaml('name: Shop', 'postal_address: ""'), 2, 'postal_address', 'postal_address must be non-empty text'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'adress: x'), 3, 'adress', 'unknown key "adress" in brand.yaml; allowed keys: name, postal_address, topics, logo'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'logo: { url: http://shop.example/logo.png }'), 3, 'logo.url', 'logo.url must be an https:// URL'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'logo: { alt: Shop }'), 3, 'logo.url', 'missing "url"'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'logo: { url: "https://shop.example/l.png", width: 900 }'), 3, 'logo.width', 'between 40 and 560'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'colors:', '  primary: blue'), 4, 'colors.primary', 'colors.primary must be a hex colour in quotes'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'colors:', '  tint: "#ffffff"'), 4, 'colors.tint', 'unknown key "tint" in colors'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'colors:', '  text: "#bbbbbb"'), 4, 'colors.text', 'has contrast 1.91:1; text needs at least 4.5:1 (WCAG AA)'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'dark_colors:', '  primary_text: "#8fd0e0"'), 4, 'dark_colors.primary_text', 'dark_colors.primary_text (#8fd0e0) on dark_colors.primary (#8fd0e0) has contrast 1.00:1'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'font_family: "Arial; color: red"'), 3, 'font_family', 'may not hold < > { } ;'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'support: { email: not-an-address }'), 3, 'support.email', 'support.email must be an email address'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'social:', '  Instagram: javascript:alert(1)'), 4, 'social.Instagram', 'social.Instagram must be an https:// URL'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'topics:', '  Cart Reminders: { label: x }'), 4, 'topics.Cart Reminders', 'must be kebab-case'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'topics:', '  cart-reminders: { description: x }'), 4, 'topics.cart-reminders.label', 'missing "label"'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'topics:', '  cart-reminders: { label: x, colour: red }'), 4, 'topics.cart-reminders.colour', 'unknown key "colour"'],
    [yaml('name: Shop', 'postal_address: 1 Main St', 'topics: [a]'), 3, 'topics', 'topics must be a map of topic id to { label, description }'],
  ])('refuses %j at line %i (%s)', (source, line, field, message) => {
    const { brand, problems } = checkBrand(source, 'brand.yaml');
    expect(brand).toBeUndefined();
    expect(problems).toEqual([expect.objectContaining({ file: 'brand.yaml', line, path: field, severity: 'error', message: expect.stringContaining(message) })]);
  });

  test('an empty file and a YAML syntax error are errors too; parseBrand throws them all', () => {
    expect(checkBrand('', 'brand.yaml').problems).toEqual([expect.objectContaining({ message: expect.stringContaining('empty file') })]);
    expect(checkBrand('name: [', 'brand.yaml').problems[0]).toMatchObject({ severity: 'error', message: expect.stringContaining('YAML syntax') });
    expect(() => parseBrand(yaml('name: Shop'), 'brand.yaml')).toThrow(InvalidFileError);
    expect(() => parseBrand(yaml('name: Shop'), 'brand.yaml')).toThrow(/^brand\.yaml:1:1 \(postal_address\): error: missing "postal_address"/);
  });
});

describe('topic labels', () => {
  test('a topic the brand does not label shows its id humanized', () => {
    expect(humanizeTopic('cart-reminders')).toBe('Cart reminders');
    expect(topicLabel(null, 'back-in-stock')).toEqual({ label: 'Back in stock', description: null });
    const brand = parseBrand(yaml('name: Shop', 'postal_address: 1 Main St', 'topics: { back-in-stock: { label: Restocks } }'), 'brand.yaml');
    expect(topicLabel(brand, 'back-in-stock').label).toBe('Restocks');
    expect(topicLabel(brand, 'winback-offers').label).toBe('Winback offers');
  });

  test('the shipped brand.yaml parses, with an address, and labels every topic of the shipped flows', () => {
    const root = path.resolve(__dirname, '../..');
    const brand = parseBrand(fs.readFileSync(path.join(root, 'brand.yaml'), 'utf8'), 'brand.yaml');
    expect(brand.postalAddress).toMatch(/\d/);
    const declared = fs
      .readdirSync(path.join(root, 'flows'))
      .map((f) => /^topic: (\S+)$/m.exec(fs.readFileSync(path.join(root, 'flows', f), 'utf8'))?.[1])
      .filter((t): t is string => t !== undefined);
    expect(declared.length).toBeGreaterThan(0);
    for (const topic of declared) expect(Object.keys(brand.topics)).toContain(topic);
  });
});
