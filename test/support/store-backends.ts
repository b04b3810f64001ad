// The store backends a suite runs against: always SQLite in a temp dir, plus PostgreSQL in a throwaway database
// when TEST_DATABASE_URL is set. Suites loop over the list, so an absent PostgreSQL registers no tests at all.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { KyselyStore, KyselyStoreOptions } from '../../store/kysely-store';
import { openPostgresStore } from '../../store/postgres';
import { openSqliteStore } from '../../store/sqlite';

export interface StoreBackend {
  name: 'sqlite' | 'postgres';
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

/** Prints one line (not a jest console block) when PostgreSQL is skipped, so the skip is visible but quiet. */
export function storeBackends(suite: string): StoreBackend[] {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) {
    process.stdout.write(`${suite}: PostgreSQL tests skipped because TEST_DATABASE_URL is unset\n`);
    return [sqliteBackend()];
  }
  return [sqliteBackend(), postgresBackend(url)];
}
