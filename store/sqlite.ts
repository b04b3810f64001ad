// Opens the default store: one SQLite file through better-sqlite3, tuned for a single busy writer.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Worker } from 'node:worker_threads';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type SqliteDatabase, type SqliteDialectConfig } from 'kysely';
import { KyselyStore, type EventWriter, type KyselyStoreOptions } from './kysely-store';
import type { Database } from './schema';
import { sqliteEventWriter } from './sqlite-ingest';

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

/**
 * better-sqlite3 compiles SQL on every prepare(), and Kysely prepares each query anew; on the ingest path that was
 * a tenth of the time. Compiled statements are reused for repeated SQL text (a bounded LRU: multi-row inserts of
 * different sizes are different texts). Safe because Kysely runs one statement at a time on this connection.
 */
function withStatementCache(db: BetterSqlite3.Database, capacity = 256): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => db.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement) {
        cache.delete(sql);
      } else {
        statement = db.prepare(sql);
        if (cache.size >= capacity) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}

/**
 * WAL checkpoints copy the log back into the database file and fsync it. Left automatic they run inside a commit,
 * on the event loop, every 1000 pages — at ingest rates, nearly every batch, and a third of its time. Here a
 * worker thread with its own connection runs PASSIVE checkpoints (which never block writers) twice a second.
 */
const CHECKPOINTER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
const checkpoint = (mode) => { try { db.pragma('wal_checkpoint(' + mode + ')'); } catch { /* busy: next time */ } };
const timer = setInterval(() => checkpoint('PASSIVE'), workerData.everyMs);
parentPort.on('message', () => { clearInterval(timer); checkpoint('PASSIVE'); db.close(); parentPort.close(); });
`;

function startCheckpointer(file: string): () => Promise<void> {
  const worker = new Worker(CHECKPOINTER, { eval: true, workerData: { driver: require.resolve('better-sqlite3'), file, everyMs: 500 } });
  worker.unref();
  return () =>
    new Promise<void>((resolve) => {
      // Referenced again while it finishes, or a process with nothing else to do would exit before it has.
      worker.ref();
      worker.once('exit', () => resolve());
      worker.postMessage('stop');
    });
}

function connect(path: string): { db: Kysely<Database>; eventWriter: EventWriter; stopCheckpointer: () => Promise<void> } {
  const sqlite = new BetterSqlite3(path);
  sqlite.pragma('journal_mode = WAL');
  // NORMAL in WAL mode may lose the last commits on power loss but never corrupts; FULL costs an fsync per event.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  // The default 2 MB page cache holds a few thousand profiles; ingest touches profiles and index pages all over
  // the file, so a bigger cache and memory-mapped reads save a read() syscall per page miss.
  sqlite.pragma('cache_size = -65536');
  sqlite.pragma('mmap_size = 268435456');
  const inMemory = path === ':memory:' || path === '';
  if (!inMemory) sqlite.pragma('wal_autocheckpoint = 0');
  const stopCheckpointer = inMemory ? async () => undefined : startCheckpointer(path);
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(sqlite) }) });
  return { db, eventWriter: sqliteEventWriter(db, sqlite), stopCheckpointer };
}

/**
 * One connection per file per process. better-sqlite3 waits out busy_timeout synchronously, so a second connection
 * in the same process blocking on the write lock would freeze the event loop — and with it the transaction holding
 * the lock — until it fails with "database is locked". Sharing the connection lets Kysely's mutex queue them instead.
 */
const shared = new Map<string, ReturnType<typeof connect> & { refs: number }>();

export function openSqliteStore(path: string, options: KyselyStoreOptions = {}): KyselyStore {
  if (path === ':memory:' || path === '') {
    const { db, eventWriter } = connect(path);
    return new KyselyStore(db, 'sqlite', options, () => db.destroy(), eventWriter);
  }
  const file = resolve(path);
  let entry = shared.get(file);
  if (!entry) {
    mkdirSync(dirname(file), { recursive: true });
    entry = { ...connect(file), refs: 0 };
    shared.set(file, entry);
  }
  entry.refs += 1;
  const opened = entry;
  return new KyselyStore(opened.db, 'sqlite', options, async () => {
    opened.refs -= 1;
    if (opened.refs > 0) return;
    if (shared.get(file) === opened) shared.delete(file);
    await opened.stopCheckpointer();
    await opened.db.destroy();
  }, opened.eventWriter);
}
