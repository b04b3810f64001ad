// The brand kit in the compiler: `{{brand.*}}` values written into the MJML at compile time (so MJML's mj-attributes
// and inline styles see real colours), escaped for where they land; the <title> set to the subject; <html lang> from
// the customer's locale; the line_total and subtotal helpers.
import { brandTemplateData, SAMPLE_BRAND, type Brand } from '../../core/brand';
import { compileTemplate, renderTemplate, templateHandlebars, type CompiledTemplate } from '../../core/template-compiler';
import { languageTag, lineTotal, subtotalOf, type RenderRuntime } from '../../core/template-helpers';

const handlebars = templateHandlebars();
const FOOTER = '<mj-section><mj-column><mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{preferences_url}}">Manage preferences</a> {{brand.postal_address}}</mj-text></mj-column></mj-section>';
const BRAND: Brand = { ...SAMPLE_BRAND, name: 'Harbour & Hide', colors: { ...SAMPLE_BRAND.colors, primary: '#7a1f3d' }, fontFamily: "Georgia, 'Times New Roman', serif" };

function compiled(text: string, brand: Brand = BRAND): CompiledTemplate {
  const library = { partials: new Map([['footer', { file: 'partials/footer.mjml', text: FOOTER }]]), layouts: new Map() };
  const result = compileTemplate('offer', { file: 'templates/offer.mjml', text }, library, handlebars, { brand: brandTemplateData(brand) });
  const errors = result.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0 || !result.template) throw new Error(errors.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
  return result.template;
}

const RUNTIME: Omit<RenderRuntime, 'sites' | 'fallbacks'> = {
  locale: 'de-DE',
  timezone: 'UTC',
  currency: 'EUR',
  shopUrl: 'https://shop.example',
  linkDomains: ['shop.example'],
  link: (url) => url,
  unsubscribeUrl: 'https://t.example/u/1',
  openPixelUrl: null,
  recommend: null,
  productUrl: () => undefined,
};

const TEMPLATE = `---
subject: "{{#if profile.first_name}}{{profile.first_name}}, {{else}}{{/if}}news from {{brand.name}}"
category: marketing
---
<mjml>
  <mj-head>
    <mj-attributes>
      <mj-all font-family="{{brand.font_family}}" />
      <mj-button background-color="{{brand.colors.primary}}" color="{{brand.colors.primary_text}}" />
      <mj-class name="muted" color="{{brand.colors.muted}}" />
    </mj-attributes>
  </mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text mj-class="muted">From {{brand.name}}</mj-text>
      <mj-button href="https://shop.example/new">See what is new</mj-button>
    </mj-column></mj-section>
    {{> footer}}
  </mj-body>
</mjml>
`;

describe('the brand kit in templates', () => {
  test('brand values reach mj-attributes and mj-class as real values, escaped in HTML and plain in the subject', () => {
    const template = compiled(TEMPLATE);
    const rendered = renderTemplate(template, { profile: { first_name: 'Ana' }, consent: {} }, RUNTIME);
    expect(rendered.html).toContain('background:#7a1f3d');
    expect(rendered.html).toContain(`font-family:Georgia, 'Times New Roman', serif`);
    expect(rendered.html).toMatch(/color:#57606a[^>]*>From Harbour &amp; Hide/);
    expect(rendered.html).not.toContain('{{brand');
    expect(rendered.subject).toBe('Ana, news from Harbour & Hide');
  });

  test('another brand file restyles the same template: the colour comes from the brand, not the template', () => {
    const teal = compiled(TEMPLATE, { ...BRAND, colors: { ...BRAND.colors, primary: '#0f766e' } });
    const html = renderTemplate(teal, { profile: {}, consent: {} }, RUNTIME).html;
    expect(html).toContain('background:#0f766e');
    expect(html).not.toContain('#7a1f3d');
  });

  test('a brand value that could be read as Handlebars or HTML stays text', () => {
    const template = compiled(TEMPLATE, { ...BRAND, name: 'A <b>{{x}}</b> Shop' });
    const rendered = renderTemplate(template, { profile: {}, consent: {} }, RUNTIME);
    expect(rendered.html).toContain('From A &lt;b&gt;&#123;&#123;x}}&lt;/b&gt; Shop');
    expect(rendered.subject).toBe('news from A <b>{{x}}</b> Shop');
  });

  test('<title> is the rendered subject, and <html lang> is the customer locale', () => {
    const template = compiled(TEMPLATE);
    const german = renderTemplate(template, { profile: { first_name: 'Ana' }, consent: {} }, RUNTIME);
    expect(german.html).toContain('<title>Ana, news from Harbour &amp; Hide</title>');
    expect(german.html).toMatch(/^<!doctype html>\s*<html lang="de-DE"/i);
    // MJML also marks the body's wrapper; a screen reader takes the nearer one.
    expect(german.html).not.toContain('lang="und"');
    expect(german.html).toMatch(/<div[^>]*lang="de-DE"/);
    const unknown = renderTemplate(template, { profile: {}, consent: {} }, { ...RUNTIME, locale: 'not a locale"><script>' });
    expect(unknown.html).toMatch(/^<!doctype html>\s*<html lang="en"/i);
    expect(unknown.html).toContain('<title>news from Harbour &amp; Hide</title>');
    expect(unknown.text).not.toContain('news from');
  });

  test('a template that writes its own mj-title keeps it', () => {
    const template = compiled(TEMPLATE.replace('<mj-head>', '<mj-head><mj-title>Our news</mj-title>'));
    expect(renderTemplate(template, { profile: {}, consent: {} }, RUNTIME).html).toContain('<title>Our news</title>');
  });
});

describe('line_total, subtotal and languageTag', () => {
  test('a line is price × quantity (1 when none), in cents; a subtotal sums the lines that have a price', () => {
    expect(lineTotal({ price: 19.99, quantity: 3 })).toBe(59.97);
    expect(lineTotal({ price: '12.50' })).toBe(12.5);
    expect(lineTotal({ name: 'no price' })).toBeUndefined();
    expect(subtotalOf([{ price: 19.99, quantity: 3 }, { price: 5 }, { name: 'x' }])).toBe(64.97);
    expect(subtotalOf([])).toBeUndefined();
    expect(subtotalOf('not a list')).toBeUndefined();
  });

  test('in a template: a cart with its line totals and subtotal in the customer currency', () => {
    const template = compiled(`---
subject: Cart
category: transactional
---
<mjml><mj-body><mj-section><mj-column>
{{#each profile.cart}}<mj-text css-class="line">{{name}} {{quantity}} × {{money price}} = {{money (line_total this)}}</mj-text>{{else}}<mj-text>Empty.</mj-text>{{/each}}
{{#if (subtotal profile.cart)}}<mj-text css-class="subtotal">Subtotal {{money (subtotal profile.cart)}}</mj-text>{{else}}<mj-text>No prices.</mj-text>{{/if}}
</mj-column></mj-section></mj-body></mjml>
`);
    const rendered = renderTemplate(template, { profile: { cart: [{ name: 'Sock', price: 4.5, quantity: 2 }, { name: 'Boot', price: 120, quantity: 1 }] }, consent: {} }, { ...RUNTIME, locale: 'en-US', currency: 'USD' });
    expect(rendered.text).toContain('Sock 2 × $4.50 = $9.00');
    expect(rendered.text).toContain('Subtotal $129.00');
    const empty = renderTemplate(template, { profile: { cart: [{ name: 'Sock' }] }, consent: {} }, RUNTIME);
    expect(empty.text).toContain('No prices.');
  });

  test('languageTag takes BCP 47 tags and underscores, and falls back to en', () => {
    expect(languageTag('pt_BR')).toBe('pt-BR');
    expect(languageTag('fr')).toBe('fr');
    expect(languageTag('')).toBe('en');
    expect(languageTag(null)).toBe('en');
    expect(languageTag('en-US" onload="x')).toBe('en');
  });
});

describe('whitespace control in the text part', () => {
  test('{{~x}} and {{x ~}} outputs compile and render in both parts (the text part prints them unescaped)', () => {
    const template = compiled(`---
subject: "Hi"
category: transactional
---
<mjml><mj-body><mj-section><mj-column>
<mj-text>A   {{~profile.first_name ~}}   B {{profile.last_name ~}} C</mj-text>
</mj-column></mj-section></mj-body></mjml>
`);
    const rendered = renderTemplate(template, { profile: { first_name: 'Ana & Co', last_name: 'Lee' }, consent: {} }, RUNTIME);
    expect(rendered.text).toContain('AAna & CoB LeeC');
    expect(rendered.html).toContain('AAna &amp; CoB LeeC');
  });
});

describe('blocks on the brand kit', () => {
  test('are not customers\' fallbacks: a brand without a logo takes the else, and no send records it', () => {
    const template = compiled(`---
subject: Hi
category: transactional
---
<mjml><mj-body><mj-section><mj-column>
{{#if brand.logo}}<mj-text>logo</mj-text>{{else}}<mj-text css-class="name">{{brand.name}}</mj-text>{{/if}}
{{#if profile.first_name}}<mj-text>Hi {{profile.first_name}}</mj-text>{{else}}<mj-text>Hi</mj-text>{{/if}}
</mj-column></mj-section></mj-body></mjml>
`);
    const rendered = renderTemplate(template, { profile: {}, consent: {}, brand: brandTemplateData(BRAND) }, RUNTIME);
    expect(rendered.text).toContain('Harbour & Hide');
    expect(rendered.fallbacks.map((f) => f.expression)).toEqual(['#if profile.first_name']);
  });
});
