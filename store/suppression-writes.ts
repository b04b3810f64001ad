// The suppression entries a batch of events makes (core/suppression suppressionChanges), written by recordBatch in
// the events' own transaction: a bounce or a complaint is on the list the moment its event is acknowledged.
import type { Profile } from '../core/profile';
import { BOUNCED, softBounceWindowStart, suppressionChanges, type SoftBounceRules, type SuppressionEntry, type SuppressionLift } from '../core/suppression';
import type { EventWriteOps } from './record-events';
import type { NewEvent, StoredEvent } from './store';

/**
 * Derives and writes the entries and lifts of the batch's new events, per customer, from their profiles after the
 * fold. A soft bounce reads the customer's bounces within the window (this batch's are stored by now).
 */
export async function writeSuppressionChanges(
  ops: Pick<EventWriteOps, 'segmentEvents' | 'writeSuppressions'>,
  newEvents: Map<string, StoredEvent[]>,
  sent: NewEvent[],
  profiles: Map<string, Profile>,
  rules: SoftBounceRules,
): Promise<void> {
  // StoredEvent leaves out who sent the event; the lift of an unsubscribe depends on it.
  const origins = new Map(sent.map((event) => [event.messageId, event.origin]));
  const entries: SuppressionEntry[] = [];
  const lifts: SuppressionLift[] = [];
  for (const [customerId, list] of newEvents) {
    const events = list.map((event) => ({ ...event, origin: origins.get(event.messageId) }));
    const since = softBounceWindowStart(events, rules);
    const softBounces = since === null ? [] : await ops.segmentEvents(customerId, [{ name: BOUNCED, since }]);
    const changes = suppressionChanges({ events, profile: profiles.get(customerId), softBounces, rules });
    entries.push(...changes.entries);
    lifts.push(...changes.lifts);
  }
  if (entries.length > 0 || lifts.length > 0) await ops.writeSuppressions(entries, lifts);
}
