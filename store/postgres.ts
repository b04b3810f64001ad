// Opens the scale-out store: PostgreSQL through a pg Pool.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { KyselyStore, type KyselyStoreOptions } from './kysely-store';
import type { Database } from './schema';

/**
 * pg returns int8 (bigint columns, bigserial ids, count(*)) as strings to avoid precision loss. Every int8 here is
 * an epoch-ms time, an id or a count, all far below 2^53, so numbers are exact and keep both dialects' rows alike.
 * Set per pool rather than on pg's global registry so other pg users in the process are unaffected.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PostgresStoreOptions extends KyselyStoreOptions {
  /** Pool size; the default suits one server or worker process. */
  maxConnections?: number;
  /** Where errors of idle pooled connections go (the server restarting, a network cut); stderr by default. */
  log?: (message: string) => void;
}

export function openPostgresStore(url: string, options: PostgresStoreOptions = {}): KyselyStore {
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, types });
  // Without a listener, an idle connection dropped by the server is an unhandled 'error' event that kills the
  // process; the pool already discards the connection and the next query opens a new one.
  const log = options.log ?? ((message: string) => console.error(message));
  pool.on('error', (err) => log(`[store] idle PostgreSQL connection failed: ${err.message}`));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return new KyselyStore(db, 'postgres', options);
}
