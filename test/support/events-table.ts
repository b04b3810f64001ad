// Reads a test backend's events table straight from its database (better-sqlite3 or pg), by messageId, so a test
// can check what was stored, and how many times, without going through the store code it is testing.
import Database from 'better-sqlite3';
import pg from 'pg';
import type { StoreBackend } from './store-backends';

export interface EventRow {
  messageId: string;
  type: string;
  userId: string | null;
  anonymousId: string | null;
  name: string | null;
  properties: unknown;
  traits: unknown;
  context: unknown;
  timestamp: number;
  receivedAt: number;
}

export interface EventsTable {
  /** Every row whose message_id is one of `messageIds` (a correct store holds at most one per id). */
  rowsFor(messageIds: readonly string[]): Promise<EventRow[]>;
  close(): Promise<void>;
}

interface RawRow {
  message_id: string;
  type: string;
  user_id: string | null;
  anonymous_id: string | null;
  name: string | null;
  properties: string;
  traits: string;
  context: string;
  timestamp: number | string;
  received_at: number | string;
}

const COLUMNS = 'message_id, type, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at';

function toRow(raw: RawRow): EventRow {
  return {
    messageId: raw.message_id,
    type: raw.type,
    userId: raw.user_id,
    anonymousId: raw.anonymous_id,
    name: raw.name,
    properties: JSON.parse(raw.properties),
    traits: JSON.parse(raw.traits),
    context: JSON.parse(raw.context),
    // pg returns bigint columns as strings.
    timestamp: Number(raw.timestamp),
    receivedAt: Number(raw.received_at),
  };
}

/** Opens a reader on `backend`'s database; call it after `backend.open()`, and close it before `backend.dispose()`. */
export function openEventsTable(backend: StoreBackend): EventsTable {
  if (backend.name === 'sqlite') {
    const file = backend.env.MICROFLOWS_SQLITE_PATH;
    if (!file) throw new Error('the SQLite backend has no MICROFLOWS_SQLITE_PATH');
    const db = new Database(file, { readonly: true });
    return {
      rowsFor: async (ids) => {
        if (ids.length === 0) return [];
        const rows = db.prepare(`select ${COLUMNS} from events where message_id in (${ids.map(() => '?').join(', ')})`).all(...ids) as RawRow[];
        return rows.map(toRow);
      },
      close: async () => void db.close(),
    };
  }
  const url = backend.env.DATABASE_URL;
  if (!url) throw new Error('the PostgreSQL backend has no DATABASE_URL: open it first');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  return {
    rowsFor: async (ids) => {
      if (ids.length === 0) return [];
      const { rows } = await pool.query<RawRow>(`select ${COLUMNS} from events where message_id = any($1::text[])`, [ids]);
      return rows.map(toRow);
    },
    close: () => pool.end(),
  };
}
