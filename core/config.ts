// Reads configuration from environment variables (passed in, so this stays pure). Defaults run the
// embedded stack; every variable here is listed in the README.
import { parseDuration } from './duration';
import { ConfigError } from './errors';
import { parseMasterKey } from './payload-crypto';

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
  /** The sender's brand settings (name, postal address, topic labels): core/brand. */
  brandFile: string;
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
  /** How often (ms) a runtime process folds new events into the report counters (MICROFLOWS_METRICS_EVERY). */
  metricsEvery: number;
  /** Segments with fewer members are flagged "too small" by `microflows segments report`. */
  segmentMinSize: number;
  /** A second port for the admin routes (/api, previews); null: they share PORT (still authenticated). */
  adminPort: number | null;
  /** Interface the admin port binds to; null: HOST. */
  adminHost: string | null;
  /** Which proxies' X-Forwarded-For to believe for the client IP (express's `trust proxy`: a hop count, or addresses, subnets, loopback/uniquelocal); null: none. */
  trustProxy: string | null;
  /** One admin API key with every scope, besides the keys `microflows keys create` stores (MICROFLOWS_ADMIN_KEY). */
  adminKey: string | null;
  /** Host header values the server answers; null: loopback names, HOST and the hosts of the public and shop URLs. */
  allowedHosts: string[] | null;
  /** Domains a link whose target comes from data (not the template's literal text) may point at; subdomains included. */
  linkDomains: string[];
  /** How long click, open and unsubscribe links in an email stay valid (ms). */
  trackingTokenTtlMs: number;
  /** How far from the arrival time a client (browser) key's event timestamp may be (ms); server keys may backfill. */
  clientMaxSkewMs: number;
  /** SendGrid's signed event webhook: the account's verification key (base64 DER or PEM); null: the route answers 401. */
  sendgridVerificationKey: string | null;
  /** Postmark's webhook Basic credential, `user:password`; null: the route answers 401. */
  postmarkWebhookCredential: string | null;
  /** How long events are kept (ms, by their own timestamp) before the sweep purges them; null: forever. */
  eventRetentionMs: number | null;
  /** Store client IPs truncated (IPv4 /24, IPv6 /48, core/ip-truncation) rather than whole. */
  ipTruncation: boolean;
  /** Ingest calls per second one source key may make (a batch counts its events). */
  rateLimitPerKey: number;
  /** Ingest requests per second one client IP may make with a client key. */
  rateLimitPerIp: number;
  /** Hits per minute one tracking or unsubscribe token may make. */
  rateLimitPerToken: number;
  /** Whether a customer who gave no behavioral_tracking consent is tracked: granted, or denied (opt-in regions). */
  trackingDefault: 'granted' | 'denied';
  /** Repeated soft bounces that suppress an address (core/suppression): this many within the window, for the period (ms). */
  softBounce: { limit: number; windowMs: number; suppressionMs: number };
  /** node:http limits: time to receive the headers, the whole request, idle keep-alive, and open connections. */
  http: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number; maxConnections: number };
  /** Encrypt Temporal payloads (client/payload-codec.ts); decoding what is encrypted happens either way. */
  payloadEncryption: boolean;
  /** The master key that wraps the payload data keys (MICROFLOWS_MASTER_KEY, validated); null: see masterKeyFile. */
  masterKey: string | null;
  /** A file holding the master key (MICROFLOWS_MASTER_KEY_FILE); null with masterKey null: generated on loopback only. */
  masterKeyFile: string | null;
  /** Master keys of before a rotation: used only to unwrap data keys not yet rewrapped (`microflows data-keys rewrap`). */
  previousMasterKeys: string[];
  /** Workflow ids and the CustomerId search attribute carry the customer's pseudonymous subject, not their id. */
  pseudonymousIds: boolean;
  /** Browser origins (a Temporal Web UI) the codec endpoint answers with CORS; null: the embedded UI's on loopback. */
  codecAllowedOrigins: string[] | null;
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

function listFrom(env: Env, name: string): string[] | null {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return null;
  return raw
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== '');
}

/** The host name of an absolute http(s) URL, lower-cased; a ConfigError naming the variable otherwise. */
export function hostOfUrl(name: string, url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return parsed.hostname.toLowerCase();
  } catch {
    // reported below
  }
  throw new ConfigError(`${name}=${url} is not an absolute http(s) URL, e.g. https://shop.example`);
}

function durationAtLeast(env: Env, name: string, fallback: number, minMs: number, example: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    const ms = parseDuration(raw);
    if (ms >= minMs) return ms;
  } catch {
    // reported below with the variable's name
  }
  throw new ConfigError(`${name}=${raw} must be a duration of at least ${minMs / 1000}s, e.g. ${example}`);
}

function trackingDefaultFrom(env: Env): Config['trackingDefault'] {
  const raw = env.MICROFLOWS_TRACKING_DEFAULT;
  if (raw === undefined || raw === '') return 'granted';
  const value = raw.trim().toLowerCase();
  if (value === 'granted' || value === 'denied') return value;
  throw new ConfigError(`MICROFLOWS_TRACKING_DEFAULT=${raw}: use granted (track customers who gave no behavioral_tracking consent) or denied (opt-in regions: track only those who granted it)`);
}

/** Shorter than a day would purge what flows still wait on (a cart reminder's hour, a day's digest): refused. */
const MIN_EVENT_RETENTION_MS = 86_400_000;

function eventRetentionFrom(env: Env): number | null {
  const raw = env.MICROFLOWS_EVENT_RETENTION;
  if (raw === undefined || raw.trim() === '' || ['none', 'forever'].includes(raw.trim().toLowerCase())) return null;
  try {
    const ms = parseDuration(raw);
    if (ms >= MIN_EVENT_RETENTION_MS) return ms;
  } catch {
    // reported below with the variable's name
  }
  throw new ConfigError(`MICROFLOWS_EVENT_RETENTION=${raw} must be a duration of at least 1d, e.g. 400d, or none to keep events forever`);
}

/** The master key settings, each key checked now: a bad one stops the start naming its variable. */
function masterKeysFrom(env: Env): Pick<Config, 'masterKey' | 'masterKeyFile' | 'previousMasterKeys'> {
  const masterKey = env.MICROFLOWS_MASTER_KEY || null;
  const masterKeyFile = env.MICROFLOWS_MASTER_KEY_FILE || null;
  if (masterKey && masterKeyFile) throw new ConfigError('MICROFLOWS_MASTER_KEY and MICROFLOWS_MASTER_KEY_FILE are both set: keep one (the file keeps the key out of the environment)');
  if (masterKey) parseMasterKey(masterKey, 'MICROFLOWS_MASTER_KEY');
  const previousMasterKeys = (env.MICROFLOWS_PREVIOUS_MASTER_KEYS ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== '');
  previousMasterKeys.forEach((key, i) => parseMasterKey(key, `MICROFLOWS_PREVIOUS_MASTER_KEYS (key ${i + 1})`));
  return { masterKey, masterKeyFile, previousMasterKeys };
}

/** Comma-separated browser origins (scheme://host[:port]), each checked; null when unset. */
function originsFrom(env: Env, name: string): string[] | null {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return null;
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((origin) => {
      let parsed: URL | null = null;
      try {
        parsed = new URL(origin);
      } catch {
        // reported below
      }
      if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin.replace(/\/+$/, '')) {
        throw new ConfigError(`${name}: ${origin} is not an origin: give scheme://host[:port] with nothing after it, e.g. http://127.0.0.1:8233`);
      }
      return parsed.origin;
    });
}

export function readConfig(env: Env, cwd: string): Config {
  const config = readVariables(env, cwd);
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    throw new ConfigError(`MICROFLOWS_HTTP_HEADERS_TIMEOUT (${config.http.headersTimeoutMs} ms) must not exceed MICROFLOWS_HTTP_REQUEST_TIMEOUT (${config.http.requestTimeoutMs} ms): the headers are part of the request`);
  }
  return config;
}

function readVariables(env: Env, cwd: string): Config {
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
    brandFile: env.MICROFLOWS_BRAND_FILE || `${cwd}/brand.yaml`,
    catalogDir: env.MICROFLOWS_CATALOG_DIR || `${cwd}/catalog`,
    publicUrl: env.MICROFLOWS_PUBLIC_URL ? env.MICROFLOWS_PUBLIC_URL.replace(/\/+$/, '') : null,
    shopUrl: env.MICROFLOWS_SHOP_URL || 'https://shop.example',
    segmentsDir: env.MICROFLOWS_SEGMENTS_DIR || `${cwd}/segments`,
    segmentSweepEvery: durationFrom(env, 'MICROFLOWS_SEGMENT_SWEEP_EVERY', 60_000),
    metricsEvery: durationFrom(env, 'MICROFLOWS_METRICS_EVERY', 5_000),
    segmentMinSize: positiveIntFrom(env, 'MICROFLOWS_SEGMENT_MIN_SIZE', 100),
    adminPort: env.MICROFLOWS_ADMIN_PORT === undefined || env.MICROFLOWS_ADMIN_PORT === '' ? null : intFrom(env, 'MICROFLOWS_ADMIN_PORT', 0),
    adminHost: env.MICROFLOWS_ADMIN_HOST || null,
    trustProxy: env.MICROFLOWS_TRUST_PROXY || null,
    adminKey: env.MICROFLOWS_ADMIN_KEY || null,
    allowedHosts: listFrom(env, 'MICROFLOWS_ALLOWED_HOSTS'),
    linkDomains: listFrom(env, 'MICROFLOWS_LINK_DOMAINS') ?? [hostOfUrl('MICROFLOWS_SHOP_URL', env.MICROFLOWS_SHOP_URL || 'https://shop.example')],
    trackingTokenTtlMs: durationAtLeast(env, 'MICROFLOWS_TOKEN_TTL', 180 * 86_400_000, 86_400_000, '180d'),
    clientMaxSkewMs: durationAtLeast(env, 'MICROFLOWS_CLIENT_MAX_SKEW', 3_600_000, 60_000, '1h'),
    sendgridVerificationKey: env.SENDGRID_WEBHOOK_VERIFICATION_KEY || null,
    postmarkWebhookCredential: env.POSTMARK_WEBHOOK_CREDENTIAL || null,
    eventRetentionMs: eventRetentionFrom(env),
    ipTruncation: boolFrom(env, 'MICROFLOWS_IP_TRUNCATION', true),
    rateLimitPerKey: positiveIntFrom(env, 'MICROFLOWS_RATE_LIMIT_PER_KEY', 20_000),
    rateLimitPerIp: positiveIntFrom(env, 'MICROFLOWS_RATE_LIMIT_PER_IP', 50),
    rateLimitPerToken: positiveIntFrom(env, 'MICROFLOWS_RATE_LIMIT_PER_TOKEN', 30),
    trackingDefault: trackingDefaultFrom(env),
    http: {
      headersTimeoutMs: durationAtLeast(env, 'MICROFLOWS_HTTP_HEADERS_TIMEOUT', 10_000, 1000, '10s'),
      requestTimeoutMs: durationAtLeast(env, 'MICROFLOWS_HTTP_REQUEST_TIMEOUT', 30_000, 1000, '30s'),
      keepAliveTimeoutMs: durationAtLeast(env, 'MICROFLOWS_HTTP_KEEPALIVE_TIMEOUT', 65_000, 1000, '65s'),
      maxConnections: positiveIntFrom(env, 'MICROFLOWS_HTTP_MAX_CONNECTIONS', 4096),
    },
    softBounce: {
      limit: positiveIntFrom(env, 'MICROFLOWS_SOFT_BOUNCE_LIMIT', 3),
      windowMs: durationAtLeast(env, 'MICROFLOWS_SOFT_BOUNCE_WINDOW', 7 * 86_400_000, 60_000, '7d'),
      suppressionMs: durationAtLeast(env, 'MICROFLOWS_SOFT_BOUNCE_SUPPRESSION', 30 * 86_400_000, 60_000, '30d'),
    },
    watchTemplates: env.MICROFLOWS_WATCH_TEMPLATES === undefined || env.MICROFLOWS_WATCH_TEMPLATES === '' ? null : boolFrom(env, 'MICROFLOWS_WATCH_TEMPLATES', false),
    payloadEncryption: boolFrom(env, 'MICROFLOWS_PAYLOAD_ENCRYPTION', true),
    ...masterKeysFrom(env),
    pseudonymousIds: boolFrom(env, 'MICROFLOWS_PSEUDONYMOUS_IDS', false),
    codecAllowedOrigins: originsFrom(env, 'MICROFLOWS_CODEC_ALLOWED_ORIGINS'),
  };
}
