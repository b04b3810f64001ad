// Draws a compiled flow as a Mermaid flowchart, so authors can see branches, loops and dead ends at a glance.
import { SEGMENT_ENTERED } from './segment-membership';
import { formatDuration } from './duration';
import type { Condition } from './conditions';
import type { EventMatcher, FlowDefinition, FlowNode, NodeId, Trigger } from './flow-types';

const MAX_LABEL = 80;
const DAY_MS = 86_400_000;

/** Authors write `60d`, not `8w4d`: whole days that are not whole weeks stay in days. */
function durationLabel(ms: number): string {
  return ms % DAY_MS === 0 && ms % (7 * DAY_MS) !== 0 ? `${ms / DAY_MS}d` : formatDuration(ms);
}

/** Mermaid text for the flow: `flowchart TD`, a trigger node, one node per step, labelled branch edges, an end node. */
export function flowToMermaid(flow: FlowDefinition): string {
  // Node ids such as `steps[3].then[0]` are not valid Mermaid ids, so each step gets a short stable alias.
  const alias = new Map<NodeId, string>();
  Object.keys(flow.nodes).forEach((id, i) => alias.set(id, `s${i}`));
  const target = (id: NodeId | null): string => (id === null ? 'flow_end' : (alias.get(id) ?? 'flow_end'));

  const lines: string[] = ['flowchart TD'];
  lines.push(`  trigger(["${escapeLabel(`${flow.id} v${flow.version}: ${triggerLabel(flow.trigger)}`)}"])`);
  let endUsed = flow.start === null;
  const edges: string[] = [];
  const edge = (from: string, to: NodeId | null, label?: string): void => {
    if (to === null) endUsed = true;
    edges.push(`  ${from} -->${label ? `|"${escapeLabel(label)}"|` : ''} ${target(to)}`);
  };
  edge('trigger', flow.start, flow.entry.when ? `when ${conditionLabel(flow.entry.when)}` : undefined);

  for (const [id, node] of Object.entries(flow.nodes)) {
    const a = alias.get(id)!;
    lines.push(`  ${a}${shape(node, escapeLabel(nodeLabel(node)))}`);
    switch (node.kind) {
      case 'wait':
      case 'wait_until':
      case 'send':
      case 'update_profile':
        edge(a, node.next);
        break;
      case 'split':
        edge(a, node.then, 'then');
        edge(a, node.else, 'else');
        break;
      case 'wait_for':
        edge(a, node.onEvent, 'event');
        edge(a, node.onTimeout, 'timeout');
        break;
      case 'ab_split':
        for (const variant of node.variants) edge(a, variant.next, `${variant.name} ${variant.weight}%`);
        break;
      case 'exit':
        break;
    }
  }
  if (endUsed) lines.push('  flow_end(["end"])');
  if (flow.exit.onEvents.length > 0) {
    // The goal exit can happen at any point of the run, so it is shown beside the graph rather than wired into it.
    lines.push(`  goal[/"${escapeLabel(`exit on ${flow.exit.onEvents.map(matcherLabel).join(' or ')}`)}"/]`);
  }
  return [...lines, ...edges].join('\n') + '\n';
}

function shape(node: FlowNode, label: string): string {
  switch (node.kind) {
    case 'split':
    case 'ab_split':
      return `{"${label}"}`;
    case 'wait_for':
      return `{{"${label}"}}`;
    case 'exit':
      return `(["${label}"])`;
    case 'wait':
    case 'wait_until':
      return `("${label}")`;
    default:
      return `["${label}"]`;
  }
}

export function nodeLabel(node: FlowNode): string {
  switch (node.kind) {
    case 'wait':
      return `wait ${durationLabel(node.ms)}`;
    case 'wait_until':
      return `wait until ${String(node.hour).padStart(2, '0')}:${String(node.minute).padStart(2, '0')}`;
    case 'wait_for':
      return `wait for ${matcherLabel(node.match)} up to ${durationLabel(node.timeoutMs)}`;
    case 'split':
      return `split ${conditionLabel(node.when)}`;
    case 'ab_split':
      return `A/B test ${node.experiment}${node.winner ? `, winner by ${node.winner.metric}` : ''}`;
    case 'send':
      return `send ${node.template}`;
    case 'update_profile': {
      const parts = [
        ...Object.keys(node.set).map((k) => `set ${k}`),
        ...node.addTags.map((t) => `+tag ${t}`),
        ...node.removeTags.map((t) => `-tag ${t}`),
      ];
      return `update profile: ${parts.join(', ')}`;
    }
    case 'exit':
      return `exit: ${node.reason}`;
  }
}

function triggerLabel(trigger: Trigger): string {
  switch (trigger.kind) {
    case 'event':
      return matcherLabel(trigger);
    case 'event_count':
      return (
        `${trigger.atLeast}x ${matcherLabel(trigger)} within ${durationLabel(trigger.withinMs)}` +
        (trigger.sameProperty ? ` (same ${trigger.sameProperty})` : '')
      );
    case 'inactivity':
      return `no ${trigger.event} for ${durationLabel(trigger.forMs)}`;
  }
}

function matcherLabel(matcher: EventMatcher): string {
  // segment: <id> in a trigger or wait_for reads as what the author wrote.
  const segmentId = matcher.event === SEGMENT_ENTERED && matcher.where ? matcher.where['event.properties.segment_id'] : undefined;
  if (typeof segmentId === 'string' && Object.keys(matcher.where!).length === 1) return `enters segment ${segmentId}`;
  return matcher.where ? `${matcher.event} where ${conditionLabel(matcher.where)}` : matcher.event;
}

function valueLabel(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A one-line reading of a condition: `profile.score gte 50 and consent.email_marketing = true`. */
export function conditionLabel(condition: Condition): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(condition)) {
    if ((key === 'all' || key === 'any') && Array.isArray(value)) {
      const inner = value.map((c) => conditionLabel(c as Condition));
      parts.push(`(${inner.join(key === 'all' ? ' and ' : ' or ')})`);
    } else if (key === 'not') {
      parts.push(`not (${conditionLabel(value as Condition)})`);
    } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [op, operand] of Object.entries(value)) parts.push(`${key} ${op} ${valueLabel(operand)}`);
    } else {
      parts.push(`${key} = ${valueLabel(value)}`);
    }
  }
  return parts.join(' and ');
}

/**
 * Makes text safe inside a quoted Mermaid label: quotes and markup characters become Mermaid entity codes
 * (`#quot;`), `#` itself first so the codes we add are not escaped again, and long labels are shortened.
 */
export function escapeLabel(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  const short = oneLine.length > MAX_LABEL ? `${oneLine.slice(0, MAX_LABEL - 3)}...` : oneLine;
  return short
    .replace(/#/g, '#35;')
    .replace(/"/g, '#quot;')
    .replace(/</g, '#lt;')
    .replace(/>/g, '#gt;')
    .replace(/&/g, '#amp;')
    .replace(/\|/g, '#124;');
}
