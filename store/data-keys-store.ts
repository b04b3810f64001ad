// The data_keys queries behind the Store's data key methods: per-subject keys of the Temporal payload codec, wrapped
// by a master key (core/payload-crypto). Deleting a row is crypto-shredding: what it encrypted can no longer be read.
import type { Kysely, Selectable } from 'kysely';
import type { DataKeysTable, Database } from './schema';

export interface DataKeyRecord {
  /** A customer's pseudonymous subject, or a reserved one (`~system`, `~pseudonym-salt`). */
  subject: string;
  /** base64 of the AES-256-GCM sealed key (core/payload-crypto wrapDataKey). */
  wrappedKey: string;
  masterKeyId: string;
  createdAt: number;
}

function toRecord(row: Selectable<DataKeysTable>): DataKeyRecord {
  return { subject: row.subject, wrappedKey: row.wrapped_key, masterKeyId: row.master_key_id, createdAt: Number(row.created_at) };
}

export async function dataKey(db: Kysely<Database>, subject: string): Promise<DataKeyRecord | undefined> {
  const row = await db.selectFrom('data_keys').selectAll().where('subject', '=', subject).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/**
 * Stores the key unless the subject has one, and returns the subject's stored key: two processes creating a key for
 * the same customer at once both end with the one that was stored first (DO NOTHING, then read).
 */
export async function addDataKey(db: Kysely<Database>, record: DataKeyRecord): Promise<DataKeyRecord> {
  await db
    .insertInto('data_keys')
    .values({ subject: record.subject, wrapped_key: record.wrappedKey, master_key_id: record.masterKeyId, created_at: record.createdAt })
    .onConflict((oc) => oc.column('subject').doNothing())
    .execute();
  const stored = await dataKey(db, record.subject);
  // Deleted between the insert and the read (an erasure racing a first use): the caller's key is what was meant.
  return stored ?? record;
}

/** Whether a key was there to delete. */
export async function deleteDataKey(db: Kysely<Database>, subject: string): Promise<boolean> {
  const result = await db.deleteFrom('data_keys').where('subject', '=', subject).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Every key, by subject, optionally only those not wrapped by `exceptMasterKeyId`. */
export async function listDataKeys(db: Kysely<Database>, filter: { notWrappedBy?: string } = {}): Promise<DataKeyRecord[]> {
  let query = db.selectFrom('data_keys').selectAll();
  if (filter.notWrappedBy !== undefined) query = query.where('master_key_id', '!=', filter.notWrappedBy);
  const rows = await query.orderBy('subject').execute();
  return rows.map(toRecord);
}

/**
 * Replaces a key's wrapping, only if it is still wrapped by `fromMasterKeyId` (another rewrap or an erasure meanwhile
 * wins). Whether it was replaced.
 */
export async function rewrapDataKey(db: Kysely<Database>, subject: string, fromMasterKeyId: string, to: { wrappedKey: string; masterKeyId: string }): Promise<boolean> {
  const result = await db
    .updateTable('data_keys')
    .set({ wrapped_key: to.wrappedKey, master_key_id: to.masterKeyId })
    .where('subject', '=', subject)
    .where('master_key_id', '=', fromMasterKeyId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
