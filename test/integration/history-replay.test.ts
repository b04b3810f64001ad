// History stays history, on the real path (time-skipping server, HTTP ingest, the import CLI, SMTP socket; SQLite
// and PostgreSQL). A shop's history (over 1,000 events of several hundred customers over 120 days, ending weeks ago)
// is replayed five ways — one batch, 100-event batches, shuffled batches, an imported CSV, an imported JSONL — and
// every way records the same Segment Entered / Exited events, equal to a brute-force reading of the shipped
// segments at every event time and window edge. Then the segment sweep starts no flow and sends no email for that
// history, while a customer whose lapse happens now gets winback.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import { post, waitUntil } from '../support/http';
import { seededRandom } from '../support/seeded-random';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CUSTOMERS = 300;
/** The history ends this long before the test runs: every change it causes is over 24 h old. */
const ENDS_AGO = 80 * DAY;
const SPAN = 120 * DAY;
const WAYS = ['one-batch', 'batches', 'shuffled', 'csv', 'jsonl'] as const;
type Way = (typeof WAYS)[number];

interface HistoryEvent {
  messageId: string;
  customer: string;
  type: 'identify' | 'track';
  name: string | null;
  at: number;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
}

/**
 * The fixture, from the shared seeded PRNG: browsers who view (categories in any case), carts that fill and empty,
 * buyers; half the customers identified with an email and marketing consent, so any flow that started would mail.
 * Each customer's events have times of their own (a tie would let arrival order decide).
 */
function shopHistory(base: number): HistoryEvent[] {
  const rand = seededRandom(2019);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const start = base - ENDS_AGO - SPAN;
  const events: HistoryEvent[] = [];
  for (let c = 0; c < CUSTOMERS; c++) {
    const customer = `shopper-${c}`;
    const buyer = rand() < 0.4;
    const times = new Set<number>();
    const count = 2 + Math.floor(rand() * 5);
    while (times.size < count) times.add(start + Math.floor(rand() * SPAN));
    const sorted = [...times].sort((a, b) => a - b);
    if (rand() < 0.5) {
      events.push({ messageId: `h-${customer}-id`, customer, type: 'identify', name: null, at: sorted[0]! - 1000, properties: {}, traits: { email: `${customer}@example.com`, consent: { email_marketing: true } } });
    }
    for (const at of sorted) {
      const roll = rand();
      const name = buyer && roll < 0.25 ? 'Order Completed' : roll < 0.7 ? 'Product Viewed' : roll < 0.9 ? 'Product Added' : 'Product Removed';
      const properties: Record<string, unknown> =
        name === 'Order Completed' ? { total: pick([19.5, 40, 120]) } : { product_id: pick(['p1', 'p2', 'p3']), category: pick(['Shoes', 'shoes', 'Bags', 'Hats ']), price: 25 };
      events.push({ messageId: `h-${customer}-${events.length}`, customer, type: 'track', name, at, properties, traits: {} });
    }
  }
  return events;
}

// --- the reference: the shipped segments read from their files' definitions, brute force ---------------------------

const within = (t: number, at: number, span: number) => t > at - span && t <= at;

/** The segments a customer is in at `at`, computed from their events alone (none have RFM scores: no quintiles). */
function referenceSegments(events: readonly HistoryEvent[], at: number): string[] {
  const past = events.filter((e) => e.type === 'track' && e.at <= at).sort((a, b) => a.at - b.at);
  const orders = past.filter((e) => e.name === 'Order Completed').map((e) => e.at);
  const members: string[] = [];
  // browsing-no-purchase: 3 views of one category (whatever its case and spaces) within 7 days; no order within 30.
  const views = new Map<string, number>();
  for (const e of past) {
    if (e.name !== 'Product Viewed' || !within(e.at, at, 7 * DAY)) continue;
    const category = String(e.properties.category).trim().toLowerCase();
    views.set(category, (views.get(category) ?? 0) + 1);
  }
  if ([...views.values()].some((n) => n >= 3) && !orders.some((t) => within(t, at, 30 * DAY))) members.push('browsing-no-purchase');
  // cart-abandoners: a non-empty cart untouched (an add, a remove, an order) for an hour.
  const cart = new Set<string>();
  let touched = -Infinity;
  for (const e of past) {
    if (e.name === 'Product Added') cart.add(String(e.properties.product_id));
    else if (e.name === 'Product Removed') cart.delete(String(e.properties.product_id));
    else if (e.name === 'Order Completed') cart.clear();
    else continue;
    touched = e.at;
  }
  if (cart.size > 0 && at - touched >= HOUR) members.push('cart-abandoners');
  // lapsed-customers: an order, the last one at least 60 days ago.
  if (orders.length > 0 && at - Math.max(...orders) >= 60 * DAY) members.push('lapsed-customers');
  // recent-purchasers: an order within 14 days.
  if (orders.some((t) => within(t, at, 14 * DAY))) members.push('recent-purchasers');
  // repeat-visitors: product events (visits) on at least two UTC days.
  const days = new Set(past.filter((e) => e.name?.startsWith('Product')).map((e) => Math.floor(e.at / DAY)));
  if (days.size >= 2) members.push('repeat-visitors');
  return members.sort();
}

/** Every change, at every event time and every window edge after one: `<customer> entered|exited <segment> @<time>`. */
function referenceHistory(events: readonly HistoryEvent[], now: number): string[] {
  const byCustomer = new Map<string, HistoryEvent[]>();
  for (const e of events) byCustomer.set(e.customer, [...(byCustomer.get(e.customer) ?? []), e]);
  const changes: string[] = [];
  for (const [customer, mine] of byCustomer) {
    const moments = [...new Set(mine.flatMap((e) => [0, HOUR, 7 * DAY, 14 * DAY, 30 * DAY, 60 * DAY].map((edge) => e.at + edge)))].filter((t) => t <= now).sort((a, b) => a - b);
    let before: string[] = [];
    for (const at of moments) {
      const after = referenceSegments(mine, at);
      for (const id of after) if (!before.includes(id)) changes.push(`${customer} entered ${id} @${at}`);
      for (const id of before) if (!after.includes(id)) changes.push(`${customer} exited ${id} @${at}`);
      before = after;
    }
  }
  return changes.sort();
}

// --- the five ways in ------------------------------------------------------------------------------------------------

function segmentCall(e: HistoryEvent, prefix: string): Record<string, unknown> {
  const common = { type: e.type, userId: `${prefix}${e.customer}`, messageId: `${prefix}${e.messageId}`, timestamp: new Date(e.at).toISOString() };
  return e.type === 'identify' ? { ...common, traits: e.traits } : { ...common, event: e.name, properties: e.properties };
}

function csvLine(values: unknown[]): string {
  return values.map((v) => (v === undefined || v === null ? '' : `"${String(v).replace(/"/g, '""')}"`)).join(',');
}

const PROFILES_MAPPING = 'user_id: customer\ntimestamp: { column: at, type: date }\ntraits:\n  email: email\nconsent:\n  email_marketing: { column: opted_in, type: boolean }\n';
const EVENTS_MAPPING =
  'user_id: customer\nevent: event\ntimestamp: at\nmessage_id: id\nproperties:\n  product_id: product_id\n  category: category\n  price: { column: price, type: number }\n  total: { column: total, type: number }\n';

/** Writes the history as the files a shop would export: profiles and events, CSV or JSONL, with their mappings. */
function writeExport(dir: string, events: HistoryEvent[], prefix: string, format: 'csv' | 'jsonl'): { profiles: string; events: string } {
  const identifies = events.filter((e) => e.type === 'identify');
  const tracks = events.filter((e) => e.type === 'track');
  const profileRow = (e: HistoryEvent) => ({ customer: `${prefix}${e.customer}`, at: new Date(e.at).toISOString(), email: e.traits.email, opted_in: 'true' });
  const eventRow = (e: HistoryEvent) => ({
    id: `${prefix}${e.messageId}`,
    customer: `${prefix}${e.customer}`,
    event: e.name,
    at: new Date(e.at).toISOString(),
    product_id: e.properties.product_id,
    category: e.properties.category,
    price: e.properties.price,
    total: e.properties.total,
  });
  const write = (name: string, rows: Array<Record<string, unknown>>, columns: string[]) => {
    const file = path.join(dir, `${name}.${format}`);
    const text = format === 'csv' ? [columns.join(','), ...rows.map((r) => csvLine(columns.map((c) => r[c])))].join('\n') : rows.map((r) => JSON.stringify(r)).join('\n');
    fs.writeFileSync(file, `${text}\n`);
    return file;
  };
  fs.writeFileSync(path.join(dir, 'profiles.yaml'), PROFILES_MAPPING);
  fs.writeFileSync(path.join(dir, 'events.yaml'), EVENTS_MAPPING);
  return {
    profiles: write('profiles', identifies.map(profileRow), ['customer', 'at', 'email', 'opted_in']),
    events: write('events', tracks.map(eventRow), ['id', 'customer', 'event', 'at', 'product_id', 'category', 'price', 'total']),
  };
}

/** `microflows import …` as its own process (async: this process serves the runtime meanwhile). */
function importFile(args: string[], env: Record<string, string>): Promise<{ status: number | null; output: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('MICROFLOWS_') && k !== 'DATABASE_URL')) as Record<string, string>;
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'import', ...args], { env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.on('exit', (status) => resolve({ status, output })));
}

for (const database of stackDatabases('history-replay')) {
  describeOn(database, `history replayed five ways on ${database}`, () => {
    let stack: TimeSkippingStack;
    let filesDir: string;
    const base = Date.now();
    const history = shopHistory(base);

    beforeAll(async () => {
      filesDir = tempDir('history-files');
      stack = await startTimeSkippingStack({}, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
      if (filesDir) fs.rmSync(filesDir, { recursive: true, force: true });
    });

    const storeEnv = (): Record<string, string> => (database === 'postgres' ? { DATABASE_URL: stack.runtime.config.databaseUrl! } : { MICROFLOWS_SQLITE_PATH: stack.runtime.config.sqlitePath });

    async function batch(calls: Array<Record<string, unknown>>): Promise<void> {
      const reply = await post(`${stack.url}/v1/batch`, { batch: calls }, WRITE_KEY);
      expect({ status: reply.status, rejected: reply.json?.rejected ?? [] }).toEqual({ status: 200, rejected: [] });
    }

    async function replay(way: Way, prefix: string): Promise<void> {
      const calls = history.map((e) => segmentCall(e, prefix));
      const rand = seededRandom(WAYS.indexOf(way) + 1);
      const chunks = (list: typeof calls) => Array.from({ length: Math.ceil(list.length / 100) }, (_, i) => list.slice(i * 100, (i + 1) * 100));
      if (way === 'one-batch') await batch(calls);
      if (way === 'batches') for (const chunk of chunks([...calls].sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp))))) await batch(chunk);
      if (way === 'shuffled') for (const chunk of chunks(calls.map((c) => ({ c, key: rand() })).sort((a, b) => a.key - b.key).map(({ c }) => c))) await batch(chunk);
      if (way === 'csv' || way === 'jsonl') {
        const dir = path.join(filesDir, `${database}-${way}`);
        fs.mkdirSync(dir);
        const files = writeExport(dir, history, prefix, way);
        for (const [kind, file] of [['profiles', files.profiles], ['events', files.events]] as const) {
          const result = await importFile([kind, file, '--map', path.join(dir, `${kind}.yaml`)], storeEnv());
          expect({ kind, status: result.status }).toEqual({ kind, status: 0 });
        }
      }
      await stack.runtime.dispatcher.idle();
      // Imported customers are due from their events' own times; the engine takes them as the sweep would.
      const now = Date.now();
      for (let page = await stack.runtime.segments.sweepPage(now, 500); ; page = await stack.runtime.segments.sweepPage(now, 500, page.next)) {
        expect(page.failed).toBe(0);
        if (!page.next) break;
      }
    }

    /** The changes recorded for the customers of one way, with the way's prefix taken off the customer id. */
    async function recorded(prefix: string): Promise<string[]> {
      const changes: string[] = [];
      for (let c = 0; c < CUSTOMERS; c++) {
        for (const e of await stack.runtime.store.eventsOf(`${prefix}shopper-${c}`, { names: [SEGMENT_ENTERED, SEGMENT_EXITED] })) {
          changes.push(`shopper-${c} ${e.name === SEGMENT_ENTERED ? 'entered' : 'exited'} ${String(e.properties.segment_id)} @${e.timestamp}`);
        }
      }
      return changes.sort();
    }

    it('records the same segment history all five ways, equal to the brute-force reading of the definitions', async () => {
      expect(history.length).toBeGreaterThanOrEqual(1000);
      const reference = referenceHistory(history, Date.now());
      expect(reference.length).toBeGreaterThan(300);
      const memberships: Record<string, string[]> = {};
      for (const way of WAYS) {
        await replay(way, `${way}:`);
        expect({ way, changes: await recorded(`${way}:`) }).toEqual({ way, changes: reference });
        memberships[way] = [];
        for (let c = 0; c < CUSTOMERS; c++) {
          for (const m of await stack.runtime.store.segmentsOf(`${way}:shopper-${c}`)) memberships[way]!.push(`shopper-${c} ${m.segmentId} since ${m.enteredAt}`);
        }
      }
      // The membership as stored now, and since when, is the same whichever way the history came in.
      for (const way of WAYS) expect({ way, members: memberships[way] }).toEqual({ way, members: memberships['one-batch'] });
      // No quintiles were computed: the RFM segments are empty, as the reference has them.
      expect(await stack.runtime.store.rfmState()).toBeUndefined();
    }, 300_000);

    it('then the sweep starts no flow and sends no email for that history, while a lapse that happens now gets winback', async () => {
      // Ordered 60 days and a minute ago: the lapse is news, a minute old.
      const now = Date.now();
      expect((await post(`${stack.url}/v1/identify`, { userId: 'lapses-now', traits: { email: 'lapses-now@example.com', consent: { email_marketing: true } }, timestamp: new Date(now - 61 * DAY).toISOString() }, WRITE_KEY)).status).toBe(200);
      expect((await post(`${stack.url}/v1/track`, { userId: 'lapses-now', event: 'Order Completed', properties: { total: 30 }, timestamp: new Date(now - 60 * DAY - 60_000).toISOString() }, WRITE_KEY)).status).toBe(200);
      await stack.runtime.dispatcher.idle();
      // The segment sweep as its Schedule runs it, on the time-skipping server (a plain client: no time skipped).
      const sweep = (await new Client({ connection: stack.env.connection, dataConverter: stack.runtime.payloads.dataConverter }).workflow.execute('segmentSweepWorkflow', {
        taskQueue: stack.runtime.config.taskQueue,
        workflowId: `${database}-history-sweep`,
        args: [{ pageSize: 200 }],
      })) as { failed: number };
      expect(sweep.failed).toBe(0);
      await stack.runtime.dispatcher.idle();

      const entry = await waitUntil('the winback run of the customer who lapsed now', async () => (await stack.runtime.store.flowEntriesOf('lapses-now')).find((e) => e.flowId === 'winback'));
      expect(entry).toBeDefined();
      await stack.smtp.waitForCount(1);
      expect(stack.smtp.messages.map((m) => m.to)).toEqual(['lapses-now@example.com']);
      // Nobody of the history entered a flow; their segment events reached the arbiter and were judged history.
      const historyEntries = [];
      for (const way of WAYS) for (let c = 0; c < CUSTOMERS; c += 1) historyEntries.push(...(await stack.runtime.store.flowEntriesOf(`${way}:shopper-${c}`)));
      expect(historyEntries).toEqual([]);
    }, 300_000);
  });
}
