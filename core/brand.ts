// The sender's brand settings (brand.yaml): the name and postal address every marketing email's footer shows
// (CAN-SPAM asks for the address), the brand kit every template is styled with (logo, colours for light and dark
// mode, font stack, support contact, social links), and the labels the preference center gives the flows' topics.
// Pure: the caller reads the file; this parses the text and reports every problem with file:line and the field.
import { colord, extend } from 'colord';
import a11yPlugin from 'colord/plugins/a11y';
import { isMap, isScalar } from 'yaml';
import { InvalidFileError } from './errors';
import type { FileProblem } from './errors';
import { TOPIC_ID } from './topic-consent';
import { readYaml } from './yaml-reader';

/** What the preference center shows for one topic. */
export interface TopicLabel {
  label: string;
  description: string | null;
}

extend([a11yPlugin]);

/** One colour scheme of the brand: every value a `#rrggbb` hex colour. */
export interface BrandColors {
  /** Buttons and links: the brand's colour. */
  primary: string;
  /** Text on a primary button. */
  primary_text: string;
  /** Body text. */
  text: string;
  /** Secondary text (footer, labels). */
  muted: string;
  /** Around the email's card. */
  background: string;
  /** The email's card. */
  surface: string;
  /** Rules and card edges. */
  border: string;
}

export interface BrandLogo {
  /** An https URL of the logo image. */
  url: string;
  alt: string;
  /** Shown width in px. */
  width: number;
}

export interface Brand {
  /** The sender as customers know it, e.g. "Harbour & Hide". */
  name: string;
  /** The sender's postal address, on one line; every marketing email shows it. */
  postalAddress: string;
  /** Labels of topics by topic id; a topic without one shows its id humanized (topicLabel). */
  topics: Record<string, TopicLabel>;
  logo: BrandLogo | null;
  colors: BrandColors;
  /** The colours mail clients in dark mode are asked to use (prefers-color-scheme: dark). */
  darkColors: BrandColors;
  /** A CSS font stack, e.g. "Helvetica Neue, Helvetica, Arial, sans-serif". */
  fontFamily: string;
  support: { email: string | null; url: string | null };
  /** Social links in file order, e.g. [{ name: 'Instagram', url: 'https://instagram.com/…' }]. */
  social: Array<{ name: string; url: string }>;
}

/** Neutral colours for a brand file that gives none: readable in both schemes (WCAG AA). */
export const DEFAULT_COLORS: BrandColors = {
  primary: '#1f5f73',
  primary_text: '#ffffff',
  text: '#1f2328',
  muted: '#57606a',
  background: '#f4f4f2',
  surface: '#ffffff',
  border: '#dedcd6',
};

export const DEFAULT_DARK_COLORS: BrandColors = {
  primary: '#8fd0e0',
  primary_text: '#0b1f26',
  text: '#ecedee',
  muted: '#b3b9c0',
  background: '#111314',
  surface: '#1c1f22',
  border: '#3a3f44',
};

export const DEFAULT_FONT_FAMILY = "'Helvetica Neue', Helvetica, Arial, sans-serif";

const BRAND_KEYS = ['name', 'postal_address', 'topics', 'logo', 'colors', 'dark_colors', 'font_family', 'support', 'social'];
const LOGO_KEYS = ['url', 'alt', 'width'];
const COLOR_KEYS = Object.keys(DEFAULT_COLORS);
const SUPPORT_KEYS = ['email', 'url'];
/** The pairs that must read well: text on its background, WCAG AA (4.5:1); the button's label on the button. */
const CONTRAST_PAIRS: Array<[keyof BrandColors, keyof BrandColors]> = [
  ['text', 'surface'],
  ['muted', 'surface'],
  ['primary_text', 'primary'],
  ['primary', 'surface'],
];
const AA_CONTRAST = 4.5;
const TOPIC_KEYS = ['label', 'description'];

/** Addresses are written over several lines in YAML; a footer line and a validation check want them on one. */
function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(', ')
    .replace(/\s+/g, ' ');
}

/** Parses brand.yaml; throws InvalidFileError listing every problem (file:line, field, what to write). */
export function parseBrand(source: string, file: string): Brand {
  const { brand, problems } = checkBrand(source, file);
  if (!brand) throw new InvalidFileError(problems);
  return brand;
}

/** Like parseBrand, but returns the problems instead of throwing. */
export function checkBrand(source: string, file: string): { brand?: Brand; problems: FileProblem[] } {
  const { reader: r, contents, parsed } = readYaml(source, file);
  if (!parsed) return { problems: r.sortedProblems() };
  const root = r.resolve(contents);
  if (r.isEmpty(root)) {
    r.problemAt(0, '', 'empty file: brand.yaml is a map with name and postal_address (and optionally topics)', 'error');
    return { problems: r.sortedProblems() };
  }
  const top = r.map(root, '', 'brand.yaml', BRAND_KEYS);
  if (!top) return { problems: r.sortedProblems() };
  const name = r.text(r.require(top, 'name', root, '', 'the sender\'s name as customers know it, e.g. "name: Harbour & Hide"'), 'name');
  const address = r.text(
    r.require(top, 'postal_address', root, '', 'the sender\'s postal address, which every marketing email must show (CAN-SPAM), e.g. "postal_address: 12 Quay Street, Bristol BS1 4DJ, United Kingdom"'),
    'postal_address',
  );
  const topics: Record<string, TopicLabel> = {};
  const topicsEntry = top.get('topics');
  if (topicsEntry && !r.isEmpty(topicsEntry.value)) {
    if (!isMap(topicsEntry.value)) {
      r.error(topicsEntry.value, 'topics', 'topics must be a map of topic id to { label, description }, e.g. "topics: { cart-reminders: { label: Cart reminders } }"');
    } else {
      for (const pair of topicsEntry.value.items) {
        const keyNode = r.resolve(pair.key);
        const id = keyNode && 'value' in keyNode ? String((keyNode as { value: unknown }).value) : '';
        const path = `topics.${id}`;
        if (!TOPIC_ID.test(id)) {
          r.error(keyNode, path, `topic id "${id}" must be kebab-case like the flows' "topic:", e.g. cart-reminders`);
          continue;
        }
        const value = r.resolve(pair.value);
        const fields = r.map(value, path, `topic "${id}"`, TOPIC_KEYS, keyNode);
        if (!fields) continue;
        const label = r.text(r.require(fields, 'label', value, path, 'what the preference center calls it, e.g. "label: Cart reminders"'), `${path}.label`);
        const description = fields.has('description') ? r.text(fields.get('description'), `${path}.description`) : undefined;
        if (label !== undefined) topics[id] = { label: label.trim(), description: description?.trim() ?? null };
      }
    }
  }
  const kit = readKit(r, top);
  const problems = r.sortedProblems();
  if (problems.some((p) => p.severity === 'error') || name === undefined || address === undefined) return { problems };
  return { brand: { name: name.trim(), postalAddress: oneLine(address), topics, ...kit }, problems };
}

type Reader = ReturnType<typeof readYaml>['reader'];
type Entries = NonNullable<ReturnType<Reader['map']>>;

function httpsUrl(r: Reader, entry: Entries extends Map<string, infer E> ? E | undefined : never, what: string): string | null {
  const text = r.text(entry, what);
  if (text === undefined || !entry) return null;
  let url: URL | null = null;
  try {
    url = new URL(text.trim());
  } catch {
    url = null;
  }
  if (!url || url.protocol !== 'https:') {
    r.error(entry.value, entry.path, `${what} must be an https:// URL (mail clients block others), got "${text}"`);
    return null;
  }
  return url.href;
}

/** One scheme's colours over its defaults; each a hex colour, the readable pairs checked for contrast. */
function readColors(r: Reader, top: Entries, key: 'colors' | 'dark_colors', defaults: BrandColors): BrandColors {
  const entry = top.get(key);
  if (!entry || r.isEmpty(entry.value)) return { ...defaults };
  const fields = r.map(entry.value, key, key, COLOR_KEYS, entry.keySpot);
  if (!fields) return { ...defaults };
  const colors = { ...defaults };
  for (const [name, field] of fields) {
    const value = field.value;
    const text = isScalar(value) && typeof value.value === 'string' ? value.value.trim() : '';
    const parsed = colord(text);
    if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(text) || !parsed.isValid()) {
      r.error(value ?? field.keySpot, field.path, `${key}.${name} must be a hex colour in quotes, e.g. ${name}: "${defaults[name as keyof BrandColors]}"`);
      continue;
    }
    colors[name as keyof BrandColors] = parsed.toHex();
  }
  for (const [fore, back] of CONTRAST_PAIRS) {
    const ratio = colord(colors[fore]).contrast(colors[back]);
    if (ratio < AA_CONTRAST) {
      const blamed = fields.get(fore) ?? fields.get(back);
      r.error(blamed?.value ?? entry.keySpot, `${key}.${fore}`, `${key}.${fore} (${colors[fore]}) on ${key}.${back} (${colors[back]}) has contrast ${ratio.toFixed(2)}:1; text needs at least ${AA_CONTRAST}:1 (WCAG AA) to be readable: darken or lighten one of them`);
    }
  }
  return colors;
}

/** The brand kit: logo, colours, font, support contact and social links; defaults for what the file leaves out. */
function readKit(r: Reader, top: Entries): Omit<Brand, 'name' | 'postalAddress' | 'topics'> {
  let logo: BrandLogo | null = null;
  const logoEntry = top.get('logo');
  if (logoEntry && !r.isEmpty(logoEntry.value)) {
    const fields = r.map(logoEntry.value, 'logo', 'logo', LOGO_KEYS, logoEntry.keySpot);
    if (fields) {
      const url = httpsUrl(r, r.require(fields, 'url', logoEntry.value, 'logo', 'the logo image\'s https URL, e.g. "url: https://shop.example/logo.png"'), 'logo.url');
      const alt = fields.has('alt') ? r.text(fields.get('alt'), 'logo.alt') : undefined;
      const width = fields.has('width') ? r.integer(fields.get('width'), 'logo.width', 1) : undefined;
      if (width !== undefined && (width < 40 || width > 560)) r.error(fields.get('width')!.value, 'logo.width', `logo.width is the shown width in px, between 40 and 560; got ${width}`);
      if (url) logo = { url, alt: alt?.trim() ?? '', width: width !== undefined && width >= 40 && width <= 560 ? width : 160 };
    }
  }
  const colors = readColors(r, top, 'colors', DEFAULT_COLORS);
  const darkColors = readColors(r, top, 'dark_colors', DEFAULT_DARK_COLORS);
  let fontFamily = DEFAULT_FONT_FAMILY;
  const fontEntry = top.get('font_family');
  if (fontEntry) {
    const font = r.text(fontEntry, 'font_family');
    if (font !== undefined) {
      if (/[<>{};"\\]/.test(font)) r.error(fontEntry.value, 'font_family', `font_family is a CSS font stack such as "Georgia, 'Times New Roman', serif"; it may not hold < > { } ; " or \\`);
      else fontFamily = font.trim();
    }
  }
  const support: Brand['support'] = { email: null, url: null };
  const supportEntry = top.get('support');
  if (supportEntry && !r.isEmpty(supportEntry.value)) {
    const fields = r.map(supportEntry.value, 'support', 'support', SUPPORT_KEYS, supportEntry.keySpot);
    if (fields?.has('email')) {
      const email = r.text(fields.get('email'), 'support.email')?.trim();
      if (email !== undefined && !/^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/.test(email)) r.error(fields.get('email')!.value, 'support.email', `support.email must be an email address, e.g. help@shop.example; got "${email}"`);
      else if (email !== undefined) support.email = email;
    }
    if (fields?.has('url')) support.url = httpsUrl(r, fields.get('url'), 'support.url');
  }
  const social: Brand['social'] = [];
  const socialEntry = top.get('social');
  if (socialEntry && !r.isEmpty(socialEntry.value)) {
    if (!isMap(socialEntry.value)) {
      r.error(socialEntry.value, 'social', 'social must be a map of network name to https URL, e.g. "social: { Instagram: https://instagram.com/yourshop }"');
    } else {
      for (const pair of socialEntry.value.items) {
        const keyNode = r.resolve(pair.key);
        const network = isScalar(keyNode) ? String(keyNode.value) : '';
        const url = httpsUrl(r, { key: network, keySpot: keyNode ?? socialEntry.keySpot, value: r.resolve(pair.value), path: `social.${network}` }, `social.${network}`);
        if (url) social.push({ name: network, url });
      }
    }
  }
  return { logo, colors, darkColors, fontFamily, support, social };
}

/**
 * The brand a marketing template is checked and previewed with when the project has none (unit tests, a template
 * checked on its own, a preview before brand.yaml exists).
 */
export const SAMPLE_BRAND: Brand = {
  name: 'Sample Shop',
  postalAddress: '1 Sample Street, Sampletown SA1 1AA',
  topics: {},
  logo: null,
  colors: DEFAULT_COLORS,
  darkColors: DEFAULT_DARK_COLORS,
  fontFamily: DEFAULT_FONT_FAMILY,
  support: { email: null, url: null },
  social: [],
};

/** `cart-reminders` → `Cart reminders`: what a topic is called when brand.yaml gives it no label. */
export function humanizeTopic(id: string): string {
  const words = id.split('-').join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The label and description the preference center shows for a topic. */
export function topicLabel(brand: Brand | null, id: string): TopicLabel {
  return brand?.topics[id] ?? { label: humanizeTopic(id), description: null };
}

/** What templates read as `brand.*`: the brand kit in the snake_case templates use. */
export interface BrandTemplateData {
  name: string;
  postal_address: string;
  logo: BrandLogo | null;
  colors: BrandColors;
  dark_colors: BrandColors;
  font_family: string;
  support: { email: string | null; url: string | null };
  social: Array<{ name: string; url: string }>;
}

export function brandTemplateData(brand: Brand): BrandTemplateData {
  return {
    name: brand.name,
    postal_address: brand.postalAddress,
    logo: brand.logo,
    colors: brand.colors,
    dark_colors: brand.darkColors,
    font_family: brand.fontFamily,
    support: brand.support,
    social: brand.social,
  };
}
