// Reads who owns what straight from a test backend's database (better-sqlite3 or pg): each event's customer, the
// identity map and the profiles, so a test can check what a call changed without going through the store code it is
// testing.
import Database from 'better-sqlite3';
import pg from 'pg';
import type { StoreBackend } from './store-backends';

export interface ProfileRow {
  email: string | null;
  consent: Record<string, { granted?: unknown }>;
  /** The whole row as stored, to tell whether anything of it changed. */
  raw: string;
}

export interface IdentitySnapshot {
  /** messageId → customer_id */
  events: Map<string, string>;
  /** alias_id → customer_id */
  identities: Map<string, string>;
  /** customer_id → profile */
  profiles: Map<string, ProfileRow>;
}

export interface IdentityTables {
  snapshot(): Promise<IdentitySnapshot>;
  close(): Promise<void>;
}

const QUERIES = {
  events: 'select message_id, customer_id from events',
  identities: 'select alias_id, customer_id from identities',
  profiles: 'select customer_id, email, timezone, traits, computed, consent, tags, updated_at, trait_times from profiles',
};

type ProfileRaw = Record<string, unknown> & { customer_id: string; email: string | null; consent: string };

function snapshotOf(events: Array<{ message_id: string; customer_id: string }>, identities: Array<{ alias_id: string; customer_id: string }>, profiles: ProfileRaw[]): IdentitySnapshot {
  return {
    events: new Map(events.map((r) => [r.message_id, r.customer_id])),
    identities: new Map(identities.map((r) => [r.alias_id, r.customer_id])),
    profiles: new Map(
      profiles.map((r) => [
        r.customer_id,
        // pg returns bigint columns as strings: String() makes both backends' rows compare alike.
        { email: r.email, consent: JSON.parse(r.consent) as ProfileRow['consent'], raw: JSON.stringify(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])) },
      ]),
    ),
  };
}

/** Opens a reader on `backend`'s database; call it after `backend.open()`, and close it before `backend.dispose()`. */
export function openIdentityTables(backend: StoreBackend): IdentityTables {
  if (backend.name === 'sqlite') {
    const file = backend.env.MICROFLOWS_SQLITE_PATH;
    if (!file) throw new Error('the SQLite backend has no MICROFLOWS_SQLITE_PATH');
    const db = new Database(file, { readonly: true });
    const all = <T>(sql: string) => db.prepare(sql).all() as T[];
    return {
      snapshot: async () => {
        // One read transaction, so the three tables agree with each other.
        const read = db.transaction(() => snapshotOf(all(QUERIES.events), all(QUERIES.identities), all(QUERIES.profiles)));
        return read();
      },
      close: async () => void db.close(),
    };
  }
  const url = backend.env.DATABASE_URL;
  if (!url) throw new Error('the PostgreSQL backend has no DATABASE_URL: open it first');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  return {
    snapshot: async () => {
      const client = await pool.connect();
      try {
        await client.query('begin isolation level repeatable read');
        const events = (await client.query<{ message_id: string; customer_id: string }>(QUERIES.events)).rows;
        const identities = (await client.query<{ alias_id: string; customer_id: string }>(QUERIES.identities)).rows;
        const profiles = (await client.query<ProfileRaw>(QUERIES.profiles)).rows;
        await client.query('commit');
        return snapshotOf(events, identities, profiles);
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
