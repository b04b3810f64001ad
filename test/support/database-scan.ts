// Reads a test backend's database past the store, with its own driver (better-sqlite3 or pg): plain SQL for what a
// test sets up or checks directly, and a scan of every table the catalog lists (not a list kept here, so a table a
// later migration adds is scanned too) for rows holding any of some strings.
import Database from 'better-sqlite3';
import pg from 'pg';
import type { StoreBackend } from './store-backends';

export interface Match {
  table: string;
  column: string;
  needle: string;
  value: string;
}

export interface RawDatabase {
  /** Runs `text` with `?` placeholders (numbered for PostgreSQL) and returns the rows. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Every table of the database, from its catalog. */
  tables(): Promise<string[]>;
  /** Every text value of every row of every table that contains one of `needles`, compared case-insensitively. */
  scan(needles: string[]): Promise<Match[]>;
  close(): Promise<void>;
}

function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

function matchesIn(table: string, rows: Array<Record<string, unknown>>, needles: string[]): Match[] {
  const lowered = needles.map((needle) => [needle, needle.toLowerCase()] as const);
  const found: Match[] = [];
  for (const row of rows) {
    for (const [column, value] of Object.entries(row)) {
      if (typeof value !== 'string' && !Buffer.isBuffer(value)) continue;
      const text = value.toString().toLowerCase();
      for (const [needle, low] of lowered) if (text.includes(low)) found.push({ table, column, needle, value: value.toString() });
    }
  }
  return found;
}

/** Opens the database of `backend`; call it after `backend.open()`, and close it before `backend.dispose()`. */
export function openRawDatabase(backend: Pick<StoreBackend, 'name' | 'env'>): RawDatabase {
  if (backend.name === 'sqlite') {
    const file = backend.env.MICROFLOWS_SQLITE_PATH;
    if (!file) throw new Error('the SQLite backend has no MICROFLOWS_SQLITE_PATH');
    const db = new Database(file);
    db.pragma('busy_timeout = 5000');
    const run = <T>(text: string, params: unknown[] = []): T[] => {
      const statement = db.prepare(text);
      if (statement.reader) return statement.all(...params) as T[];
      statement.run(...params);
      return [];
    };
    const tables = async () => run<{ name: string }>("select name from sqlite_master where type = 'table' order by name").map((r) => r.name);
    return {
      query: async (text, params) => run(text, params),
      tables,
      async scan(needles) {
        const found: Match[] = [];
        for (const table of await tables()) found.push(...matchesIn(table, run(`select * from "${table.replace(/"/g, '""')}"`), needles));
        return found;
      },
      close: async () => {
        db.close();
      },
    };
  }
  const url = backend.env.DATABASE_URL;
  if (!url) throw new Error('the PostgreSQL backend has no DATABASE_URL');
  const client = new pg.Client({ connectionString: url });
  const connected = client.connect();
  const run = async <T>(text: string, params: unknown[] = []): Promise<T[]> => {
    await connected;
    return (await client.query(numbered(text), params)).rows as T[];
  };
  const tables = async () =>
    (await run<{ table_name: string }>("select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name")).map(
      (r) => r.table_name,
    );
  return {
    query: run,
    tables,
    async scan(needles) {
      const found: Match[] = [];
      for (const table of await tables()) found.push(...matchesIn(table, await run(`select * from "${table.replace(/"/g, '""')}"`), needles));
      return found;
    },
    close: async () => {
      await connected;
      await client.end();
    },
  };
}
