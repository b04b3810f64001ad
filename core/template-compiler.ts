// Compiles a template once, at load: header, partials and layout, MJML to HTML with every Handlebars tag kept as a
// marker, links marked for per-recipient tracking and the link policy (core/link-policy: a link whose address comes
// from data must be http(s) on the link domains), a plain-text twin derived from the same HTML, then both compiled
// as Handlebars. Per recipient only Handlebars runs (`renderTemplate`). Every problem found on the way is reported
// with the template file and line. Pure: sources come in as strings.
import Handlebars from 'handlebars';
import mjml2html from 'mjml';
import YAML from 'yaml';
import { brandTemplateData, SAMPLE_BRAND, type BrandTemplateData } from './brand';
import { compileCondition, fieldsRead, type Condition } from './conditions';
import type { FileProblem } from './errors';
import { checkLiteralLink } from './link-policy';
import { templateReads, unprovidedField } from './template-fields';
import { offerCodeCalls } from './offer-codes';
import { decodeEntities, registerTemplateHelpers, TEMPLATE_BLOCK_HELPERS, TEMPLATE_HELPERS, withRenderRuntime, type FallbackUse, type RenderRuntime, type TemplateSite } from './template-helpers';
import {
  PLACEHOLDER,
  expandPartials,
  prepareMjml,
  SourceProblems,
  tokenize,
  type MappedText,
  type Origin,
  type PartialLibrary,
  type Piece,
  type SourceFile,
  type Token,
} from './template-source';

export type TemplateCategory = 'marketing' | 'transactional';

export interface TemplateHeader {
  subject: string;
  preheader?: string;
  from?: string;
  /** Marketing emails need consent and carry unsubscribe; transactional ones do neither. */
  category: TemplateCategory;
  layout?: string;
  /** Custom traits the template reads, declared so validation does not question them. */
  traits: string[];
}

export interface CompiledTemplate {
  name: string;
  file: string;
  header: TemplateHeader;
  /** Subject, preheader, HTML and text in one template, separated by PART_SEPARATOR. */
  all: Handlebars.TemplateDelegate;
  /** The same four parts one by one, for the rare data that holds the separator itself. */
  parts: [Handlebars.TemplateDelegate, Handlebars.TemplateDelegate, Handlebars.TemplateDelegate, Handlebars.TemplateDelegate];
  hasPreheader: boolean;
  sites: TemplateSite[];
  /** Field paths read, each with the first file:line that reads it. */
  fieldsRead: Array<{ path: string; at: string }>;
  /** Links rewritten per recipient (tracking, UTM). */
  linkCount: number;
  /** The offer code pools its `{{offer_code pool="…"}}` calls name, sorted: a send claims a code from each before rendering. */
  offerPools: string[];
}

export interface CompileResult {
  template: CompiledTemplate | null;
  /** Errors make `template` null; warnings do not. */
  problems: FileProblem[];
}

/** Gmail clips a message whose HTML is larger than this. */
export const GMAIL_CLIP_BYTES = 102 * 1024;

const HEADER = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/;
const HEADER_KEYS = ['subject', 'preheader', 'from', 'category', 'layout', 'traits'];
const LINK_MARKER = /href="MFLK(\d+)X"/g;
const TEXT_LINK_MARKER = / ?\(MFLK(\d+)X\)/g;
const IMAGE_MARKER = /src="MFIM(\d+)X"/g;
const OPEN_PIXEL_MARKER = 'MFOPENPIXELX';
const LANG_MARKER = 'MFLANGX';
/** Between the parts of the combined template; control characters no template holds. */
const PART_SEPARATOR = '\u001e\u001fmicroflows-part\u001f\u001e';

/** Isolated Handlebars with the template helpers; one per process is enough. */
export function templateHandlebars(): typeof Handlebars {
  const handlebars = Handlebars.create();
  registerTemplateHelpers(handlebars);
  return handlebars;
}

function lineOfKey(headerText: string, key: string): number {
  const index = headerText.split('\n').findIndex((line) => new RegExp(`^${key}\\s*:`).test(line));
  return index === -1 ? 1 : index + 2; // the opening --- is line 1
}

function parseHeader(source: SourceFile, problems: SourceProblems): { header: TemplateHeader; body: string; bodyLine: number; headerText: string } | null {
  const match = HEADER.exec(source.text);
  const at = (line: number): Origin => ({ file: source.file, line });
  if (!match) {
    problems.error(at(1), 'a template starts with a header between "---" lines holding at least "subject:"');
    return null;
  }
  const headerText = match[1] ?? '';
  let raw: Record<string, unknown> | null;
  try {
    raw = YAML.parse(headerText) as Record<string, unknown> | null;
  } catch (err) {
    const line = (err as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line;
    problems.error(at((line ?? 0) + 1), `the header is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) raw = {};
  for (const key of Object.keys(raw)) if (!HEADER_KEYS.includes(key)) problems.warning(at(lineOfKey(headerText, key)), `unknown header key "${key}"; known: ${HEADER_KEYS.join(', ')}`);
  if (typeof raw.subject !== 'string' || raw.subject.trim() === '') {
    problems.error(at(2), 'the header needs a "subject:" line');
    return null;
  }
  const category = raw.category ?? 'marketing';
  if (category !== 'marketing' && category !== 'transactional') {
    problems.error(at(lineOfKey(headerText, 'category')), `header "category" must be marketing or transactional, got ${JSON.stringify(category)}`);
    return null;
  }
  const traits = Array.isArray(raw.traits) ? raw.traits.filter((t): t is string => typeof t === 'string') : [];
  return {
    header: {
      subject: raw.subject,
      preheader: typeof raw.preheader === 'string' ? raw.preheader : undefined,
      from: typeof raw.from === 'string' ? raw.from : undefined,
      category,
      layout: typeof raw.layout === 'string' ? raw.layout : undefined,
      traits,
    },
    body: source.text.slice(match[0].length),
    bodyLine: match[0].split('\n').length,
    headerText,
  };
}

/**
 * The brand kit is the same for every recipient: `{{brand.colors.primary}}` and the like are written into the MJML at
 * compile time, so MJML's own mechanisms (mj-attributes, mj-class, inline styles) see real colours and fonts. Values
 * that are not text or numbers (a block's condition, a list) stay Handlebars and render from data.
 */
function inlineBrand(pieces: Piece[], brand: BrandTemplateData, context: 'html' | 'text'): Piece[] {
  return pieces.map((piece) => {
    if (piece.kind !== 'token' || piece.token.kind !== 'output' || piece.token.rest !== '' || !/^brand(\.[a-z_]+)+$/.test(piece.token.name)) return piece;
    const value = piece.token.name
      .split('.')
      .slice(1)
      .reduce<unknown>((at, key) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined), brand);
    if (typeof value !== 'string' && typeof value !== 'number') return piece;
    const raw = String(value);
    const triple = piece.token.text.startsWith('{{{') || /^\{\{~?&/.test(piece.token.text);
    const text =
      context === 'text'
        ? raw.replace(/\{\{/g, '\\{{')
        : (triple ? raw : raw.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')).replace(/\{/g, '&#123;');
    return { kind: 'text', text, origin: piece.token.origin };
  });
}

/**
 * Splits text pieces so a head element (`<mj-preview>`, `<mj-title>`) holding `content`'s pieces goes in at the right
 * place: inside mj-head, or a new mj-head before mj-body.
 */
function withHeadElement(pieces: Piece[], element: string, content: Piece[]): Piece[] {
  const insertAt = (pattern: RegExp, make: (inner: Piece[], origin: Origin) => Piece[]): Piece[] | null => {
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (piece.kind !== 'text') continue;
      const match = pattern.exec(piece.text);
      if (!match) continue;
      const before = piece.text.slice(0, match.index);
      const after = piece.text.slice(match.index);
      const origin = piece.origin;
      return [...pieces.slice(0, i), { kind: 'text', text: before, origin }, ...make(content, origin), { kind: 'text', text: after, origin: { file: origin.file, line: origin.line + before.split('\n').length - 1 } }, ...pieces.slice(i + 1)];
    }
    return null;
  };
  const text = (t: string, origin: Origin): Piece => ({ kind: 'text', text: t, origin });
  return (
    insertAt(/<\/mj-head\s*>/, (inner, o) => [text(`<${element}>`, o), ...inner, text(`</${element}>`, o)]) ??
    insertAt(/<mj-body[\s>]/, (inner, o) => [text(`<mj-head><${element}>`, o), ...inner, text(`</${element}></mj-head>`, o)]) ??
    pieces
  );
}

/** `{{#if x}}` + ` __site=3` → `{{#if x __site=3}}` (before `as |…|` and `~}}`). */
function injectHash(text: string, hash: string): string {
  const close = text.endsWith('~}}') ? text.length - 3 : text.length - 2;
  const head = text.slice(0, close);
  const asAt = head.search(/\sas\s*\|/);
  return asAt === -1 ? `${head} ${hash}${text.slice(close)}` : `${head.slice(0, asAt)} ${hash}${head.slice(asAt)}${text.slice(close)}`;
}

/** `{{countdown …}}`, `{{{countdown …}}}` or `{{countdown … ~}}` + `text=true` → the hash before the closing braces. */
/** `{{x}}` → `{{{x}}}`, keeping whitespace control where Handlebars wants it: `{{~x ~}}` → `{{~{x }~}}`. */
function tripleStash(final: string): string {
  const match = /^\{\{(~?)([\s\S]*?)(~?)\}\}$/.exec(final);
  return match ? `{{${match[1]}{${match[2]}}${match[3]}}}` : final;
}

function withHashAtClose(text: string, hash: string): string {
  return text.replace(/(\s*\}?~?\}\}\}?)$/, ` ${hash}$1`);
}

/** Subexpressions that can fall back record their site too: `(default x "y")`, `(recommend "top_rated")`, `(offer_code pool="p")`. */
function injectSubexpressionSites(text: string, addSite: (expression: string) => number): string {
  return text.replace(/\((default|recommend|offer_code)(\s[^()]*)?\)/g, (whole, name: string, args: string | undefined) => `(${name}${args ?? ''} __site=${addSite(whole.slice(1, -1).trim())})`);
}

/** `{{#when profile.score gte=50}}` or `{{#when "profile.score: { gte: 50 }"}}` → the condition it stands for. */
function whenCondition(token: Token, problems: SourceProblems): Condition | null {
  let block: hbs.AST.BlockStatement;
  try {
    block = Handlebars.parse(`${token.text}{{/when}}`).body[0] as hbs.AST.BlockStatement;
  } catch (err) {
    problems.error(token.origin, `${token.text}: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
  const [first, ...others] = block.params;
  const pairs = block.hash?.pairs ?? [];
  const usage = 'write {{#when profile.field gte=50}} (operators as hash: eq, ne, gt, gte, lt, lte, exists, contains, size) or {{#when "profile.field: { gte: 50 }"}}';
  if (!first || others.length > 0) {
    problems.error(token.origin, `${token.text}: give one field or one condition; ${usage}`);
    return null;
  }
  if (first.type === 'StringLiteral' && pairs.length === 0) {
    try {
      const condition = YAML.parse((first as hbs.AST.StringLiteral).value) as unknown;
      if (!condition || typeof condition !== 'object' || Array.isArray(condition)) throw new Error('not a mapping of field → test');
      return condition as Condition;
    } catch (err) {
      problems.error(token.origin, `${token.text}: the condition is not a YAML mapping (${(err as Error).message.split('\n')[0]}); ${usage}`);
      return null;
    }
  }
  if (first.type !== 'PathExpression' || pairs.length === 0) {
    problems.error(token.origin, `${token.text}: ${usage}`);
    return null;
  }
  const test: Record<string, unknown> = {};
  for (const pair of pairs) {
    const value = pair.value as hbs.AST.Literal & { value?: unknown; original?: unknown };
    if (!['StringLiteral', 'NumberLiteral', 'BooleanLiteral'].includes(value.type)) {
      problems.error(token.origin, `${token.text}: ${pair.key}= takes a number, string or true/false, not ${value.type === 'PathExpression' ? `the field ${String(value.original)}` : value.type}`);
      return null;
    }
    test[pair.key] = value.value;
  }
  return { [(first as hbs.AST.PathExpression).original]: test };
}

interface Compiled {
  /** The final Handlebars text of each token. */
  finals: string[];
  sites: TemplateSite[];
}

function compileTokens(tokens: Token[], problems: SourceProblems): Compiled {
  const sites: TemplateSite[] = [];
  const addSite = (token: Token, expression: string, extra: Partial<TemplateSite> = {}) => sites.push({ at: `${token.origin.file}:${token.origin.line}`, expression, ...extra }) - 1;
  const finals = tokens.map((token) => {
    const withSubexpressions = injectSubexpressionSites(token.text, (expression) => addSite(token, expression));
    if (token.kind === 'open' && token.name === 'when') {
      const condition = whenCondition(token, problems);
      if (!condition) return '{{#when}}';
      try {
        const site = addSite(token, `#when ${token.rest}`, { condition: compileCondition(condition, 'when'), conditionFields: fieldsRead(condition) });
        return `{{#when __site=${site}}}`;
      } catch (err) {
        problems.error(token.origin, `${token.text}: ${(err as Error).message}`);
        return '{{#when}}';
      }
    }
    if (token.generated) return token.text;
    // A block on the brand kit alone (`{{#if brand.logo}}`) is the same for every recipient: its else is a choice
    // of the brand file, not a fallback of a customer's data, so it is not recorded as one.
    if (token.kind === 'open' && ['if', 'unless', 'each', 'with'].includes(token.name) && /^brand(\.[a-z_]+)*$/.test(token.rest)) return withSubexpressions;
    if (token.kind === 'open' && ['if', 'unless', 'each', 'with'].includes(token.name)) {
      return injectHash(withSubexpressions, `__site=${addSite(token, `#${token.name} ${token.rest}`)}`);
    }
    if (token.kind === 'else' && /^(if|unless)\s/.test(token.rest)) {
      return injectHash(withSubexpressions, `__site=${addSite(token, `else ${token.rest}`)}`);
    }
    if (token.kind === 'output' && (token.name === 'default' || token.name === 'offer_code')) {
      return injectHash(withSubexpressions, `__site=${addSite(token, `${token.name} ${token.rest}`)}`);
    }
    if (token.kind === 'output' && token.name === 'countdown') return withHashAtClose(withSubexpressions, `__site=${addSite(token, `countdown ${token.rest}`)}`);
    return withSubexpressions;
  });
  return { finals, sites };
}

function restoreTokens(text: string, finals: string[]): string {
  return text.replace(PLACEHOLDER, (_m, index: string) => finals[Number(index)] ?? '');
}

/** A link of the compiled HTML: its href as written (with token placeholders), and whether data goes into it. */
interface MarkedLink {
  href: string;
  literal: boolean;
}

/** An attribute's value in any of HTML's three spellings: "double", 'single' or unquoted. */
const ATTRIBUTE_VALUE = String.raw`(?:"([^"]*)"|'([^']*)'|([^\s"'=<>\x60]+))`;
const LINK_ATTRIBUTE = new RegExp(String.raw`(<(?:a|area)\b[^>]*?\shref\s*=\s*)` + ATTRIBUTE_VALUE, 'gi');
const IMAGE_SOURCE = new RegExp(String.raw`(<img\b[^>]*?\ssrc\s*=\s*)` + ATTRIBUTE_VALUE, 'gi');
const HAS_TOKEN = /MFHB\d+X/;

/**
 * Finds the links of the compiled HTML and puts a numbered marker in each href, so tracking and the link policy run
 * per recipient; an image whose src holds data gets a marker too (the policy checks it per recipient). Links with
 * a literal mailto:, tel:, sms: or #fragment and the unsubscribe link are left as they are.
 */
function markLinks(html: string, finals: string[]): { html: string; links: MarkedLink[]; images: string[] } {
  const links: MarkedLink[] = [];
  const images: string[] = [];
  const linked = html.replace(LINK_ATTRIBUTE, (whole, start: string, double?: string, single?: string, bare?: string) => {
    const href = double ?? single ?? bare ?? '';
    const trimmed = href.trim();
    if (trimmed === '' || /^(mailto:|tel:|sms:|#)/i.test(trimmed)) return whole;
    // The unsubscribe and preference links go straight to their pages: a click-tracking hop in front helps no one.
    if (/^\{\{\{?~?\s*(?:unsubscribe_url|preferences_url)\s*~?\}?\}\}$/.test(restoreTokens(trimmed, finals))) return whole;
    return `${start}"MFLK${links.push({ href, literal: !HAS_TOKEN.test(href) }) - 1}X"`;
  });
  const marked = linked.replace(IMAGE_SOURCE, (whole, start: string, double?: string, single?: string, bare?: string) => {
    const src = double ?? single ?? bare ?? '';
    if (!HAS_TOKEN.test(src)) return whole;
    return `${start}"MFIM${images.push(src) - 1}X"`;
  });
  return { html: marked, links, images };
}

/**
 * MJML indents its output for reading; the indentation is a third of the bytes. A run of whitespace that holds a
 * line break renders as one space in HTML whatever its length, so it becomes one line break (not inside <pre>).
 */
export function compactHtml(html: string): string {
  return html
    .split(/(<pre\b[\s\S]*?<\/pre>)/i)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/[ \t]*\n\s*/g, '\n')))
    .join('');
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * The plain-text twin, from the compiled HTML with its markers still in: links as `label (url)`, one line per
 * block element, hidden text (the preheader, conditional comments) dropped.
 */
export function htmlToTextSource(html: string): string {
  return decodeEntities(
    html
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/<(style|script|head|title)\b[\s\S]*?<\/\1>/gi, '')
      .replace(/<div\b[^>]*display:\s*none[^>]*>[\s\S]*?<\/div>/gi, '')
      .replace(/<a\b[^>]*?\shref="([^"]*)"[^>]*>([\s\S]*?)<\/a>/gi, (_m, href: string, label: string) => {
        const text = collapse(label.replace(/<[^>]+>/g, ''));
        // A link around an image only (a product picture) says nothing in text: the named links carry the URLs.
        if (text === '') return '';
        return text === href ? ` ${href} ` : `${text} (${href})`;
      })
      .replace(/<img\b[^>]*>/gi, '')
      .replace(/<(br|\/p|\/div|\/tr|\/h[1-6]|\/li|\/table)\b[^>]*>/gi, '\n')
      .replace(/<[^>]+>/g, ''),
  )
    .split('\n')
    .map((line) => line.replace(/[ \t\u00a0]+/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function mapParseError(err: Error, map: MappedText, problems: SourceProblems, what: string): void {
  const line = /line (\d+)/.exec(err.message)?.[1];
  const origin = map.origin(line ? Number(line) : 1);
  problems.error(origin, `${what}: ${err.message.split('\n').filter((l) => !/^-*\^$/.test(l.trim())).join(' ').replace(/\s+/g, ' ')}`);
}

/**
 * Compiles one template. `sample` is rendered once to warm the compiled functions and to measure the HTML size
 * against Gmail's clipping limit.
 */
export function compileTemplate(name: string, source: SourceFile, library: PartialLibrary, handlebars: typeof Handlebars, options: CompileTemplateOptions = {}): CompileResult {
  const problems = new SourceProblems();
  const parsed = parseHeader(source, problems);
  if (!parsed) return { template: null, problems: problems.list };
  const { header, body, bodyLine, headerText } = parsed;
  const at = (line: number): Origin => ({ file: source.file, line });

  if (/<mj-include\b/.test(body)) problems.error(at(bodyLine + body.slice(0, body.indexOf('<mj-include')).split('\n').length - 1), 'mj-include reads files at send time: put the fragment in partials/ and use {{> name}}');

  const brand = options.brand ?? brandTemplateData(SAMPLE_BRAND);
  let pieces = inlineBrand(
    expandPartials(tokenize({ file: source.file, text: body }, bodyLine, problems), library, problems, header.layout ? { name: header.layout, origin: at(lineOfKey(headerText, 'layout')) } : undefined),
    brand,
    'html',
  );
  const subjectTokens = tokenize({ file: source.file, text: header.subject }, lineOfKey(headerText, 'subject'), problems);
  const subjectPieces = inlineBrand(subjectTokens, brand, 'text');
  const preheaderPieces = header.preheader === undefined ? null : inlineBrand(tokenize({ file: source.file, text: header.preheader }, lineOfKey(headerText, 'preheader'), problems), brand, 'text');
  if (preheaderPieces) pieces = withHeadElement(pieces, 'mj-preview', preheaderPieces);
  // The email's <title> is its subject (what a browser tab or a screen reader announces first).
  if (!pieces.some((piece) => piece.kind === 'text' && /<mj-title[\s>]/.test(piece.text))) pieces = withHeadElement(pieces, 'mj-title', inlineBrand(subjectTokens, brand, 'html'));
  for (const piece of [...subjectPieces, ...(preheaderPieces ?? [])]) {
    if (piece.kind === 'token' && piece.token.kind === 'partial') problems.error(piece.token.origin, `${piece.token.text}: partials go in the body, not in the subject or preheader`);
  }

  const prepared = prepareMjml(pieces, problems);
  const subject = prepareMjml(subjectPieces, problems, { plainText: true });
  const preheader = preheaderPieces ? prepareMjml(preheaderPieces, problems, { plainText: true }) : null;

  // Syntax and what the template reads, from the source as written (partials inlined).
  const reads: Array<{ path: string; at: string }> = [];
  // The offer code pools, from the source as written: a pool must be a literal, so the send knows it before rendering.
  const offerPools = new Set<string>();
  for (const [what, part] of [['body', prepared], ['subject', subject]] as const) {
    let program: hbs.AST.Program;
    try {
      program = Handlebars.parse(part.handlebars.text());
    } catch (err) {
      mapParseError(err as Error, part.handlebars, problems, `Handlebars syntax error in the ${what}`);
      continue;
    }
    const found = templateReads(program);
    for (const call of offerCodeCalls(program)) {
      if ('pool' in call) offerPools.add(call.pool);
      else problems.error(part.handlebars.origin(call.line), call.problem);
    }
    for (const helper of found.unknownHelpers) {
      problems.error(part.handlebars.origin(helper.line), `unknown helper "${helper.name}": use one of money, number, date, pluralize, default, product_url, recommend, line_total, subtotal, unsubscribe_url, preferences_url, offer_code, countdown, or a block #if, #unless, #each, #with, #when`);
    }
    for (const field of found.fields) {
      const origin = part.handlebars.origin(field.line);
      if (!reads.some((r) => r.path === field.path)) reads.push({ path: field.path, at: `${origin.file}:${origin.line}` });
    }
  }
  for (const token of prepared.tokens) {
    if (token.kind === 'open' && token.name === 'when') {
      const condition = whenCondition(token, new SourceProblems());
      for (const path of condition ? fieldsRead(condition) : []) if (!reads.some((r) => r.path === path)) reads.push({ path, at: `${token.origin.file}:${token.origin.line}` });
    }
  }
  for (const read of reads) {
    const why = unprovidedField(read.path, header.traits);
    if (why) {
      const [file, line] = [read.at.slice(0, read.at.lastIndexOf(':')), Number(read.at.slice(read.at.lastIndexOf(':') + 1))];
      problems.warning({ file, line }, `reads ${why}`);
    }
  }

  if (header.category === 'marketing' && !/\{\{\{?\s*unsubscribe_url\s*\}?\}\}/.test(prepared.handlebars.text())) {
    problems.error(at(lineOfKey(headerText, 'category')), 'a marketing email needs a visible unsubscribe link: add <a href="{{unsubscribe_url}}">Unsubscribe</a> (the footer partial has one)');
  }

  // MJML, once. Strict: an MJML error is a template error, never a send-time surprise.
  const mjmlText = prepared.mjml.text();
  let compiledHtml = '';
  try {
    const result = mjml2html(mjmlText, { validationLevel: 'soft', keepComments: false }) as unknown as { html: string; errors: Array<{ line: number; message: string; tagName: string; formattedMessage?: string }> };
    for (const error of result.errors) problems.error(prepared.mjml.origin(error.line), `MJML: ${error.message}`);
    compiledHtml = result.html;
  } catch (err) {
    const line = /line (\d+)/i.exec((err as Error).message)?.[1];
    problems.error(prepared.mjml.origin(line ? Number(line) : 1), `MJML: ${(err as Error).message}`);
  }
  for (const match of mjmlText.matchAll(/<mj-image\b([^>]*)>/g)) {
    const alt = /\balt="([^"]*)"/.exec(match[1] ?? '');
    if (!alt || alt[1]!.trim() === '') problems.warning(prepared.mjml.origin(mjmlText.slice(0, match.index).split('\n').length), 'an image without alt text: add alt="…" (shown when images are blocked, read by screen readers)');
  }

  if (problems.list.some((p) => p.severity === 'error')) return { template: null, problems: problems.list };

  const bodyCompiled = compileTokens(prepared.tokens, problems);
  const subjectCompiled = compileTokens(subject.tokens, problems);
  const preheaderCompiled = preheader ? compileTokens(preheader.tokens, problems) : null;
  // Sites are numbered per template: the body's first, then the subject's, then the preheader's.
  const sites = [...bodyCompiled.sites];
  const shift = (compiled: Compiled): string[] => {
    const offset = sites.length;
    sites.push(...compiled.sites);
    return compiled.finals.map((final) => final.replace(/__site=(\d+)/g, (_m, n: string) => `__site=${Number(n) + offset}`));
  };
  const subjectFinals = shift(subjectCompiled);
  const preheaderFinals = preheaderCompiled ? shift(preheaderCompiled) : null;

  // MJML writes lang="und" unless the template sets one: the customer's locale says which language the email is in.
  const withPixel = compactHtml(compiledHtml)
    .replace(/<\/body>/i, `${OPEN_PIXEL_MARKER}</body>`)
    // MJML writes it on <html> and on the body's wrapper div, which a screen reader takes as the nearer one.
    .replace(/(<(?:html|div)\b[^>]*?\slang=)"und"/gi, `$1"${LANG_MARKER}"`);
  const { html: marked, links, images } = markLinks(withPixel, bodyCompiled.finals);
  // Each link and data-fed image is a site: a refused URL is a fallback recorded with where the link was written.
  const asWritten = (text: string) => text.replace(PLACEHOLDER, (_m, i: string) => prepared.tokens[Number(i)]?.text ?? '');
  const originOf = (value: string): Origin => {
    const first = /MFHB(\d+)X/.exec(value);
    const token = first ? prepared.tokens[Number(first[1])] : undefined;
    if (token) return token.origin;
    // A literal link has no token to place it: its line is where its text is in the MJML.
    const at = mjmlText.indexOf(value);
    return prepared.mjml.origin(at === -1 ? 1 : mjmlText.slice(0, at).split('\n').length);
  };
  const siteOf = (attribute: string, value: string, origin: Origin): number => sites.push({ at: `${origin.file}:${origin.line}`, expression: `${attribute}="${asWritten(value)}"` }) - 1;
  const linkHashes = links.map((link) => {
    const origin = originOf(link.href);
    if (link.literal) {
      const verdict = checkLiteralLink(decodeEntities(link.href));
      if (!verdict.ok) problems.warning(origin, `${verdict.reason}: the link is sent without its address`);
    }
    return ` __site=${siteOf('href', link.href, origin)}${link.literal ? ' literal=true' : ''}`;
  });
  const imageSites = images.map((src) => siteOf('src', src, originOf(src)));
  const htmlSource = restoreTokens(marked, bodyCompiled.finals)
    .replace(LINK_MARKER, (_m, k: string) => `{{#__link ${k}${linkHashes[Number(k)]}}}${restoreTokens(links[Number(k)]!.href, bodyCompiled.finals)}{{/__link}}`)
    .replace(IMAGE_MARKER, (_m, k: string) => `{{#__src __site=${imageSites[Number(k)]}}}${restoreTokens(images[Number(k)]!, bodyCompiled.finals)}{{/__src}}`)
    .replace(OPEN_PIXEL_MARKER, '{{__open_pixel}}')
    .replaceAll(LANG_MARKER, '{{__lang}}');

  // Plain-text parts print data as is: their outputs become triple-stash, so all four parts can share one template.
  // A countdown in text is the sentence that states its deadline (text=true): an image URL says nothing there.
  const textFinal = (final: string, token: Token | undefined) => (token?.kind === 'output' && token.name === 'countdown' ? withHashAtClose(final, 'text=true') : final);
  const unescaped = (finals: string[], tokens: Token[]) =>
    finals.map((final, i) => textFinal(tokens[i]?.kind === 'output' && !/^\{\{~?\{|^\{\{~?&/.test(final) ? tripleStash(final) : final, tokens[i]));
  const bodyTextFinals = unescaped(bodyCompiled.finals, prepared.tokens);
  const subjectSource = rebuild(subjectPieces, unescaped(subjectFinals, subject.tokens));
  const preheaderSource = preheaderPieces && preheaderFinals && preheader ? rebuild(preheaderPieces, unescaped(preheaderFinals, preheader.tokens)) : '';
  const rawTextSource = restoreTokens(htmlToTextSource(marked.replace(OPEN_PIXEL_MARKER, '').replaceAll(LANG_MARKER, '')), bodyTextFinals).replace(
    TEXT_LINK_MARKER,
    (_m, k: string) => `{{#__link ${k}${linkHashes[Number(k)]} text=true}}${restoreTokens(decodeEntities(links[Number(k)]!.href), bodyTextFinals)}{{/__link}}`,
  );

  const textSource = pruneEmptyBlocks(rawTextSource);
  // What the template emits whatever the data; loops and data add to it.
  const staticBytes = Buffer.byteLength(htmlSource.replace(/\{\{[\s\S]*?\}\}/g, ''));
  if (staticBytes > GMAIL_CLIP_BYTES) {
    problems.warning(at(bodyLine), `the HTML is ${Math.round(staticBytes / 1024)} KB before any data: Gmail clips messages over ${GMAIL_CLIP_BYTES / 1024} KB (and hides the unsubscribe link with the rest); cut content or split the email`);
  }

  let compiled: CompiledTemplate;
  try {
    // Known helpers compile to direct calls instead of a helper-or-field lookup at every use.
    const knownHelpers = Object.fromEntries([...TEMPLATE_HELPERS, ...TEMPLATE_BLOCK_HELPERS, '__link', '__src', '__open_pixel', '__lang'].map((name) => [name, true]));
    const parts = [subjectSource, preheaderSource, htmlSource, textSource];
    // Handlebars' data frames (@index, @root, …) cost two closures and a frame per block call; a template that uses
    // no @-variable goes without them, its helpers reaching the render's runtime through withRenderRuntime.
    const usesDataVariables = parts.some((part) => /\{\{[^}]*@/.test(part));
    const options = { strict: false, preventIndent: true, knownHelpers, knownHelpersOnly: true, data: usesDataVariables };
    compiled = {
      name,
      file: source.file,
      header,
      // One invocation renders all four parts: Handlebars' per-call setup and the helpers' work are paid once.
      all: handlebars.compile(withoutLocations(handlebars.parse(parts.join(PART_SEPARATOR))), options),
      parts: parts.map((part) => handlebars.compile(withoutLocations(handlebars.parse(part)), options)) as CompiledTemplate['parts'],
      hasPreheader: preheaderPieces !== null,
      sites,
      fieldsRead: reads.sort((a, b) => a.path.localeCompare(b.path)),
      linkCount: links.length,
      offerPools: [...offerPools].sort(),
    };
    compiled.all({ profile: {}, consent: {} }, { data: {} });
  } catch (err) {
    problems.error(at(bodyLine), `Handlebars: ${(err as Error).message}`);
    return { template: null, problems: problems.list };
  }
  // Checked only on a template that is otherwise fine: a broken one would report its footer as missing too.
  if (header.category === 'marketing' && !problems.list.some((p) => p.severity === 'error')) {
    const missing = missingFromFooter(compiled, brand);
    if (missing.length > 0) {
      problems.error(
        at(lineOfKey(headerText, 'category')),
        `a marketing email must show ${missing.join(', ')}, and rendered with sample data it does not: include {{> footer}} (templates/partials/footer.mjml), ` +
          'or write them where every render shows them: {{brand.postal_address}}, <a href="{{unsubscribe_url}}">Unsubscribe</a>, <a href="{{preferences_url}}">Manage preferences</a>',
      );
      return { template: null, problems: problems.list };
    }
  }
  return { template: compiled, problems: problems.list };
}

/** What templates read as `brand.*` (core/brand brandTemplateData), as the footer check needs it. */
export interface FooterBrand {
  name: string;
  postal_address: string;
}

export interface CompileTemplateOptions {
  /**
   * The sender's brand kit: `{{brand.*}}` text is written in at compile time, and a marketing email must show its postal
   * address; absent: core/brand SAMPLE_BRAND's.
   */
  brand?: BrandTemplateData;
}

const FOOTER_CHECK_UNSUBSCRIBE = 'https://footer-check.invalid/unsubscribe';
const FOOTER_CHECK_PREFERENCES = 'https://footer-check.invalid/preferences';

/**
 * What the law and the mailbox providers want in every marketing email (the postal address, the unsubscribe link, the
 * preference link) that `template` does not show when rendered with sample data (an empty profile, `brand`): a
 * footer inside a block that empty data skips, or a link the link policy drops, counts as missing.
 */
export function missingFromFooter(template: CompiledTemplate, brand: FooterBrand & Partial<BrandTemplateData>): string[] {
  const rendered = renderTemplate(
    template,
    { profile: {}, consent: {}, event: {}, data: {}, flow: {}, shop: { url: 'https://shop.example', currency: 'USD' }, brand: { ...brand } },
    {
      locale: 'en-US',
      timezone: null,
      currency: 'USD',
      shopUrl: 'https://shop.example',
      linkDomains: [],
      link: (url) => url,
      unsubscribeUrl: FOOTER_CHECK_UNSUBSCRIBE,
      preferencesUrl: FOOTER_CHECK_PREFERENCES,
      openPixelUrl: null,
      recommend: null,
      productUrl: () => undefined,
    },
  );
  const text = collapse(decodeEntities(rendered.html));
  const missing: string[] = [];
  if (!text.includes(collapse(brand.postal_address))) missing.push(`the postal address (brand.postal_address: "${brand.postal_address}")`);
  if (!rendered.html.includes(`href="${FOOTER_CHECK_UNSUBSCRIBE}"`)) missing.push('the unsubscribe link ({{unsubscribe_url}})');
  if (!rendered.html.includes(`href="${FOOTER_CHECK_PREFERENCES}"`)) missing.push('the preference link ({{preferences_url}})');
  return missing;
}

/**
 * Blocks of the text part that show nothing either way (an image and its placeholder, in text) are dropped, innermost
 * first, so a render does not evaluate them twice for nothing. The HTML part still evaluates and records them.
 */
function pruneEmptyBlocks(source: string): string {
  const empty = /\{\{~?#(if|unless|each|with|when)\b[^{}]*\}\}\s*(?:\{\{~?else~?\}\}\s*)?\{\{~?\/\1~?\}\}/g;
  for (let previous = ''; previous !== source; ) {
    previous = source;
    source = source.replace(empty, '');
  }
  return source;
}

/**
 * The syntax tree without source locations: Handlebars builds a `loc` object literal into every helper call it
 * compiles, three objects per call per recipient, for error messages no render shows (problems are reported with
 * template:line at load).
 */
function withoutLocations(program: hbs.AST.Program): hbs.AST.Program {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      delete (node as { loc?: unknown }).loc;
      for (const value of Object.values(node)) visit(value);
    }
  };
  visit(program);
  return program;
}

/** A plain-text part (subject, preheader) as Handlebars: its text pieces and its tokens' final texts, in order. */
function rebuild(pieces: Piece[], finals: string[]): string {
  let index = 0;
  return pieces
    .map((piece) => {
      if (piece.kind === 'text') return piece.text;
      if (piece.token.kind === 'comment' || piece.token.kind === 'partial') return '';
      return finals[index++] ?? '';
    })
    .join('');
}

/** What a template is rendered with. */
export interface TemplateData {
  profile: Record<string, unknown>;
  consent: Record<string, unknown>;
  event?: Record<string, unknown>;
  data?: Record<string, unknown>;
  flow?: Record<string, unknown>;
  shop?: Record<string, unknown>;
  /** The sender's brand kit (brand.yaml): name, postal address, logo, colours, support, social links. */
  brand?: Record<string, unknown> | BrandTemplateData;
}

export interface RenderedTemplate {
  subject: string;
  preheader: string | null;
  html: string;
  text: string;
  fallbacks: FallbackUse[];
}

/** Per recipient: Handlebars only. Never throws for missing data; fallbacks used are listed. */
export function renderTemplate(template: CompiledTemplate, data: TemplateData, runtime: Omit<RenderRuntime, 'sites' | 'fallbacks'>): RenderedTemplate {
  // The text part repeats the HTML's links and blocks: each link is signed, each recommendation computed, once.
  const links = new Map<string, string>();
  const recommendations = new Map<string, ReturnType<NonNullable<RenderRuntime['recommend']>>>();
  const recommend = runtime.recommend;
  const mf: RenderRuntime = {
    ...runtime,
    sites: template.sites,
    fallbacks: [],
    link: (url, index, literal) => {
      // The same URL written in the template and given by data are two links: their click tokens differ.
      const key = literal ? url : `\u0000${url}`;
      let rewritten = links.get(key);
      if (rewritten === undefined) links.set(key, (rewritten = runtime.link(url, index, literal)));
      return rewritten;
    },
    recommend: recommend
      ? (kind, profile, options) => {
          const key = `${kind}|${options.limit ?? ''}|${options.productId ?? ''}`;
          let result = recommendations.get(key);
          if (!result) recommendations.set(key, (result = recommend(kind, profile, options)));
          return result;
        }
      : null,
  };
  const options = { data: { mf } };
  const root = data as unknown as Record<string, unknown>;
  let parts = withRenderRuntime(mf, root, () => template.all(data, options)).split(PART_SEPARATOR);
  // Data that holds the separator (it is made of control characters) is rendered part by part.
  if (parts.length !== 4) parts = withRenderRuntime(mf, root, () => template.parts.map((part) => part(data, options)));
  const [subject, preheader, html, text] = parts as [string, string, string, string];
  return {
    subject: subject.replace(/\s+/g, ' ').trim(),
    preheader: template.hasPreheader ? preheader.replace(/\s+/g, ' ').trim() : null,
    html,
    // Blocks that showed nothing leave blank lines behind.
    text: text.replace(/\n{3,}/g, '\n\n').trim(),
    fallbacks: dedupeFallbacks(mf.fallbacks),
  };
}

function dedupeFallbacks(fallbacks: FallbackUse[]): FallbackUse[] {
  const seen = new Set<string>();
  return fallbacks.filter((f) => {
    const key = `${f.at}|${f.expression}|${f.reason}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
