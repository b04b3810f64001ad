// Ingest throughput and ack latency, each beside a baseline measured in the same run: events/s through
// POST /v1/batch into SQLite and PostgreSQL (computed fields kept current) against one store transaction per
// event in this process, p50–p99 of POST /v1/track at a fixed open-loop rate against a bare node:http handler,
// and what source keys and rate limits cost on /v1/batch and /v1/track against the same app without them.
//
//   npx tsx bench/ingest.ts [--events N] [--duration S] [--rate R] [--only batch|track|baseline|auth] [--rounds N] [--segments]
//
// --segments: the server also keeps the shipped segments current after each commit (as `microflows start` does);
// the batch rows then say how long the segment updates took to catch up after the last acknowledgement.
// --rounds: how many times each auth variant runs (interleaved, in rotating order); 6 by default (a multiple of 3
// puts each variant in each position equally often).
//
// PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test; a throwaway
// database is created on that server and dropped. When it cannot be reached, the PostgreSQL rows are skipped.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { newApiKey, type SourceKind } from '../core/api-keys';
import { parseBatchCall, parseCallOfType } from '../core/segment-spec';
import { checkClientEvent } from '../core/source-policy';
import { createApp, type App, type AppDeps } from '../server/app';
import { KeyRing } from '../server/auth';
import { noDispatch } from '../server/dispatcher';
import { limiter } from '../server/rate-limits';
import type { KyselyStore } from '../store/kysely-store';
import { openPostgresStore } from '../store/postgres';
import { openSqliteStore } from '../store/sqlite';
import type { NewEvent } from '../store/store';
import { throwawayDatabase } from '../test/support/store-backends';
import { callSource, type Call } from './ecommerce-events';
import type { BatchJob, BatchResult, LoadJob, LoadMessage, TrackJob, TrackResult } from './ingest-load';
import { summarize, type LatencySummary } from './open-loop';
import { procCpuSeconds, startCpuWindow } from './process-cpu';
import { printTable } from './table';
import { SegmentEngine } from '../activities/segment-engine';
import { loadSegments } from '../cli/segment-files';

const WRITE_KEY = 'bench-write-key';
const SEED = 20_000;
/** Returning customers; every one is identified (untimed) before a scenario's warm-up. */
const CUSTOMERS = 20_000;
/** Calls from a customer never seen before: their first call joins their anonymousId to their userId. */
const NEW_CUSTOMER_SHARE = 0.02;
const BATCH_CONNECTIONS = 4;
const TRACK_CONNECTIONS = 16;
const TRACK_WARMUP_SECONDS = 5;
/** 100 events a batch, and analytics-node's default flushAt of 15. */
const BATCH_SIZES = [100, 15];
const BASELINE_WARMUP_EVENTS = 2_000;
/** The store alone is fed what group commit writes per transaction at 100 events a request: about 200. */
const STORE_ALONE_EVENTS_PER_CALL = 200;

const TARGET_EVENTS_PER_SECOND = 20_000;
/** The throughput target holds over at least this many events, after the warm-up. */
const TARGET_MIN_EVENTS = 200_000;
const TARGET_RATE = 2_000;
const TARGET_P99_MS = 50;
/** Other processes busier than this (% of one core) during a measurement make its figures suspect. */
const NOISY_OTHER_PCT = 25;

/** What source keys and rate limits may cost of ingest throughput (issue 13). */
const TARGET_AUTH_OVERHEAD_PCT = 5;
/** The auth runs' limits: the shipped limiters, at a rate no run reaches, so their cost is measured but nothing is refused. */
const UNREACHED_LIMIT = 1_000_000_000;
/** Closed-loop /v1/track: one call a request, on as many connections as the open-loop track scenario. */
const AUTH_TRACK_CONNECTIONS = TRACK_CONNECTIONS;

// --- flags -------------------------------------------------------------------------------------------

const SECTIONS = ['batch', 'baseline', 'track', 'auth'] as const;
type Section = (typeof SECTIONS)[number];

interface Flags {
  /** Events measured per batch scenario. */
  events: number;
  /** Seconds measured at the fixed track rate. */
  duration: number;
  rate: number;
  only: Section | null;
  /** The server evaluates the shipped segments after each commit. */
  segments: boolean;
  /** Runs of each auth variant. */
  rounds: number;
}

const USAGE = 'usage: npx tsx bench/ingest.ts [--events N] [--duration S] [--rate R] [--only batch|track|baseline|auth] [--rounds N] [--segments]';

function parseFlags(argv: string[]): Flags {
  const flags: Flags = { events: 200_000, duration: 30, rate: TARGET_RATE, only: null, segments: false, rounds: 6 };
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    if (name === '--segments') {
      flags.segments = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${name} needs a value\n${USAGE}`);
    const positive = () => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} ${value}: give a positive number\n${USAGE}`);
      return n;
    };
    if (name === '--events') flags.events = Math.round(positive());
    else if (name === '--duration') flags.duration = positive();
    else if (name === '--rate') flags.rate = positive();
    else if (name === '--rounds') flags.rounds = Math.round(positive());
    else if (name === '--only') {
      if (!SECTIONS.includes(value as Section)) throw new Error(`--only ${value}: use ${SECTIONS.join(', ')}\n${USAGE}`);
      flags.only = value as Section;
    } else throw new Error(`unknown flag ${name}\n${USAGE}`);
  }
  return flags;
}

// --- cleanup on Ctrl-C ---------------------------------------------------------------------------------

/** Temp dirs and throwaway databases still to remove; run on SIGINT so an interrupted run leaves nothing. */
const cleanups = new Set<() => Promise<void>>();

async function withCleanup<T>(cleanup: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  cleanups.add(cleanup);
  try {
    return await work();
  } finally {
    cleanups.delete(cleanup);
    await cleanup();
  }
}

process.once('SIGINT', () => {
  console.error('\n[bench] interrupted: removing temp files and throwaway databases');
  void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(130));
});

// --- stores ------------------------------------------------------------------------------------------

type BackendName = 'sqlite' | 'postgres';

/** A fresh, migrated store per scenario, so no scenario writes into another's tables. */
async function withStore<T>(backend: BackendName, postgresUrl: string, work: (store: KyselyStore) => Promise<T>): Promise<T> {
  if (backend === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-bench-ingest-'));
    const store = openSqliteStore(path.join(dir, 'store.sqlite'));
    return withCleanup(
      async () => {
        await store.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
      async () => {
        await store.migrate();
        return work(store);
      },
    );
  }
  const database = throwawayDatabase(postgresUrl);
  await database.create();
  const store = openPostgresStore(database.url);
  return withCleanup(
    async () => {
      await store.close();
      await database.drop();
    },
    async () => {
      await store.migrate();
      return work(store);
    },
  );
}

async function postgresProblem(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Segment Entered / Exited events the segment updates recorded (not ingested traffic). */
async function segmentChangeCount(store: KyselyStore): Promise<number> {
  let changes = 0;
  for (let after: string | null = null; ; ) {
    const page: Awaited<ReturnType<KyselyStore['listProfiles']>> = await store.listProfiles({ after, limit: 1000 });
    if (page.length === 0) return changes;
    for (const profile of page) changes += (await store.eventsOf(profile.customerId, { names: ['Segment Entered', 'Segment Exited'] })).length;
    after = page[page.length - 1]!.customerId;
  }
}

/** Every stored event counted, and the computed fields current on a profile: the figure is for the real work. */
async function checkStored(store: KyselyStore, expectedEvents: number, segmentEvents = 0): Promise<void> {
  const counts = await store.tableCounts();
  if (counts.events !== expectedEvents + segmentEvents) throw new Error(`expected ${expectedEvents} stored events (and ${segmentEvents} segment changes), found ${counts.events}`);
  let folded = 0;
  for (let n = 0; n < 100; n++) {
    const profile = await store.getProfile(`user-${n}`);
    if (profile?.email !== `user-${n}@example.com`) throw new Error(`user-${n}'s profile lacks the email it was identified with: ${JSON.stringify(profile).slice(0, 300)}`);
    if (typeof profile.computed._folded_through === 'number') folded += 1;
  }
  if (folded === 0) throw new Error('none of user-0 … user-99 has computed fields: the events were not folded into the profiles');
}

// --- server and load generator -------------------------------------------------------------------------

async function listen(app: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Store transactions of the ingest path, counted from the load generator's "measuring" message. */
interface Transactions {
  count: number;
  events: number;
}

/**
 * The server as `microflows server` wires it (no flows, so nothing is dispatched), counting recordEvents calls.
 * `overrides` swap its keys or limiters (the auth runs).
 */
function microflowsApp(store: KyselyStore, transactions: Transactions, segments?: SegmentEngine, overrides: Partial<AppDeps> = {}): App {
  const counted = Object.create(store) as KyselyStore;
  counted.recordEvents = (events, options) => {
    transactions.count += 1;
    transactions.events += events.length;
    return store.recordEvents(events, options);
  };
  return createApp({ store: counted, config: { writeKey: WRITE_KEY }, dispatcher: noDispatch, ...(segments ? { segments } : {}), log: (m) => console.error(`[server] ${m}`), ...overrides });
}

/** The track baseline: node:http (what the ingest path is served on) reading the body and answering 200, no parsing, no store. */
function bareApp(): http.RequestListener {
  return (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      const text = '{"success":true}';
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(text.length) });
      res.end(text);
    });
  };
}

interface Cpu {
  /** This process: the HTTP server and the store (or the in-process loop), % of one core. */
  server: number;
  loader: number | null;
  /** Every process named postgres. */
  postgres: number | null;
  /** The rest of the machine. */
  other: number | null;
  iowait: number | null;
  /** Event-loop busy share of this process. */
  eventLoop: number;
}

function postgresCpuSeconds(): number | null {
  try {
    let total = 0;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      } catch {
        continue;
      }
      total += procCpuSeconds(Number(entry)) ?? 0;
    }
    return total;
  } catch {
    return null;
  }
}

function startWindow(loaderPid: number | undefined): () => Cpu {
  const t0 = performance.now();
  const postgres0 = postgresCpuSeconds();
  // process-cpu's second process is the Temporal dev server in trigger-latency; here it is the load generator.
  const window = startCpuWindow(loaderPid);
  return () => {
    const w = window();
    const seconds = (performance.now() - t0) / 1000;
    const postgres1 = postgresCpuSeconds();
    const postgres = postgres0 === null || postgres1 === null ? null : ((postgres1 - postgres0) / seconds) * 100;
    const other = w.otherPct === null ? null : Math.max(0, w.otherPct - (postgres ?? 0));
    return { server: w.nodePct, loader: w.temporalPct, postgres, other, iowait: w.iowaitPct, eventLoop: w.eventLoop };
  };
}

/** tsx must be loaded in the child too; `npx tsx` already puts it in execArgv (with --cpu-prof, if given). */
function loaderExecArgv(): string[] {
  return process.execArgv.some((arg) => arg.includes('tsx')) ? process.execArgv : [...process.execArgv, '--require', require.resolve('tsx/cjs')];
}

/** Forks the load generator, hands it the job, and samples CPU from its "measuring" message to its result. */
function runLoader<R extends BatchResult | TrackResult>(job: LoadJob, onMeasuring: () => void = () => undefined): Promise<{ result: R; cpu: Cpu }> {
  const child = fork(path.join(__dirname, 'ingest-load.ts'), [], { execArgv: loaderExecArgv(), stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    let window: (() => Cpu) | undefined;
    let settled = false;
    child.on('message', (message: LoadMessage) => {
      if (message.kind === 'measuring') {
        onMeasuring();
        window = startWindow(child.pid);
      }
      else if (message.kind === 'done') {
        const cpu = window?.() ?? startWindow(child.pid)();
        settled = true;
        resolve({ result: message.result as R, cpu });
      } else {
        settled = true;
        reject(new Error(`load generator: ${message.message}`));
      }
    });
    child.on('exit', (code) => {
      if (!settled) reject(new Error(`the load generator exited (code ${code}) before reporting`));
    });
    child.send(job);
  });
}

// --- scenarios -----------------------------------------------------------------------------------------

interface ThroughputFigure {
  backend: BackendName;
  path: string;
  batch: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** Per request (batch) or per recordEvent call (baseline). */
  latency: LatencySummary;
  /** Events per store transaction: the group commit's batches (the baseline: 1). */
  eventsPerTransaction: number;
  cpu: Cpu;
  /** Events stored before timing began: seeding and warm-up. */
  before: number;
  /** With --segments: seconds the segment updates took to catch up after the last acknowledgement. */
  segmentCatchUp?: number;
}

async function batchScenario(backend: BackendName, postgresUrl: string, batchSize: number, flags: Flags): Promise<ThroughputFigure> {
  return withStore(backend, postgresUrl, async (store) => {
    const transactions: Transactions = { count: 0, events: 0 };
    const segments = flags.segments ? new SegmentEngine({ store, segments: loadSegments(path.join(__dirname, '..', 'segments')), dispatcher: noDispatch, log: (m) => console.error(`[segments] ${m}`) }) : undefined;
    const server = await listen(microflowsApp(store, transactions, segments));
    try {
      const job: BatchJob = {
        job: 'batch',
        url: server.url,
        writeKey: WRITE_KEY,
        connections: BATCH_CONNECTIONS,
        customers: CUSTOMERS,
        newCustomerShare: NEW_CUSTOMER_SHARE,
        seed: SEED,
        seedCustomers: true,
        batchSize,
        warmupEvents: Math.max(20_000, Math.round(flags.events / 10)),
        events: flags.events,
      };
      const { result, cpu } = await runLoader<BatchResult>(job, () => Object.assign(transactions, { count: 0, events: 0 }));
      const catchUpStart = performance.now();
      await segments?.idle();
      const segmentCatchUp = segments ? (performance.now() - catchUpStart) / 1000 : undefined;
      await checkStored(store, result.before + result.events, segments ? await segmentChangeCount(store) : 0);
      return {
        backend,
        path: segments ? 'POST /v1/batch + segments' : 'POST /v1/batch',
        batch: batchSize,
        events: result.events,
        seconds: result.seconds,
        eventsPerSecond: result.events / result.seconds,
        latency: result.latency,
        eventsPerTransaction: transactions.events / transactions.count,
        cpu,
        before: result.before,
        ...(segmentCatchUp !== undefined ? { segmentCatchUp } : {}),
      };
    } finally {
      await server.close();
    }
  });
}

function toEvents(calls: Call[]): NewEvent[] {
  const { events, rejected } = parseBatchCall({ batch: calls }, Date.now(), randomUUID);
  if (rejected.length > 0) throw new Error(`the generator made calls the server rejects: ${JSON.stringify(rejected.slice(0, 3))}`);
  return events;
}

/**
 * No HTTP: the same kind of events straight into the store, parsed before timing. With `perCall` 1 it is the
 * baseline, one `store.recordEvent` (one transaction) after another. With 200 it is the store alone at the size
 * of transaction group commit makes: the ceiling the HTTP path could reach on this machine.
 */
async function recordLoopScenario(backend: BackendName, postgresUrl: string, flags: Flags, perCall: number): Promise<ThroughputFigure> {
  const measured = perCall === 1 ? Math.max(5_000, Math.round(flags.events / 10)) : Math.max(20_000, Math.round(flags.events / 4));
  return withStore(backend, postgresUrl, async (store) => {
    const source = callSource({ seed: SEED, customers: CUSTOMERS, newCustomerShare: NEW_CUSTOMER_SHARE });
    const seed = toEvents(source.seedCalls(Date.now()));
    for (let i = 0; i < seed.length; i += 100) await store.recordEvents(seed.slice(i, i + 100), { needsDispatch: () => false });
    // Built before timing, in time order, so the loop measures the store alone.
    const make = (n: number) => toEvents(Array.from({ length: n }, () => source.next(Date.now())));
    const warmup = make(perCall === 1 ? BASELINE_WARMUP_EVENTS : BASELINE_WARMUP_EVENTS * 5);
    for (let i = 0; i < warmup.length; i += perCall) await store.recordEvents(warmup.slice(i, i + perCall), { needsDispatch: () => false });
    const events = make(measured);
    const latencies: number[] = [];
    const window = startWindow(undefined);
    const start = performance.now();
    for (let i = 0; i < events.length; i += perCall) {
      const t = performance.now();
      if (perCall === 1) await store.recordEvent(events[i]!, { needsDispatch: false });
      else await store.recordEvents(events.slice(i, i + perCall), { needsDispatch: () => false });
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - start) / 1000;
    const cpu = window();
    const before = seed.length + warmup.length;
    await checkStored(store, before + events.length);
    return {
      backend,
      path: perCall === 1 ? 'recordEvent loop, no HTTP' : 'recordEvents, no HTTP',
      batch: perCall,
      events: events.length,
      seconds,
      eventsPerSecond: events.length / seconds,
      latency: summarize(latencies),
      eventsPerTransaction: perCall,
      cpu,
      before,
    };
  });
}

interface LatencyFigure {
  scenario: 'microflows' | 'baseline';
  what: string;
  rate: number;
  result: TrackResult;
  cpu: Cpu;
  /** Events per store transaction; null for the baseline, which has no store. */
  eventsPerTransaction: number | null;
}

async function trackScenario(scenario: LatencyFigure['scenario'], flags: Flags): Promise<LatencyFigure> {
  const transactions: Transactions = { count: 0, events: 0 };
  const run = async (app: http.RequestListener, check?: (result: TrackResult) => Promise<void>) => {
    const server = await listen(app);
    try {
      const job: TrackJob = {
        job: 'track',
        url: server.url,
        writeKey: WRITE_KEY,
        connections: TRACK_CONNECTIONS,
        customers: CUSTOMERS,
        newCustomerShare: NEW_CUSTOMER_SHARE,
        seed: SEED,
        seedCustomers: scenario === 'microflows',
        rate: flags.rate,
        warmupSeconds: TRACK_WARMUP_SECONDS,
        seconds: flags.duration,
      };
      const { result, cpu } = await runLoader<TrackResult>(job, () => Object.assign(transactions, { count: 0, events: 0 }));
      if (result.warmupFailures > 0) console.error(`[bench] track ${scenario}: ${result.warmupFailures} failed in the warm-up: ${result.warmupFailureSamples.join('; ')}`);
      if (result.failures > 0) console.error(`[bench] track ${scenario}: ${result.failures} failed: ${result.failureSamples.join('; ')}`);
      await check?.(result);
      return { result, cpu, eventsPerTransaction: transactions.count > 0 ? transactions.events / transactions.count : null };
    } finally {
      await server.close();
    }
  };
  if (scenario === 'baseline') return { scenario, what: 'bare node:http handler (reads the body, answers 200)', rate: flags.rate, ...(await run(bareApp())) };
  return withStore('sqlite', '', async (store) => ({
    scenario,
    what: 'POST /v1/track into SQLite',
    rate: flags.rate,
    ...(await run(microflowsApp(store, transactions), (result) => checkStored(store, result.before + result.sent - result.failures))),
  }));
}

// --- authentication and rate limiting ---------------------------------------------------------------------

/** The baseline's keys: every call is a server key's, with no digest, no lookup, no store. */
class UncheckedKeys extends KeyRing {
  constructor() {
    super(null, {});
  }

  override sourceKey(): Promise<{ kind: SourceKind; id: string }> {
    return Promise.resolve({ kind: 'server', id: 'unchecked' });
  }
}

const AUTH_VARIANTS = ['none', 'server', 'client'] as const;
type AuthVariant = (typeof AUTH_VARIANTS)[number];

const AUTH_VARIANT_LABELS: Record<AuthVariant, string> = {
  none: 'no auth, no limits (baseline)',
  server: 'stored server key, per-key limit',
  client: 'stored client key, per-key + per-IP limits, client checks',
};

type AuthPath = 'batch' | 'track';

interface AuthFigure {
  path: AuthPath;
  variant: AuthVariant;
  round: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  latency: LatencySummary;
  eventsPerTransaction: number;
  cpu: Cpu;
  /** This process's CPU time (HTTP, auth, parsing, store) per event, µs. */
  cpuUsPerEvent: number;
}

/**
 * One run of the auth comparison on a fresh SQLite store: the same load as the batch rows (100 a batch, on
 * BATCH_CONNECTIONS) or one track call a request (closed loop, on AUTH_TRACK_CONNECTIONS), into an app whose keys
 * are `variant`'s. Returning customers only: a client key may not set the email of a customer its earlier calls
 * named (core/source-policy), which the generator's new customers do, and every variant must store every event.
 */
async function authScenario(path: AuthPath, variant: AuthVariant, round: number, flags: Flags): Promise<AuthFigure> {
  return withStore('sqlite', '', async (store) => {
    const transactions: Transactions = { count: 0, events: 0 };
    const at = Date.now();
    const server = newApiKey('server', 'bench server', [], at);
    const client = newApiKey('client', 'bench browser', [], at);
    await store.createApiKey(server.record);
    await store.createApiKey(client.record);
    const overrides: Partial<AppDeps> =
      variant === 'none'
        ? { keys: new UncheckedKeys(), ingestLimits: { perKey: null, perIp: null } }
        : { config: { writeKey: WRITE_KEY, rateLimitPerKey: UNREACHED_LIMIT, rateLimitPerIp: UNREACHED_LIMIT } };
    const listening = await listen(microflowsApp(store, transactions, undefined, overrides));
    try {
      const measured = path === 'batch' ? Math.max(40_000, Math.round(flags.events / 5)) : Math.max(20_000, Math.round(flags.events / 10));
      const job: BatchJob = {
        job: 'batch',
        endpoint: path,
        url: listening.url,
        writeKey: variant === 'none' ? WRITE_KEY : variant === 'server' ? server.key : client.key,
        // The shop's server identified its customers; then their browsers send.
        seedWriteKey: variant === 'none' ? WRITE_KEY : server.key,
        connections: path === 'batch' ? BATCH_CONNECTIONS : AUTH_TRACK_CONNECTIONS,
        customers: CUSTOMERS,
        newCustomerShare: 0,
        seed: SEED + round,
        seedCustomers: true,
        batchSize: path === 'batch' ? 100 : 1,
        warmupEvents: Math.round(measured / 4),
        events: measured,
      };
      const { result, cpu } = await runLoader<BatchResult>(job, () => Object.assign(transactions, { count: 0, events: 0 }));
      await checkStored(store, result.before + result.events);
      return {
        path,
        variant,
        round,
        events: result.events,
        seconds: result.seconds,
        eventsPerSecond: result.events / result.seconds,
        latency: result.latency,
        eventsPerTransaction: transactions.events / transactions.count,
        cpu,
        cpuUsPerEvent: (((cpu.server ?? 0) / 100) * result.seconds * 1e6) / result.events,
      };
    } finally {
      await listening.close();
    }
  });
}

/**
 * Every variant `rounds` times per path, interleaved in rotating order (none-server-client, server-client-none,
 * client-none-server, …), so drift of a shared 2-core machine falls on every variant alike.
 */
async function authComparison(flags: Flags, progress: (line: string) => void): Promise<AuthFigure[]> {
  const figures: AuthFigure[] = [];
  for (const path of ['batch', 'track'] as const) {
    for (let round = 0; round < flags.rounds; round++) {
      for (let i = 0; i < AUTH_VARIANTS.length; i++) {
        const variant = AUTH_VARIANTS[(round + i) % AUTH_VARIANTS.length]!;
        const f = await authScenario(path, variant, round, flags);
        figures.push(f);
        progress(`auth ${path} round ${round + 1}, ${variant}: ${count(f.eventsPerSecond)} events/s, ${f.cpuUsPerEvent.toFixed(0)} µs of server CPU per event, over ${count(f.events)} events`);
      }
    }
  }
  return figures;
}

interface AuthPiece {
  what: string;
  /** Which variant pays it, and how often: per request, or per event. */
  paidBy: 'server and client' | 'client';
  /** `identify`: per identify call that sets an email or consent (the batch mix has 10 % identifies; /v1/track none). */
  per: 'request' | 'event' | 'identify';
  us: number;
}

/** Identify calls per event on each auth path (ecommerce-events.ts: 10 % of the mix; the track path sends tracks only). */
const IDENTIFY_SHARE: Record<'batch' | 'track', number> = { batch: 0.1, track: 0 };

/** µs per call of `work`, after a warm-up of a tenth as many. */
async function microseconds(calls: number, work: () => unknown): Promise<number> {
  for (let i = 0; i < calls / 10; i++) await work();
  const start = performance.now();
  for (let i = 0; i < calls; i++) await work();
  return ((performance.now() - start) * 1000) / calls;
}

/**
 * The store's extra CPU per identify of client origin: recordEvents (200 a call) of the generator's identifies, origin
 * client and origin server in alternating blocks on one seeded SQLite store; the median of the blocks' paired
 * differences, after two warm-up pairs. Identifies alone, so the difference stands well above the machine's noise.
 */
async function storeIdentifyCost(): Promise<number> {
  return withStore('sqlite', '', async (store) => {
    const source = callSource({ seed: SEED, customers: CUSTOMERS, newCustomerShare: 0 });
    const seed = toEvents(source.seedCalls(Date.now()));
    for (let i = 0; i < seed.length; i += 100) await store.recordEvents(seed.slice(i, i + 100), { needsDispatch: () => false });
    const identifies = (n: number) => {
      const calls: Call[] = [];
      while (calls.length < n) {
        const call = source.next(Date.now());
        if (call.type === 'identify') calls.push(call);
      }
      return toEvents(calls);
    };
    const block = async (origin: SourceKind) => {
      const events = identifies(2_000).map((e) => ({ ...e, origin }));
      const before = process.cpuUsage();
      for (let i = 0; i < events.length; i += STORE_ALONE_EVENTS_PER_CALL) await store.recordEvents(events.slice(i, i + STORE_ALONE_EVENTS_PER_CALL), { needsDispatch: () => false });
      const used = process.cpuUsage(before);
      return (used.user + used.system) / events.length;
    };
    const differences: number[] = [];
    for (let pair = 0; pair < 12; pair++) {
      const [first, second] = pair % 2 === 0 ? (['server', 'client'] as const) : (['client', 'server'] as const);
      const a = await block(first);
      const b = await block(second);
      if (pair >= 2) differences.push(first === 'client' ? a - b : b - a);
    }
    return median(differences);
  });
}

/**
 * Where the auth cost goes, measured in this process without HTTP (the end-to-end runs cannot resolve a few %
 * on a shared machine): the real KeyRing, limiter and client checks, call after call, and the store's checks of
 * client-key events (recordEvents with origin client against origin server, same events, alternating).
 */
async function authPieces(): Promise<AuthPiece[]> {
  const at = Date.now();
  const server = newApiKey('server', 'bench server', [], at);
  const keys = new KeyRing({ activeApiKeys: () => Promise.resolve([server.record]) }, { writeKey: WRITE_KEY });
  const perKey = limiter(UNREACHED_LIMIT, 1);
  const perIp = limiter(UNREACHED_LIMIT, 1);
  const calls = 200_000;
  const call = callSource({ seed: SEED, customers: CUSTOMERS, newCustomerShare: 0, trackOnly: true }).next(at);
  const event = { ...parseCallOfType('track', call, at, randomUUID()), origin: 'client' as const };
  const pieces: AuthPiece[] = [
    { what: 'KeyRing.sourceKey: a stored key seen before (map lookup of the text)', paidBy: 'server and client', per: 'request', us: await microseconds(calls, () => keys.sourceKey(server.key, '')) },
    { what: 'per-key limiter: take, named by the key id', paidBy: 'server and client', per: 'request', us: await microseconds(calls, () => perKey.take('key_bench', 1, 'calls')) },
    { what: 'per-IP limiter: take', paidBy: 'client', per: 'request', us: await microseconds(calls, () => perIp.take('127.0.0.1', 1, 'requests')) },
    { what: 'checkClientEvent (reserved names, skew)', paidBy: 'client', per: 'event', us: await microseconds(calls, () => checkClientEvent(event, null, { now: at, maxSkewMs: 3_600_000 })) },
  ];

  // The store's part: a client identify that sets an email or consent has its customer's standing and stored profile
  // read (core/source-policy's email and consent rules); other client calls of this traffic cost it nothing more.
  pieces.push({ what: "the store's checks of a client identify (standing, stored profile)", paidBy: 'client', per: 'identify', us: await storeIdentifyCost() });
  return pieces;
}

// --- output --------------------------------------------------------------------------------------------

function ms(value: number): string {
  if (!Number.isFinite(value)) return 'never';
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function pct(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(0)}%`;
}

function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function noisy(cpu: Cpu): boolean {
  return (cpu.other ?? 0) > NOISY_OTHER_PCT;
}

const THROUGHPUT_COLUMNS = ['backend', 'path', 'batch', 'events', 'seconds', 'events/s', 'events/tx', 'p50 ms', 'p99 ms', 'server cpu', 'loader cpu', 'postgres cpu', 'other cpu', 'iowait', 'js loop'];

function throughputRow(f: ThroughputFigure): string[] {
  return [
    f.backend,
    f.path,
    String(f.batch),
    count(f.events),
    f.seconds.toFixed(1),
    count(f.eventsPerSecond),
    f.eventsPerTransaction.toFixed(0),
    ms(f.latency.p50),
    ms(f.latency.p99),
    pct(f.cpu.server),
    pct(f.cpu.loader),
    pct(f.cpu.postgres),
    `${pct(f.cpu.other)}${noisy(f.cpu) ? '*' : ''}`,
    pct(f.cpu.iowait),
    `${(f.cpu.eventLoop * 100).toFixed(0)}%`,
  ];
}

const LATENCY_COLUMNS = ['scenario', 'what', 'rate', 'sent', 'failed', 'sent/s', 'events/tx', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'server cpu', 'loader cpu', 'other cpu', 'js loop'];

function latencyRow(f: LatencyFigure): string[] {
  const r = f.result;
  return [
    f.scenario,
    f.what,
    `${f.rate}/s`,
    count(r.sent),
    String(r.failures),
    count(r.achievedRate),
    f.eventsPerTransaction === null ? 'n/a' : f.eventsPerTransaction.toFixed(1),
    ms(r.latency.p50),
    ms(r.latency.p90),
    ms(r.latency.p99),
    ms(r.latency.max),
    pct(f.cpu.server),
    pct(f.cpu.loader),
    `${pct(f.cpu.other)}${noisy(f.cpu) ? '*' : ''}`,
    `${(f.cpu.eventLoop * 100).toFixed(0)}%`,
  ];
}

/** Events per second over every round of a variant: total events over total measured time. */
function pooledRate(figures: AuthFigure[]): number {
  return figures.reduce((sum, f) => sum + f.events, 0) / figures.reduce((sum, f) => sum + f.seconds, 0);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Server CPU µs per event over every round of a variant. */
function pooledCpu(figures: AuthFigure[]): number {
  return figures.reduce((sum, f) => sum + f.cpuUsPerEvent * f.events, 0) / figures.reduce((sum, f) => sum + f.events, 0);
}

/**
 * The standard error of the cost by CPU, from each round's pair (the variant against the baseline of its round): how
 * far the machine's noise alone moves the pooled figure.
 */
function cpuCostError(runs: AuthFigure[], baseline: AuthFigure[]): number {
  const costs = runs.flatMap((f) => {
    const base = baseline.find((b) => b.round === f.round);
    return base ? [costPct(base.cpuUsPerEvent, f.cpuUsPerEvent)] : [];
  });
  if (costs.length < 2) return Number.NaN;
  const mean = costs.reduce((a, b) => a + b, 0) / costs.length;
  const variance = costs.reduce((sum, c) => sum + (c - mean) ** 2, 0) / (costs.length - 1);
  return Math.sqrt(variance / costs.length);
}

function errorText(value: number): string {
  return Number.isNaN(value) ? 'n/a (one round)' : value.toFixed(1);
}

/** The throughput a variant loses against the baseline, in % (negative: it was faster). */
function costPct(rate: number, baseline: number): number {
  return (1 - rate / baseline) * 100;
}

function signedPct(value: number): string {
  return `${value < 0 ? '−' : ''}${Math.abs(value).toFixed(1)} %`;
}

const AUTH_COLUMNS = ['path', 'keys and limits', 'events/s by round', 'events/s', 'cost', 'server µs/event by round', 'µs/event', 'cost (cpu)', 'events/tx', 'p50 ms', 'p99 ms', 'js loop'];

/** One row per path and variant: the rounds, their pooled rate, and the cost against the baseline (overall and round by round). */
function authRows(figures: AuthFigure[]): string[][] {
  const rows: string[][] = [];
  for (const path of ['batch', 'track'] as const) {
    const baseline = figures.filter((f) => f.path === path && f.variant === 'none');
    if (baseline.length === 0) continue;
    const baseRate = pooledRate(baseline);
    const baseCpu = pooledCpu(baseline);
    for (const variant of AUTH_VARIANTS) {
      const runs = figures.filter((f) => f.path === path && f.variant === variant);
      const rate = pooledRate(runs);
      const cpu = pooledCpu(runs);
      rows.push([
        path === 'batch' ? 'POST /v1/batch (100 a batch)' : 'POST /v1/track (closed loop)',
        AUTH_VARIANT_LABELS[variant],
        runs.map((f) => count(f.eventsPerSecond)).join(', '),
        count(rate),
        variant === 'none' ? '—' : signedPct(costPct(rate, baseRate)),
        runs.map((f) => f.cpuUsPerEvent.toFixed(0)).join(', '),
        cpu.toFixed(0),
        // CPU per event up by x % is throughput down by x/(1+x) on a saturated server: the same measure as `cost`.
        variant === 'none' ? '—' : `${signedPct(costPct(baseCpu, cpu))} ± ${errorText(cpuCostError(runs, baseline))}`,
        (runs.reduce((sum, f) => sum + f.eventsPerTransaction, 0) / runs.length).toFixed(0),
        ms(median(runs.map((f) => f.latency.p50))),
        ms(median(runs.map((f) => f.latency.p99))),
        `${((runs.reduce((sum, f) => sum + f.cpu.eventLoop, 0) / runs.length) * 100).toFixed(0)}%${runs.some((f) => noisy(f.cpu)) ? '*' : ''}`,
      ]);
    }
  }
  return rows;
}

function machineInfo(): string {
  const cpus = os.cpus();
  return [
    `machine: ${cpus.length} cpus × ${cpus[0]?.model.trim() ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()} ${os.arch()}`,
    `node ${process.version}, ${new Date().toISOString()}`,
  ].join('\n');
}

// --- main ----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const wants = (section: Section) => flags.only === null || flags.only === section;
  const postgresUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const began = Date.now();

  console.log('ingest: events/s through POST /v1/batch, and ack latency of POST /v1/track at a fixed rate');
  console.log(machineInfo());
  console.log(
    `events: ${count(CUSTOMERS)} returning customers (each identified before timing), ${NEW_CUSTOMER_SHARE * 100}% of calls from new ones; ` +
      `page 25%, Product Viewed 45%, Product Added 15%, Order Completed 5%, identify 10%; ~540 bytes each`,
  );
  const backends: BackendName[] = ['sqlite'];
  if (wants('batch') || wants('baseline')) {
    const problem = await postgresProblem(postgresUrl);
    if (problem === null) backends.push('postgres');
    else console.log(`PostgreSQL skipped: ${new URL(postgresUrl).host} cannot be reached (${problem}); set BENCH_DATABASE_URL`);
  }

  const throughput: ThroughputFigure[] = [];
  const latency: LatencyFigure[] = [];
  const auth: AuthFigure[] = [];
  const progress = (line: string) => console.log(`  ${line}`);
  for (const backend of backends) {
    if (wants('batch')) {
      for (const size of BATCH_SIZES) {
        const f = await batchScenario(backend, postgresUrl, size, flags);
        throughput.push(f);
        progress(
          `${backend} batch ${size}: ${count(f.eventsPerSecond)} events/s over ${count(f.events)} events (after ${count(f.before)})` +
            (f.segmentCatchUp !== undefined ? `; segment updates caught up ${f.segmentCatchUp.toFixed(1)} s after the last acknowledgement` : ''),
        );
      }
    }
    if (wants('baseline')) {
      for (const perCall of [STORE_ALONE_EVENTS_PER_CALL, 1]) {
        const f = await recordLoopScenario(backend, postgresUrl, flags, perCall);
        throughput.push(f);
        progress(`${backend} ${f.path} (${perCall} a call): ${count(f.eventsPerSecond)} events/s over ${count(f.events)} events (after ${count(f.before)})`);
      }
    }
  }
  if (wants('track')) {
    for (const scenario of ['microflows', 'baseline'] as const) {
      const f = await trackScenario(scenario, flags);
      latency.push(f);
      progress(`track ${scenario}: p99 ${ms(f.result.latency.p99)} ms at ${count(f.result.achievedRate)}/s, ${f.result.failures} failed`);
    }
  }
  const pieces: AuthPiece[] = [];
  if (wants('auth')) {
    auth.push(...(await authComparison(flags, progress)));
    pieces.push(...(await authPieces()));
  }

  if (throughput.length > 0) {
    console.log(`\n== throughput (events/s; p50/p99 per request, or per recordEvent call) ==`);
    printTable(THROUGHPUT_COLUMNS, throughput.map(throughputRow), [0, 1]);
    const batch = throughput.find((f) => f.backend === 'sqlite' && f.batch === 100);
    const loop = throughput.find((f) => f.backend === 'sqlite' && f.batch === 1);
    const alone = throughput.find((f) => f.backend === 'sqlite' && f.batch === STORE_ALONE_EVENTS_PER_CALL);
    if (batch) {
      const verdict = batch.eventsPerSecond >= TARGET_EVENTS_PER_SECOND ? 'PASS' : 'MISS';
      console.log(
        `target ≥ ${count(TARGET_EVENTS_PER_SECOND)} events/s through POST /v1/batch (100 a batch) into SQLite: ${verdict} — ${count(batch.eventsPerSecond)} events/s` +
          (batch.events < TARGET_MIN_EVENTS ? ` (over ${count(batch.events)} events, fewer than the target's ${count(TARGET_MIN_EVENTS)}: indicative only)` : '') +
          (loop ? `   | baseline (one transaction per event, no HTTP): ${count(loop.eventsPerSecond)} events/s` : '') +
          (alone ? `   | the store alone (${alone.batch} a call, no HTTP): ${count(alone.eventsPerSecond)} events/s` : ''),
      );
    }
  }
  if (latency.length > 0) {
    console.log(`\n== ack latency, open loop (ms from each call's scheduled time to its answer; ${TRACK_CONNECTIONS} keep-alive connections) ==`);
    printTable(LATENCY_COLUMNS, latency.map(latencyRow), [0, 1]);
    const mf = latency.find((f) => f.scenario === 'microflows');
    const base = latency.find((f) => f.scenario === 'baseline');
    if (mf && mf.rate !== TARGET_RATE) {
      console.log(`target p99 ≤ ${TARGET_P99_MS} ms at ${count(TARGET_RATE)} events/s: not judged, this run was at ${count(mf.rate)}/s (p99 ${ms(mf.result.latency.p99)} ms)`);
    } else if (mf) {
      const pass = mf.result.failures === 0 && mf.result.achievedRate >= mf.rate * 0.95 && mf.result.latency.p99 <= TARGET_P99_MS;
      console.log(
        `target p99 ≤ ${TARGET_P99_MS} ms at ${count(TARGET_RATE)} events/s through POST /v1/track: ${pass ? 'PASS' : 'MISS'} — p99 ${ms(mf.result.latency.p99)} ms` +
          (base ? `   | baseline (bare node:http handler) p99 ${ms(base.result.latency.p99)} ms` : ''),
      );
    }
  }
  if (auth.length > 0) {
    console.log(
      `\n== source keys and rate limits: events/s into SQLite, returning customers only, ${flags.rounds} interleaved runs per variant ` +
        `(cost: throughput lost against the baseline, ± its standard error over the rounds; p50/p99 per request, median of the runs) ==`,
    );
    printTable(AUTH_COLUMNS, authRows(auth), [0, 1, 2, 5]);
    // Judged on CPU per event: on a shared 2-core machine wall throughput swings far more between runs than 5 %.
    const verdicts = (['batch', 'track'] as const).flatMap((path) => {
      const base = auth.filter((f) => f.path === path && f.variant === 'none');
      if (base.length === 0) return [];
      return (['server', 'client'] as const).map((variant) => {
        const runs = auth.filter((f) => f.path === path && f.variant === variant);
        const cost = costPct(pooledCpu(base), pooledCpu(runs));
        return `/v1/${path} ${variant} key ${cost < TARGET_AUTH_OVERHEAD_PCT ? 'PASS' : 'MISS'} (${signedPct(cost)} ± ${errorText(cpuCostError(runs, base))} by server CPU per event, ${signedPct(costPct(pooledRate(runs), pooledRate(base)))} by events/s)`;
      });
    });
    console.log(`target: source keys and rate limits cost < ${TARGET_AUTH_OVERHEAD_PCT} % of throughput: ${verdicts.join('; ')}`);
  }
  if (pieces.length > 0) {
    console.log(`\n== where the auth cost goes: each piece alone in this process, µs ==`);
    printTable(
      ['piece', 'paid by', 'per', 'µs'],
      pieces.map((p) => [p.what, p.paidBy, p.per, p.us.toFixed(2)]),
      [0, 1, 2],
    );
    const estimates = (['track', 'batch'] as const).flatMap((path) => {
      const base = auth.filter((f) => f.path === path && f.variant === 'none');
      if (base.length === 0) return [];
      const eventsPerRequest = path === 'batch' ? 100 : 1;
      return (['server', 'client'] as const).map((variant) => {
        const paid = pieces.filter((p) => variant === 'client' || p.paidBy !== 'client');
        const perEvent = paid.reduce((sum, p) => sum + (p.per === 'event' ? p.us : p.per === 'identify' ? p.us * IDENTIFY_SHARE[path] : p.us / eventsPerRequest), 0);
        return `/v1/${path} ${variant} key ${perEvent.toFixed(2)} µs per event = ${((perEvent / pooledCpu(base)) * 100).toFixed(1)} %`;
      });
    });
    // A lower bound: alone, each piece runs hot in the caches; inside a request, among parsing and the store, it costs more.
    if (estimates.length > 0) console.log(`their sum (a lower bound) against the baseline's server CPU per event: ${estimates.join('; ')}`);
  }
  if ([...throughput.map((f) => f.cpu), ...latency.map((f) => f.cpu), ...auth.map((f) => f.cpu)].some(noisy)) {
    console.log(`* other processes used more than ${NOISY_OTHER_PCT}% of a core during this measurement: its figures are suspect; rerun on a quiet machine`);
  }
  console.log(
    '\ncpu: % of one core over the measured window. server = this process (HTTP server and store, or the recordEvent loop); loader = the load' +
      '\ngenerator process; postgres = every postgres process; other = the rest of the machine; js loop = event-loop busy share of this process.',
  );
  console.log(`total ${((Date.now() - began) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
