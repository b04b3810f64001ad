// Reads a product catalog — JSON (a list of products, or { "products": [...] }) or CSV (a header row, then a product
// per row) — into the Product records templates see, reporting every bad field with file:line, path and what to fix.
// Pure: the caller reads the files (cli/catalog-files.ts) or the request body (server/app.ts).
import { parse as parseCsv } from 'csv-parse/sync';
import { CatalogError, isMicroflowsError } from './errors';
import type { FileProblem, SourceLocation } from './errors';
import { parseStrictJson } from './strict-json';
import { suggest } from './yaml-reader';

/**
 * A product as templates see it. The field names are those of a cart item (core/behavior.ts `CartItem`), so one
 * template partial can show a cart item or a recommended product.
 */
export interface Product {
  product_id: string;
  name: string;
  category: string;
  price: number;
  image_url?: string;
  url: string;
  /** 0 to 5. */
  rating?: number;
  review_count?: number;
  /** Units in stock; null when stock is not tracked, which counts as available. */
  stock: number | null;
  /** Products to show with this one (accessories, matching items), in the order given. */
  related_ids: string[];
}

/**
 * The columns of a catalog file (CSV header names, JSON keys) and the Product field each fills:
 *
 *   id       → product_id    required; text (JSON also takes a whole number)
 *   name     → name          required; text
 *   category → category      required; text, e.g. Shoes (matched to profiles without regard to case)
 *   price    → price         required; a number of 0 or more, e.g. 19.99 (no currency sign)
 *   image    → image_url     optional; an absolute http(s) URL
 *   url      → url           required; an absolute http(s) URL
 *   rating   → rating        optional; a number from 0 to 5
 *   reviews  → review_count  optional; a whole number of 0 or more
 *   stock    → stock         optional; a whole number of 0 or more; empty, absent or null = not tracked (available)
 *   related  → related_ids   optional; JSON: a list of ids; CSV: ids separated by "|"; each must name a product
 *
 * The Product names (`product_id`, `image_url`, `review_count`, `related_ids`) are accepted as well, so a product
 * read back from GET /api/catalog/products/:id can be sent again as it is. In CSV an empty cell is an absent value.
 */
export const CATALOG_COLUMNS = ['id', 'name', 'category', 'price', 'image', 'url', 'rating', 'reviews', 'stock', 'related'] as const;
export type CatalogColumn = (typeof CATALOG_COLUMNS)[number];

const PRODUCT_FIELD_NAMES: Readonly<Record<string, CatalogColumn>> = { product_id: 'id', image_url: 'image', review_count: 'reviews', related_ids: 'related' };
const ACCEPTED_NAMES: readonly string[] = [...CATALOG_COLUMNS, ...Object.keys(PRODUCT_FIELD_NAMES)];
const REQUIRED_COLUMNS: readonly CatalogColumn[] = ['id', 'name', 'category', 'price', 'url'];

const MISSING_HINT: Record<CatalogColumn, string> = {
  id: 'each product needs its own id, e.g. sku-1',
  name: 'the product name shown in emails',
  category: 'e.g. Shoes; top-rated blocks pick products by category',
  price: 'a number such as 19.99',
  image: '',
  url: 'the product page, e.g. https://shop.example.com/p/sku-1',
  rating: '',
  reviews: '',
  stock: '',
  related: '',
};

/** A product read from a file, with where it is: checks across products (duplicate ids, related ids) point there. */
export interface CatalogEntry {
  product: Product;
  /** Where the product's id is. */
  idAt: SourceLocation;
  /** Where each of `product.related_ids` is, in the same order. */
  relatedAt: SourceLocation[];
}

/** One catalog file read on its own: the products it holds and the problems found in it. */
export interface CatalogFile {
  file: string;
  /** The valid products. */
  entries: CatalogEntry[];
  /** The id of every product that has one, valid or not, in file order: a product with a bad price still owns its
   *  id, so others relating to it or reusing it get no misleading follow-on problem. */
  ids: Array<{ id: string; at: SourceLocation }>;
  problems: FileProblem[];
  /** JSON files: where a JSON path is, for problems found later (duplicate ids and related ids across files). */
  position?: (path: string) => { line: number; column: number } | undefined;
}

export type CatalogFormat = 'json' | 'csv';

export function catalogFormatOf(file: string): CatalogFormat | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.csv')) return 'csv';
  return undefined;
}

/** Parses a JSON catalog file and checks it on its own (its related ids must name its products); throws CatalogError. */
export function parseCatalogJson(text: string, file: string): Product[] {
  return buildCatalog([readCatalogJson(text, file)]);
}

/** Parses a CSV catalog file and checks it on its own (its related ids must name its products); throws CatalogError. */
export function parseCatalogCsv(text: string, file: string): Product[] {
  return buildCatalog([readCatalogCsv(text, file)]);
}

/** Reads a catalog file by its extension (.json or .csv). */
export function readCatalogFile(text: string, file: string): CatalogFile {
  const format = catalogFormatOf(file);
  if (format === 'json') return readCatalogJson(text, file);
  if (format === 'csv') return readCatalogCsv(text, file);
  return { file, entries: [], ids: [], problems: [problemAt({ file }, 'not a catalog file: name it *.json or *.csv')] };
}

/**
 * The products of several files read together, checked against each other: an id may appear once in all of them,
 * and a related id must name a product in them or in `knownIds` (products already stored). Throws CatalogError
 * listing every problem, so a catalog is taken whole or not at all.
 */
export function buildCatalog(files: CatalogFile[], options: { knownIds?: Iterable<string> } = {}): Product[] {
  const { products, problems } = checkCatalog(files, options);
  if (problems.length > 0) throw new CatalogError(problems);
  return products;
}

/** Like buildCatalog, but returns the problems instead of throwing. `products` holds each id's first product. */
export function checkCatalog(files: CatalogFile[], options: { knownIds?: Iterable<string> } = {}): { products: Product[]; problems: FileProblem[] } {
  const positions = new Map(files.map((f) => [f.file, f.position]));
  const placed = (at: SourceLocation): SourceLocation => withPosition(at, positions.get(at.file));
  const problems: FileProblem[] = files.flatMap((f) => f.problems);
  const firstAt = new Map<string, SourceLocation>();
  for (const { id, at } of files.flatMap((f) => f.ids)) {
    const first = firstAt.get(id);
    if (first) problems.push(problemAt(placed(at), `duplicate id "${id}": the product at ${shortLocation(placed(first))} has it already; give each product its own id`));
    else firstAt.set(id, at);
  }
  const kept = files.flatMap((f) => f.entries).filter((e) => firstAt.get(e.product.product_id) === e.idAt);
  const known = new Set([...firstAt.keys(), ...(options.knownIds ?? [])]);
  for (const entry of kept) {
    entry.product.related_ids.forEach((relatedId, i) => {
      if (known.has(relatedId)) return;
      problems.push(
        problemAt(
          placed(entry.relatedAt[i] ?? entry.idAt),
          `related id "${relatedId}" names no product in the catalog: add a product with this id, or remove it from related`,
        ),
      );
    });
  }
  const fileOrder = new Map(files.map((f, i) => [f.file, i]));
  problems.sort((a, b) => (fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return { products: kept.map((e) => e.product), problems };
}

// ---------------------------------------------------------------------------------------------------------------
// One product's fields, whatever the file format

/** One field of one product as found in the file: a JSON value, or the text of a CSV cell. */
interface RawField {
  value: unknown;
  /** CSV: the value is text, and numbers are read from it. */
  text: boolean;
  at: SourceLocation;
  /** JSON lists: where element `i` is. */
  elementAt?: (i: number) => SourceLocation;
}

/** Returned by field readers for a value that is present but wrong; the problem is already reported. */
const INVALID = Symbol('invalid');
type Read<T> = T | undefined | typeof INVALID;

function problemAt(at: SourceLocation, message: string): FileProblem {
  return { ...at, message, severity: 'error' };
}

function shortLocation(at: SourceLocation): string {
  return `${at.file}${at.line !== undefined ? `:${at.line}` : ''}${at.path ? ` (${at.path})` : ''}`;
}

function childPath(base: string | undefined, key: string): string {
  return base ? `${base}.${key}` : key;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

/** Absent: missing, null, or (in CSV) an empty cell. */
function isAbsent(field: RawField | undefined): boolean {
  if (!field || field.value === undefined || field.value === null) return true;
  return field.text && typeof field.value === 'string' && field.value.trim() === '';
}

const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

class ProductReader {
  constructor(
    private readonly fields: ReadonlyMap<CatalogColumn, RawField>,
    private readonly problems: FileProblem[],
  ) {}

  private fail(field: RawField, message: string): typeof INVALID {
    this.problems.push(problemAt(field.at, message));
    return INVALID;
  }

  /** Text, trimmed; `allowInteger` also takes a JSON whole number (ids). */
  text(column: CatalogColumn, allowInteger = false): Read<string> {
    const field = this.fields.get(column);
    if (isAbsent(field)) return undefined;
    const value = field!.value;
    if (typeof value === 'string') {
      const trimmed = value.trim();
      return trimmed === '' ? this.fail(field!, `${column} must not be blank`) : trimmed;
    }
    if (allowInteger && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
    return this.fail(field!, `${column} must be text${allowInteger ? ' (or a whole number)' : ''}, got ${describeValue(value)}`);
  }

  url(column: 'url' | 'image'): Read<string> {
    const text = this.text(column);
    if (text === undefined || text === INVALID) return text;
    if (isAbsoluteHttpUrl(text)) return text;
    const example = column === 'url' ? 'https://shop.example.com/p/sku-1' : 'https://shop.example.com/img/sku-1.jpg';
    return this.fail(this.fields.get(column)!, `${column} must be an absolute http(s) URL, e.g. ${example}; got ${JSON.stringify(text)}`);
  }

  /** A finite number within [min, max]; `integer` refuses fractions. `rule` says what is wanted, for messages. */
  number(column: CatalogColumn, rule: { min: number; max?: number; integer?: boolean; wanted: string }): Read<number> {
    const field = this.fields.get(column);
    if (isAbsent(field)) return undefined;
    const raw = field!.value;
    let value: number;
    if (typeof raw === 'number') {
      value = raw;
    } else if (typeof raw === 'string' && field!.text && NUMBER_TEXT.test(raw.trim())) {
      value = Number(raw.trim());
    } else if (typeof raw === 'string' && !field!.text && NUMBER_TEXT.test(raw.trim())) {
      return this.fail(field!, `${column} must be a JSON number, not text: write ${raw.trim()} without quotes`);
    } else {
      return this.fail(field!, `${column} must be ${rule.wanted}; got ${describeValue(raw)}`);
    }
    const inRange = Number.isFinite(value) && value >= rule.min && (rule.max === undefined || value <= rule.max);
    if (!inRange || (rule.integer && !Number.isInteger(value))) return this.fail(field!, `${column} must be ${rule.wanted}; got ${describeValue(raw)}`);
    return value;
  }

  /** JSON: a list of ids; CSV: ids separated by "|" (blank parts are skipped). */
  relatedIds(): { ids: string[]; at: SourceLocation[] } | typeof INVALID {
    const field = this.fields.get('related');
    if (isAbsent(field)) return { ids: [], at: [] };
    const value = field!.value;
    if (field!.text && typeof value === 'string') {
      const ids = value
        .split('|')
        .map((id) => id.trim())
        .filter((id) => id !== '');
      return { ids, at: ids.map(() => field!.at) };
    }
    if (!Array.isArray(value)) return this.fail(field!, `related must be a list of product ids, e.g. ["sku-2", "sku-3"]; got ${describeValue(value)}`);
    const ids: string[] = [];
    const at: SourceLocation[] = [];
    let ok = true;
    value.forEach((item, i) => {
      const where = field!.elementAt?.(i) ?? field!.at;
      if (typeof item === 'string' && item.trim() !== '') {
        ids.push(item.trim());
        at.push(where);
      } else if (typeof item === 'number' && Number.isSafeInteger(item)) {
        ids.push(String(item));
        at.push(where);
      } else {
        ok = false;
        this.problems.push(problemAt(where, `related must hold product ids (text), got ${describeValue(item)}`));
      }
    });
    return ok ? { ids, at } : INVALID;
  }
}

function isAbsoluteHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Reads one product's fields; reports each bad or missing one. `itemAt` is where a missing field is reported (its
 * path gets the column appended); `reportedMissing` are CSV columns whose absence the header already reported.
 */
function readProduct(
  fields: ReadonlyMap<CatalogColumn, RawField>,
  itemAt: SourceLocation,
  out: Pick<CatalogFile, 'entries' | 'ids' | 'problems'>,
  reportedMissing: ReadonlySet<CatalogColumn> = new Set(),
): void {
  const problems = out.problems;
  const before = problems.length;
  const r = new ProductReader(fields, problems);
  const product_id = r.text('id', true);
  const idAt = fields.get('id')?.at ?? itemAt;
  if (typeof product_id === 'string') out.ids.push({ id: product_id, at: idAt });
  const name = r.text('name');
  const category = r.text('category');
  const price = r.number('price', { min: 0, wanted: 'a number of 0 or more, e.g. 19.99 (no currency sign, "." for decimals)' });
  const image_url = r.url('image');
  const url = r.url('url');
  const rating = r.number('rating', { min: 0, max: 5, wanted: 'a number from 0 to 5, e.g. 4.5' });
  const review_count = r.number('reviews', { min: 0, integer: true, wanted: 'a whole number of 0 or more' });
  const stock = r.number('stock', { min: 0, integer: true, wanted: 'a whole number of 0 or more (leave it empty when stock is not tracked)' });
  const related = r.relatedIds();

  const required = { id: product_id, name, category, price, url };
  for (const column of REQUIRED_COLUMNS) {
    if (required[column as keyof typeof required] !== undefined || reportedMissing.has(column)) continue;
    problems.push(problemAt({ ...itemAt, path: childPath(itemAt.path, column) }, `missing ${column}: ${MISSING_HINT[column]}`));
  }
  if (problems.length > before) return;

  const product: Product = {
    product_id: product_id as string,
    name: name as string,
    category: category as string,
    price: price as number,
    url: url as string,
    stock: null,
    related_ids: [],
  };
  if (image_url !== undefined) product.image_url = image_url as string;
  if (rating !== undefined) product.rating = rating as number;
  if (review_count !== undefined) product.review_count = review_count as number;
  if (stock !== undefined) product.stock = stock as number;
  const { ids, at } = related as { ids: string[]; at: SourceLocation[] };
  product.related_ids = ids;
  out.entries.push({ product, idAt, relatedAt: at });
}

/** The column a file's key or header name fills, or undefined for a name catalogs do not have. */
function columnOf(name: string): CatalogColumn | undefined {
  if ((CATALOG_COLUMNS as readonly string[]).includes(name)) return name as CatalogColumn;
  return PRODUCT_FIELD_NAMES[name];
}

function unknownNameMessage(name: string, what: string): string {
  return `unknown ${what} "${name}"${suggest(name, ACCEPTED_NAMES)}; a catalog has ${CATALOG_COLUMNS.join(', ')}`;
}

function bothNamesMessage(name: string, other: string): string {
  return `"${other}" and "${name}" are the same field: give only one of them`;
}

const stripBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

// ---------------------------------------------------------------------------------------------------------------
// JSON

/**
 * Reads a JSON catalog: a list of products, or `{ "products": [...] }`, parsed by core/strict-json. Paths are JSON
 * paths: `$[3].price`, `$.products[3].related[1]`. Lines are looked up only when there are problems.
 */
export function readCatalogJson(text: string, file: string): CatalogFile {
  const source = stripBom(text);
  let root: unknown;
  try {
    root = parseStrictJson(new TextEncoder().encode(source), { label: 'the file' });
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    return { file, entries: [], ids: [], problems: [jsonSyntaxProblem(file, err)] };
  }
  const out: CatalogFile = { file, entries: [], ids: [], problems: [], position: jsonPositions(source) };
  const at = (path: string): SourceLocation => ({ file, path });
  const done = (): CatalogFile => ({ ...out, problems: sortByLine(out.problems.map((p) => withPosition(p, out.position))) });

  let list = root;
  let base = '$';
  if (isObject(root)) {
    for (const key of Object.keys(root)) {
      if (key === 'products') continue;
      const message = `unknown key "${key}" in a catalog${suggest(key, ['products'])}; a catalog is a list of products, or { "products": [ ... ] }`;
      out.problems.push(problemAt(at(childPath('$', key)), message));
    }
    if (!Object.prototype.hasOwnProperty.call(root, 'products')) {
      out.problems.push(problemAt(at('$'), 'missing "products": a catalog is a list of products, or { "products": [ ... ] }'));
      return done();
    }
    list = root.products;
    base = '$.products';
  }
  if (!Array.isArray(list)) {
    out.problems.push(problemAt(at(base), `a catalog must be a list of products, e.g. [{ "id": "sku-1", "name": ... }], got ${describeValue(list)}`));
    return done();
  }
  list.forEach((item: unknown, i) => {
    const path = `${base}[${i}]`;
    if (!isObject(item)) {
      out.problems.push(problemAt(at(path), `a product must be an object such as { "id": "sku-1", "name": "Trail Shoe", ... }, got ${describeValue(item)}`));
      return;
    }
    readProduct(jsonFields(item, path, file, out.problems), at(path), out);
  });
  return done();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonFields(item: Record<string, unknown>, path: string, file: string, problems: FileProblem[]): Map<CatalogColumn, RawField> {
  const fields = new Map<CatalogColumn, RawField>();
  const named = new Map<CatalogColumn, string>();
  for (const [name, value] of Object.entries(item)) {
    const keyPath = childPath(path, name);
    const column = columnOf(name);
    if (!column) {
      problems.push(problemAt({ file, path: keyPath }, unknownNameMessage(name, 'key')));
      continue;
    }
    const other = named.get(column);
    if (other !== undefined) {
      problems.push(problemAt({ file, path: keyPath }, bothNamesMessage(name, other)));
      continue;
    }
    named.set(column, name);
    fields.set(column, { value, text: false, at: { file, path: keyPath }, elementAt: (i) => ({ file, path: `${keyPath}[${i}]` }) });
  }
  return fields;
}

/**
 * The line and column of a JSON path in `source`, for problems: the text is scanned again (once, on first use) for
 * where every value starts. A path that names nothing (a missing key) gets its nearest ancestor's position.
 */
function jsonPositions(source: string): (path: string) => { line: number; column: number } | undefined {
  let offsets: Map<string, number> | undefined;
  let lineStarts: number[] | undefined;
  return (path) => {
    offsets ??= valueOffsets(source);
    lineStarts ??= [0, ...[...source.matchAll(/\n/g)].map((m) => m.index! + 1)];
    for (let p: string | undefined = path; p; p = parentPath(p)) {
      const offset = offsets.get(p);
      if (offset !== undefined) return lineAndColumnAt(lineStarts, offset);
    }
    return undefined;
  };
}

/**
 * Where each value of a JSON text starts, by path. Only called on text strict-json has accepted, so it needs no
 * checks, and nesting is at most strict-json's depth limit, so the recursion is shallow.
 */
function valueOffsets(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let i = 0;
  const skipWhitespace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const readValue = (path: string): void => {
    skipWhitespace();
    out.set(path, i);
    const c = text[i];
    if (c === '"') {
      readString();
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      skipWhitespace();
      for (let n = 0; text[i] !== close; n++) {
        if (c === '{') {
          const key = readString();
          skipWhitespace();
          i++; // the ':'
          readValue(childPath(path, key));
        } else {
          readValue(`${path}[${n}]`);
        }
        skipWhitespace();
        if (text[i] === ',') i++;
        skipWhitespace();
      }
      i++;
    } else {
      // A number, true, false or null.
      while (i < text.length && !',]} \n\r\t'.includes(text[i]!)) i++;
    }
  };
  readValue('$');
  return out;
}

/** 1-based line and column (in UTF-16 code units) of `offset`, given where each line starts. */
function lineAndColumnAt(lineStarts: number[], offset: number): { line: number; column: number } {
  let low = 0;
  let high = lineStarts.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (lineStarts[mid]! <= offset) low = mid;
    else high = mid - 1;
  }
  return { line: low + 1, column: offset - lineStarts[low]! + 1 };
}

/** `$[3].related[1]` → `$[3].related` → `$[3]` → `$`. */
function parentPath(path: string): string | undefined {
  const parent = path.replace(/(?:\.[^.[\]]*|\[\d+\])$/, '');
  return parent === path ? undefined : parent;
}

function withPosition<T extends SourceLocation>(location: T, position: CatalogFile['position']): T {
  if (location.line !== undefined || location.path === undefined || !position) return location;
  const found = position(location.path);
  return found ? { ...location, ...found } : location;
}

/**
 * A problem from strict-json: a syntax error says "at line L, column C" in its message, which the problem carries
 * so it reads file:L:C; a duplicate key or an imprecise number names its JSON path as `field`.
 */
function jsonSyntaxProblem(file: string, err: { message: string; field?: unknown }): FileProblem {
  const field = typeof err.field === 'string' ? err.field : undefined;
  let message = err.message.replace(/^the file is /, '');
  if (field !== undefined && message.startsWith(`${field}: `)) message = message.slice(field.length + 2);
  const match = / at line (\d+), column (\d+)/.exec(message);
  return { file, ...(match ? { line: Number(match[1]), column: Number(match[2]) } : {}), ...(field !== undefined ? { path: field } : {}), message, severity: 'error' };
}

function sortByLine(problems: FileProblem[]): FileProblem[] {
  return problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

interface CsvRecord {
  record: string[];
  raw: string;
  info: { lines: number };
}

/**
 * Reads a CSV catalog: a header row naming the columns (any order, any case), then one product per row. Problems
 * name the row's line and the column: `catalog/products.csv:7 (price)`.
 */
export function readCatalogCsv(text: string, file: string): CatalogFile {
  // One line-break form, so csv-parse's line count is the editor's (it miscounts a file mixing \r\n and \n).
  const source = stripBom(text).replace(/\r\n?/g, '\n');
  let records: CsvRecord[];
  try {
    records = parseCsv(source, { info: true, raw: true, skip_empty_lines: true, relax_column_count: true }) as CsvRecord[];
  } catch (err) {
    const line = (err as { lines?: unknown }).lines;
    return { file, entries: [], ids: [], problems: [problemAt({ file, ...(typeof line === 'number' ? { line } : {}) }, `malformed CSV: ${csvProblem(err)}`)] };
  }
  const rows = records.filter((r) => r.record.some((cell) => cell.trim() !== '')).map((r) => ({ cells: r.record, line: startLine(r) }));
  const problems: FileProblem[] = [];
  const entries: CatalogEntry[] = [];
  const ids: CatalogFile['ids'] = [];
  const header = rows.shift();
  if (!header) {
    problems.push(problemAt({ file }, `empty file: a CSV catalog starts with a header row such as ${CATALOG_COLUMNS.join(',')}`));
    return { file, entries, ids, problems };
  }

  const columns: Array<{ column: CatalogColumn; name: string } | undefined> = [];
  const named = new Map<CatalogColumn, string>();
  for (const cell of header.cells) {
    const name = cell.trim();
    const column = columnOf(name.toLowerCase());
    if (!column) {
      problems.push(problemAt({ file, line: header.line, path: name }, unknownNameMessage(name, 'column')));
      columns.push(undefined);
      continue;
    }
    const other = named.get(column);
    if (other !== undefined) {
      problems.push(problemAt({ file, line: header.line, path: name }, other === name ? `column "${name}" appears twice: keep one` : bothNamesMessage(name, other)));
      columns.push(undefined);
      continue;
    }
    named.set(column, name);
    columns.push({ column, name });
  }
  const missingColumns = new Set(REQUIRED_COLUMNS.filter((c) => !named.has(c)));
  for (const column of missingColumns) {
    problems.push(problemAt({ file, line: header.line }, `missing column "${column}" in the header: ${MISSING_HINT[column]}; the header needs ${REQUIRED_COLUMNS.join(', ')}`));
  }

  for (const row of rows) {
    if (row.cells.length !== header.cells.length) {
      const hint = row.cells.length > header.cells.length ? ': a comma inside a value needs the value in double quotes' : '';
      problems.push(problemAt({ file, line: row.line }, `the row has ${row.cells.length} fields, the header has ${header.cells.length}${hint}`));
      continue;
    }
    const fields = new Map<CatalogColumn, RawField>();
    row.cells.forEach((cell, i) => {
      const column = columns[i];
      if (column) fields.set(column.column, { value: cell, text: true, at: { file, line: row.line, path: column.name } });
    });
    readProduct(fields, { file, line: row.line }, { entries, ids, problems }, missingColumns);
  }
  return { file, entries, ids, problems };
}

/** csv-parse gives the line a record ends on; a quoted value may span lines, and skipped blank lines lead `raw`. */
function startLine(record: CsvRecord): number {
  const text = record.raw.replace(/\n$/, '').replace(/^(?:[ \t]*\n)+/, '');
  let breaks = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) breaks++;
  return record.info.lines - breaks;
}

/** csv-parse's message in words that say what to fix. */
function csvProblem(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'CSV_INVALID_CLOSING_QUOTE') return 'a quoted value goes on after its closing quote: a quote inside a quoted value is written twice ("")';
  if (code === 'INVALID_OPENING_QUOTE') return 'a quote inside an unquoted value: put the value in quotes and write each quote in it twice ("a ""b"" c")';
  if (code === 'CSV_QUOTE_NOT_CLOSED') return 'a quoted value is not closed before the end of the file';
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/ at line \d+/, '');
}
