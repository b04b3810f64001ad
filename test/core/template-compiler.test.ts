// The template compiler: what validation refuses (with template:line), what a render falls back to and records,
// the fields a template reads, link rewriting, the plain-text twin, and that MJML runs at compile time only.
import { compileTemplate, renderTemplate, templateHandlebars, type CompiledTemplate, type TemplateData } from '../../core/template-compiler';
import type { RenderRuntime } from '../../core/template-helpers';
import type { SourceFile } from '../../core/template-source';

const handlebars = templateHandlebars();

const FOOTER = `<mj-section><mj-column><mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{preferences_url}}">Manage preferences</a> {{brand.postal_address}}</mj-text></mj-column></mj-section>`;
const ROW = `<mj-section css-class="row"><mj-column><mj-text css-class="name">{{default name product_id}}</mj-text>
{{#if price}}<mj-text css-class="price">{{money price}}</mj-text>{{else}}{{/if}}</mj-column></mj-section>`;

function library(partials: Record<string, string> = {}, layouts: Record<string, string> = {}) {
  const files = (dir: string, sources: Record<string, string>) => new Map(Object.entries(sources).map(([name, text]) => [name, { file: `${dir}/${name}.mjml`, text }]));
  return { partials: files('partials', { footer: FOOTER, row: ROW, ...partials }), layouts: files('layouts', layouts) };
}

function compile(text: string, lib = library(), name = 'test') {
  const source: SourceFile = { file: `templates/${name}.mjml`, text };
  return compileTemplate(name, source, lib, handlebars);
}

function compiled(text: string, lib = library()): CompiledTemplate {
  const result = compile(text, lib);
  const errors = result.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0 || !result.template) throw new Error(errors.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
  return result.template;
}

const RUNTIME: Omit<RenderRuntime, 'sites' | 'fallbacks'> = {
  locale: 'en-US',
  timezone: 'UTC',
  currency: 'USD',
  shopUrl: 'https://shop.example',
  linkDomains: ['shop.example'],
  link: (url, index) => `https://t.example/c/${index}?to=${encodeURIComponent(url)}`,
  unsubscribeUrl: 'https://t.example/u/token-1',
  openPixelUrl: 'https://t.example/o/pixel.gif',
  recommend: null,
  productUrl: () => undefined,
};

function render(template: CompiledTemplate, data: Partial<TemplateData>, runtime: Partial<RenderRuntime> = {}) {
  return renderTemplate(template, { profile: {}, consent: {}, ...data }, { ...RUNTIME, ...runtime });
}

const HEADER = `---\nsubject: "Hi {{default profile.first_name \\"there\\"}}"\ncategory: marketing\n---\n`;

const CART = `${HEADER}<mjml>
  <mj-body>
    <mj-section><mj-column>
      {{#if profile.first_name}}<mj-text css-class="hello">Hello {{profile.first_name}}</mj-text>{{else}}<mj-text css-class="hello-fallback">Hello there</mj-text>{{/if}}
    </mj-column></mj-section>
    {{#each profile.cart}}{{> row}}{{else}}<mj-section><mj-column><mj-text css-class="cart-fallback">Your cart is saved.</mj-text></mj-column></mj-section>{{/each}}
    {{#when profile.behavior_score gte=50}}
    <mj-section><mj-column><mj-text css-class="vip">VIP shipping</mj-text></mj-column></mj-section>
    {{else}}
    <mj-section><mj-column><mj-text css-class="standard">Free returns</mj-text></mj-column></mj-section>
    {{/when}}
    <mj-section><mj-column><mj-button href="https://shop.example/cart?a=1&b=2">Back to cart</mj-button></mj-column></mj-section>
    {{> footer}}
  </mj-body>
</mjml>`;

describe('validation names the template and line', () => {
  const errorsOf = (text: string, lib = library()) => compile(text, lib).problems.filter((p) => p.severity === 'error');

  test('a conditional block without {{else}}', () => {
    const text = CART.replace('{{else}}<mj-text css-class="hello-fallback">Hello there</mj-text>', '');
    const errors = errorsOf(text);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: 'templates/test.mjml', line: 8 });
    expect(errors[0]!.message).toContain('{{#if profile.first_name}} has no fallback');
  });

  test('an unknown partial, with the partials there are', () => {
    const errors = errorsOf(CART.replace('{{> footer}}', '{{> fotter}}'));
    expect(errors.map((e) => [e.line, e.message])).toContainEqual([17, expect.stringContaining('unknown partial "fotter": add partials/fotter.mjml, or use one of: footer, row')]);
  });

  test('a broken MJML tag, at its line', () => {
    const errors = errorsOf(CART.replace('<mj-button href', '<mj-buton href'));
    expect(errors.some((e) => e.line === 16 && /MJML/.test(e.message) && /mj-buton/.test(e.message))).toBe(true);
  });

  test('an MJML error inside a partial names the partial file and its line', () => {
    const errors = errorsOf(CART, library({ row: `<mj-section>\n<mj-column>\n<mj-text colour="red">{{name}}</mj-text>\n</mj-column>\n</mj-section>` }));
    expect(errors).toEqual([expect.objectContaining({ file: 'partials/row.mjml', line: 3, message: expect.stringContaining('colour') })]);
  });

  test('an unknown helper', () => {
    const errors = errorsOf(CART, library({ row: ROW.replace('{{money price}}', '{{monee price}}') }));
    expect(errors).toEqual([expect.objectContaining({ file: 'partials/row.mjml', line: 2, message: expect.stringContaining('unknown helper "monee"') })]);
  });

  test('a block opened in one element and closed in another', () => {
    const text = CART.replace('{{#if profile.first_name}}<mj-text css-class="hello">Hello {{profile.first_name}}</mj-text>{{else}}<mj-text css-class="hello-fallback">Hello there</mj-text>{{/if}}', '<mj-text>{{#if profile.first_name}}Hello</mj-text><mj-text>{{else}}x{{/if}}</mj-text>');
    expect(errorsOf(text).map((e) => e.message).join('\n')).toMatch(/keep a block's parts in one element/);
  });

  test('text between MJML elements, where MJML would drop it', () => {
    const errors = errorsOf(CART.replace('{{> footer}}', '{{> footer}}\n    {{profile.first_name}}'));
    expect(errors).toEqual([expect.objectContaining({ line: 18, message: expect.stringContaining('put it inside <mj-text>') })]);
  });

  test('a marketing template without a visible unsubscribe link', () => {
    expect(errorsOf(CART.replace('{{> footer}}', '')).map((e) => e.message)).toEqual([expect.stringContaining('visible unsubscribe link')]);
    // Transactional mail carries none.
    expect(errorsOf(CART.replace('{{> footer}}', '').replace('category: marketing', 'category: transactional'))).toEqual([]);
  });

  test('a malformed when condition', () => {
    const errors = errorsOf(CART.replace('gte=50', 'above=50'));
    expect(errors).toEqual([expect.objectContaining({ line: 11, message: expect.stringContaining('unknown operator "above"') })]);
  });

  test('every error is listed, not just the first', () => {
    const text = CART.replace('{{> footer}}', '{{> nope}}').replace('<mj-button href', '<mj-buton href').replace('{{else}}<mj-text css-class="hello-fallback">Hello there</mj-text>', '');
    expect(errorsOf(text).length).toBeGreaterThanOrEqual(3);
  });

  test('warnings: an image without alt text, and a field nothing provides', () => {
    const text = CART.replace('{{> footer}}', '<mj-section><mj-column><mj-image src="https://x.example/a.png" /><mj-text>{{profile.shoe_size}}</mj-text></mj-column></mj-section>{{> footer}}');
    const result = compile(text);
    expect(result.template).not.toBeNull();
    const warnings = result.problems.filter((p) => p.severity === 'warning');
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ line: 17, message: expect.stringContaining('without alt text') }),
        expect.objectContaining({ line: 17, message: expect.stringContaining('profile.shoe_size') }),
      ]),
    );
    // Declaring the trait in the header settles it.
    const declared = compile(text.replace('category: marketing', 'category: marketing\ntraits: [shoe_size]'));
    expect(declared.problems.filter((p) => p.message.includes('shoe_size'))).toEqual([]);
  });
});

describe('size', () => {
  test('HTML over 102 KB before any data is a warning: Gmail would clip it', () => {
    const big = CART.replace('Free returns', `Free returns. ${'Lorem ipsum dolor sit amet. '.repeat(4000)}`);
    const result = compile(big);
    expect(result.template).not.toBeNull();
    expect(result.problems).toEqual([expect.objectContaining({ severity: 'warning', line: 5, message: expect.stringMatching(/the HTML is \d+ KB before any data: Gmail clips messages over 102 KB/) })]);
    expect(compile(CART).problems).toEqual([]);
  });
});

describe('fields read', () => {
  test('are resolved through each scopes, partials and when conditions', () => {
    const paths = compiled(CART).fieldsRead.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['profile.first_name', 'profile.cart', 'profile.cart[].name', 'profile.cart[].product_id', 'profile.cart[].price', 'profile.behavior_score']));
    expect(paths).not.toContain('name');
    expect(paths).not.toContain('unsubscribe_url');
  });
});

describe('rendering', () => {
  const template = compiled(CART);
  const full: Partial<TemplateData> = {
    profile: { first_name: 'Ana', behavior_score: 72, cart: [{ product_id: 'p1', name: 'Trail Shoe', price: 89.5, quantity: 1 }, { product_id: 'p2', name: 'Socks', price: 5, quantity: 2 }] },
  };

  test('shows the blocks the data asks for, and records no fallback when nothing is missing', () => {
    const out = render(template, full);
    expect(out.subject).toBe('Hi Ana');
    expect(out.html).toContain('Hello Ana');
    expect(out.html).toContain('Trail Shoe');
    expect(out.html).toContain('$89.50');
    expect(out.html).toContain('VIP shipping');
    expect(out.html).not.toContain('Free returns');
    expect(out.html).not.toContain('cart-fallback');
    expect(out.fallbacks).toEqual([]);
  });

  test('a profile lacking the fields gets every fallback, recorded with template:line, and no literal {{', () => {
    const out = render(template, { profile: {} });
    expect(out.subject).toBe('Hi there');
    expect(out.html).toContain('Hello there');
    expect(out.html).toContain('Your cart is saved.');
    expect(out.html).toContain('Free returns');
    expect(out.html).not.toMatch(/\{\{|MFHB|MFLK/);
    expect(out.text).not.toMatch(/\{\{|MFHB|MFLK/);
    expect(out.fallbacks).toEqual(
      expect.arrayContaining([
        { at: 'templates/test.mjml:8', expression: '#if profile.first_name', reason: 'empty or missing' },
        { at: 'templates/test.mjml:10', expression: '#each profile.cart', reason: 'empty or missing' },
        { at: 'templates/test.mjml:11', expression: '#when profile.behavior_score gte=50', reason: 'missing profile.behavior_score' },
        { at: 'templates/test.mjml:2', expression: 'default profile.first_name "there"', reason: 'empty or missing' },
      ]),
    );
  });

  test('a condition that is false with its field present is a variant, not a fallback', () => {
    const out = render(template, { profile: { ...full.profile, behavior_score: 10 } });
    expect(out.html).toContain('Free returns');
    expect(out.fallbacks).toEqual([]);
  });

  test('a partial field missing inside an item falls back inside that item only', () => {
    const out = render(template, full);
    expect(out.html).toContain('Socks');
    const partial = render(template, { profile: { cart: [{ product_id: 'p9' }, { product_id: 'p1', name: 'Trail Shoe', price: 89.5 }] } });
    expect(partial.html).toContain('p9');
    expect(partial.html).toContain('$89.50');
    expect(partial.fallbacks).toEqual(
      expect.arrayContaining([
        { at: 'partials/row.mjml:1', expression: 'default name product_id', reason: 'empty or missing' },
        { at: 'partials/row.mjml:2', expression: '#if price', reason: 'empty or missing' },
      ]),
    );
  });

  test('every link goes through the per-send rewrite except unsubscribe; the HTML escapes it', () => {
    const out = render(template, full);
    expect(out.html).toContain(`href="https://t.example/c/0?to=${encodeURIComponent('https://shop.example/cart?a=1&b=2')}"`);
    expect(out.html).toContain('href="https://t.example/u/token-1"');
    expect(out.html).toContain('<img src="https://t.example/o/pixel.gif"');
    expect(template.linkCount).toBe(1);
  });

  test('the text part has the words, the rewritten links and no markup', () => {
    const out = render(template, full);
    expect(out.text).toContain('Hello Ana');
    expect(out.text).toContain('Trail Shoe');
    expect(out.text).toContain(`Back to cart (https://t.example/c/0?to=${encodeURIComponent('https://shop.example/cart?a=1&b=2')})`);
    expect(out.text).toContain('Unsubscribe (https://t.example/u/token-1)');
    expect(out.text).not.toMatch(/<[a-z]/i);
  });

  test('data is escaped in HTML and left alone in the subject and text', () => {
    const out = render(template, { profile: { first_name: 'Ana <b>&</b>' } });
    expect(out.html).toContain('Hello Ana &lt;b&gt;&amp;&lt;/b&gt;');
    expect(out.subject).toBe('Hi Ana <b>&</b>');
    expect(out.text).toContain('Hello Ana <b>&</b>');
  });

  test('the preheader is rendered into the hidden preview text', () => {
    const withPreheader = compiled(CART.replace('category: marketing', 'category: marketing\npreheader: "Saved for {{default profile.first_name \\"you\\"}}"'));
    const out = render(withPreheader, full);
    expect(out.preheader).toBe('Saved for Ana');
    expect(out.html).toMatch(/display:none[^>]*>Saved for Ana/);
    expect(out.text).not.toContain('Saved for Ana');
  });

  test('a layout wraps the template at {{> @partial-block}}', () => {
    const lib = library({}, { base: '<mjml><mj-body><mj-section><mj-column><mj-text css-class="brand">ACME</mj-text></mj-column></mj-section>{{> @partial-block}}</mj-body></mjml>' });
    const layoutTemplate = compiled(`---\nsubject: Hi\ncategory: transactional\nlayout: base\n---\n<mj-section><mj-column><mj-text>Inner {{default profile.first_name "you"}}</mj-text></mj-column></mj-section>`, lib);
    const out = render(layoutTemplate, full);
    expect(out.html.indexOf('ACME')).toBeLessThan(out.html.indexOf('Inner Ana'));
  });
});

describe('templates that use @-variables', () => {
  test('@index and @root work, and fallbacks are still recorded', () => {
    const template = compiled(`---\nsubject: x\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>
{{#each profile.cart}}[{{@index}}:{{name}} for {{@root.profile.first_name}}]{{else}}empty{{/each}} {{default profile.nickname "pal"}}
</mj-text></mj-column></mj-section></mj-body></mjml>`);
    const out = render(template, { profile: { first_name: 'Ana', cart: [{ product_id: 'a', name: 'Shoe' }, { product_id: 'b', name: 'Sock' }] } });
    expect(out.text).toContain('[0:Shoe for Ana][1:Sock for Ana] pal');
    expect(out.fallbacks).toEqual([expect.objectContaining({ expression: 'default profile.nickname "pal"' })]);
  });
});

describe('helpers', () => {
  const template = compiled(`---\nsubject: x\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>
[{{money profile.total_spent}}] [{{money profile.total_spent "EUR"}}] [{{number profile.behavior_score 1}}] [{{date profile.last_order_at}}]
[{{date profile.last_order_at "long" timezone="America/New_York"}}] [{{pluralize profile.orders_count "order"}}] [{{pluralize 1 "order"}}]
[{{product_url profile.last_viewed_product}}] [{{product_url "sku 9"}}] [{{money profile.nothing}}] [{{date "not a date"}}]
</mj-text></mj-column></mj-section></mj-body></mjml>`);

  test('format by locale and never throw on bad values', () => {
    const data = { profile: { total_spent: 1234.5, behavior_score: 7.25, last_order_at: Date.UTC(2026, 10, 28, 2, 0), orders_count: 3, last_viewed_product: { product_id: 'p1' } } };
    const us = render(template, data).text.replace(/\u00a0/g, ' ');
    expect(us).toContain('[$1,234.50] [€1,234.50] [7.3] [Nov 28, 2026]');
    expect(us).toContain('[November 27, 2026] [3 orders] [1 order]');
    expect(us).toContain('[https://shop.example/products/p1] [https://shop.example/products/sku%209] [] []');
    const de = render(template, data, { locale: 'de-DE' }).text.replace(/\u00a0/g, ' ');
    expect(de).toContain('[1.234,50 $] [1.234,50 €] [7,3] [28.11.2026]');
  });
});

describe('compile once', () => {
  test('rendering many recipients runs no MJML', () => {
    jest.isolateModules(() => {
      const calls: number[] = [];
      jest.doMock('mjml', () => {
        const real = jest.requireActual('mjml');
        return (...args: unknown[]) => {
          calls.push(1);
          return real(...args);
        };
      });
      const fresh = require('../../core/template-compiler') as typeof import('../../core/template-compiler');
      const result = fresh.compileTemplate('test', { file: 'templates/test.mjml', text: CART }, library(), fresh.templateHandlebars());
      expect(calls).toHaveLength(1);
      for (let i = 0; i < 20; i++) fresh.renderTemplate(result.template!, { profile: { first_name: `n${i}` }, consent: {} }, RUNTIME);
      expect(calls).toHaveLength(1);
      jest.dontMock('mjml');
    });
  });
});

describe('the link policy at render (core/link-policy)', () => {
  const LINKS = `---\nsubject: x\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column>
<mj-button href="{{profile.cart_url}}">Back to cart</mj-button>
<mj-text><a href='{{profile.help_url}}'>Help</a> <a href={{profile.bare_url}}>Bare</a> <a href="{{{profile.raw_url}}}">Raw</a></mj-text>
<mj-button href="https://partner.example/terms">Terms</mj-button>
<mj-text><a href="mailto:help@shop.example">Mail us</a></mj-text>
<mj-image src="{{profile.image_url}}" alt="Product" href="https://shop.example/p" />
</mj-column></mj-section></mj-body></mjml>`;
  const template = compiled(LINKS);
  const calls: Array<{ url: string; literal: boolean }> = [];
  const runtime: Partial<RenderRuntime> = {
    link: (url, index, literal) => {
      calls.push({ url, literal });
      return `https://t.example/c/${index}?to=${encodeURIComponent(url)}`;
    },
  };
  const hrefs = (html: string) => [...html.matchAll(/<a\b[^>]*>/g)].map((m) => /\shref="([^"]*)"/.exec(m[0])?.[1] ?? null);
  const profileWith = (url: string) => ({ cart_url: url, help_url: url, bare_url: url, raw_url: url, image_url: url });
  const HOSTILE = [
    'javascript:alert(1)',
    ' JaVaScRiPt:alert(1)',
    'java\tscript:alert(1)',
    'java&#x09;script:alert(1)',
    '&#106;avascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'https://evil.example/x',
    'https://shop.example.evil.example/',
    'https://shop.example@evil.example/',
    '//evil.example/x',
    '/relative',
  ];

  test.each(HOSTILE)('data %j in any href spelling is rendered unlinked, in HTML and text, with the fallback recorded', (url) => {
    calls.length = 0;
    const out = render(template, { profile: profileWith(url) }, runtime);
    // The four data-fed links have no href at all; the literal ones are as written (or tracked).
    expect(hrefs(out.html)).toEqual([null, null, null, null, `https://t.example/c/4?to=${encodeURIComponent('https://partner.example/terms')}`, 'mailto:help@shop.example', `https://t.example/c/5?to=${encodeURIComponent('https://shop.example/p')}`]);
    expect(out.html).toContain('Back to cart');
    // Images from data may be on any host (a CDN), but only over http(s).
    expect(out.html.replace(/<img\b[^>]*>/g, '')).not.toMatch(/evil\.example|javascript|vbscript|data:text/i);
    for (const [, src] of out.html.matchAll(/<img\b[^>]*\ssrc="([^"]*)"/g)) expect(src).toMatch(/^https?:\/\//);
    expect(out.text).toContain('Back to cart');
    expect(out.text).not.toMatch(/Back to cart \(|Help \(|evil\.example|javascript/i);
    expect(calls.every((c) => c.literal)).toBe(true);
    expect(out.fallbacks).toEqual(
      expect.arrayContaining([
        { at: 'templates/test.mjml:6', expression: 'href="{{profile.cart_url}}"', reason: expect.stringMatching(/^not linked: /) },
        { at: 'templates/test.mjml:7', expression: `href="{{profile.help_url}}"`, reason: expect.stringMatching(/^not linked: /) },
        { at: 'templates/test.mjml:7', expression: 'href="{{profile.bare_url}}"', reason: expect.stringMatching(/^not linked: /) },
        { at: 'templates/test.mjml:7', expression: 'href="{{{profile.raw_url}}}"', reason: expect.stringMatching(/^not linked: /) },
        ...(url.startsWith('https:') ? [] : [{ at: 'templates/test.mjml:10', expression: 'src="{{profile.image_url}}"', reason: expect.stringMatching(/^no image: /) }]),
      ]),
    );
  });

  test('the reason says what was wrong and how to allow a domain', () => {
    const out = render(template, { profile: profileWith('https://evil.example/x') }, runtime);
    expect(out.fallbacks.find((f) => f.expression === 'href="{{profile.cart_url}}"')!.reason).toBe(
      'not linked: the link from data goes to evil.example, which is not on the link domains (shop.example); add it to MICROFLOWS_LINK_DOMAINS if it is yours',
    );
    expect(render(template, { profile: profileWith('javascript:alert(1)') }, runtime).fallbacks[0]!.reason).toBe('not linked: the link from data is javascript:, not http(s)');
  });

  test('a link from data on the link domains (or a subdomain) is a link, rewritten as data (not literal)', () => {
    calls.length = 0;
    const out = render(template, { profile: profileWith('https://www.shop.example/cart?x=1&y=2') }, runtime);
    const tracked = `https://t.example/c/0?to=${encodeURIComponent('https://www.shop.example/cart?x=1&y=2')}`;
    expect(hrefs(out.html)[0]).toBe(tracked);
    expect(out.text).toContain(`Back to cart (${tracked})`);
    expect(calls).toEqual(expect.arrayContaining([{ url: 'https://www.shop.example/cart?x=1&y=2', literal: false }, { url: 'https://partner.example/terms', literal: true }]));
    expect(out.html).toContain('src="https://www.shop.example/cart?x=1&amp;y=2"');
    expect(out.fallbacks).toEqual([]);
  });

  test('the link domains are the render’s: another list allows other hosts', () => {
    const out = render(template, { profile: profileWith('https://evil.example/x') }, { ...runtime, linkDomains: ['evil.example'] });
    expect(hrefs(out.html)[0]).toBe(`https://t.example/c/0?to=${encodeURIComponent('https://evil.example/x')}`);
  });

  test('a literal javascript: or relative link is a compile warning at its line, and is sent without its address', () => {
    const result = compile(LINKS.replace('https://partner.example/terms', 'javascript:void(0)').replace('mailto:help@shop.example', '/account'));
    expect(result.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ severity: 'warning', line: 8, message: 'a javascript: link is never rendered as a link; only http(s), mailto:, tel: and sms: are: the link is sent without its address' }),
        expect.objectContaining({ severity: 'warning', line: 9, message: expect.stringContaining('the link "/account" is relative') }),
      ]),
    );
    const out = render(result.template!, { profile: profileWith('https://shop.example/') }, runtime);
    expect(out.html).not.toContain('javascript:');
    expect(out.html).not.toContain('/account');
    expect(out.html).toContain('Terms');
  });
});
