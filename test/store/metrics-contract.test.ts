// The report counters (store/metrics-store) on SQLite and PostgreSQL: entered, assigned and sent are counted once, in
// the transaction that records them; the fold counts engagement once per send and kind, machine opens apart, never for
// a send that is not the event customer's, and conversions by core/attribution, each once however often, and by however
// many stores at once, the events are folded; a rebuild ends where the incremental counters are; erase and export cover
// what names a customer. The big checks compare the counters with an independent count the test makes from its own log.
import pg from 'pg';
import { HOLDOUT_VARIANT } from '../../core/experiment-assignment';
import type { FlowDefinition } from '../../core/flow-types';
import type { KyselyStore } from '../../store/kysely-store';
import type { MetricRow } from '../../store/metrics-store';
import type { NewEvent } from '../../store/store';
import { openRawDatabase } from '../support/database-scan';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';
import { storeBackends } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A UTC midnight, so day boundaries in the tests are easy to reason about. */
const NOW = Date.UTC(2026, 2, 2);
const GOAL = 'Order Completed';
const SEED = runSeed('test/store/metrics-contract.test.ts');

let sequence = 0;
/** An id no other test in the suite (which shares one database) uses. */
const fresh = (name: string) => `${name}-${process.pid}-${++sequence}`;

function flowDef(id: string, windowMs?: number): FlowDefinition {
  return {
    id,
    version: 1,
    priority: 50,
    group: 'marketing',
    topic: null,
    trigger: { kind: 'event', event: 'Cart Abandoned' },
    entry: { reentry: { kind: 'always' }, onConflict: 'suppress' },
    exit: { onEvents: [{ event: GOAL }] },
    start: null,
    nodes: {},
    defaultTimezone: 'UTC',
    ...(windowMs === undefined ? {} : { attribution: { windowMs } }),
    source: { file: `flows/${id}.yaml`, sha256: `sha-${id}` },
  };
}

function track(customerId: string, name: string, properties: Record<string, unknown>, at: number): NewEvent {
  return { messageId: fresh('msg'), type: 'track', customerId, userId: customerId, anonymousId: null, name, properties, traits: {}, context: {}, timestamp: at, receivedAt: at };
}

/** Records events one call each, in order, and returns their stored ids (0 when the store did not keep one). */
async function record(store: KyselyStore, events: NewEvent[]): Promise<number[]> {
  const ids: number[] = [];
  for (const event of events) {
    const [result] = await store.recordEvents([event], { needsDispatch: () => false });
    ids.push(result!.duplicate || result!.dropped || result!.refused ? 0 : Number(result!.event.id));
  }
  return ids;
}

interface Run {
  workflowId: string;
  customerId: string;
  version: number;
  at: number;
  holdout: boolean;
}

async function enter(store: KyselyStore, flowId: string, run: Omit<Run, 'workflowId'> & { n: number }): Promise<Run> {
  const workflowId = `flow/${flowId}/${run.customerId}/${run.n}`;
  await store.recordFlowEntry({
    customerId: run.customerId,
    flowId,
    flowVersion: run.version,
    runNumber: run.n,
    workflowId,
    enteredAt: run.at,
    triggerMessageId: null,
    ...(run.holdout ? { holdout: true } : {}),
  });
  return { workflowId, customerId: run.customerId, version: run.version, at: run.at, holdout: run.holdout };
}

interface Send {
  key: string;
  customerId: string;
  version: number;
  nodeId: string;
  variant: string | null;
  at: number;
  delivered: boolean;
}

/** Claims the send and, when `delivered`, writes it to the outbox (pending → sent). */
async function claimAndDeliver(store: KyselyStore, flowId: string, run: Run, send: Omit<Send, 'key' | 'customerId' | 'version'>): Promise<Send> {
  const key = `${run.workflowId}/${send.nodeId}`;
  const to = `${run.customerId}@example.com`;
  await store.claimSend({
    deliveryKey: key,
    customerId: run.customerId,
    flowId,
    flowVersion: run.version,
    workflowId: run.workflowId,
    nodeId: send.nodeId,
    template: 'cart-reminder',
    to,
    subject: 'Your cart',
    transport: 'outbox',
    scheduledAt: send.at,
    ...(send.variant === null ? {} : { experimentId: `${flowId}-exp`, variant: send.variant }),
  });
  if (send.delivered) {
    await store.deliverToOutbox({ deliveryKey: key, to, from: 'shop@example.com', subject: 'Your cart', html: '<p>hi</p>', text: 'hi', headers: {}, createdAt: send.at }, `<${key}@microflows>`);
  }
  return { key, customerId: run.customerId, version: run.version, ...send };
}

/** `version|step|variant|metric` → count and sums, from the store's rows (only non-zero counters are stored). */
function byKey(rows: MetricRow[]): Record<string, { count: number; amount: number; amountSquares: number }> {
  const out: Record<string, { count: number; amount: number; amountSquares: number }> = {};
  for (const row of rows) out[`${row.flowVersion}|${row.stepId}|${row.variant}|${row.metric}`] = { count: row.count, amount: row.amount, amountSquares: row.amountSquares };
  return out;
}

const count = (rows: MetricRow[], stepId: string, variant: string, metric: string, version = 1) =>
  rows.find((r) => r.flowVersion === version && r.stepId === stepId && r.variant === variant && r.metric === metric)?.count ?? 0;

// --- the independent count -------------------------------------------------------------------

interface LoggedEvent {
  id: number;
  customerId: string;
  name: string;
  properties: Record<string, unknown>;
  at: number;
}

interface Log {
  runs: Run[];
  sends: Send[];
  assignments: Array<{ version: number; stepId: string; variant: string; at: number }>;
  events: LoggedEvent[];
}

const ENGAGEMENT: Record<string, string> = {
  'Email Delivered': 'delivered',
  'Email Opened': 'opened',
  'Email Link Clicked': 'clicked',
  'Email Bounced': 'bounced',
  'Email Marked as Spam': 'complained',
  Unsubscribed: 'unsubscribed',
};

/**
 * What the counters must say, per day, written from the definitions with no code shared with the store:
 * sets of (send, kind) for uniqueness, and for each goal event every touch checked by brute force.
 */
function independentCount(log: Log, windowMs: number): Map<string, { day: number; count: number; amount: number; amountSquares: number }> {
  const counters = new Map<string, { day: number; count: number; amount: number; amountSquares: number }>();
  const add = (version: number, step: string, variant: string, metric: string, at: number, amount = 0) => {
    const day = Math.floor(at / DAY);
    const key = `${version}|${step}|${variant}|${metric}|${day}`;
    const c = counters.get(key) ?? { day, count: 0, amount: 0, amountSquares: 0 };
    c.count += 1;
    c.amount += amount;
    c.amountSquares += amount * amount;
    counters.set(key, c);
  };
  for (const run of log.runs) add(run.version, '', run.holdout ? '(holdout)' : '', 'entered', run.at);
  for (const a of log.assignments) add(a.version, a.stepId, a.variant, 'assigned', a.at);
  for (const send of log.sends) if (send.delivered) add(send.version, send.nodeId, send.variant ?? '', 'sent', send.at);
  const sendsByKey = new Map(log.sends.map((s) => [s.key, s]));
  const seen = new Set<string>();
  for (const event of log.events) {
    let kind = ENGAGEMENT[event.name];
    if (kind === undefined) continue;
    if (kind === 'opened' && event.properties.machine_open === true) kind = 'opened_machine';
    const send = sendsByKey.get(event.properties.delivery_key as string);
    if (!send || send.customerId !== event.customerId || seen.has(`${send.key}|${kind}`)) continue;
    seen.add(`${send.key}|${kind}`);
    add(send.version, send.nodeId, send.variant ?? '', kind, send.at);
  }
  for (const goal of log.events.filter((e) => e.name === GOAL)) {
    let revenue = 0;
    for (const name of ['revenue', 'total', 'value']) {
      const v = goal.properties[name];
      if (typeof v === 'number' && v >= 0 && Number.isFinite(v)) {
        revenue = v;
        break;
      }
    }
    const inWindow = (at: number) => at <= goal.at && goal.at - at <= windowMs;
    const own = log.sends.filter((s) => s.customerId === goal.customerId && s.delivered);
    let best: { at: number; send: Send } | null = null;
    for (const send of own) if (inWindow(send.at) && (best === null || send.at > best.at)) best = { at: send.at, send };
    for (const click of log.events) {
      if (click.name !== 'Email Link Clicked' || click.customerId !== goal.customerId || click.id >= goal.id || !inWindow(click.at)) continue;
      const send = own.find((s) => s.key === click.properties.delivery_key);
      if (send && (best === null || click.at > best.at)) best = { at: click.at, send };
    }
    let entry: Run | null = null;
    for (const run of log.runs) if (run.customerId === goal.customerId && inWindow(run.at) && (entry === null || run.at > entry.at)) entry = run;
    if (best) add(best.send.version, best.send.nodeId, best.send.variant ?? '', 'converted', best.send.at, revenue);
    if (entry) add(entry.version, '', entry.holdout ? '(holdout)' : '', 'converted', entry.at, revenue);
  }
  return counters;
}

/** The independent count summed over the days in [fromDay, toDay], keyed as byKey keys the store's rows. */
function summed(counters: ReturnType<typeof independentCount>, fromDay = -Infinity, toDay = Infinity) {
  const out: Record<string, { count: number; amount: number; amountSquares: number }> = {};
  for (const [key, c] of counters) {
    if (c.day < fromDay || c.day > toDay) continue;
    const k = key.slice(0, key.lastIndexOf('|'));
    const s = (out[k] ??= { count: 0, amount: 0, amountSquares: 0 });
    s.count += c.count;
    s.amount += c.amount;
    s.amountSquares += c.amountSquares;
  }
  return out;
}

/**
 * A few dozen customers' runs (some in the holdout, two flow versions), sends (some never delivered, some in variants),
 * assignments, and events in a jittered arrival order: engagement with repeats and machine opens, events naming other
 * customers' sends or none, goal events with revenue in every shape, noise. Every moment is distinct, so last touch
 * has no ties. Revenues are multiples of 0.5, whose sums are exact in floating point on both backends.
 */
async function simulate(store: KyselyStore, flowId: string, seed: number, customers = 24): Promise<Log> {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const used = new Set<number>();
  const moment = (from: number, spread: number) => {
    for (;;) {
      const at = from + Math.floor(random() * spread);
      if (!used.has(at)) {
        used.add(at);
        return at;
      }
    }
  };
  const log: Log = { runs: [], sends: [], assignments: [], events: [] };
  const ids = Array.from({ length: customers }, (_, i) => `${flowId}-c${i}`);
  for (const customerId of ids) {
    const runs = 1 + Math.floor(random() * 3);
    for (let n = 1; n <= runs; n++) {
      const run = await enter(store, flowId, { customerId, n, version: random() < 0.7 ? 1 : 2, at: moment(NOW, 10 * DAY), holdout: random() < 0.25 });
      log.runs.push(run);
      if (run.holdout) continue;
      for (const nodeId of ['steps[1]', 'steps[3]'].slice(0, 1 + Math.floor(random() * 2))) {
        log.sends.push(await claimAndDeliver(store, flowId, run, { nodeId, variant: pick([null, 'a', 'b']), at: moment(run.at, 3 * DAY), delivered: random() < 0.85 }));
      }
    }
    if (random() < 0.5) {
      const assignment = { experimentId: `${flowId}-exp`, customerId, flowId, flowVersion: random() < 0.5 ? 1 : 2, stepId: 'steps[1]', workflowId: `flow/${flowId}/${customerId}/1` };
      const first = { ...assignment, variant: pick(['a', 'b']), assignedAt: moment(NOW, 10 * DAY) };
      await store.recordAssignment(first);
      // A second assignment of the customer (another run racing) keeps the first and counts nothing.
      await store.recordAssignment({ ...assignment, variant: first.variant === 'a' ? 'b' : 'a', assignedAt: moment(NOW, 10 * DAY) });
      log.assignments.push({ version: first.flowVersion, stepId: first.stepId, variant: first.variant, at: first.assignedAt });
    }
  }
  const events: NewEvent[] = [];
  for (const send of log.sends) {
    const after = () => moment(send.at, 4 * DAY);
    const times = (n: number, make: () => NewEvent) => Array.from({ length: Math.floor(random() * (n + 1)) }, make);
    const on = (name: string, extra: Record<string, unknown> = {}) => () => track(send.customerId, name, { delivery_key: send.key, ...extra }, after());
    events.push(...times(2, on('Email Delivered')));
    events.push(...times(3, on('Email Opened', random() < 0.5 ? { machine_open: false } : {})));
    events.push(...times(2, on('Email Opened', { machine_open: true })));
    events.push(...times(3, on('Email Link Clicked', { url: 'https://shop.example/cart' })));
    if (random() < 0.1) events.push(on('Email Bounced', { bounce_type: 'soft' })());
    if (random() < 0.08) events.push(on('Email Marked as Spam')());
    if (random() < 0.1) events.push(on('Unsubscribed')());
  }
  for (let i = 0; i < 10; i++) {
    // Someone else's delivery key: counts nothing for either of them.
    const send = pick(log.sends);
    const other = pick(ids.filter((id) => id !== send.customerId));
    events.push(track(other, pick(Object.keys(ENGAGEMENT)), { delivery_key: send.key }, moment(send.at, 4 * DAY)));
  }
  events.push(track(ids[0]!, 'Email Opened', { delivery_key: `${flowId}-no-such-send` }, moment(NOW, 10 * DAY)));
  events.push(track(ids[0]!, 'Email Link Clicked', { delivery_key: 42 }, moment(NOW, 10 * DAY)));
  events.push(track(ids[1]!, 'Email Delivered', {}, moment(NOW, 10 * DAY)));
  const revenues = [
    () => ({ revenue: Math.floor(random() * 400) / 2 }),
    () => ({ total: Math.floor(random() * 400) / 2 }),
    () => ({ value: Math.floor(random() * 400) / 2 }),
    () => ({ revenue: '12.50', total: Math.floor(random() * 400) / 2 }),
    () => ({ revenue: -3, value: 4.5 }),
    () => ({}),
  ];
  for (const customerId of ids) {
    for (let i = Math.floor(random() * 4); i > 0; i--) events.push(track(customerId, GOAL, pick(revenues)(), moment(NOW, 14 * DAY)));
    if (random() < 0.5) events.push(track(customerId, 'Product Viewed', { product_id: 'p1' }, moment(NOW, 14 * DAY)));
  }
  // Roughly in time order, as events arrive, with some late: a click reported after a goal it preceded.
  const arrival = events.map((event) => ({ event, key: event.timestamp + random() * 8 * HOUR })).sort((a, b) => a.key - b.key);
  const stored = await record(store, arrival.map((a) => a.event));
  arrival.forEach(({ event }, i) => {
    if (stored[i]! > 0) log.events.push({ id: stored[i]!, customerId: event.customerId, name: event.name!, properties: event.properties, at: event.timestamp });
  });
  return log;
}

for (const backend of storeBackends('test/store/metrics-contract.test.ts')) {
  backend.describe(`report counters on ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      store = await backend.open();
    });

    afterAll(async () => {
      await backend.dispose();
    });

    /** As if a crash lost the fold's place: every event is folded again. */
    async function forgetCursor(): Promise<void> {
      const raw = openRawDatabase(backend);
      try {
        await raw.query('update metrics_state set event_cursor = 0 where id = 1');
      } finally {
        await raw.close();
      }
    }

    /** Folds until the store says it has caught up (PostgreSQL may leave events a writer had in flight for later). */
    async function foldAll(s: KyselyStore, flows: FlowDefinition[]): Promise<void> {
      for (let pass = 0; pass < 20; pass++) if ((await s.foldMetrics({ flows })).caughtUp) return;
      throw new Error('the fold never caught up');
    }

    it('entered, sent and assigned count once each, when the row is new or the send goes pending → sent', async () => {
      const flowId = fresh('counted');
      const c = fresh('cust');
      const run = await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
      await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
      await enter(store, flowId, { customerId: fresh('held'), n: 1, version: 1, at: NOW + HOUR, holdout: true });
      const delivered = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: 'a', at: NOW + 2 * HOUR, delivered: true });
      // A retried delivery of a sent send, and a completion racing it from another store, count nothing more.
      await store.deliverToOutbox({ deliveryKey: delivered.key, to: `${c}@example.com`, from: 'shop@example.com', subject: 's', html: '', text: '', headers: {}, createdAt: NOW }, '<x@microflows>');
      await store.completeSend(delivered.key, '<y@microflows>', NOW);
      const smtp = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[2]', variant: null, at: NOW + 3 * HOUR, delivered: false });
      const other = await backend.open();
      await Promise.all([store.completeSend(smtp.key, '<a@microflows>', NOW), other.completeSend(smtp.key, '<b@microflows>', NOW), store.completeSend(smtp.key, '<c@microflows>', NOW)]);
      await claimAndDeliver(store, flowId, run, { nodeId: 'steps[3]', variant: null, at: NOW + 4 * HOUR, delivered: false });
      const assignment = { experimentId: `${flowId}-exp`, customerId: c, flowId, flowVersion: 1, stepId: 'steps[0]', workflowId: run.workflowId };
      const stored = await store.recordAssignment({ ...assignment, variant: 'b', assignedAt: NOW });
      const again = await other.recordAssignment({ ...assignment, variant: 'a', assignedAt: NOW + DAY });
      expect(again).toEqual(stored);

      const rows = await store.metricsOf({ flowId });
      expect(byKey(rows)).toEqual({
        '1|||entered': { count: 1, amount: 0, amountSquares: 0 },
        [`1||${HOLDOUT_VARIANT}|entered`]: { count: 1, amount: 0, amountSquares: 0 },
        '1|steps[1]|a|sent': { count: 1, amount: 0, amountSquares: 0 },
        '1|steps[2]||sent': { count: 1, amount: 0, amountSquares: 0 },
        '1|steps[0]|b|assigned': { count: 1, amount: 0, amountSquares: 0 },
      });
    });

    it('counts opens and clicks once per send, machine opens apart, and every engagement kind', async () => {
      const flowId = fresh('unique');
      const c = fresh('cust');
      const run = await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
      const s = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: null, at: NOW + HOUR, delivered: true });
      const on = (name: string, extra: Record<string, unknown> = {}, at = NOW + 2 * HOUR) => track(c, name, { delivery_key: s.key, ...extra }, at);
      await record(store, [
        on('Email Delivered'),
        on('Email Delivered'),
        on('Email Opened', { machine_open: true }),
        on('Email Opened', { machine_open: true }),
        on('Email Opened'),
        on('Email Opened', { machine_open: false }),
        on('Email Opened'),
        on('Email Link Clicked', { url: 'https://shop.example/a' }),
        on('Email Link Clicked', { url: 'https://shop.example/b' }),
        on('Email Bounced', { bounce_type: 'soft' }),
        on('Email Marked as Spam'),
        on('Unsubscribed'),
        on('Unsubscribed'),
      ]);
      await foldAll(store, [flowDef(flowId)]);
      const rows = await store.metricsOf({ flowId });
      expect(Object.fromEntries(['delivered', 'opened', 'opened_machine', 'clicked', 'bounced', 'complained', 'unsubscribed', 'sent'].map((m) => [m, count(rows, 'steps[1]', '', m)]))).toEqual({
        delivered: 1,
        opened: 1,
        opened_machine: 1,
        clicked: 1,
        bounced: 1,
        complained: 1,
        unsubscribed: 1,
        sent: 1,
      });
    });

    it('an event naming another customer’s delivery key counts nothing, and leaves the real one countable', async () => {
      const flowId = fresh('forged');
      const victim = fresh('victim');
      const attacker = fresh('attacker');
      const run = await enter(store, flowId, { customerId: victim, n: 1, version: 1, at: NOW, holdout: false });
      const s = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: null, at: NOW + HOUR, delivered: true });
      await record(
        store,
        ['Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed'].map((name) => track(attacker, name, { delivery_key: s.key }, NOW + 2 * HOUR)),
      );
      // The attacker's goal after "clicking" the victim's email is no conversion of the flow: they have no touch.
      await record(store, [track(attacker, GOAL, { revenue: 100 }, NOW + 3 * HOUR)]);
      const flows = [flowDef(flowId)];
      await foldAll(store, flows);
      expect((await store.metricsOf({ flowId })).filter((r) => r.metric !== 'sent' && r.metric !== 'entered')).toEqual([]);
      await record(store, [track(victim, 'Email Opened', { delivery_key: s.key }, NOW + 4 * HOUR), track(victim, 'Email Link Clicked', { delivery_key: s.key }, NOW + 4 * HOUR + 1)]);
      await foldAll(store, flows);
      const rows = await store.metricsOf({ flowId });
      expect([count(rows, 'steps[1]', '', 'opened'), count(rows, 'steps[1]', '', 'clicked'), count(rows, 'steps[1]', '', 'converted')]).toEqual([1, 1, 0]);
    });

    it('credits a goal within the window to the last touch, not one outside it, once however often it is folded', async () => {
      const flowId = fresh('window');
      const flows = [flowDef(flowId, 2 * DAY)];
      const c = fresh('cust');
      const run = await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
      const first = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: null, at: NOW + HOUR, delivered: true });
      const second = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[3]', variant: null, at: NOW + DAY, delivered: true });
      // A click on the first send after the second makes the first the last touch.
      await record(store, [track(c, 'Email Link Clicked', { delivery_key: first.key }, NOW + DAY + HOUR), track(c, GOAL, { revenue: 30.5 }, NOW + DAY + 2 * HOUR)]);
      // Outside the window of every touch and of the entry: no conversion at all.
      await record(store, [track(c, GOAL, { revenue: 99 }, NOW + DAY + HOUR + 2 * DAY + 1)]);
      // A click before a goal but recorded after it does not make it a conversion: the fold has counted the goal by
      // then, and a rebuild must credit what the fold did.
      const d = fresh('delayed');
      const dRun = await enter(store, flowId, { customerId: d, n: 1, version: 1, at: NOW, holdout: false });
      const dSend = await claimAndDeliver(store, flowId, dRun, { nodeId: 'steps[1]', variant: null, at: NOW + HOUR, delivered: true });
      await record(store, [track(d, GOAL, { revenue: 7 }, NOW + 3 * DAY), track(d, 'Email Link Clicked', { delivery_key: dSend.key }, NOW + 2 * DAY)]);
      await foldAll(store, flows);
      await foldAll(store, flows);
      await forgetCursor();
      await foldAll(store, flows);
      expect(byKey(await store.metricsOf({ flowId }))).toEqual({
        '1|||entered': { count: 2, amount: 0, amountSquares: 0 },
        '1|steps[1]||sent': { count: 2, amount: 0, amountSquares: 0 },
        '1|steps[3]||sent': { count: 1, amount: 0, amountSquares: 0 },
        '1|steps[1]||clicked': { count: 2, amount: 0, amountSquares: 0 },
        '1|||converted': { count: 1, amount: 30.5, amountSquares: 30.5 * 30.5 },
        '1|steps[1]||converted': { count: 1, amount: 30.5, amountSquares: 30.5 * 30.5 },
      });
      expect(second.key).not.toBe(first.key);
    });

    it('credits a holdout entry at flow level, within the window only', async () => {
      const flowId = fresh('holdout');
      const flows = [flowDef(flowId, DAY)];
      const held = fresh('held');
      const late = fresh('late');
      await enter(store, flowId, { customerId: held, n: 1, version: 1, at: NOW, holdout: true });
      await enter(store, flowId, { customerId: late, n: 1, version: 1, at: NOW, holdout: true });
      await record(store, [track(held, GOAL, { total: 42 }, NOW + DAY), track(late, GOAL, { total: 42 }, NOW + DAY + 1)]);
      await foldAll(store, flows);
      expect(byKey(await store.metricsOf({ flowId }))).toEqual({
        [`1||${HOLDOUT_VARIANT}|entered`]: { count: 2, amount: 0, amountSquares: 0 },
        [`1||${HOLDOUT_VARIANT}|converted`]: { count: 1, amount: 42, amountSquares: 42 * 42 },
      });
    });

    it('counters after a simulated population equal the test’s independent count; refolds and a rebuild keep them', async () => {
      const flowId = fresh('sim');
      const windowMs = 2 * DAY;
      const flows = [flowDef(flowId, windowMs)];
      const log = await simulate(store, flowId, SEED);
      const expected = independentCount(log, windowMs);
      await foldAll(store, flows);
      const context = `seed ${SEED} (replay with FUZZ_SEED=${SEED})`;
      const check = async (what: string) => {
        expect({ what, context, counters: byKey(await store.metricsOf({ flowId })) }).toEqual({ what, context, counters: summed(expected) });
      };
      await check('incremental');
      // The report over some days only: the days of the sends and entries, not of their engagement.
      const from = Math.floor(NOW / DAY) + 3;
      const to = from + 2;
      expect(byKey(await store.metricsOf({ flowId, since: from * DAY + 5 * HOUR, until: to * DAY + 23 * HOUR }))).toEqual(summed(expected, from, to));
      expect(Object.keys(summed(expected)).some((k) => k.endsWith('|converted'))).toBe(true);
      await forgetCursor();
      await foldAll(store, flows);
      await check('folded again');
      await store.rebuildMetrics(flows);
      await foldAll(store, flows);
      await check('rebuilt');
    });

    it('two stores folding and rebuilding at once count each event once', async () => {
      const flowId = fresh('race');
      const windowMs = 3 * DAY;
      const flows = [flowDef(flowId, windowMs)];
      const log = await simulate(store, flowId, SEED + 1, 12);
      const expected = summed(independentCount(log, windowMs));
      const other = await backend.open();
      await Promise.all([store.foldMetrics({ flows, limit: 7 }), other.foldMetrics({ flows, limit: 5 }), other.foldMetrics({ flows, limit: 11 })]);
      await foldAll(store, flows);
      expect(byKey(await store.metricsOf({ flowId }))).toEqual(expected);
      await Promise.all([store.rebuildMetrics(flows), other.foldMetrics({ flows, limit: 3 }), other.rebuildMetrics(flows)]);
      await foldAll(other, flows);
      expect(byKey(await other.metricsOf({ flowId }))).toEqual(expected);
    });

    if (backend.name === 'postgres') {
      it('does not pass an event whose transaction commits after a later one (PostgreSQL hands ids out before commit)', async () => {
        const flowId = fresh('inflight');
        const flows = [flowDef(flowId)];
        const c = fresh('cust');
        const run = await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
        const s = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: null, at: NOW + HOUR, delivered: true });
        await foldAll(store, flows);
        const client = new pg.Client({ connectionString: backend.env.DATABASE_URL });
        await client.connect();
        try {
          await client.query('begin');
          await client.query(
            `insert into events (message_id, type, customer_id, user_id, anonymous_id, name, properties, traits, context, timestamp, received_at, dispatched)
             values ($1, 'track', $2, $2, null, 'Email Opened', $3, '{}', '{}', $4, $4, true)`,
            [fresh('msg'), c, JSON.stringify({ delivery_key: s.key }), NOW + 2 * HOUR],
          );
          // A later event commits first, with a higher id.
          await record(store, [track(c, 'Email Link Clicked', { delivery_key: s.key }, NOW + 3 * HOUR)]);
          const early = await store.foldMetrics({ flows });
          expect(early.caughtUp).toBe(false);
          await client.query('commit');
        } finally {
          await client.end();
        }
        await foldAll(store, flows);
        const rows = await store.metricsOf({ flowId });
        expect([count(rows, 'steps[1]', '', 'opened'), count(rows, 'steps[1]', '', 'clicked')]).toEqual([1, 1]);
      });
    }

    it('erase removes the customer’s assignments, conversions and send events, export lists them, the counters stay', async () => {
      const flowId = fresh('erase');
      const flows = [flowDef(flowId)];
      const c = fresh('gone');
      const run = await enter(store, flowId, { customerId: c, n: 1, version: 1, at: NOW, holdout: false });
      const s = await claimAndDeliver(store, flowId, run, { nodeId: 'steps[1]', variant: 'a', at: NOW + HOUR, delivered: true });
      await store.recordAssignment({ experimentId: `${flowId}-exp`, customerId: c, variant: 'a', assignedAt: NOW, flowId, flowVersion: 1, stepId: 'steps[0]', workflowId: run.workflowId });
      const [goalId] = await record(store, [track(c, GOAL, { revenue: 20 }, NOW + 2 * HOUR)]);
      await record(store, [track(c, 'Email Opened', { delivery_key: s.key }, NOW + HOUR + 1), track(c, 'Email Link Clicked', { delivery_key: s.key }, NOW + HOUR + 2)]);
      await foldAll(store, flows);
      expect(goalId).toBeGreaterThan(0);
      const before = await store.metricsOf({ flowId });
      expect(count(before, 'steps[1]', 'a', 'converted')).toBe(1);

      const document = await store.exportCustomer(c);
      expect(document.experimentAssignments.map((a) => [a.experimentId, a.variant])).toEqual([[`${flowId}-exp`, 'a']]);
      expect(document.conversions.map((x) => [x.flowId, x.deliveryKey, x.workflowId, x.revenue])).toEqual([[flowId, s.key, run.workflowId, 20]]);
      expect(document.sendEvents.map((e) => [e.deliveryKey, e.kind]).sort()).toEqual([
        [s.key, 'clicked'],
        [s.key, 'opened'],
      ]);

      const result = await store.eraseCustomer(c, { at: NOW + DAY, requestedBy: 'test' });
      expect(result.removed).toMatchObject({ experiment_assignments: 1, conversions: 1, send_events: 2 });
      const raw = openRawDatabase(backend);
      try {
        expect(await raw.query('select * from experiment_assignments where customer_id = ?', [c])).toEqual([]);
        expect(await raw.query('select * from conversions where customer_id = ?', [c])).toEqual([]);
        expect(await raw.query('select * from send_events where delivery_key = ?', [s.key])).toEqual([]);
        expect(await raw.scan([c])).toEqual([]);
      } finally {
        await raw.close();
      }
      expect(await store.metricsOf({ flowId })).toEqual(before);
    });
  });
}
