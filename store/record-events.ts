// Recording a batch of events, once, for both backends: drop duplicates, resolve identities (and merge the ones
// the batch joins), insert the events, then fold each affected profile once. The statements differ by backend
// (Kysely in a transaction; prepared better-sqlite3 statements on the SQLite ingest path), so they sit behind
// EventWriteOps and this file holds only the order of work and the decisions.
import type { Selectable } from 'kysely';
import { foldAll, isFolded, needsRefold, type BehaviorEvent, type Computed } from '../core/behavior';
import { applyEventsInPlace, emptyProfile, mergeProfiles, type Profile, type ProfileEvent } from '../core/profile';
import { clientMergeRefusal, clientProfileRefusal, isSystemEventName, loginMergeSource, touchesProtectedTraits, type Refusal } from '../core/source-policy';
import { consentChanges, isBehavioralEvent, trackingAllowed, trackingWithdrawn, withoutBehavioralFields, type ConsentChange } from '../core/tracking-consent';
import { DEFAULT_SOFT_BOUNCE_RULES, type SoftBounceRules, type SuppressionEntry, type SuppressionLift } from '../core/suppression';
import { toStoredEvent } from './rows';
import { writeSuppressionChanges } from './suppression-writes';
import type { EventsTable } from './schema';
import type { NewEvent, RecordEventResult, SegmentEventRead, SegmentFactsRead, StoredEvent } from './store';

/**
 * `identified`: one of the customer's events names a user (a userId, on any event but microflows' own, whose userId is
 * the customer's id whoever they are), or ids were merged into them (only a userId's customer is ever merged into).
 * `anonymous`: they have events, none of which does. Stored facts only change under the identity locks of the ids
 * they name, so read after lockIdentities the answer holds until commit.
 */
export type CustomerStanding = 'anonymous' | 'identified';

/** What protects an identified customer from a client key: their email and consent as stored. */
export type StoredContact = Pick<Profile, 'email' | 'consent'>;

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
  /** Who each of these customers is (see CustomerStanding); customers with no events are absent. Asked only for client-key events. */
  customerStandings(customerIds: string[]): Promise<Map<string, CustomerStanding>>;
  /** Inserts in the given order; messageId → id for the rows written (a concurrent writer's messageIds are absent). */
  insertEvents(rows: NewEventRow[]): Promise<Map<string, number>>;
  /** Profiles for a read-modify-write (locked on PostgreSQL); absent customers are absent from the map. */
  profilesForUpdate(customerIds: string[], now: number): Promise<Map<string, Profile>>;
  /** Moves `from`'s events and aliases to `into`, makes `from` an alias of `into`, and deletes `from`'s profile row. */
  moveCustomer(from: string, into: string, at: number): Promise<void>;
  /** The customer's behavior events in time order (ties by arrival), for a refold. */
  behaviorEventsOf(customerId: string): Promise<BehaviorEvent[]>;
  /** What the customer's purged events folded into (profiles.computed_base, event retention), a refold's start; null: none purged. */
  computedBaseOf(customerId: string): Promise<Computed | null>;
  writeProfiles(writes: ProfileWrite[]): Promise<void>;
  /** Profiles as stored, without a lock (the owners of duplicates). */
  profiles(customerIds: string[]): Promise<Map<string, Profile>>;
  /** Only the email and consent of these profiles, without a lock: what a client identify's checks read (no JSON but consent parsed). */
  contactsOf(customerIds: string[]): Promise<Map<string, StoredContact>>;
  /** Removes the lifted suppression entries, then upserts the new ones by (address_hash, reason) (store/suppression-writes.ts). */
  writeSuppressions(entries: SuppressionEntry[], lifts: SuppressionLift[]): Promise<void>;
  /** Inserts rows of the consent trail (consent_changes). */
  recordConsentChanges(changes: ConsentChange[]): Promise<void>;
  /** Deletes the customer's behavioral events (core/tracking-consent isBehavioralEvent), keeping the rest; how many went. */
  deleteBehavioralEvents(customerId: string): Promise<number>;

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

interface IdentityPlan {
  identities: Map<string, string>;
  /** In order; `login`: a client key's join of an anonymous visitor into an identified customer (see loginMergeSource). */
  merges: Array<{ from: string; into: string; login: boolean }>;
  /** Customers this batch names as a user in a server key's or microflows' own event. */
  identifiedByTrusted: Set<string>;
}

/**
 * The joins the batch makes, in order, from the identity map as stored. A call that carries both ids (identify after
 * login, or any call once the client knows both) joins the anonymous history to the customer — the first customer an
 * anonymousId meets keeps it — and alias joins previousId into userId. A client key's call (core/source-policy) that
 * would merge an identified customer into another is refused (added to `refused`); one that names an id nobody has
 * used yet joins nothing, so a client cannot claim an id that a customer takes as their userId later.
 */
async function planIdentities(
  events: NewEvent[],
  fresh: number[],
  stored: Map<string, string>,
  refused: Map<number, Refusal>,
  standingOf: (customerId: string) => Promise<CustomerStanding | undefined>,
): Promise<IdentityPlan> {
  const identities = new Map(stored);
  const resolve = (id: string) => identities.get(id) ?? id;
  const merges: IdentityPlan['merges'] = [];
  /** Customers with an event earlier in this batch, and those an earlier event names as a user (by any key). */
  const seen = new Set<string>();
  const identified = new Set<string>();
  const identifiedByTrusted = new Set<string>();
  const join = (from: string, into: string, login: boolean) => {
    merges.push({ from, into, login });
    identities.set(from, into);
    for (const [alias, owner] of identities) if (owner === from) identities.set(alias, into);
    if (identified.has(from)) identified.add(into);
    if (identifiedByTrusted.has(from)) identifiedByTrusted.add(into);
  };
  for (const index of fresh) {
    if (refused.has(index)) continue;
    const event = events[index]!;
    const client = event.origin === 'client';
    const previousId = event.type === 'alias' ? (event.properties.previousId as string | undefined) : undefined;
    let pair: [from: string, into: string] | undefined;
    if (previousId !== undefined && event.userId !== null) pair = [resolve(previousId), resolve(event.userId)];
    else if (event.userId !== null && event.anonymousId !== null && !identities.has(event.anonymousId)) pair = [resolve(event.anonymousId), resolve(event.userId)];
    if (pair !== undefined && pair[0] !== pair[1]) {
      const [from, into] = pair;
      if (!client) join(from, into, false);
      else {
        const standing = identified.has(from) ? 'identified' : ((await standingOf(from)) ?? (seen.has(from) ? 'anonymous' : undefined));
        if (standing === 'identified') {
          refused.set(index, clientMergeRefusal(event));
          continue;
        }
        if (standing === 'anonymous') join(from, into, identifiedByTrusted.has(into) || (await standingOf(into)) === 'identified');
      }
    }
    seen.add(resolve(event.userId ?? event.anonymousId ?? event.customerId));
    if (event.userId !== null && !(event.type === 'track' && isSystemEventName(event.name))) {
      identified.add(resolve(event.userId));
      if (!client) identifiedByTrusted.add(resolve(event.userId));
    }
  }
  return { identities, merges, identifiedByTrusted };
}

/**
 * Refuses each client-key identify that would set the email or grant the consent of a customer identified before it
 * (core/source-policy clientProfileRefusal), judged on the customer the event lands on once the batch's joins are made.
 * The profile is read without a row lock: whatever changes it names one of the ids locked by lockIdentities.
 */
async function refuseProfileChanges(
  events: NewEvent[],
  fresh: number[],
  plan: IdentityPlan,
  refused: Map<number, Refusal>,
  standingOf: (customerId: string) => Promise<CustomerStanding | undefined>,
  profileOf: (customerId: string) => Promise<StoredContact | undefined>,
): Promise<void> {
  for (const index of fresh) {
    const event = events[index]!;
    if (refused.has(index) || event.origin !== 'client' || !touchesProtectedTraits(event)) continue;
    const id = event.userId ?? event.anonymousId ?? event.customerId;
    const customerId = plan.identities.get(id) ?? id;
    if (!plan.identifiedByTrusted.has(customerId) && (await standingOf(customerId)) !== 'identified') continue;
    const refusal = clientProfileRefusal(event, await profileOf(customerId));
    if (refusal) refused.set(index, refusal);
  }
}

/**
 * What the client checks below will ask, read in one statement each rather than one per call: the standings of the
 * customers a client call would join and of those a client identify describes (email, consent), and the stored
 * profiles of the latter. Read after the identity locks, as the lazy reads would be.
 */
async function prefetchClientChecks(
  ops: EventWriteOps,
  events: NewEvent[],
  fresh: number[],
  storedIdentities: Map<string, string>,
  standings: Map<string, CustomerStanding | undefined>,
  storedProfiles: Map<string, StoredContact | undefined>,
): Promise<void> {
  const named = new Set<string>();
  const described = new Set<string>();
  const resolve = (id: string) => storedIdentities.get(id) ?? id;
  for (const index of fresh) {
    const event = events[index]!;
    if (event.origin !== 'client') continue;
    // The calls planIdentities asks about: those that would join two ids the store does not already join.
    const previousId = event.type === 'alias' ? event.properties.previousId : undefined;
    if (typeof previousId === 'string' && event.userId !== null) named.add(resolve(previousId)).add(resolve(event.userId));
    else if (event.userId !== null && event.anonymousId !== null && !storedIdentities.has(event.anonymousId)) named.add(resolve(event.anonymousId)).add(resolve(event.userId));
    if (touchesProtectedTraits(event)) {
      const id = event.userId ?? event.anonymousId ?? event.customerId;
      described.add(storedIdentities.get(id) ?? id);
    }
  }
  for (const id of described) named.add(id);
  if (named.size === 0) return;
  const found = await ops.customerStandings([...named]);
  for (const id of named) standings.set(id, found.get(id));
  if (described.size === 0) return;
  const contacts = await ops.contactsOf([...described]);
  for (const id of described) storedProfiles.set(id, contacts.get(id));
}

function withoutOrigin(event: NewEvent): NewEvent {
  const { origin: _origin, ...sent } = event;
  return sent;
}

/** What the store decides about tracking consent that no event says: the setting MICROFLOWS_TRACKING_DEFAULT. */
export interface TrackingPolicy {
  /** Whether a customer who gave no behavioral_tracking consent is tracked. */
  trackingGrantedByDefault: boolean;
}

const UNTRACKED = { reason: 'the customer does not allow behavioral tracking (consent.behavioral_tracking): the event was not stored' };
const WITHDRAWN = { reason: 'the customer withdrew behavioral tracking (later in this batch, or meanwhile): the event was deleted with their other behavioral events' };

/**
 * The behavioral events (core/tracking-consent) of customers whose tracking is off, by index, judged on the consent
 * the events before each one in the batch leave: from the stored consent of the customer (and of the ids the batch
 * merges into them), then folded event by event with the profile fold itself, so every way an event changes consent
 * (identify, Unsubscribed, a preference change) counts. Read without a row lock, like the client checks' contacts.
 */
async function untrackedEvents(
  ops: EventWriteOps,
  events: NewEvent[],
  accepted: number[],
  customerOf: (event: NewEvent) => string,
  plan: Pick<IdentityPlan, 'identities' | 'merges'>,
  defaultGranted: boolean,
): Promise<Map<number, { reason: string }>> {
  const dropped = new Map<number, { reason: string }>();
  if (!accepted.some((i) => isBehavioralEvent(events[i]!))) return dropped;
  const owners = accepted.map((i) => customerOf(events[i]!));
  const contacts = await ops.contactsOf([...new Set([...owners, ...plan.merges.map((m) => m.from)])]);
  const consentHolders = new Map<string, Profile>();
  const holder = (customerId: string): Profile => {
    let profile = consentHolders.get(customerId);
    if (!profile) {
      profile = emptyProfile(customerId, 0);
      profile.consent = { ...contacts.get(customerId)?.consent };
      consentHolders.set(customerId, profile);
    }
    return profile;
  };
  // A merged id's consent joins its customer's by newest time, as mergeProfiles joins them (a client login: withdrawals only).
  for (const { from, login } of plan.merges) {
    const into = holder(plan.identities.get(from) ?? from);
    for (const [kind, record] of Object.entries(contacts.get(from)?.consent ?? {})) {
      if (login && record.granted) continue;
      if ((into.consent[kind]?.at ?? -Infinity) <= record.at) into.consent[kind] = record;
    }
  }
  accepted.forEach((index, n) => {
    const event = events[index]!;
    const profile = holder(owners[n]!);
    if (!isBehavioralEvent(event)) applyEventsInPlace(profile, [{ event, now: event.receivedAt }]);
    else if (!trackingAllowed(profile, defaultGranted)) dropped.set(index, UNTRACKED);
  });
  return dropped;
}

/**
 * One batch in the caller's transaction. A customer whose batch holds an event older than what their profile
 * already folded — or whose identities merged — has their computed fields refolded from their events in time
 * order, so arrival order never changes the result. Events a client key may not send (see planIdentities and
 * refuseProfileChanges) are answered with `refused` and write nothing; behavioral events of a customer whose
 * tracking is off (see untrackedEvents) with `dropped`, and write nothing either. A batch that withdraws tracking
 * deletes the customer's behavioral events and clears their behavioral fields; every change of consent is written
 * to the consent trail with the batch.
 */
export async function recordBatch(
  ops: EventWriteOps,
  events: NewEvent[],
  needsDispatch: (event: NewEvent) => boolean,
  policy: TrackingPolicy = { trackingGrantedByDefault: true },
  softBounce: SoftBounceRules = DEFAULT_SOFT_BOUNCE_RULES,
): Promise<RecordEventResult[]> {
  const defaultGranted = policy.trackingGrantedByDefault;
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
  const storedIdentities = await ops.identities(named);
  const refused = new Map<number, Refusal>();
  const standings = new Map<string, CustomerStanding | undefined>();
  const standingOf = async (customerId: string) => {
    if (!standings.has(customerId)) standings.set(customerId, (await ops.customerStandings([customerId])).get(customerId));
    return standings.get(customerId);
  };
  const storedProfiles = new Map<string, StoredContact | undefined>();
  const profileOf = async (customerId: string) => {
    if (!storedProfiles.has(customerId)) storedProfiles.set(customerId, (await ops.contactsOf([customerId])).get(customerId));
    return storedProfiles.get(customerId);
  };
  await prefetchClientChecks(ops, events, fresh, storedIdentities, standings, storedProfiles);
  let plan = await planIdentities(events, fresh, storedIdentities, refused, standingOf);
  if (fresh.some((i) => events[i]!.origin === 'client')) {
    // A refusal can undo a join a later check relied on: plan again until no new refusal (they only grow).
    for (;;) {
      const before = refused.size;
      await refuseProfileChanges(events, fresh, plan, refused, standingOf, profileOf);
      if (refused.size === before) break;
      plan = await planIdentities(events, fresh, storedIdentities, refused, standingOf);
    }
  }
  const { identities, merges } = plan;
  const resolve = (id: string) => identities.get(id) ?? id;
  const customerOf = (event: NewEvent) => resolve(event.userId ?? event.anonymousId ?? event.customerId);
  const accepted = fresh.filter((i) => !refused.has(i));
  // Not stored, folded or dispatched: the customer's choice (answered `dropped`).
  const dropped = await untrackedEvents(ops, events, accepted, customerOf, plan, defaultGranted);
  const taken = accepted.filter((i) => !dropped.has(i));

  // In messageId order: two transactions inserting overlapping ids in opposite orders would deadlock on PostgreSQL's
  // unique index. The fold sorts by time, so ids matter only for a customer's events with equal timestamps in one batch.
  const insertOrder = [...taken].sort((a, b) => (events[a]!.messageId < events[b]!.messageId ? -1 : events[a]!.messageId > events[b]!.messageId ? 1 : a - b));
  const insertedIds = await ops.insertEvents(
    insertOrder.map((index) => {
      const event = events[index]!;
      return newEventRow(event, customerOf(event), !needsDispatch(event));
    }),
  );
  const lost = taken.filter((i) => !insertedIds.has(events[i]!.messageId)).map((i) => events[i]!.messageId);
  if (lost.length > 0) for (const row of await ops.storedEvents(lost)) stored.set(row.message_id, row);

  // The events this transaction stored, by messageId, and grouped by their (resolved) customer.
  const firstCopy = new Map<string, StoredEvent>();
  const newEvents = new Map<string, StoredEvent[]>();
  for (const index of taken) {
    const event = events[index]!;
    const id = insertedIds.get(event.messageId);
    if (id === undefined) continue;
    const storedEvent: StoredEvent = { ...withoutOrigin(event), customerId: customerOf(event), id, dispatched: !needsDispatch(event) };
    firstCopy.set(event.messageId, storedEvent);
    const list = newEvents.get(storedEvent.customerId) ?? [];
    list.push(storedEvent);
    newEvents.set(storedEvent.customerId, list);
  }

  const at = events[0]!.receivedAt;
  const profiles = await ops.profilesForUpdate([...newEvents.keys(), ...merges.flatMap((m) => [m.from, m.into])], at);
  const storedEmails = new Map([...profiles].map(([id, profile]) => [id, profile.email]));
  // Consent as stored, for the trail (what changed) and for a withdrawal of tracking.
  const consentBefore = new Map([...profiles].map(([id, profile]) => [id, { consent: { ...profile.consent } }]));
  const storedConsent = (customerId: string) => consentBefore.get(customerId) ?? { consent: {} };
  const refold = new Set<string>();
  for (const { from, into, login } of merges) {
    await ops.moveCustomer(from, into, at);
    const source = profiles.get(from);
    if (source) profiles.set(into, mergeProfiles(profiles.get(into) ?? emptyProfile(into, source.updatedAt), login ? loginMergeSource(source) : source, source.updatedAt));
    profiles.delete(from);
    refold.add(into);
    refold.delete(from);
  }

  // The consent trail: what merges brought (no event of the batch made it), then each event's own change, in time
  // order, so a batch that refuses and grants again records both.
  const trail: ConsentChange[] = [];
  for (const into of new Set(merges.map((m) => resolve(m.into)))) {
    const merged = profiles.get(into);
    if (merged) trail.push(...consentChanges(into, storedConsent(into).consent, merged.consent, at, () => null));
  }
  for (const [customerId, list] of newEvents) {
    list.sort((a, b) => a.timestamp - b.timestamp || a.id - b.id);
    const profile = profiles.get(customerId) ?? emptyProfile(customerId, list[0]!.receivedAt);
    if (needsRefold(profile.computed, list.find(isFolded) ?? list[0]!)) refold.add(customerId);
    // Every profile in `profiles` was parsed from its row (or made) in this transaction: ours to change.
    for (const event of list) {
      const consent = { ...profile.consent };
      applyEventsInPlace(profile, [{ event, now: event.receivedAt }]);
      if (event.type !== 'page' && event.type !== 'screen') trail.push(...consentChanges(customerId, consent, profile.consent, at, () => event.messageId));
    }
    profiles.set(customerId, profile);
  }
  // Withdrawing tracking deletes the customer's behavioral events (kept ones, an order, stay) and refolds the rest:
  // what a customer expects of "stop tracking me", rather than their browsing lingering until retention. So do
  // behavioral events stored for an untracked customer despite untrackedEvents: read without a lock, it can miss a
  // withdrawal committed meanwhile by a batch that named the customer by another id (PostgreSQL).
  const withdrawn = new Set<string>();
  for (const customerId of new Set([...newEvents.keys(), ...refold])) {
    const profile = profiles.get(customerId);
    if (!profile) continue;
    const slipped = () => !trackingAllowed(profile, defaultGranted) && (newEvents.get(customerId) ?? []).some(isBehavioralEvent);
    if (!trackingWithdrawn(storedConsent(customerId), profile, defaultGranted) && !slipped()) continue;
    await ops.deleteBehavioralEvents(customerId);
    withdrawn.add(customerId);
    refold.add(customerId);
  }
  for (const customerId of refold) {
    const profile = profiles.get(customerId) ?? emptyProfile(customerId, at);
    profile.computed = foldAll(await ops.behaviorEventsOf(customerId), await ops.computedBaseOf(customerId));
    profiles.set(customerId, profile);
  }
  const written = [...new Set([...newEvents.keys(), ...refold])];
  for (const customerId of written) {
    const profile = profiles.get(customerId)!;
    // Kept events fold into behavioral fields too (an order empties the cart and adds to the score): cleared each time.
    if (!trackingAllowed(profile, defaultGranted)) profile.computed = withoutBehavioralFields(profile.computed);
  }
  await ops.writeProfiles(written.map((customerId) => ({ profile: profiles.get(customerId)!, storedEmail: storedEmails.has(customerId) ? storedEmails.get(customerId) : undefined })));
  // Bounces, complaints and unsubscribes go on the suppression list with their events (store/suppression-writes.ts).
  await writeSuppressionChanges(ops, newEvents, events, profiles, softBounce);
  if (trail.length > 0) await ops.recordConsentChanges(trail);
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

  const refusedIds = new Map([...refused].map(([index, refusal]) => [events[index]!.messageId, refusal]));
  const droppedIds = new Map([...dropped].map(([index, drop]) => [events[index]!.messageId, drop]));
  for (const customerId of withdrawn) {
    for (const event of newEvents.get(customerId) ?? []) {
      if (!isBehavioralEvent(event)) continue;
      firstCopy.delete(event.messageId);
      droppedIds.set(event.messageId, WITHDRAWN);
    }
  }
  const refusedOwners = [...refused.keys(), ...dropped.keys()].map((index) => customerOf(events[index]!));
  const otherOwners = [...new Set([...[...stored.values()].map((row) => row.customer_id), ...refusedOwners].filter((id) => !profiles.has(id)))];
  if (otherOwners.length > 0) for (const [id, profile] of await ops.profiles(otherOwners)) profiles.set(id, profile);
  const freshIndexes = new Set(taken);
  return events.map((event, index) => {
    const refusal = refusedIds.get(event.messageId);
    if (refusal) {
      // Nothing of it was written: answered with the event as sent (no id, nothing to dispatch) and the profile as stored.
      const customerId = customerOf(event);
      return { duplicate: false, refused: refusal, event: { ...withoutOrigin(event), customerId, id: 0, dispatched: true }, profile: profiles.get(customerId) ?? emptyProfile(customerId, event.receivedAt) };
    }
    const drop = droppedIds.get(event.messageId);
    if (drop) {
      // Not stored (or deleted with the withdrawal): answered like a refusal, without an id and with nothing to dispatch.
      const customerId = customerOf(event);
      return { duplicate: false, dropped: drop, event: { ...withoutOrigin(event), customerId, id: 0, dispatched: true }, profile: profiles.get(customerId) ?? emptyProfile(customerId, event.receivedAt) };
    }
    const inserted = firstCopy.get(event.messageId);
    if (inserted && freshIndexes.has(index)) return { duplicate: false, event: inserted, profile: profiles.get(inserted.customerId)! };
    // A repeat answers with the event as stored — the first copy in this batch, or the row from before — and
    // with its owner as of now (a merge in this batch may have moved it).
    const row = stored.get(event.messageId);
    const existing: StoredEvent = inserted ?? { ...toStoredEvent(row!), customerId: resolve(row!.customer_id) };
    return { duplicate: true, event: existing, profile: profiles.get(existing.customerId) ?? emptyProfile(existing.customerId, existing.receivedAt) };
  });
}
