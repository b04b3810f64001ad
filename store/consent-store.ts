// The consent trail's queries (table consent_changes): rows are written by the ingest transaction that folds the
// change (EventWriteOps.recordConsentChanges), and read back oldest first for the admin API and exports.
import type { Kysely, Transaction } from 'kysely';
import type { ConsentChange } from '../core/tracking-consent';
import type { StoreDialect } from './migrations';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Keeps one insert under SQLite's bound-parameter limit (7 columns a row). */
const CHUNK = 500;

/** The row of a change; `granted` as each backend stores a boolean (better-sqlite3 cannot bind one). */
export function consentChangeRow(change: ConsentChange, dialect: StoreDialect) {
  return {
    customer_id: change.customerId,
    kind: change.kind,
    granted: dialect === 'sqlite' ? (change.granted ? 1 : 0) : change.granted,
    source: change.source,
    at: change.at,
    recorded_at: change.recordedAt,
    event_message_id: change.eventMessageId,
  };
}

export async function insertConsentChanges(db: Db, dialect: StoreDialect, changes: ConsentChange[]): Promise<void> {
  for (let i = 0; i < changes.length; i += CHUNK) {
    await db
      .insertInto('consent_changes')
      .values(changes.slice(i, i + CHUNK).map((change) => consentChangeRow(change, dialect)))
      .execute();
  }
}

/** Every consent change of the customer, oldest first (by the change's own time, then as recorded). */
export async function consentTrail(db: Db, customerId: string): Promise<ConsentChange[]> {
  const rows = await db.selectFrom('consent_changes').selectAll().where('customer_id', '=', customerId).orderBy('at').orderBy('id').execute();
  return rows.map((row) => ({
    customerId: row.customer_id,
    kind: row.kind,
    // SQLite answers 0/1, PostgreSQL a boolean.
    granted: row.granted === true || row.granted === 1,
    source: row.source,
    at: Number(row.at),
    recordedAt: Number(row.recorded_at),
    eventMessageId: row.event_message_id,
  }));
}
