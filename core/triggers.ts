// Decides which flow triggers an event fires, from the event and the customer's recent events.
// Pure: the caller fetches the recent events the triggers ask for (see `historyNeeded`).
import { cachedTester, valueAtPath } from './conditions';
import type { EventMatcher, FlowDefinition, Trigger } from './flow-types';
import type { EventType } from './event';

/** The slice of an event that triggers, exits and wait_for read. */
export interface EventFacts {
  messageId: string;
  name: string | null;
  type: EventType;
  properties: Record<string, unknown>;
  /** epoch ms */
  timestamp: number;
}

/** The condition context an event is seen through: `event.name`, `event.properties.*`. */
export function eventContext(event: Pick<EventFacts, 'name' | 'properties' | 'timestamp'>): { event: Record<string, unknown> } {
  return { event: { name: event.name, properties: event.properties, timestamp: event.timestamp } };
}

export function eventMatches(matcher: EventMatcher, event: Pick<EventFacts, 'name' | 'properties' | 'timestamp'>): boolean {
  if (event.name !== matcher.event) return false;
  return matcher.where ? cachedTester(matcher.where)(eventContext(event)) : true;
}

/** What history a trigger needs to be decided, so the caller can fetch it in one query. */
export function historyNeeded(trigger: Trigger, event: EventFacts): { name: string; since: number } | null {
  if (trigger.kind !== 'event_count' || event.name !== trigger.event) return null;
  return { name: trigger.event, since: event.timestamp - trigger.withinMs };
}

/**
 * Whether `event` fires `trigger`. For count triggers `history` holds the customer's events of that
 * name since `historyNeeded(...).since` (it may or may not include `event` itself; it is counted once).
 */
export function triggerFires(trigger: Trigger, event: EventFacts, history: EventFacts[] = []): boolean {
  if (trigger.kind === 'inactivity') return false; // found by the sweep, never by a single event
  if (event.type !== 'track' || !eventMatches(trigger, event)) return false;
  if (trigger.kind === 'event') return true;
  const since = event.timestamp - trigger.withinMs;
  const sameValue = trigger.sameProperty ? valueAtPath({ properties: event.properties }, trigger.sameProperty) : undefined;
  if (trigger.sameProperty && sameValue === undefined) return false;
  const counted = new Set<string>([event.messageId]);
  for (const past of history) {
    if (counted.has(past.messageId)) continue;
    if (past.timestamp < since || past.timestamp > event.timestamp) continue;
    if (!eventMatches(trigger, past)) continue;
    if (trigger.sameProperty && valueAtPath({ properties: past.properties }, trigger.sameProperty) !== sameValue) continue;
    counted.add(past.messageId);
  }
  return counted.size >= trigger.atLeast;
}

/** Events older than this when they arrive are history (a backfill or an import): they update
 *  profiles and counts but start no flow, as in Klaviyo, so an import never mails old customers. */
export const BACKFILL_AGE_MS = 24 * 3_600_000;

export function isBackfill(event: { timestamp: number }, receivedAt: number): boolean {
  return receivedAt - event.timestamp > BACKFILL_AGE_MS;
}

/** Event names that can start a flow or that a running flow listens to: only these reach Temporal. */
export function eventNamesOfInterest(flows: FlowDefinition[]): Set<string> {
  const names = new Set<string>();
  for (const flow of flows) {
    if (flow.trigger.kind !== 'inactivity') names.add(flow.trigger.event);
    for (const exit of flow.exit.onEvents) names.add(exit.event);
    for (const node of Object.values(flow.nodes)) if (node.kind === 'wait_for') names.add(node.match.event);
  }
  return names;
}
