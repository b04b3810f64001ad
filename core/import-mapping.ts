// Reads an import mapping (YAML: which column of a CSV or JSONL file becomes which field of a Segment call) and maps
// one row through it to a validated NewEvent. Pure: the caller reads the files and supplies the hash function.
import { isMap, isScalar } from 'yaml';
import type { NewEvent } from './event';
import { BadInputError, InvalidFileError, isMicroflowsError } from './errors';
import type { FileProblem } from './errors';
import { EVENT_LIMIT_BYTES, parseIdentifyCall, parseIsoTimestamp, parseTrackCall } from './segment-spec';
import { parseStrictJson } from './strict-json';
import { describe, editDistance, readYaml, suggest } from './yaml-reader';
import type { Entry, YamlReader } from './yaml-reader';

/** `profiles`: each row is an identify call. `events`: each row is a track call (history). */
export type ImportKind = 'profiles' | 'events';
export const IMPORT_KINDS: readonly ImportKind[] = ['profiles', 'events'];

/** How a value is read; without a type it is taken as it is in the file (CSV: text; JSONL: its JSON value). */
export const FIELD_TYPES = ['string', 'number', 'boolean', 'date', 'json'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

export const CONSENT_KINDS = ['email_marketing', 'behavioral_tracking'] as const;
export type ConsentKind = (typeof CONSENT_KINDS)[number];

/** Where the mapping names a column, so a column missing from a CSV header is reported at that line. */
export interface MappingSpot {
  line?: number;
  column?: number;
  path: string;
}

export type FieldSource =
  | { from: 'column'; column: string; type: FieldType | null; required: boolean; spot: MappingSpot }
  | { from: 'value'; value: unknown };

export interface ImportMapping {
  kind: ImportKind;
  /** The mapping file, for problems that name it. */
  file: string;
  userId: FieldSource;
  /** events: the event name. */
  event: FieldSource | null;
  /** events: required; profiles: optional (without it the identify happens at the import's start). */
  timestamp: FieldSource | null;
  /** The dedupe key. Without it the message id is a hash of the mapped call. */
  messageId: FieldSource | null;
  traits: Array<{ name: string; source: FieldSource }>;
  consent: Array<{ name: ConsentKind; source: FieldSource }>;
  properties: Array<{ name: string; source: FieldSource }>;
}

/** One row of a CSV (column -> text) or JSONL file (a parsed JSON object). */
export type ImportRecord = Record<string, unknown>;

/** The Segment call body a row maps to (before `parseIdentifyCall` / `parseTrackCall` validate it). */
export interface ImportCall {
  messageId: string;
  userId: string;
  event?: string;
  /** ISO-8601, UTC */
  timestamp?: string;
  traits?: Record<string, unknown>;
  properties?: Record<string, unknown>;
  /** Marks the event as imported history in the events table; not part of the hashed content. */
  context: { library: { name: string } };
}

export const IMPORT_LIBRARY = 'microflows-import';

/** One row of an import file cannot be imported; `column` names the column at fault when there is one. */
export class BadRowError extends BadInputError {
  override readonly code = 'bad_row';
  override name = 'BadRowError';
  constructor(
    message: string,
    readonly column?: string,
  ) {
    super(message, column === undefined ? undefined : `column "${column}"`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The mapping file

const TOP_LEVEL_KEYS: Record<ImportKind, string[]> = {
  profiles: ['user_id', 'traits', 'consent', 'timestamp', 'message_id'],
  events: ['user_id', 'event', 'timestamp', 'message_id', 'properties'],
};
const SPEC_KEYS = ['column', 'type', 'required', 'value'];

interface FieldRule {
  what: string;
  types: readonly FieldType[];
  defaultType: FieldType | null;
  required: boolean;
  /** Why `required: false` is refused, for fields every call needs. */
  alwaysRequired?: string;
  /** The constant must be text or a number (ids and names). */
  textValue?: boolean;
}

const ID_RULE = { types: ['string'], defaultType: 'string', required: true, textValue: true } as const;

/** Compiles a mapping file; throws InvalidFileError listing every error found. Warnings do not fail. */
export function compileImportMapping(source: string, file: string, kind: ImportKind): ImportMapping {
  const result = checkImportMapping(source, file, kind);
  if (!result.mapping) throw new InvalidFileError(result.problems);
  return result.mapping;
}

/** Like compileImportMapping, but returns the problems (warnings included) instead of throwing. */
export function checkImportMapping(source: string, file: string, kind: ImportKind): { mapping?: ImportMapping; problems: FileProblem[] } {
  const { reader, contents, parsed } = readYaml(source, file);
  if (!parsed) return { problems: reader.sortedProblems() };
  let mapping: ImportMapping | undefined;
  try {
    mapping = new MappingCompiler(reader, kind).compile(contents, file);
  } catch (err) {
    // The yaml library refuses alias bombs by throwing while converting a node: still a problem with this file.
    reader.problemAt(undefined, '', `could not read the file: ${err instanceof Error ? err.message : String(err)}`, 'error');
  }
  const failed = reader.problems.some((p) => p.severity === 'error');
  return { mapping: failed ? undefined : mapping, problems: reader.sortedProblems() };
}

class MappingCompiler {
  constructor(
    private readonly r: YamlReader,
    private readonly kind: ImportKind,
  ) {}

  compile(contents: unknown, file: string): ImportMapping | undefined {
    const r = this.r;
    const root = r.resolve(contents);
    const example = this.kind === 'profiles' ? '"user_id: Customer ID" and "traits: { email: Email }"' : '"user_id: customer_id", "event: { value: Order Completed }" and "timestamp: ordered_at"';
    if (r.isEmpty(root)) {
      r.problemAt(0, '', `empty file: a mapping for "import ${this.kind}" is a map such as ${example}`, 'error');
      return undefined;
    }
    const top = r.map(root, '', `a mapping for "import ${this.kind}"`, TOP_LEVEL_KEYS[this.kind]);
    if (!top) return undefined;

    const userId = this.field(r.require(top, 'user_id', root, '', 'the column holding the customer id, e.g. "user_id: Customer ID"'), {
      ...ID_RULE,
      what: 'user_id',
      alwaysRequired: 'every call must say whose it is',
    });
    let event: FieldSource | undefined;
    let timestamp: FieldSource | undefined;
    let traits: ImportMapping['traits'] | undefined = [];
    let consent: ImportMapping['consent'] | undefined = [];
    let properties: ImportMapping['properties'] | undefined = [];
    if (this.kind === 'events') {
      event = this.field(r.require(top, 'event', root, '', 'the event name, a constant "event: { value: Order Completed }" or a column "event: event_name"'), {
        ...ID_RULE,
        what: 'event',
        alwaysRequired: 'a track call needs the name of the event',
      });
      timestamp = this.field(r.require(top, 'timestamp', root, '', 'the column holding when each event happened, e.g. "timestamp: ordered_at" (ISO-8601)'), {
        what: 'timestamp',
        types: ['date'],
        defaultType: 'date',
        required: true,
        alwaysRequired: 'imported history needs the time each event happened',
      });
      properties = top.has('properties') ? this.namedFields(top.get('properties')!, 'properties', 'property') : [];
    } else {
      timestamp = top.has('timestamp') ? this.field(top.get('timestamp'), { what: 'timestamp', types: ['date'], defaultType: 'date', required: true }) : undefined;
      traits = top.has('traits') ? this.namedFields(top.get('traits')!, 'traits', 'trait') : [];
      consent = top.has('consent') ? this.consent(top.get('consent')!) : [];
      if (traits?.length === 0 && consent?.length === 0) {
        r.warn(root, '', 'the mapping has no traits and no consent: each row only creates an empty profile');
      }
    }
    const messageId = top.has('message_id') ? this.field(top.get('message_id'), { ...ID_RULE, what: 'message_id' }) : undefined;

    if (!userId || !traits || !consent || !properties) return undefined;
    if (this.kind === 'events' && (!event || !timestamp)) return undefined;
    if (top.has('timestamp') && !timestamp) return undefined;
    if (top.has('message_id') && !messageId) return undefined;
    return { kind: this.kind, file, userId, event: event ?? null, timestamp: timestamp ?? null, messageId: messageId ?? null, traits, consent, properties };
  }

  /** traits / properties: name -> field. */
  private namedFields(entry: Entry, section: string, noun: string): Array<{ name: string; source: FieldSource }> | undefined {
    const r = this.r;
    if (r.isEmpty(entry.value)) return [];
    if (!isMap(entry.value)) {
      r.error(entry.value, entry.path, `${section} must be a map of ${noun} name -> column, e.g. "email: Email", got ${describe(entry.value)}`);
      return undefined;
    }
    const out: Array<{ name: string; source: FieldSource }> = [];
    let ok = true;
    for (const pair of entry.value.items) {
      const keyNode = r.resolve(pair.key);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object' || String(keyNode.value).trim() === '') {
        r.error(keyNode ?? entry.value, section, `${section}: each key is a ${noun} name`);
        ok = false;
        continue;
      }
      const name = String(keyNode.value);
      const path = `${section}.${name}`;
      if (section === 'traits' && name === 'consent') {
        r.error(keyNode, path, 'consent is not a trait: map it in the top-level "consent" section (email_marketing, behavioral_tracking)');
        ok = false;
        continue;
      }
      const source = this.field({ key: name, keySpot: keyNode, value: r.resolve(pair.value), path }, { what: `${noun} "${name}"`, types: FIELD_TYPES, defaultType: null, required: false });
      if (source) out.push({ name, source });
      else ok = false;
    }
    return ok ? out : undefined;
  }

  private consent(entry: Entry): ImportMapping['consent'] | undefined {
    const m = this.r.map(entry.value, entry.path, 'consent', CONSENT_KINDS, entry.keySpot);
    if (!m) return undefined;
    const out: NonNullable<ImportMapping['consent']> = [];
    let ok = true;
    for (const kind of CONSENT_KINDS) {
      const e = m.get(kind);
      if (!e) continue;
      const source = this.field(e, { what: `consent "${kind}"`, types: ['boolean'], defaultType: 'boolean', required: false });
      if (source) out.push({ name: kind, source });
      else ok = false;
    }
    return ok ? out : undefined;
  }

  /** A field: `Column Name`, `{ column, type, required }` or `{ value: <constant> }`. */
  private field(entry: Entry | undefined, rule: FieldRule): FieldSource | undefined {
    if (!entry) return undefined;
    const r = this.r;
    const v = entry.value;
    const shapes = 'a column name, { column: <name>, type: <type> } or { value: <constant> }';
    if (isScalar(v) && typeof v.value === 'string') {
      if (v.value.trim() === '') {
        r.error(v, entry.path, `${rule.what} must be ${shapes}, got an empty name`);
        return undefined;
      }
      return { from: 'column', column: v.value, type: rule.defaultType, required: rule.required, spot: this.spot(v, entry.path) };
    }
    if (isScalar(v) && (typeof v.value === 'number' || typeof v.value === 'boolean')) {
      const text = String(v.value);
      r.error(v, entry.path, `${rule.what}: ${text} reads as a ${typeof v.value}, not a column name: quote a column name ("${text}") or write a constant as { value: ${text} }`);
      return undefined;
    }
    if (!isMap(v)) {
      r.error(v ?? entry.keySpot, entry.path, `${rule.what} must be ${shapes}, got ${describe(v)}`);
      return undefined;
    }
    const m = r.map(v, entry.path, rule.what, SPEC_KEYS);
    if (!m) return undefined;

    const valueEntry = m.get('value');
    if (valueEntry) {
      let ok = true;
      for (const other of ['column', 'type', 'required']) {
        const e = m.get(other);
        if (!e) continue;
        r.error(e.keySpot, e.path, `a constant ({ value: ... }) reads no column, so "${other}" does not apply: remove it, or remove "value"`);
        ok = false;
      }
      const value = r.js(valueEntry.value);
      const text = typeof value === 'string' ? value.trim() !== '' : typeof value === 'number';
      if (value === null || (rule.textValue && !text)) {
        r.error(valueEntry.value ?? valueEntry.keySpot, valueEntry.path, `${rule.what}: the constant must be ${rule.textValue ? 'non-empty text' : 'a value'}, got ${describe(valueEntry.value)}`);
        return undefined;
      }
      return ok ? { from: 'value', value: rule.textValue ? String(value) : value } : undefined;
    }

    const columnEntry = r.require(m, 'column', v, entry.path, 'the column to read, e.g. "column: Email" (or "value: ..." for a constant)');
    const column = r.text(columnEntry, 'column');
    let type = rule.defaultType;
    let ok = column !== undefined;
    const typeEntry = m.get('type');
    if (typeEntry) {
      const name = r.text(typeEntry, 'type');
      if (name === undefined) ok = false;
      else if (!(rule.types as readonly string[]).includes(name)) {
        const known = (FIELD_TYPES as readonly string[]).includes(name);
        const hint = known ? '' : suggest(name, FIELD_TYPES);
        r.error(typeEntry.value, typeEntry.path, `${known ? '' : 'unknown '}type "${name}"${hint}: ${rule.what} takes ${rule.types.length === 1 ? `type ${rule.types[0]} only` : `one of ${rule.types.join(', ')}`}`);
        ok = false;
      } else type = name as FieldType;
    }
    let required = rule.required;
    const requiredEntry = m.get('required');
    if (requiredEntry) {
      const rv = requiredEntry.value;
      if (!isScalar(rv) || typeof rv.value !== 'boolean') {
        r.error(rv ?? requiredEntry.keySpot, requiredEntry.path, `required must be true or false, got ${describe(rv)}`);
        ok = false;
      } else if (!rv.value && rule.alwaysRequired) {
        r.error(rv, requiredEntry.path, `${rule.what} is always required: ${rule.alwaysRequired}`);
        ok = false;
      } else required = rv.value;
    }
    if (!ok || column === undefined || !columnEntry) return undefined;
    return { from: 'column', column, type, required, spot: this.spot(columnEntry.value, columnEntry.path) };
  }

  private spot(node: Entry['value'], path: string): MappingSpot {
    return { ...this.r.position(node), path };
  }
}

/** Every column the mapping reads, with where the mapping names it. */
export function mappedColumns(mapping: ImportMapping): Array<{ column: string; spot: MappingSpot }> {
  const sources = [
    mapping.userId,
    mapping.event,
    mapping.timestamp,
    mapping.messageId,
    ...mapping.traits.map((t) => t.source),
    ...mapping.consent.map((c) => c.source),
    ...mapping.properties.map((p) => p.source),
  ];
  return sources.flatMap((s) => (s?.from === 'column' ? [{ column: s.column, spot: s.spot }] : []));
}

/**
 * Checks a CSV header against the mapping before any row is read: a column the mapping names but the file lacks
 * (usually a typo) is reported at the mapping's line, with the closest header name.
 */
export function checkHeader(mapping: ImportMapping, header: readonly string[], dataFile: string): FileProblem[] {
  const problems: FileProblem[] = [];
  const counts = new Map<string, number>();
  for (const name of header) counts.set(name, (counts.get(name) ?? 0) + 1);
  const listed = header.length > 20 ? `${header.slice(0, 20).join(', ')}, ...` : header.join(', ');
  for (const { column, spot } of mappedColumns(mapping)) {
    const count = counts.get(column) ?? 0;
    if (count === 1) continue;
    const message =
      count === 0
        ? `column "${column}" is not in the header of ${dataFile}${closestColumn(column, header)}; its columns are: ${listed}`
        : `column "${column}" appears ${count} times in the header of ${dataFile}, so which one to read is ambiguous: rename the others`;
    problems.push({ file: mapping.file, ...spot, message, severity: 'error' });
  }
  return problems;
}

function closestColumn(column: string, header: readonly string[]): string {
  const wanted = column.toLowerCase();
  let best: string | undefined;
  let bestDistance = wanted.length <= 3 ? 2 : 3;
  for (const name of header) {
    const d = editDistance(wanted, name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

// ---------------------------------------------------------------------------------------------------------------
// Rows

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const hasOwn = (object: object, key: string): boolean => Object.prototype.hasOwnProperty.call(object, key);

/** A column by name; in JSONL a dotted name is a path into nested objects (`customer.id`, `items.0.sku`) unless a key
 *  with the whole dotted name exists. Own properties only, so `__proto__` or `constructor` read nothing. */
export function lookupColumn(record: ImportRecord, column: string): unknown {
  if (hasOwn(record, column)) return record[column];
  if (!column.includes('.')) return undefined;
  let here: unknown = record;
  for (const part of column.split('.')) {
    if (Array.isArray(here) && /^\d+$/.test(part)) here = here[Number(part)];
    else if (isPlainObject(here) && hasOwn(here, part)) here = here[part];
    else return undefined;
  }
  return here;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a JSON array';
  if (typeof value === 'object') return 'a JSON object';
  return `a ${typeof value}`;
}

const shown = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value) : kindOf(value));

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

/** Converts one value to its type; the value is not blank. Throws BadRowError naming the column. */
function convert(value: unknown, type: FieldType | null, column: string): unknown {
  const fail = (reason: string): never => {
    throw new BadRowError(reason, column);
  };
  switch (type) {
    case null:
      return value;
    case 'string':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      return fail(`${kindOf(value)} is not text (use type: json to keep it as it is)`);
    case 'number': {
      if (typeof value === 'number') return Number.isFinite(value) ? value : fail(`${value} is not a finite number`);
      // Thousands separators and decimal commas are refused rather than guessed: "1,234" means 1.234 in half the world.
      if (typeof value === 'string' && NUMBER.test(value.trim())) return Number(value.trim());
      return fail(`${shown(value)} is not a number (write it like 1234.5: no thousands separators or units)`);
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      const text = String(value).trim().toLowerCase();
      if ((typeof value === 'string' || typeof value === 'number') && TRUE.has(text)) return true;
      if ((typeof value === 'string' || typeof value === 'number') && FALSE.has(text)) return false;
      return fail(`${shown(value)} is not a boolean (use true/false, yes/no or 1/0)`);
    }
    case 'date': {
      const ms = typeof value === 'string' ? parseIsoTimestamp(value) : undefined;
      if (ms === undefined || !Number.isFinite(ms)) return fail(`${shown(value)} is not an ISO-8601 date (e.g. 2024-05-01 or 2024-05-01T12:00:00Z; without an offset it is UTC)`);
      return new Date(ms).toISOString();
    }
    case 'json': {
      if (typeof value !== 'string') return value;
      try {
        return JSON.parse(value) as unknown;
      } catch (err) {
        return fail(`${shown(value)} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
      }
    }
  }
}

const isBlank = (value: unknown): boolean => value === undefined || value === null || (typeof value === 'string' && value.trim() === '');

/** The field's value, or undefined when the cell is blank and the field is optional. */
function read(record: ImportRecord, source: FieldSource): unknown {
  if (source.from === 'value') return source.value;
  const raw = lookupColumn(record, source.column);
  if (isBlank(raw)) {
    if (source.required) throw new BadRowError(raw === undefined ? 'is missing' : 'is empty', source.column);
    return undefined;
  }
  return convert(raw, source.type, source.column);
}

/** user_id, event, message_id: text, trimmed (a stray space would make a second customer). */
function readText(record: ImportRecord, source: FieldSource): string | undefined {
  const value = read(record, source);
  if (value === undefined) return undefined;
  const text = String(value).trim();
  if (text === '') throw new BadRowError('is empty', source.from === 'column' ? source.column : undefined);
  return text;
}

function readFields(record: ImportRecord, fields: Array<{ name: string; source: FieldSource }>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { name, source } of fields) {
    // A blank cell leaves the trait as it is rather than clearing it: exports leave cells empty for "unknown".
    const value = read(record, source);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** JSON with object keys sorted at every level, so equal content always hashes alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (isPlainObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Maps one row to the Segment call body. The message id is `import:<kind>:<message_id value>` when the mapping has
 * one, else `import:<kind>:<sha256 of the call's canonical JSON>`: a rerun of the same file writes nothing twice.
 */
export function mapRow(mapping: ImportMapping, record: ImportRecord, sha256: (text: string) => string): ImportCall {
  const userId = readText(record, mapping.userId)!;
  const content: Omit<ImportCall, 'messageId' | 'context'> = { userId };
  if (mapping.kind === 'events') {
    content.event = readText(record, mapping.event!)!;
    content.timestamp = read(record, mapping.timestamp!) as string;
    content.properties = readFields(record, mapping.properties);
  } else {
    const timestamp = mapping.timestamp ? read(record, mapping.timestamp) : undefined;
    if (timestamp !== undefined) content.timestamp = timestamp as string;
    const traits = readFields(record, mapping.traits);
    const consent = readFields(record, mapping.consent);
    if (Object.keys(consent).length > 0) traits.consent = consent;
    content.traits = traits;
  }
  const key = mapping.messageId ? readText(record, mapping.messageId) : undefined;
  const messageId = `import:${mapping.kind}:${key ?? sha256(canonicalJson(content))}`;
  return { messageId, ...content, context: { library: { name: IMPORT_LIBRARY } } };
}

const utf8 = new TextEncoder();

/**
 * Maps one row and validates the call with the same functions as the HTTP API. `receivedAt` is the import's start:
 * the arrival time of every row, and the time of identify calls whose mapping has no timestamp.
 */
export function importRow(mapping: ImportMapping, record: ImportRecord, options: { receivedAt: number; sha256: (text: string) => string }): NewEvent {
  const call = mapRow(mapping, record, options.sha256);
  const json = utf8.encode(JSON.stringify(call));
  if (json.length > EVENT_LIMIT_BYTES) throw new BadRowError(`the mapped call is ${json.length} bytes of JSON, over the ${EVENT_LIMIT_BYTES}-byte limit of one Segment call`);
  try {
    // Read back as HTTP ingest reads a body, so a row holds nothing a call could not: no U+0000 or lone surrogate
    // (which PostgreSQL refuses or a store changes), no number that loses precision, no nesting past the limit.
    parseStrictJson(json, { label: 'the mapped call' });
    return mapping.kind === 'profiles' ? parseIdentifyCall(call, options.receivedAt, call.messageId) : parseTrackCall(call, options.receivedAt, call.messageId);
  } catch (err) {
    if (isMicroflowsError(err) && err.code === 'bad_event') throw new BadRowError(`the mapped call is invalid: ${err.message}`);
    throw err;
  }
}
