// Segment membership at scale, each figure beside a full rebuild measured in the same run: the time-based sweep
// (the customers whose next check has come, evaluated as the scheduled segment sweep does) after the clock moves by a
// minute, an hour and a day, over 1M profiles and 10M events on SQLite and PostgreSQL; and the real-time cost of one
// event (recordEvents, then the engine's evaluation of that customer alone).
//
//   npx tsx bench/segments.ts [--profiles N] [--events-per-profile K] [--backend sqlite|postgres|both] [--seed S] [--realtime N]
//
// PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL; a throwaway database is created on that server and dropped.
// Without either, only SQLite runs. The dataset is bulk-loaded (not ingested): see bench/README.md, "segments".
import { withCleanup } from './bench-cleanup';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { SegmentEngine, type SweepPage } from '../activities/segment-engine';
import { loadSegments } from '../cli/segment-files';
import { BEHAVIOR_EVENT_TYPES, DAY_MS, foldAll, type BehaviorEvent } from '../core/behavior';
import type { EventType } from '../core/event';
import { emptyProfile, type Profile } from '../core/profile';
import type { SegmentDefinition } from '../core/segment-definition';
import type { KyselyStore } from '../store/kysely-store';
import { openPostgresStore } from '../store/postgres';
import { profileRow } from '../store/rows';
import type { ProfilesTable } from '../store/schema';
import { openSqliteStore } from '../store/sqlite';
import type { NewEvent } from '../store/store';
import { seededRandom } from '../test/support/seeded-random';
import { throwawayDatabase } from '../test/support/store-backends';
import { startCpuWindow } from './process-cpu';
import { printTable } from './table';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** The dataset's "now": fixed, so a seed gives the same memberships on every run and machine. */
const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);
const HISTORY_DAYS = 120;
/** What segmentSweepWorkflow asks for per activity call. */
const PAGE_SIZE = 500;
/** Customers generated, then inserted (time-ordered), per bulk-load transaction or statement. */
const LOAD_CHUNK_CUSTOMERS = 2_000;
const CLOCK_MOVES = [
  { label: '+1 minute', ms: MINUTE_MS },
  { label: '+1 hour', ms: HOUR_MS },
  { label: '+1 day', ms: DAY_MS },
] as const;
const TARGET_SWEEP_SECONDS = 60;
const TARGET_SWEEP_MOVE = '+1 day';
const TARGET_REALTIME_MEDIAN_MS = 2;
/** The sizes the targets name; smaller runs are indicative only. */
const TARGET_PROFILES = 1_000_000;

const CATEGORIES = ['Shoes', 'Jackets', 'Trousers', 'Shirts', 'Bags', 'Hats', 'Socks', 'Watches', 'Sunglasses', 'Belts', 'Knitwear', 'Dresses'];
const PAGES = ['Home', 'Category', 'Search', 'Sale', 'About'];
const CONTEXT = JSON.stringify({
  library: { name: 'analytics.js', version: '5.2.0' },
  ip: '10.1.2.3',
  userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  page: { url: 'https://shop.example.com/' },
});

// --- flags -------------------------------------------------------------------------------------------

type BackendName = 'sqlite' | 'postgres';

interface Flags {
  profiles: number;
  eventsPerProfile: number;
  backend: 'sqlite' | 'postgres' | 'both' | null;
  seed: number;
  realtime: number;
}

const USAGE = 'usage: npx tsx bench/segments.ts [--profiles N] [--events-per-profile K] [--backend sqlite|postgres|both] [--seed S] [--realtime N]';

function parseFlags(argv: string[]): Flags {
  const flags: Flags = { profiles: 1_000_000, eventsPerProfile: 10, backend: null, seed: 42, realtime: 2_000 };
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${name} needs a value\n${USAGE}`);
    const positive = () => {
      const n = Number(value.replace(/_/g, ''));
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} ${value}: give a positive number\n${USAGE}`);
      return n;
    };
    if (name === '--profiles') flags.profiles = Math.round(positive());
    else if (name === '--events-per-profile') flags.eventsPerProfile = positive();
    else if (name === '--seed') flags.seed = Math.round(positive());
    else if (name === '--realtime') flags.realtime = Math.round(positive());
    else if (name === '--backend') {
      if (value !== 'sqlite' && value !== 'postgres' && value !== 'both') throw new Error(`--backend ${value}: use sqlite, postgres or both\n${USAGE}`);
      flags.backend = value;
    } else throw new Error(`unknown flag ${name}\n${USAGE}`);
  }
  if (flags.eventsPerProfile < 2) throw new Error(`--events-per-profile ${flags.eventsPerProfile}: give at least 2\n${USAGE}`);
  return flags;
}

// --- the dataset -------------------------------------------------------------------------------------

/** One generated event: what the fold reads, and the columns of its row. */
interface GeneratedEvent extends BehaviorEvent {
  messageId: string;
  customerId: string;
  receivedAt: number;
}

function customerIdOf(index: number): string {
  return `user-${index}`;
}

type BenchProduct = {
  product_id: string;
  name: string;
  category: string;
  price: number;
  url: string;
};

function productOf(random: () => number, category: string): BenchProduct {
  const n = Math.floor(random() * 400);
  return {
    product_id: `${category.toLowerCase()}-${n}`,
    name: `${category.replace(/s$/, '')} ${n}`,
    category,
    price: Math.round((9.99 + ((n * 37) % 290)) * 100) / 100,
    url: `https://shop.example.com/p/${category.toLowerCase()}-${n}`,
  };
}

/**
 * One customer's history, in time order: sessions between their first and last visit (the last visit is an
 * exponential number of days ago, mean 28, within the 120 days), each opening with a page view and going on with
 * product views mostly in the customer's favourite category, some adds to cart and email opens. 30 % are buyers
 * (a third of them repeat buyers): an ordering session ends with an add and an Order Completed, which empties the cart.
 */
function customerHistory(index: number, random: () => number, perProfile: number): GeneratedEvent[] {
  const customerId = customerIdOf(index);
  const total = Math.max(2, Math.round(perProfile * (0.4 + 1.2 * random())));
  const idleDays = Math.min(HISTORY_DAYS - 1, -Math.log(1 - random()) * 28);
  const lastAt = NOW - idleDays * DAY_MS - 30 * MINUTE_MS;
  const firstAt = Math.max(NOW - HISTORY_DAYS * DAY_MS, lastAt - random() * 60 * DAY_MS);
  const sessionCount = 1 + Math.floor(random() * Math.min(6, total / 2));
  const starts = [lastAt, ...Array.from({ length: sessionCount - 1 }, () => firstAt + random() * (lastAt - firstAt))].sort((a, b) => a - b);
  const sizes = starts.map(() => 1);
  for (let k = sessionCount; k < total; k++) sizes[Math.floor(random() * sessionCount)]! += 1;
  const buyer = random() < 0.3;
  const orders = buyer ? Math.min(sessionCount, random() < 0.35 ? 2 + Math.floor(random() * 4) : 1) : 0;
  const ordering = new Set<number>();
  while (ordering.size < orders) ordering.add(Math.floor(random() * sessionCount));
  const favourite = CATEGORIES[Math.floor(random() * CATEGORIES.length)]!;

  const events: GeneratedEvent[] = [];
  const add = (at: number, type: EventType, name: string | null, properties: Record<string, unknown>) => {
    events.push({ messageId: `bench-${index}-${events.length}`, customerId, type, name, properties, traits: {}, timestamp: Math.round(at), receivedAt: Math.round(at) + 40 });
  };
  starts.forEach((start, s) => {
    let at = start;
    const step = () => (at += 20_000 + random() * 150_000);
    const category = random() < 0.75 ? favourite : CATEGORIES[Math.floor(random() * CATEGORIES.length)]!;
    const size = sizes[s]!;
    const ends = ordering.has(s) ? Math.min(2, size) : 0;
    let lastProduct = productOf(random, category);
    for (let k = 0; k < size - ends; k++) {
      step();
      const r = random();
      if (k === 0 || r < 0.08) {
        const page = PAGES[Math.floor(random() * PAGES.length)]!;
        add(at, 'page', page, { path: `/${page.toLowerCase()}`, url: `https://shop.example.com/${page.toLowerCase()}`, title: page });
      } else if (r < 0.14) {
        add(at, 'track', 'Email Opened', { flow_id: 'weekly-picks', delivery_key: `weekly/${index}/${s}` });
      } else if (r < 0.19) {
        add(at, 'track', 'Product Added', { ...lastProduct, quantity: 1 });
      } else {
        lastProduct = productOf(random, category);
        add(at, 'track', 'Product Viewed', lastProduct);
      }
    }
    if (ends === 2) add(step(), 'track', 'Product Added', { ...lastProduct, quantity: 1 });
    if (ends >= 1) {
      const items = 1 + Math.floor(random() * 3);
      const products = Array.from({ length: items }, () => ({ ...productOf(random, category), quantity: 1 }));
      const spend = random() < 0.1 ? 3 + random() * 5 : 1;
      const orderTotal = Math.round(products.reduce((sum, p) => sum + p.price, 0) * spend * 100) / 100;
      add(step(), 'track', 'Order Completed', { order_id: `order-${index}-${s}`, total: orderTotal, currency: 'USD', products });
    }
  });
  return events;
}

interface Chunk {
  events: GeneratedEvent[];
  profiles: ProfilesTable[];
}

/** The dataset, LOAD_CHUNK_CUSTOMERS customers at a time; each chunk's events in time order, as ingest would interleave them. */
function* datasetChunks(flags: Flags): Generator<Chunk> {
  const random = seededRandom(flags.seed);
  for (let first = 0; first < flags.profiles; first += LOAD_CHUNK_CUSTOMERS) {
    const events: GeneratedEvent[] = [];
    const profiles: ProfilesTable[] = [];
    for (let index = first; index < Math.min(flags.profiles, first + LOAD_CHUNK_CUSTOMERS); index++) {
      const history = customerHistory(index, random, flags.eventsPerProfile);
      const last = history[history.length - 1]!;
      const profile: Profile = emptyProfile(customerIdOf(index), last.receivedAt);
      const email = `${customerIdOf(index)}@example.com`;
      const identifiedAt = history[0]!.timestamp;
      profile.email = email;
      profile.traits = { email, first_name: `Sam${index % 1000}` };
      profile.traitTimes = { email: identifiedAt, first_name: identifiedAt };
      profile.consent = { email_marketing: { granted: index % 3 !== 0, source: 'identify', at: identifiedAt } };
      profile.computed = foldAll(history.filter((e) => BEHAVIOR_EVENT_TYPES.includes(e.type)));
      profiles.push(profileRow(profile));
      events.push(...history);
    }
    events.sort((a, b) => a.timestamp - b.timestamp);
    yield { events, profiles };
  }
}

interface LoadFigures {
  profiles: number;
  events: number;
  seconds: number;
  bytes: number;
}

/** better-sqlite3 prepared statements in one transaction per chunk, on a connection of its own with the journal off. */
function loadSqlite(file: string, flags: Flags, progress: (line: string) => void): LoadFigures {
  const began = performance.now();
  const db = new BetterSqlite3(file);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -1048576');
    const insertEvent = db.prepare(`insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
      values (?, ?, ?, ?, null, ?, ?, '{}', ?, ?, ?, 1)`);
    const insertProfile = db.prepare(`insert into profiles (customer_id, email, timezone, traits, computed, consent, tags, updated_at, trait_times)
      values (@customer_id, @email, @timezone, @traits, @computed, @consent, @tags, @updated_at, @trait_times)`);
    const write = db.transaction((chunk: Chunk) => {
      for (const e of chunk.events) insertEvent.run(e.messageId, e.type, e.customerId, e.customerId, e.name, JSON.stringify(e.properties), CONTEXT, e.timestamp, e.receivedAt);
      for (const p of chunk.profiles) insertProfile.run(p);
    });
    let profiles = 0;
    let events = 0;
    let reported = performance.now();
    for (const chunk of datasetChunks(flags)) {
      write(chunk);
      profiles += chunk.profiles.length;
      events += chunk.events.length;
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        progress(`loaded ${count(profiles)} profiles, ${count(events)} events (${secs((reported - began) / 1000)} s)`);
      }
    }
    db.pragma('journal_mode = WAL');
    return { profiles, events, seconds: (performance.now() - began) / 1000, bytes: fs.statSync(file).size };
  } finally {
    db.close();
  }
}

/** One INSERT … SELECT FROM unnest(arrays) per chunk; the next chunk is generated while PostgreSQL writes this one. */
async function loadPostgres(url: string, flags: Flags, progress: (line: string) => void): Promise<LoadFigures> {
  const began = performance.now();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const write = async (chunk: Chunk) => {
      const e = chunk.events;
      await client.query(
        `insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
         select m, t, c, c, null, n, p, '{}', $8, ts, ra, true from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) as u(m, t, c, n, p, ts, ra)`,
        [e.map((x) => x.messageId), e.map((x) => x.type), e.map((x) => x.customerId), e.map((x) => x.name), e.map((x) => JSON.stringify(x.properties)), e.map((x) => x.timestamp), e.map((x) => x.receivedAt), CONTEXT],
      );
      const p = chunk.profiles;
      await client.query(
        `insert into profiles (customer_id, email, timezone, traits, computed, consent, tags, updated_at, trait_times)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[])`,
        [p.map((x) => x.customer_id), p.map((x) => x.email), p.map((x) => x.timezone), p.map((x) => x.traits), p.map((x) => x.computed), p.map((x) => x.consent), p.map((x) => x.tags), p.map((x) => x.updated_at), p.map((x) => x.trait_times)],
      );
    };
    let profiles = 0;
    let events = 0;
    let reported = performance.now();
    let writing: Promise<void> = Promise.resolve();
    for (const chunk of datasetChunks(flags)) {
      await writing;
      writing = write(chunk);
      // Never left unobserved while the next chunk is generated: a failure surfaces at the next await.
      writing.catch(() => undefined);
      profiles += chunk.profiles.length;
      events += chunk.events.length;
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        progress(`loaded ${count(profiles)} profiles, ${count(events)} events (${secs((reported - began) / 1000)} s)`);
      }
    }
    await writing;
    // What autovacuum would have done to a database that grew to this size: planner statistics, visibility map.
    await client.query('vacuum analyze');
    const size = await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes');
    return { profiles, events, seconds: (performance.now() - began) / 1000, bytes: Number(size.rows[0]!.bytes) };
  } finally {
    await client.end();
  }
}

// --- backends ----------------------------------------------------------------------------------------

/** A loaded, migrated store, and a side connection for the bench's own counting queries (never the store's work). */
interface Backend {
  name: BackendName;
  store: KyselyStore;
  load: LoadFigures;
  /** One row of numbers from `sql` (portable SQL, literals inline). */
  numbers(sql: string): Promise<number[]>;
  /** Database server version, for the machine facts. */
  serverVersion: string;
  /** PostgreSQL: median time of a one-row write transaction (its commit waits for the WAL flush), on the bench's own table. */
  commitMs: number | null;
}

async function withSqlite<T>(flags: Flags, progress: (line: string) => void, work: (backend: Backend) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-bench-segments-'));
  const file = path.join(dir, 'store.sqlite');
  let store: KyselyStore | undefined;
  let reader: BetterSqlite3.Database | undefined;
  return withCleanup(
    async () => {
      reader?.close();
      await store?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
    async () => {
      const migrating = openSqliteStore(file);
      await migrating.migrate();
      await migrating.close();
      const load = loadSqlite(file, flags, progress);
      store = openSqliteStore(file);
      await store.migrate();
      const opened = new BetterSqlite3(file, { readonly: true });
      reader = opened;
      return work({
        name: 'sqlite',
        store,
        load,
        numbers: async (sql) => Object.values(opened.prepare(sql).get() as Record<string, number | null>).map((v) => Number(v ?? 0)),
        serverVersion: `SQLite ${(opened.prepare('select sqlite_version() as v').get() as { v: string }).v}`,
        commitMs: null,
      });
    },
  );
}

async function withPostgres<T>(adminUrl: string, flags: Flags, progress: (line: string) => void, work: (backend: Backend) => Promise<T>): Promise<T> {
  const database = throwawayDatabase(adminUrl);
  let store: KyselyStore | undefined;
  let reader: pg.Client | undefined;
  return withCleanup(
    async () => {
      await reader?.end().catch(() => undefined);
      await store?.close();
      await database.drop();
    },
    async () => {
      await database.create();
      store = openPostgresStore(database.url);
      await store.migrate();
      const load = await loadPostgres(database.url, flags, progress);
      const client = new pg.Client({ connectionString: database.url });
      reader = client;
      await client.connect();
      const version = await client.query<{ server_version: string }>('show server_version');
      const commitMs = await commitLatency(client);
      return work({
        name: 'postgres',
        store,
        load,
        numbers: async (sql) => Object.values((await client.query(sql)).rows[0] as Record<string, string | number | null>).map((v) => Number(v ?? 0)),
        serverVersion: `PostgreSQL ${version.rows[0]!.server_version}`,
        commitMs,
      });
    },
  );
}

/** What one durable commit costs on this server and disk: every segment evaluation is one write transaction. */
async function commitLatency(client: pg.Client): Promise<number> {
  await client.query('create table bench_commit_probe (id integer primary key, v integer not null)');
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await client.query('begin');
    await client.query('insert into bench_commit_probe values ($1, 1) on conflict (id) do update set v = bench_commit_probe.v + 1', [i % 10]);
    await client.query('commit');
    times.push(performance.now() - t0);
  }
  await client.query('drop table bench_commit_probe');
  return percentiles(times).p50;
}

// --- measurements ------------------------------------------------------------------------------------

interface SweepFigure {
  label: string;
  /** The sweep's "now", ms after NOW. */
  offsetMs: number;
  /** Customers whose next check was at or before the sweep's now, counted before it ran. */
  due: number;
  evaluated: number;
  failed: number;
  changes: number;
  seconds: number;
  /** Of `seconds`: refreshRfm, and scheduling everyone (the rebuild only). */
  rfmSeconds: number;
  scheduleSeconds: number;
  cpu: { nodePct: number; otherPct: number | null };
}

interface RealtimeFigure {
  samples: number;
  record: Percentiles;
  evaluate: Percentiles;
  changed: number;
}

interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Customers by when their next check falls, after the rebuild. */
type NextCheckFigures = Array<{ label: string; customers: number }>;

interface BackendFigures {
  name: BackendName;
  serverVersion: string;
  commitMs: number | null;
  load: LoadFigures;
  rebuild: SweepFigure;
  sweeps: SweepFigure[];
  sizes: Record<string, number>;
  nextChecks: NextCheckFigures;
  realtime: RealtimeFigure;
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

/** The sweep as segmentSweepWorkflow runs it: refreshRfm, pages of PAGE_SIZE from the start until `next` is null, then markSegmentsSwept. */
async function sweep(
  backend: Backend,
  engine: SegmentEngine,
  label: string,
  now: number,
  progress: (line: string) => void,
  before?: { refreshRfm: () => Promise<unknown>; schedule: () => Promise<void> },
): Promise<SweepFigure> {
  const [due] = await backend.numbers(`select count(*) as due from segment_checks where next_check_at <= ${now}`);
  const cpu = startCpuWindow(undefined);
  const began = performance.now();
  await (before ? before.refreshRfm() : engine.refreshRfm(now));
  const rfmSeconds = (performance.now() - began) / 1000;
  const scheduled = performance.now();
  if (before) await before.schedule();
  const scheduleSeconds = (performance.now() - scheduled) / 1000;
  let evaluated = 0;
  let failed = 0;
  let changes = 0;
  let after: SweepPage['next'] = null;
  let reported = performance.now();
  do {
    const page = await engine.sweepPage(now, PAGE_SIZE, after);
    evaluated += page.evaluated;
    failed += page.failed;
    changes += page.changes;
    after = page.next;
    if (performance.now() - reported > 30_000) {
      reported = performance.now();
      const elapsed = (reported - began) / 1000;
      progress(`${backend.name} ${label}: ${count(evaluated)} evaluated in ${secs(elapsed)} s (${count(evaluated / elapsed)}/s)`);
    }
  } while (after !== null);
  if (failed === 0) await backend.store.markSegmentsSwept(now);
  const seconds = (performance.now() - began) / 1000;
  const window = cpu();
  return { label, offsetMs: now - NOW, due: due ?? 0, evaluated, failed, changes, seconds, rfmSeconds, scheduleSeconds, cpu: { nodePct: window.nodePct, otherPct: window.otherPct } };
}

/** When the next checks fall after the rebuild, from the store's own index of them. */
async function nextChecks(backend: Backend): Promise<NextCheckFigures> {
  const edges = [
    { label: 'within 1 minute', ms: MINUTE_MS },
    { label: 'within 1 hour', ms: HOUR_MS },
    { label: 'within 1 day', ms: DAY_MS },
    { label: 'within 7 days', ms: 7 * DAY_MS },
  ];
  const columns = edges.map((e, i) => `sum(case when next_check_at <= ${NOW + e.ms} then 1 else 0 end) as b${i}`);
  const values = await backend.numbers(
    `select ${columns.join(', ')}, sum(case when next_check_at > ${NOW + 7 * DAY_MS} then 1 else 0 end) as later, sum(case when next_check_at is null then 1 else 0 end) as never from segment_checks`,
  );
  const buckets = [...edges.map((e, i) => ({ label: e.label, customers: values[i] ?? 0 })), { label: 'later', customers: values[4] ?? 0 }, { label: 'none (no time-based change)', customers: values[5] ?? 0 }];

  return buckets;
}

/** A new event of a random existing customer, shaped like the dataset's traffic. */
function realtimeEvent(random: () => number, i: number, customers: number, at: number): NewEvent {
  const customerId = customerIdOf(Math.floor(random() * customers));
  const category = CATEGORIES[Math.floor(random() * CATEGORIES.length)]!;
  const r = random();
  const [type, name, properties]: [EventType, string | null, Record<string, unknown>] =
    r < 0.45
      ? ['track', 'Product Viewed', productOf(random, category)]
      : r < 0.65
        ? ['page', 'Home', { path: '/', url: 'https://shop.example.com/', title: 'Home' }]
        : r < 0.8
          ? ['track', 'Product Added', { ...productOf(random, category), quantity: 1 }]
          : r < 0.9
            ? ['track', 'Order Completed', { order_id: `rt-order-${i}`, total: 50 + Math.round(random() * 200), currency: 'USD', products: [productOf(random, category)] }]
            : ['track', 'Email Opened', { flow_id: 'weekly-picks' }];
  return { messageId: `bench-realtime-${i}`, type, customerId, userId: customerId, anonymousId: null, name, properties, traits: {}, context: JSON.parse(CONTEXT) as Record<string, unknown>, timestamp: at, receivedAt: at };
}

/** recordEvents of one event, then the engine's evaluation of that customer alone, each timed; after a warm-up. */
async function realtime(backend: Backend, engine: SegmentEngine, flags: Flags, from: number): Promise<RealtimeFigure> {
  const random = seededRandom(flags.seed + 2);
  const warmup = Math.min(200, flags.realtime);
  const record: number[] = [];
  const evaluate: number[] = [];
  let changed = 0;
  for (let i = 0; i < warmup + flags.realtime; i++) {
    const at = from + i * 1_000;
    const event = realtimeEvent(random, i, flags.profiles, at);
    const t0 = performance.now();
    await backend.store.recordEvents([event], { needsDispatch: () => false });
    const t1 = performance.now();
    const result = await engine.evaluate(event.customerId, at);
    const t2 = performance.now();
    if (i < warmup) continue;
    record.push(t1 - t0);
    evaluate.push(t2 - t1);
    if (result.changes.length > 0) changed += 1;
  }
  return { samples: flags.realtime, record: percentiles(record), evaluate: percentiles(evaluate), changed };
}

async function measureBackend(backend: Backend, segments: SegmentDefinition[], flags: Flags, progress: (line: string) => void): Promise<BackendFigures> {
  const { store } = backend;
  progress(`${backend.name}: loaded ${count(backend.load.profiles)} profiles and ${count(backend.load.events)} events in ${secs(backend.load.seconds)} s`);
  let clock = NOW;
  const engine = new SegmentEngine({ store, segments, dispatcher: null, now: () => clock, log: (m) => progress(m) });
  // Untimed setup: the definitions recorded, as `microflows start` does once.
  await engine.syncDefinitions();

  // The baseline: every customer evaluated at NOW, as a nightly recompute would; it also sets each one's next check.
  const rebuild = await sweep(backend, engine, 'full rebuild', NOW, progress, {
    refreshRfm: () => engine.refreshRfm(NOW, 0),
    schedule: () => store.scheduleSegmentChecks('everyone', NOW),
  });
  progress(`${backend.name} full rebuild: ${count(rebuild.evaluated)} evaluated, ${count(rebuild.changes)} changes in ${secs(rebuild.seconds)} s`);
  const sizes = (await store.segmentCounts()).sizes;
  const checks = await nextChecks(backend);

  const sweeps: SweepFigure[] = [];
  for (const move of CLOCK_MOVES) {
    clock += move.ms;
    const figure = await sweep(backend, engine, `${move.label} sweep`, clock, progress);
    sweeps.push(figure);
    progress(`${backend.name} ${move.label} sweep: ${count(figure.due)} due, ${count(figure.evaluated)} evaluated, ${count(figure.changes)} changes in ${secs(figure.seconds)} s`);
  }

  const rt = await realtime(backend, engine, flags, clock + MINUTE_MS);
  progress(`${backend.name} real-time: evaluate median ${ms(rt.evaluate.p50)} ms, recordEvents median ${ms(rt.record.p50)} ms over ${count(rt.samples)} events`);
  return { name: backend.name, serverVersion: backend.serverVersion, commitMs: backend.commitMs, load: backend.load, rebuild, sweeps, sizes, nextChecks: checks, realtime: rt };
}

// --- output ------------------------------------------------------------------------------------------

function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function secs(s: number): string {
  return s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s.toFixed(2);
}

function ms(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function pct(part: number, whole: number): string {
  return whole === 0 ? 'n/a' : `${((part / whole) * 100).toFixed(1)}%`;
}

function machineInfo(): string {
  const cpus = os.cpus();
  return [
    `machine: ${cpus.length} cpus × ${cpus[0]?.model.trim() ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()} ${os.arch()}`,
    `node ${process.version}, ${new Date().toISOString()}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ].join('\n');
}

function sweepRow(backend: BackendFigures, f: SweepFigure): string[] {
  const isTarget = backend.name === 'sqlite' && f.label === `${TARGET_SWEEP_MOVE} sweep`;
  const target = isTarget ? `≤ ${TARGET_SWEEP_SECONDS} s: ${f.seconds <= TARGET_SWEEP_SECONDS ? 'PASS' : 'MISS'}` : '';
  return [
    backend.name,
    f.label,
    f.offsetMs === 0 ? 'now' : `now + ${formatOffset(f.offsetMs)}`,
    count(f.due),
    count(f.evaluated),
    count(f.changes),
    secs(f.seconds),
    secs(f.rfmSeconds + f.scheduleSeconds),
    f.evaluated === 0 ? 'n/a' : ((f.seconds * 1e6) / f.evaluated).toFixed(0),
    f === backend.rebuild ? '1' : (f.seconds / backend.rebuild.seconds).toFixed(3),
    `${f.cpu.nodePct.toFixed(0)}%`,
    f.cpu.otherPct === null ? 'n/a' : `${f.cpu.otherPct.toFixed(0)}%`,
    target,
  ];
}

function formatOffset(offsetMs: number): string {
  const d = Math.floor(offsetMs / DAY_MS);
  const h = Math.floor((offsetMs % DAY_MS) / HOUR_MS);
  const m = Math.round((offsetMs % HOUR_MS) / MINUTE_MS);
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : ''].filter(Boolean).join(' ');
}

function report(figures: BackendFigures[], segments: SegmentDefinition[], flags: Flags): void {
  const indicative = flags.profiles < TARGET_PROFILES ? ` (${count(flags.profiles)} profiles, fewer than the target's ${count(TARGET_PROFILES)}: indicative only)` : '';

  console.log('\n== dataset (bulk-loaded, not timed against any target) ==');
  printTable(
    ['backend', 'server', 'profiles', 'events', 'events/profile', 'load s', 'rows/s', 'database MB', 'one-row write transaction ms'],
    figures.map((f) => [
      f.name,
      f.serverVersion,
      count(f.load.profiles),
      count(f.load.events),
      (f.load.events / f.load.profiles).toFixed(2),
      secs(f.load.seconds),
      count((f.load.events + f.load.profiles) / f.load.seconds),
      count(f.load.bytes / 2 ** 20),
      f.commitMs === null ? 'n/a' : ms(f.commitMs),
    ]),
    [0, 1],
  );

  console.log('\n== segment sizes after the full rebuild ==');
  printTable(
    ['segment', ...figures.map((f) => `${f.name} members`), 'share of profiles'],
    segments.map((s) => [s.id, ...figures.map((f) => count(f.sizes[s.id] ?? 0)), pct(figures[0]!.sizes[s.id] ?? 0, figures[0]!.load.profiles)]),
    [0],
  );

  for (const f of figures) {
    console.log(`\n== ${f.name}: when the next checks fall, after the full rebuild at now ==`);
    printTable(
      ['next check', 'customers', 'share'],
      f.nextChecks.map((b) => [b.label, count(b.customers), pct(b.customers, f.load.profiles)]),
      [0],
    );
  }

  console.log(`\n== time-based sweep against the full rebuild (pages of ${PAGE_SIZE}; each sweep's clock moves on from the previous one)${indicative} ==`);
  printTable(
    ['backend', 'run', 'clock', 'due', 'evaluated', 'changes', 'seconds', 'of which rfm + scheduling s', 'µs/customer', 'vs rebuild', 'node cpu', 'other cpu', 'target'],
    figures.flatMap((f) => [f.rebuild, ...f.sweeps].map((s) => sweepRow(f, s))),
    [0, 1, 2, 12],
  );
  const sqlite = figures.find((f) => f.name === 'sqlite');
  const targetSweep = sqlite?.sweeps.find((s) => s.label === `${TARGET_SWEEP_MOVE} sweep`);
  if (sqlite && targetSweep) {
    console.log(
      `target: the ${TARGET_SWEEP_MOVE} sweep on SQLite ≤ ${TARGET_SWEEP_SECONDS} s: ${targetSweep.seconds <= TARGET_SWEEP_SECONDS ? 'PASS' : 'MISS'} — ${secs(targetSweep.seconds)} s for ` +
        `${count(targetSweep.evaluated)} customers due${indicative}   | baseline (full rebuild): ${secs(sqlite.rebuild.seconds)} s`,
    );
  }
  for (const f of figures) {
    const failed = [f.rebuild, ...f.sweeps].reduce((n, s) => n + s.failed, 0);
    if (failed > 0) console.log(`${f.name}: ${count(failed)} evaluations FAILED (left due); see the log lines above`);
  }

  console.log(`\n== real-time update: one event recorded, then that customer evaluated (ms; after a warm-up of ${Math.min(200, flags.realtime)}) ==`);
  printTable(
    ['backend', 'events', 'evaluate p50', 'p90', 'p99', 'max', 'recordEvents p50', 'p90', 'p99', 'changed membership', 'rebuild ms/customer', 'full rebuild s/event', 'target'],
    figures.map((f) => [
      f.name,
      count(f.realtime.samples),
      ms(f.realtime.evaluate.p50),
      ms(f.realtime.evaluate.p90),
      ms(f.realtime.evaluate.p99),
      ms(f.realtime.evaluate.max),
      ms(f.realtime.record.p50),
      ms(f.realtime.record.p90),
      ms(f.realtime.record.p99),
      pct(f.realtime.changed, f.realtime.samples),
      ms((f.rebuild.seconds * 1000) / Math.max(1, f.rebuild.evaluated)),
      secs(f.rebuild.seconds),
      `median ≤ ${TARGET_REALTIME_MEDIAN_MS} ms: ${f.realtime.evaluate.p50 <= TARGET_REALTIME_MEDIAN_MS ? 'PASS' : 'MISS'}`,
    ]),
    [0, 12],
  );
  for (const f of figures) {
    console.log(
      `target: median real-time update ≤ ${TARGET_REALTIME_MEDIAN_MS} ms per event on ${f.name}: ${f.realtime.evaluate.p50 <= TARGET_REALTIME_MEDIAN_MS ? 'PASS' : 'MISS'} — ${ms(f.realtime.evaluate.p50)} ms` +
        `   | baseline (rebuild everyone to apply the event): ${secs(f.rebuild.seconds)} s per event, ${ms((f.rebuild.seconds * 1000) / Math.max(1, f.rebuild.evaluated))} ms per customer inside it`,
    );
  }
}

// --- main --------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const postgresUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || '';
  const backends: BackendName[] = flags.backend === 'both' ? ['sqlite', 'postgres'] : flags.backend ? [flags.backend] : postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];
  if (backends.includes('postgres') && !postgresUrl) throw new Error('--backend postgres needs BENCH_DATABASE_URL or TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)');
  const segments = loadSegments(path.join(__dirname, '..', 'segments'));
  const began = performance.now();
  const progress = (line: string) => console.log(`  ${line}`);

  console.log('segments: the time-based sweep and the real-time update, against a full rebuild measured in the same run');
  console.log(machineInfo());
  console.log(
    `dataset: ${count(flags.profiles)} profiles, ~${flags.eventsPerProfile} events each over the ${HISTORY_DAYS} days before ${new Date(NOW).toISOString()} (seed ${flags.seed}); ` +
      `segments: ${segments.map((s) => s.id).join(', ')}`,
  );
  if (!backends.includes('postgres')) console.log('PostgreSQL skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run it too');

  const figures: BackendFigures[] = [];
  for (const name of backends) {
    const measure = (backend: Backend) => measureBackend(backend, segments, flags, progress);
    figures.push(name === 'sqlite' ? await withSqlite(flags, progress, measure) : await withPostgres(postgresUrl, flags, progress, measure));
  }
  report(figures, segments, flags);
  console.log(`\ntotal ${secs((performance.now() - began) / 1000)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
