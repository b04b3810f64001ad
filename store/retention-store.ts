// Event retention (MICROFLOWS_EVENT_RETENTION): deletes the events older than a cutoff, one customer at a time, after
// folding what they gave the profile's computed fields into the customer's baseline (profiles.computed_base), which
// every refold starts from (store/record-events.ts). Kept apart from kysely-store.ts, which holds every table family.
import { sql, type ExpressionBuilder, type Kysely, type Transaction } from 'kysely';
import { foldBehaviorInto, type Computed } from '../core/behavior';
import type { EventType } from '../core/event';
import { isSystemEventName, SYSTEM_EVENT_NAMES } from '../core/source-policy';
import type { StoreDialect } from './migrations';
import { parseJson, SEGMENT_CHANGE_NAMES } from './rows';
import type { Database } from './schema';

/** One page of a purge: events deleted, customers looked at, and the customer to continue after (null: done). */
export interface PurgePage {
  purged: number;
  customers: number;
  next: string | null;
}

/** Rows read (and deleted) at a time within one customer's transaction, so a customer with a huge past fits in memory. */
const ROWS_PER_READ = 1000;

/**
 * Events that are purged: all but the engine's own Segment Entered / Exited, which say when the customer entered a
 * segment they may still be in; segment history (profile-as-of's segments, replays) reads them, and they carry no
 * more than a segment id.
 */
const purgeable = (eb: ExpressionBuilder<Database, 'events'>) => eb.or([eb('name', 'is', null), eb('name', 'not in', SEGMENT_CHANGE_NAMES)]);

/**
 * Purges, for up to `limit` customers after `after` (by id), their events with a `timestamp` before `cutoff`, each
 * customer in one transaction: the baseline update and the delete commit together, so a crash leaves either both or
 * neither. Kept, besides the segment changes:
 * - events that still owe a dispatch (dispatched = false), and every later one of that customer: a refold folds the
 *   baseline first, so only events older than everything kept may go into it (the customer's horizon is the earlier
 *   of `cutoff` and their oldest undispatched event);
 * - whether the customer is identified: client keys may not change an identified customer (store/record-events.ts
 *   customerStandings reads their events and aliases), so when the purge takes the last event naming them as a user,
 *   the customer id becomes an alias of itself, which says the same.
 */
export async function purgeEventsBefore(db: Kysely<Database>, dialect: StoreDialect, page: { cutoff: number; limit: number; after: string | null; now: number }): Promise<PurgePage> {
  const { cutoff, limit, after, now } = page;
  let candidates = db.selectFrom('events').select('customer_id').distinct().where('timestamp', '<', cutoff).where(purgeable);
  if (after !== null) candidates = candidates.where('customer_id', '>', after);
  const customers = (await candidates.orderBy('customer_id').limit(limit).execute()).map((row) => row.customer_id);
  let purged = 0;
  for (const customerId of customers) purged += await db.transaction().execute((trx) => purgeCustomer(trx, dialect, customerId, cutoff, now));
  return { purged, customers: customers.length, next: customers.length < limit ? null : customers[customers.length - 1]! };
}

async function purgeCustomer(trx: Transaction<Database>, dialect: StoreDialect, customerId: string, cutoff: number, now: number): Promise<number> {
  // The profile row first, locked on PostgreSQL (SQLite's write transaction is exclusive): ingest takes it before it
  // folds or refolds, so no refold runs between our read of the baseline and our commit.
  let profileQuery = trx.selectFrom('profiles').select('computed_base').where('customer_id', '=', customerId);
  if (dialect === 'postgres') profileQuery = profileQuery.forUpdate();
  const profile = await profileQuery.executeTakeFirst();
  const falseLiteral = dialect === 'sqlite' ? sql.lit(0) : sql.lit(false);
  const owed = await trx
    .selectFrom('events')
    .select((eb) => eb.fn.min('timestamp').as('oldest'))
    .where('customer_id', '=', customerId)
    .where('dispatched', '=', falseLiteral)
    .executeTakeFirst();
  const horizon = owed?.oldest === null || owed?.oldest === undefined ? cutoff : Math.min(cutoff, Number(owed.oldest));

  // A customer without a profile row (merged away meanwhile) has nothing that reads a fold of their events.
  const base: Computed = profile?.computed_base ? parseJson<Computed>(profile.computed_base) : {};
  let purged = 0;
  let identifiedByPurged = false;
  let last: { timestamp: number; id: number } | null = null;
  for (;;) {
    let page = trx
      .selectFrom('events')
      .select(['id', 'type', 'name', 'user_id', 'properties', 'traits', 'timestamp'])
      .where('customer_id', '=', customerId)
      .where('timestamp', '<', horizon)
      .where(purgeable);
    if (last !== null) {
      const { timestamp, id } = last;
      page = page.where((eb) => eb.or([eb('timestamp', '>', timestamp), eb.and([eb('timestamp', '=', timestamp), eb('id', '>', id)])]));
    }
    const rows = await page.orderBy('timestamp').orderBy('id').limit(ROWS_PER_READ).execute();
    if (rows.length === 0) break;
    // The fold's own order (store/record-events.ts behaviorEventsOf): time, then arrival.
    for (const row of rows) {
      const type = row.type as EventType;
      foldBehaviorInto(base, { type, name: row.name, properties: parseJson(row.properties), traits: parseJson(row.traits), timestamp: Number(row.timestamp) });
      if (row.user_id !== null && !(type === 'track' && isSystemEventName(row.name))) identifiedByPurged = true;
    }
    await trx.deleteFrom('events').where('id', 'in', rows.map((row) => row.id)).execute();
    purged += rows.length;
    const tail = rows[rows.length - 1]!;
    last = { timestamp: Number(tail.timestamp), id: Number(tail.id) };
    if (rows.length < ROWS_PER_READ) break;
  }
  if (purged === 0) return 0;
  if (profile) await trx.updateTable('profiles').set({ computed_base: JSON.stringify(base) }).where('customer_id', '=', customerId).execute();
  if (identifiedByPurged) await keepIdentified(trx, customerId, now);
  return purged;
}

/** Makes the customer id an alias of itself when no event left names them as a user and no alias points at them. */
async function keepIdentified(trx: Transaction<Database>, customerId: string, now: number): Promise<void> {
  const byEvent = await trx
    .selectFrom('events')
    .select('id')
    .where('customer_id', '=', customerId)
    .where('user_id', 'is not', null)
    // As customerStandings reads it: microflows' own track events carry a userId without identifying anyone.
    .where((eb) => eb.or([eb('type', '<>', 'track'), eb('name', 'is', null), eb('name', 'not in', [...SYSTEM_EVENT_NAMES])]))
    .limit(1)
    .executeTakeFirst();
  if (byEvent) return;
  const byAlias = await trx.selectFrom('identities').select('alias_id').where('customer_id', '=', customerId).limit(1).executeTakeFirst();
  if (byAlias) return;
  await trx
    .insertInto('identities')
    .values({ alias_id: customerId, customer_id: customerId, created_at: now })
    .onConflict((oc) => oc.column('alias_id').doNothing())
    .execute();
}
