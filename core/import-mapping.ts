// Reads an import mapping (YAML: which column of a CSV or JSONL file becomes which field of a Segment call) and maps
// one row through it to a validated NewEvent. Pure: the caller reads the files and supplies the hash function.
import { isMap, isScalar, isSeq } from 'yaml';
import { foldAll } from './behavior';
import type { NewEvent } from './event';
import { BadInputError, InvalidFileError, isMicroflowsError } from './errors';
import type { FileProblem } from './errors';
import type { FlowDefinition } from './flow-types';
import type { SegmentDefinition } from './segment-definition';
import { eventsRead } from './segment-rules';
import { EVENT_LIMIT_BYTES, parseIdentifyCall, parseTrackCall } from './segment-spec';
import { parseStrictJson } from './strict-json';
import { eventNamesOfInterest } from './triggers';
import { closest, describe, readYaml, suggest } from './yaml-reader';
import { closestZone, compileDatePattern, isKnownZone, kindOf, NAMED_DATE_FORMATS, NUMBER, parseDate, shown, type DateFormat } from './import-dates';
import type { Entry, YamlNode, YamlReader } from './yaml-reader';

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

/** What a value missing from a value map does: kept as it is, the row skipped (not imported, not bad), or a bad row. */
export const UNMAPPED_CHOICES = ['keep', 'skip', 'bad_row'] as const;
export type Unmapped = (typeof UNMAPPED_CHOICES)[number];

/** Translates a column's values (`view` -> `Product Viewed`) before they are typed. Keys are the trimmed text. */
export interface ValueMap {
  values: ReadonlyMap<string, string | number | boolean>;
  unmapped: Unmapped;
}

/** A number the product of columns (price x quantity) and constants. */
export type Factor = { column: string; spot: MappingSpot } | { constant: number };

export type NamedField = { name: string; source: FieldSource };

export type FieldSource =
  | { from: 'column'; column: string; type: FieldType | null; required: boolean; spot: MappingSpot; dateFormat?: DateFormat; valueMap?: ValueMap }
  | { from: 'value'; value: unknown }
  | { from: 'multiply'; factors: Factor[]; required: boolean }
  /** A list of objects built from the row's columns (products from line columns); an item with no value is left out. */
  | { from: 'list'; items: NamedField[][] };

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
  traits: NamedField[];
  consent: Array<{ name: ConsentKind; source: FieldSource }>;
  properties: NamedField[];
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

/** The mapping says to leave this row out (`unmapped: skip`): not imported, and not a bad row either. */
export class RowSkipped extends Error {
  override name = 'RowSkipped';
  constructor(
    readonly column: string,
    readonly value: string,
  ) {
    super(`column "${column}": ${JSON.stringify(value)} is not in its map (unmapped: skip)`);
  }
}

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
const SPEC_KEYS = ['column', 'from', 'type', 'required', 'value', 'format', 'zone', 'map', 'unmapped', 'multiply'];
/** Keys that say how to read a column, so a constant or a product (which read no single column) cannot take them. */
const COLUMN_KEYS = ['column', 'from', 'type', 'format', 'zone', 'map', 'unmapped'];

interface FieldRule {
  what: string;
  types: readonly FieldType[];
  defaultType: FieldType | null;
  required: boolean;
  /** Why `required: false` is refused, for fields every call needs. */
  alwaysRequired?: string;
  /** The constant must be text or a number (ids and names). */
  textValue?: boolean;
  /** Products of columns and lists of objects may be built: traits and properties, not ids, names or times. */
  derived?: boolean;
}

const ID_RULE = { types: ['string'], defaultType: 'string', required: true, textValue: true } as const;
const NAMED_FIELD_RULE = { types: FIELD_TYPES, defaultType: null, required: false, derived: true } as const;

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

  /** traits / properties, and the fields of a list item: name -> field. */
  private namedFields(entry: Entry, section: string, noun: string): NamedField[] | undefined {
    const r = this.r;
    if (r.isEmpty(entry.value)) return [];
    if (!isMap(entry.value)) {
      r.error(entry.value, entry.path, `${section} must be a map of ${noun} name -> column, e.g. "email: Email", got ${describe(entry.value)}`);
      return undefined;
    }
    const out: NamedField[] = [];
    let ok = true;
    for (const pair of entry.value.items) {
      const keyNode = r.resolve(pair.key);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object' || String(keyNode.value).trim() === '') {
        r.error(keyNode ?? entry.value, entry.path, `${section}: each key is a ${noun} name`);
        ok = false;
        continue;
      }
      const name = String(keyNode.value);
      const path = `${entry.path}.${name}`;
      if (section === 'traits' && name === 'consent') {
        r.error(keyNode, path, 'consent is not a trait: map it in the top-level "consent" section (email_marketing, behavioral_tracking)');
        ok = false;
        continue;
      }
      const source = this.field({ key: name, keySpot: keyNode, value: r.resolve(pair.value), path }, { ...NAMED_FIELD_RULE, what: `${noun} "${name}"` });
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

  /**
   * A field: `Column Name`, `{ column, type, required, format, zone, map, unmapped }`, `{ value: <constant> }`, and
   * for traits and properties `{ multiply: [...] }` or a list of objects.
   */
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
      const dateFormat = rule.defaultType === 'date' ? ({ kind: 'iso' } as const) : undefined;
      return { from: 'column', column: v.value, type: rule.defaultType, required: rule.required, spot: this.spot(v, entry.path), ...(dateFormat ? { dateFormat } : {}) };
    }
    if (isScalar(v) && (typeof v.value === 'number' || typeof v.value === 'boolean')) {
      const text = String(v.value);
      r.error(v, entry.path, `${rule.what}: ${text} reads as a ${typeof v.value}, not a column name: quote a column name ("${text}") or write a constant as { value: ${text} }`);
      return undefined;
    }
    if (isSeq(v)) {
      if (rule.derived) return this.list(entry);
      r.error(v, entry.path, `${rule.what} must be ${shapes}, got a list (lists of objects, e.g. products, are built in traits and properties only)`);
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
      let ok = this.refuseWith(m, 'value', [...COLUMN_KEYS, 'required', 'multiply'], 'a constant ({ value: ... }) reads no column');
      const value = r.js(valueEntry.value);
      const text = typeof value === 'string' ? value.trim() !== '' : typeof value === 'number';
      if (value === null || (rule.textValue && !text)) {
        r.error(valueEntry.value ?? valueEntry.keySpot, valueEntry.path, `${rule.what}: the constant must be ${rule.textValue ? 'non-empty text' : 'a value'}, got ${describe(valueEntry.value)}`);
        ok = false;
      }
      return ok ? { from: 'value', value: rule.textValue ? String(value) : value } : undefined;
    }
    if (m.has('multiply')) return this.multiply(m, rule);

    if (m.has('column') && m.has('from')) {
      const e = m.get('from')!;
      r.error(e.keySpot, e.path, '"from" is another name for "column": give one of them');
      return undefined;
    }
    const columnEntry = m.get('column') ?? m.get('from');
    if (!columnEntry) r.error(v, `${entry.path}.column`, 'missing "column": the column to read, e.g. "column: Email" (or "value: ..." for a constant)');
    const column = r.text(columnEntry, 'column');
    let type = rule.defaultType;
    let ok = column !== undefined;
    const typeEntry = m.get('type');
    const formatEntry = m.get('format');
    const zoneEntry = m.get('zone');
    if (typeEntry) {
      const name = r.text(typeEntry, 'type');
      if (name === undefined) ok = false;
      else if (!(rule.types as readonly string[]).includes(name)) {
        const known = (FIELD_TYPES as readonly string[]).includes(name);
        const hint = known ? '' : suggest(name, FIELD_TYPES);
        r.error(typeEntry.value, typeEntry.path, `${known ? '' : 'unknown '}type "${name}"${hint}: ${rule.what} takes ${rule.types.length === 1 ? `type ${rule.types[0]} only` : `one of ${rule.types.join(', ')}`}`);
        ok = false;
      } else type = name as FieldType;
    } else if ((formatEntry || zoneEntry) && rule.types.includes('date')) {
      // A date format says the column holds dates: writing type: date as well adds nothing.
      type = 'date';
    }
    const required = this.required(m.get('required'), rule.required, rule.alwaysRequired ? `${rule.what} is always required: ${rule.alwaysRequired}` : undefined);
    if (required === undefined) ok = false;
    let dateFormat: DateFormat | undefined;
    if (type === 'date') {
      dateFormat = this.dateFormat(formatEntry, zoneEntry);
      if (!dateFormat) ok = false;
    } else if (ok) {
      for (const e of [formatEntry, zoneEntry]) {
        if (!e) continue;
        r.error(e.keySpot, e.path, `${e.key} applies to dates: ${rule.what} is ${type === null ? 'read as it is in the file' : `of type ${type}`}${rule.types.includes('date') ? ' (remove the type, or write type: date)' : ''}`);
        ok = false;
      }
    }
    let valueMap: ValueMap | undefined;
    const mapEntry = m.get('map');
    const unmappedEntry = m.get('unmapped');
    if (mapEntry) {
      valueMap = this.valueMap(mapEntry, unmappedEntry, rule);
      if (!valueMap) ok = false;
    } else if (unmappedEntry) {
      r.error(unmappedEntry.keySpot, unmappedEntry.path, 'unmapped says what a value missing from "map" does: it needs a map, e.g. map: { view: Product Viewed }');
      ok = false;
    }
    if (!ok || required === undefined || column === undefined || !columnEntry) return undefined;
    return {
      from: 'column',
      column,
      type,
      required,
      spot: this.spot(columnEntry.value, columnEntry.path),
      ...(dateFormat ? { dateFormat } : {}),
      ...(valueMap ? { valueMap } : {}),
    };
  }

  /** Reports each of `keys` present beside `owner`, which rules them out; true when none was. */
  private refuseWith(m: Map<string, Entry>, owner: string, keys: readonly string[], why: string): boolean {
    let ok = true;
    for (const other of keys) {
      const e = m.get(other);
      if (!e) continue;
      this.r.error(e.keySpot, e.path, `${why}, so "${other}" does not apply: remove it, or remove "${owner}"`);
      ok = false;
    }
    return ok;
  }

  /** `format: <iso | epoch_seconds | epoch_millis | Luxon pattern>` and `zone: <IANA name>`; ISO when neither. */
  /**
   * A field's `required: true|false` (`fallback` when absent); undefined after reporting a value that is not a boolean,
   * or `false` where `alwaysRequired` says why the field cannot be optional.
   */
  private required(entry: Entry | undefined, fallback: boolean, alwaysRequired?: string): boolean | undefined {
    if (!entry) return fallback;
    const value = entry.value;
    if (!isScalar(value) || typeof value.value !== 'boolean') {
      this.r.error(value ?? entry.keySpot, entry.path, `required must be true or false, got ${describe(value)}`);
      return undefined;
    }
    if (!value.value && alwaysRequired) {
      this.r.error(value, entry.path, alwaysRequired);
      return undefined;
    }
    return value.value;
  }

  private dateFormat(formatEntry: Entry | undefined, zoneEntry: Entry | undefined): DateFormat | undefined {
    const r = this.r;
    const name = formatEntry ? r.text(formatEntry, 'format') : 'iso';
    const zone = zoneEntry ? r.text(zoneEntry, 'zone') : undefined;
    if (name === undefined || (zoneEntry && zone === undefined)) return undefined;
    if ((NAMED_DATE_FORMATS as readonly string[]).includes(name)) {
      if (zone !== undefined) {
        const why =
          name === 'iso'
            ? `an ISO-8601 value carries its own offset (none means UTC): to read zone-less times in ${zone}, write the pattern, e.g. format: "yyyy-MM-dd'T'HH:mm:ss"`
            : 'an epoch time is an instant, the same in every zone';
        r.error(zoneEntry!.keySpot, zoneEntry!.path, `zone does not apply to format ${name}: ${why}`);
        return undefined;
      }
      return { kind: name as (typeof NAMED_DATE_FORMATS)[number] };
    }
    if (zone !== undefined && !isKnownZone(zone)) {
      r.error(zoneEntry!.value, zoneEntry!.path, `unknown time zone "${zone}"${closestZone(zone)}: use an IANA name such as Europe/Berlin, America/New_York or UTC`);
      return undefined;
    }
    const compiled = compileDatePattern(name, zone ?? 'UTC');
    if ('problem' in compiled) {
      r.error(formatEntry!.value, formatEntry!.path, compiled.problem);
      return undefined;
    }
    if (compiled.readsOffset && zone !== undefined) {
      r.error(zoneEntry!.keySpot, zoneEntry!.path, `the pattern "${name}" reads each value's own offset or zone, so zone does not apply: remove it`);
      return undefined;
    }
    return compiled;
  }

  /** `map: { <value in the file>: <value to use> }`, with `unmapped` for the values it does not list. */
  private valueMap(mapEntry: Entry, unmappedEntry: Entry | undefined, rule: FieldRule): ValueMap | undefined {
    const r = this.r;
    const node = mapEntry.value;
    if (!isMap(node) || node.items.length === 0) {
      r.error(node ?? mapEntry.keySpot, mapEntry.path, `map must be a non-empty map of value in the file -> value to use, e.g. { view: Product Viewed, cart: Product Added }, got ${describe(node)}`);
      return undefined;
    }
    const values = new Map<string, string | number | boolean>();
    let ok = true;
    for (const pair of node.items) {
      const keyNode = r.resolve(pair.key);
      const valueNode = r.resolve(pair.value);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        r.error(keyNode ?? node, mapEntry.path, 'map: each key is a value as it is in the file');
        ok = false;
        continue;
      }
      const key = String(keyNode.value).trim();
      const path = `${mapEntry.path}.${key}`;
      const target = isScalar(valueNode) ? valueNode.value : undefined;
      const scalar = typeof target === 'string' || typeof target === 'number' || typeof target === 'boolean';
      if (!scalar || (typeof target === 'string' && target.trim() === '') || (rule.textValue && typeof target === 'boolean')) {
        const wanted = rule.textValue ? 'non-empty text' : 'text, a number or true/false';
        r.error(valueNode ?? keyNode, path, `map: "${key}" must map to ${wanted}, got ${describe(valueNode)}`);
        ok = false;
        continue;
      }
      values.set(key, rule.textValue ? String(target) : target);
    }
    let unmapped: Unmapped = 'keep';
    if (unmappedEntry) {
      const choice = r.text(unmappedEntry, 'unmapped');
      if (choice === undefined) ok = false;
      else if (!(UNMAPPED_CHOICES as readonly string[]).includes(choice)) {
        r.error(unmappedEntry.value, unmappedEntry.path, `unmapped: "${choice}"${suggest(choice, UNMAPPED_CHOICES)} is not one of ${UNMAPPED_CHOICES.join(', ')} (keep the value as it is, skip the row, or report it as a bad row)`);
        ok = false;
      } else unmapped = choice as Unmapped;
    }
    return ok ? { values, unmapped } : undefined;
  }

  /** `{ multiply: [price, quantity] }`: the product of number columns (and number constants), e.g. a line total. */
  private multiply(m: Map<string, Entry>, rule: FieldRule): FieldSource | undefined {
    const r = this.r;
    const entry = m.get('multiply')!;
    if (!rule.derived) {
      r.error(entry.keySpot, entry.path, `multiply makes a number: it builds traits and properties, not ${rule.what}`);
      return undefined;
    }
    let ok = this.refuseWith(m, 'multiply', COLUMN_KEYS, 'multiply reads each of its columns as a number');
    const list = entry.value;
    if (!isSeq(list) || list.items.length < 2) {
      r.error(list ?? entry.keySpot, entry.path, `multiply takes a list of two or more columns or numbers, e.g. multiply: [price, quantity], got ${describe(list)}`);
      return undefined;
    }
    const factors: Factor[] = [];
    list.items.forEach((raw, i) => {
      const item = r.resolve(raw);
      const path = `${entry.path}[${i}]`;
      if (isScalar(item) && typeof item.value === 'number' && Number.isFinite(item.value)) factors.push({ constant: item.value });
      else if (isScalar(item) && typeof item.value === 'string' && item.value.trim() !== '') factors.push({ column: item.value, spot: this.spot(item, path) });
      else {
        r.error(item ?? list, path, `multiply: each factor is a column name or a number, got ${describe(item)}`);
        ok = false;
      }
    });
    if (factors.every((f) => 'constant' in f)) {
      r.error(list, entry.path, 'multiply needs at least one column: a product of constants is a constant, write it as { value: ... }');
      ok = false;
    }
    const required = this.required(m.get('required'), false);
    return ok && required !== undefined ? { from: 'multiply', factors, required } : undefined;
  }

  /** A list of objects, each a map of field name -> field: `products: [ { product_id: sku, price: { column: price, type: number } } ]`. */
  private list(entry: Entry): FieldSource | undefined {
    const r = this.r;
    const list = entry.value as YamlNode & { items: unknown[] };
    if (list.items.length === 0) {
      r.error(list, entry.path, 'an empty list builds nothing: list one object per item, e.g. [ { product_id: sku, price: { column: price, type: number } } ]');
      return undefined;
    }
    const items: NamedField[][] = [];
    let ok = true;
    list.items.forEach((raw, i) => {
      const item = r.resolve(raw);
      const path = `${entry.path}[${i}]`;
      if (!isMap(item) || item.items.length === 0) {
        r.error(item ?? list, path, `each item of a list is a map of field name -> column, e.g. { product_id: sku, category: category_code }, got ${describe(item)}`);
        ok = false;
        return;
      }
      const fields = this.namedFields({ key: String(i), keySpot: item, value: item, path }, 'a list item', 'field');
      if (fields) items.push(fields);
      else ok = false;
    });
    return ok ? { from: 'list', items } : undefined;
  }

  private spot(node: Entry['value'], path: string): MappingSpot {
    return { ...this.r.position(node), path };
  }
}

/** Every column a field reads, with where the mapping names it. */
function columnsOf(source: FieldSource | null): Array<{ column: string; spot: MappingSpot }> {
  if (source === null || source.from === 'value') return [];
  if (source.from === 'column') return [{ column: source.column, spot: source.spot }];
  if (source.from === 'multiply') return source.factors.flatMap((f) => ('column' in f ? [f] : []));
  return source.items.flatMap((item) => item.flatMap((field) => columnsOf(field.source)));
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
  return sources.flatMap(columnsOf);
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
        ? `column "${column}" is not in the header of ${dataFile}${suggest(column, header)}; its columns are: ${listed}`
        : `column "${column}" appears ${count} times in the header of ${dataFile}, so which one to read is ambiguous: rename the others`;
    problems.push({ file: mapping.file, ...spot, message, severity: 'error' });
  }
  return problems;
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

const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

/** Converts one value to its type; the value is not blank. Throws BadRowError naming the column. */
function convert(value: unknown, type: FieldType | null, column: string, dateFormat: DateFormat = { kind: 'iso' }): unknown {
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
    case 'date':
      return new Date(parseDate(value, dateFormat, fail)).toISOString();
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

/** Looks a raw value up in a value map; what an unlisted value does is the map's `unmapped`. */
function translate(raw: unknown, valueMap: ValueMap, column: string): unknown {
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') throw new BadRowError(`${kindOf(raw)} cannot be looked up in the map`, column);
  const key = String(raw).trim();
  const mapped = valueMap.values.get(key);
  if (mapped !== undefined) return mapped;
  if (valueMap.unmapped === 'skip') throw new RowSkipped(column, key);
  if (valueMap.unmapped === 'bad_row') {
    const listed = [...valueMap.values.keys()];
    const shownKeys = listed.length > 10 ? `${listed.slice(0, 10).join(', ')}, ...` : listed.join(', ');
    throw new BadRowError(`${shown(key)} is not in the map (it lists ${shownKeys}; unmapped: bad_row)`, column);
  }
  return raw;
}

/** The field's value, or undefined when the cell is blank and the field is optional. */
function read(record: ImportRecord, source: FieldSource): unknown {
  switch (source.from) {
    case 'value':
      return source.value;
    case 'multiply':
      return multiply(record, source);
    case 'list': {
      // An item whose every cell is blank (a view row has no product) is no item; no items leaves the field out.
      const items = source.items.map((fields) => readFields(record, fields)).filter((item) => Object.keys(item).length > 0);
      return items.length > 0 ? items : undefined;
    }
    case 'column': {
      const raw = lookupColumn(record, source.column);
      if (isBlank(raw)) {
        if (source.required) throw new BadRowError(raw === undefined ? 'is missing' : 'is empty', source.column);
        return undefined;
      }
      const value = source.valueMap ? translate(raw, source.valueMap, source.column) : raw;
      return convert(value, source.type, source.column, source.dateFormat);
    }
  }
}

function multiply(record: ImportRecord, source: Extract<FieldSource, { from: 'multiply' }>): number | undefined {
  let product = 1;
  for (const factor of source.factors) {
    if ('constant' in factor) {
      product *= factor.constant;
      continue;
    }
    const raw = lookupColumn(record, factor.column);
    if (isBlank(raw)) {
      // One blank factor leaves the product unknown, not 0: a line without a quantity has no total.
      if (source.required) throw new BadRowError(raw === undefined ? 'is missing' : 'is empty', factor.column);
      return undefined;
    }
    product *= convert(raw, 'number', factor.column) as number;
  }
  if (!Number.isFinite(product)) throw new BadRowError(`the product is ${product}, not a finite number`, source.factors.flatMap((f) => ('column' in f ? [f.column] : [])).join(' x '));
  // 4.35 x 3 is 13.049999999999999 in binary floating point: 15 significant digits are what the inputs can carry.
  return Number(product.toPrecision(15));
}

/** user_id, event, message_id: text, trimmed (a stray space would make a second customer). */
function readText(record: ImportRecord, source: FieldSource): string | undefined {
  const value = read(record, source);
  if (value === undefined) return undefined;
  const text = String(value).trim();
  if (text === '') throw new BadRowError('is empty', source.from === 'column' ? source.column : undefined);
  return text;
}

function readFields(record: ImportRecord, fields: readonly NamedField[]): Record<string, unknown> {
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
    if (isMicroflowsError(err) && err.code === 'bad_event') {
      // An email that is not one mailbox (a list, a group, CR/LF) is blamed on the column it came from.
      const field = (err as { field?: string }).field;
      const email = field === 'traits.email' ? mapping.traits.find((t) => t.name === 'email')?.source : undefined;
      if (email?.from === 'column') throw new BadRowError(err.message.slice(`${field}: `.length), email.column);
      throw new BadRowError(`the mapped call is invalid: ${err.message}`);
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Event names an import brings in, against what reads them

/**
 * Fields that move whatever the event's name: every customer action sets the last action, and any `Product ...` name
 * counts as a visit. They say nothing about whether the name itself is read: a misspelled "Product Addd" is not.
 */
const FIELDS_ANY_NAME_MOVES = new Set(['last_action_date', '_folded_through', 'visit_days', '_last_visit_day']);
/** Properties that each computed field looks for, so a probe event of a name the fold reads changes something. */
const PROBE_PROPERTIES = { product_id: 'probe', category: 'probe', price: 1, quantity: 1, total: 1, products: [{ product_id: 'probe' }] };

/**
 * Whether the computed profile fields (core/behavior) read track events of this name. Found by folding one such
 * event rather than from a list kept beside the fold, so the answer follows the fold when it learns a new name.
 */
export function computedFieldsRead(name: string): boolean {
  const folded = foldAll([{ type: 'track', name, properties: PROBE_PROPERTIES, traits: {}, timestamp: 0 }]);
  return Object.keys(folded).some((field) => !FIELDS_ANY_NAME_MOVES.has(field));
}

/** The event names flows (triggers, exits, wait_for steps, inactivity) and segment rules read. */
export function eventNamesReadBy(flows: readonly FlowDefinition[], segments: readonly SegmentDefinition[]): Set<string> {
  const names = eventNamesOfInterest([...flows]);
  for (const flow of flows) if (flow.trigger.kind === 'inactivity') names.add(flow.trigger.event);
  for (const segment of segments) for (const name of eventsRead(segment.rule)) names.add(name);
  return names;
}

/** Of the names an import brought in, those that no flow, segment or computed field reads, in the order given. */
export function unusedEventNames(names: Iterable<string>, flows: readonly FlowDefinition[], segments: readonly SegmentDefinition[]): string[] {
  const read = eventNamesReadBy(flows, segments);
  return [...names].filter((name) => !read.has(name) && !computedFieldsRead(name));
}

/** A read name close to an unused one (a typo or a case slip), for "did you mean". */
export function closestEventName(name: string, known: Iterable<string>): string | undefined {
  return closest(name, known, 4);
}
