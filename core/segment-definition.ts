// A segment file (segments/<id>.yaml): a named audience written as rules over a customer's behavior and profile,
// validated like flow files (every problem with file:line:col and the path inside the file). Pure.
//
//   id: browsing-no-purchase
//   description: Viewed one category 3 times this week, bought nothing in 30 days
//   rules:                                   # all must hold
//     - performed: { event: Product Viewed, at_least: 3, within: 7d, same: properties.category }
//     - not_performed: { event: Order Completed, within: 30d }
//
// Rule kinds: performed / not_performed (an event, `where` on event.*, at_least | at_most | exactly, within a
// duration or since a date, `same` to count per value), last_performed (before / after a duration ago), opened /
// clicked (email engagement), profile (the one condition language on profile.* and consent.*: traits, computed
// fields, tags, consent), rfm (recency / frequency / monetary quintile scores 1–5), in_segment, and all / any / not.
// `when:` at the top level is shorthand for one profile rule.
import { validateCondition, type Condition } from './conditions';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from './segment-membership';
import type { FileProblem } from './errors';
import type { CountTest, EventMatch, SegmentRule } from './segment-rules';
import { readYaml, type Entry, type YamlNode, type YamlReader } from './yaml-reader';

export interface SegmentDefinition {
  id: string;
  description: string | null;
  rule: SegmentRule;
  file: string;
}

const TOP_KEYS = ['id', 'description', 'rules', 'when'] as const;
export const RULE_KINDS = ['performed', 'not_performed', 'last_performed', 'opened', 'clicked', 'profile', 'rfm', 'in_segment', 'all', 'any', 'not'] as const;
const COUNT_KEYS = ['at_least', 'at_most', 'exactly'] as const;
const RFM_DIMENSIONS = ['recency', 'frequency', 'monetary'];
const ENGAGEMENT_EVENTS: Record<string, string> = { opened: 'Email Opened', clicked: 'Email Link Clicked' };

class SegmentReader {
  constructor(private readonly r: YamlReader) {}

  rules(node: YamlNode | null, path: string): SegmentRule[] | undefined {
    const list = this.r.resolve(node);
    if (!list || !('items' in list) || !Array.isArray((list as { items?: unknown }).items) || (list as { items: unknown[] }).items.length === 0) {
      this.r.error(list, path, 'must be a non-empty list of rules, e.g. [ { performed: { event: Product Viewed, within: 7d } } ]');
      return undefined;
    }
    const rules = (list as unknown as { items: YamlNode[] }).items.map((item, i) => this.rule(item, `${path}[${i}]`));
    return rules.every((r): r is SegmentRule => r !== undefined) ? rules : undefined;
  }

  rule(node: YamlNode | null, path: string): SegmentRule | undefined {
    const entries = this.r.map(this.r.resolve(node), path, 'a rule', RULE_KINDS);
    if (!entries) return undefined;
    const written = (this.r.resolve(node) as unknown as { items?: unknown[] }).items?.length ?? 0;
    if (entries.size !== 1 || written !== 1) {
      // An unknown kind was reported by map(); say more only about an empty rule or one with several kinds.
      if (written !== 1) this.r.error(node, path, `a rule has exactly one kind (${RULE_KINDS.join(', ')}); put several in all: [...] or any: [...]`);
      return undefined;
    }
    const [entry] = [...entries.values()] as [Entry];
    switch (entry.key) {
      case 'performed':
      case 'not_performed':
      case 'opened':
      case 'clicked':
        return this.performed(entry);
      case 'last_performed':
        return this.lastPerformed(entry);
      case 'profile': {
        const condition = this.r.condition(entry, false);
        return condition === undefined ? undefined : { kind: 'profile', condition };
      }
      case 'rfm':
        return this.rfm(entry);
      case 'in_segment': {
        const segment = this.r.text(entry, 'in_segment');
        return segment === undefined ? undefined : { kind: 'in_segment', segment };
      }
      case 'not': {
        const inner = this.rule(entry.value, entry.path);
        return inner === undefined ? undefined : { kind: 'not', rule: inner };
      }
      default: {
        const rules = this.rules(entry.value, entry.path);
        return rules === undefined ? undefined : { kind: entry.key as 'all' | 'any', rules };
      }
    }
  }

  private match(entries: Map<string, Entry>, entry: Entry, fixedEvent: string | undefined): EventMatch | undefined {
    const event = fixedEvent ?? this.r.text(this.r.require(entries, 'event', entry.value, entry.path, 'the event name, e.g. "event: Product Viewed"'), 'event');
    const where = entries.has('where') ? this.r.condition(entries.get('where'), true) : undefined;
    if (event === SEGMENT_ENTERED || event === SEGMENT_EXITED) {
      this.r.error(entries.get('event')?.value, `${entry.path}.event`, `segments are not built on "${event}" events: write in_segment: <id> (or not: { in_segment: <id> })`);
      return undefined;
    }
    if (event === undefined || (entries.has('where') && where === undefined)) return undefined;
    return where === undefined ? { event } : { event, where };
  }

  private performed(entry: Entry): SegmentRule | undefined {
    const fixedEvent = ENGAGEMENT_EVENTS[entry.key];
    const negated = entry.key === 'not_performed';
    const keys = [...(fixedEvent ? [] : ['event', 'where']), ...(negated ? [] : COUNT_KEYS), 'within', 'since', ...(negated || fixedEvent ? [] : ['same'])];
    const entries = this.r.map(entry.value, entry.path, entry.key, keys, entry.keySpot);
    if (!entries) return undefined;
    const match = this.match(entries, entry, fixedEvent);
    const counts = COUNT_KEYS.filter((k) => entries.has(k));
    if (counts.length > 1) this.r.error(entries.get(counts[1]!)!.keySpot, entry.path, `give one of ${COUNT_KEYS.join(', ')}, not ${counts.join(' and ')}`);
    let count: CountTest = negated ? { exactly: 0 } : { at_least: 1 };
    if (counts.length === 1) {
      const n = this.r.integer(entries.get(counts[0]!), counts[0]!, counts[0] === 'at_least' ? 1 : 0);
      if (n === undefined) return undefined;
      count = { [counts[0]!]: n } as CountTest;
    }
    if (entries.has('within') && entries.has('since')) this.r.error(entries.get('since')!.keySpot, entry.path, 'give within (a duration) or since (a date), not both');
    const within = entries.has('within') ? this.r.duration(entries.get('within'), 'within') : undefined;
    let since: number | undefined;
    if (entries.has('since')) {
      const raw = this.r.js(entries.get('since')!.value);
      since = typeof raw === 'string' || raw instanceof Date ? new Date(raw as string).getTime() : NaN;
      if (!Number.isFinite(since)) {
        this.r.error(entries.get('since')!.value, `${entry.path}.since`, `since must be a date, e.g. 2026-01-31 or 2026-01-31T09:00:00Z, got ${JSON.stringify(raw)}`);
        return undefined;
      }
    }
    const same = entries.has('same') ? this.r.text(entries.get('same'), 'same') : undefined;
    if (same !== undefined && !same.startsWith('properties.')) {
      this.r.error(entries.get('same')!.value, `${entry.path}.same`, `same counts per value of an event property: write properties.<name>, e.g. properties.category`);
      return undefined;
    }
    if (match === undefined || (entries.has('within') && within === undefined)) return undefined;
    return { kind: 'performed', match, count, ...(within !== undefined ? { within } : {}), ...(since !== undefined ? { since } : {}), ...(same !== undefined ? { same } : {}) };
  }

  private lastPerformed(entry: Entry): SegmentRule | undefined {
    const entries = this.r.map(entry.value, entry.path, 'last_performed', ['event', 'where', 'before', 'after'], entry.keySpot);
    if (!entries) return undefined;
    const match = this.match(entries, entry, undefined);
    if (!entries.has('before') && !entries.has('after')) {
      this.r.error(entry.value, entry.path, 'say when: before: 60d (the last one is older) or after: 7d (it is more recent)');
      return undefined;
    }
    const before = entries.has('before') ? this.r.duration(entries.get('before'), 'before') : undefined;
    const after = entries.has('after') ? this.r.duration(entries.get('after'), 'after') : undefined;
    if (match === undefined || (entries.has('before') && before === undefined) || (entries.has('after') && after === undefined)) return undefined;
    return { kind: 'last_performed', match, ...(before !== undefined ? { before } : {}), ...(after !== undefined ? { after } : {}) };
  }

  private rfm(entry: Entry): SegmentRule | undefined {
    const entries = this.r.map(entry.value, entry.path, 'rfm', RFM_DIMENSIONS, entry.keySpot);
    if (!entries || entries.size === 0) {
      if (entries) this.r.error(entry.value, entry.path, 'name at least one of recency, frequency, monetary, e.g. { recency: { gte: 4 } }');
      return undefined;
    }
    const condition: Condition = {};
    for (const [dimension, dimensionEntry] of entries) {
      // Scores are read as profile.<dimension> by the one evaluator, and validated by it.
      const value = this.r.js(dimensionEntry.value);
      try {
        validateCondition({ [`profile.${dimension}`]: value }, dimensionEntry.path);
      } catch (err) {
        const message = (err as Error).message.replace(/^[^:]*: /, '').replace(`profile.${dimension}`, dimension);
        this.r.error(dimensionEntry.value ?? dimensionEntry.keySpot, dimensionEntry.path, `rfm ${dimension}: ${message} (scores are 1–5, 5 best)`);
        return undefined;
      }
      condition[`profile.${dimension}`] = value;
    }
    return { kind: 'rfm', condition };
  }
}

/** Reads one segment file; every problem comes with file:line:col. */
export function parseSegmentFile(source: string, file: string): { segment: SegmentDefinition | null; problems: FileProblem[] } {
  const { reader: r, contents, parsed } = readYaml(source, file);
  if (!parsed) return { segment: null, problems: r.sortedProblems() };
  const root = r.resolve(contents);
  if (r.isEmpty(root)) {
    r.problemAt(0, '', 'empty file: a segment file is a map with id and rules', 'error');
    return { segment: null, problems: r.sortedProblems() };
  }
  const top = r.map(root, '', 'a segment file', TOP_KEYS);
  if (!top) return { segment: null, problems: r.sortedProblems() };
  const id = r.text(r.require(top, 'id', root, '', 'the segment id, kebab-case, e.g. "id: shoe-browsers"'), 'id');
  if (id !== undefined && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(id)) r.error(top.get('id')?.value, 'id', `"${id}" is not kebab-case: use lower-case words joined by "-", e.g. shoe-browsers`);
  const description = top.has('description') ? (r.text(top.get('description'), 'description') ?? null) : null;
  if (!top.has('rules') && !top.has('when')) r.error(root, '', 'missing "rules": the list of rules a member meets, e.g. rules: [ { performed: { event: Order Completed, within: 14d } } ]');
  const reader = new SegmentReader(r);
  const parts: SegmentRule[] = [];
  let ok = true;
  if (top.has('rules')) {
    const rules = reader.rules(top.get('rules')!.value, 'rules');
    if (rules) parts.push(...rules);
    else ok = false;
  }
  if (top.has('when')) {
    const condition = r.condition(top.get('when'), false);
    if (condition) parts.push({ kind: 'profile', condition });
    else ok = false;
  }
  const problems = r.sortedProblems();
  if (!ok || problems.some((p) => p.severity === 'error') || id === undefined || parts.length === 0) return { segment: null, problems };
  return { segment: { id, description, rule: parts.length === 1 ? parts[0]! : { kind: 'all', rules: parts }, file }, problems };
}
