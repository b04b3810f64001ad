// Picks the store from configuration: PostgreSQL when DATABASE_URL is set, otherwise the SQLite file.
import type { Config } from '../core/config';
import type { KyselyStoreOptions } from './kysely-store';
import { openPostgresStore } from './postgres';
import { openSqliteStore } from './sqlite';
import type { Store } from './store';

/** Opens, but does not migrate: callers run `store.migrate()` once at start. */
export function openStore(config: Pick<Config, 'databaseUrl' | 'sqlitePath'>, options: KyselyStoreOptions = {}): Store {
  return config.databaseUrl ? openPostgresStore(config.databaseUrl, options) : openSqliteStore(config.sqlitePath, options);
}
