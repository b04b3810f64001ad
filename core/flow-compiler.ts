// Compiles a flow file (YAML text) into a FlowDefinition, collecting every problem with its line, column and path.
import { isMap, isScalar, isSeq } from 'yaml';
import { InvalidFileError } from './errors';
import type { FileProblem } from './errors';
import type {
  AttributionRule,
  ConflictPolicy,
  EventMatcher,
  FlowDefinition,
  FlowNode,
  NodeId,
  ReentryRule,
  Trigger,
  WinnerMetric,
  WinnerRule,
} from './flow-types';
import { formatDuration } from './duration';
import { readOnCap, readQuietHours } from './send-policy';
import { describe, readYaml, suggest } from './yaml-reader';
import { SEGMENT_ENTERED } from './segment-membership';
import type { Entry, Spot, YamlNode, YamlReader } from './yaml-reader';

export const STEP_KINDS = ['wait', 'wait_for', 'split', 'ab_split', 'send', 'update_profile', 'exit', 'goto'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

const TOP_LEVEL_KEYS = ['id', 'version', 'priority', 'group', 'description', 'topic', 'timezone', 'on_cap', 'defer', 'quiet_hours', 'holdout', 'attribution', 'trigger', 'entry', 'exit', 'requires', 'steps'];
/** How far ahead `at: best_time` may look for the customer's hour when the step does not say (`within:`). */
export const DEFAULT_BEST_TIME_WITHIN_MS = 24 * 3_600_000;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/**
 * The attribution window when the flow names none (`attribution: { window }`): Klaviyo's default for email. The
 * compiler leaves `attribution` out then, so flows without the key compile as before; whoever credits conversions
 * applies this.
 */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 5 * DAY_MS;
/** Shorter than an hour misses most purchases that follow an email; longer than 30 days credits the email with the customer's routine. */
export const ATTRIBUTION_WINDOW_RANGE_MS = { min: HOUR_MS, max: 30 * DAY_MS } as const;
export const WINNER_METRICS: readonly WinnerMetric[] = ['conversion', 'click'];
/**
 * What `winner:` leaves out. min_per_variant 100: the sequential test is valid at any size, but a decision on a few
 * dozen recipients would rest on a handful of conversions and leave the guardrails (unsubscribes and complaints, far
 * rarer than clicks) nothing to see; 100 still lets a flow with a few hundred entrants a week decide.
 */
export const WINNER_DEFAULTS: Omit<WinnerRule, 'metric'> = { minPerVariant: 100, confidence: 0.95, then: 'all_to_winner', maxDurationMs: 30 * DAY_MS };

export interface CompileOptions {
  /** Whether a template of that name exists; the caller does the file-system check. */
  templateExists: (name: string) => boolean;
  /** Hex SHA-256 of `source`, computed by the caller so this module stays free of I/O and crypto. */
  sha256: string;
  /** The segment ids that exist (segments/<id>.yaml), for `segment:` in triggers and wait_for; absent: not checked. */
  segmentIds?: ReadonlySet<string>;
}

export interface FlowCheck {
  /** Present only when there is no error (warnings allowed). */
  flow?: FlowDefinition;
  problems: FileProblem[];
  /** Where each top-level key sits, so callers can point at e.g. `version` in problems that span files. */
  positions: Record<string, { line: number; column: number }>;
}

/** Compiles a flow file; throws InvalidFileError listing every error found. Warnings do not fail. */
export function compileFlow(source: string, file: string, options: CompileOptions): FlowDefinition {
  const result = checkFlow(source, file, options);
  if (!result.flow) throw new InvalidFileError(result.problems);
  return result.flow;
}

/** Like compileFlow, but returns the problems instead of throwing. */
export function checkFlow(source: string, file: string, options: CompileOptions): FlowCheck {
  const { reader, contents, parsed } = readYaml(source, file);
  // A file that is not even YAML would only produce confusing follow-on errors, so stop here.
  if (!parsed) return { problems: reader.sortedProblems(), positions: {} };
  const compiler = new FlowCompiler(reader, options);
  let flow: FlowDefinition | undefined;
  try {
    flow = compiler.compile(contents, file, options.sha256);
  } catch (err) {
    // The yaml library refuses alias bombs (and similar) by throwing while converting a node; that is still
    // a problem with this file, and the caller asked for problems, not exceptions.
    reader.problemAt(undefined, '', `could not read the file: ${err instanceof Error ? err.message : String(err)}`, 'error');
  }
  const failed = reader.problems.some((p) => p.severity === 'error');
  return { flow: failed ? undefined : flow, problems: reader.sortedProblems(), positions: compiler.positions };
}

// ---------------------------------------------------------------------------------------------------------------
// Steps: parsed into a tree first (labels can be referenced before they appear), then linked into a graph.

type NodeBody = FlowNode extends infer N ? (N extends FlowNode ? Omit<N, 'id' | 'line'> : never) : never;

/** A list of steps that a branching step may continue with; it runs on to the step after the branching one. */
type Branch = { steps: ParsedStep[] };

type StepBody =
  | { shape: 'linear'; waits: boolean; build: (next: NodeId | null) => NodeBody }
  /** `build` gets the first node of each branch, in the order of `branches`. */
  | { shape: 'branch'; waits: boolean; branches: Branch[]; build: (firsts: Array<NodeId | null>) => NodeBody }
  | { shape: 'exit'; build: () => NodeBody }
  | { shape: 'goto'; target: string | undefined; targetSpot: Spot }
  /** The step could not be read (problem already reported); linked as a pass-through that counts as waiting, so
   *  one bad step does not also produce "unreachable" or "loop without wait" noise. */
  | { shape: 'invalid' };

interface ParsedStep {
  nodeId: NodeId;
  docPath: string;
  spot: YamlNode | null;
  line?: number;
  label?: string;
  /** Absent when the step names no known kind. */
  kind?: StepKind;
  body: StepBody;
}

/** One entry of an ab_split's `variants:`, before linking. */
interface ParsedVariant {
  name: string;
  weight: number;
  line?: number;
  steps: ParsedStep[];
}

const LABEL = /^[A-Za-z][A-Za-z0-9_-]*$/;
const TIME_OF_DAY = /^([01]?\d|2[0-3]):([0-5]\d)$/;
const FLOW_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const TEMPLATE_NAME = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*$/;
const PROPERTY_PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
/** Experiment ids: segments of lowercase letters, digits, "-" and "_", joined by "/" (as in `<flow id>/<label>`). */
const EXPERIMENT_ID = /^[a-z0-9][a-z0-9_-]*(?:\/[a-z0-9][a-z0-9_-]*)*$/;
const MAX_EXPERIMENT_ID = 100;
/** Variant names appear in reports, CSV headers and URLs, and never collide with the holdout's "(holdout)". */
const VARIANT_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const MAX_VARIANT_NAME = 40;
const PERCENT = /^(\d+(?:\.\d+)?)\s*%$/;
/** Profile fields that `update_profile.set` cannot write: they are derived, or owned by identify calls and tags. */
const RESERVED_PROFILE_FIELDS: Record<string, string> = {
  customer_id: 'the customer id cannot be changed by a flow',
  email: 'email comes from identify calls',
  timezone: 'timezone comes from identify calls',
  tags: 'use add_tags / remove_tags',
};

/** What `segment: <id>` in a trigger or wait_for listens to: the customer's Segment Entered event for that segment. */
export function segmentEntered(segmentId: string): EventMatcher {
  return { event: SEGMENT_ENTERED, where: { 'event.properties.segment_id': segmentId } };
}

class FlowCompiler {
  readonly positions: Record<string, { line: number; column: number }> = {};
  private readonly labels = new Map<string, ParsedStep>();
  /** The flow's id (for default experiment ids); undefined until read, or when it is bad. */
  private flowId: string | undefined;
  /** The flow's goal events (exit.on_event); undefined when they could not be read, so no follow-on errors. */
  private goals: EventMatcher[] | undefined;
  private readonly experiments = new Map<string, { line?: number; path: string }>();
  /** Variant names of the flow's earlier ab_splits: the report counters are kept per variant name within a flow. */
  private readonly variantNamesInFlow = new Map<string, { line?: number; split: string }>();

  constructor(
    private readonly r: YamlReader,
    private readonly options: CompileOptions,
  ) {}

  compile(contents: unknown, file: string, sha256: string): FlowDefinition | undefined {
    const r = this.r;
    const root = r.resolve(contents);
    if (r.isEmpty(root)) {
      r.problemAt(0, '', 'empty file: a flow file is a map with id, version, priority, trigger and steps', 'error');
      return undefined;
    }
    const top = r.map(root, '', 'a flow file', TOP_LEVEL_KEYS);
    if (!top) return undefined;
    for (const entry of top.values()) {
      const pos = r.position(entry.keySpot);
      if (pos) this.positions[entry.key] = pos;
    }

    const id = r.text(r.require(top, 'id', root, '', 'the flow id, kebab-case, e.g. "id: cart-abandonment"'), 'id');
    if (id !== undefined && !FLOW_ID.test(id)) {
      r.error(top.get('id')?.value, 'id', `id "${id}" must be kebab-case: lowercase letters, digits and single dashes, e.g. cart-abandonment`);
    }
    const version = r.integer(r.require(top, 'version', root, '', 'a positive whole number, e.g. "version: 1"; bump it when you change the flow'), 'version', 1);
    const priority = r.integer(r.require(top, 'priority', root, '', 'a whole number, higher wins when flows compete, e.g. "priority: 50"'), 'priority');
    const group = top.has('group') ? r.text(top.get('group'), 'group') : 'default';
    const description = top.has('description') ? r.text(top.get('description'), 'description') : undefined;
    const topic = this.topic(top.get('topic'));
    const timezone = this.timezone(top.get('timezone'));
    // The send policy's per-flow overrides; each is kept only when written, so flows without them compile as before.
    const onCap = top.has('on_cap') ? readOnCap(r, top.get('on_cap')) : undefined;
    const deferMaxMs = top.has('defer') ? this.deferMax(top.get('defer')!, onCap) : undefined;
    const quietHours = top.has('quiet_hours') ? readQuietHours(r, top.get('quiet_hours')) : undefined;

    const triggerEntry = r.require(top, 'trigger', root, '', 'what starts the flow, e.g. "trigger: { event: Product Added }"');
    const trigger = triggerEntry ? this.trigger(triggerEntry) : undefined;
    const entry = this.entry(top.get('entry'));
    const exit = this.exitRule(top.get('exit'));
    const requiresEntry = top.get('requires');
    const requires = requiresEntry ? r.condition(requiresEntry, false) : undefined;
    const holdout = top.has('holdout') ? this.holdout(top.get('holdout')!) : undefined;
    const attribution = top.has('attribution') ? this.attribution(top.get('attribution')!, exit) : undefined;
    this.flowId = id;
    this.goals = exit?.onEvents;

    const stepsEntry = r.require(top, 'steps', root, '', 'the list of steps, e.g. "steps: [ { send: { template: welcome } } ]"');
    const steps = stepsEntry ? this.stepList(stepsEntry.value, 'steps', 'steps', stepsEntry.keySpot) : [];
    if (stepsEntry && steps.length === 0 && isSeq(stepsEntry.value)) r.warn(stepsEntry.keySpot, 'steps', 'the flow has no steps, so it does nothing');
    const graph = this.link(steps);

    if (id === undefined || version === undefined || priority === undefined || group === undefined || topic === undefined) return undefined;
    if (!trigger || !entry || !exit || !graph || (requiresEntry && !requires)) return undefined;
    return {
      id,
      version,
      priority,
      group,
      ...(description !== undefined ? { description } : {}),
      topic,
      trigger,
      entry,
      exit,
      ...(requires ? { requires } : {}),
      start: graph.start,
      nodes: graph.nodes,
      defaultTimezone: timezone ?? 'UTC',
      ...(timezone !== undefined ? { timezone } : {}),
      ...(onCap !== undefined ? { onCap } : {}),
      ...(deferMaxMs !== undefined ? { deferMaxMs } : {}),
      ...(quietHours !== undefined ? { quietHours } : {}),
      ...(holdout !== undefined ? { holdout } : {}),
      ...(attribution !== undefined ? { attribution } : {}),
      source: { file, sha256 },
    };
  }

  /** `topic: cart-reminders`: null when absent, undefined after reporting a bad one. */
  private topic(entry: Entry | undefined): string | null | undefined {
    if (!entry) return null;
    const topic = this.r.text(entry, 'topic');
    if (topic === undefined) return undefined;
    if (!FLOW_ID.test(topic)) {
      this.r.error(entry.value, 'topic', `topic "${topic}" must be kebab-case: lowercase letters, digits and single dashes, e.g. cart-reminders (label it for customers in brand.yaml under topics)`);
      return undefined;
    }
    return topic;
  }

  /** `defer: { max: 48h }`: how long a capped send of this flow may wait for room before it is skipped. */
  private deferMax(entry: Entry, onCap: string | undefined): number | undefined {
    const r = this.r;
    const m = r.map(entry.value, entry.path, 'defer', ['max'], entry.keySpot);
    if (!m) return undefined;
    const max = r.duration(r.require(m, 'max', entry.value, entry.path, 'the longest a capped send may wait for room before it is skipped, e.g. "defer: { max: 48h }"'), 'defer.max');
    if (max !== undefined && onCap === 'skip') r.warn(entry.keySpot, entry.path, 'defer has no effect with "on_cap: skip" (a capped send is dropped at once): remove defer, or use "on_cap: defer"');
    return max;
  }

  /** `holdout: 10%`: the share of entrants sent nothing, as a number in (0, 1). */
  private holdout(entry: Entry): number | undefined {
    const r = this.r;
    const raw = isScalar(entry.value) ? entry.value.value : undefined;
    const match = typeof raw === 'string' ? PERCENT.exec(raw.trim()) : null;
    if (!match) {
      // A bare number is refused rather than guessed: 0.1 and 10 both look like "ten percent" to someone.
      const hint = typeof raw === 'number' ? ' (a bare number is ambiguous: write it with "%")' : '';
      r.error(entry.value ?? entry.keySpot, entry.path, `holdout is the percentage of entrants who are sent nothing, e.g. "holdout: 10%", got ${describe(entry.value)}${hint}`);
      return undefined;
    }
    const percent = Number(match[1]);
    if (!(percent > 0 && percent < 100)) {
      r.error(entry.value, entry.path, `holdout must be more than 0% and less than 100%, got ${percent}%: ${percent === 0 ? 'remove the key for no holdout' : 'a flow that holds out everyone sends nothing'}`);
      return undefined;
    }
    return percent / 100;
  }

  /** `attribution: { window: 5d }`: how long after a send, or a click on it, the goal event counts as its conversion. */
  private attribution(entry: Entry, exit: FlowDefinition['exit'] | undefined): AttributionRule | undefined {
    const r = this.r;
    const m = r.map(entry.value, entry.path, 'attribution', ['window'], entry.keySpot);
    if (!m) return undefined;
    const windowEntry = r.require(m, 'window', entry.value ?? entry.keySpot, entry.path, 'how long after a send (or a click on it) the goal event counts as its conversion, e.g. "attribution: { window: 5d }"');
    const windowMs = r.duration(windowEntry, 'attribution.window');
    if (windowMs === undefined) return undefined;
    const { min, max } = ATTRIBUTION_WINDOW_RANGE_MS;
    if (windowMs < min || windowMs > max) {
      r.error(
        windowEntry!.value,
        windowEntry!.path,
        `attribution.window must be between ${durationText(min)} and ${durationText(max)}, got ${durationText(windowMs)}: ` +
          (windowMs < min ? 'most purchases that follow an email come later than that' : 'that long credits the email with what the customer would have done anyway'),
      );
      return undefined;
    }
    if (exit && exit.onEvents.length === 0) {
      r.warn(entry.keySpot, entry.path, 'attribution has no effect: the flow has no goal event to credit; add "exit: { on_event: <event> }" (e.g. Order Completed), or remove attribution');
    }
    return { windowMs };
  }

  private timezone(entry: Entry | undefined): string | undefined {
    const zone = this.r.text(entry, 'timezone');
    if (zone === undefined || !entry) return undefined;
    try {
      // Throws RangeError for a zone the runtime's tz database does not know, which is what the workflow will use.
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      return zone;
    } catch {
      this.r.error(entry.value, entry.path, `unknown time zone "${zone}": use an IANA name such as America/New_York, Europe/Paris or UTC`);
      return undefined;
    }
  }

  // --- trigger, entry, exit ------------------------------------------------------------------------------------

  /** A segment id that must name a segment file, when the caller said which exist. */
  private segmentId(entry: Entry, path: string): string | undefined {
    const id = this.r.text(entry, path);
    const known = this.options.segmentIds;
    if (id !== undefined && known && !known.has(id)) {
      this.r.error(entry.value, entry.path, `no segment "${id}": create segments/${id}.yaml or use one of ${[...known].sort().join(', ') || '(none defined)'}`);
      return undefined;
    }
    return id;
  }

  private trigger(entry: Entry): Trigger | undefined {
    const r = this.r;
    const m = r.map(entry.value, 'trigger', 'trigger', ['event', 'where', 'count', 'inactivity', 'segment'], entry.keySpot);
    if (!m) return undefined;
    const segment = m.get('segment');
    if (segment) {
      for (const other of ['event', 'where', 'count', 'inactivity']) {
        const e = m.get(other);
        if (e) r.error(e.keySpot, e.path, `a segment trigger stands alone: remove "${other}" or drop "segment"`);
      }
      const segmentId = this.segmentId(segment, 'trigger.segment');
      if (segmentId === undefined || m.size > 1) return undefined;
      return { kind: 'event', ...segmentEntered(segmentId) };
    }
    const inactivity = m.get('inactivity');
    if (inactivity) {
      for (const other of ['event', 'where', 'count']) {
        const e = m.get(other);
        if (e) r.error(e.keySpot, e.path, `an inactivity trigger stands alone: remove "${other}" or drop "inactivity"`);
      }
      const im = r.map(inactivity.value, inactivity.path, 'trigger.inactivity', ['event', 'for'], inactivity.keySpot);
      if (!im) return undefined;
      const event = r.text(r.require(im, 'event', inactivity.value, inactivity.path, 'the event whose absence fires the trigger, e.g. Order Completed'), 'event');
      const forMs = r.duration(r.require(im, 'for', inactivity.value, inactivity.path, 'how long without the event, e.g. "for: 60d"'), 'for');
      if (event === undefined || forMs === undefined || m.size > 1) return undefined;
      return { kind: 'inactivity', event, forMs };
    }
    if (!m.has('event')) {
      r.error(entry.value ?? entry.keySpot, 'trigger', 'trigger needs "event: <event name>" (optionally with where/count) or "inactivity: { event, for }"');
      return undefined;
    }
    const event = r.text(m.get('event'), 'trigger.event');
    const where = m.has('where') ? r.condition(m.get('where'), true) : undefined;
    const countEntry = m.get('count');
    if (!countEntry) {
      if (event === undefined || (m.has('where') && !where)) return undefined;
      return { kind: 'event', event, ...(where ? { where } : {}) };
    }
    const cm = r.map(countEntry.value, countEntry.path, 'trigger.count', ['at_least', 'within', 'same'], countEntry.keySpot);
    if (!cm) return undefined;
    const atLeast = r.integer(r.require(cm, 'at_least', countEntry.value, countEntry.path, 'how many matching events, e.g. "at_least: 3"'), 'at_least', 1);
    const withinMs = r.duration(r.require(cm, 'within', countEntry.value, countEntry.path, 'the time window, e.g. "within: 7d"'), 'within');
    let sameProperty: string | undefined;
    const same = cm.get('same');
    if (same) {
      sameProperty = r.text(same, 'same');
      if (sameProperty !== undefined && (!PROPERTY_PATH.test(sameProperty) || sameProperty.startsWith('event.'))) {
        r.error(same.value, same.path, `"same" is a path inside the event such as properties.category (without "event."), got "${sameProperty}"`);
        sameProperty = undefined;
      }
    }
    if (atLeast === 1) r.warn(cm.get('at_least')?.value, `${countEntry.path}.at_least`, 'at_least: 1 is the same as a plain event trigger; remove "count"');
    if (event === undefined || atLeast === undefined || withinMs === undefined || (m.has('where') && !where)) return undefined;
    if (same && sameProperty === undefined) return undefined;
    return {
      kind: 'event_count',
      event,
      ...(where ? { where } : {}),
      atLeast,
      withinMs,
      ...(sameProperty !== undefined ? { sameProperty } : {}),
    };
  }

  private entry(entry: Entry | undefined): FlowDefinition['entry'] | undefined {
    const r = this.r;
    const fallback: FlowDefinition['entry'] = { reentry: { kind: 'always' }, onConflict: 'suppress' };
    if (!entry) return fallback;
    const m = r.map(entry.value, 'entry', 'entry', ['when', 'reentry', 'on_conflict'], entry.keySpot);
    if (!m) return undefined;
    let ok = true;
    const whenEntry = m.get('when');
    const when = whenEntry ? r.condition(whenEntry, false) : undefined;
    if (whenEntry && !when) ok = false;

    let reentry: ReentryRule = { kind: 'always' };
    const re = m.get('reentry');
    if (re) {
      const v = re.value;
      if (isScalar(v) && (v.value === 'always' || v.value === 'once')) reentry = { kind: v.value };
      else if (isMap(v)) {
        const rm = r.map(v, re.path, 'entry.reentry', ['cooldown']);
        const ms = rm ? r.duration(r.require(rm, 'cooldown', v, re.path, 'how long before a customer may enter again, e.g. "cooldown: 7d"'), 'cooldown') : undefined;
        if (ms === undefined) ok = false;
        else reentry = { kind: 'cooldown', ms };
      } else {
        r.error(v ?? re.keySpot, re.path, `reentry must be "always", "once" or { cooldown: <duration> }, got ${describe(v)}`);
        ok = false;
      }
    }

    let onConflict: ConflictPolicy = 'suppress';
    const oc = m.get('on_conflict');
    if (oc) {
      const v = oc.value;
      if (isScalar(v) && (v.value === 'suppress' || v.value === 'queue')) onConflict = v.value;
      else {
        r.error(v ?? oc.keySpot, oc.path, `on_conflict must be "suppress" or "queue", got ${describe(v)}`);
        ok = false;
      }
    }
    return ok ? { ...(when ? { when } : {}), reentry, onConflict } : undefined;
  }

  private exitRule(entry: Entry | undefined): FlowDefinition['exit'] | undefined {
    const r = this.r;
    if (!entry) return { onEvents: [] };
    const m = r.map(entry.value, 'exit', 'exit', ['on_event'], entry.keySpot);
    if (!m) return undefined;
    const on = m.get('on_event');
    if (!on) return { onEvents: [] };
    const items: Array<{ node: YamlNode | null; path: string }> = isSeq(on.value)
      ? on.value.items.map((item, i) => ({ node: r.resolve(item), path: `${on.path}[${i}]` }))
      : [{ node: on.value, path: on.path }];
    const onEvents: EventMatcher[] = [];
    let ok = true;
    for (const item of items) {
      const matcher = this.eventMatcher(item.node, item.path, on.keySpot);
      if (matcher) onEvents.push(matcher);
      else ok = false;
    }
    return ok ? { onEvents } : undefined;
  }

  /** `Event Name` or `{ event: Event Name, where: {...} }`. */
  private eventMatcher(node: YamlNode | null, path: string, fallback: Spot): EventMatcher | undefined {
    const r = this.r;
    if (isScalar(node) && typeof node.value === 'string' && node.value.trim() !== '') return { event: node.value };
    if (!isMap(node)) {
      r.error(node ?? fallback, path, `expected an event name or { event: <name>, where: <condition> }, got ${describe(node)}`);
      return undefined;
    }
    const m = r.map(node, path, 'an event matcher', ['event', 'where']);
    if (!m) return undefined;
    const event = r.text(r.require(m, 'event', node, path, 'the event name'), 'event');
    const where = m.has('where') ? r.condition(m.get('where'), true) : undefined;
    if (event === undefined || (m.has('where') && !where)) return undefined;
    return { event, ...(where ? { where } : {}) };
  }

  // --- steps -----------------------------------------------------------------------------------------------------

  private stepList(node: YamlNode | null, docPath: string, idPrefix: string, fallback: Spot): ParsedStep[] {
    const r = this.r;
    if (r.isEmpty(node)) return [];
    if (!isSeq(node)) {
      r.error(node ?? fallback, docPath, `${docPath} must be a list of steps ("- wait: 1h"), got ${describe(node)}`);
      return [];
    }
    return node.items.map((item, i) => this.step(r.resolve(item), `${docPath}[${i}]`, `${idPrefix}[${i}]`));
  }

  private step(node: YamlNode | null, docPath: string, nodeId: NodeId): ParsedStep {
    const r = this.r;
    const step: ParsedStep = { nodeId, docPath, spot: node, line: r.position(node)?.line, body: { shape: 'invalid' } };
    if (!isMap(node)) {
      const hint = isScalar(node) && typeof node.value === 'string' && /^\w+\s/.test(node.value) ? ` (write "${node.value.replace(/\s+/, ': ')}")` : '';
      r.error(node, docPath, `a step is a map with one kind, e.g. "wait: 1h" or "send: { template: welcome }", got ${describe(node)}${hint}`);
      return step;
    }
    const kinds: Entry[] = [];
    let unknown = false;
    for (const pair of node.items) {
      const keyNode = r.resolve(pair.key);
      if (!isScalar(keyNode)) {
        r.error(keyNode ?? node, docPath, 'step keys must be plain names');
        unknown = true;
        continue;
      }
      const key = String(keyNode.value);
      const entry: Entry = { key, keySpot: keyNode, value: r.resolve(pair.value), path: `${docPath}.${key}` };
      if (key === 'id') this.label(step, entry);
      else if ((STEP_KINDS as readonly string[]).includes(key)) kinds.push(entry);
      else {
        unknown = true;
        r.error(keyNode, entry.path, `unknown step kind "${key}"${suggest(key, STEP_KINDS)}; use one of: ${STEP_KINDS.join(', ')} (plus an optional "id:" label)`);
      }
    }
    const [kind, extra] = kinds;
    if (extra && kind) {
      r.error(extra.keySpot, extra.path, `a step has exactly one kind, found "${kind.key}" and "${extra.key}": put them in separate list items`);
      return step;
    }
    if (!kind) {
      if (!unknown) r.error(node, docPath, `the step has no kind; add one of: ${STEP_KINDS.join(', ')}`);
      return step;
    }
    step.kind = kind.key as StepKind;
    step.body = this.stepBody(kind as Entry & { key: StepKind }, step);
    return step;
  }

  private label(step: ParsedStep, entry: Entry): void {
    const r = this.r;
    const label = r.text(entry, 'id');
    if (label === undefined) return;
    if (!LABEL.test(label)) {
      r.error(entry.value, entry.path, `step id "${label}" must start with a letter and use only letters, digits, "-" and "_"`);
      return;
    }
    const first = this.labels.get(label);
    if (first) {
      r.error(entry.value, entry.path, `duplicate step id "${label}": already used at line ${first.line ?? '?'} (${first.docPath}); ids must be unique in a flow`);
      return;
    }
    step.label = label;
    this.labels.set(label, step);
  }

  private stepBody(kind: Entry & { key: StepKind }, step: ParsedStep): StepBody {
    const nodeId = step.nodeId;
    switch (kind.key) {
      case 'wait':
        return this.waitStep(kind);
      case 'send':
        return this.sendStep(kind);
      case 'wait_for':
        return this.waitForStep(kind, nodeId);
      case 'split':
        return this.splitStep(kind, nodeId);
      case 'ab_split':
        return this.abSplitStep(kind, step);
      case 'update_profile':
        return this.updateProfileStep(kind);
      case 'exit':
        return this.exitStep(kind);
      case 'goto': {
        const target = this.r.text(kind, 'goto');
        if (target === undefined) return { shape: 'goto', target: undefined, targetSpot: kind.value };
        return { shape: 'goto', target, targetSpot: kind.value };
      }
    }
  }

  private waitStep(kind: Entry): StepBody {
    const r = this.r;
    if (isMap(kind.value)) {
      const m = r.map(kind.value, kind.path, 'wait', ['until']);
      const until = m ? r.text(r.require(m, 'until', kind.value, kind.path, 'a time of day, e.g. "wait: { until: \\"09:00\\" }"'), 'until') : undefined;
      let hour = 0;
      let minute = 0;
      if (until !== undefined) {
        const match = TIME_OF_DAY.exec(until.trim());
        if (match) {
          hour = Number(match[1]);
          minute = Number(match[2]);
        } else {
          r.error(m?.get('until')?.value, `${kind.path}.until`, `"${until}" is not a time of day: write HH:MM on a 24-hour clock, e.g. "09:00" or "18:30"`);
        }
      }
      return { shape: 'linear', waits: true, build: (next) => ({ kind: 'wait_until', hour, minute, next }) };
    }
    const ms = r.duration(kind, 'wait') ?? 0;
    return { shape: 'linear', waits: true, build: (next) => ({ kind: 'wait', ms, next }) };
  }

  private sendStep(kind: Entry): StepBody {
    const r = this.r;
    const m = r.map(kind.value, kind.path, 'send', ['template', 'data', 'at', 'within'], kind.keySpot);
    let template = '';
    let data: Record<string, unknown> = {};
    let timing: { at: 'best_time'; withinMs: number } | undefined;
    if (m) {
      timing = this.sendTiming(m);
      const entry = r.require(m, 'template', kind.value, kind.path, 'the template name, e.g. "send: { template: cart-reminder }"');
      const name = r.text(entry, 'template');
      if (entry && name !== undefined) {
        if (!TEMPLATE_NAME.test(name)) {
          r.error(entry.value, entry.path, `template name "${name}" may use letters, digits, "-", "_" and "/" only (no extension, no "..")`);
        } else if (!this.options.templateExists(name)) {
          r.error(entry.value, entry.path, `template "${name}" does not exist: create templates/${name}.mjml or fix the name`);
        }
        template = name;
      }
      const dataEntry = m.get('data');
      if (dataEntry) {
        if (isMap(dataEntry.value)) data = r.js(dataEntry.value) as Record<string, unknown>;
        else r.error(dataEntry.value ?? dataEntry.keySpot, dataEntry.path, `data must be a map of template variables, got ${describe(dataEntry.value)}`);
      }
    }
    return { shape: 'linear', waits: false, build: (next) => ({ kind: 'send', template, data, next, ...(timing ?? {}) }) };
  }

  /** `at: best_time` with an optional `within: 24h`; undefined for a plain send (or after reporting a problem). */
  private sendTiming(m: Map<string, Entry>): { at: 'best_time'; withinMs: number } | undefined {
    const r = this.r;
    const atEntry = m.get('at');
    const withinEntry = m.get('within');
    if (withinEntry && !atEntry) {
      r.error(withinEntry.keySpot, withinEntry.path, 'within only applies with "at: best_time" (how far ahead to look for the customer\'s best hour): add "at: best_time", or remove within');
    }
    if (!atEntry) return undefined;
    const at = r.text(atEntry, 'at');
    if (at !== undefined && at !== 'best_time') {
      r.error(atEntry.value, atEntry.path, `at must be best_time (the hour this customer opens or clicks most), got "${at}"; to send at a fixed local time, put "wait: { until: \"09:00\" }" before the send`);
    }
    const withinMs = withinEntry ? r.duration(withinEntry, 'within') : DEFAULT_BEST_TIME_WITHIN_MS;
    if (at !== 'best_time' || withinMs === undefined) return undefined;
    return { at: 'best_time', withinMs };
  }

  private waitForStep(kind: Entry, nodeId: NodeId): StepBody {
    const r = this.r;
    const m = r.map(kind.value, kind.path, 'wait_for', ['event', 'where', 'segment', 'timeout', 'on_event', 'on_timeout'], kind.keySpot);
    const timeoutMs = m ? r.duration(r.require(m, 'timeout', kind.value, kind.path, 'how long to wait, e.g. "timeout: 2d"'), 'timeout') : undefined;
    let match: EventMatcher;
    if (m?.has('segment')) {
      // Waits for the customer to enter the segment (its Segment Entered event).
      for (const other of ['event', 'where']) if (m.has(other)) r.error(m.get(other)!.keySpot, m.get(other)!.path, `wait_for takes an event or a segment, not both: remove "${other}" or "segment"`);
      match = segmentEntered(this.segmentId(m.get('segment')!, `${kind.path}.segment`) ?? '');
    } else {
      const event = m ? r.text(r.require(m, 'event', kind.value, kind.path, 'the event to wait for, e.g. Order Completed (or segment: <id> to wait for an entry)'), 'event') : undefined;
      const where = m?.has('where') ? r.condition(m.get('where'), true) : undefined;
      match = { event: event ?? '', ...(where ? { where } : {}) };
    }
    return {
      shape: 'branch',
      waits: true,
      branches: [this.branch('on_event', m?.get('on_event'), nodeId), this.branch('on_timeout', m?.get('on_timeout'), nodeId)],
      build: ([onEvent, onTimeout]) => ({ kind: 'wait_for', match, timeoutMs: timeoutMs ?? 0, onEvent: onEvent ?? null, onTimeout: onTimeout ?? null }),
    };
  }

  /** A named branch of a split or wait_for: its step list, or none when the key is absent. */
  private branch(name: 'then' | 'else' | 'on_event' | 'on_timeout', entry: Entry | undefined, nodeId: NodeId): Branch {
    return { steps: entry ? this.stepList(entry.value, entry.path, `${nodeId}.${name}`, entry.keySpot) : [] };
  }

  private splitStep(kind: Entry, nodeId: NodeId): StepBody {
    const r = this.r;
    const m = r.map(kind.value, kind.path, 'split', ['when', 'then', 'else'], kind.keySpot);
    const when = m ? r.condition(r.require(m, 'when', kind.value, kind.path, 'the condition, e.g. "when: { profile.orders_count: { gte: 1 } }"'), false) : undefined;
    return {
      shape: 'branch',
      waits: false,
      branches: [this.branch('then', m?.get('then'), nodeId), this.branch('else', m?.get('else'), nodeId)],
      build: ([then, otherwise]) => ({ kind: 'split', when: when ?? {}, then: then ?? null, else: otherwise ?? null }),
    };
  }

  // --- experiments -----------------------------------------------------------------------------------------------

  /** `ab_split: { experiment, variants: [ { name, weight, steps } ], winner }`: each variant's steps run on after the split. */
  private abSplitStep(kind: Entry, step: ParsedStep): StepBody {
    const r = this.r;
    const m = r.map(kind.value, kind.path, 'ab_split', ['experiment', 'variants', 'winner'], kind.keySpot);
    if (!m) return { shape: 'invalid' };
    const experiment = this.experimentId(m.get('experiment'), kind, step);
    const variantsEntry = r.require(
      m,
      'variants',
      kind.value,
      kind.path,
      'two or more variants, each { name, weight, steps }, e.g. "variants: [ { name: control, weight: 50, steps: [...] }, { name: discount, weight: 50, steps: [...] } ]"',
    );
    const variants = variantsEntry ? this.variants(variantsEntry, step.nodeId) : [];
    const winnerEntry = m.get('winner');
    const winner = winnerEntry ? this.winnerRule(winnerEntry, variants) : null;
    return {
      shape: 'branch',
      waits: false,
      branches: variants.map((v) => ({ steps: v.steps })),
      build: (firsts) => ({
        kind: 'ab_split',
        experiment: experiment ?? '',
        variants: variants.map((v, i) => ({ name: v.name, weight: v.weight, next: firsts[i] ?? null })),
        winner: winner ?? null,
      }),
    };
  }

  /**
   * The experiment id, which fixes who gets which variant: as written, else `<flow id>/<step label>`, else
   * `<flow id>/<node id>` (which moves when steps are inserted before it, starting the experiment afresh).
   */
  private experimentId(entry: Entry | undefined, kind: Entry, step: ParsedStep): string | undefined {
    const r = this.r;
    let id: string;
    if (entry) {
      const written = r.text(entry, 'experiment');
      if (written === undefined) return undefined;
      if (!EXPERIMENT_ID.test(written) || written.length > MAX_EXPERIMENT_ID) {
        r.error(
          entry.value,
          entry.path,
          `experiment "${written}" must be at most ${MAX_EXPERIMENT_ID} lowercase letters, digits, "-" and "_", in parts joined by "/", e.g. cart-subject-test or cart/subject-2024`,
        );
        return undefined;
      }
      id = written;
    } else {
      id = `${this.flowId ?? ''}/${step.label ?? step.nodeId}`;
    }
    const spot = entry?.value ?? kind.keySpot;
    const first = this.experiments.get(id);
    if (first) {
      r.error(
        spot,
        entry?.path ?? kind.path,
        `duplicate experiment "${id}": the ab_split at line ${first.line ?? '?'} (${first.path}) already uses it, and two splits sharing one would mix their customers and results; give this one its own "experiment:"`,
      );
      return undefined;
    }
    this.experiments.set(id, { ...(step.line !== undefined ? { line: step.line } : {}), path: kind.path });
    return id;
  }

  private variants(entry: Entry, nodeId: NodeId): ParsedVariant[] {
    const r = this.r;
    const list = entry.value;
    if (!isSeq(list)) {
      r.error(list ?? entry.keySpot, entry.path, `variants must be a list of { name, weight, steps }, got ${describe(list)}`);
      return [];
    }
    const out: ParsedVariant[] = [];
    const names = new Map<string, number | undefined>();
    let sum = 0;
    let weightsRead = true;
    list.items.forEach((raw, i) => {
      const item = r.resolve(raw);
      const path = `${entry.path}[${i}]`;
      const vm = r.map(item, path, 'a variant', ['name', 'weight', 'steps'], entry.keySpot);
      if (!vm) {
        weightsRead = false;
        return;
      }
      const line = r.position(item)?.line;
      const name = this.variantName(vm, item, path, line, names);
      const weight = this.variantWeight(vm, item, path);
      if (weight === undefined) weightsRead = false;
      else sum += weight;
      const stepsEntry = vm.get('steps');
      const steps = stepsEntry ? this.stepList(stepsEntry.value, stepsEntry.path, `${nodeId}.variants[${i}].steps`, stepsEntry.keySpot) : [];
      out.push({ name: name ?? '', weight: weight ?? 0, ...(line !== undefined ? { line } : {}), steps });
    });
    if (list.items.length < 2) {
      r.error(
        entry.keySpot,
        entry.path,
        `an ab_split needs at least two variants, found ${list.items.length}: add another (a control with the current steps, or with no steps to measure sending nothing), or replace the ab_split with its steps`,
      );
    } else if (weightsRead && Math.abs(sum - 100) > 1e-9) {
      const shown = Number(sum.toFixed(6));
      r.error(
        entry.keySpot,
        entry.path,
        `variant weights sum to ${shown}, not 100: each weight is the percentage of customers reaching this step who get that variant; ${sum < 100 ? 'raise' : 'lower'} them by ${Number(Math.abs(100 - sum).toFixed(6))} in all so they make 100 (e.g. 50 and 50)`,
      );
    }
    return out;
  }

  private variantName(vm: Map<string, Entry>, item: YamlNode | null, path: string, line: number | undefined, names: Map<string, number | undefined>): string | undefined {
    const r = this.r;
    const entry = r.require(vm, 'name', item, path, 'what reports call the variant, e.g. "name: control"');
    const name = r.text(entry, 'name');
    if (!entry || name === undefined) return undefined;
    if (!VARIANT_NAME.test(name) || name.length > MAX_VARIANT_NAME) {
      r.error(
        entry.value,
        entry.path,
        `variant name "${name}" must be at most ${MAX_VARIANT_NAME} lowercase letters, digits, "-" and "_", starting with a letter or digit (reports and exports use it), e.g. control or discount-10`,
      );
      return undefined;
    }
    if (names.has(name)) {
      r.error(entry.value, entry.path, `duplicate variant name "${name}": already used at line ${names.get(name) ?? '?'}; each variant of an ab_split needs its own name`);
      return undefined;
    }
    const other = this.variantNamesInFlow.get(name);
    if (other && other.split !== path.replace(/\.variants\[\d+\]$/, '')) {
      r.error(
        entry.value,
        entry.path,
        `variant name "${name}" is already the name of a variant (line ${other.line ?? '?'}) of another ab_split: reports count per variant name within a flow, so two splits sharing a name would mix their results; give this one its own, e.g. "${name}-2"`,
      );
      return undefined;
    }
    names.set(name, line);
    this.variantNamesInFlow.set(name, { ...(line !== undefined ? { line } : {}), split: path.replace(/\.variants\[\d+\]$/, '') });
    return name;
  }

  /** `weight: 50` or `weight: 50%`: the variant's percentage of the customers reaching the split. */
  private variantWeight(vm: Map<string, Entry>, item: YamlNode | null, path: string): number | undefined {
    const r = this.r;
    const entry = r.require(vm, 'weight', item, path, 'the variant\'s percentage of customers, e.g. "weight: 50"; the weights of a split add up to 100');
    if (!entry) return undefined;
    const raw = isScalar(entry.value) ? entry.value.value : undefined;
    const percent = typeof raw === 'string' ? PERCENT.exec(raw.trim()) : null;
    const weight = typeof raw === 'number' ? raw : percent ? Number(percent[1]) : undefined;
    if (weight === undefined || !Number.isFinite(weight)) {
      r.error(entry.value ?? entry.keySpot, entry.path, `weight must be a percentage of customers such as 50 or "50%", got ${describe(entry.value)}`);
      return undefined;
    }
    if (weight <= 0) {
      r.error(entry.value, entry.path, `weight must be more than 0, got ${weight}: a variant nobody gets measures nothing; remove it and give its share to the others`);
      return undefined;
    }
    return weight;
  }

  /** `winner: { metric, min_per_variant, confidence, then, max_duration }`, checked against what the flow can measure. */
  private winnerRule(entry: Entry, variants: ParsedVariant[]): WinnerRule | undefined {
    const r = this.r;
    const m = r.map(entry.value, entry.path, 'winner', ['metric', 'min_per_variant', 'confidence', 'then', 'max_duration'], entry.keySpot);
    if (!m) return undefined;
    const metric = this.winnerMetric(r.require(m, 'metric', entry.value, entry.path, 'what the winner is chosen on: conversion (the flow\'s goal, exit.on_event) or click'), variants);
    const minEntry = m.get('min_per_variant');
    const minPerVariant = minEntry ? r.integer(minEntry, 'min_per_variant', 1) : WINNER_DEFAULTS.minPerVariant;
    const confidence = this.confidence(m.get('confidence'));
    const thenEntry = m.get('then');
    let then: WinnerRule['then'] | undefined = WINNER_DEFAULTS.then;
    if (thenEntry) {
      const written = r.text(thenEntry, 'then');
      then = written === 'all_to_winner' ? written : undefined;
      if (written !== undefined && then === undefined) {
        r.error(thenEntry.value, thenEntry.path, `then must be all_to_winner (once a winner is decided, every later entrant gets it), got "${written}"`);
      }
    }
    const durationEntry = m.get('max_duration');
    const maxDurationMs = durationEntry ? r.duration(durationEntry, 'max_duration') : WINNER_DEFAULTS.maxDurationMs;
    if (metric === undefined || minPerVariant === undefined || confidence === undefined || then === undefined || maxDurationMs === undefined) return undefined;
    return { metric, minPerVariant, confidence, then, maxDurationMs };
  }

  private winnerMetric(entry: Entry | undefined, variants: ParsedVariant[]): WinnerMetric | undefined {
    const r = this.r;
    const metric = r.text(entry, 'metric');
    if (!entry || metric === undefined) return undefined;
    if (!(WINNER_METRICS as readonly string[]).includes(metric)) {
      const why = metric === 'open' || metric === 'opens' ? ' (opens are not offered: Apple Mail Privacy Protection and similar proxies open every email, so open rates cannot pick a winner)' : suggest(metric, WINNER_METRICS);
      r.error(entry.value, entry.path, `metric must be conversion (the flow's goal, exit.on_event) or click, got "${metric}"${why}`);
      return undefined;
    }
    const goalless = this.goals !== undefined && this.goals.length === 0;
    if (metric === 'conversion' && goalless) {
      r.error(
        entry.value,
        entry.path,
        'metric: conversion counts the flow\'s goal event, and this flow has none: add "exit: { on_event: Order Completed }" (the event that means the customer converted), or use metric: click',
      );
      return undefined;
    }
    if (metric === 'click') {
      const silent = variants.find((v) => !hasSend(v.steps));
      if (silent) {
        r.error(
          entry.value,
          entry.path,
          `metric: click cannot be measured: variant "${silent.name}" (line ${silent.line ?? '?'}) has no send step, so it has no clicks to compare; ` +
            (goalless ? 'add a goal ("exit: { on_event: Order Completed }") and use metric: conversion, or give the variant a send' : 'use metric: conversion (the flow\'s goal), or give the variant a send'),
        );
        return undefined;
      }
    }
    return metric as WinnerMetric;
  }

  /** `confidence: 0.95`: a probability above 0.5 (a coin toss decides nothing) and below 1 (which would never decide). */
  private confidence(entry: Entry | undefined): number | undefined {
    if (!entry) return WINNER_DEFAULTS.confidence;
    const raw = isScalar(entry.value) ? entry.value.value : undefined;
    if (typeof raw === 'number' && raw > 0.5 && raw < 1) return raw;
    const hint = typeof raw === 'number' && raw > 50 && raw < 100 ? ` (write ${raw / 100})` : typeof raw === 'string' && PERCENT.test(raw.trim()) ? ` (write ${Number(PERCENT.exec(raw.trim())![1]) / 100})` : '';
    this.r.error(entry.value ?? entry.keySpot, entry.path, `confidence must be a number between 0.5 and 1 (exclusive), e.g. 0.95, got ${describe(entry.value)}${hint}`);
    return undefined;
  }

  private updateProfileStep(kind: Entry): StepBody {
    const r = this.r;
    const m = r.map(kind.value, kind.path, 'update_profile', ['set', 'add_tags', 'remove_tags'], kind.keySpot);
    const set: Record<string, unknown> = {};
    const setEntry = m?.get('set');
    if (setEntry) {
      // Keys here are profile field names chosen by the author, so they are checked by rule, not against a list.
      if (!isMap(setEntry.value)) {
        r.error(setEntry.value ?? setEntry.keySpot, setEntry.path, `set must be a map of field: value, got ${describe(setEntry.value)}`);
      } else {
        for (const pair of setEntry.value.items) {
          const keyNode = r.resolve(pair.key);
          const key = isScalar(keyNode) ? String(keyNode.value) : '';
          const path = `${setEntry.path}.${key}`;
          if (!PROPERTY_PATH.test(key) || key.includes('.')) {
            const hint = key.startsWith('profile.') ? `; write "${key.slice('profile.'.length)}" (fields are set on the profile)` : '';
            r.error(keyNode ?? setEntry.value, path, `"${key}" is not a profile field name: use letters, digits and "_"${hint}`);
          } else if (RESERVED_PROFILE_FIELDS[key]) {
            r.error(keyNode, path, `"${key}" cannot be set by a flow: ${RESERVED_PROFILE_FIELDS[key]}`);
          } else {
            set[key] = r.js(r.resolve(pair.value));
          }
        }
      }
    }
    const addTags = r.textList(m?.get('add_tags'), 'add_tags') ?? [];
    const removeTags = r.textList(m?.get('remove_tags'), 'remove_tags') ?? [];
    if (m && !setEntry && !m.has('add_tags') && !m.has('remove_tags')) {
      r.error(kind.value ?? kind.keySpot, kind.path, 'update_profile needs at least one of: set, add_tags, remove_tags');
    }
    return { shape: 'linear', waits: false, build: (next) => ({ kind: 'update_profile', set, addTags, removeTags, next }) };
  }

  private exitStep(kind: Entry): StepBody {
    const r = this.r;
    const v = kind.value;
    let reason = 'exit step';
    if (isScalar(v) && typeof v.value === 'string' && v.value.trim() !== '') reason = v.value;
    else if (isMap(v)) {
      const m = r.map(v, kind.path, 'exit', ['reason']);
      const given = m ? r.text(m.get('reason'), 'reason') : undefined;
      if (given !== undefined) reason = given;
    } else if (!r.isEmpty(v)) {
      r.error(v, kind.path, `exit takes a reason text, {} or nothing, got ${describe(v)}`);
    }
    return { shape: 'exit', build: () => ({ kind: 'exit', reason }) };
  }

  // --- linking and graph checks ------------------------------------------------------------------------------------

  /**
   * Turns the step tree into next pointers. Every step, gotos included, is a vertex of an analysis graph whose
   * edges are "may run next"; gotos are then compiled away by pointing their predecessors at the goto's target.
   */
  private link(top: ParsedStep[]): { start: NodeId | null; nodes: Record<NodeId, FlowNode> } | undefined {
    const r = this.r;
    const vertices = new Map<NodeId, ParsedStep>();
    const successors = new Map<NodeId, Array<NodeId | null>>();
    const parentOf = new Map<NodeId, ParsedStep>();
    const lists: ParsedStep[][] = [];

    const linkList = (list: ParsedStep[], cont: NodeId | null, parent?: ParsedStep): NodeId | null => {
      lists.push(list);
      list.forEach((step, i) => {
        vertices.set(step.nodeId, step);
        if (parent) parentOf.set(step.nodeId, parent);
        const next = list[i + 1]?.nodeId ?? cont;
        const body = step.body;
        switch (body.shape) {
          case 'linear':
          case 'invalid':
            successors.set(step.nodeId, [next]);
            break;
          case 'branch':
            successors.set(step.nodeId, body.branches.map((b) => linkList(b.steps, next, step)));
            break;
          case 'exit':
            successors.set(step.nodeId, []);
            break;
          case 'goto': {
            const target = body.target === undefined ? undefined : this.labels.get(body.target);
            if (body.target !== undefined && !target) {
              const known = [...this.labels.keys()];
              r.error(
                body.targetSpot,
                `${step.docPath}.goto`,
                `goto "${body.target}": no step has "id: ${body.target}"` +
                  (known.length ? `${suggest(body.target, known)}; labels in this flow: ${known.join(', ')}` : '; add "id: <label>" to the step to jump to'),
              );
            }
            successors.set(step.nodeId, [target?.nodeId ?? null]);
            break;
          }
        }
      });
      return list[0]?.nodeId ?? cont;
    };
    const rawStart = linkList(top, null);

    // Reachability from the first step.
    const reachable = new Set<NodeId>();
    const stack = rawStart ? [rawStart] : [];
    while (stack.length) {
      const id = stack.pop()!;
      if (reachable.has(id)) continue;
      reachable.add(id);
      for (const next of successors.get(id) ?? []) if (next) stack.push(next);
    }
    for (const list of lists) {
      list.forEach((step, i) => {
        if (reachable.has(step.nodeId)) return;
        const parent = parentOf.get(step.nodeId);
        const previous = list[i - 1];
        // Report the first step of an unreachable run only; the ones after it (and inside it) follow from it.
        if ((parent && !reachable.has(parent.nodeId)) || (previous && !reachable.has(previous.nodeId))) return;
        const why =
          previous?.body.shape === 'exit'
            ? `it follows "exit" (line ${previous.line ?? '?'})`
            : previous?.body.shape === 'goto'
              ? `it follows "goto" (line ${previous.line ?? '?'})`
              : previous?.body.shape === 'branch'
                ? `every branch of the step before (line ${previous.line ?? '?'}) ends in exit or goto`
                : 'nothing leads to it';
        r.error(step.spot, step.docPath, `unreachable step: ${why}; remove it, or give it "id: <label>" and jump to it with goto`);
      });
    }

    this.reportLoopsWithoutWait(vertices, successors);

    // Compile gotos away: a pointer to a goto becomes a pointer to what the goto (chain) leads to.
    const resolve = (raw: NodeId | null): NodeId | null => {
      const seen = new Set<NodeId>();
      let id = raw;
      while (id !== null && vertices.get(id)?.body.shape === 'goto') {
        if (seen.has(id)) return null; // a cycle of gotos; reported as a loop without wait
        seen.add(id);
        id = successors.get(id)?.[0] ?? null;
      }
      return id;
    };
    const nodes: Record<NodeId, FlowNode> = {};
    for (const step of vertices.values()) {
      const body = step.body;
      const base = { id: step.nodeId, ...(step.line !== undefined ? { line: step.line } : {}) };
      const next = (successors.get(step.nodeId) ?? []).map(resolve);
      if (body.shape === 'linear') nodes[step.nodeId] = { ...base, ...body.build(next[0] ?? null) } as FlowNode;
      else if (body.shape === 'branch') nodes[step.nodeId] = { ...base, ...body.build(next) } as FlowNode;
      else if (body.shape === 'exit') nodes[step.nodeId] = { ...base, ...body.build() } as FlowNode;
    }
    // Keep document order (the vertex map is filled branch-first), which diagrams and stored JSON read better in.
    const ordered: Record<NodeId, FlowNode> = {};
    const visit = (list: ParsedStep[]): void => {
      for (const step of list) {
        const node = nodes[step.nodeId];
        if (node) ordered[step.nodeId] = node;
        if (step.body.shape === 'branch') step.body.branches.forEach((b) => visit(b.steps));
      }
    };
    visit(top);
    return { start: resolve(rawStart), nodes: ordered };
  }

  /** Any cycle through steps that never wait would send (or spin) without pause: Tarjan's SCCs over non-waiting steps. */
  private reportLoopsWithoutWait(vertices: Map<NodeId, ParsedStep>, successors: Map<NodeId, Array<NodeId | null>>): void {
    const waits = (step: ParsedStep): boolean => {
      const b = step.body;
      return b.shape === 'invalid' || ((b.shape === 'linear' || b.shape === 'branch') && b.waits);
    };
    const candidates = [...vertices.values()].filter((s) => !waits(s));
    const inGraph = new Set(candidates.map((s) => s.nodeId));
    const index = new Map<NodeId, number>();
    const low = new Map<NodeId, number>();
    const onStack = new Set<NodeId>();
    const stack: NodeId[] = [];
    let counter = 0;
    const components: NodeId[][] = [];
    const strongConnect = (v: NodeId): void => {
      index.set(v, counter);
      low.set(v, counter);
      counter++;
      stack.push(v);
      onStack.add(v);
      for (const w of successors.get(v) ?? []) {
        if (w === null || !inGraph.has(w)) continue;
        if (!index.has(w)) {
          strongConnect(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, index.get(w)!));
        }
      }
      if (low.get(v) === index.get(v)) {
        const component: NodeId[] = [];
        let w: NodeId;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        components.push(component);
      }
    };
    for (const s of candidates) if (!index.has(s.nodeId)) strongConnect(s.nodeId);

    for (const component of components) {
      const first = component[0]!;
      const isCycle = component.length > 1 || (successors.get(first) ?? []).includes(first);
      if (!isCycle) continue;
      const steps = component.map((id) => vertices.get(id)!).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
      // Every cycle contains a goto (lists only run forward); blame the goto, it is where the fix goes.
      const gotoStep = steps.find((s) => s.body.shape === 'goto') ?? steps[0]!;
      const target = gotoStep.body.shape === 'goto' && gotoStep.body.target !== undefined ? this.labels.get(gotoStep.body.target) : undefined;
      const lines = steps.map((s) => s.line ?? '?').join(', ');
      this.r.error(
        gotoStep.spot,
        gotoStep.docPath,
        `loop without a wait: ${target ? `goto "${target.label}" jumps back to line ${target.line ?? '?'} and ` : ''}` +
          `the steps in the loop (lines ${lines}) never wait, so it would repeat instantly; ` +
          'add a wait, wait: { until } or wait_for step inside the loop',
      );
    }
  }
}

/** Authors write `30d`, not `4w2d`. */
function durationText(ms: number): string {
  return ms % DAY_MS === 0 ? `${ms / DAY_MS}d` : formatDuration(ms);
}

/** Whether a list of steps sends anything itself, in any branch (a goto out of it does not count). */
function hasSend(steps: ParsedStep[]): boolean {
  return steps.some((s) => s.kind === 'send' || (s.body.shape === 'branch' && s.body.branches.some((b) => hasSend(b.steps))));
}
