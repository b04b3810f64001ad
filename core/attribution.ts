// The conversion rule of the reports: which flows a goal event is a conversion of, which send earns it (last touch)
// and which entry, and the revenue it brings. Pure: the store (store/metrics-store) reads the customer's touches and asks.
//
// The rule, as documented in the README ("Metrics and attribution"):
// - A flow's goal events are the events its `exit:` matchers match (the same matchers that end its runs). Only track
//   events are goals.
// - Send level: the customer's touches by the flow are its sends delivered to them (at the send's flow time) and their
//   clicks on those sends (at the click's time). A goal event is a conversion of the flow when the latest touch at or
//   before it is at most the flow's attribution window (`attribution: { window }`, default 5 days) before it; it is
//   credited to the send of that touch (last touch: a click credits the send clicked).
// - Flow level: the goal event is also a conversion of the flow's latest entry at or before it, when that entry is at
//   most the window before it; holdout entries count alike, so the holdout's conversion rate is the baseline a flow's
//   lift is measured against. The two levels are decided independently: a goal a week after entry but a day after a
//   send is a send conversion, not an entry one, so the flow-level figures compare like with like (window from entry).
// - Each goal event counts at most once per flow (the store keeps what it credited).
// - Revenue is the goal event's `revenue` property, else `total`, else `value`: the first of them that is a finite
//   number of at least 0 (a string, a negative number, NaN are skipped); 0 when none is.
import type { FlowDefinition } from './flow-types';
import { eventMatches } from './triggers';

/** A flow without `attribution:` credits a goal event up to 5 days after the touch (or entry) before it. */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 5 * 86_400_000;

/** Goal event properties that carry revenue, in the order they are read. */
export const REVENUE_PROPERTIES = ['revenue', 'total', 'value'] as const;

export function attributionWindowMs(flow: Pick<FlowDefinition, 'attribution'>): number {
  return flow.attribution?.windowMs ?? DEFAULT_ATTRIBUTION_WINDOW_MS;
}

/** The slice of a stored event the rule reads. */
export interface GoalEvent {
  type: string;
  name: string | null;
  properties: Record<string, unknown>;
  /** the event's own time, epoch ms */
  timestamp: number;
}

/** Whether `event` is one of the flow's goal events (its `exit:` matchers). */
export function isGoalOf(flow: Pick<FlowDefinition, 'exit'>, event: GoalEvent): boolean {
  if (event.type !== 'track' || event.name === null) return false;
  return flow.exit.onEvents.some((matcher) => eventMatches(matcher, event));
}

/** The flows `event` is a goal event of, in the order given. */
export function flowsWithGoal<F extends Pick<FlowDefinition, 'exit'>>(flows: readonly F[], event: GoalEvent): F[] {
  return flows.filter((flow) => isGoalOf(flow, event));
}

/** The revenue a goal event brings (see the rule above): 0 when no revenue property holds a usable number. */
export function revenueOf(properties: Record<string, unknown>): number {
  for (const key of REVENUE_PROPERTIES) {
    const value = properties[key];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  }
  return 0;
}

/** A send of the flow delivered to the customer, at its flow time. */
export interface SendTouch {
  deliveryKey: string;
  at: number;
}

/** The customer's click on a send, at the click's time; a click naming a send not among `sends` is no touch. */
export interface ClickTouch {
  deliveryKey: string;
  at: number;
}

/** An entry of the customer into the flow (a run), treatment or holdout. */
export interface EntryTouch {
  workflowId: string;
  at: number;
  holdout: boolean;
}

/** What the customer got of one flow, as the store read it; within a kind, ties go to the later one in the list. */
export interface Touches {
  sends: readonly SendTouch[];
  clicks: readonly ClickTouch[];
  entries: readonly EntryTouch[];
}

export interface Credit {
  /** The send credited with the conversion (last touch), or null when no touch was within the window. */
  deliveryKey: string | null;
  /** The entry credited at flow level, or null when no entry was within the window. */
  workflowId: string | null;
  revenue: number;
}

/** The latest of `items` at or before `at` (ties: the later in the list), or undefined. */
function latestAtOrBefore<T extends { at: number }>(items: readonly T[], at: number): T | undefined {
  let latest: T | undefined;
  for (const item of items) if (item.at <= at && (latest === undefined || item.at >= latest.at)) latest = item;
  return latest;
}

/**
 * Credits a goal event of `flow` at `goal.timestamp` (see the rule above): null when neither a send nor an entry earns
 * it, so it is no conversion of this flow. The caller has checked that it is a goal event of the flow (isGoalOf).
 */
export function creditConversion(flow: Pick<FlowDefinition, 'attribution'>, goal: Pick<GoalEvent, 'properties' | 'timestamp'>, touches: Touches): Credit | null {
  const windowMs = attributionWindowMs(flow);
  const within = (touch: { at: number } | undefined) => touch !== undefined && goal.timestamp - touch.at <= windowMs;
  const sent = new Set(touches.sends.map((s) => s.deliveryKey));
  // Sends first, then clicks: at the same moment a click on a send is the later touch.
  const touch = latestAtOrBefore<SendTouch | ClickTouch>([...touches.sends, ...touches.clicks.filter((c) => sent.has(c.deliveryKey))], goal.timestamp);
  const entry = latestAtOrBefore(touches.entries, goal.timestamp);
  const deliveryKey = within(touch) ? touch!.deliveryKey : null;
  const workflowId = within(entry) ? entry!.workflowId : null;
  if (deliveryKey === null && workflowId === null) return null;
  return { deliveryKey, workflowId, revenue: revenueOf(goal.properties) };
}
