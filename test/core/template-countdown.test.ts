// The {{countdown until=…}} helper through the real template compiler: a future deadline renders the signed image with
// the deadline stated in its alt text (in the reader's locale and zone) and the same sentence in the plain-text part; a
// deadline missing, unreadable or not after the send renders nothing and records the fallback where it was written;
// without the image endpoint the sentence shows as text.
import { compileTemplate, renderTemplate, templateHandlebars, type CompiledTemplate } from '../../core/template-compiler';
import type { RenderRuntime } from '../../core/template-helpers';
import { countdownImageUrl, verifyCountdownToken } from '../../core/countdown';

const handlebars = templateHandlebars();
const SECRET = 'template-countdown-secret';
const BASE = 'https://mail.shop.example';
const NOW = Date.UTC(2026, 11, 20, 9, 30);
const UNTIL = Date.UTC(2026, 11, 24, 18);

const FOOTER = `<mj-section><mj-column><mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{preferences_url}}">Manage preferences</a> {{brand.postal_address}}</mj-text></mj-column></mj-section>`;

function compiled(body: string, subject = 'Last days of the sale'): CompiledTemplate {
  const text = `---\nsubject: "${subject}"\ncategory: marketing\n---\n<mjml><mj-body>\n${body}\n{{> footer}}\n</mj-body></mjml>`;
  const result = compileTemplate('sale', { file: 'templates/sale.mjml', text }, { partials: new Map([['footer', { file: 'partials/footer.mjml', text: FOOTER }]]), layouts: new Map() }, handlebars);
  const errors = result.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0 || !result.template) throw new Error(errors.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n'));
  return result.template;
}

const RUNTIME: Omit<RenderRuntime, 'sites' | 'fallbacks'> = {
  locale: 'en-GB',
  timezone: 'Europe/London',
  currency: 'GBP',
  shopUrl: 'https://shop.example',
  linkDomains: ['shop.example'],
  link: (url) => url,
  unsubscribeUrl: 'https://t.example/u/1',
  preferencesUrl: 'https://t.example/p/1',
  openPixelUrl: null,
  recommend: null,
  productUrl: () => undefined,
  now: NOW,
  countdownUrl: (untilMs) => countdownImageUrl(BASE, SECRET, untilMs),
};

const SALE = `<mj-section><mj-column>
{{#if data.offer_ends}}<mj-text css-class="intro">Hurry, the sale ends soon:</mj-text>{{else}}<mj-text>Our sale is on.</mj-text>{{/if}}
<mj-text css-class="timer">{{countdown until=data.offer_ends}}</mj-text>
</mj-column></mj-section>`;

function render(template: CompiledTemplate, data: Record<string, unknown>, runtime: Partial<RenderRuntime> = {}) {
  return renderTemplate(template, { profile: {}, consent: {}, data }, { ...RUNTIME, ...runtime });
}

/** The <img> tags of a render with their attributes. */
function images(html: string): Array<Record<string, string>> {
  return [...html.matchAll(/<img\b([^>]*)>/g)].map((m) => Object.fromEntries([...m[1]!.matchAll(/([a-z-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}

const decode = (text: string) => text.replace(/&#x27;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');

describe('a future deadline', () => {
  test('renders the signed image, 480 wide and fluid, with the deadline as alt text in the reader\'s locale and zone', () => {
    const rendered = render(compiled(SALE), { offer_ends: '2026-12-24T18:00:00Z' });
    const timers = images(rendered.html).filter((img) => img.src?.includes('/c/countdown/'));
    expect(timers).toHaveLength(1);
    const [img] = timers as [Record<string, string>];
    const token = /\/c\/countdown\/([^/]+)\.gif$/.exec(img.src!)?.[1];
    expect(img.src!.startsWith(`${BASE}/c/countdown/`)).toBe(true);
    expect(verifyCountdownToken(SECRET, token!)).toBe(UNTIL);
    expect(decode(img.alt!)).toBe('Offer ends Thursday, 24 December 2026 at 18:00 GMT');
    expect(img.width).toBe('480');
    expect(img.style).toContain('max-width:100%');
    expect(img.style).toContain('height:auto');
    expect(img.style).toContain('display:block');
    expect(img.style).toContain('border:0');
    expect(rendered.fallbacks).toEqual([]);
  });

  test('the plain-text part states the deadline, with no image URL', () => {
    const rendered = render(compiled(SALE), { offer_ends: UNTIL });
    expect(rendered.text).toMatch(/Hurry, the sale ends soon:\s*\nOffer ends Thursday, 24 December 2026 at 18:00 GMT\s*\n/);
    expect(rendered.text).not.toContain('/c/countdown/');
  });

  test('the locale and zone are the customer\'s; label= and timezone= override', () => {
    const template = compiled(`<mj-section><mj-column><mj-text>{{countdown until=data.offer_ends label="Angebot endet"}}</mj-text><mj-text>{{countdown until=data.offer_ends timezone="Asia/Tokyo"}}</mj-text></mj-column></mj-section>`);
    const rendered = render(template, { offer_ends: UNTIL }, { locale: 'de-DE', timezone: 'Europe/Berlin' });
    expect(images(rendered.html).map((img) => decode(img.alt!))).toEqual(['Angebot endet Donnerstag, 24. Dezember 2026 um 19:00 MEZ', expect.stringMatching(/^Offer ends Freitag, 25\. Dezember 2026 um 03:00 (GMT\+9|JST)$/)]);
  });

  test('without the image endpoint (no tracking configured) the sentence shows as text, escaped in HTML', () => {
    const template = compiled(SALE);
    const rendered = render(template, { offer_ends: UNTIL }, { countdownUrl: null });
    expect(rendered.html).not.toContain('/c/countdown/');
    expect(rendered.html).toContain('Offer ends Thursday, 24 December 2026 at 18:00 GMT');
    const quoted = render(compiled(`<mj-section><mj-column><mj-text>{{countdown until=data.offer_ends label=data.label}}</mj-text></mj-column></mj-section>`), { offer_ends: UNTIL, label: '<b>Ends</b>' }, { countdownUrl: null });
    expect(quoted.html).toContain('&lt;b&gt;Ends&lt;/b&gt; Thursday');
    expect(quoted.text).toContain('<b>Ends</b> Thursday');
  });

  test('in the subject, the sentence', () => {
    const rendered = render(compiled(SALE, 'Sale: {{countdown until=data.offer_ends}}'), { offer_ends: UNTIL });
    expect(rendered.subject).toBe('Sale: Offer ends Thursday, 24 December 2026 at 18:00 GMT');
  });

  test('written as {{{countdown …}}} it works the same', () => {
    for (const tag of ['{{{countdown until=data.offer_ends}}}', '{{countdown  until=data.offer_ends  }}']) {
      const rendered = render(compiled(`<mj-section><mj-column><mj-text>${tag}</mj-text></mj-column></mj-section>`), { offer_ends: UNTIL });
      expect({ tag, images: images(rendered.html).length, text: rendered.text.includes('Offer ends Thursday') }).toEqual({ tag, images: 1, text: true });
    }
  });
});

describe('a deadline that cannot count down renders nothing and records why, where it was written', () => {
  const at = 'templates/sale.mjml:8';

  test.each([
    ['in the past', '2026-01-01T00:00:00Z', 'countdown: until 2026-01-01T00:00:00Z is not in the future'],
    ['now', NOW, 'countdown: until 2026-12-20T09:30:00Z is not in the future'],
    ['not a time', 'next friday', 'countdown: until "next friday" is not a time: give an ISO 8601 time with its zone, e.g. "2026-12-24T18:00:00Z", or epoch milliseconds'],
    ['without a zone', '2026-12-24T18:00:00', 'countdown: until "2026-12-24T18:00:00" is not a time: give an ISO 8601 time with its zone, e.g. "2026-12-24T18:00:00Z", or epoch milliseconds'],
    ['missing', undefined, 'countdown: until is missing'],
  ])('%s', (_what, offerEnds, reason) => {
    const rendered = render(compiled(SALE), offerEnds === undefined ? {} : { offer_ends: offerEnds });
    expect(images(rendered.html).filter((img) => img.src?.includes('/c/countdown/'))).toEqual([]);
    expect(rendered.html).not.toContain('Offer ends');
    expect(rendered.text).not.toContain('Offer ends');
    expect(rendered.fallbacks).toContainEqual({ at, expression: 'countdown until=data.offer_ends', reason });
    // Recorded once, though the HTML and the text part both ask.
    expect(rendered.fallbacks.filter((f) => f.expression.startsWith('countdown'))).toHaveLength(1);
  });

  test('without a render time, the deadline is not judged: the image shows (and shows the ended state when opened late)', () => {
    const rendered = render(compiled(SALE), { offer_ends: '2026-01-01T00:00:00Z' }, { now: undefined });
    expect(images(rendered.html).filter((img) => img.src?.includes('/c/countdown/'))).toHaveLength(1);
  });
});

test('countdown is a known helper: a template using it validates, and a misspelt one names it in the list', () => {
  const text = `---\nsubject: "x"\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>{{countdwn until=data.offer_ends}}</mj-text></mj-column></mj-section></mj-body></mjml>`;
  const result = compileTemplate('typo', { file: 'templates/typo.mjml', text }, { partials: new Map(), layouts: new Map() }, handlebars);
  expect(result.problems.find((p) => p.severity === 'error')?.message).toMatch(/unknown helper "countdwn": use one of .*\bcountdown\b/);
  expect(compiled(SALE).fieldsRead.map((f) => f.path)).toContain('data.offer_ends');
});
