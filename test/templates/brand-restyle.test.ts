// A shop restyles every shipped email by editing brand.yaml alone: a copy of templates/ and brand.yaml with another
// primary colour and font renders every template, for a full and a bare customer, in the new colour and font with no
// trace of the old ones. Also what the compiler sets for every template: the brand kit written into the MJML (so
// <mj-attributes> and <mj-class> see real colours), <html lang> from the customer's locale, <title> = the subject.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TemplateLibrary } from '../../activities/templates';
import { BARE_CUSTOMER, customerWith, FULL_CUSTOMER, renderFor, ROOT, shippedBrand, shippedLibrary } from './shipped-emails';

const shipped = shippedBrand();
const OLD_PRIMARY = shipped.colors.primary;
const OLD_FONT = shipped.fontFamily;
const NEW_PRIMARY = '#7a1f3d';
const NEW_FONT = "Georgia, 'Times New Roman', serif";

let dir: string;
let restyled: TemplateLibrary;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-restyle-'));
  fs.cpSync(path.join(ROOT, 'templates'), path.join(dir, 'templates'), { recursive: true });
  const original = fs.readFileSync(path.join(ROOT, 'brand.yaml'), 'utf8');
  // Edited the way a person edits the file: the two lines changed in place, everything else as shipped.
  const edited = original.replace(/^(\s+primary:\s*)"#[0-9a-fA-F]{6}"/m, `$1"${NEW_PRIMARY}"`).replace(/^font_family:.*$/m, `font_family: "${NEW_FONT}"`);
  expect(edited).not.toBe(original);
  fs.writeFileSync(path.join(dir, 'brand.yaml'), edited);
  const brand = shippedBrand(path.join(dir, 'brand.yaml'));
  expect(brand.colors.primary).toBe(NEW_PRIMARY);
  expect(brand.darkColors).toEqual(shipped.darkColors);
  expect(brand.fontFamily).toBe(NEW_FONT);
  restyled = shippedLibrary(brand, { dir: path.join(dir, 'templates') });
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const library = shippedLibrary();
const escaped = (text: string) => text.replace(/&/g, '&amp;');

test('the shipped kit is what the shipped emails show', () => {
  expect(OLD_PRIMARY).not.toBe(NEW_PRIMARY);
  for (const template of library.names()) {
    const html = renderFor(library, template, FULL_CUSTOMER).html.toLowerCase();
    expect(html).toContain(OLD_PRIMARY);
    expect(html).toContain('avenir next');
  }
});

describe.each([
  ['full', FULL_CUSTOMER],
  ['bare', BARE_CUSTOMER],
] as const)('a restyled brand.yaml, %s customer', (_who, customer) => {
  test.each(library.names().map((name) => [name]))('%s: the new primary colour and font, none of the old', (template) => {
    const html = renderFor(restyled, template, customer).html;
    const lower = html.toLowerCase();
    expect(lower).toContain(NEW_PRIMARY);
    expect(lower).not.toContain(OLD_PRIMARY);
    // The button takes the colour from <mj-attributes>: MJML saw the colour, not a placeholder.
    expect(lower).toMatch(new RegExp(`<td[^>]*bgcolor="${NEW_PRIMARY}"[^>]*>\\s*<a\\b`));
    expect(html).toContain(`font-family:${escaped(NEW_FONT)}`);
    expect(html).not.toContain(escaped(OLD_FONT));
    expect(html).not.toMatch(/\{\{|MFHB|MFLK/);
  });
});

describe('set for every template by the compiler', () => {
  test.each(library.names().map((name) => [name]))('%s: the brand kit written in, lang from the locale, <title> = subject', (template) => {
    const email = renderFor(library, template, FULL_CUSTOMER);
    // Colours of both schemes are in the head: the light ones inline, the dark ones in the prefers-color-scheme rules.
    const dark = /@media \(prefers-color-scheme: dark\) \{([\s\S]*?)\n\}/.exec(email.html)?.[1] ?? '';
    expect(dark).toContain(`background-color: ${shipped.darkColors.surface} !important`);
    expect(dark).toContain(`color: ${shipped.darkColors.text} !important`);
    expect(email.html).toContain('<meta name="color-scheme" content="light dark">');
    expect(email.html).toContain(`font-family:${escaped(shipped.fontFamily)}`);
    expect(email.html).toMatch(/<html lang="en-GB"/);
    expect(email.html).toContain(`<title>${email.subject.replace(/&/g, '&amp;')}</title>`);
    const german = renderFor(library, template, customerWith(FULL_CUSTOMER, { profile: { locale: 'de_DE' } }));
    expect(german.html).toMatch(/<html lang="de-DE"/);
    const unknown = renderFor(library, template, BARE_CUSTOMER);
    expect(unknown.html).toMatch(/<html lang="en-US"/);
    expect(unknown.html).toContain(`<title>${unknown.subject.replace(/&/g, '&amp;')}</title>`);
  });
});
