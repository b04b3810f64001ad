// The SQLite ingest path: recordBatch's statements as better-sqlite3 prepared statements, compiled once. Kysely
// builds, compiles and freezes a query tree per call; on a 200-event batch that was a third of the store's time.
// Id lists are bound as one JSON array (`in (select value from json_each(?))`), so each statement has one text
// whatever the batch size. A profile whose email did not change is updated without touching the email index.
import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely, Selectable } from 'kysely';
import { BEHAVIOR_EVENT_TYPES, type BehaviorEvent, type Computed } from '../core/behavior';
import type { EventType } from '../core/event';
import type { Profile, ProfileEvent } from '../core/profile';
import type { SuppressionEntry, SuppressionLift } from '../core/suppression';
import { isBehavioralEvent, withoutBehavioralFields, type ConsentChange } from '../core/tracking-consent';
import { consentChangeRow } from './consent-store';
import type { EventWriter } from './kysely-store';
import type { CustomerStanding, EventWriteOps, NewEventRow, ProfileWrite, StoredContact } from './record-events';
import type { SegmentEventRead, SegmentFactsRead } from './store';
import { parseJson, profileRow, SEGMENT_CHANGE_NAMES, toProfile, toProfileEvent, toRecordedSegmentChange } from './rows';
import { SEGMENT_ENTERED } from '../core/segment-membership';
import { SYSTEM_EVENT_NAMES } from '../core/source-policy';
import type { Database, EventsTable, ProfilesTable } from './schema';

const SEGMENT_NAMES_SQL = SEGMENT_CHANGE_NAMES.map((name) => `'${name}'`).join(', ');
const SYSTEM_NAMES_SQL = SYSTEM_EVENT_NAMES.map((name) => `'${name}'`).join(', ');

const SQL = {
  begin: 'begin immediate',
  commit: 'commit',
  rollback: 'rollback',
  storedEvents: 'select * from events where message_id in (select value from json_each(?))',
  identities: 'select alias_id, customer_id from identities where alias_id in (select value from json_each(?))',
  customerStandings: `select c.value as customer_id,
      exists (select 1 from events e where e.customer_id = c.value) as known,
      exists (select 1 from events e where e.customer_id = c.value and e.user_id is not null and (e.type <> 'track' or e.name is null or e.name not in (${SYSTEM_NAMES_SQL})))
        or exists (select 1 from identities i where i.customer_id = c.value) as identified
    from json_each(?) as c`,
  insertEvent: `insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
    values (@message_id, @type, @customer_id, @user_id, @anonymous_id, @name, @properties, @traits, @context, @timestamp, @received_at, @dispatched)
    on conflict (message_id) do nothing`,
  profiles: 'select * from profiles where customer_id in (select value from json_each(?))',
  contacts: 'select customer_id, email, consent from profiles where customer_id in (select value from json_each(?))',
  moveEvents: 'update events set customer_id = ? where customer_id = ?',
  moveAliases: 'update identities set customer_id = ? where customer_id = ?',
  addAlias: 'insert into identities (alias_id, customer_id, created_at) values (?, ?, ?) on conflict (alias_id) do update set customer_id = excluded.customer_id',
  deleteProfile: 'delete from profiles where customer_id = ?',
  carryComputedBase: `update profiles set computed_base = coalesce(computed_base, (select merged.computed_base from profiles merged where merged.customer_id = @from))
    where customer_id = @into`,
  computedBase: 'select computed_base from profiles where customer_id = ?',
  setComputedBase: 'update profiles set computed_base = ? where customer_id = ?',
  behaviorEvents: `select type, name, properties, traits, timestamp from events where customer_id = ? and type in (${BEHAVIOR_EVENT_TYPES.map((t) => `'${t}'`).join(', ')}) order by timestamp, id`,
  insertProfile: `insert into profiles (customer_id, email, timezone, traits, computed, consent, tags, updated_at, trait_times)
    values (@customer_id, @email, @timezone, @traits, @computed, @consent, @tags, @updated_at, @trait_times)`,
  updateProfile: `update profiles set email = @email, timezone = @timezone, traits = @traits, computed = @computed, consent = @consent,
    tags = @tags, updated_at = @updated_at, trait_times = @trait_times where customer_id = @customer_id`,
  updateProfileKeepingEmail: `update profiles set timezone = @timezone, traits = @traits, computed = @computed, consent = @consent,
    tags = @tags, updated_at = @updated_at, trait_times = @trait_times where customer_id = @customer_id`,
  markDue: `insert into segment_checks (customer_id, next_check_at) select json_extract(value, '$[0]'), json_extract(value, '$[1]') from json_each(?) where true
    on conflict (customer_id) do update set next_check_at = excluded.next_check_at
    where segment_checks.next_check_at is null or excluded.next_check_at < segment_checks.next_check_at`,
  ensureCheck: 'insert into segment_checks (customer_id, next_check_at) values (?, null) on conflict (customer_id) do nothing',
  readCheck: 'select next_check_at from segment_checks where customer_id = ?',
  segmentEventsSince: "select name, properties, timestamp from events where customer_id = ? and name = ? and type = 'track' and timestamp >= ?",
  segmentEventsAll: "select name, properties, timestamp from events where customer_id = ? and name = ? and type = 'track'",
  recordedSegmentChanges: `select message_id, name, properties, timestamp from events where customer_id = ? and name in (${SEGMENT_NAMES_SQL}) and timestamp >= ?
    order by timestamp, id`,
  eventTimesSince: `select timestamp from events where customer_id = ? and timestamp >= ? and (name is null or name not in (${SEGMENT_NAMES_SQL}))`,
  profileEvents: `select type, name, properties, traits, timestamp from events where customer_id = ? and (name is null or name not in (${SEGMENT_NAMES_SQL}))
    order by timestamp, id`,
  deleteEvent: 'delete from events where customer_id = ? and message_id = ?',
  segmentEntries: `select message_id, name, properties, timestamp from events where customer_id = ? and name = '${SEGMENT_ENTERED}' and timestamp < ?
    order by timestamp desc`,
  membership: 'select segment_id, entered_at from segment_members where customer_id = ?',
  enterSegment: 'insert into segment_members (segment_id, customer_id, entered_at) values (?, ?, ?) on conflict do update set entered_at = excluded.entered_at',
  exitSegment: 'delete from segment_members where segment_id = ? and customer_id = ?',
  setNextCheck: 'update segment_checks set next_check_at = ? where customer_id = ?',
  dropSharedMemberships: 'delete from segment_members where customer_id = @from and segment_id in (select segment_id from segment_members where customer_id = @into)',
  moveMemberships: 'update segment_members set customer_id = @into where customer_id = @from',
  dropCheck: 'delete from segment_checks where customer_id = ?',
  insertConsentChange: `insert into consent_changes (customer_id, kind, granted, source, at, recorded_at, event_message_id)
    values (@customer_id, @kind, @granted, @source, @at, @recorded_at, @event_message_id)`,
  eventKinds: 'select id, type, name from events where customer_id = ?',
  deleteEventById: 'delete from events where id = ?',
  liftSuppression: 'delete from suppressions where address_hash = ? and reason = ? and created_at <= ?',
  upsertSuppression: `insert into suppressions (address_hash, reason, address, scope, source, created_at, expires_at)
    values (@address_hash, @reason, @address, @scope, @source, @created_at, @expires_at)
    on conflict (address_hash, reason) do update set address = coalesce(excluded.address, suppressions.address), scope = excluded.scope,
    source = excluded.source, created_at = excluded.created_at, expires_at = excluded.expires_at`,
} as const;

type StatementName = keyof typeof SQL;

class SqliteEventOps implements EventWriteOps {
  private readonly statements = new Map<StatementName, BetterSqlite3.Statement>();
  /**
   * Baselines (event retention) of customers merged away into one with no profile row yet: SQLite creates that row
   * only in writeProfiles, so the baseline waits here until then. Cleared when a transaction begins.
   */
  private readonly carriedBases = new Map<string, string>();

  constructor(private readonly sqlite: BetterSqlite3.Database) {}

  /** Prepared on first use: the tables exist only once the store has migrated. */
  statement(name: StatementName): BetterSqlite3.Statement {
    let statement = this.statements.get(name);
    if (!statement) {
      statement = this.sqlite.prepare(SQL[name]);
      this.statements.set(name, statement);
    }
    return statement;
  }

  async storedEvents(messageIds: string[]): Promise<Array<Selectable<EventsTable>>> {
    if (messageIds.length === 0) return [];
    return this.statement('storedEvents').all(JSON.stringify(messageIds)) as Array<Selectable<EventsTable>>;
  }

  async lockIdentities(): Promise<void> {
    // SQLite's write transactions are serial (begin immediate): nothing to lock.
  }

  async identities(ids: string[]): Promise<Map<string, string>> {
    const map = new Map<string, string>();
    if (ids.length === 0) return map;
    for (const row of this.statement('identities').all(JSON.stringify(ids)) as Array<{ alias_id: string; customer_id: string }>) map.set(row.alias_id, row.customer_id);
    return map;
  }

  async customerStandings(customerIds: string[]): Promise<Map<string, CustomerStanding>> {
    const standings = new Map<string, CustomerStanding>();
    if (customerIds.length === 0) return standings;
    const rows = this.statement('customerStandings').all(JSON.stringify(customerIds)) as Array<{ customer_id: string; known: number; identified: number }>;
    for (const row of rows) {
      if (row.identified) standings.set(row.customer_id, 'identified');
      else if (row.known) standings.set(row.customer_id, 'anonymous');
    }
    return standings;
  }

  async insertEvents(rows: NewEventRow[]): Promise<Map<string, number>> {
    const insert = this.statement('insertEvent');
    const ids = new Map<string, number>();
    for (const row of rows) {
      const result = insert.run({ ...row, dispatched: row.dispatched ? 1 : 0 });
      if (result.changes === 1) ids.set(row.message_id, Number(result.lastInsertRowid));
    }
    return ids;
  }

  async profilesForUpdate(customerIds: string[]): Promise<Map<string, Profile>> {
    return this.profiles([...new Set(customerIds)]);
  }

  async moveCustomer(from: string, into: string, at: number): Promise<void> {
    this.statement('moveEvents').run(into, from);
    this.statement('moveAliases').run(into, from);
    this.statement('addAlias').run(from, into, at);
    // The merged-away customer's purged events (event retention) count on in `into`'s refold, unless `into` has a baseline of its own.
    if (this.statement('carryComputedBase').run({ from, into }).changes === 0) {
      const base = this.carriedBases.get(from) ?? (this.statement('computedBase').get(from) as { computed_base: string | null } | undefined)?.computed_base;
      if (base && !this.carriedBases.has(into)) this.carriedBases.set(into, base);
    }
    this.carriedBases.delete(from);
    this.statement('deleteProfile').run(from);
    // The merged customer keeps the earlier entry of a segment both were in; the merge marks them due.
    this.statement('dropSharedMemberships').run({ from, into });
    this.statement('moveMemberships').run({ from, into });
    this.statement('dropCheck').run(from);
  }

  async behaviorEventsOf(customerId: string): Promise<BehaviorEvent[]> {
    const rows = this.statement('behaviorEvents').all(customerId) as Array<{ type: string; name: string | null; properties: string; traits: string; timestamp: number }>;
    return rows.map((r) => ({ type: r.type as EventType, name: r.name, properties: parseJson(r.properties), traits: parseJson(r.traits), timestamp: r.timestamp }));
  }

  async computedBaseOf(customerId: string): Promise<Computed | null> {
    const row = this.statement('computedBase').get(customerId) as { computed_base: string | null } | undefined;
    const base = row?.computed_base ?? this.carriedBases.get(customerId);
    return base ? parseJson<Computed>(base) : null;
  }

  /** Forgets what a transaction left behind (a rolled back one included). */
  beginTransaction(): void {
    this.carriedBases.clear();
  }

  async writeProfiles(writes: ProfileWrite[]): Promise<void> {
    for (const { profile, storedEmail } of writes) {
      const row = profileRow(profile);
      if (storedEmail === undefined) this.statement('insertProfile').run(row);
      else this.statement(storedEmail === profile.email ? 'updateProfileKeepingEmail' : 'updateProfile').run(row);
      const carried = this.carriedBases.get(profile.customerId);
      if (carried !== undefined) this.statement('setComputedBase').run(carried, profile.customerId);
      this.carriedBases.delete(profile.customerId);
    }
  }

  async profiles(customerIds: string[]): Promise<Map<string, Profile>> {
    const profiles = new Map<string, Profile>();
    if (customerIds.length === 0) return profiles;
    for (const row of this.statement('profiles').all(JSON.stringify(customerIds)) as Array<Selectable<ProfilesTable>>) profiles.set(row.customer_id, toProfile(row));
    return profiles;
  }

  async contactsOf(customerIds: string[]): Promise<Map<string, StoredContact>> {
    const contacts = new Map<string, StoredContact>();
    if (customerIds.length === 0) return contacts;
    for (const row of this.statement('contacts').all(JSON.stringify(customerIds)) as Array<{ customer_id: string; email: string | null; consent: string }>) {
      contacts.set(row.customer_id, { email: row.email, consent: parseJson(row.consent) });
    }
    return contacts;
  }

  async recordConsentChanges(changes: ConsentChange[]): Promise<void> {
    for (const change of changes) this.statement('insertConsentChange').run(consentChangeRow(change, 'sqlite'));
  }

  async deleteBehavioralEvents(customerId: string): Promise<number> {
    const rows = this.statement('eventKinds').all(customerId) as Array<{ id: number; type: EventType; name: string | null }>;
    const ids = rows.filter(isBehavioralEvent).map((row) => row.id);
    for (const id of ids) this.statement('deleteEventById').run(id);
    // What retention folded out of purged behavioral events goes too: the refold after a withdrawal starts from the base.
    const base = await this.computedBaseOf(customerId);
    if (base) {
      const stripped = JSON.stringify(withoutBehavioralFields(base));
      if (this.carriedBases.has(customerId)) this.carriedBases.set(customerId, stripped);
      this.statement('setComputedBase').run(stripped, customerId);
    }
    return ids.length;
  }

  async writeSuppressions(entries: SuppressionEntry[], lifts: SuppressionLift[]): Promise<void> {
    // Lifts first, as in store/kysely-store.ts.
    for (const lift of lifts) this.statement('liftSuppression').run(lift.addressHash, lift.reason, lift.upTo);
    for (const e of entries) {
      this.statement('upsertSuppression').run({ address_hash: e.addressHash, reason: e.reason, address: e.address, scope: e.scope, source: e.source, created_at: e.createdAt, expires_at: e.expiresAt });
    }
  }

  async markSegmentChecksDue(due: Array<{ customerId: string; at: number }>): Promise<void> {
    this.statement('markDue').run(JSON.stringify(due.map((d) => [d.customerId, d.at])));
  }

  async profileForSegments(customerId: string): Promise<Profile | undefined> {
    return (await this.profiles([customerId])).get(customerId);
  }

  async lockSegmentCheck(customerId: string): Promise<number | null> {
    // The write transaction (begin immediate) already excludes every other writer.
    this.statement('ensureCheck').run(customerId);
    return (this.statement('readCheck').get(customerId) as { next_check_at: number | null }).next_check_at;
  }

  async segmentEvents(customerId: string, reads: SegmentEventRead[]): Promise<SegmentFactsRead['events']> {
    const events: SegmentFactsRead['events'] = [];
    for (const read of reads) {
      const rows = (read.since === null ? this.statement('segmentEventsAll').all(customerId, read.name) : this.statement('segmentEventsSince').all(customerId, read.name, read.since)) as Array<{
        name: string;
        properties: string;
        timestamp: number;
      }>;
      for (const row of rows) events.push({ name: row.name, properties: parseJson(row.properties), timestamp: row.timestamp });
    }
    return events;
  }

  async segmentHistory(customerId: string, from: number): Promise<Pick<SegmentFactsRead, 'recorded' | 'eventTimes'>> {
    const recorded = this.statement('recordedSegmentChanges').all(customerId, from) as Array<{ message_id: string; name: string; properties: string; timestamp: number }>;
    const times = this.statement('eventTimesSince').pluck().all(customerId, from) as number[];
    return { recorded: recorded.map(toRecordedSegmentChange), eventTimes: times };
  }

  async profileEventsOf(customerId: string): Promise<ProfileEvent[]> {
    return (this.statement('profileEvents').all(customerId) as Array<{ type: string; name: string | null; properties: string; traits: string; timestamp: number }>).map(toProfileEvent);
  }

  async lastSegmentEntry(customerId: string, segmentId: string, before: number): Promise<number | null> {
    const rows = this.statement('segmentEntries').all(customerId, before) as Array<{ message_id: string; name: string; properties: string; timestamp: number }>;
    return rows.map(toRecordedSegmentChange).find((c) => c.segmentId === segmentId)?.at ?? null;
  }

  async segmentMembership(customerId: string): Promise<Map<string, number>> {
    const rows = this.statement('membership').all(customerId) as Array<{ segment_id: string; entered_at: number }>;
    return new Map(rows.map((r) => [r.segment_id, r.entered_at]));
  }

  async writeSegmentMembership(customerId: string, change: { enter: Array<{ segmentId: string; at: number }>; exit: string[]; retract: string[] }, nextCheckAt: number | null): Promise<void> {
    for (const { segmentId, at } of change.enter) this.statement('enterSegment').run(segmentId, customerId, at);
    for (const segmentId of change.exit) this.statement('exitSegment').run(segmentId, customerId);
    for (const messageId of change.retract) this.statement('deleteEvent').run(customerId, messageId);
    this.statement('setNextCheck').run(nextCheckAt, customerId);
  }
}

/**
 * Runs the work on the store's one SQLite connection, holding Kysely's lock on it (so no Kysely query or
 * transaction interleaves), in a `begin immediate` transaction that commits when the work resolves and rolls back
 * when it throws.
 */
export function sqliteEventWriter(db: Kysely<Database>, sqlite: BetterSqlite3.Database): EventWriter {
  const ops = new SqliteEventOps(sqlite);
  return (work) =>
    db.connection().execute(async () => {
      ops.statement('begin').run();
      ops.beginTransaction();
      try {
        const result = await work(ops);
        ops.statement('commit').run();
        return result;
      } catch (err) {
        if (sqlite.inTransaction) ops.statement('rollback').run();
        throw err;
      }
    });
}
