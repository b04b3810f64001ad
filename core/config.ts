// Reads configuration from environment variables (passed in, so this stays pure). Defaults run the
// embedded stack; every variable here is listed in the README.
import { parseDuration } from './duration';
import { ConfigError } from './errors';

export interface Config {
  port: number;
  /** Interface the HTTP server binds to. */
  host: string;
  dataDir: string;
  /** PostgreSQL when set; otherwise SQLite at `sqlitePath`. */
  databaseUrl: string | null;
  sqlitePath: string;
  /** An existing Temporal server; when null, `microflows start` runs the embedded dev server. */
  temporalAddress: string | null;
  temporalNamespace: string;
  taskQueue: string;
  /** Port of the embedded dev server's frontend (gRPC). */
  temporalPort: number;
  temporalUiPort: number;
  /** Set the CustomerId/FlowId/FlowVersion search attributes on runs (off for servers without them). */
  searchAttributes: boolean;
  writeKey: string;
  /** HMAC key for click, open and unsubscribe links; when null, `microflows start`/`server` keep a generated one in `dataDir`. */
  signingSecret: string | null;
  /** Events waiting to be written beyond which ingest answers 429 with Retry-After. */
  ingestMaxPending: number;
  /** nodemailer SMTP URL; when null, email goes to the outbox table. */
  smtpUrl: string | null;
  fromAddress: string;
  flowsDir: string;
  templatesDir: string;
  /**
   * The address the world reaches the HTTP server at, for tracked links, the open pixel and unsubscribe links in
   * emails; null: this process's own server address (or http://HOST:PORT in a worker-only process).
   */
  publicUrl: string | null;
  /** The shop's address: the base of product URLs that neither the product nor the catalog gives. */
  shopUrl: string;
  /** Segment files (segments/<id>.yaml): named audiences, e.g. for previewing a template as a typical member. */
  segmentsDir: string;
  /** Recompile templates when their files change; null: yes under `microflows start`, no elsewhere. */
  watchTemplates: boolean | null;
  /** Product catalog files (*.json, *.csv) that `microflows start` upserts into the store; absent means none. */
  catalogDir: string;
  /** How often (ms) the segment sweep applies time-based changes: the bound on their lag, plus the sweep's own time. */
  segmentSweepEvery: number;
  /** Segments with fewer members are flagged "too small" by `microflows segments report`. */
  segmentMinSize: number;
}

type Env = Record<string, string | undefined>;

function intFrom(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`${name}=${raw} is not a valid port number (0-65535)`);
  }
  return value;
}

function positiveIntFrom(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(`${name}=${raw} must be a whole number of at least 1`);
  return value;
}

function durationFrom(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    const ms = parseDuration(raw);
    if (ms >= 1000) return ms;
  } catch {
    // reported below with the variable's name
  }
  throw new ConfigError(`${name}=${raw} must be a duration of at least 1s, e.g. 30s, 1m, 1h`);
}

function boolFrom(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name}=${raw}: use true or false`);
}

export const DEFAULT_WRITE_KEY = 'dev-write-key';

export function readConfig(env: Env, cwd: string): Config {
  const dataDir = env.MICROFLOWS_DATA_DIR || `${cwd}/.data`;
  const port = intFrom(env, 'PORT', 3000);
  return {
    port,
    host: env.HOST || '127.0.0.1',
    dataDir,
    databaseUrl: env.DATABASE_URL || null,
    sqlitePath: env.MICROFLOWS_SQLITE_PATH || `${dataDir}/microflows.sqlite`,
    temporalAddress: env.TEMPORAL_ADDRESS || null,
    temporalNamespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.TEMPORAL_TASK_QUEUE || 'microflows',
    temporalPort: intFrom(env, 'TEMPORAL_PORT', 7233),
    temporalUiPort: intFrom(env, 'TEMPORAL_UI_PORT', 8233),
    searchAttributes: boolFrom(env, 'MICROFLOWS_SEARCH_ATTRIBUTES', true),
    writeKey: env.MICROFLOWS_WRITE_KEY || DEFAULT_WRITE_KEY,
    signingSecret: env.MICROFLOWS_SIGNING_SECRET || null,
    ingestMaxPending: positiveIntFrom(env, 'MICROFLOWS_INGEST_MAX_PENDING', 20_000),
    smtpUrl: env.SMTP_URL || null,
    fromAddress: env.MICROFLOWS_FROM || 'microflows <no-reply@localhost>',
    flowsDir: env.MICROFLOWS_FLOWS_DIR || `${cwd}/flows`,
    templatesDir: env.MICROFLOWS_TEMPLATES_DIR || `${cwd}/templates`,
    catalogDir: env.MICROFLOWS_CATALOG_DIR || `${cwd}/catalog`,
    publicUrl: env.MICROFLOWS_PUBLIC_URL ? env.MICROFLOWS_PUBLIC_URL.replace(/\/+$/, '') : null,
    shopUrl: env.MICROFLOWS_SHOP_URL || 'https://shop.example',
    segmentsDir: env.MICROFLOWS_SEGMENTS_DIR || `${cwd}/segments`,
    segmentSweepEvery: durationFrom(env, 'MICROFLOWS_SEGMENT_SWEEP_EVERY', 60_000),
    segmentMinSize: positiveIntFrom(env, 'MICROFLOWS_SEGMENT_MIN_SIZE', 100),
    watchTemplates: env.MICROFLOWS_WATCH_TEMPLATES === undefined || env.MICROFLOWS_WATCH_TEMPLATES === '' ? null : boolFrom(env, 'MICROFLOWS_WATCH_TEMPLATES', false),
  };
}
