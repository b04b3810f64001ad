// The one Store implementation: Kysely queries that run unchanged on SQLite and PostgreSQL, with the few
// dialect differences (row locks, boolean columns) kept in small helpers at the top of the class.
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Product } from '../core/catalog';
import type { RfmBoundaries, RfmInput } from '../core/rfm';
import type { FlowDefinition } from '../core/flow-types';
import { BEHAVIOR_EVENT_TYPES, type BehaviorEvent, type Computed } from '../core/behavior';
import type { EventType } from '../core/event';
import { applyProfileUpdate, emptyProfile, type Profile, type ProfileEvent } from '../core/profile';
import { FlowVersionConflictError } from './errors';
import * as apiKeys from './api-keys-store';
import * as retention from './retention-store';
import * as consent from './consent-store';
import { isBehavioralEvent, withoutBehavioralFields, type ConsentChange } from '../core/tracking-consent';
import * as dataKeys from './data-keys-store';
import type { DataKeyRecord } from './data-keys-store';
import * as suppressions from './suppressions-store';
import * as sendSlots from './send-slots-store';
import * as experiments from './experiments-store';
import * as metrics from './metrics-store';
import type { MetricRow, MetricsFold, MetricsQuery } from './metrics-store';
import type { ExperimentAssignment, ExperimentRecord } from './experiments-store';
import { engagementSince, type EngagementRow } from './engagement-store';
import type { WaitingSlot } from '../core/send-slot';
import { DEFAULT_SOFT_BOUNCE_RULES, type EntryDefaults, type SoftBounceRules, type SuppressionEntry, type SuppressionLift, type SuppressionReason } from '../core/suppression';
import * as customerData from './customer-data-store';
import type { CustomerExport, EraseOptions, ErasureRecord, ErasureResult } from './customer-data-store';
import * as audit from './audit-store';
import * as offerCodes from './offer-codes-store';
import * as catalog from './catalog-store';
import { chunks } from './chunks';
import type { OfferPoolStats } from '../core/offer-codes';
import type { AuditRows } from '../core/audit';
import type { ApiKeyRecord } from '../core/api-keys';
import { migrateToLatest, type StoreDialect } from './migrations';
import { newEventRow, recordBatch, type CustomerStanding, type EventWriteOps, type NewEventRow, type ProfileWrite, type StoredContact, type TrackingPolicy } from './record-events';
import { SYSTEM_EVENT_NAMES } from '../core/source-policy';
import { readProfileAsOf } from './profile-as-of';
import { parseJson, profileRow, SEGMENT_CHANGE_NAMES, toDecision, toFlowEntry, toOutboxMessage, toProfile, toProfileEvent, toRecordedSegmentChange, toSend, toStoredEvent } from './rows';
import { SEGMENT_ENTERED } from '../core/segment-membership';
import {
  TABLES,
  type Database,
  type EventsTable,
} from './schema';
import type {
  DecisionRecord,
  FlowEntry,
  NewEvent,
  OutboxMessage,
  RecordEventResult,
  SegmentDecision,
  SegmentEventRead,
  SegmentFactsRead,
  SegmentReadPlan,
  SegmentStateRecord,
  SegmentUpdate,
  ClaimSendInput,
  ReserveSendResult,
  SendRecord,
  SendSlotCounts,
  Store,
  StoredEvent,
} from './store';

export interface KyselyStoreOptions {
  /** Clock for times the store stamps itself (profile updates, flow registration); tests pin it. */
  now?: () => number;
  /** When repeated soft bounces suppress an address (config MICROFLOWS_SOFT_BOUNCE_*); default core/suppression's. */
  softBounce?: SoftBounceRules;
  /** Whether a customer who gave no behavioral_tracking consent is tracked (config MICROFLOWS_TRACKING_DEFAULT); default yes. */
  trackingGrantedByDefault?: boolean;
}

/** Runs `work` in one write transaction with a backend's own statements (store/sqlite-ingest.ts); else Kysely's. */
export type EventWriter = <T>(work: (ops: EventWriteOps) => Promise<T>) => Promise<T>;

type Db = Kysely<Database> | Transaction<Database>;

/** better-sqlite3 cannot bind booleans. */
function dbBool(dialect: StoreDialect, value: boolean): number | boolean {
  return dialect === 'sqlite' ? (value ? 1 : 0) : value;
}

/** recordBatch's statements as Kysely queries in a transaction: PostgreSQL's ingest path, and any backend's fallback. */
class KyselyEventOps implements EventWriteOps {
  constructor(
    private readonly trx: Transaction<Database>,
    private readonly dialect: StoreDialect,
  ) {}

  async storedEvents(messageIds: string[]): Promise<Array<Selectable<EventsTable>>> {
    const rows: Array<Selectable<EventsTable>> = [];
    for (const ids of chunks(messageIds)) rows.push(...(await this.trx.selectFrom('events').selectAll().where('message_id', 'in', ids).execute()));
    return rows;
  }

  /**
   * PostgreSQL: serializes transactions that touch the same ids, before the identity map is read, so an event
   * racing the identify that merges its anonymousId, or two users claiming one anonymousId, see each other's
   * outcome. Transaction-scoped advisory locks, taken in one sorted order so two batches cannot deadlock.
   */
  async lockIdentities(ids: string[]): Promise<void> {
    if (this.dialect !== 'postgres' || ids.length === 0) return;
    await sql`select pg_advisory_xact_lock(h) from (select distinct hashtext(x) as h from unnest(${ids}::text[]) as x order by h) as locks`.execute(this.trx);
  }

  async identities(ids: string[]): Promise<Map<string, string>> {
    const map = new Map<string, string>();
    for (const batch of chunks(ids)) {
      for (const row of await this.trx.selectFrom('identities').select(['alias_id', 'customer_id']).where('alias_id', 'in', batch).execute()) map.set(row.alias_id, row.customer_id);
    }
    return map;
  }

  /** One id at a time: asked only for the few customers a client key's joins and identifies name. */
  async customerStandings(customerIds: string[]): Promise<Map<string, CustomerStanding>> {
    const standings = new Map<string, CustomerStanding>();
    for (const id of new Set(customerIds)) {
      const byUser = await this.trx
        .selectFrom('events')
        .select('id')
        .where('customer_id', '=', id)
        .where('user_id', 'is not', null)
        // Only microflows' own track events (engagement, segment changes) carry a userId without identifying anyone.
        .where((eb) => eb.or([eb('type', '<>', 'track'), eb('name', 'is', null), eb('name', 'not in', [...SYSTEM_EVENT_NAMES])]))
        .limit(1)
        .executeTakeFirst();
      const owner = byUser ? undefined : await this.trx.selectFrom('identities').select('alias_id').where('customer_id', '=', id).limit(1).executeTakeFirst();
      if (byUser || owner) standings.set(id, 'identified');
      else if (await this.trx.selectFrom('events').select('id').where('customer_id', '=', id).limit(1).executeTakeFirst()) standings.set(id, 'anonymous');
    }
    return standings;
  }

  async insertEvents(rows: NewEventRow[]): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    for (const batch of chunks(rows)) {
      const inserted = await this.trx
        .insertInto('events')
        .values(batch.map((row) => ({ ...row, dispatched: dbBool(this.dialect, row.dispatched) })))
        // A concurrent writer of the same messageId (PostgreSQL) makes ours a no-op; it is then reported as a duplicate.
        .onConflict((oc) => oc.column('message_id').doNothing())
        .returning(['id', 'message_id'])
        .execute();
      for (const row of inserted) ids.set(row.message_id, row.id);
    }
    return ids;
  }

  /**
   * On PostgreSQL the rows are locked, in id order so two batches never deadlock, after creating absent ones (FOR
   * UPDATE cannot lock a row that does not exist yet); SQLite needs no lock because its write transactions are serial.
   */
  async profilesForUpdate(customerIds: string[], now: number): Promise<Map<string, Profile>> {
    const ids = [...new Set(customerIds)].sort();
    const profiles = new Map<string, Profile>();
    for (const batch of chunks(ids)) {
      if (this.dialect === 'postgres') {
        await this.trx
          .insertInto('profiles')
          .values(batch.map((id) => profileRow(emptyProfile(id, now))))
          .onConflict((oc) => oc.column('customer_id').doNothing())
          .execute();
      }
      let query = this.trx.selectFrom('profiles').selectAll().where('customer_id', 'in', batch).orderBy('customer_id');
      if (this.dialect === 'postgres') query = query.forUpdate();
      for (const row of await query.execute()) profiles.set(row.customer_id, toProfile(row));
    }
    return profiles;
  }

  async moveCustomer(from: string, into: string, at: number): Promise<void> {
    await this.trx.updateTable('events').set({ customer_id: into }).where('customer_id', '=', from).execute();
    await this.trx.updateTable('identities').set({ customer_id: into }).where('customer_id', '=', from).execute();
    await this.trx
      .insertInto('identities')
      .values({ alias_id: from, customer_id: into, created_at: at })
      .onConflict((oc) => oc.column('alias_id').doUpdateSet({ customer_id: into }))
      .execute();
    // The merged-away customer's purged events (event retention) count on in `into`'s refold, unless `into` has a baseline of its own.
    await this.trx
      .updateTable('profiles')
      .set((eb) => ({ computed_base: eb.fn.coalesce('computed_base', eb.selectFrom('profiles as merged').select('merged.computed_base').where('merged.customer_id', '=', from)) }))
      .where('customer_id', '=', into)
      .execute();
    await this.trx.deleteFrom('profiles').where('customer_id', '=', from).execute();
    // The merged customer keeps the earlier entry of a segment both were in; the merge marks them due.
    await this.trx
      .deleteFrom('segment_members')
      .where('customer_id', '=', from)
      .where('segment_id', 'in', this.trx.selectFrom('segment_members').select('segment_id').where('customer_id', '=', into))
      .execute();
    await this.trx.updateTable('segment_members').set({ customer_id: into }).where('customer_id', '=', from).execute();
    await this.trx.deleteFrom('segment_checks').where('customer_id', '=', from).execute();
  }

  async behaviorEventsOf(customerId: string): Promise<BehaviorEvent[]> {
    const rows = await this.trx
      .selectFrom('events')
      .select(['type', 'name', 'properties', 'traits', 'timestamp'])
      .where('customer_id', '=', customerId)
      .where('type', 'in', [...BEHAVIOR_EVENT_TYPES])
      .orderBy('timestamp', 'asc')
      .orderBy('id', 'asc')
      .execute();
    return rows.map((r) => ({ type: r.type as EventType, name: r.name, properties: parseJson(r.properties), traits: parseJson(r.traits), timestamp: r.timestamp }));
  }

  async computedBaseOf(customerId: string): Promise<Computed | null> {
    const row = await this.trx.selectFrom('profiles').select('computed_base').where('customer_id', '=', customerId).executeTakeFirst();
    return row?.computed_base ? parseJson<Computed>(row.computed_base) : null;
  }

  async writeProfiles(writes: ProfileWrite[]): Promise<void> {
    for (const batch of chunks(writes)) {
      await this.trx
        .insertInto('profiles')
        .values(batch.map((w) => profileRow(w.profile)))
        .onConflict((oc) =>
          oc.column('customer_id').doUpdateSet((eb) => ({
            email: eb.ref('excluded.email'),
            timezone: eb.ref('excluded.timezone'),
            traits: eb.ref('excluded.traits'),
            trait_times: eb.ref('excluded.trait_times'),
            computed: eb.ref('excluded.computed'),
            consent: eb.ref('excluded.consent'),
            tags: eb.ref('excluded.tags'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .execute();
    }
  }

  async profiles(customerIds: string[]): Promise<Map<string, Profile>> {
    const profiles = new Map<string, Profile>();
    for (const ids of chunks(customerIds)) {
      for (const row of await this.trx.selectFrom('profiles').selectAll().where('customer_id', 'in', ids).execute()) profiles.set(row.customer_id, toProfile(row));
    }
    return profiles;
  }

  async contactsOf(customerIds: string[]): Promise<Map<string, StoredContact>> {
    const contacts = new Map<string, StoredContact>();
    for (const ids of chunks(customerIds)) {
      for (const row of await this.trx.selectFrom('profiles').select(['customer_id', 'email', 'consent']).where('customer_id', 'in', ids).execute()) {
        contacts.set(row.customer_id, { email: row.email, consent: parseJson(row.consent) });
      }
    }
    return contacts;
  }

  recordConsentChanges(changes: ConsentChange[]): Promise<void> {
    return consent.insertConsentChanges(this.trx, this.dialect, changes);
  }

  /** Read, then deleted by id: the rule (core/tracking-consent) is code, not a list SQL could hold. */
  async deleteBehavioralEvents(customerId: string): Promise<number> {
    const rows = await this.trx.selectFrom('events').select(['id', 'type', 'name']).where('customer_id', '=', customerId).execute();
    const ids = rows.filter((row) => isBehavioralEvent({ type: row.type as EventType, name: row.name })).map((row) => row.id);
    for (const batch of chunks(ids)) await this.trx.deleteFrom('events').where('id', 'in', batch).execute();
    // What retention folded out of purged behavioral events goes too: the refold after a withdrawal starts from the base.
    const base = await this.computedBaseOf(customerId);
    if (base) await this.trx.updateTable('profiles').set({ computed_base: JSON.stringify(withoutBehavioralFields(base)) }).where('customer_id', '=', customerId).execute();
    return ids.length;
  }

  async writeSuppressions(entries: SuppressionEntry[], lifts: SuppressionLift[]): Promise<void> {
    // Lifts first: a batch that both lifts and (for another reason) adds an entry of one address keeps the addition.
    await suppressions.liftSuppressions(this.trx, lifts);
    await suppressions.upsertSuppressions(this.trx, entries);
  }

  async markSegmentChecksDue(due: Array<{ customerId: string; at: number }>): Promise<void> {
    for (const batch of chunks([...due].sort((a, b) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : 0)))) {
      await this.trx
        .insertInto('segment_checks')
        .values(batch.map((d) => ({ customer_id: d.customerId, next_check_at: d.at })))
        // Already due earlier: left as it is (no new row version).
        .onConflict((oc) =>
          oc
            .column('customer_id')
            .doUpdateSet({ next_check_at: (eb) => eb.ref('excluded.next_check_at') })
            .where((eb) => eb.or([eb('segment_checks.next_check_at', 'is', null), eb('excluded.next_check_at', '<', eb.ref('segment_checks.next_check_at'))])),
        )
        .execute();
    }
  }

  async profileForSegments(customerId: string): Promise<Profile | undefined> {
    let query = this.trx.selectFrom('profiles').selectAll().where('customer_id', '=', customerId);
    if (this.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirst();
    return row ? toProfile(row) : undefined;
  }

  async lockSegmentCheck(customerId: string): Promise<number | null> {
    await this.trx.insertInto('segment_checks').values({ customer_id: customerId, next_check_at: null }).onConflict((oc) => oc.column('customer_id').doNothing()).execute();
    let query = this.trx.selectFrom('segment_checks').select('next_check_at').where('customer_id', '=', customerId);
    if (this.dialect === 'postgres') query = query.forUpdate();
    const row = await query.executeTakeFirstOrThrow();
    return row.next_check_at === null ? null : Number(row.next_check_at);
  }

  async segmentEvents(customerId: string, reads: SegmentEventRead[]): Promise<SegmentFactsRead['events']> {
    const events: SegmentFactsRead['events'] = [];
    for (const read of reads) {
      let query = this.trx.selectFrom('events').select(['properties', 'timestamp']).where('customer_id', '=', customerId).where('name', '=', read.name).where('type', '=', 'track');
      if (read.since !== null) query = query.where('timestamp', '>=', read.since);
      for (const row of await query.execute()) events.push({ name: read.name, properties: parseJson(row.properties), timestamp: Number(row.timestamp) });
    }
    return events;
  }

  async segmentHistory(customerId: string, from: number): Promise<Pick<SegmentFactsRead, 'recorded' | 'eventTimes'>> {
    const recorded = await this.trx
      .selectFrom('events')
      .select(['message_id', 'name', 'properties', 'timestamp'])
      .where('customer_id', '=', customerId)
      .where('name', 'in', SEGMENT_CHANGE_NAMES)
      .where('timestamp', '>=', from)
      .orderBy('timestamp')
      .orderBy('id')
      .execute();
    const times = await this.trx
      .selectFrom('events')
      .select('timestamp')
      .where('customer_id', '=', customerId)
      .where('timestamp', '>=', from)
      .where((eb) => eb.or([eb('name', 'is', null), eb('name', 'not in', SEGMENT_CHANGE_NAMES)]))
      .execute();
    return { recorded: recorded.map(toRecordedSegmentChange), eventTimes: times.map((r) => Number(r.timestamp)) };
  }

  async profileEventsOf(customerId: string): Promise<ProfileEvent[]> {
    const rows = await this.trx
      .selectFrom('events')
      .select(['type', 'name', 'properties', 'traits', 'timestamp'])
      .where('customer_id', '=', customerId)
      .where((eb) => eb.or([eb('name', 'is', null), eb('name', 'not in', SEGMENT_CHANGE_NAMES)]))
      .orderBy('timestamp')
      .orderBy('id')
      .execute();
    return rows.map(toProfileEvent);
  }

  async lastSegmentEntry(customerId: string, segmentId: string, before: number): Promise<number | null> {
    const rows = await this.trx
      .selectFrom('events')
      .select(['message_id', 'name', 'properties', 'timestamp'])
      .where('customer_id', '=', customerId)
      .where('name', '=', SEGMENT_ENTERED)
      .where('timestamp', '<', before)
      .orderBy('timestamp', 'desc')
      .execute();
    return rows.map(toRecordedSegmentChange).find((c) => c.segmentId === segmentId)?.at ?? null;
  }

  async segmentMembership(customerId: string): Promise<Map<string, number>> {
    const rows = await this.trx.selectFrom('segment_members').select(['segment_id', 'entered_at']).where('customer_id', '=', customerId).execute();
    return new Map(rows.map((r) => [r.segment_id, Number(r.entered_at)]));
  }

  async writeSegmentMembership(customerId: string, change: { enter: Array<{ segmentId: string; at: number }>; exit: string[]; retract: string[] }, nextCheckAt: number | null): Promise<void> {
    if (change.enter.length > 0) {
      await this.trx
        .insertInto('segment_members')
        .values(change.enter.map(({ segmentId, at }) => ({ segment_id: segmentId, customer_id: customerId, entered_at: at })))
        .onConflict((oc) => oc.columns(['segment_id', 'customer_id']).doUpdateSet((eb) => ({ entered_at: eb.ref('excluded.entered_at') })))
        .execute();
    }
    if (change.exit.length > 0) await this.trx.deleteFrom('segment_members').where('customer_id', '=', customerId).where('segment_id', 'in', change.exit).execute();
    if (change.retract.length > 0) await this.trx.deleteFrom('events').where('customer_id', '=', customerId).where('message_id', 'in', change.retract).execute();
    await this.trx.updateTable('segment_checks').set({ next_check_at: nextCheckAt }).where('customer_id', '=', customerId).execute();
  }
}

export class KyselyStore implements Store {
  private readonly now: () => number;
  private readonly softBounce: SoftBounceRules;
  private readonly tracking: TrackingPolicy;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: StoreDialect,
    options: KyselyStoreOptions = {},
    /** Frees the connection; a store sharing its connection with others passes a reference-counted release. */
    private readonly release: () => Promise<void> = () => db.destroy(),
    /** The ingest path's statements, when the backend has faster ones than Kysely's (SQLite). */
    private readonly eventWriter?: EventWriter,
  ) {
    this.now = options.now ?? Date.now;
    this.softBounce = options.softBounce ?? DEFAULT_SOFT_BOUNCE_RULES;
    this.tracking = { trackingGrantedByDefault: options.trackingGrantedByDefault ?? true };
  }

  // --- dialect differences ---------------------------------------------------------------

  private bool(value: boolean): number | boolean {
    return dbBool(this.dialect, value);
  }

  /** A literal (not a parameter), so PostgreSQL's planner can match the partial undispatched index. */
  private falseLiteral() {
    return this.dialect === 'sqlite' ? sql.lit(0) : sql.lit(false);
  }

  private async readProfile(db: Db, customerId: string): Promise<Profile | undefined> {
    const row = await db.selectFrom('profiles').selectAll().where('customer_id', '=', customerId).executeTakeFirst();
    return row ? toProfile(row) : undefined;
  }

  private async writeProfile(db: Db, profile: Profile): Promise<void> {
    const { customer_id: _key, ...changes } = profileRow(profile);
    await db
      .insertInto('profiles')
      .values(profileRow(profile))
      .onConflict((oc) => oc.column('customer_id').doUpdateSet(changes))
      .execute();
  }

  // --- lifecycle -------------------------------------------------------------------------

  migrate(): Promise<void> {
    return migrateToLatest(this.db as Kysely<any>, this.dialect);
  }

  /** Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  // --- events and profiles ---------------------------------------------------------------

  async recordEvent(event: NewEvent, options: { needsDispatch: boolean }): Promise<RecordEventResult> {
    const [result] = await this.recordEvents([event], { needsDispatch: () => options.needsDispatch });
    return result!;
  }

  recordEvents(events: NewEvent[], options: { needsDispatch: (event: NewEvent) => boolean }): Promise<RecordEventResult[]> {
    if (events.length === 0) return Promise.resolve([]);
    if (this.eventWriter) return this.eventWriter((ops) => recordBatch(ops, events, options.needsDispatch, this.tracking, this.softBounce));
    return this.db.transaction().execute((trx) => recordBatch(new KyselyEventOps(trx, this.dialect), events, options.needsDispatch, this.tracking, this.softBounce));
  }

  async markDispatched(eventIds: number[]): Promise<void> {
    for (const ids of chunks(eventIds)) {
      await this.db.updateTable('events').set({ dispatched: this.bool(true) }).where('id', 'in', ids).execute();
    }
  }

  async listUndispatched(limit: number, afterId?: number): Promise<StoredEvent[]> {
    let query = this.db.selectFrom('events').selectAll().where('dispatched', '=', this.falseLiteral());
    if (afterId !== undefined) query = query.where('id', '>', afterId);
    const rows = await query.orderBy('id', 'asc').limit(limit).execute();
    return rows.map(toStoredEvent);
  }

  async undispatchedSummary(): Promise<{ count: number; oldestReceivedAt: number | null }> {
    const row = await this.db
      .selectFrom('events')
      .select((eb) => [eb.fn.countAll().as('count'), eb.fn.min('received_at').as('oldest')])
      .where('dispatched', '=', this.falseLiteral())
      .executeTakeFirst();
    return { count: Number(row?.count ?? 0), oldestReceivedAt: row?.oldest === null || row?.oldest === undefined ? null : Number(row.oldest) };
  }

  profileAsOf(customerId: string, at: number, options: { withSegments?: boolean } = {}): Promise<Profile | undefined> {
    return readProfileAsOf(this.db, customerId, at, options);
  }

  /** An empty `names` list matches no event (it is a filter, not "any"). */
  async eventsOf(customerId: string, filter: { names?: string[]; since?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    if (filter.names && filter.names.length === 0) return [];
    let query = this.db.selectFrom('events').selectAll().where('customer_id', '=', customerId).where('type', '=', 'track');
    if (filter.names) query = query.where('name', 'in', filter.names);
    if (filter.since !== undefined) query = query.where('timestamp', '>=', filter.since);
    query = query.orderBy('timestamp', 'desc').orderBy('id', 'desc');
    if (filter.limit !== undefined) query = query.limit(filter.limit);
    return (await query.execute()).map(toStoredEvent);
  }

  async getProfile(customerId: string, options: { withSegments?: boolean } = {}): Promise<Profile | undefined> {
    const profile = await this.readProfile(this.db, customerId);
    if (profile && options.withSegments) profile.segments = (await this.segmentsOf(customerId)).map((m) => m.segmentId);
    return profile;
  }

  async listProfiles(page: { after: string | null; limit: number }): Promise<Profile[]> {
    let query = this.db.selectFrom('profiles').selectAll().orderBy('customer_id').limit(page.limit);
    if (page.after !== null) query = query.where('customer_id', '>', page.after);
    return (await query.execute()).map(toProfile);
  }

  async resolveCustomerId(id: string): Promise<string> {
    const row = await this.db.selectFrom('identities').select('customer_id').where('alias_id', '=', id).executeTakeFirst();
    return row?.customer_id ?? id;
  }

  async aliasesOf(customerId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('identities').select('alias_id').where('customer_id', '=', customerId).orderBy('alias_id').execute();
    return rows.map((r) => r.alias_id);
  }

  async customerIdByEmail(email: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('profiles')
      .select('customer_id')
      .where('email', '=', email.toLowerCase())
      .orderBy('updated_at', 'desc')
      .executeTakeFirst();
    return row?.customer_id;
  }

  async recentEvents(customerId: string, limit: number): Promise<StoredEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('timestamp', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toStoredEvent);
  }

  updateProfile(customerId: string, update: { set: Record<string, unknown>; addTags: string[]; removeTags: string[] }): Promise<Profile> {
    return this.db.transaction().execute(async (trx) => {
      const now = this.now();
      // The ingest path's read-for-update: on PostgreSQL the row is created if absent, then locked.
      const stored = (await new KyselyEventOps(trx, this.dialect).profilesForUpdate([customerId], now)).get(customerId);
      const profile = applyProfileUpdate(stored ?? emptyProfile(customerId, now), update, now);
      await this.writeProfile(trx, profile);
      return profile;
    });
  }

  async tableCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const table of TABLES) {
      const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(this.db);
      counts[table] = Number(rows[0]?.n ?? 0);
    }
    return counts;
  }

  // --- flows and arbitration -------------------------------------------------------------

  async registerFlowVersion(flow: FlowDefinition): Promise<'registered' | 'unchanged'> {
    const inserted = await this.db
      .insertInto('flow_versions')
      .values({
        flow_id: flow.id,
        version: flow.version,
        sha256: flow.source.sha256,
        source_file: flow.source.file,
        definition: JSON.stringify(flow),
        registered_at: this.now(),
      })
      .onConflict((oc) => oc.columns(['flow_id', 'version']).doNothing())
      .returning('flow_id')
      .executeTakeFirst();
    if (inserted) return 'registered';
    const existing = await this.db
      .selectFrom('flow_versions')
      .select('sha256')
      .where('flow_id', '=', flow.id)
      .where('version', '=', flow.version)
      .executeTakeFirstOrThrow();
    if (existing.sha256 === flow.source.sha256) return 'unchanged';
    throw new FlowVersionConflictError(flow.id, flow.version, flow.source.file, existing.sha256, flow.source.sha256);
  }

  async getFlowVersion(flowId: string, version: number): Promise<FlowDefinition | undefined> {
    const row = await this.db
      .selectFrom('flow_versions')
      .select('definition')
      .where('flow_id', '=', flowId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row ? parseJson<FlowDefinition>(row.definition) : undefined;
  }

  async latestFlowVersions(): Promise<FlowDefinition[]> {
    const rows = await this.db
      .selectFrom('flow_versions as fv')
      .innerJoin(
        (eb) => eb.selectFrom('flow_versions').select((e) => ['flow_id', e.fn.max('version').as('version')]).groupBy('flow_id').as('latest'),
        (join) => join.onRef('latest.flow_id', '=', 'fv.flow_id').onRef('latest.version', '=', 'fv.version'),
      )
      .select('fv.definition')
      .orderBy('fv.flow_id')
      .execute();
    return rows.map((r) => parseJson<FlowDefinition>(r.definition));
  }

  /** Counts `entered` (store/metrics-store) in the same transaction, when the row is new. */
  recordFlowEntry(entry: Omit<FlowEntry, 'endedAt' | 'outcome' | 'conversionMessageId'>): Promise<void> {
    return this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('flow_entries')
        .values({
          workflow_id: entry.workflowId,
          customer_id: entry.customerId,
          flow_id: entry.flowId,
          flow_version: entry.flowVersion,
          run_number: entry.runNumber,
          entered_at: entry.enteredAt,
          ended_at: null,
          outcome: null,
          conversion_message_id: null,
          trigger_message_id: entry.triggerMessageId,
          holdout: this.bool(entry.holdout === true),
        })
        .onConflict((oc) => oc.column('workflow_id').doNothing())
        .returning(['flow_id', 'flow_version', 'entered_at', 'holdout'])
        .executeTakeFirst();
      if (inserted) await metrics.countEntry(trx, inserted);
    });
  }

  /** A run never recorded with recordFlowEntry is ignored: there is nothing to end. */
  async recordRunOutcome(workflowId: string, outcome: string, at: number, conversionMessageId: string | null = null): Promise<void> {
    await this.db
      .updateTable('flow_entries')
      .set({ outcome, ended_at: at, conversion_message_id: conversionMessageId })
      .where('workflow_id', '=', workflowId)
      .where('outcome', 'is', null)
      .execute();
  }

  async inactiveCustomers(query: {
    triggers: Array<{ flowId: string; event: string; before: number }>;
    cursor: string | null;
    limit: number;
  }): Promise<{ customers: Array<{ customerId: string; flowId: string; lastEventAt: number }>; nextCursor: string | null }> {
    // cursor = "<trigger index>\u0000<last customer id>": walk triggers in order, customers by id.
    const [indexText, afterCustomer] = query.cursor ? query.cursor.split('\u0000') : ['0', ''];
    const customers: Array<{ customerId: string; flowId: string; lastEventAt: number }> = [];
    for (let index = Number(indexText); index < query.triggers.length; index++) {
      const trigger = query.triggers[index]!;
      const after = index === Number(indexText) ? (afterCustomer ?? '') : '';
      const rows = await this.db
        .selectFrom('events as e')
        .select(['e.customer_id as customerId', (eb) => eb.fn.max('e.timestamp').as('lastEventAt')])
        .where('e.type', '=', 'track')
        .where('e.name', '=', trigger.event)
        .where('e.customer_id', '>', after)
        .groupBy('e.customer_id')
        .having((eb) => eb.fn.max('e.timestamp'), '<', trigger.before)
        .orderBy('e.customer_id')
        .limit(query.limit)
        .execute();
      const lastSeen = rows.at(-1)?.customerId;
      const entered = rows.length
        ? await this.db
            .selectFrom('flow_entries')
            .select(['customer_id', (eb) => eb.fn.max('entered_at').as('lastEntered')])
            .where('flow_id', '=', trigger.flowId)
            .where('customer_id', 'in', rows.map((r) => r.customerId))
            .groupBy('customer_id')
            .execute()
        : [];
      const lastEntered = new Map(entered.map((e) => [e.customer_id, Number(e.lastEntered)]));
      for (const row of rows) {
        const lastEventAt = Number(row.lastEventAt);
        const enteredAt = lastEntered.get(row.customerId);
        if (enteredAt === undefined || enteredAt < lastEventAt) customers.push({ customerId: row.customerId, flowId: trigger.flowId, lastEventAt });
      }
      if (rows.length === query.limit && lastSeen !== undefined) return { customers, nextCursor: `${index}\u0000${lastSeen}` };
    }
    return { customers, nextCursor: null };
  }

  // --- segments ----------------------------------------------------------------------------

  /** Runs `work` in one write transaction with the ingest path's statements, so recorded events go the same way. */
  private writeTransaction<T>(work: (ops: EventWriteOps) => Promise<T>): Promise<T> {
    if (this.eventWriter) return this.eventWriter(work);
    return this.db.transaction().execute((trx) => work(new KyselyEventOps(trx, this.dialect)));
  }

  updateSegments(
    customerIds: string[],
    reads: (customerId: string, dueAt: number | null) => SegmentReadPlan,
    decide: (customerId: string, facts: SegmentFactsRead) => SegmentDecision,
    needsDispatch: (event: NewEvent) => boolean,
  ): Promise<SegmentUpdate[]> {
    const ids = [...new Set(customerIds)].sort();
    return this.writeTransaction(async (ops) => {
      // Ingest's lock order (identity locks, profile rows by id, check rows by id), so the two never deadlock on PostgreSQL.
      await ops.lockIdentities(ids);
      const decided: Array<{ customerId: string; profile: Profile | undefined; members: Map<string, number>; decision: SegmentDecision }> = [];
      for (const customerId of ids) {
        const profile = await ops.profileForSegments(customerId);
        const dueAt = await ops.lockSegmentCheck(customerId);
        const members = await ops.segmentMembership(customerId);
        const plan = reads(customerId, dueAt);
        const events = await ops.segmentEvents(customerId, plan.events);
        const { recorded, eventTimes } = await ops.segmentHistory(customerId, plan.from);
        // The profile as of a past moment is a fold of the events up to it: read them only when some event is later.
        const profileEvents = plan.profileHistory && eventTimes.some((t) => t > plan.from) ? await ops.profileEventsOf(customerId) : undefined;
        const computedBase = profileEvents ? await ops.computedBaseOf(customerId) : null;
        decided.push({ customerId, profile, members, decision: decide(customerId, { profile, events, members, dueAt, recorded, eventTimes, profileEvents, computedBase }) });
      }
      // The change events are the customer's own, fold into nothing and name no new identity: inserted as they are
      // (a retried evaluation's are already stored under the same messageIds, and skipped).
      const recorded: RecordEventResult[] = [];
      const changeEvents = decided.flatMap((d) => d.decision.events.map((event) => ({ event, profile: d.profile ?? emptyProfile(d.customerId, event.receivedAt) })));
      if (changeEvents.length > 0) {
        const inserted = await ops.insertEvents(changeEvents.map(({ event }) => newEventRow(event, event.customerId, !needsDispatch(event))));
        for (const { event, profile } of changeEvents) {
          const id = inserted.get(event.messageId);
          if (id !== undefined) recorded.push({ duplicate: false, event: { ...event, id, dispatched: !needsDispatch(event) }, profile });
        }
      }
      const updates: SegmentUpdate[] = [];
      for (const { customerId, members, decision } of decided) {
        const entered = [...decision.members].filter((id) => !members.has(id)).sort();
        const exited = [...members.keys()].filter((id) => !decision.members.has(id)).sort();
        // A member still, but a late event moved when it entered.
        const moved = [...decision.members].filter((id) => members.has(id) && decision.enteredAt?.has(id) && decision.enteredAt.get(id) !== members.get(id)).sort();
        const enter: Array<{ segmentId: string; at: number }> = [];
        for (const segmentId of [...entered, ...moved]) {
          // A member again because a late event undid its exit: it entered before the replay, as recorded then.
          const at = decision.enteredAt?.get(segmentId) ?? (decision.replayedFrom !== undefined ? await ops.lastSegmentEntry(customerId, segmentId, decision.replayedFrom) : null);
          enter.push({ segmentId, at: at ?? decision.at });
        }
        await ops.writeSegmentMembership(
          customerId,
          {
            enter,
            exit: exited,
            retract: decision.retract ?? [],
          },
          decision.nextCheckAt,
        );
        updates.push({ customerId, entered, exited, recorded: recorded.filter((r) => r.event.customerId === customerId) });
      }
      return updates;
    });
  }

  async dueSegmentChecks(now: number, limit: number, after?: { dueAt: number; customerId: string }): Promise<Array<{ customerId: string; dueAt: number }>> {
    let query = this.db.selectFrom('segment_checks').select(['customer_id', 'next_check_at']).where('next_check_at', 'is not', null).where('next_check_at', '<=', now);
    if (after) query = query.where((eb) => eb.or([eb('next_check_at', '>', after.dueAt), eb.and([eb('next_check_at', '=', after.dueAt), eb('customer_id', '>', after.customerId)])]));
    const rows = await query
      .orderBy('next_check_at')
      .orderBy('customer_id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ customerId: r.customer_id, dueAt: Number(r.next_check_at) }));
  }

  async segmentsOf(customerId: string): Promise<Array<{ segmentId: string; enteredAt: number }>> {
    const rows = await this.db.selectFrom('segment_members').select(['segment_id', 'entered_at']).where('customer_id', '=', customerId).orderBy('segment_id').execute();
    return rows.map((r) => ({ segmentId: r.segment_id, enteredAt: Number(r.entered_at) }));
  }

  async segmentMembers(segmentId: string, page: { after: string | null; limit: number }): Promise<Array<{ customerId: string; enteredAt: number }>> {
    let query = this.db.selectFrom('segment_members').select(['customer_id', 'entered_at']).where('segment_id', '=', segmentId).orderBy('customer_id').limit(page.limit);
    if (page.after !== null) query = query.where('customer_id', '>', page.after);
    return (await query.execute()).map((r) => ({ customerId: r.customer_id, enteredAt: Number(r.entered_at) }));
  }

  async segmentCounts(): Promise<{ sizes: Record<string, number>; overlap: Array<{ a: string; b: string; shared: number }> }> {
    const sizes: Record<string, number> = {};
    const rows = await this.db.selectFrom('segment_members').select(['segment_id', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('segment_id').execute();
    for (const row of rows) sizes[row.segment_id] = Number(row.n);
    const pairs = await this.db
      .selectFrom('segment_members as a')
      .innerJoin('segment_members as b', (join) => join.onRef('a.customer_id', '=', 'b.customer_id').onRef('a.segment_id', '<', 'b.segment_id'))
      .select(['a.segment_id as a', 'b.segment_id as b', (eb) => eb.fn.countAll<number>().as('shared')])
      .groupBy(['a.segment_id', 'b.segment_id'])
      .orderBy('a.segment_id')
      .orderBy('b.segment_id')
      .execute();
    return { sizes, overlap: pairs.map((p) => ({ a: p.a, b: p.b, shared: Number(p.shared) })) };
  }

  async syncSegmentDefinitions(definitions: Array<{ segmentId: string; hash: string }>, now: number): Promise<{ changed: string[]; removed: string[] }> {
    return this.db.transaction().execute(async (trx) => {
      const stored = new Map((await trx.selectFrom('segment_state').selectAll().execute()).map((r) => [r.segment_id, r.definition_hash]));
      const changed = definitions.filter((d) => stored.get(d.segmentId) !== d.hash).map((d) => d.segmentId);
      const ids = new Set(definitions.map((d) => d.segmentId));
      const removed = [...stored.keys()].filter((id) => !ids.has(id)).sort();
      for (const d of definitions.filter((d) => changed.includes(d.segmentId))) {
        await trx
          .insertInto('segment_state')
          .values({ segment_id: d.segmentId, definition_hash: d.hash, defined_at: now, swept_at: null })
          .onConflict((oc) => oc.column('segment_id').doUpdateSet({ definition_hash: d.hash, defined_at: now, swept_at: null }))
          .execute();
      }
      if (removed.length > 0) {
        await trx.deleteFrom('segment_members').where('segment_id', 'in', removed).execute();
        await trx.deleteFrom('segment_state').where('segment_id', 'in', removed).execute();
      }
      if (changed.length > 0) await this.scheduleChecks(trx, 'everyone', now);
      return { changed: changed.sort(), removed };
    });
  }

  async segmentStates(): Promise<SegmentStateRecord[]> {
    const rows = await this.db.selectFrom('segment_state').selectAll().orderBy('segment_id').execute();
    return rows.map((r) => ({ segmentId: r.segment_id, definitionHash: r.definition_hash, definedAt: Number(r.defined_at), sweptAt: r.swept_at === null ? null : Number(r.swept_at) }));
  }

  async markSegmentsSwept(at: number): Promise<void> {
    await this.db.updateTable('segment_state').set({ swept_at: at }).execute();
  }

  scheduleSegmentChecks(target: 'buyers' | 'everyone', at: number): Promise<void> {
    return this.scheduleChecks(this.db, target, at);
  }

  private async scheduleChecks(db: Db, target: 'buyers' | 'everyone', at: number): Promise<void> {
    // SQLite needs a WHERE between INSERT ... SELECT and ON CONFLICT (or it reads ON as a join's).
    const which = target === 'buyers' ? sql`${this.computedNumber('orders_count')} >= 1` : sql`1 = 1`;
    await sql`insert into segment_checks (customer_id, next_check_at) select customer_id, ${at} from profiles where ${which}
      on conflict (customer_id) do update set next_check_at = excluded.next_check_at
      where segment_checks.next_check_at is null or excluded.next_check_at < segment_checks.next_check_at`.execute(db);
  }

  /** A number inside profiles.computed (JSON text), in SQL. */
  private computedNumber(field: 'orders_count' | 'last_order_at' | 'total_spent') {
    return this.dialect === 'postgres' ? sql`(computed::jsonb->>${field})::double precision` : sql`json_extract(computed, ${'$.' + field})`;
  }

  async rfmInputs(): Promise<RfmInput[]> {
    const rows = await sql<{ customer_id: string; last_order_at: number | null; orders_count: number | null; total_spent: number | null }>`
      select customer_id, ${this.computedNumber('last_order_at')} as last_order_at, ${this.computedNumber('orders_count')} as orders_count,
        ${this.computedNumber('total_spent')} as total_spent
      from profiles where ${this.computedNumber('orders_count')} >= 1`.execute(this.db);
    return rows.rows.map((r) => ({
      customerId: r.customer_id,
      lastOrderAt: r.last_order_at === null ? null : Number(r.last_order_at),
      ordersCount: Number(r.orders_count ?? 0),
      totalSpent: Number(r.total_spent ?? 0),
    }));
  }

  async rfmState(): Promise<{ boundaries: RfmBoundaries; computedAt: number } | undefined> {
    const row = await this.db.selectFrom('rfm_state').selectAll().where('id', '=', 1).executeTakeFirst();
    return row ? { boundaries: parseJson(row.boundaries), computedAt: Number(row.computed_at) } : undefined;
  }

  async saveRfmState(boundaries: RfmBoundaries, computedAt: number): Promise<void> {
    const values = { boundaries: JSON.stringify(boundaries), computed_at: computedAt };
    await this.db.insertInto('rfm_state').values({ id: 1, ...values }).onConflict((oc) => oc.column('id').doUpdateSet(values)).execute();
  }

  async flowEntriesOf(customerId: string): Promise<FlowEntry[]> {
    const rows = await this.db
      .selectFrom('flow_entries')
      .selectAll()
      .where('customer_id', '=', customerId)
      .orderBy('entered_at')
      .orderBy('id')
      .execute();
    return rows.map(toFlowEntry);
  }

  async getFlowEntry(workflowId: string): Promise<FlowEntry | undefined> {
    const row = await this.db.selectFrom('flow_entries').selectAll().where('workflow_id', '=', workflowId).executeTakeFirst();
    return row ? toFlowEntry(row) : undefined;
  }

  async recordDecisions(decisions: DecisionRecord[]): Promise<void> {
    if (decisions.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      for (const batch of chunks(decisions)) {
        await trx
          .insertInto('decisions')
          .values(
            batch.map((d) => ({
              key: d.key,
              customer_id: d.customerId,
              at: d.at,
              flow_id: d.flowId,
              flow_version: d.flowVersion,
              outcome: d.outcome,
              reason: d.reason,
              event_message_id: d.eventMessageId,
              workflow_id: d.workflowId,
            })),
          )
          .onConflict((oc) => oc.column('key').doNothing())
          .execute();
      }
    });
  }

  async decisionsOf(customerId: string): Promise<DecisionRecord[]> {
    const rows = await this.db.selectFrom('decisions').selectAll().where('customer_id', '=', customerId).orderBy('id').execute();
    return rows.map(toDecision);
  }

  // --- delivery ledger -------------------------------------------------------------------

  async claimSend(send: ClaimSendInput): Promise<{ claimed: boolean; record: SendRecord }> {
    const inserted = await this.db
      .insertInto('sends')
      .values(sendSlots.sendRow(send, null))
      .onConflict((oc) => oc.column('delivery_key').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { claimed: true, record: toSend(inserted) };
    const existing = await this.db.selectFrom('sends').selectAll().where('delivery_key', '=', send.deliveryKey).executeTakeFirstOrThrow();
    return { claimed: false, record: toSend(existing) };
  }

  reserveSend(send: ClaimSendInput & SendSlotCounts, slot: Parameters<Store['reserveSend']>[1]): Promise<ReserveSendResult> {
    return sendSlots.reserveSend(this.db, this.dialect, send, slot);
  }

  engagementSince(names: readonly string[], since: number, limit: number): Promise<EngagementRow[]> {
    return engagementSince(this.db, names, since, limit);
  }

  recordAssignment(assignment: ExperimentAssignment): Promise<ExperimentAssignment> {
    return experiments.recordAssignment(this.db, assignment, (trx) => metrics.countAssignment(trx, assignment));
  }

  assignmentOf(experimentId: string, customerId: string): Promise<ExperimentAssignment | undefined> {
    return experiments.assignmentOf(this.db, experimentId, customerId);
  }

  startExperiment(experiment: Parameters<Store['startExperiment']>[0]): Promise<ExperimentRecord> {
    return experiments.startExperiment(this.db, experiment);
  }

  experimentOf(experimentId: string): Promise<ExperimentRecord | undefined> {
    return experiments.experimentOf(this.db, experimentId);
  }

  experimentsOf(flowId?: string): Promise<ExperimentRecord[]> {
    return experiments.experimentsOf(this.db, flowId);
  }

  saveExperimentEvidence(experimentId: string, evidence: Record<string, unknown>): Promise<void> {
    return experiments.saveEvidence(this.db, experimentId, evidence);
  }

  assignmentCounts(experimentId: string): Promise<Map<string, number>> {
    return experiments.assignmentCounts(this.db, experimentId);
  }

  concludeExperiment(experimentId: string, outcome: Parameters<Store['concludeExperiment']>[1]): Promise<boolean> {
    return experiments.concludeExperiment(this.db, experimentId, outcome);
  }

  releaseSendWaits(workflowId: string): Promise<void> {
    // The waiting sends' offer codes first: they are found through the waiting rows.
    return this.db.transaction().execute(async (trx) => {
      await offerCodes.releaseWaitingOfferCodes(trx, workflowId);
      await sendSlots.releaseSendWaits(trx, workflowId);
    });
  }

  // --- report counters: the queries are in store/metrics-store.ts ---------------------------

  foldMetrics(options: { flows: readonly FlowDefinition[]; limit?: number }): Promise<MetricsFold> {
    return metrics.foldMetrics(this.db, this.dialect, { ...options, now: this.now() });
  }

  rebuildMetrics(flows: readonly FlowDefinition[]): Promise<MetricsFold> {
    return metrics.rebuildMetrics(this.db, this.dialect, { flows, now: this.now() });
  }

  metricsOf(query: MetricsQuery = {}): Promise<MetricRow[]> {
    return metrics.metricsOf(this.db, query);
  }

  sendWaitsOf(customerId: string): Promise<WaitingSlot[]> {
    return sendSlots.sendWaitsOf(this.db, customerId);
  }

  /**
   * Marks a pending send delivered, counting `sent` (store/metrics-store) in the caller's transaction; a send already
   * delivered keeps its first messageId and time, and is not counted again.
   */
  private async markSent(db: Db, deliveryKey: string, messageId: string, sentAt: number): Promise<void> {
    const updated = await db
      .updateTable('sends')
      .set({ status: 'sent', message_id: messageId, sent_at: sentAt })
      .where('delivery_key', '=', deliveryKey)
      .where('status', '=', 'pending')
      .returning(['flow_id', 'flow_version', 'node_id', 'variant', 'scheduled_at'])
      .executeTakeFirst();
    if (updated) {
      await metrics.countSent(db, updated);
      return;
    }
    const exists = await db.selectFrom('sends').select('delivery_key').where('delivery_key', '=', deliveryKey).executeTakeFirst();
    // Delivering without a claim would bypass the ledger that makes sends exactly-once: a caller bug, not a retry.
    if (!exists) throw new Error(`no send was claimed with delivery key ${deliveryKey}: call claimSend first`);
  }

  completeSend(deliveryKey: string, messageId: string, sentAt: number): Promise<void> {
    return this.db.transaction().execute((trx) => this.markSent(trx, deliveryKey, messageId, sentAt));
  }

  deliverToOutbox(message: OutboxMessage, messageId: string): Promise<void> {
    return this.db.transaction().execute(async (trx) => {
      await this.markSent(trx, message.deliveryKey, messageId, message.createdAt);
      await trx
        .insertInto('outbox')
        .values({
          delivery_key: message.deliveryKey,
          to_address: message.to,
          from_address: message.from,
          subject: message.subject,
          html: message.html,
          text: message.text,
          headers: JSON.stringify(message.headers),
          created_at: message.createdAt,
        })
        .onConflict((oc) => oc.column('delivery_key').doNothing())
        .execute();
    });
  }

  /** Oldest first (newest last); with `limit`, the newest `limit` messages. */
  async listOutbox(filter: { to?: string; limit?: number } = {}): Promise<OutboxMessage[]> {
    let query = this.db.selectFrom('outbox').selectAll();
    if (filter.to !== undefined) query = query.where('to_address', '=', filter.to);
    if (filter.limit === undefined) return (await query.orderBy('id', 'asc').execute()).map(toOutboxMessage);
    const newest = await query.orderBy('id', 'desc').limit(filter.limit).execute();
    return newest.reverse().map(toOutboxMessage);
  }

  /** Ordered by the flow time of the send step. */
  async listSends(filter: { customerId?: string; workflowId?: string } = {}): Promise<SendRecord[]> {
    let query = this.db.selectFrom('sends').selectAll();
    if (filter.customerId !== undefined) query = query.where('customer_id', '=', filter.customerId);
    if (filter.workflowId !== undefined) query = query.where('workflow_id', '=', filter.workflowId);
    const rows = await query.orderBy('scheduled_at').orderBy('delivery_key').execute();
    return rows.map(toSend);
  }

  async sendRecipient(by: { messageId: string } | { deliveryKey: string }): Promise<{ deliveryKey: string; customerId: string; to: string } | undefined> {
    const query = this.db.selectFrom('sends').select(['delivery_key', 'customer_id', 'to_address']);
    const row = await ('messageId' in by ? query.where('message_id', '=', by.messageId) : query.where('delivery_key', '=', by.deliveryKey)).executeTakeFirst();
    return row && { deliveryKey: row.delivery_key, customerId: row.customer_id, to: row.to_address };
  }

  // --- product catalog: the queries are in store/catalog-store.ts ---------------------------

  upsertProducts(products: Product[]): Promise<void> {
    return catalog.upsertProducts(this.db, this.dialect, products, this.now());
  }

  catalogProducts(): Promise<Product[]> {
    return catalog.catalogProducts(this.db);
  }

  catalogProduct(productId: string): Promise<Product | undefined> {
    return catalog.catalogProduct(this.db, productId);
  }

  deleteProducts(productIds: string[]): Promise<number> {
    return catalog.deleteProducts(this.db, this.dialect, productIds);
  }

  catalogVersion(): Promise<number> {
    return catalog.catalogVersion(this.db);
  }

  // --- API keys: the queries are in store/api-keys-store.ts -------------------------------

  createApiKey(record: ApiKeyRecord): Promise<void> {
    return apiKeys.createApiKey(this.db, record);
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return apiKeys.listApiKeys(this.db);
  }

  revokeApiKey(idOrHint: string, at: number): Promise<ApiKeyRecord | undefined> {
    return apiKeys.revokeApiKey(this.db, idOrHint, at);
  }

  activeApiKeys(): Promise<ApiKeyRecord[]> {
    return apiKeys.activeApiKeys(this.db);
  }

  // --- event retention: the queries are in store/retention-store.ts -------------------------

  purgeEventsBefore(cutoff: number, limit: number, after: string | null = null): Promise<retention.PurgePage> {
    return retention.purgeEventsBefore(this.db, this.dialect, { cutoff, limit, after, now: this.now() });
  }

  // --- consent trail: the queries are in store/consent-store.ts -----------------------------

  consentTrail(customerId: string): Promise<ConsentChange[]> {
    return consent.consentTrail(this.db, customerId);
  }

  // --- payload data keys: the queries are in store/data-keys-store.ts ----------------------

  dataKey(subject: string): Promise<DataKeyRecord | undefined> {
    return dataKeys.dataKey(this.db, subject);
  }

  addDataKey(record: DataKeyRecord): Promise<DataKeyRecord> {
    return dataKeys.addDataKey(this.db, record);
  }

  deleteDataKey(subject: string): Promise<boolean> {
    return dataKeys.deleteDataKey(this.db, subject);
  }

  listDataKeys(filter?: { notWrappedBy?: string }): Promise<DataKeyRecord[]> {
    return dataKeys.listDataKeys(this.db, filter);
  }

  rewrapDataKey(subject: string, fromMasterKeyId: string, to: { wrappedKey: string; masterKeyId: string }): Promise<boolean> {
    return dataKeys.rewrapDataKey(this.db, subject, fromMasterKeyId, to);
  }

  // --- suppressions: the queries are in store/suppressions-store.ts ---------------------------

  listSuppressions(query: { reason?: SuppressionReason; after?: string | null; limit: number }): Promise<suppressions.SuppressionPage> {
    return suppressions.listSuppressions(this.db, query);
  }

  addSuppressions(entries: SuppressionEntry[]): Promise<void> {
    return suppressions.addSuppressions(this.db, entries);
  }

  removeSuppressions(which: { addressHash: string; reason?: SuppressionReason }): Promise<number> {
    return suppressions.removeSuppressions(this.db, which);
  }

  suppressionsFor(address: string, now: number): Promise<SuppressionEntry[]> {
    return suppressions.suppressionsFor(this.db, address, now);
  }

  importSuppressions(rows: unknown[], defaults: EntryDefaults, fieldName?: (index: number, field: string) => string): Promise<number> {
    return suppressions.importSuppressions(this.db, rows, defaults, fieldName);
  }

  exportSuppressions(): Promise<SuppressionEntry[]> {
    return suppressions.exportSuppressions(this.db);
  }

  // --- erase and export: the queries are in store/customer-data-store.ts --------------------

  eraseCustomer(id: string, options: EraseOptions): Promise<ErasureResult> {
    return customerData.eraseCustomer(this.db, this.dialect, id, options);
  }

  exportCustomer(id: string, options: { at?: number } = {}): Promise<CustomerExport> {
    return customerData.exportCustomer(this.db, id, options.at ?? this.now());
  }

  listErasures(): Promise<ErasureRecord[]> {
    return customerData.listErasures(this.db);
  }

  // --- overlap and fatigue audit: the queries are in store/audit-store.ts --------------------

  auditRows(period: { from: number; to: number }, limit?: number): Promise<AuditRows> {
    return audit.auditRows(this.db, period, limit);
  }

  // --- offer codes: the queries are in store/offer-codes-store.ts ----------------------------

  importOfferCodes(pool: string, codes: readonly string[], at: number): Promise<offerCodes.OfferCodeImport> {
    return offerCodes.importOfferCodes(this.db, pool, codes, at);
  }

  claimOfferCode(request: offerCodes.OfferCodeClaimRequest): Promise<offerCodes.OfferCodeClaim> {
    return offerCodes.claimOfferCode(this.db, this.dialect, request);
  }

  releaseOfferCodes(deliveryKey: string): Promise<number> {
    return offerCodes.releaseOfferCodes(this.db, deliveryKey);
  }

  offerCodePools(): Promise<OfferPoolStats[]> {
    return offerCodes.offerCodePools(this.db);
  }
}
