// Opens the default store: one SQLite file through better-sqlite3, tuned for a single busy writer.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type SqliteDialectConfig } from 'kysely';
import { KyselyStore, type KyselyStoreOptions } from './kysely-store';
import type { Database } from './schema';

/**
 * Kysely's SqliteDriver already runs everything on one connection behind a mutex, so a transaction's statements
 * never interleave with another's. It opens transactions with a deferred BEGIN, though; IMMEDIATE takes the write
 * lock up front, so a read-then-write transaction waits on busy_timeout instead of failing with SQLITE_BUSY when
 * another process (the CLI, a second worker) writes to the same file.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly settings: SqliteDialectConfig) {
    super(settings);
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.settings);
  }
}

function connect(path: string): Kysely<Database> {
  const sqlite = new BetterSqlite3(path);
  sqlite.pragma('journal_mode = WAL');
  // NORMAL in WAL mode may lose the last commits on power loss but never corrupts; FULL costs an fsync per event.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  return new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
}

/**
 * One connection per file per process. better-sqlite3 waits out busy_timeout synchronously, so a second connection
 * in the same process blocking on the write lock would freeze the event loop — and with it the transaction holding
 * the lock — until it fails with "database is locked". Sharing the connection lets Kysely's mutex queue them instead.
 */
const shared = new Map<string, { db: Kysely<Database>; refs: number }>();

export function openSqliteStore(path: string, options: KyselyStoreOptions = {}): KyselyStore {
  if (path === ':memory:' || path === '') return new KyselyStore(connect(path), 'sqlite', options);
  const file = resolve(path);
  let entry = shared.get(file);
  if (!entry) {
    mkdirSync(dirname(file), { recursive: true });
    entry = { db: connect(file), refs: 0 };
    shared.set(file, entry);
  }
  entry.refs += 1;
  const opened = entry;
  return new KyselyStore(opened.db, 'sqlite', options, async () => {
    opened.refs -= 1;
    if (opened.refs > 0) return;
    if (shared.get(file) === opened) shared.delete(file);
    await opened.db.destroy();
  });
}
