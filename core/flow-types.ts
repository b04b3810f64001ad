// The compiled shape of a flow file: plain, JSON-serialisable data that the store keeps per version,
// the arbiter reads policy from, and the flow-run workflow walks node by node.
import type { Condition } from './conditions';
import type { OnCap, QuietHours } from './send-policy';

/** Stable id of a step: its path in the file, e.g. `steps[3]`, `steps[3].then[0]`. Part of the delivery key. */
export type NodeId = string;

/** Which events a trigger, exit or wait_for listens to: an event name and an optional filter on it. */
export interface EventMatcher {
  event: string;
  /** Condition over { event: { name, properties, ... } } */
  where?: Condition;
}

export type Trigger =
  /** Fires on every matching event. */
  | ({ kind: 'event' } & EventMatcher)
  /** Fires when the customer has at least `atLeast` matching events within `withinMs` (counting this one),
   *  optionally all with the same value of `sameProperty` (e.g. `properties.category`). */
  | ({ kind: 'event_count'; atLeast: number; withinMs: number; sameProperty?: string } & EventMatcher)
  /** Fires, from the scheduled sweep, when the customer has had no `event` for `forMs`. */
  | { kind: 'inactivity'; event: string; forMs: number };

export type ReentryRule =
  | { kind: 'always' }
  /** At most one entry ever. */
  | { kind: 'once' }
  /** No new entry until `ms` after the previous entry. */
  | { kind: 'cooldown'; ms: number };

/** What happens to a newcomer when an equal-or-higher-priority run of the same group is active. */
export type ConflictPolicy = 'suppress' | 'queue';

interface NodeBase {
  id: NodeId;
  /** 1-based line in the flow file, for errors and diagrams. */
  line?: number;
}

export type FlowNode =
  | (NodeBase & { kind: 'wait'; ms: number; next: NodeId | null })
  /** Wait until the next HH:MM in the customer's time zone (profile `timezone`, else the flow's default). */
  | (NodeBase & { kind: 'wait_until'; hour: number; minute: number; next: NodeId | null })
  | (NodeBase & {
      kind: 'wait_for';
      match: EventMatcher;
      timeoutMs: number;
      onEvent: NodeId | null;
      onTimeout: NodeId | null;
    })
  | (NodeBase & { kind: 'split'; when: Condition; then: NodeId | null; else: NodeId | null })
  | (NodeBase & {
      kind: 'send';
      template: string;
      data: Record<string, unknown>;
      next: NodeId | null;
      /**
       * `at: best_time`: send at the customer's best hour within `withinMs` of when the step is reached. Both absent
       * for a plain send, so flow versions compiled before best send time existed read the same.
       */
      at?: 'best_time';
      withinMs?: number;
    })
  | (NodeBase & {
      kind: 'update_profile';
      set: Record<string, unknown>;
      addTags: string[];
      removeTags: string[];
      next: NodeId | null;
    })
  | (NodeBase & { kind: 'exit'; reason: string })
  /**
   * Weighted variants, each a branch of steps (`variants[i].steps`): the customer's variant is fixed per
   * (experiment, customer), across re-entries and versions, until the experiment id changes (core/experiment-assignment).
   */
  | (NodeBase & { kind: 'ab_split'; experiment: string; variants: SplitVariant[]; winner: WinnerRule | null });

export interface SplitVariant {
  /** Unique within the split; what reports and the decision log call it. */
  name: string;
  /** Positive; the weights of a split sum to 100. */
  weight: number;
  /** The variant's first step (null: an empty branch, which continues after the split). */
  next: NodeId | null;
}

/** Which measure an experiment's winner is chosen on. Opens are not offered: machine opens make them meaningless. */
export type WinnerMetric = 'conversion' | 'click';

/** `winner:` of an ab_split: when the sequential test decides, later entrants get the winner. */
export interface WinnerRule {
  metric: WinnerMetric;
  /** No decision before every variant has this many recipients. */
  minPerVariant: number;
  /** e.g. 0.95: the always-valid test decides at significance 1 - confidence. */
  confidence: number;
  /** What happens once it decides; only all_to_winner for now. */
  then: 'all_to_winner';
  /** After this long without a decision (from the experiment's first assignment) it is recorded as inconclusive. */
  maxDurationMs: number;
}

/** How conversions are credited to sends (core/attribution): the goal event within `windowMs` after the send or a click on it. */
export interface AttributionRule {
  windowMs: number;
}

export type FlowNodeKind = FlowNode['kind'];

export interface FlowDefinition {
  id: string;
  version: number;
  /** Higher wins when flows of one group compete for a customer. */
  priority: number;
  /** One run at a time per customer within a group. */
  group: string;
  description?: string;
  /**
   * What the customer subscribes to, for the preference center (e.g. `cart-reminders`): a customer who turned the
   * topic off gets none of this flow's marketing sends. null: the flow has no topic, only email_marketing applies.
   * Versions registered before topics existed have none stored; read them as null.
   */
  topic: string | null;
  trigger: Trigger;
  entry: {
    when?: Condition;
    reentry: ReentryRule;
    onConflict: ConflictPolicy;
  };
  /** Any of these events ends every active run of this flow at once and counts as a conversion. */
  exit: { onEvents: EventMatcher[] };
  /**
   * The flow's reason, which must still hold at every send (a cart to remind of, a lapse to win back): checked again
   * before each send on the profile as it is then; when it no longer holds the run takes its exit, logged.
   */
  requires?: Condition;
  /** First node, or null for a flow with no steps. */
  start: NodeId | null;
  nodes: Record<NodeId, FlowNode>;
  /** Time zone used by `wait: { until }` when the profile has none. */
  defaultTimezone: string;
  /**
   * The zone the file named with `timezone:`; absent when it named none (defaultTimezone is then UTC by default,
   * not by choice). Read it through flowTimeZone, which also understands versions compiled before this existed.
   */
  timezone?: string;
  /**
   * `holdout: 10%`: this share (0 < share < 1) of customers go through entry and arbitration but are sent nothing, so
   * the flow's incremental effect can be measured against them. Absent: no holdout.
   */
  holdout?: number;
  /** `attribution: { window: 5d }`; absent: core/attribution's default. */
  attribution?: AttributionRule;
  /** The flow's `on_cap:` override of the policy's; absent: the policy decides. */
  onCap?: OnCap;
  /** The flow's `defer: { max }` override, in ms; absent: the policy's. */
  deferMaxMs?: number;
  /** The flow's `quiet_hours:` override; null: `quiet_hours: off` (none for this flow); absent: the policy's. */
  quietHours?: QuietHours | null;
  /** Where it came from, and a hash of the source so a changed file cannot reuse a version number. */
  source: { file: string; sha256: string };
}

/**
 * The time zone the flow itself names, for chooseTimeZone's `flow` candidate: null when the file wrote none. A version
 * compiled before `timezone` was kept has only defaultTimezone, where anything but UTC must have been written.
 */
export function flowTimeZone(flow: Pick<FlowDefinition, 'timezone' | 'defaultTimezone'>): string | null {
  if (flow.timezone !== undefined) return flow.timezone;
  return flow.defaultTimezone !== 'UTC' ? flow.defaultTimezone : null;
}

/** Everything the arbiter needs to decide about a flow, without its steps. */
export interface FlowPolicy {
  flowId: string;
  version: number;
  priority: number;
  group: string;
  reentry: ReentryRule;
  onConflict: ConflictPolicy;
  /** Events that end a run of this flow at once, as a conversion; the arbiter applies them. */
  exitOn: EventMatcher[];
  /** Event names that a run of this flow waits for (wait_for steps); the arbiter forwards these. */
  listensTo: string[];
}

export function policyOf(flow: FlowDefinition): FlowPolicy {
  const listens = new Set<string>();
  for (const node of Object.values(flow.nodes)) if (node.kind === 'wait_for') listens.add(node.match.event);
  return {
    flowId: flow.id,
    version: flow.version,
    priority: flow.priority,
    group: flow.group,
    reentry: flow.entry.reentry,
    onConflict: flow.entry.onConflict,
    exitOn: flow.exit.onEvents,
    listensTo: [...listens].sort(),
  };
}
