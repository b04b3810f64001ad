// The store backends a suite runs against: SQLite in a temp dir, and PostgreSQL in a throwaway database when
// TEST_DATABASE_URL is set. Without it the PostgreSQL suites still register, as skipped with the reason, so the
// closing count says how many tests did not run instead of leaving them out.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { KyselyStore, KyselyStoreOptions } from '../../store/kysely-store';
import { openPostgresStore } from '../../store/postgres';
import { openSqliteStore } from '../../store/sqlite';

export type DatabaseName = 'sqlite' | 'postgres';

/** Why the PostgreSQL suites cannot run here, or null when they can. */
export function postgresSkipReason(): string | null {
  return process.env.TEST_DATABASE_URL ? null : 'TEST_DATABASE_URL is unset';
}

/**
 * describe() for a suite on `database`; for PostgreSQL without TEST_DATABASE_URL, describe.skip() with the reason in
 * its title, so its tests count as skipped (its hooks do not run, so nothing connects).
 */
export function describeOn(database: DatabaseName, title: string, body: () => void): void {
  const reason = database === 'postgres' ? postgresSkipReason() : null;
  if (reason) describe.skip(`${title} (skipped: ${reason})`, body);
  else describe(title, body);
}

export interface StoreBackend {
  name: DatabaseName;
  /** describe() on this backend: skipped, with the reason, when the backend cannot run here. */
  describe(title: string, body: () => void): void;
  /** A migrated store. Every call within one suite opens the same database, so two stores can race on it. */
  open(options?: KyselyStoreOptions): Promise<KyselyStore>;
  /** Closes every store opened and deletes the database. */
  dispose(): Promise<void>;
  /** The environment that points a child process (the CLI) at this database; valid once `open` has run. */
  env: Record<string, string>;
}

function sqliteBackend(): StoreBackend {
  const dir = mkdtempSync(join(tmpdir(), 'microflows-test-'));
  const file = join(dir, 'nested', 'store.sqlite');
  const stores: KyselyStore[] = [];
  return {
    name: 'sqlite',
    describe: (title, body) => describeOn('sqlite', title, body),
    env: { MICROFLOWS_SQLITE_PATH: file },
    async open(options) {
      const store = openSqliteStore(file, options);
      stores.push(store);
      await store.migrate();
      return store;
    },
    async dispose() {
      await Promise.all(stores.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway PostgreSQL database on the server of `adminUrl`: created on first use, dropped by `drop()`. */
export function throwawayDatabase(adminUrl: string): { url: string; create(): Promise<void>; drop(): Promise<void> } {
  const database = `microflows_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  let created: Promise<void> | undefined;

  const admin = async (work: (client: pg.Client) => Promise<void>) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  };

  /** pool.end() resolves before its sockets finish closing; a forced drop would then kill them mid-goodbye and
   *  surface as an unhandled 'error' from pg. Waiting for the sessions to go first keeps the drop quiet. */
  const waitForSessionsToEnd = async (client: pg.Client) => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const { rows } = await client.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = $1', [database]);
      if (rows[0]?.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  return {
    url: url.toString(),
    create() {
      created ??= admin(async (client) => {
        await client.query(`create database ${database}`);
      });
      return created;
    },
    async drop() {
      if (!created) return;
      await admin(async (client) => {
        await waitForSessionsToEnd(client);
        await client.query(`drop database if exists ${database} with (force)`);
      });
    },
  };
}

function postgresBackend(adminUrl: string): StoreBackend {
  const database = throwawayDatabase(adminUrl);
  const stores: KyselyStore[] = [];
  return {
    name: 'postgres',
    describe: (title, body) => describeOn('postgres', title, body),
    env: { DATABASE_URL: database.url },
    async open(options) {
      await database.create();
      const store = openPostgresStore(database.url, options);
      stores.push(store);
      await store.migrate();
      return store;
    },
    async dispose() {
      await Promise.all(stores.map((s) => s.close()));
      await database.drop();
    },
  };
}

/** A PostgreSQL backend that cannot run here: its suites register as skipped and never open it. */
function absentPostgresBackend(reason: string): StoreBackend {
  return {
    name: 'postgres',
    describe: (title, body) => describeOn('postgres', title, body),
    env: {},
    open: () => Promise.reject(new Error(`PostgreSQL is not available: ${reason}`)),
    dispose: async () => undefined,
  };
}

/** Prints one line (not a jest console block) when PostgreSQL is skipped, so the skip is visible but quiet. */
export function storeBackends(suite: string): StoreBackend[] {
  const url = process.env.TEST_DATABASE_URL;
  if (url) return [sqliteBackend(), postgresBackend(url)];
  const reason = postgresSkipReason() ?? 'TEST_DATABASE_URL is unset';
  process.stdout.write(`${suite}: PostgreSQL tests skipped because ${reason}\n`);
  return [sqliteBackend(), absentPostgresBackend(reason)];
}
