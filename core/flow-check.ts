// The static flow checker behind `microflows check`: which flows can compete for one customer at the same moment and
// how arbitration settles each pair (a tie is an error), steps no run can reach, loops that never wait, and wait_for
// steps on events nothing emits, and flows the send policy's frequency caps would starve. Pure: compiled flows, segment
// definitions and the policy in, findings and a matrix out.
//
// "Can compete" means both triggers can fire for the same customer at the same moment. It is conservative: a pair is
// reported as overlapping unless the checker can prove the triggers exclusive (different event names, filters that no
// single event meets, segments whose rules contradict each other, an inactivity that the other trigger's event ends).
import type { Condition } from './conditions';
import type { FileProblem } from './errors';
import { BEHAVIOR_WEIGHTS } from './behavior';
import { formatDuration } from './duration';
import { ENGAGEMENT_EVENT_NAMES } from './esp-webhooks';
import type { FlowDefinition, FlowNode, NodeId, Trigger } from './flow-types';
import type { SegmentDefinition } from './segment-definition';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from './segment-membership';
import type { SegmentRule } from './segment-rules';
import { capMatches, capOutcome, evaluateCaps, type CapOutcome, type RecentSend, type SendPolicy } from './send-policy';
import type { TemplateCategory } from './suppression';
import { PREFERENCES_UPDATED } from './topic-consent';

/** Events microflows itself records, or that its docs name as the Segment e-commerce events it reads. */
export const KNOWN_EVENT_NAMES: readonly string[] = [
  SEGMENT_ENTERED,
  SEGMENT_EXITED,
  PREFERENCES_UPDATED,
  ...ENGAGEMENT_EVENT_NAMES,
  ...Object.keys(BEHAVIOR_WEIGHTS),
  'Order Updated',
  'Order Refunded',
  'Order Cancelled',
  'Product Reviewed',
];

/** A compiled flow with where its top-level keys sit in its file (FlowCheck.positions of the compiler). */
export interface CheckedFlow {
  flow: FlowDefinition;
  positions: Record<string, { line: number; column: number }>;
}

export interface CheckInput {
  flows: CheckedFlow[];
  segments: SegmentDefinition[];
  /** Event names sources are declared to send (an --events file; the policy's events: list is added to them). */
  declaredEvents?: readonly string[];
  /** The send policy (flows/policy.yaml); without one there are no caps to check. */
  policy?: SendPolicy;
  /** The category of each template (caps count marketing and transactional email apart); default: marketing. */
  templateCategory?: (template: string) => TemplateCategory;
}

export type Finding = FileProblem & {
  code: 'tie' | 'overlap' | 'unreachable' | 'loop_without_wait' | 'unknown_wait_event' | 'starved_by_cap' | 'deferral_beyond_limit' | 'deferral_beyond_wait';
};

/** One cell of the flow × flow matrix: who wins when both want the customer at once. */
export type PairOutcome =
  | { kind: 'disjoint'; why: string }
  /** Different groups: both run side by side. */
  | { kind: 'both'; why: string }
  | { kind: 'wins'; winner: string; why: string }
  | { kind: 'tie'; why: string };

export interface CheckReport {
  findings: Finding[];
  /** Flow ids, in the order of the input. */
  flowIds: string[];
  /** matrix[a][b] for a ≠ b; symmetric. */
  matrix: Record<string, Record<string, PairOutcome>>;
}

export function checkProject(input: CheckInput): CheckReport {
  const findings: Finding[] = [];
  const segments = new Map(input.segments.map((s) => [s.id, s]));
  const matrix: CheckReport['matrix'] = {};
  const flows = input.flows;
  for (const { flow } of flows) matrix[flow.id] = {};
  for (let i = 0; i < flows.length; i++) {
    for (let j = i + 1; j < flows.length; j++) {
      const a = flows[i]!;
      const b = flows[j]!;
      const outcome = pairOutcome(a.flow, b.flow, segments);
      matrix[a.flow.id]![b.flow.id] = outcome;
      matrix[b.flow.id]![a.flow.id] = outcome;
      if (outcome.kind === 'tie') {
        findings.push(at(b, 'priority', 'error', 'tie', `${b.flow.id} and ${a.flow.id} (${where(a, 'priority')}) can start for the same customer at once (${outcome.why}), and arbitration cannot choose between them; give one of them another priority, or another group`));
      } else if (outcome.kind === 'wins') {
        findings.push(at(b, 'trigger', 'warning', 'overlap', `${b.flow.id} and ${a.flow.id} (${where(a, 'trigger')}) can start for the same customer at once (${outcome.why}); ${outcome.winner} wins in group "${a.flow.group}" and the other is ${loserFate(outcome.winner === a.flow.id ? b.flow : a.flow)}; if that is not the intent, change a priority or a trigger`));
      }
    }
  }
  const known = new Set<string>([...KNOWN_EVENT_NAMES, ...(input.declaredEvents ?? []), ...(input.policy?.events ?? [])]);
  // A trigger's event is one the project expects sources to send (an inactivity trigger's too).
  for (const { flow } of flows) known.add(flow.trigger.event);
  for (const segment of input.segments) for (const name of eventsOfRule(segment.rule)) known.add(name);
  for (const checked of flows) findings.push(...graphFindings(checked.flow), ...waitEventFindings(checked.flow, known));
  if (input.policy) {
    const categoryOf = input.templateCategory ?? (() => 'marketing' as const);
    for (const checked of flows) findings.push(...capFindings(checked.flow, input.policy, categoryOf));
  }
  return { findings: sortFindings(findings), flowIds: flows.map((f) => f.flow.id), matrix };
}

function where(checked: CheckedFlow, key: string): string {
  const pos = checked.positions[key];
  return `${checked.flow.source.file}${pos ? `:${pos.line}` : ''}`;
}

function at(checked: CheckedFlow, key: string, severity: Finding['severity'], code: Finding['code'], message: string): Finding {
  const pos = checked.positions[key];
  return { file: checked.flow.source.file, ...(pos ? { line: pos.line, column: pos.column } : {}), path: key, severity, code, message };
}

function loserFate(loser: FlowDefinition): string {
  return loser.entry.onConflict === 'queue'
    ? 'queued behind it when it arrives second, preempted when it was there first'
    : 'suppressed when it arrives second, preempted when it was there first';
}

function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort((x, y) => x.file.localeCompare(y.file) || (x.line ?? 0) - (y.line ?? 0) || x.message.localeCompare(y.message));
}

// --- pairs ---------------------------------------------------------------------------------------------------------

/** How arbitration settles two flows whose triggers can fire together; disjoint when they provably cannot. */
export function pairOutcome(a: FlowDefinition, b: FlowDefinition, segments: ReadonlyMap<string, SegmentDefinition>): PairOutcome {
  const overlap = triggersOverlap(a.trigger, b.trigger, segments);
  if (!overlap.may) return { kind: 'disjoint', why: overlap.why };
  if (a.group !== b.group) return { kind: 'both', why: `${overlap.why}; groups "${a.group}" and "${b.group}" run side by side` };
  if (a.priority === b.priority) return { kind: 'tie', why: `${overlap.why}; both in group "${a.group}" with priority ${a.priority}` };
  const winner = a.priority > b.priority ? a : b;
  const loser = winner === a ? b : a;
  return { kind: 'wins', winner: winner.id, why: `${overlap.why}; priority ${winner.priority} beats ${loser.priority}` };
}

function segmentOf(trigger: Trigger): string | undefined {
  if (trigger.kind === 'inactivity' || trigger.event !== SEGMENT_ENTERED) return undefined;
  const id = trigger.where?.['event.properties.segment_id'];
  return typeof id === 'string' ? id : undefined;
}

/** Whether two triggers can fire for one customer at the same moment, and why (for the report). */
export function triggersOverlap(a: Trigger, b: Trigger, segments: ReadonlyMap<string, SegmentDefinition>): { may: boolean; why: string } {
  if (a.kind === 'inactivity' && b.kind === 'inactivity') return { may: true, why: `inactivity on ${a.event} and on ${b.event} can both come due` };
  if (a.kind === 'inactivity' || b.kind === 'inactivity') {
    const idle = (a.kind === 'inactivity' ? a : b) as Extract<Trigger, { kind: 'inactivity' }>;
    const other = (a.kind === 'inactivity' ? b : a) as Exclude<Trigger, { kind: 'inactivity' }>;
    if (other.event === idle.event) return { may: false, why: `a ${idle.event} event ends the inactivity on it` };
    const segment = segmentOf(other);
    const rule = segment === undefined ? undefined : segments.get(segment)?.rule;
    if (rule) {
      const facts = factsOf(rule);
      facts.none.push({ event: idle.event, ms: idle.forMs });
      const clash = contradiction(facts);
      if (clash) return { may: false, why: clash };
    }
    return { may: true, why: `inactivity on ${idle.event} can be due when ${describeTrigger(other)} fires` };
  }
  const segA = segmentOf(a);
  const segB = segmentOf(b);
  if (segA !== undefined && segB !== undefined) {
    if (segA === segB) return { may: true, why: `both start on entering segment ${segA}` };
    const ruleA = segments.get(segA)?.rule;
    const ruleB = segments.get(segB)?.rule;
    if (!ruleA || !ruleB) return { may: true, why: `segments ${segA} and ${segB} are not known here, so they may hold together` };
    const facts = mergeFacts(factsOf(ruleA), factsOf(ruleB));
    const clash = contradiction(facts);
    if (clash) return { may: false, why: `segments ${segA} and ${segB} cannot hold together: ${clash}` };
    return { may: true, why: `segments ${segA} and ${segB} can hold together` };
  }
  if (segA !== undefined || segB !== undefined) {
    // A customer enters a segment on one of their events or on the sweep, so an event trigger can fire at that moment,
    // unless the segment wants none of that event lately: the triggering event itself is one.
    const segment = (segA ?? segB)!;
    const other = segA !== undefined ? b : a;
    const rule = segments.get(segment)?.rule;
    if (rule) {
      const facts = factsOf(rule);
      facts.some.push({ event: other.event, ms: 0 });
      const clash = contradiction(facts);
      if (clash) return { may: false, why: `segment ${segment} cannot hold on ${describeTrigger(other)}: ${clash}` };
    }
    return { may: true, why: `entering segment ${segment} can come with ${describeTrigger(other)}` };
  }
  if (a.event !== b.event) return { may: false, why: `different events (${a.event}, ${b.event})` };
  const clash = contradiction(mergeFacts(conditionFacts(a.where), conditionFacts(b.where)));
  if (clash) return { may: false, why: `no ${a.event} event meets both filters: ${clash}` };
  return { may: true, why: `one ${a.event} event can fire both` };
}

function describeTrigger(trigger: Trigger): string {
  if (trigger.kind === 'inactivity') return `inactivity on ${trigger.event}`;
  const segment = segmentOf(trigger);
  return segment !== undefined ? `entering segment ${segment}` : `a ${trigger.event} event`;
}

// --- what must hold: conjunctive facts that can be shown to contradict -------------------------------------------

/** A constraint on one field path, as written: { eq: x } | { in: [...] } | { gte: n } ... or a bare value (eq). */
type Atom = { path: string; operand: unknown };

interface Facts {
  atoms: Atom[];
  /** At least one `event` within `ms` (Infinity: ever). */
  some: Array<{ event: string; ms: number }>;
  /** No `event` at all within `ms` (Infinity: never). */
  none: Array<{ event: string; ms: number }>;
  inSegment: Array<{ segment: string; member: boolean }>;
}

const noFacts = (): Facts => ({ atoms: [], some: [], none: [], inSegment: [] });

function mergeFacts(x: Facts, y: Facts): Facts {
  return { atoms: [...x.atoms, ...y.atoms], some: [...x.some, ...y.some], none: [...x.none, ...y.none], inSegment: [...x.inSegment, ...y.inSegment] };
}

/** The field constraints a condition requires: its top-level keys and `all` parts; `any` and `not` add nothing (safe). */
function conditionFacts(condition: Condition | undefined): Facts {
  const facts = noFacts();
  const walk = (c: unknown): void => {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) return;
    for (const [key, value] of Object.entries(c)) {
      if (key === 'all' && Array.isArray(value)) value.forEach(walk);
      else if (key !== 'any' && key !== 'not') facts.atoms.push({ path: key, operand: value });
    }
  };
  walk(condition);
  return facts;
}

/** What a segment rule requires, as facts; parts that cannot be read as plain requirements (any, since) add nothing. */
function factsOf(rule: SegmentRule): Facts {
  const facts = noFacts();
  const walk = (r: SegmentRule, negated: boolean): void => {
    switch (r.kind) {
      case 'all':
        if (!negated) r.rules.forEach((inner) => walk(inner, false));
        return;
      case 'not':
        walk(r.rule, !negated);
        return;
      case 'in_segment':
        facts.inSegment.push({ segment: r.segment, member: !negated });
        return;
      case 'profile':
      case 'rfm':
        if (!negated) facts.atoms.push(...conditionFacts(r.condition).atoms);
        return;
      case 'last_performed': {
        if (negated) return;
        // The latest one is older than `before`: none since. Newer than `after`: at least one since.
        if (r.before !== undefined && !r.match.where) facts.none.push({ event: r.match.event, ms: r.before });
        if (r.after !== undefined) facts.some.push({ event: r.match.event, ms: r.after });
        return;
      }
      case 'performed': {
        if (r.since !== undefined) return;
        const ms = r.within ?? Infinity;
        const count = r.count;
        const atLeastOne = ('at_least' in count && count.at_least >= 1) || ('exactly' in count && count.exactly >= 1);
        const zero = ('exactly' in count && count.exactly === 0) || ('at_most' in count && count.at_most === 0);
        if (!negated ? atLeastOne : zero) facts.some.push({ event: r.match.event, ms });
        else if ((!negated ? zero : atLeastOne) && !r.match.where) facts.none.push({ event: r.match.event, ms });
        return;
      }
      default:
        return;
    }
  };
  walk(rule, false);
  return facts;
}

/** A reason the facts cannot all hold, or null when the checker cannot prove it. */
function contradiction(facts: Facts): string | null {
  for (const some of facts.some) {
    const none = facts.none.find((n) => n.event === some.event && n.ms >= some.ms);
    if (none) return `one needs a ${some.event} ${span(some.ms)}, the other none ${span(none.ms)}`;
  }
  for (const member of facts.inSegment) {
    if (facts.inSegment.some((o) => o.segment === member.segment && o.member !== member.member)) return `in_segment ${member.segment} and not in it`;
  }
  const byPath = new Map<string, unknown[]>();
  for (const atom of facts.atoms) byPath.set(atom.path, [...(byPath.get(atom.path) ?? []), atom.operand]);
  for (const [path, operands] of byPath) {
    const clash = valueClash(operands);
    if (clash) return `${path} ${clash}`;
  }
  return null;
}

type Scalar = string | number | boolean | null;
const isScalar = (v: unknown): v is Scalar => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/**
 * Whether no single value meets every operand. A field is read as one value: a list-valued property can meet
 * `eq: a` and `eq: b` at once, which this does not model (the filters flows use name single values).
 */
export function valueClash(operands: unknown[]): string | null {
  let allowed: Scalar[] | null = null; // null: any value
  const excluded: Scalar[] = [];
  let low = -Infinity;
  let lowOpen = false;
  let high = Infinity;
  let highOpen = false;
  let exists: boolean | undefined;
  const restrict = (values: Scalar[]) => {
    allowed = allowed === null ? values : allowed.filter((v) => values.includes(v));
  };
  for (const operand of operands) {
    if (isScalar(operand)) {
      restrict([operand]);
      continue;
    }
    if (typeof operand !== 'object' || operand === null || Array.isArray(operand)) return null;
    for (const [op, value] of Object.entries(operand)) {
      if (op === 'eq' && isScalar(value)) restrict([value]);
      else if (op === 'in' && Array.isArray(value) && value.every(isScalar)) restrict(value);
      else if (op === 'ne' && isScalar(value)) excluded.push(value);
      else if (op === 'nin' && Array.isArray(value) && value.every(isScalar)) excluded.push(...value);
      else if (op === 'exists' && typeof value === 'boolean') {
        if (exists !== undefined && exists !== value) return 'must exist and must not';
        exists = value;
      } else if ((op === 'gt' || op === 'gte') && typeof value === 'number') {
        if (value > low || (value === low && op === 'gt')) [low, lowOpen] = [value, op === 'gt'];
      } else if ((op === 'lt' || op === 'lte') && typeof value === 'number') {
        if (value < high || (value === high && op === 'lt')) [high, highOpen] = [value, op === 'lt'];
      }
      // contains, size and anything else: no constraint the checker reasons about.
    }
  }
  const ranged = low !== -Infinity || high !== Infinity;
  if (low > high || (low === high && (lowOpen || highOpen))) return `cannot be both ${lowOpen ? '>' : '≥'} ${low} and ${highOpen ? '<' : '≤'} ${high}`;
  const candidates: Scalar[] | null = allowed;
  if (exists === false && (candidates !== null || ranged)) return 'must not exist, yet must have a value';
  if (candidates !== null) {
    const left = (candidates as Scalar[]).filter((v) => !excluded.includes(v) && (!ranged || (typeof v === 'number' && inRange(v, low, lowOpen, high, highOpen))));
    if (left.length === 0) return (candidates as Scalar[]).length === 0 ? 'must equal values that differ' : `no allowed value (${(candidates as Scalar[]).map((v) => JSON.stringify(v)).join(', ')}) meets every filter`;
  }
  return null;
}

function inRange(v: number, low: number, lowOpen: boolean, high: number, highOpen: boolean): boolean {
  return (lowOpen ? v > low : v >= low) && (highOpen ? v < high : v <= high);
}

function span(ms: number): string {
  if (ms === Infinity) return 'ever';
  if (ms === 0) return 'at that moment';
  const days = ms / 86_400_000;
  return Number.isInteger(days) ? `within ${days}d` : `within ${Math.round(ms / 3_600_000)}h`;
}

function eventsOfRule(rule: SegmentRule): string[] {
  switch (rule.kind) {
    case 'performed':
    case 'last_performed':
      return [rule.match.event];
    case 'all':
    case 'any':
      return rule.rules.flatMap(eventsOfRule);
    case 'not':
      return eventsOfRule(rule.rule);
    default:
      return [];
  }
}

// --- one flow's graph ----------------------------------------------------------------------------------------------

function successorsOf(node: FlowNode): Array<NodeId | null> {
  switch (node.kind) {
    case 'wait_for':
      return [node.onEvent, node.onTimeout];
    case 'split':
      return [node.then, node.else];
    case 'ab_split':
      return node.variants.map((v) => v.next);
    case 'exit':
      return [];
    default:
      return [node.next];
  }
}

const WAITING_KINDS = new Set<FlowNode['kind']>(['wait', 'wait_until', 'wait_for']);

function nodeFinding(flow: FlowDefinition, node: FlowNode, code: Finding['code'], message: string, severity: Finding['severity'] = 'error'): Finding {
  return { file: flow.source.file, ...(node.line !== undefined ? { line: node.line } : {}), path: node.id, severity, code, message };
}

/**
 * Unreachable nodes and cycles without a wait in the compiled graph. The compiler refuses files with either (a send
 * after an exit is an unreachable step there), so these guard definitions that did not come through it, such as
 * versions stored before it checked.
 */
export function graphFindings(flow: FlowDefinition): Finding[] {
  const findings: Finding[] = [];
  const reachable = new Set<NodeId>();
  const stack = flow.start ? [flow.start] : [];
  while (stack.length) {
    const id = stack.pop()!;
    if (reachable.has(id) || !flow.nodes[id]) continue;
    reachable.add(id);
    for (const next of successorsOf(flow.nodes[id]!)) if (next) stack.push(next);
  }
  for (const node of Object.values(flow.nodes)) {
    if (!reachable.has(node.id)) findings.push(nodeFinding(flow, node, 'unreachable', `unreachable ${node.kind} step: no path from the first step leads to it; remove it or link to it`));
  }
  // A cycle among non-waiting nodes: depth-first search with colours.
  const state = new Map<NodeId, 'open' | 'done'>();
  const reported = new Set<NodeId>();
  const visit = (id: NodeId, path: NodeId[]): void => {
    state.set(id, 'open');
    for (const next of successorsOf(flow.nodes[id]!)) {
      if (!next || !flow.nodes[next] || WAITING_KINDS.has(flow.nodes[next]!.kind)) continue;
      if (state.get(next) === 'open' && !reported.has(next)) {
        reported.add(next);
        const loop = [...path.slice(path.indexOf(next)), id].map((n) => flow.nodes[n]!.line ?? '?');
        findings.push(nodeFinding(flow, flow.nodes[next]!, 'loop_without_wait', `loop without a wait through lines ${loop.join(', ')}: it would repeat instantly; add a wait, wait: { until } or wait_for step inside the loop`));
      } else if (!state.has(next)) visit(next, [...path, next]);
    }
    state.set(id, 'done');
  };
  for (const node of Object.values(flow.nodes)) if (!WAITING_KINDS.has(node.kind) && !state.has(node.id)) visit(node.id, [node.id]);
  return findings;
}

/** wait_for steps on an event no trigger, segment, known system event or declared source produces: likely a typo. */
function waitEventFindings(flow: FlowDefinition, known: ReadonlySet<string>): Finding[] {
  const findings: Finding[] = [];
  for (const node of Object.values(flow.nodes)) {
    if (node.kind !== 'wait_for' || known.has(node.match.event)) continue;
    findings.push(
      nodeFinding(
        flow,
        node,
        'unknown_wait_event',
        `wait_for "${node.match.event}": no flow trigger, segment, microflows system event or declared source sends this event, so the wait always times out; fix the name, or declare the event under events: in flows/policy.yaml (or with --events <file>)`,
        'warning',
      ),
    );
  }
  return findings;
}

// --- frequency caps ------------------------------------------------------------------------------------------------

/** The most paths through one flow that the cap check follows; a flow with more is checked on the first ones. */
const MAX_CAP_PATHS = 512;
const DAY_MS = 86_400_000;

/** A step on a path through the flow, with how long the step before it lets pass at least and at most. */
interface Hop {
  node: FlowNode;
  minMs: number;
  maxMs: number;
}

/** Every path from the first step, each step at most twice (so a loop is followed once round), up to MAX_CAP_PATHS. */
function flowPaths(flow: FlowDefinition): Hop[][] {
  const paths: Hop[][] = [];
  const walk = (id: NodeId | null, minMs: number, maxMs: number, path: Hop[], visits: Map<NodeId, number>): void => {
    if (paths.length >= MAX_CAP_PATHS) return;
    const node = id === null ? undefined : flow.nodes[id];
    if (!node || (visits.get(node.id) ?? 0) >= 2) {
      paths.push(path);
      return;
    }
    const here = [...path, { node, minMs, maxMs }];
    const seen = new Map(visits).set(node.id, (visits.get(node.id) ?? 0) + 1);
    switch (node.kind) {
      case 'wait':
        return walk(node.next, node.ms, node.ms, here, seen);
      case 'wait_until':
        // The next HH:MM local: any moment up to a day away.
        return walk(node.next, 0, DAY_MS, here, seen);
      case 'wait_for':
        walk(node.onEvent, 0, node.timeoutMs, here, seen);
        return walk(node.onTimeout, node.timeoutMs, node.timeoutMs, here, seen);
      case 'split':
        walk(node.then, 0, 0, here, seen);
        return walk(node.else, 0, 0, here, seen);
      case 'ab_split':
        // Each variant is a path of its own: a customer gets one, and the caps must hold on every one.
        for (const variant of node.variants) walk(variant.next, 0, 0, here, seen);
        return;
      case 'exit':
        paths.push(here);
        return;
      default:
        return walk(node.next, 0, 0, here, seen);
    }
  };
  walk(flow.start, 0, 0, [], new Map());
  return paths;
}

type SendNode = Extract<FlowNode, { kind: 'send' }>;
interface SimulatedSend {
  node: SendNode;
  outcome: CapOutcome;
  dueAt: number;
  /** The flow's own sends that count against the binding cap when this one is due. */
  crowdedBy: SendNode[];
}

/**
 * Runs one path through the cap decision with the flow alone (no other flow mails the customer), every wait taking
 * its shortest or its longest time. A deferred send holds the run until it goes, as the send step does.
 */
function simulatePath(flow: FlowDefinition, path: Hop[], policy: SendPolicy, categoryOf: (template: string) => TemplateCategory, longest: boolean): SimulatedSend[] {
  const out: SimulatedSend[] = [];
  const sent: Array<RecentSend & { node: SendNode }> = [];
  let now = 0;
  for (const hop of path) {
    now += longest ? hop.maxMs : hop.minMs;
    if (hop.node.kind !== 'send') continue;
    const send = { flowId: flow.id, group: flow.group, topic: flow.topic, category: categoryOf(hop.node.template), priority: flow.priority };
    const decision = evaluateCaps(policy, send, sent, now);
    const outcome = capOutcome(decision, { onCap: flow.onCap ?? null, deferMaxMs: flow.deferMaxMs ?? null, dueAt: now }, policy);
    const cap = decision.allowed ? undefined : policy.caps.find((c) => c.name === decision.cap);
    const crowdedBy = cap ? sent.filter((s) => capMatches(cap, s) && s.at > now - cap.perMs).map((s) => s.node) : [];
    out.push({ node: hop.node, outcome, dueAt: now, crowdedBy });
    if (outcome.action === 'defer') now = outcome.until;
    if (outcome.action !== 'skip') sent.push({ ...send, at: now, node: hop.node });
  }
  return out;
}

/**
 * Sends of one flow that its own earlier sends push into a cap: always skipped (an error: the flow can never deliver
 * them as written), possibly deferred past defer.max (then skipped), or deferred longer than the wait after them (the
 * timing the file spells out no longer holds). "Always" means even when every wait runs longest.
 */
export function capFindings(flow: FlowDefinition, policy: SendPolicy, categoryOf: (template: string) => TemplateCategory): Finding[] {
  if (policy.caps.length === 0) return [];
  const found = new Map<string, Finding>();
  const add = (node: SendNode, code: Finding['code'], severity: Finding['severity'], message: string) => {
    const key = `${node.id} ${code}`;
    if (!found.has(key)) found.set(key, nodeFinding(flow, node, code, message, severity));
  };
  const capText = (name: string) => {
    const cap = policy.caps.find((c) => c.name === name);
    return cap ? `cap "${name}" (${cap.max} per ${formatDuration(cap.perMs)})` : `cap "${name}"`;
  };
  const lines = (nodes: SendNode[]) => {
    const list = [...new Set(nodes.map((n) => n.line ?? '?'))];
    return `send${list.length === 1 ? '' : 's'} at line${list.length === 1 ? '' : 's'} ${list.join(', ')}`;
  };
  for (const path of flowPaths(flow)) {
    for (const slow of simulatePath(flow, path, policy, categoryOf, true)) {
      if (slow.outcome.action !== 'skip') continue;
      const how =
        slow.outcome.reason === 'on_cap_skip'
          ? 'with on_cap: skip it is dropped'
          : `the wait for room is longer than defer.max ${formatDuration(flow.deferMaxMs ?? policy.deferMaxMs)}, so it is dropped`;
      add(
        slow.node,
        'starved_by_cap',
        'error',
        `send ${slow.node.template} is always skipped: the flow's own ${lines(slow.crowdedBy)} fills ${capText(slow.outcome.cap)} even when every wait runs longest, and ${how}; space the sends further apart than the cap's window, raise the cap, or move the flow to a group the cap does not count`,
      );
    }
    const fast = simulatePath(flow, path, policy, categoryOf, false);
    for (const sim of fast) {
      const { outcome, node } = sim;
      if (outcome.action === 'skip' && outcome.reason === 'defer_limit') {
        add(
          node,
          'deferral_beyond_limit',
          'warning',
          `send ${node.template} can be deferred beyond defer.max ${formatDuration(flow.deferMaxMs ?? policy.deferMaxMs)} by ${capText(outcome.cap)} (the flow's own ${lines(sim.crowdedBy)} fills it when the waits run short), and is then skipped; space the sends further apart or raise defer.max`,
        );
      }
      if (outcome.action !== 'defer') continue;
      const deferral = outcome.until - sim.dueAt;
      const next = node.next === null ? undefined : flow.nodes[node.next];
      const wait = next?.kind === 'wait' ? next.ms : next?.kind === 'wait_for' ? next.timeoutMs : undefined;
      if (next && wait !== undefined && deferral > wait) {
        add(
          node,
          'deferral_beyond_wait',
          'warning',
          `send ${node.template} can be deferred ${formatDuration(deferral)} by ${capText(outcome.cap)} (the flow's own ${lines(sim.crowdedBy)} fills it), longer than the ${formatDuration(wait)} ${next.kind} after it at line ${next.line ?? '?'}: the steps after it move by the deferral, so the timing the file spells out no longer holds; space the sends at least the cap's window apart, or use on_cap: skip`,
        );
      }
    }
  }
  // An always-skipped send need not also be reported as sometimes deferred too long.
  return [...found.values()].filter((f) => f.code !== 'deferral_beyond_limit' || !found.has(`${f.path} starved_by_cap`));
}
