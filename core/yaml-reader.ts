// Reads YAML with a line for every node, and turns what it finds into FileProblems (file:line:col, path, fix).
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { CONDITION_ROOTS, validateCondition } from './conditions';
import type { Condition } from './conditions';
import { parseDuration } from './duration';
import { isMicroflowsError } from './errors';
import type { FileProblem } from './errors';

export type { YamlNode };

/**
 * Parses `source`; YAML syntax errors (and warnings) are already recorded on the reader. `parsed` is false when
 * there were syntax errors: the tree is then partial and checking it would only add confusing follow-on errors.
 */
export function readYaml(source: string, file: string): { reader: YamlReader; contents: unknown; parsed: boolean } {
  const lines = new LineCounter();
  // prettyErrors off: we print our own file:line:col prefix, the default would repeat it with a code excerpt.
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const reader = new YamlReader(doc, lines, file);
  for (const err of doc.errors) reader.problemAt(err.pos[0], '', `YAML syntax: ${err.message}`, 'error');
  for (const warning of doc.warnings) reader.problemAt(warning.pos[0], '', `YAML: ${warning.message}`, 'warning');
  return { reader, contents: doc.contents, parsed: doc.errors.length === 0 };
}

/** Anything with a source range: YAML nodes, pair keys. */
export type Spot = { range?: readonly number[] | null } | null | undefined;

export interface Entry {
  key: string;
  keySpot: YamlNode;
  /** null for `key:` with nothing after it in some YAML forms; usually a null Scalar instead. */
  value: YamlNode | null;
  path: string;
}

export function describe(node: YamlNode | null): string {
  if (node === null) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return node.value === null ? 'nothing' : JSON.stringify(node.value);
  return 'something else';
}

/** A close known word, for "did you mean" hints on typos. */
/**
 * The candidate nearest to `word` (case ignored) within a few edits, for "did you mean": two edits turn any short
 * word into any other ("x0" -> "id"), so words of `shortUpTo` letters or fewer get one.
 */
export function closest(word: string, candidates: Iterable<string>, shortUpTo = 3): string | undefined {
  const wanted = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = wanted.length <= shortUpTo ? 2 : 3;
  for (const candidate of candidates) {
    const d = editDistance(wanted, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** ` (did you mean "<nearest>"?)`, or nothing when no known word is near. */
export function suggest(word: string, known: Iterable<string>, shortUpTo = 3): string {
  const best = closest(word, known, shortUpTo);
  return best ? ` (did you mean "${best}"?)` : '';
}

export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

export class YamlReader {
  readonly problems: FileProblem[] = [];

  constructor(
    readonly doc: Document,
    readonly lines: LineCounter,
    readonly file: string,
  ) {}

  position(spot: Spot): { line: number; column: number } | undefined {
    const offset = spot?.range?.[0];
    if (offset === undefined) return undefined;
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  problemAt(offset: number | undefined, path: string, message: string, severity: FileProblem['severity']): void {
    const pos = offset === undefined ? undefined : this.lines.linePos(offset);
    this.problems.push({
      file: this.file,
      ...(pos ? { line: pos.line, column: pos.col } : {}),
      ...(path ? { path } : {}),
      message,
      severity,
    });
  }

  error(spot: Spot, path: string, message: string): void {
    this.problemAt(spot?.range?.[0], path, message, 'error');
  }

  warn(spot: Spot, path: string, message: string): void {
    this.problemAt(spot?.range?.[0], path, message, 'warning');
  }

  /** Problems in file order; checks run section by section, so their findings arrive out of order. Stable sort. */
  sortedProblems(): FileProblem[] {
    return [...this.problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  }

  /** Follows `*alias` references so that checks see the anchored node. */
  resolve(node: unknown): YamlNode | null {
    if (isAlias(node)) return (node.resolve(this.doc) as YamlNode | undefined) ?? null;
    return (node as YamlNode | null | undefined) ?? null;
  }

  js(node: YamlNode | null): unknown {
    return node === null ? null : node.toJS(this.doc);
  }

  isEmpty(node: YamlNode | null): boolean {
    return node === null || (isScalar(node) && node.value === null);
  }

  /** Reads a map whose keys must come from `known`; reports the others. Returns undefined if not a map. */
  map(node: YamlNode | null, path: string, what: string, known: readonly string[], fallback?: Spot): Map<string, Entry> | undefined {
    if (!isMap(node)) {
      this.error(node ?? fallback, path, `${what} must be a map (key: value), got ${describe(node)}`);
      return undefined;
    }
    const out = new Map<string, Entry>();
    for (const pair of node.items) {
      const keyNode = this.resolve(pair.key);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        this.error(keyNode ?? node, path, `${what}: keys must be plain names`);
        continue;
      }
      const key = String(keyNode.value);
      const entryPath = path ? `${path}.${key}` : key;
      if (!known.includes(key)) {
        this.error(keyNode, entryPath, `unknown key "${key}" in ${what}${suggest(key, known)}; allowed keys: ${known.join(', ')}`);
        continue;
      }
      out.set(key, { key, keySpot: keyNode, value: this.resolve(pair.value), path: entryPath });
    }
    return out;
  }

  require(entries: Map<string, Entry>, key: string, spot: Spot, path: string, hint: string): Entry | undefined {
    const entry = entries.get(key);
    if (!entry) this.error(spot, path ? `${path}.${key}` : key, `missing "${key}": ${hint}`);
    return entry;
  }

  text(entry: Entry | undefined, what: string): string | undefined {
    if (!entry) return undefined;
    const v = entry.value;
    if (isScalar(v) && typeof v.value === 'string' && v.value.trim() !== '') return v.value;
    this.error(v ?? entry.keySpot, entry.path, `${what} must be non-empty text, got ${describe(v)}`);
    return undefined;
  }

  integer(entry: Entry | undefined, what: string, min?: number): number | undefined {
    if (!entry) return undefined;
    const v = entry.value;
    if (isScalar(v) && typeof v.value === 'number' && Number.isInteger(v.value) && (min === undefined || v.value >= min)) {
      return v.value;
    }
    const kind = min === 1 ? 'a positive whole number' : min === 0 ? 'a whole number, 0 or more' : 'a whole number';
    this.error(v ?? entry.keySpot, entry.path, `${what} must be ${kind}, got ${describe(v)}`);
    return undefined;
  }

  duration(entry: Entry | undefined, what: string): number | undefined {
    if (!entry) return undefined;
    const raw = isScalar(entry.value) ? entry.value.value : this.js(entry.value);
    try {
      return parseDuration(raw);
    } catch (err) {
      if (!isMicroflowsError(err) || err.code !== 'invalid_duration') throw err;
      this.error(entry.value ?? entry.keySpot, entry.path, `${what}: ${err.message}`);
      return undefined;
    }
  }

  textList(entry: Entry | undefined, what: string): string[] | undefined {
    if (!entry) return undefined;
    const v = entry.value;
    if (!isSeq(v)) {
      this.error(v ?? entry.keySpot, entry.path, `${what} must be a list of text, e.g. [vip, loyal], got ${describe(v)}`);
      return undefined;
    }
    const out: string[] = [];
    v.items.forEach((raw, i) => {
      const item = this.resolve(raw);
      if (isScalar(item) && typeof item.value === 'string' && item.value.trim() !== '') out.push(item.value);
      else this.error(item ?? v, `${entry.path}[${i}]`, `${what} must contain text, got ${describe(item)}`);
    });
    return out;
  }

  /**
   * Validates a condition with the one shared validator, then maps the path it blames back to the YAML node so
   * the problem names a line. `eventOnly` conditions filter an event and can read nothing else.
   */
  condition(entry: Entry | undefined, eventOnly: boolean): Condition | undefined {
    if (!entry) return undefined;
    const value = this.js(entry.value);
    try {
      validateCondition(value, entry.path);
    } catch (err) {
      if (!isMicroflowsError(err) || err.code !== 'invalid_condition') throw err;
      const blamed = (err as { path?: unknown }).path;
      const path = typeof blamed === 'string' ? blamed : entry.path;
      const prefix = `${path}: `;
      const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      const spot = this.indexPaths(entry.value, entry.path).get(path) ?? entry.value ?? entry.keySpot;
      this.error(spot, path, `condition: ${message}`);
      return undefined;
    }
    if (eventOnly) {
      let ok = true;
      for (const field of this.conditionFields(entry.value, entry.path)) {
        if (field.key.split('.')[0] === 'event') continue;
        ok = false;
        this.error(
          field.spot,
          field.path,
          `"${field.key}": this condition filters the event, so paths start with "event." (e.g. event.properties.value); ` +
            `put checks on ${CONDITION_ROOTS.filter((r) => r !== 'event').join('/')} in entry.when or a split`,
        );
      }
      if (!ok) return undefined;
    }
    return value as Condition;
  }

  /** Every path the condition validator can produce (`a.b`, `a[0]`), mapped to the node it names. */
  private indexPaths(node: YamlNode | null, path: string, out = new Map<string, YamlNode>()): Map<string, YamlNode> {
    const n = this.resolve(node);
    if (n === null) return out;
    out.set(path, n);
    if (isMap(n)) {
      for (const pair of n.items) {
        const key = this.resolve(pair.key);
        if (!isScalar(key)) continue;
        const here = `${path}.${String(key.value)}`;
        this.indexPaths(this.resolve(pair.value), here, out);
        // Point at the key itself: an unknown operator or field is a problem with the key, not its value.
        out.set(here, key);
      }
    } else if (isSeq(n)) {
      n.items.forEach((item, i) => this.indexPaths(this.resolve(item), `${path}[${i}]`, out));
    }
    return out;
  }

  /** Field keys of a (valid) condition, walking the all/any/not combinators the way the validator does. */
  private conditionFields(node: YamlNode | null, path: string): Array<{ key: string; path: string; spot: YamlNode }> {
    const out: Array<{ key: string; path: string; spot: YamlNode }> = [];
    const walk = (raw: YamlNode | null, here: string): void => {
      const n = this.resolve(raw);
      if (!isMap(n)) return;
      for (const pair of n.items) {
        const keyNode = this.resolve(pair.key);
        if (!isScalar(keyNode)) continue;
        const key = String(keyNode.value);
        const value = this.resolve(pair.value);
        const at = `${here}.${key}`;
        if ((key === 'all' || key === 'any') && isSeq(value)) value.items.forEach((c, i) => walk(this.resolve(c), `${at}[${i}]`));
        else if (key === 'not') walk(value, at);
        else out.push({ key, path: at, spot: keyNode });
      }
    };
    walk(node, path);
    return out;
  }
}
