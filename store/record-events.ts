// Recording a batch of events, once, for both backends: drop duplicates, resolve identities (and merge the ones
// the batch joins), insert the events, then fold each affected profile once. The statements differ by backend
// (Kysely in a transaction; prepared better-sqlite3 statements on the SQLite ingest path), so they sit behind
// EventWriteOps and this file holds only the order of work and the decisions.
import type { Selectable } from 'kysely';
import { foldAll, isFolded, needsRefold, type BehaviorEvent } from '../core/behavior';
import { applyEventsInPlace, emptyProfile, mergeProfiles, type Profile, type ProfileEvent } from '../core/profile';
import { toStoredEvent } from './rows';
import type { EventsTable } from './schema';
import type { NewEvent, RecordEventResult, SegmentEventRead, SegmentFactsRead, StoredEvent } from './store';

/** An events row as inserted (the id is the store's); each backend stores `dispatched` its own way. */
export type NewEventRow = Omit<Selectable<EventsTable>, 'id' | 'dispatched'> & { dispatched: boolean };

/** A profile to write, with the email its row held when read (undefined: there was no row). */
export interface ProfileWrite {
  profile: Profile;
  storedEmail: string | null | undefined;
}

/** The statements one batch needs, all inside one transaction the caller opened. */
export interface EventWriteOps {
  /** Rows already stored under these messageIds. */
  storedEvents(messageIds: string[]): Promise<Array<Selectable<EventsTable>>>;
  /** Serializes with other transactions naming any of these ids (PostgreSQL); SQLite's writes are serial already. */
  lockIdentities(ids: string[]): Promise<void>;
  /** The identity map entries for these ids (alias → customer). */
  identities(ids: string[]): Promise<Map<string, string>>;
  /** Inserts in the given order; messageId → id for the rows written (a concurrent writer's messageIds are absent). */
  insertEvents(rows: NewEventRow[]): Promise<Map<string, number>>;
  /** Profiles for a read-modify-write (locked on PostgreSQL); absent customers are absent from the map. */
  profilesForUpdate(customerIds: string[], now: number): Promise<Map<string, Profile>>;
  /** Moves `from`'s events and aliases to `into`, makes `from` an alias of `into`, and deletes `from`'s profile row. */
  moveCustomer(from: string, into: string, at: number): Promise<void>;
  /** The customer's behavior events in time order (ties by arrival), for a refold. */
  behaviorEventsOf(customerId: string): Promise<BehaviorEvent[]>;
  writeProfiles(writes: ProfileWrite[]): Promise<void>;
  /** Profiles as stored, without a lock (the owners of duplicates). */
  profiles(customerIds: string[]): Promise<Map<string, Profile>>;

  // Segment membership (store/segment-writes.ts runs these in the same transaction as the events it records).
  /** Schedules each customer's segment evaluation at its `at` (or keeps an earlier one). */
  markSegmentChecksDue(due: Array<{ customerId: string; at: number }>): Promise<void>;
  /** The customer's profile, locked until commit on PostgreSQL (an absent one is not created). */
  profileForSegments(customerId: string): Promise<Profile | undefined>;
  /** Takes the customer's check row (creating it), locked until commit on PostgreSQL; its next_check_at. */
  lockSegmentCheck(customerId: string): Promise<number | null>;
  segmentEvents(customerId: string, reads: SegmentEventRead[]): Promise<SegmentFactsRead['events']>;
  /** The Segment Entered / Exited events recorded at or after `from` (oldest first), and the own times of the customer's other events since then. */
  segmentHistory(customerId: string, from: number): Promise<Pick<SegmentFactsRead, 'recorded' | 'eventTimes'>>;
  /** Every event of the customer that the profile fold reads (not the segment changes), any order. */
  profileEventsOf(customerId: string): Promise<ProfileEvent[]>;
  segmentMembership(customerId: string): Promise<Map<string, number>>;
  /** When the customer last entered the segment before `before` (its latest recorded Segment Entered), or null. */
  lastSegmentEntry(customerId: string, segmentId: string, before: number): Promise<number | null>;
  /** Enters (or moves the entry time of) `enter`, leaves `exit`, deletes the `retract`ed change events, sets the next check. */
  writeSegmentMembership(customerId: string, change: { enter: Array<{ segmentId: string; at: number }>; exit: string[]; retract: string[] }, nextCheckAt: number | null): Promise<void>;
}

/** The events row for an event of `customerId` (the id its identities resolve to). */
export function newEventRow(event: NewEvent, customerId: string, dispatched: boolean): NewEventRow {
  return {
    message_id: event.messageId,
    type: event.type,
    customer_id: customerId,
    user_id: event.userId,
    anonymous_id: event.anonymousId,
    name: event.name,
    properties: JSON.stringify(event.properties),
    traits: JSON.stringify(event.traits),
    context: JSON.stringify(event.context),
    timestamp: event.timestamp,
    received_at: event.receivedAt,
    dispatched,
  };
}

function identityIdsOf(events: NewEvent[]): Set<string> {
  const ids = new Set<string>();
  for (const event of events) {
    if (event.userId !== null) ids.add(event.userId);
    if (event.anonymousId !== null) ids.add(event.anonymousId);
    const previousId = event.properties.previousId;
    if (event.type === 'alias' && typeof previousId === 'string') ids.add(previousId);
  }
  return ids;
}

/**
 * One batch in the caller's transaction. A customer whose batch holds an event older than what their profile
 * already folded — or whose identities merged — has their computed fields refolded from their events in time
 * order, so arrival order never changes the result.
 */
export async function recordBatch(ops: EventWriteOps, events: NewEvent[], needsDispatch: (event: NewEvent) => boolean): Promise<RecordEventResult[]> {
  const stored = new Map<string, Selectable<EventsTable>>();
  for (const row of await ops.storedEvents([...new Set(events.map((e) => e.messageId))])) stored.set(row.message_id, row);
  const fresh: number[] = [];
  const seen = new Set<string>();
  events.forEach((event, index) => {
    if (stored.has(event.messageId) || seen.has(event.messageId)) return;
    seen.add(event.messageId);
    fresh.push(index);
  });

  const named = [...identityIdsOf(fresh.map((i) => events[i]!))];
  await ops.lockIdentities(named);
  const identities = await ops.identities(named);
  const resolve = (id: string) => identities.get(id) ?? id;
  const merges: Array<{ from: string; into: string }> = [];
  const join = (from: string, into: string) => {
    if (from === into) return;
    merges.push({ from, into });
    identities.set(from, into);
    for (const [alias, owner] of identities) if (owner === from) identities.set(alias, into);
  };
  for (const index of fresh) {
    const event = events[index]!;
    const previousId = event.type === 'alias' ? (event.properties.previousId as string | undefined) : undefined;
    if (previousId !== undefined && event.userId !== null) join(resolve(previousId), resolve(event.userId));
    // A call that carries both ids (identify after login, or any call once the client knows both) joins the
    // anonymous history to the customer — the first customer an anonymousId meets keeps it.
    else if (event.userId !== null && event.anonymousId !== null && !identities.has(event.anonymousId)) join(resolve(event.anonymousId), resolve(event.userId));
  }
  const customerOf = (event: NewEvent) => resolve(event.userId ?? event.anonymousId ?? event.customerId);

  // In messageId order: two transactions inserting overlapping ids in opposite orders would deadlock on PostgreSQL's
  // unique index. The fold sorts by time, so ids matter only for a customer's events with equal timestamps in one batch.
  const insertOrder = [...fresh].sort((a, b) => (events[a]!.messageId < events[b]!.messageId ? -1 : events[a]!.messageId > events[b]!.messageId ? 1 : a - b));
  const insertedIds = await ops.insertEvents(
    insertOrder.map((index) => {
      const event = events[index]!;
      return newEventRow(event, customerOf(event), !needsDispatch(event));
    }),
  );
  const lost = fresh.filter((i) => !insertedIds.has(events[i]!.messageId)).map((i) => events[i]!.messageId);
  if (lost.length > 0) for (const row of await ops.storedEvents(lost)) stored.set(row.message_id, row);

  // The events this transaction stored, by messageId, and grouped by their (resolved) customer.
  const firstCopy = new Map<string, StoredEvent>();
  const newEvents = new Map<string, StoredEvent[]>();
  for (const index of fresh) {
    const event = events[index]!;
    const id = insertedIds.get(event.messageId);
    if (id === undefined) continue;
    const storedEvent: StoredEvent = { ...event, customerId: customerOf(event), id, dispatched: !needsDispatch(event) };
    firstCopy.set(event.messageId, storedEvent);
    const list = newEvents.get(storedEvent.customerId) ?? [];
    list.push(storedEvent);
    newEvents.set(storedEvent.customerId, list);
  }

  const at = events[0]!.receivedAt;
  const profiles = await ops.profilesForUpdate([...newEvents.keys(), ...merges.flatMap((m) => [m.from, m.into])], at);
  const storedEmails = new Map([...profiles].map(([id, profile]) => [id, profile.email]));
  const refold = new Set<string>();
  for (const { from, into } of merges) {
    await ops.moveCustomer(from, into, at);
    const source = profiles.get(from);
    if (source) profiles.set(into, mergeProfiles(profiles.get(into) ?? emptyProfile(into, source.updatedAt), source, source.updatedAt));
    profiles.delete(from);
    refold.add(into);
    refold.delete(from);
  }

  for (const [customerId, list] of newEvents) {
    list.sort((a, b) => a.timestamp - b.timestamp || a.id - b.id);
    const profile = profiles.get(customerId) ?? emptyProfile(customerId, list[0]!.receivedAt);
    if (needsRefold(profile.computed, list.find(isFolded) ?? list[0]!)) refold.add(customerId);
    // Every profile in `profiles` was parsed from its row (or made) in this transaction: ours to change.
    applyEventsInPlace(
      profile,
      list.map((event) => ({ event, now: event.receivedAt })),
    );
    profiles.set(customerId, profile);
  }
  for (const customerId of refold) {
    const profile = profiles.get(customerId) ?? emptyProfile(customerId, at);
    profile.computed = foldAll(await ops.behaviorEventsOf(customerId));
    profiles.set(customerId, profile);
  }
  const written = [...new Set([...newEvents.keys(), ...refold])];
  await ops.writeProfiles(written.map((customerId) => ({ profile: profiles.get(customerId)!, storedEmail: storedEmails.has(customerId) ? storedEmails.get(customerId) : undefined })));
  // Committed with the events: a crash before the segment engine runs leaves these customers due for the sweep.
  // Due from the earliest new event's own time, so a change a backfilled event causes is dated (and treated) as
  // history, and a live one at its arrival.
  if (written.length > 0) {
    await ops.markSegmentChecksDue(
      written.map((customerId) => ({
        customerId,
        at: Math.min(at, ...(newEvents.get(customerId) ?? []).map((e) => Math.min(e.timestamp, e.receivedAt))),
      })),
    );
  }

  const duplicateOwners = [...new Set([...stored.values()].map((row) => row.customer_id).filter((id) => !profiles.has(id)))];
  if (duplicateOwners.length > 0) for (const [id, profile] of await ops.profiles(duplicateOwners)) profiles.set(id, profile);
  const freshIndexes = new Set(fresh);
  return events.map((event, index) => {
    const inserted = firstCopy.get(event.messageId);
    if (inserted && freshIndexes.has(index)) return { duplicate: false, event: inserted, profile: profiles.get(inserted.customerId)! };
    // A repeat answers with the event as stored — the first copy in this batch, or the row from before — and
    // with its owner as of now (a merge in this batch may have moved it).
    const row = stored.get(event.messageId);
    const existing: StoredEvent = inserted ?? { ...toStoredEvent(row!), customerId: resolve(row!.customer_id) };
    return { duplicate: true, event: existing, profile: profiles.get(existing.customerId) ?? emptyProfile(existing.customerId, existing.receivedAt) };
  });
}
