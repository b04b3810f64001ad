// Compliant footers: compiling a marketing template renders it with sample data and refuses it, naming the template
// and what is missing, when the HTML lacks the sender's postal address, the unsubscribe link or the preference
// link; transactional templates are not checked. The shipped templates pass with the shipped brand.
import fs from 'node:fs';
import path from 'node:path';
import { compileTemplateDir } from '../../activities/templates';
import { brandTemplateData, parseBrand, SAMPLE_BRAND } from '../../core/brand';
import { compileTemplate, missingFromFooter, templateHandlebars } from '../../core/template-compiler';

const handlebars = templateHandlebars();
const BRAND = brandTemplateData({ ...SAMPLE_BRAND, name: 'Harbour & Hide', postalAddress: 'Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ' });
const ADDRESS = '{{brand.postal_address}}';
const UNSUBSCRIBE = '<a href="{{unsubscribe_url}}">Unsubscribe</a>';
const PREFERENCES = '<a href="{{preferences_url}}">Manage preferences</a>';

function template(footer: string, category = 'marketing'): string {
  return `---\nsubject: Hello\ncategory: ${category}\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>Hello</mj-text><mj-text>${footer}</mj-text></mj-column></mj-section></mj-body></mjml>\n`;
}

function compile(text: string, brand: typeof BRAND | null = BRAND, partials: Record<string, string> = {}) {
  const library = { partials: new Map(Object.entries(partials).map(([name, text]) => [name, { file: `templates/partials/${name}.mjml`, text }])), layouts: new Map() };
  return compileTemplate('offer', { file: 'templates/offer.mjml', text }, library, handlebars, brand ? { brand } : {});
}

function errors(text: string, brand?: typeof BRAND) {
  return compile(text, brand).problems.filter((p) => p.severity === 'error');
}

describe('a marketing template', () => {
  test('with the address, the unsubscribe link and the preference link compiles', () => {
    const result = compile(template(`${ADDRESS} ${UNSUBSCRIBE} ${PREFERENCES}`));
    expect(result.problems).toEqual([]);
    expect(result.template).not.toBeNull();
  });

  test.each([
    ['the postal address', `${UNSUBSCRIBE} ${PREFERENCES}`, 'the postal address (brand.postal_address: "Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ")'],
    ['the preference link', `${ADDRESS} ${UNSUBSCRIBE}`, 'the preference link ({{preferences_url}})'],
    ['the address and the preference link', UNSUBSCRIBE, 'the postal address (brand.postal_address: "Harbour & Hide Ltd, 12 Quay Street, Bristol BS1 4DJ"), the preference link ({{preferences_url}})'],
  ])('without %s is refused, naming the file, what is missing and how to fix it', (_what, footer, missing) => {
    const result = compile(template(footer));
    expect(result.template).toBeNull();
    expect(result.problems).toEqual([
      expect.objectContaining({ file: 'templates/offer.mjml', line: 3, severity: 'error', message: expect.stringContaining(`a marketing email must show ${missing}, and rendered with sample data it does not: include {{> footer}}`) }),
    ]);
  });

  test('without the unsubscribe link is refused (before any render: the link is missing from the source)', () => {
    expect(errors(template(`${ADDRESS} ${PREFERENCES}`))).toEqual([expect.objectContaining({ line: 3, message: expect.stringContaining('visible unsubscribe link') })]);
  });

  test('counts what a render shows, not what the source holds: a footer that empty data hides is missing', () => {
    const hidden = `{{#if profile.first_name}}${ADDRESS} ${PREFERENCES}{{else}}${UNSUBSCRIBE}{{/if}}`;
    expect(errors(template(hidden)).map((e) => e.message)).toEqual([expect.stringContaining('the postal address')]);
    expect(errors(template(hidden))[0]!.message).toContain('the preference link');
  });

  test('an address written out must be the brand\'s own', () => {
    const written = template(`Harbour &amp; Hide Ltd, 12 Quay Street, Bristol BS1 4DJ ${UNSUBSCRIBE} ${PREFERENCES}`);
    expect(errors(written)).toEqual([]);
    expect(errors(written, { ...BRAND, postal_address: '1 Other Road, Leeds' })).toEqual([expect.objectContaining({ message: expect.stringContaining('"1 Other Road, Leeds"') })]);
  });

  test('without a brand, the sample address stands in: the template must still print brand.postal_address', () => {
    expect(compile(template(`${ADDRESS} ${UNSUBSCRIBE} ${PREFERENCES}`), null).problems).toEqual([]);
    expect(compile(template(`${UNSUBSCRIBE} ${PREFERENCES}`), null).problems[0]!.message).toContain(SAMPLE_BRAND.postalAddress);
  });

  test('a preference link with something appended is a data link the link policy drops: missing', () => {
    expect(errors(template(`${ADDRESS} ${UNSUBSCRIBE} <a href="{{preferences_url}}?from=email">Manage</a>`))[0]!.message).toContain('the preference link');
  });

  test('the footer in a partial counts', () => {
    const result = compile(template('Hello').replace('<mj-text>Hello</mj-text><mj-text>Hello</mj-text>', '<mj-text>Hello</mj-text>').replace('</mj-section></mj-body>', '</mj-section>{{> footer}}</mj-body>'), BRAND, {
      footer: `<mj-section><mj-column><mj-text>${ADDRESS} ${UNSUBSCRIBE} ${PREFERENCES}</mj-text></mj-column></mj-section>`,
    });
    expect(result.problems).toEqual([]);
  });
});

describe('a transactional template', () => {
  test('is not checked: it carries no unsubscribe or preference link', () => {
    expect(compile(template('Thanks for your order')).template).toBeNull();
    const result = compile(template('Thanks for your order', 'transactional'));
    expect(result.problems).toEqual([]);
    expect(result.template).not.toBeNull();
  });
});

describe('missingFromFooter', () => {
  test('lists each missing part', () => {
    const compiled = compile(template(`${ADDRESS} ${UNSUBSCRIBE} ${PREFERENCES}`, 'transactional')).template!;
    expect(missingFromFooter(compiled, BRAND)).toEqual([]);
    const bare = compile(template('Nothing', 'transactional')).template!;
    expect(missingFromFooter(bare, BRAND)).toEqual([expect.stringContaining('postal address'), expect.stringContaining('unsubscribe link'), expect.stringContaining('preference link')]);
  });
});

describe('the shipped templates', () => {
  test('all compile with the shipped brand, and every marketing one shows its address and both links', () => {
    const root = path.resolve(__dirname, '../..');
    const brand = parseBrand(fs.readFileSync(path.join(root, 'brand.yaml'), 'utf8'), 'brand.yaml');
    const loaded = compileTemplateDir(path.join(root, 'templates'), undefined, brand);
    expect(loaded.problems.filter((p) => p.severity === 'error')).toEqual([]);
    const marketing = [...loaded.templates.values()].filter((t) => t.header.category === 'marketing');
    expect(marketing.length).toBeGreaterThanOrEqual(7);
    for (const t of marketing) expect({ template: t.name, missing: missingFromFooter(t, { name: brand.name, postal_address: brand.postalAddress }) }).toEqual({ template: t.name, missing: [] });
  });
});
