// Report latency over a million recorded sends (issue 16), beside the same report computed from the raw rows in the
// same run: the flow report (server/report-routes loadFlowReport: the report counters, the definitions, the experiments,
// then core/flow-report's funnel, rates, intervals and winner check) against SQL that counts sends joined to their
// events by delivery_key, unique per send, with conversions credited by the attribution rule, fed to the same pure
// report. Both reports must give the same counts, or the bench says so and exits 1.
//
//   npm run bench:report                       # 1,000,000 sends on SQLite (and PostgreSQL when a URL is set)
//   BENCH_SENDS=100000 npm run bench:report    # a quick run
//
// Settings: BENCH_SENDS (1,000,000), BENCH_REPEATS (reports from the counters timed, 200), BENCH_RAW_REPEATS (reports
// from the raw rows timed, 5), BENCH_SEED (16), BENCH_BACKENDS (sqlite, postgres or sqlite,postgres). PostgreSQL runs
// when BENCH_DATABASE_URL or TEST_DATABASE_URL is set (a throwaway database on that server, dropped at the end), unless
// BENCH_BACKENDS says otherwise. The dataset is bulk-loaded, then the counters are rebuilt: see bench/README.md.
import { withCleanup } from './bench-cleanup';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { HOLDOUT_VARIANT } from '../core/experiment-assignment';
import { compileFlow } from '../core/flow-compiler';
import { flowReport, type FlowsReport, type ReportCounter, type ReportExperiment } from '../core/flow-report';
import type { FlowDefinition } from '../core/flow-types';
import { loadFlowReport, type ReportStore } from '../server/report-routes';
import type { KyselyStore } from '../store/kysely-store';
import { DAY_MS, type MetricsFold, type MetricsQuery } from '../store/metrics-store';
import { openPostgresStore } from '../store/postgres';
import { openSqliteStore } from '../store/sqlite';
import { seededRandom } from '../test/support/seeded-random';
import { throwawayDatabase } from '../test/support/store-backends';
import { envNumber } from './bench-env';
import { startCpuWindow } from './process-cpu';
import { printTable } from './table';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** The dataset's "now" (fixed, so a seed gives the same rows on every run) and the four weeks of sends before it. */
const NOW = Date.UTC(2026, 11, 5);
const HISTORY_DAYS = 28;
const START = NOW - HISTORY_DAYS * DAY_MS;
/** The report's period: `microflows report`'s default --since (30d), which covers every send of the dataset. */
const REPORT_SINCE_MS = 30 * DAY_MS;
/** Customers generated, then inserted, per bulk-load transaction (SQLite) or statement set (PostgreSQL). */
const LOAD_CHUNK_CUSTOMERS = 2_000;
const WARMUP_REPORTS = 20;
/** How the bench reads "answers in milliseconds" (issue 16): a p95 in two digits of milliseconds at most. */
const CLAIM_P95_MS = 100;

const GOAL = 'Order Completed';
const ENGAGEMENT_NAMES = ['Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed'];

// --- the flows ---------------------------------------------------------------------------------------

/** The bench's own flows, so its figures do not move when the shipped flows change. */
const FLOW_SOURCES: Record<string, string> = {
  'bench-cart@1': `id: bench-cart
version: 1
priority: 90
holdout: 10%
attribution: { window: 3d }
trigger: { event: Product Added }
entry: { reentry: { cooldown: 7d } }
exit: { on_event: ${GOAL} }
steps:
  - wait: 1h
  - ab_split:
      experiment: bench-cart-subject
      variants:
        - name: control
          weight: 50
          steps: [ { send: { template: cart-reminder } } ]
        - name: discount
          weight: 50
          steps: [ { send: { template: cart-reminder, data: { discount_pct: 10 } } } ]
      winner: { metric: conversion, min_per_variant: 1000, confidence: 0.95, then: all_to_winner, max_duration: 30d }
  - wait: 23h
  - send: { template: cart-followup }
`,
  'bench-welcome@1': `id: bench-welcome
version: 1
priority: 50
trigger: { event: Signed Up }
exit: { on_event: ${GOAL} }
steps:
  - send: { template: welcome }
  - wait: 2d
  - send: { template: welcome-picks }
  - wait: 3d
  - send: { template: welcome-discount, data: { discount_pct: 15 } }
`,
  'bench-welcome@2': `id: bench-welcome
version: 2
priority: 50
trigger: { event: Signed Up }
exit: { on_event: ${GOAL} }
steps:
  - send: { template: welcome }
  - wait: 2d
  - send: { template: welcome-bestsellers }
  - wait: 3d
  - send: { template: welcome-discount, data: { discount_pct: 15 } }
`,
  'bench-winback@1': `id: bench-winback
version: 1
priority: 20
holdout: 20%
attribution: { window: 7d }
trigger: { event: Winback Due }
exit: { on_event: ${GOAL} }
steps:
  - send: { template: winback-miss-you }
`,
};

function compileFlows(): FlowDefinition[] {
  return Object.entries(FLOW_SOURCES).map(([name, source]) => compileFlow(source, `bench/${name.replace('@', '-v')}.yaml`, { templateExists: () => true, sha256: `bench-${name}` }));
}

/** A send step of the dataset: the node id the compiler gives it (checked against the definitions at start). */
interface StepSpec {
  nodeId: string;
  template: string;
  subject: string;
}

const CART_SPLIT = 'steps[1]';
const CART_EXPERIMENT = 'bench-cart-subject';
const CART_VARIANT_STEP: Record<string, StepSpec> = {
  control: { nodeId: 'steps[1].variants[0].steps[0]', template: 'cart-reminder', subject: 'You left something in your cart' },
  discount: { nodeId: 'steps[1].variants[1].steps[0]', template: 'cart-reminder', subject: '10% off what you left in your cart' },
};
const CART_FOLLOWUP: StepSpec = { nodeId: 'steps[3]', template: 'cart-followup', subject: 'Still thinking it over?' };
const WELCOME_STEPS = (version: number): Array<StepSpec & { delayMs: number }> => [
  { nodeId: 'steps[0]', template: 'welcome', subject: 'Welcome to the shop', delayMs: 2 * MINUTE_MS },
  { nodeId: 'steps[2]', template: version === 1 ? 'welcome-picks' : 'welcome-bestsellers', subject: 'Picked for you', delayMs: 2 * DAY_MS + 2 * MINUTE_MS },
  { nodeId: 'steps[4]', template: 'welcome-discount', subject: '15% off your first order', delayMs: 5 * DAY_MS + 2 * MINUTE_MS },
];
const WINBACK_STEP: StepSpec = { nodeId: 'steps[0]', template: 'winback-miss-you', subject: 'We miss you' };

/** Stops with a message when the steps the generator writes are not the send steps the definitions have. */
function checkSteps(flows: FlowDefinition[]): void {
  const expect = (flowId: string, version: number, nodeId: string, kind: string) => {
    const node = flows.find((f) => f.id === flowId && f.version === version)?.nodes[nodeId];
    if (node?.kind !== kind) throw new Error(`bench flow ${flowId} v${version} has no ${kind} step ${nodeId}: update the bench's step table`);
  };
  expect('bench-cart', 1, CART_SPLIT, 'ab_split');
  for (const step of [...Object.values(CART_VARIANT_STEP), CART_FOLLOWUP]) expect('bench-cart', 1, step.nodeId, 'send');
  for (const version of [1, 2]) for (const step of WELCOME_STEPS(version)) expect('bench-welcome', version, step.nodeId, 'send');
  expect('bench-winback', 1, WINBACK_STEP.nodeId, 'send');
}

// --- the dataset -------------------------------------------------------------------------------------

interface GenEntry {
  workflowId: string;
  customerId: string;
  flowId: string;
  version: number;
  runNumber: number;
  enteredAt: number;
  holdout: boolean;
}

interface GenAssignment {
  customerId: string;
  variant: string;
  assignedAt: number;
  workflowId: string;
}

interface GenSend {
  deliveryKey: string;
  customerId: string;
  flowId: string;
  version: number;
  workflowId: string;
  step: StepSpec;
  at: number;
  variant: string | null;
}

interface GenEvent {
  messageId: string;
  customerId: string;
  name: string;
  properties: Record<string, unknown>;
  timestamp: number;
}

interface Chunk {
  entries: GenEntry[];
  assignments: GenAssignment[];
  sends: GenSend[];
  events: GenEvent[];
}

/** What the generator wrote: the report's totals must come back to these. */
interface DatasetCounts {
  customers: number;
  entries: number;
  holdoutEntries: number;
  assignments: number;
  sends: number;
  events: number;
  byName: Record<string, number>;
}

/** A run planned for a customer: its entry, the sends it would make, and the order it leads to (if any). */
interface RunPlan {
  entry: GenEntry;
  sends: GenSend[];
  /** The flow's click rate among people who open (by variant where there is one). */
  clickRate: number;
  openRate: number;
  /** The split's time, for the assignment (treatment cart runs). */
  splitAt: number | null;
  variant: string | null;
}

interface Order {
  at: number;
  total: number;
  /** The run whose email led to it; null: an organic order, credited to whatever touched the customer last. */
  cause: RunPlan | null;
}

/** The rates, per run or send, that shape the dataset (roughly an e-commerce list's). */
const RATES = {
  welcomeShare: 0.45,
  cartRuns: [0.35, 0.35, 0.2, 0.1] as const,
  winbackShare: 0.3,
  cartHoldout: 0.1,
  winbackHoldout: 0.2,
  bounce: 0.012,
  deliveredReport: 0.985,
  machineOpen: 0.35,
  open: { 'bench-cart': 0.42, 'bench-welcome': 0.5, 'bench-winback': 0.22 } as Record<string, number>,
  click: { control: 0.1, discount: 0.14, 'bench-welcome': 0.12, 'bench-winback': 0.08 } as Record<string, number>,
  unsubscribe: 0.002,
  complaint: 0.0004,
  /** Runs that lead to an order, by flow and cohort. */
  convert: { control: 0.065, discount: 0.085, cartHoldout: 0.045, 'bench-welcome': 0.05, winback: 0.03, winbackHoldout: 0.02 } as Record<string, number>,
  organicOrder: 0.06,
  /** Orders led by a run that come right after a click on its last email. */
  clickThenOrder: 0.35,
};

function customerIdOf(index: number): string {
  return `cust-${index}`;
}

/**
 * One customer's rows over the four weeks: a welcome series (45 %), 0–3 cart runs at least 7 days apart (the
 * cooldown), a winback run (30 %), with holdouts and the cart split's variant fixed per customer; orders led by runs
 * (rates by flow, variant and holdout) and organic ones. Any order ends the customer's runs (their exit), so later
 * sends are not made; nothing after NOW exists yet. Each send then gets its webhooks: a bounce or a delivery report,
 * a privacy-proxy (machine) open, people's opens (repeated), clicks, an unsubscribe or a complaint now and then.
 */
function customerRows(index: number, random: () => number): Chunk {
  const customerId = customerIdOf(index);
  const expo = (mean: number) => -Math.log(1 - random()) * mean;
  const within = (from: number, to: number) => from + random() * (to - from);
  const openness = 0.5 + random();
  const runs: RunPlan[] = [];
  const orders: Order[] = [];
  const runNumbers = new Map<string, number>();
  const plan = (flowId: string, version: number, enteredAt: number, holdout: boolean, variant: string | null, openRate: number, clickRate: number): RunPlan => {
    const runNumber = (runNumbers.get(flowId) ?? 0) + 1;
    runNumbers.set(flowId, runNumber);
    const workflowId = `flow/${flowId}/${customerId}/${runNumber}`;
    const run: RunPlan = { entry: { workflowId, customerId, flowId, version, runNumber, enteredAt: Math.round(enteredAt), holdout }, sends: [], openRate, clickRate, splitAt: null, variant };
    runs.push(run);
    return run;
  };
  const addSend = (run: RunPlan, step: StepSpec, at: number) => {
    run.sends.push({ deliveryKey: `${run.entry.workflowId}/${step.nodeId}`, customerId, flowId: run.entry.flowId, version: run.entry.version, workflowId: run.entry.workflowId, step, at: Math.round(at), variant: run.variant });
  };
  const order = (run: RunPlan | null, at: number, factor = 1) => {
    if (at <= NOW) orders.push({ at: Math.round(at), total: Math.round((15 + expo(55)) * factor * 100) / 100, cause: run });
  };

  if (random() < RATES.welcomeShare) {
    const at = within(START, NOW);
    const version = at < START + 14 * DAY_MS ? 1 : 2;
    const run = plan('bench-welcome', version, at, false, null, RATES.open['bench-welcome']!, RATES.click['bench-welcome']!);
    for (const step of WELCOME_STEPS(version)) addSend(run, step, at + step.delayMs);
    if (random() < RATES.convert['bench-welcome']!) order(run, at + 10 * MINUTE_MS + expo(3 * DAY_MS));
  }

  const cartHoldout = random() < RATES.cartHoldout;
  const cartVariant = random() < 0.5 ? 'control' : 'discount';
  let cartRuns = 0;
  for (let r = random(), k = 0; k < RATES.cartRuns.length; k++) {
    r -= RATES.cartRuns[k]!;
    if (r < 0) {
      cartRuns = k;
      break;
    }
  }
  const cartTimes = Array.from({ length: cartRuns }, () => within(START, NOW)).sort((a, b) => a - b);
  let lastCart = -Infinity;
  for (const at of cartTimes) {
    if (at - lastCart < 7 * DAY_MS) continue;
    lastCart = at;
    if (cartHoldout) {
      const run = plan('bench-cart', 1, at, true, null, 0, 0);
      if (random() < RATES.convert.cartHoldout!) order(run, at + 20 * MINUTE_MS + expo(1.5 * DAY_MS));
      continue;
    }
    const run = plan('bench-cart', 1, at, false, cartVariant, RATES.open['bench-cart']!, RATES.click[cartVariant]!);
    run.splitAt = Math.round(at + HOUR_MS);
    addSend(run, CART_VARIANT_STEP[cartVariant]!, at + HOUR_MS);
    addSend(run, CART_FOLLOWUP, at + 24 * HOUR_MS);
    if (random() < RATES.convert[cartVariant]!) order(run, at + 20 * MINUTE_MS + expo(1.5 * DAY_MS), cartVariant === 'discount' ? 0.9 : 1);
  }

  if (random() < RATES.winbackShare) {
    const at = within(START, NOW);
    const holdout = random() < RATES.winbackHoldout;
    const run = plan('bench-winback', 1, at, holdout, null, RATES.open['bench-winback']!, RATES.click['bench-winback']!);
    if (!holdout) addSend(run, WINBACK_STEP, at + 10 * MINUTE_MS);
    if (random() < RATES.convert[holdout ? 'winbackHoldout' : 'winback']!) order(run, at + 20 * MINUTE_MS + expo(4 * DAY_MS));
  }
  if (random() < RATES.organicOrder) order(null, within(START, NOW));
  orders.sort((a, b) => a.at - b.at);

  // Any order ends the customer's runs that had begun: later sends (and a split not reached yet) never happen.
  const chunk: Chunk = { entries: [], assignments: [], sends: [], events: [] };
  const pending: Array<Omit<GenEvent, 'messageId'>> = [];
  const event = (name: string, properties: Record<string, unknown>, at: number) => {
    if (at <= NOW) pending.push({ customerId, name, properties, timestamp: Math.round(at) });
  };
  const kept = new Map<RunPlan, Array<{ send: GenSend; bounced: boolean; opened: boolean; doneAt: number }>>();
  for (const run of runs) {
    chunk.entries.push(run.entry);
    const ends = orders.find((o) => o.at > run.entry.enteredAt)?.at ?? Infinity;
    const cutoff = Math.min(ends, NOW);
    if (run.splitAt !== null && run.splitAt <= cutoff && chunk.assignments.length === 0) {
      // The first split the customer reaches fixes their variant (one assignment row per experiment and customer).
      chunk.assignments.push({ customerId, variant: run.variant!, assignedAt: run.splitAt, workflowId: run.entry.workflowId });
    }
    const sent: Array<{ send: GenSend; bounced: boolean; opened: boolean; doneAt: number }> = [];
    for (const send of run.sends) {
      if (send.at > cutoff) break;
      chunk.sends.push(send);
      const props = { delivery_key: send.deliveryKey, flow_id: send.flowId, step_id: send.step.nodeId, ...(send.variant ? { variant: send.variant } : {}), esp: 'sendgrid' };
      const bounced = random() < RATES.bounce;
      let opened = false;
      if (bounced) {
        event('Email Bounced', { ...props, bounce_type: 'hard', reason: '550 5.1.1 user unknown' }, send.at + within(20_000, 60_000));
      } else {
        if (random() < RATES.deliveredReport) event('Email Delivered', props, send.at + within(2_000, 30_000));
        if (random() < RATES.machineOpen) event('Email Opened', { ...props, machine_open: true }, send.at + within(MINUTE_MS, 10 * MINUTE_MS));
        if (random() < Math.min(0.95, run.openRate * openness)) {
          opened = true;
          let at = send.at + MINUTE_MS + expo(6 * HOUR_MS);
          const first = at;
          event('Email Opened', props, at);
          const again = random() < 0.35 ? 1 + Math.floor(random() * 3) : 0;
          for (let k = 0; k < again; k++) event('Email Opened', props, (at += expo(DAY_MS)));
          if (random() < run.clickRate) {
            const click = first + within(10_000, 10 * MINUTE_MS);
            event('Email Link Clicked', { ...props, url: 'https://shop.example.com/cart' }, click);
            if (random() < 0.25) event('Email Link Clicked', { ...props, url: 'https://shop.example.com/p/1' }, click + expo(HOUR_MS));
          }
        }
        if (random() < RATES.unsubscribe) event('Unsubscribed', props, send.at + MINUTE_MS + expo(8 * HOUR_MS));
        if (random() < RATES.complaint) event('Email Marked as Spam', props, send.at + MINUTE_MS + expo(8 * HOUR_MS));
      }
      sent.push({ send, bounced, opened, doneAt: send.at + MINUTE_MS });
    }
    kept.set(run, sent);
  }
  for (const o of orders) {
    // Some orders led by a run come right after a click on its last email before the order (opened first).
    const last = o.cause ? [...(kept.get(o.cause) ?? [])].reverse().find((s) => !s.bounced && s.doneAt + MINUTE_MS < o.at) : undefined;
    if (last && random() < RATES.clickThenOrder) {
      const props = { delivery_key: last.send.deliveryKey, flow_id: last.send.flowId, step_id: last.send.step.nodeId, ...(last.send.variant ? { variant: last.send.variant } : {}), esp: 'sendgrid' };
      const click = Math.max(last.doneAt, o.at - within(MINUTE_MS, 30 * MINUTE_MS));
      if (!last.opened) event('Email Opened', props, click - 5_000);
      event('Email Link Clicked', { ...props, url: 'https://shop.example.com/checkout' }, click);
    }
    event(GOAL, { order_id: `order-${customerId}-${o.at}`, total: o.total, currency: 'USD', products: [{ product_id: `p-${Math.floor(random() * 500)}`, price: o.total, quantity: 1 }] }, o.at);
  }
  pending.sort((a, b) => a.timestamp - b.timestamp);
  chunk.events = pending.map((e, n) => ({ ...e, messageId: `bench-${index}-${n}` }));
  return chunk;
}

/** The dataset, LOAD_CHUNK_CUSTOMERS customers at a time, until `sends` sends; each chunk's events in time order. */
function* datasetChunks(sends: number, seed: number, counts: DatasetCounts): Generator<Chunk> {
  const random = seededRandom(seed);
  let index = 0;
  while (counts.sends < sends) {
    const chunk: Chunk = { entries: [], assignments: [], sends: [], events: [] };
    for (let c = 0; c < LOAD_CHUNK_CUSTOMERS && counts.sends < sends; c++) {
      const rows = customerRows(index++, random);
      chunk.entries.push(...rows.entries);
      chunk.assignments.push(...rows.assignments);
      chunk.sends.push(...rows.sends);
      chunk.events.push(...rows.events);
      counts.customers += 1;
      counts.sends += rows.sends.length;
    }
    chunk.events.sort((a, b) => a.timestamp - b.timestamp);
    counts.entries += chunk.entries.length;
    counts.holdoutEntries += chunk.entries.filter((e) => e.holdout).length;
    counts.assignments += chunk.assignments.length;
    counts.events += chunk.events.length;
    for (const e of chunk.events) counts.byName[e.name] = (counts.byName[e.name] ?? 0) + 1;
    yield chunk;
  }
}

// --- bulk loading ------------------------------------------------------------------------------------

interface LoadFigures {
  counts: DatasetCounts;
  seconds: number;
}

function emptyCounts(): DatasetCounts {
  return { customers: 0, entries: 0, holdoutEntries: 0, assignments: 0, sends: 0, events: 0, byName: {} };
}

const sendColumns = (s: GenSend) => ({
  delivery_key: s.deliveryKey,
  customer_id: s.customerId,
  flow_id: s.flowId,
  flow_version: s.version,
  workflow_id: s.workflowId,
  node_id: s.step.nodeId,
  template: s.step.template,
  to_address: `${s.customerId}@example.com`,
  subject: s.step.subject,
  scheduled_at: s.at,
  sent_at: s.at + 1_500,
  message_id: `<${s.deliveryKey}@microflows>`,
  experiment_id: s.variant === null ? null : CART_EXPERIMENT,
  variant: s.variant,
});

/** better-sqlite3 prepared statements, one transaction per chunk, on a connection of its own with the journal off. */
function loadSqlite(file: string, sends: number, seed: number, progress: (line: string) => void): LoadFigures {
  const began = performance.now();
  const counts = emptyCounts();
  const db = new BetterSqlite3(file);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -1048576');
    const insertEvent = db.prepare(`insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
      values (?, 'track', ?, ?, null, ?, ?, '{}', '{}', ?, ?, 1)`);
    const insertSend = db.prepare(`insert into sends (delivery_key, customer_id, flow_id, flow_version, workflow_id, node_id, template, to_address, subject, status, transport,
        scheduled_at, sent_at, message_id, fallbacks, flow_group, topic, category, experiment_id, variant)
      values (@delivery_key, @customer_id, @flow_id, @flow_version, @workflow_id, @node_id, @template, @to_address, @subject, 'sent', 'smtp',
        @scheduled_at, @sent_at, @message_id, '[]', 'marketing', null, 'marketing', @experiment_id, @variant)`);
    const insertEntry = db.prepare(`insert into flow_entries (workflow_id, customer_id, flow_id, flow_version, run_number, entered_at, ended_at, outcome, conversion_message_id, trigger_message_id, holdout)
      values (?, ?, ?, ?, ?, ?, null, null, null, null, ?)`);
    const insertAssignment = db.prepare(`insert into experiment_assignments (experiment_id, customer_id, variant, assigned_at, flow_id, flow_version, step_id, workflow_id)
      values ('${CART_EXPERIMENT}', ?, ?, ?, 'bench-cart', 1, '${CART_SPLIT}', ?)`);
    const write = db.transaction((chunk: Chunk) => {
      for (const e of chunk.entries) insertEntry.run(e.workflowId, e.customerId, e.flowId, e.version, e.runNumber, e.enteredAt, e.holdout ? 1 : 0);
      for (const a of chunk.assignments) insertAssignment.run(a.customerId, a.variant, a.assignedAt, a.workflowId);
      for (const s of chunk.sends) insertSend.run(sendColumns(s));
      for (const e of chunk.events) insertEvent.run(e.messageId, e.customerId, e.customerId, e.name, JSON.stringify(e.properties), e.timestamp, e.timestamp + 800);
    });
    let reported = performance.now();
    for (const chunk of datasetChunks(sends, seed, counts)) {
      write(chunk);
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        progress(`sqlite: loaded ${count(counts.sends)} sends, ${count(counts.events)} events (${secs((reported - began) / 1000)} s)`);
      }
    }
    db.pragma('journal_mode = WAL');
    return { counts, seconds: (performance.now() - began) / 1000 };
  } finally {
    db.close();
  }
}

/** One INSERT … SELECT FROM unnest(arrays) per table and chunk; the next chunk is generated while PostgreSQL writes. */
async function loadPostgres(url: string, sends: number, seed: number, progress: (line: string) => void): Promise<LoadFigures> {
  const began = performance.now();
  const counts = emptyCounts();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const write = async (chunk: Chunk) => {
      await client.query('begin');
      const n = chunk.entries;
      await client.query(
        `insert into flow_entries (workflow_id, customer_id, flow_id, flow_version, run_number, entered_at, holdout)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[], $7::boolean[])`,
        [n.map((e) => e.workflowId), n.map((e) => e.customerId), n.map((e) => e.flowId), n.map((e) => e.version), n.map((e) => e.runNumber), n.map((e) => e.enteredAt), n.map((e) => e.holdout)],
      );
      const a = chunk.assignments;
      await client.query(
        `insert into experiment_assignments (experiment_id, customer_id, variant, assigned_at, flow_id, flow_version, step_id, workflow_id)
         select '${CART_EXPERIMENT}', c, v, t, 'bench-cart', 1, '${CART_SPLIT}', w from unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) as u(c, v, t, w)`,
        [a.map((x) => x.customerId), a.map((x) => x.variant), a.map((x) => x.assignedAt), a.map((x) => x.workflowId)],
      );
      const s = chunk.sends.map(sendColumns);
      await client.query(
        `insert into sends (delivery_key, customer_id, flow_id, flow_version, workflow_id, node_id, template, to_address, subject, status, transport,
            scheduled_at, sent_at, message_id, fallbacks, flow_group, topic, category, experiment_id, variant)
         select k, c, f, fv, w, nd, t, ad, sj, 'sent', 'smtp', sa, st, m, '[]', 'marketing', null, 'marketing', x, v
         from unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[])
           as u(k, c, f, fv, w, nd, t, ad, sj, sa, st, m, x, v)`,
        [
          s.map((r) => r.delivery_key),
          s.map((r) => r.customer_id),
          s.map((r) => r.flow_id),
          s.map((r) => r.flow_version),
          s.map((r) => r.workflow_id),
          s.map((r) => r.node_id),
          s.map((r) => r.template),
          s.map((r) => r.to_address),
          s.map((r) => r.subject),
          s.map((r) => r.scheduled_at),
          s.map((r) => r.sent_at),
          s.map((r) => r.message_id),
          s.map((r) => r.experiment_id),
          s.map((r) => r.variant),
        ],
      );
      const e = chunk.events;
      await client.query(
        `insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
         select m, 'track', c, c, null, n, p, '{}', '{}', ts, ts + 800, true from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) as u(m, c, n, p, ts)`,
        [e.map((x) => x.messageId), e.map((x) => x.customerId), e.map((x) => x.name), e.map((x) => JSON.stringify(x.properties)), e.map((x) => x.timestamp)],
      );
      await client.query('commit');
    };
    let reported = performance.now();
    let writing: Promise<void> = Promise.resolve();
    for (const chunk of datasetChunks(sends, seed, counts)) {
      await writing;
      writing = write(chunk);
      // Never left unobserved while the next chunk is generated: a failure surfaces at the next await.
      writing.catch(() => undefined);
      if (performance.now() - reported > 30_000) {
        reported = performance.now();
        progress(`postgres: loaded ${count(counts.sends)} sends, ${count(counts.events)} events (${secs((reported - began) / 1000)} s)`);
      }
    }
    await writing;
    // What autovacuum would have done to a database that grew to this size: planner statistics, visibility map.
    await client.query('vacuum analyze');
    return { counts, seconds: (performance.now() - began) / 1000 };
  } finally {
    await client.end();
  }
}

// --- backends ----------------------------------------------------------------------------------------

type BackendName = 'sqlite' | 'postgres';

/** A loaded, migrated store, and a connection of the bench's own for the raw-row queries. */
interface Backend {
  name: BackendName;
  store: KyselyStore;
  load: LoadFigures;
  /** The rows of `text` (no parameters: every value in the bench's SQL is its own constant). */
  query(text: string): Promise<Array<Record<string, unknown>>>;
  serverVersion: string;
  sizeBytes(): Promise<number>;
}

async function withSqlite<T>(settings: Settings, progress: (line: string) => void, work: (backend: Backend) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-bench-report-'));
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
      const load = loadSqlite(file, settings.sends, settings.seed, progress);
      store = openSqliteStore(file);
      await store.migrate();
      // The raw-row queries get a connection of their own with the store's cache and mmap settings (store/sqlite.ts).
      const opened = new BetterSqlite3(file, { readonly: true });
      opened.pragma('cache_size = -65536');
      opened.pragma('mmap_size = 268435456');
      reader = opened;
      return work({
        name: 'sqlite',
        store,
        load,
        query: async (text) => opened.prepare(text).all() as Array<Record<string, unknown>>,
        serverVersion: `SQLite ${(opened.prepare('select sqlite_version() as v').get() as { v: string }).v}`,
        sizeBytes: async () => [file, `${file}-wal`].reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0),
      });
    },
  );
}

async function withPostgres<T>(adminUrl: string, settings: Settings, progress: (line: string) => void, work: (backend: Backend) => Promise<T>): Promise<T> {
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
      const load = await loadPostgres(database.url, settings.sends, settings.seed, progress);
      const client = new pg.Client({ connectionString: database.url });
      reader = client;
      await client.connect();
      const version = await client.query<{ server_version: string }>('show server_version');
      return work({
        name: 'postgres',
        store,
        load,
        query: async (text) => (await client.query(text)).rows as Array<Record<string, unknown>>,
        serverVersion: `PostgreSQL ${version.rows[0]!.server_version}`,
        sizeBytes: async () => Number((await client.query<{ bytes: string }>('select pg_database_size(current_database()) as bytes')).rows[0]!.bytes),
      });
    },
  );
}

// --- (a) the report from the counters ----------------------------------------------------------------

/** Time spent in each store read of the report, summed over one report. */
type Phases = Record<'counters' | 'definitions' | 'experiments' | 'assignmentCounts', number>;

/** The store as loadFlowReport reads it, each read timed into `phases`. */
function timedReportStore(store: KyselyStore, phases: Phases): ReportStore {
  const timed =
    <A extends unknown[], R>(phase: keyof Phases, read: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const t0 = performance.now();
      try {
        return await read(...args);
      } finally {
        phases[phase] += performance.now() - t0;
      }
    };
  return {
    metricsOf: timed('counters', (query?: MetricsQuery) => store.metricsOf(query)),
    latestFlowVersions: timed('definitions', () => store.latestFlowVersions()),
    getFlowVersion: timed('definitions', (flowId: string, version: number) => store.getFlowVersion(flowId, version)),
    experimentsOf: timed('experiments', (flowId?: string) => store.experimentsOf(flowId)),
    assignmentCounts: timed('assignmentCounts', (experimentId: string) => store.assignmentCounts(experimentId)),
  };
}

interface CounterRuns {
  totals: number[];
  phases: Phases[];
  report: FlowsReport;
  cpu: { nodePct: number; otherPct: number | null };
}

/** GET /api/reports/flows?since=30d as the server answers it, `repeats` times after a warm-up. */
async function reportFromCounters(backend: Backend, repeats: number): Promise<CounterRuns> {
  const zero = (): Phases => ({ counters: 0, definitions: 0, experiments: 0, assignmentCounts: 0 });
  let report: FlowsReport | undefined;
  const totals: number[] = [];
  const phases: Phases[] = [];
  for (let i = 0; i < WARMUP_REPORTS; i++) await loadFlowReport(backend.store, { sinceMs: REPORT_SINCE_MS, to: NOW });
  const cpu = startCpuWindow(undefined);
  for (let i = 0; i < repeats; i++) {
    const spent = zero();
    const reads = timedReportStore(backend.store, spent);
    const t0 = performance.now();
    report = await loadFlowReport(reads, { sinceMs: REPORT_SINCE_MS, to: NOW });
    totals.push(performance.now() - t0);
    phases.push(spent);
  }
  const window = cpu();
  return { totals, phases, report: report!, cpu: { nodePct: window.nodePct, otherPct: window.otherPct } };
}

/** `microflows report`: a fold first (nothing new to fold here), then the same report. */
async function reportWithFold(backend: Backend, flows: FlowDefinition[], repeats: number): Promise<{ folds: number[]; totals: number[] }> {
  const folds: number[] = [];
  const totals: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const fold = await backend.store.foldMetrics({ flows });
    const t1 = performance.now();
    await loadFlowReport(backend.store, { sinceMs: REPORT_SINCE_MS, to: NOW });
    const t2 = performance.now();
    if (fold.events !== 0) throw new Error(`the fold before the report read ${fold.events} events: the counters were not up to date`);
    folds.push(t1 - t0);
    totals.push(t2 - t0);
  }
  return { folds, totals };
}

// --- (b) the same report from the raw rows -----------------------------------------------------------

/** The dialect's spelling of what the raw-row queries need from JSON properties stored as text. */
interface RawSql {
  /** A properties column as the dialect reads JSON from it (PostgreSQL: cast to jsonb). */
  props(column: string): string;
  /** A boolean column as 0 or 1. */
  flag(column: string): string;
  /** properties.delivery_key when it is a string. */
  deliveryKey(p: string): string;
  /** properties.machine_open is true. */
  machineOpen(p: string): string;
  /** core/attribution revenueOf: revenue, else total, else value, the first that is a number ≥ 0; else 0. */
  revenue(p: string): string;
  /** Orders text as JavaScript's `<` does (bytes), for the attribution's tie-breaks. */
  bytes: string;
}

const SQLITE_SQL: RawSql = {
  props: (column) => column,
  flag: (column) => column,
  deliveryKey: (p) => `(case when json_type(${p}, '$.delivery_key') = 'text' then json_extract(${p}, '$.delivery_key') end)`,
  machineOpen: (p) => `(json_type(${p}, '$.machine_open') = 'true')`,
  revenue: (p) =>
    `(case ${['revenue', 'total', 'value'].map((k) => `when json_type(${p}, '$.${k}') in ('integer', 'real') and json_extract(${p}, '$.${k}') >= 0 then json_extract(${p}, '$.${k}')`).join(' ')} else 0 end)`,
  bytes: '',
};

const POSTGRES_SQL: RawSql = {
  props: (column) => `${column}::jsonb`,
  flag: (column) => `case when ${column} then 1 else 0 end`,
  deliveryKey: (p) => `(case when jsonb_typeof(${p} -> 'delivery_key') = 'string' then ${p} ->> 'delivery_key' end)`,
  machineOpen: (p) => `(${p} -> 'machine_open' = 'true'::jsonb)`,
  revenue: (p) =>
    `(case ${['revenue', 'total', 'value'].map((k) => `when jsonb_typeof(${p} -> '${k}') = 'number' and (${p} ->> '${k}')::float8 >= 0 then (${p} ->> '${k}')::float8`).join(' ')} else 0 end)`,
  bytes: ' collate "C"',
};

const ENGAGEMENT_COLUMNS: Array<[metric: string, condition: (d: RawSql) => string]> = [
  ['delivered', () => `name = 'Email Delivered'`],
  ['opened', (d) => `name = 'Email Opened' and not coalesce(${d.machineOpen('p')}, false)`],
  ['opened_machine', (d) => `name = 'Email Opened' and coalesce(${d.machineOpen('p')}, false)`],
  ['clicked', () => `name = 'Email Link Clicked'`],
  ['bounced', () => `name = 'Email Bounced'`],
  ['complained', () => `name = 'Email Marked as Spam'`],
  ['unsubscribed', () => `name = 'Unsubscribed'`],
];

/**
 * Sends per flow, version, step and variant (status sent), with each kind of engagement counted once per send: the
 * engagement events grouped by the delivery_key they name and their customer, joined to the send only when it went to
 * that customer (the dataset has no merged ids, so the store's alias check is left out).
 */
function sendsSql(d: RawSql, from: number): string {
  const quoted = ENGAGEMENT_NAMES.map((n) => `'${n}'`).join(', ');
  return `
    select s.flow_id, s.flow_version, s.node_id, coalesce(s.variant, '') as variant,
      sum(case when s.status = 'sent' then 1 else 0 end) as sent,
      ${ENGAGEMENT_COLUMNS.map(([metric]) => `sum(coalesce(x.${metric}, 0)) as ${metric}`).join(',\n      ')}
    from sends s
    left join (
      select k, customer_id,
        ${ENGAGEMENT_COLUMNS.map(([metric, condition]) => `max(case when ${condition(d)} then 1 else 0 end) as ${metric}`).join(',\n        ')}
      from (select customer_id, name, p, ${d.deliveryKey('p')} as k from (select customer_id, name, ${d.props('properties')} as p from events where type = 'track' and name in (${quoted})) e0) e
      where k is not null and k <> ''
      group by k, customer_id
    ) x on x.k = s.delivery_key and x.customer_id = s.customer_id
    where s.scheduled_at >= ${from}
    group by s.flow_id, s.flow_version, s.node_id, coalesce(s.variant, '')`;
}

/**
 * Conversions by core/attribution's rule, per goal event and flow with that goal: the latest touch at or before it (the
 * flow's sends to the customer at their flow time, and the customer's clicks recorded before the goal on those sends,
 * a click winning a tie) credits its send when within the flow's window; independently, the latest entry at or before
 * it, when within the window, credits the entry (holdout or not). Counted by the send's (or entry's) flow, version,
 * step, variant and day, as the counters are.
 */
function conversionsSql(d: RawSql, flows: FlowDefinition[], from: number): string {
  const windows = flows
    .filter((f) => f.exit.onEvents.some((m) => m.event === GOAL))
    .map((f) => `select '${f.id}' as flow_id, ${f.attribution?.windowMs ?? 5 * DAY_MS} as win`)
    .join(' union all ');
  return `
    with goals as materialized (
      select g.id, g.customer_id, g.timestamp as ts, ${d.revenue('g.p')} as revenue, f.flow_id, f.win
      from (select id, customer_id, timestamp, ${d.props('properties')} as p from events where type = 'track' and name = '${GOAL}') g
      cross join (${windows}) f
    ),
    latest as materialized (
      select goals.*,
        (select s.delivery_key from sends s
          where s.customer_id = goals.customer_id and s.flow_id = goals.flow_id and s.status = 'sent' and s.scheduled_at <= goals.ts
          order by s.scheduled_at desc, s.delivery_key${d.bytes} desc limit 1) as send_key,
        (select c.id from events c join sends cs on cs.delivery_key = ${d.deliveryKey(d.props('c.properties'))}
          where c.customer_id = goals.customer_id and c.type = 'track' and c.name = 'Email Link Clicked'
            and c.timestamp >= goals.ts - goals.win and c.timestamp <= goals.ts and c.id < goals.id
            and cs.customer_id = goals.customer_id and cs.flow_id = goals.flow_id and cs.status = 'sent' and cs.scheduled_at <= goals.ts
          order by c.timestamp desc, c.id desc limit 1) as click_id,
        (select fe.id from flow_entries fe
          where fe.customer_id = goals.customer_id and fe.flow_id = goals.flow_id and fe.entered_at <= goals.ts
          order by fe.entered_at desc, fe.workflow_id${d.bytes} desc limit 1) as entry_id
      from goals
    ),
    credited as materialized (
      select l.revenue,
        case
          when l.click_id is not null and (ls.scheduled_at is null or c.timestamp >= ls.scheduled_at) then ${d.deliveryKey(d.props('c.properties'))}
          when ls.scheduled_at is not null and l.ts - ls.scheduled_at <= l.win then l.send_key
        end as send_key,
        case when fe.id is not null and l.ts - fe.entered_at <= l.win then fe.id end as entry_id
      from latest l
      left join sends ls on ls.delivery_key = l.send_key
      left join events c on c.id = l.click_id
      left join flow_entries fe on fe.id = l.entry_id
    )
    select s.flow_id, s.flow_version, s.node_id as step_id, coalesce(s.variant, '') as variant, 0 as holdout,
      count(*) as n, sum(cr.revenue) as amount, sum(cr.revenue * cr.revenue) as amount_squares
    from credited cr join sends s on s.delivery_key = cr.send_key
    where s.scheduled_at >= ${from}
    group by s.flow_id, s.flow_version, s.node_id, coalesce(s.variant, '')
    union all
    select fe.flow_id, fe.flow_version, '' as step_id, '' as variant, ${d.flag('fe.holdout')} as holdout,
      count(*) as n, sum(cr.revenue) as amount, sum(cr.revenue * cr.revenue) as amount_squares
    from credited cr join flow_entries fe on fe.id = cr.entry_id
    where fe.entered_at >= ${from}
    group by fe.flow_id, fe.flow_version, fe.holdout`;
}

function entriesSql(from: number): string {
  return `select flow_id, flow_version, holdout, count(*) as n from flow_entries where entered_at >= ${from} group by flow_id, flow_version, holdout`;
}

function assignedSql(from: number): string {
  return `select flow_id, flow_version, step_id, variant, count(*) as n from experiment_assignments where assigned_at >= ${from} group by flow_id, flow_version, step_id, variant`;
}

const ALL_ASSIGNMENTS_SQL = 'select experiment_id, variant, count(*) as n from experiment_assignments group by experiment_id, variant';

const num = (value: unknown) => Number(value ?? 0);
const isTrue = (value: unknown) => value === true || value === 1 || value === '1';

/**
 * The same report from the raw rows: the counts by SQL, then the same definitions, experiments and pure report. The
 * period covers every row, so one pass serves both the period's counts and the experiments' all-time ones (the
 * counters' report reads its counters twice).
 */
/** Milliseconds of the raw-row SQL: sends with their engagement, conversions, and the rest (entries, assignments). */
interface RawSqlMs {
  sends: number;
  conversions: number;
  other: number;
}

async function reportFromRawRows(backend: Backend): Promise<{ report: FlowsReport; sqlMs: RawSqlMs }> {
  const d = backend.name === 'postgres' ? POSTGRES_SQL : SQLITE_SQL;
  const store = backend.store;
  const period = { from: Math.floor((NOW - REPORT_SINCE_MS) / DAY_MS) * DAY_MS, to: NOW };
  const t0 = performance.now();
  const registered = await store.latestFlowVersions();
  const counters: ReportCounter[] = [];
  const add = (row: Record<string, unknown>, stepId: string, variant: string, metric: string, n: unknown, amount = 0, amountSquares = 0) => {
    if (num(n) > 0) counters.push({ flowId: String(row.flow_id), flowVersion: num(row.flow_version), stepId, variant, metric, count: num(n), amount, amountSquares });
  };
  const tSends = performance.now();
  for (const row of await backend.query(sendsSql(d, period.from))) {
    const [stepId, variant] = [String(row.node_id), String(row.variant)];
    add(row, stepId, variant, 'sent', row.sent);
    for (const [metric] of ENGAGEMENT_COLUMNS) add(row, stepId, variant, metric, row[metric]);
  }
  const tConversions = performance.now();
  for (const row of await backend.query(conversionsSql(d, registered, period.from))) {
    const variant = row.step_id === '' && isTrue(row.holdout) ? HOLDOUT_VARIANT : String(row.variant);
    add(row, String(row.step_id), variant, 'converted', row.n, num(row.amount), num(row.amount_squares));
  }
  const tOther = performance.now();
  for (const row of await backend.query(entriesSql(period.from))) add(row, '', isTrue(row.holdout) ? HOLDOUT_VARIANT : '', 'entered', row.n);
  for (const row of await backend.query(assignedSql(period.from))) add(row, String(row.step_id), String(row.variant), 'assigned', row.n);
  const assigned = new Map<string, Map<string, number>>();
  for (const row of await backend.query(ALL_ASSIGNMENTS_SQL)) {
    const perVariant = assigned.get(String(row.experiment_id)) ?? new Map<string, number>();
    perVariant.set(String(row.variant), num(row.n));
    assigned.set(String(row.experiment_id), perVariant);
  }
  const tEnd = performance.now();
  const sqlMs: RawSqlMs = { sends: tConversions - tSends, conversions: tOther - tConversions, other: tSends - t0 + (tEnd - tOther) };
  const definitions = [...registered];
  for (const key of new Set(counters.map((c) => `${c.flowId}@${c.flowVersion}`))) {
    const [flowId, version] = key.split('@') as [string, string];
    if (!definitions.some((f) => f.id === flowId && f.version === Number(version))) {
      const definition = await store.getFlowVersion(flowId, Number(version));
      if (definition) definitions.push(definition);
    }
  }
  const experiments: ReportExperiment[] = (await store.experimentsOf()).map((record) => ({ ...record, assigned: assigned.get(record.experimentId) ?? new Map() }));
  const report = flowReport({ definitions, counters, lifetimeCounters: counters, experiments, period });
  return { report, sqlMs };
}

interface RawRuns {
  totals: number[];
  sqlMs: RawSqlMs[];
  first: number;
  report: FlowsReport;
  cpu: { nodePct: number; otherPct: number | null };
}

async function rawRuns(backend: Backend, repeats: number, progress: (line: string) => void): Promise<RawRuns> {
  let t0 = performance.now();
  const { report } = await reportFromRawRows(backend);
  const first = performance.now() - t0;
  progress(`${backend.name}: report from the raw rows, first run ${secs(first / 1000)} s`);
  const totals: number[] = [];
  const sqlMs: RawSqlMs[] = [];
  const cpu = startCpuWindow(undefined);
  for (let i = 0; i < repeats; i++) {
    t0 = performance.now();
    const run = await reportFromRawRows(backend);
    totals.push(performance.now() - t0);
    sqlMs.push(run.sqlMs);
  }
  const window = cpu();
  return { totals, sqlMs, first, report, cpu: { nodePct: window.nodePct, otherPct: window.otherPct } };
}

// --- the check: both reports give the same counts ----------------------------------------------------

/** Every count of a report (and its revenue sums) by a readable key. */
function countsOf(report: FlowsReport): Map<string, number> {
  const out = new Map<string, number>();
  for (const flow of report.flows) {
    for (const version of flow.versions) {
      const v = `${flow.flowId} v${version.version}`;
      for (const [cohort, c] of Object.entries(version.entrants)) {
        out.set(`${v} entrants ${cohort} entered`, c.entered);
        out.set(`${v} entrants ${cohort} converted`, c.converted);
        out.set(`${v} entrants ${cohort} revenue`, c.revenue);
      }
      for (const step of version.steps) {
        for (const row of step.variants) {
          const k = `${v} ${step.stepId} ${row.variant || '-'}`;
          for (const field of ['assigned', 'sent', 'delivered', 'bounced', 'opened', 'openedMachine', 'clicked', 'unsubscribed', 'complained', 'converted', 'revenue'] as const) {
            out.set(`${k} ${field}`, row[field]);
          }
        }
      }
    }
    for (const e of flow.experiments) for (const variant of e.variants) out.set(`${flow.flowId} experiment ${e.experimentId} ${variant.name} assigned`, variant.assigned);
  }
  return out;
}

/** The keys whose values differ (revenue sums: beyond a rounding difference of the summation order). */
function differences(a: Map<string, number>, b: Map<string, number>): string[] {
  const out: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(key);
    const y = b.get(key);
    const same = x !== undefined && y !== undefined && (key.endsWith('revenue') ? Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(x)) : x === y);
    if (!same) out.push(`${key}: counters ${x ?? 'absent'}, raw rows ${y ?? 'absent'}`);
  }
  return out;
}

/** The report's totals against what the generator wrote: a report that lost rows would fail here even if both agreed. */
function totalsAgainstDataset(report: FlowsReport, counts: DatasetCounts): string[] {
  let sent = 0;
  let entered = 0;
  let holdout = 0;
  let assigned = 0;
  for (const flow of report.flows) {
    entered += flow.entrants.treatment.entered + flow.entrants.holdout.entered;
    holdout += flow.entrants.holdout.entered;
    for (const version of flow.versions) for (const step of version.steps) for (const row of step.variants) sent += row.sent;
    for (const e of flow.experiments) for (const v of e.variants) assigned += v.assigned;
  }
  const out: string[] = [];
  const expect = (what: string, got: number, want: number) => got !== want && out.push(`${what}: the report says ${got}, the dataset has ${want}`);
  expect('sends', sent, counts.sends);
  expect('entries', entered, counts.entries);
  expect('holdout entries', holdout, counts.holdoutEntries);
  expect('assignments', assigned, counts.assignments);
  return out;
}

// --- measuring one backend ---------------------------------------------------------------------------

interface BackendFigures {
  name: BackendName;
  serverVersion: string;
  load: LoadFigures;
  bytes: number;
  rebuild: { seconds: number; fold: MetricsFold; counterRows: number };
  counters: CounterRuns;
  withFold: { folds: number[]; totals: number[] };
  raw: RawRuns;
  compared: number;
  problems: string[];
}

async function measureBackend(backend: Backend, flows: FlowDefinition[], settings: Settings, progress: (line: string) => void): Promise<BackendFigures> {
  const { store, load } = backend;
  progress(`${backend.name}: loaded ${count(load.counts.sends)} sends and ${count(load.counts.events)} events in ${secs(load.seconds)} s`);
  // Untimed setup, as `microflows start` and the first split would do it: the flow versions and the experiment.
  for (const flow of flows) await store.registerFlowVersion(flow);
  await store.startExperiment({ experimentId: CART_EXPERIMENT, flowId: 'bench-cart', stepId: CART_SPLIT, startedAt: START });
  const latest = await store.latestFlowVersions();

  // The counters: entered, assigned and sent recounted from their tables, every event folded (what the runtime does
  // as they arrive, all at once here).
  let t0 = performance.now();
  const fold = await store.rebuildMetrics(latest);
  const rebuildSeconds = (performance.now() - t0) / 1000;
  const [counterRow] = await backend.query('select count(*) as n from flow_metrics');
  progress(`${backend.name}: counters rebuilt in ${secs(rebuildSeconds)} s (${count(fold.events)} events folded, ${count(fold.conversions)} conversions credited)`);

  t0 = performance.now();
  const counters = await reportFromCounters(backend, settings.repeats);
  progress(`${backend.name}: ${settings.repeats} reports from the counters in ${secs((performance.now() - t0) / 1000)} s, p50 ${ms(percentile(counters.totals, 0.5))} ms`);
  const withFold = await reportWithFold(backend, latest, Math.min(settings.repeats, 50));
  const raw = await rawRuns(backend, settings.rawRepeats, progress);
  progress(`${backend.name}: ${settings.rawRepeats} reports from the raw rows, p50 ${secs(percentile(raw.totals, 0.5) / 1000)} s`);

  const a = countsOf(counters.report);
  const problems = [...differences(a, countsOf(raw.report)), ...totalsAgainstDataset(counters.report, load.counts)];
  return {
    name: backend.name,
    serverVersion: backend.serverVersion,
    load,
    bytes: await backend.sizeBytes(),
    rebuild: { seconds: rebuildSeconds, fold, counterRows: num(counterRow?.n) },
    counters,
    withFold,
    raw,
    compared: a.size,
    problems,
  };
}

// --- output ------------------------------------------------------------------------------------------

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

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

function cpuCell(otherPct: number | null): string {
  return otherPct === null ? 'n/a' : `${otherPct.toFixed(0)}%`;
}

function machineInfo(): string {
  const cpus = os.cpus();
  return [
    `machine: ${cpus.length} cpus × ${cpus[0]?.model.trim() ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()} ${os.arch()}`,
    `node ${process.version}, ${new Date().toISOString()}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ].join('\n');
}

function report(figures: BackendFigures[], settings: Settings): void {
  const counts = figures[0]!.load.counts;
  console.log('\n== dataset (bulk-loaded; the same rows on every backend) ==');
  printTable(
    ['backend', 'server', 'customers', 'entries', 'of which holdout', 'sends', 'events', 'load s', 'database MB'],
    figures.map((f) => [f.name, f.serverVersion, count(f.load.counts.customers), count(f.load.counts.entries), count(f.load.counts.holdoutEntries), count(f.load.counts.sends), count(f.load.counts.events), secs(f.load.seconds), count(f.bytes / 2 ** 20)]),
    [0, 1],
  );
  printTable(
    ['event', 'rows', 'per send'],
    Object.entries(counts.byName)
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([name, n]) => [name, count(n), (n / counts.sends).toFixed(3)]),
    [0],
  );

  console.log('\n== the counters brought up to date: rebuildMetrics (recount entries, assignments and sends; fold every event) ==');
  printTable(
    ['backend', 'seconds', 'events folded', 'µs/event', 'conversions credited', 'counter rows'],
    figures.map((f) => [f.name, secs(f.rebuild.seconds), count(f.rebuild.fold.events), ((f.rebuild.seconds * 1e6) / Math.max(1, f.rebuild.fold.events)).toFixed(0), count(f.rebuild.fold.conversions), count(f.rebuild.counterRows)]),
    [0],
  );

  const first = figures[0]!;
  console.log(`\n== the report's funnel (${first.name}, from the counters; the raw-row report gives the same counts) ==`);
  const funnel: string[][] = [];
  const entrants: string[][] = [];
  for (const flow of first.counters.report.flows) {
    for (const version of flow.versions) {
      for (const step of version.steps) {
        for (const row of step.variants) {
          funnel.push([
            flow.flowId,
            String(version.version),
            step.stepId,
            row.variant || '-',
            count(row.assigned),
            count(row.sent),
            pct(row.delivered, row.sent),
            pct(row.bounced, row.sent),
            pct(row.opened, row.reached),
            pct(row.openedMachine, row.reached),
            pct(row.clicked, row.reached),
            count(row.converted),
            row.revenue.toFixed(0),
          ]);
        }
      }
      for (const [cohort, c] of Object.entries(version.entrants)) {
        if (c.entered > 0) entrants.push([flow.flowId, String(version.version), cohort, count(c.entered), count(c.converted), pct(c.converted, c.entered), c.revenue.toFixed(0)]);
      }
    }
  }
  printTable(['flow', 'v', 'step', 'variant', 'assigned', 'sent', 'delivered', 'bounced', 'opened', 'machine opens', 'clicked', 'converted', 'revenue'], funnel, [0, 2, 3]);
  console.log('');
  printTable(['flow', 'v', 'entrants', 'entered', 'converted (window from entry)', 'rate', 'revenue'], entrants, [0, 2]);

  console.log(`\n== report latency: from the counters (${settings.repeats} runs after ${WARMUP_REPORTS} unmeasured) against the same report from the raw rows (${settings.rawRepeats} runs after one unmeasured) ==`);
  printTable(
    ['backend', 'report', 'runs', 'p50 ms', 'p95 ms', 'max ms', 'raw ÷ counters (p50)', 'node cpu', 'other cpu'],
    figures.flatMap((f) => {
      const a = percentile(f.counters.totals, 0.5);
      const b = percentile(f.raw.totals, 0.5);
      return [
        [f.name, 'from the counters (GET /api/reports/flows)', String(f.counters.totals.length), ms(a), ms(percentile(f.counters.totals, 0.95)), ms(Math.max(...f.counters.totals)), '1', `${f.counters.cpu.nodePct.toFixed(0)}%`, cpuCell(f.counters.cpu.otherPct)],
        [f.name, 'fold (nothing new) + from the counters (microflows report)', String(f.withFold.totals.length), ms(percentile(f.withFold.totals, 0.5)), ms(percentile(f.withFold.totals, 0.95)), ms(Math.max(...f.withFold.totals)), '', '', ''],
        [f.name, 'from the raw rows (baseline)', String(f.raw.totals.length), ms(b), ms(percentile(f.raw.totals, 0.95)), ms(Math.max(...f.raw.totals)), count(b / a), `${f.raw.cpu.nodePct.toFixed(0)}%`, cpuCell(f.raw.cpu.otherPct)],
      ];
    }),
    [0, 1],
  );

  console.log('\n== where the report from the counters spends its time (p50 of each part over the runs, ms) ==');
  printTable(
    ['backend', 'metricsOf (×2)', 'definitions', 'experiments', 'assignmentCounts', 'the rest (core/flow-report)', 'total', 'total − assignmentCounts p50 / p95', 'raw rows SQL p50: sends + engagement / conversions / other', 'raw rows: first run'],
    figures.map((f) => {
      const parts = (key: keyof Phases) => percentile(f.counters.phases.map((p) => p[key]), 0.5);
      const rest = percentile(
        f.counters.totals.map((t, i) => t - Object.values(f.counters.phases[i]!).reduce((s, x) => s + x, 0)),
        0.5,
      );
      const withoutAssignments = f.counters.totals.map((t, i) => t - f.counters.phases[i]!.assignmentCounts);
      return [
        f.name,
        ms(parts('counters')),
        ms(parts('definitions')),
        ms(parts('experiments')),
        ms(parts('assignmentCounts')),
        ms(rest),
        ms(percentile(f.counters.totals, 0.5)),
        `${ms(percentile(withoutAssignments, 0.5))} / ${ms(percentile(withoutAssignments, 0.95))}`,
        (['sends', 'conversions', 'other'] as const).map((k) => ms(percentile(f.raw.sqlMs.map((x) => x[k]), 0.5))).join(' / '),
        ms(f.raw.first),
      ];
    }),
    [0],
  );

  console.log('\n== check: the report from the counters against the report from the raw rows ==');
  for (const f of figures) {
    if (f.problems.length === 0) {
      console.log(`${f.name}: same counts — ${count(f.compared)} figures compared (per flow, version, step and variant, entrants, experiment assignments); totals equal the dataset's`);
      continue;
    }
    console.log(`${f.name}: MISMATCH — ${f.problems.length} figures differ:`);
    for (const line of f.problems.slice(0, 40)) console.log(`  ${line}`);
    if (f.problems.length > 40) console.log(`  … and ${f.problems.length - 40} more`);
  }

  for (const f of figures) {
    const p50 = percentile(f.counters.totals, 0.5);
    const p95 = percentile(f.counters.totals, 0.95);
    console.log(
      `claim (issue 16): a report over ${count(f.load.counts.sends)} sends answers in milliseconds (p95 ≤ ${CLAIM_P95_MS} ms) on ${f.name}: ${p95 <= CLAIM_P95_MS ? 'PASS' : 'MISS'} — ` +
        `p50 ${ms(p50)} ms, p95 ${ms(p95)} ms   | baseline (the same report from the raw rows): p50 ${secs(percentile(f.raw.totals, 0.5) / 1000)} s`,
    );
  }
}

// --- main --------------------------------------------------------------------------------------------

interface Settings {
  sends: number;
  repeats: number;
  rawRepeats: number;
  seed: number;
  backends: BackendName[];
  postgresUrl: string;
}

function readSettings(): Settings {
  const postgresUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || '';
  const listed = (process.env.BENCH_BACKENDS ?? '').split(',').map((b) => b.trim()).filter(Boolean);
  for (const b of listed) if (b !== 'sqlite' && b !== 'postgres') throw new Error(`BENCH_BACKENDS=${process.env.BENCH_BACKENDS}: list sqlite and/or postgres`);
  const backends = (listed.length > 0 ? listed : postgresUrl ? ['sqlite', 'postgres'] : ['sqlite']) as BackendName[];
  if (backends.includes('postgres') && !postgresUrl) throw new Error('BENCH_BACKENDS=postgres needs BENCH_DATABASE_URL or TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)');
  return {
    sends: Math.round(envNumber('BENCH_SENDS', 1_000_000)),
    repeats: Math.round(envNumber('BENCH_REPEATS', 200)),
    rawRepeats: Math.round(envNumber('BENCH_RAW_REPEATS', 5)),
    seed: Math.round(envNumber('BENCH_SEED', 16)),
    backends,
    postgresUrl,
  };
}

async function main(): Promise<void> {
  const settings = readSettings();
  const flows = compileFlows();
  checkSteps(flows);
  const began = performance.now();
  const progress = (line: string) => console.log(`  ${line}`);
  console.log('report-latency: the flow report from the counters, against the same report from the raw rows, in one run');
  console.log(machineInfo());
  console.log(
    `dataset: ${count(settings.sends)} sends over the ${HISTORY_DAYS} days before ${new Date(NOW).toISOString()} (seed ${settings.seed}); flows: ${flows.map((f) => `${f.id} v${f.version}`).join(', ')}; ` +
      `report: the ${REPORT_SINCE_MS / DAY_MS} days to then, every flow`,
  );
  if (!settings.backends.includes('postgres')) console.log('PostgreSQL skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run it too');

  const figures: BackendFigures[] = [];
  for (const name of settings.backends) {
    const measure = (backend: Backend) => measureBackend(backend, flows, settings, progress);
    figures.push(name === 'sqlite' ? await withSqlite(settings, progress, measure) : await withPostgres(settings.postgresUrl, settings, progress, measure));
  }
  report(figures, settings);
  console.log(`\nload average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; total ${secs((performance.now() - began) / 1000)} s`);
  if (figures.some((f) => f.problems.length > 0)) {
    console.error('\nMISMATCH: the report from the counters and the report from the raw rows differ (see above)');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
