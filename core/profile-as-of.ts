// A customer's profile as it stood at one past moment, for a decision taken late (a trigger delivered after a
// Temporal outage is judged on what was true when it happened): today's profile taken back through the customer's
// events (core/profile-history), and the segments they were in then, from their recorded Segment Entered / Exited
// events. Pure.
import type { Computed } from './behavior';
import type { Profile, ProfileEvent } from './profile';
import { ProfileHistory } from './profile-history';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from './segment-membership';

/** A recorded Segment Entered / Exited event, as the store reads it. */
export interface SegmentChangeEvent {
  name: string | null;
  properties: Record<string, unknown>;
  /** epoch ms: when the change happened */
  timestamp: number;
}

function isSegmentChange(event: { type?: string; name: string | null }): boolean {
  return (event.type === undefined || event.type === 'track') && (event.name === SEGMENT_ENTERED || event.name === SEGMENT_EXITED);
}

/**
 * The profile at `at`: every dated part (traits and consent by their time, the computed fields by the fold) as the
 * customer's events up to `at` made it; tags, which carry no time, as they are today. `events` are the customer's
 * events in any order (later ones are ignored; ties keep the given order, as arrival order does in the store).
 * Undefined when there is no profile today. `computedBase`: what purged events folded into (event retention), where
 * the computed fields' fold starts; for an `at` before the purge horizon they then count the purged events whole.
 */
export function profileAsOf(current: Profile | undefined, events: readonly ProfileEvent[], at: number, computedBase?: Computed | null): Profile | undefined {
  if (!current) return undefined;
  const { segments: _segments, ...today } = current;
  const folded = new ProfileHistory(today, events.filter((event) => !isSegmentChange(event)), computedBase).at(at);
  // ProfileHistory hands back today's profile itself when nothing happened after `at`: the caller gets its own copy.
  return folded === today ? (JSON.parse(JSON.stringify(today)) as Profile) : folded;
}

/** The segments the customer was in at `at`, sorted: their change events up to `at`, in time order (ties as given). */
export function segmentsAsOf(changes: readonly SegmentChangeEvent[], at: number): string[] {
  const members = new Set<string>();
  const inOrder = changes
    .map((change, order) => ({ change, order }))
    .filter(({ change }) => change.timestamp <= at && isSegmentChange(change))
    .sort((a, b) => a.change.timestamp - b.change.timestamp || a.order - b.order);
  for (const { change } of inOrder) {
    const segmentId = change.properties.segment_id;
    if (typeof segmentId !== 'string' || segmentId === '') continue;
    if (change.name === SEGMENT_ENTERED) members.add(segmentId);
    else members.delete(segmentId);
  }
  return [...members].sort();
}
