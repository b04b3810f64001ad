// Turns a template's MJML-with-Handlebars source into what is compiled once at load: partials and the layout
// inlined, every Handlebars tag swapped for an opaque placeholder MJML cannot mangle (block tags that sit between
// MJML elements wrapped in <mj-raw> so they survive as markers), with a line map back to file:line. It also checks
// what a Handlebars parser lets through but a marketer must not ship: a conditional block without fallback, a block
// that opens in one element and closes in another, text outside a content element, an unknown partial. Pure.
import type { FileProblem } from './errors';

export interface SourceFile {
  /** For messages: the path as the author knows it. */
  file: string;
  text: string;
}

/** Where a line of generated text came from. */
export interface Origin {
  file: string;
  line: number;
}

export type TokenKind = 'open' | 'else' | 'close' | 'partial' | 'comment' | 'output';

/** One Handlebars tag (`{{…}}`, `{{{…}}}`, `{{!…}}`) of a source file. */
export interface Token {
  kind: TokenKind;
  /** The tag as written, braces included. */
  text: string;
  /** The block or helper name (`if`, `each`, `money`), the partial's name, or the path an output reads. */
  name: string;
  /** What follows the name inside the braces (params, hash, `as |x|`), trimmed. */
  rest: string;
  origin: Origin;
  /** Made by the compiler (the `with` around a partial given a context): exempt from the fallback rule. */
  generated?: boolean;
}

export type Piece = { kind: 'text'; text: string; origin: Origin } | { kind: 'token'; token: Token };

/** Blocks that show content only when their data is there: each needs an `{{else}}` (the fallback). */
export const CONDITIONAL_BLOCKS = ['if', 'unless', 'each', 'with', 'when'] as const;
const KNOWN_BLOCKS = new Set<string>(CONDITIONAL_BLOCKS);

/** MJML elements whose content is HTML passed through: Handlebars inside them is plain text to MJML. */
const ENDING_TAGS = new Set([
  'mj-text',
  'mj-button',
  'mj-raw',
  'mj-table',
  'mj-navbar-link',
  'mj-accordion-title',
  'mj-accordion-text',
  'mj-social-element',
  'mj-style',
  'mj-title',
  'mj-preview',
]);

/** MJML elements that hold other elements (Handlebars blocks between them go into <mj-raw> markers). */
const STRUCTURAL_TAGS = new Set([
  'mjml', 'mj-head', 'mj-body', 'mj-section', 'mj-column', 'mj-group', 'mj-wrapper', 'mj-hero', 'mj-attributes', 'mj-all', 'mj-class',
  'mj-breakpoint', 'mj-font', 'mj-navbar', 'mj-social', 'mj-carousel', 'mj-carousel-image', 'mj-accordion', 'mj-accordion-element',
  'mj-image', 'mj-divider', 'mj-spacer', 'mj-html-attributes', 'mj-selector', 'mj-html-attribute',
]);

/** The layout slot: where a template using `layout:` goes inside its layout file. */
export const LAYOUT_SLOT = '@partial-block';

const PLACEHOLDER_PREFIX = 'MFHB';
const PLACEHOLDER_SUFFIX = 'X';
export const PLACEHOLDER = /MFHB(\d+)X/g;

export function placeholder(index: number): string {
  return `${PLACEHOLDER_PREFIX}${index}${PLACEHOLDER_SUFFIX}`;
}

class Problems {
  readonly list: FileProblem[] = [];
  error(origin: Origin, message: string): void {
    this.list.push({ file: origin.file, line: origin.line, message, severity: 'error' });
  }
  warning(origin: Origin, message: string): void {
    this.list.push({ file: origin.file, line: origin.line, message, severity: 'warning' });
  }
}

function countNewlines(text: string, from = 0, to = text.length): number {
  let n = 0;
  for (let i = text.indexOf('\n', from); i !== -1 && i < to; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Index just past the closing braces of the tag opening at `start`, or -1. Quoted strings may hold braces. */
function tagEnd(text: string, start: number): number {
  if (text.startsWith('{{!--', start)) {
    const end = text.indexOf('--}}', start + 5);
    return end === -1 ? -1 : end + 4;
  }
  if (text.startsWith('{{{', start)) {
    const end = text.indexOf('}}}', start + 3);
    return end === -1 ? -1 : end + 3;
  }
  let quote: string | null = null;
  for (let i = start + 2; i < text.length - 1; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '}' && text[i + 1] === '}') return i + 2;
  }
  return -1;
}

function classify(raw: string, origin: Origin, problems: Problems): Omit<Token, 'text' | 'origin'> | null {
  const triple = raw.startsWith('{{{');
  let inner = triple ? raw.slice(3, -3) : raw.slice(2, -2);
  inner = inner.replace(/^~/, '').replace(/~$/, '').trim();
  if (inner.startsWith('!')) return { kind: 'comment', name: '', rest: '' };
  const word = (s: string) => {
    const match = /^[^\s()]+/.exec(s);
    const name = match ? match[0] : '';
    return { name, rest: s.slice(name.length).trim() };
  };
  if (triple || inner.startsWith('&')) return { kind: 'output', ...word(triple ? inner : inner.slice(1).trim()) };
  if (inner.startsWith('#>') || inner.startsWith('#*')) {
    problems.error(origin, `${raw}: partial blocks and inline partials are not supported; put the fragment in partials/ and use {{> name}}`);
    return null;
  }
  if (inner.startsWith('#')) return { kind: 'open', ...word(inner.slice(1).trim()) };
  if (inner.startsWith('/')) return { kind: 'close', name: inner.slice(1).trim(), rest: '' };
  if (inner.startsWith('^')) {
    if (inner.slice(1).trim() === '') return { kind: 'else', name: 'else', rest: '' };
    problems.error(origin, `${raw}: inverted sections are not supported; write {{#unless …}}…{{else}}…{{/unless}}`);
    return null;
  }
  if (/^else(\s|$)/.test(inner)) return { kind: 'else', name: 'else', rest: inner.slice(4).trim() };
  if (inner.startsWith('>')) return { kind: 'partial', ...word(inner.slice(1).trim()) };
  return { kind: 'output', ...word(inner) };
}

/** Splits a source into text and Handlebars tags, each with its file:line. */
export function tokenize(source: SourceFile, firstLine: number, problems: Problems): Piece[] {
  const text = source.text;
  const pieces: Piece[] = [];
  let pos = 0;
  let line = firstLine;
  const pushText = (until: number) => {
    if (until > pos) pieces.push({ kind: 'text', text: text.slice(pos, until), origin: { file: source.file, line } });
    line += countNewlines(text, pos, until);
    pos = until;
  };
  for (;;) {
    let start = text.indexOf('{{', pos);
    // `\{{` is a literal `{{` in Handlebars: leave it to Handlebars, as text.
    while (start > 0 && text[start - 1] === '\\') start = text.indexOf('{{', start + 2);
    if (start === -1) break;
    pushText(start);
    const origin = { file: source.file, line };
    const end = tagEnd(text, start);
    if (end === -1) {
      problems.error(origin, `"{{" is never closed: close the tag with "}}"`);
      pos = text.length;
      break;
    }
    const raw = text.slice(start, end);
    const kind = classify(raw, origin, problems);
    if (kind) pieces.push({ kind: 'token', token: { ...kind, text: raw, origin } });
    line += countNewlines(raw);
    pos = end;
  }
  pushText(text.length);
  return pieces;
}

export interface PartialLibrary {
  partials: ReadonlyMap<string, SourceFile>;
  layouts: ReadonlyMap<string, SourceFile>;
}

function generatedToken(kind: TokenKind, text: string, name: string, rest: string, origin: Origin): Piece {
  return { kind: 'token', token: { kind, text, name, rest, origin, generated: true } };
}

/**
 * Inlines `{{> partial}}` (and `{{> partial context}}`, as a `with` block) recursively, and puts the template into
 * its layout's `{{> @partial-block}}` when it names one.
 */
export function expandPartials(pieces: Piece[], library: PartialLibrary, problems: Problems, layout?: { name: string; origin: Origin }): Piece[] {
  const expand = (input: Piece[], chain: string[]): Piece[] => {
    const out: Piece[] = [];
    for (const piece of input) {
      if (piece.kind !== 'token' || piece.token.kind !== 'partial') {
        out.push(piece);
        continue;
      }
      const { name, rest, origin, text } = piece.token;
      if (name === LAYOUT_SLOT) {
        problems.error(origin, `${text} belongs in a layout file (layouts/), not in a template or partial`);
        continue;
      }
      const partial = library.partials.get(name);
      if (!partial) {
        const known = [...library.partials.keys()].sort();
        problems.error(origin, `unknown partial "${name}": add partials/${name}.mjml${known.length ? `, or use one of: ${known.join(', ')}` : ''}`);
        continue;
      }
      if (chain.includes(name)) {
        problems.error(origin, `partial "${name}" includes itself (${[...chain, name].join(' → ')}): break the cycle`);
        continue;
      }
      if (/=/.test(rest.replace(/"[^"]*"|'[^']*'/g, ''))) {
        problems.error(origin, `${text}: partial parameters (name=value) are not supported; pass one context, e.g. {{> ${name} product}}`);
        continue;
      }
      const inner = expand(tokenize(partial, 1, problems), [...chain, name]);
      if (rest === '') out.push(...inner);
      else {
        out.push(generatedToken('open', `{{#with ${rest}}}`, 'with', rest, origin));
        out.push(...inner);
        out.push(generatedToken('else', '{{else}}', 'else', '', origin));
        out.push(generatedToken('close', '{{/with}}', 'with', '', origin));
      }
    }
    return out;
  };
  const body = expand(pieces, []);
  if (!layout) return body;
  const file = library.layouts.get(layout.name);
  if (!file) {
    const known = [...library.layouts.keys()].sort();
    problems.error(layout.origin, `unknown layout "${layout.name}": add layouts/${layout.name}.mjml${known.length ? `, or use one of: ${known.join(', ')}` : ''}`);
    return body;
  }
  const shell = tokenize(file, 1, problems);
  const slots = shell.filter((p) => p.kind === 'token' && p.token.kind === 'partial' && p.token.name === LAYOUT_SLOT);
  if (slots.length !== 1) {
    problems.error({ file: file.file, line: 1 }, `a layout holds {{> ${LAYOUT_SLOT}}} exactly once, where the template goes; found ${slots.length}`);
    return body;
  }
  const out: Piece[] = [];
  for (const piece of shell) {
    if (piece === slots[0]) out.push(...body);
    else out.push(...expand([piece], [`layout ${layout.name}`]));
  }
  return out;
}

/** Builds text with a map from each of its lines to where that line came from. */
export class MappedText {
  private readonly parts: string[] = [];
  /** lineOrigins[k]: origin of the first character of line k+1. */
  private readonly lineOrigins: Origin[] = [];
  private atLineStart = true;

  append(text: string, origin: Origin): void {
    if (text === '') return;
    if (this.atLineStart) this.lineOrigins.push(origin);
    let line = origin.line;
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', nl + 1)) {
      line++;
      from = nl + 1;
      if (from < text.length) this.lineOrigins.push({ file: origin.file, line });
    }
    this.atLineStart = from === text.length && text.endsWith('\n');
    this.parts.push(text);
  }

  text(): string {
    return this.parts.join('');
  }

  /** Where line `line` (1-based) of the text came from; the last known origin past the end. */
  origin(line: number): Origin {
    return this.lineOrigins[Math.min(Math.max(line, 1), this.lineOrigins.length) - 1] ?? { file: '?', line };
  }
}

/** A block as the structure check tracks it. */
interface OpenBlock {
  token: Token;
  sawElse: boolean;
  /** Where in the MJML structure the block opened; its else and close must be in the same place. */
  place: string;
}

export interface PreparedSource {
  /** MJML with every Handlebars tag replaced by `placeholder(i)` (tokens[i]). */
  mjml: MappedText;
  /** The Handlebars source as written, partials and layout inlined: for parse errors and the fields read. */
  handlebars: MappedText;
  tokens: Token[];
  problems: FileProblem[];
}

/**
 * Walks the pieces once, tracking where each tag sits in the MJML element tree, and produces the MJML to compile
 * and the checks' problems. `rewrite(token)` gives the Handlebars text each tag becomes (with site ids injected).
 */
export function prepareMjml(pieces: Piece[], problemsIn?: Problems, options: { plainText?: boolean } = {}): PreparedSource {
  const problems = problemsIn ?? new Problems();
  const mjml = new MappedText();
  const handlebars = new MappedText();
  const tokens: Token[] = [];
  const blocks: OpenBlock[] = [];
  const elements: string[] = [];
  let ending: { name: string; serial: number } | null = null;
  let tag: { buffer: string; quote: string | null; serial: number } | null = null;
  let inComment = false;
  let serial = 0;

  const place = () => (options.plainText ? 'text' : inComment ? `comment` : tag ? `tag#${tag.serial}` : ending ? `${ending.name}#${ending.serial}` : `in ${elements.join('>')}`);
  const describePlace = (p: string) => (p === 'text' ? 'in the text' : p.startsWith('tag#') ? 'inside a tag' : p.startsWith('mj-') ? `inside <${p.split('#')[0]}>` : p === 'comment' ? 'inside a comment' : `between MJML elements (${p.slice(3) || 'top level'})`);

  const closeTag = (buffer: string) => {
    const match = /^<\s*(\/)?\s*([a-zA-Z][\w-]*)/.exec(buffer);
    if (!match) return;
    const closing = match[1] === '/';
    const name = match[2]!.toLowerCase();
    const selfClosing = /\/\s*>$/.test(buffer);
    if (ending) {
      if (closing && name === ending.name) {
        ending = null;
        elements.pop();
      }
      return;
    }
    if (!name.startsWith('mj')) return;
    if (closing) {
      if (elements[elements.length - 1] === name) elements.pop();
    } else if (!selfClosing) {
      elements.push(name);
      // An element MJML does not know is reported by MJML; its content is taken as text, so one typo is one error.
      if (ENDING_TAGS.has(name) || !STRUCTURAL_TAGS.has(name)) ending = { name, serial: ++serial };
    }
  };

  const scanText = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (inComment) {
        if (c === '-' && text.startsWith('-->', i)) {
          inComment = false;
          i += 2;
        }
      } else if (tag) {
        tag.buffer += c;
        if (tag.quote) {
          if (c === tag.quote) tag.quote = null;
        } else if (c === '"' || c === "'") tag.quote = c;
        else if (c === '>') {
          const buffer = tag.buffer;
          tag = null;
          closeTag(buffer);
        }
      } else if (c === '<') {
        if (text.startsWith('<!--', i)) {
          inComment = true;
          i += 3;
        } else if (/[a-zA-Z/]/.test(text[i + 1] ?? '')) tag = { buffer: '<', quote: null, serial: ++serial };
      }
    }
  };

  for (const piece of pieces) {
    if (piece.kind === 'text') {
      mjml.append(piece.text, piece.origin);
      handlebars.append(piece.text, piece.origin);
      scanText(piece.text);
      continue;
    }
    const token = piece.token;
    const here = place();
    const structural = here.startsWith('in ');
    if (token.kind === 'comment') continue;
    handlebars.append(token.text, token.origin);
    if (token.kind === 'partial') continue; // reported by expandPartials
    const index = tokens.push(token) - 1;
    const marker = placeholder(index);
    if (tag !== null) (tag as { buffer: string }).buffer += marker;
    if (token.kind === 'output') {
      if (structural) {
        problems.error(token.origin, `${token.text} is text between MJML elements, where MJML drops it: put it inside <mj-text> (or another content element)`);
      }
      mjml.append(marker, token.origin);
      continue;
    }
    mjml.append(structural ? `<mj-raw>${marker}</mj-raw>` : marker, token.origin);
    if (token.kind === 'open') {
      if (!KNOWN_BLOCKS.has(token.name)) {
        problems.error(token.origin, `unknown block helper {{#${token.name}}}: use one of ${[...KNOWN_BLOCKS].map((b) => `#${b}`).join(', ')}`);
      }
      blocks.push({ token, sawElse: false, place: here });
    } else if (token.kind === 'else') {
      const block = blocks[blocks.length - 1];
      if (!block) problems.error(token.origin, `${token.text} is outside any block`);
      else {
        if (block.place !== here) problems.error(token.origin, `${token.text} is ${describePlace(here)}, but its {{#${block.token.name}}} (line ${block.token.origin.line}) is ${describePlace(block.place)}: keep a block's parts in one element`);
        block.sawElse = true;
      }
    } else if (token.kind === 'close') {
      const block = blocks.pop();
      if (!block) problems.error(token.origin, `${token.text} closes no open block`);
      else if (block.token.name !== token.name) {
        problems.error(token.origin, `${token.text} closes {{#${block.token.name}}} opened at line ${block.token.origin.line}: close it with {{/${block.token.name}}}`);
      } else {
        if (block.place !== here) {
          problems.error(token.origin, `${token.text} is ${describePlace(here)}, but its {{#${block.token.name}}} (line ${block.token.origin.line}) is ${describePlace(block.place)}: open and close a block in the same element`);
        }
        if (!block.sawElse && !block.token.generated && (CONDITIONAL_BLOCKS as readonly string[]).includes(block.token.name)) {
          problems.error(
            block.token.origin,
            `${block.token.text} has no fallback: add {{else}} with what to show when the data is missing (an empty {{else}} shows nothing, on purpose)`,
          );
        }
      }
    }
  }
  for (const block of blocks) problems.error(block.token.origin, `${block.token.text} is never closed: add {{/${block.token.name}}}`);
  return { mjml, handlebars, tokens, problems: problems.list };
}

export { Problems as SourceProblems };
