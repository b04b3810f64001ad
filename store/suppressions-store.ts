// The suppressions queries behind the Store's suppression methods (core/suppression): entries keyed by the SHA-256 of
// the lower-cased address and the reason, so an erased address stays suppressed as its hash alone.
import type { Kysely, Selectable, Transaction } from 'kysely';
import { BadInputError } from '../core/errors';
import { addressHash, entryFromInput, type EntryDefaults, type SuppressionEntry, type SuppressionReason, type SuppressionScope } from '../core/suppression';
import type { Database, SuppressionsTable } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Keeps multi-row statements under SQLite's bound-parameter limit (7 columns a row). */
const CHUNK = 500;

/** A page of the list: its entries, and the cursor of the next page (null: this was the last). */
export interface SuppressionPage {
  entries: SuppressionEntry[];
  next: string | null;
}

export function toSuppressionEntry(row: Selectable<SuppressionsTable>): SuppressionEntry {
  return {
    addressHash: row.address_hash,
    address: row.address,
    reason: row.reason as SuppressionReason,
    scope: row.scope as SuppressionScope,
    source: row.source,
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

function toRow(entry: SuppressionEntry): SuppressionsTable {
  return {
    address_hash: entry.addressHash,
    reason: entry.reason,
    address: entry.address,
    scope: entry.scope,
    source: entry.source,
    created_at: entry.createdAt,
    expires_at: entry.expiresAt,
  };
}

/**
 * Upserts by (address_hash, reason): the entry given replaces the stored one of that pair (a soft-bounce entry made
 * again gets its new expiry). An address already erased from a row stays erased unless the new entry names it again.
 * `db` may be a transaction the caller holds (the ingest path writes inside the events' own).
 */
export async function upsertSuppressions(db: Db, entries: SuppressionEntry[]): Promise<void> {
  // One row per pair (the last given wins: PostgreSQL refuses to update a row twice in one statement), sorted, so two
  // writers upserting overlapping entries take PostgreSQL's row locks in one order.
  const byKey = new Map(entries.map((e) => [`${e.addressHash}:${e.reason}`, e]));
  const sorted = [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  for (let i = 0; i < sorted.length; i += CHUNK) {
    await db
      .insertInto('suppressions')
      .values(sorted.slice(i, i + CHUNK).map(toRow))
      .onConflict((oc) =>
        oc.columns(['address_hash', 'reason']).doUpdateSet((eb) => ({
          address: eb.fn.coalesce('excluded.address', 'suppressions.address'),
          scope: eb.ref('excluded.scope'),
          source: eb.ref('excluded.source'),
          created_at: eb.ref('excluded.created_at'),
          expires_at: eb.ref('excluded.expires_at'),
        })),
      )
      .execute();
  }
}

/** Removes the unsubscribe (or other) entries of these hashes that were made at or before each lift's `upTo`. */
export async function liftSuppressions(db: Db, lifts: Array<{ addressHash: string; reason: SuppressionReason; upTo: number }>): Promise<void> {
  for (const lift of lifts) {
    await db.deleteFrom('suppressions').where('address_hash', '=', lift.addressHash).where('reason', '=', lift.reason).where('created_at', '<=', lift.upTo).execute();
  }
}

/** In one transaction, all or nothing. */
export async function addSuppressions(db: Kysely<Database>, entries: SuppressionEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.transaction().execute((trx) => upsertSuppressions(trx, entries));
}

const CURSOR = /^([0-9a-f]{64}):([a-z_]+)$/;

/** Entries in (address_hash, reason) order, `limit` at a time after the cursor `after`; optionally of one reason. */
export async function listSuppressions(db: Kysely<Database>, query: { reason?: SuppressionReason; after?: string | null; limit: number }): Promise<SuppressionPage> {
  let select = db.selectFrom('suppressions').selectAll().orderBy('address_hash').orderBy('reason').limit(query.limit + 1);
  if (query.reason !== undefined) select = select.where('reason', '=', query.reason);
  if (query.after) {
    const cursor = CURSOR.exec(query.after);
    if (!cursor) throw new BadInputError('not a cursor this list gave: pass the "next" of the previous page as it is', 'after');
    const [, hash, reason] = cursor as unknown as [string, string, string];
    select = select.where((eb) => eb.or([eb('address_hash', '>', hash), eb.and([eb('address_hash', '=', hash), eb('reason', '>', reason)])]));
  }
  const rows = await select.execute();
  const page = rows.slice(0, query.limit).map(toSuppressionEntry);
  const last = page[page.length - 1];
  return { entries: page, next: rows.length > query.limit && last ? `${last.addressHash}:${last.reason}` : null };
}

/** The entries of an address or hash (optionally of one reason) removed; how many there were. */
export async function removeSuppressions(db: Kysely<Database>, which: { addressHash: string; reason?: SuppressionReason }): Promise<number> {
  let query = db.deleteFrom('suppressions').where('address_hash', '=', which.addressHash);
  if (which.reason !== undefined) query = query.where('reason', '=', which.reason);
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows ?? 0);
}

/** The address's entries that hold at `now` (not expired). */
export async function suppressionsFor(db: Db, address: string, now: number): Promise<SuppressionEntry[]> {
  const rows = await db
    .selectFrom('suppressions')
    .selectAll()
    .where('address_hash', '=', addressHash(address))
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('reason')
    .execute();
  return rows.map(toSuppressionEntry);
}

/**
 * Checks every row first (core/suppression entryFromInput; the error names the row, counted from 1, and the field),
 * then writes them all in one transaction: a bad row writes nothing. Returns how many were written.
 */
export async function importSuppressions(
  db: Kysely<Database>,
  rows: unknown[],
  defaults: EntryDefaults,
  fieldName: (index: number, field: string) => string = (index, field) => `row ${index + 1}: ${field}`,
): Promise<number> {
  const entries = rows.map((row, index) => entryFromInput(row, defaults, (field) => fieldName(index, field)));
  await addSuppressions(db, entries);
  return entries.length;
}

/** Every entry, expired ones too, in (address_hash, reason) order. */
export async function exportSuppressions(db: Kysely<Database>): Promise<SuppressionEntry[]> {
  return (await db.selectFrom('suppressions').selectAll().orderBy('address_hash').orderBy('reason').execute()).map(toSuppressionEntry);
}
