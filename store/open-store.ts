// Picks the store from configuration: PostgreSQL when DATABASE_URL is set, otherwise the SQLite file.
import type { Config } from '../core/config';
import type { KyselyStoreOptions } from './kysely-store';
import { openPostgresStore } from './postgres';
import { openSqliteStore } from './sqlite';
import type { Store } from './store';

/** Opens, but does not migrate: callers run `store.migrate()` once at start. The config's soft-bounce rules apply unless `options` give others. */
export function openStore(config: Pick<Config, 'databaseUrl' | 'sqlitePath'> & Partial<Pick<Config, 'softBounce' | 'trackingDefault'>>, options: KyselyStoreOptions = {}): Store {
  let withRules: KyselyStoreOptions = config.softBounce && !options.softBounce ? { ...options, softBounce: config.softBounce } : options;
  // MICROFLOWS_TRACKING_DEFAULT decides, at ingest, whether a customer who gave no tracking consent is tracked.
  if (config.trackingDefault && withRules.trackingGrantedByDefault === undefined) withRules = { ...withRules, trackingGrantedByDefault: config.trackingDefault === 'granted' };
  return config.databaseUrl ? openPostgresStore(config.databaseUrl, withRules) : openSqliteStore(config.sqlitePath, withRules);
}
