// The report counters (issue 16): per flow, version, step, variant, metric and UTC day, kept as things happen — entries,
// assignments and sends in the transaction that records them, engagement and conversions by folding the events table in
// id order — so a report reads a few rows however many sends there were, and a rebuild can count them all again.
//
// What a counter has counted is kept beside it (send_events: one unique open, click, bounce... per send; conversions:
// one per goal event and flow), so folding an event twice — a crash after the commit, two processes, a rebuild racing
// the fold — counts it once. The fold's place (metrics_state) moves in the transaction that counts, under a lock on
// that row on PostgreSQL (SQLite's write transactions are serial).
import { sql, type Kysely, type Transaction } from 'kysely';
import { attributionWindowMs, creditConversion, flowsWithGoal, type ClickTouch, type EntryTouch, type SendTouch } from '../core/attribution';
import { isMachineOpen } from '../core/behavior';
import { HOLDOUT_VARIANT } from '../core/experiment-assignment';
import type { FlowDefinition } from '../core/flow-types';
import type { StoreDialect } from './migrations';
import { parseJson } from './rows';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

export const METRIC_NAMES = [
  'entered',
  'assigned',
  'sent',
  'delivered',
  'opened',
  'opened_machine',
  'clicked',
  'bounced',
  'complained',
  'unsubscribed',
  'converted',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** One counter summed over the days asked for. Flow-level rows have step '' (entered, converted by entry). */
export interface MetricRow {
  flowId: string;
  flowVersion: number;
  /** the step (node id) of the send or ab_split; '' for the flow itself */
  stepId: string;
  /** the experiment variant; '' outside experiments; HOLDOUT_VARIANT for holdout entries and their conversions */
  variant: string;
  metric: MetricName;
  count: number;
  /** revenue summed (converted; 0 for the other metrics) */
  amount: number;
  /** the sum of each conversion's revenue squared, for a variance */
  amountSquares: number;
}

export interface MetricsQuery {
  flowId?: string;
  /** epoch ms: from the UTC day holding it */
  since?: number;
  /** epoch ms: through the UTC day holding it */
  until?: number;
}

export interface MetricsFold {
  /** events read and counted (engagement and goal events; others are skipped without reading) */
  events: number;
  /** conversions credited in this fold */
  conversions: number;
  /** the last event id folded */
  cursor: number;
  /** false when events may be left that are not settled yet (PostgreSQL: a transaction writing events was in flight) */
  caughtUp: boolean;
}

export const DAY_MS = 86_400_000;

/** Days since 1970-01-01, UTC. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** The engagement events a send counts once each, and the metric each counts as (opens: see engagementMetric). */
export const ENGAGEMENT_METRICS: Readonly<Record<string, MetricName>> = {
  'Email Delivered': 'delivered',
  'Email Opened': 'opened',
  'Email Link Clicked': 'clicked',
  'Email Bounced': 'bounced',
  'Email Marked as Spam': 'complained',
  Unsubscribed: 'unsubscribed',
};

/** An open the ESP flagged as a machine's (Apple Mail Privacy Protection, scanners) counts apart from people's. */
function engagementMetric(name: string | null, properties: Record<string, unknown>): MetricName | undefined {
  if (name === null) return undefined;
  const metric = ENGAGEMENT_METRICS[name];
  return metric === 'opened' && isMachineOpen({ name, properties }) ? 'opened_machine' : metric;
}

const CHUNK = 500;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// --- counters ------------------------------------------------------------------------------

interface CounterKey {
  flowId: string;
  flowVersion: number;
  stepId: string;
  variant: string;
  metric: MetricName;
  day: number;
}

/** Increments gathered in a transaction and written at its end, in one order, so concurrent writers cannot deadlock. */
class Tally {
  private readonly counts = new Map<string, CounterKey & { count: number; amount: number; amountSquares: number }>();

  /** `times` more of the counter; `amount` (a conversion's revenue) adds to its sum and its square to the squares. */
  add(key: CounterKey, amount = 0, times = 1): void {
    const id = JSON.stringify([key.flowId, key.flowVersion, key.stepId, key.variant, key.metric, key.day]);
    const entry = this.counts.get(id) ?? { ...key, count: 0, amount: 0, amountSquares: 0 };
    entry.count += times;
    entry.amount += amount;
    entry.amountSquares += amount * amount;
    this.counts.set(id, entry);
  }

  async write(trx: Db): Promise<void> {
    const rows = [...this.counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
    for (const batch of chunks(rows, 200)) {
      await trx
        .insertInto('flow_metrics')
        .values(
          batch.map((r) => ({
            flow_id: r.flowId,
            flow_version: r.flowVersion,
            step_id: r.stepId,
            variant: r.variant,
            metric: r.metric,
            day: r.day,
            count: r.count,
            amount: r.amount,
            amount_squares: r.amountSquares,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['flow_id', 'flow_version', 'step_id', 'variant', 'metric', 'day']).doUpdateSet((eb) => ({
            count: eb('flow_metrics.count', '+', eb.ref('excluded.count')),
            amount: eb('flow_metrics.amount', '+', eb.ref('excluded.amount')),
            amount_squares: eb('flow_metrics.amount_squares', '+', eb.ref('excluded.amount_squares')),
          })),
        )
        .execute();
    }
  }
}

const isTrue = (value: unknown) => value === true || value === 1;

/** The columns of a flow_entries row an entry counts by. */
export interface EnteredRow {
  flow_id: string;
  flow_version: number;
  entered_at: number;
  holdout: number | boolean;
}

/** The columns of a sends row a send counts by. */
export interface SentRow {
  flow_id: string;
  flow_version: number;
  node_id: string;
  variant: string | null;
  scheduled_at: number;
}

function entryKey(row: EnteredRow, metric: MetricName): CounterKey {
  return { flowId: row.flow_id, flowVersion: Number(row.flow_version), stepId: '', variant: isTrue(row.holdout) ? HOLDOUT_VARIANT : '', metric, day: dayOf(Number(row.entered_at)) };
}

function sendKey(row: SentRow, metric: MetricName): CounterKey {
  return { flowId: row.flow_id, flowVersion: Number(row.flow_version), stepId: row.node_id, variant: row.variant ?? '', metric, day: dayOf(Number(row.scheduled_at)) };
}

/** `entered`, in the transaction that inserted the flow_entries row (only when it did). */
export async function countEntry(trx: Db, row: EnteredRow): Promise<void> {
  const tally = new Tally();
  tally.add(entryKey(row, 'entered'));
  await tally.write(trx);
}

/** `sent`, in the transaction that moved the send from pending to sent (only when it did). */
export async function countSent(trx: Db, row: SentRow): Promise<void> {
  const tally = new Tally();
  tally.add(sendKey(row, 'sent'));
  await tally.write(trx);
}

/** `assigned` at the ab_split step and variant, in the transaction that inserted the assignment (only when it did). */
export async function countAssignment(trx: Db, assignment: { flowId: string; flowVersion: number; stepId: string; variant: string; assignedAt: number }): Promise<void> {
  const tally = new Tally();
  tally.add({ flowId: assignment.flowId, flowVersion: assignment.flowVersion, stepId: assignment.stepId, variant: assignment.variant, metric: 'assigned', day: dayOf(assignment.assignedAt) });
  await tally.write(trx);
}

// --- the fold's place ------------------------------------------------------------------------

interface FoldState {
  cursor: number;
  settledThrough: number;
  pendingThrough: number;
  pendingWriters: string[];
}

/**
 * Takes the fold's row for this transaction: an UPDATE, so on PostgreSQL a second folder waits here for the first to
 * commit and then reads its cursor, and on SQLite the transaction is the writer from its first statement.
 */
async function lockState(trx: Transaction<Database>, now: number): Promise<FoldState> {
  await trx.insertInto('metrics_state').values({ id: 1, event_cursor: 0, updated_at: now }).onConflict((oc) => oc.column('id').doNothing()).execute();
  const row = await trx.updateTable('metrics_state').set({ updated_at: now }).where('id', '=', 1).returningAll().executeTakeFirstOrThrow();
  return {
    cursor: Number(row.event_cursor),
    settledThrough: Number(row.settled_through),
    pendingThrough: Number(row.pending_through),
    pendingWriters: row.pending_writers === '' ? [] : row.pending_writers.split(','),
  };
}

async function newestEventId(trx: Db): Promise<number> {
  const row = await trx.selectFrom('events').select((eb) => eb.fn.max('id').as('top')).executeTakeFirst();
  return Number(row?.top ?? 0);
}

/** This database's transactions (other than ours) that hold a write lock on events: the ones that may still commit some. */
async function eventWriters(trx: Db): Promise<string[]> {
  const { rows } = await sql<{ vt: string }>`
    select distinct virtualtransaction as vt from pg_locks
    where locktype = 'relation' and relation = to_regclass('events')
      and database = (select oid from pg_database where datname = current_database())
      and mode = 'RowExclusiveLock' and granted and pid <> pg_backend_pid()
    order by vt`.execute(trx);
  return rows.map((r) => r.vt);
}

async function anyRunning(trx: Db, transactions: string[]): Promise<boolean> {
  const { rows } = await sql<{ one: number }>`select 1 as one from pg_locks where virtualtransaction = any(${transactions}::text[]) limit 1`.execute(trx);
  return rows.length > 0;
}

/**
 * How far the fold may read. SQLite commits one writer at a time, so every event id it can see is final. PostgreSQL
 * hands ids out before commit: an event with a lower id can commit after one with a higher id is seen, and a cursor
 * moved past it would never count it. So the newest id counts as settled only once every transaction that was writing
 * events when it was read has ended — at once when none was, else at a later fold (pending_*). Reading the newest id
 * first and the writers second is what makes this sound: a writer that began after the first read gets a higher id.
 */
async function settledThrough(trx: Transaction<Database>, dialect: StoreDialect, state: FoldState): Promise<{ through: number; settled: boolean }> {
  if (dialect !== 'postgres') return { through: await newestEventId(trx), settled: true };
  let settled = state.settledThrough;
  if (state.pendingWriters.length === 0 || !(await anyRunning(trx, state.pendingWriters))) settled = Math.max(settled, state.pendingThrough);
  const top = await newestEventId(trx);
  const writers = await eventWriters(trx);
  if (writers.length === 0) settled = Math.max(settled, top);
  await trx
    .updateTable('metrics_state')
    .set({ settled_through: settled, pending_through: top, pending_writers: writers.join(',') })
    .where('id', '=', 1)
    .execute();
  return { through: settled, settled: settled >= top };
}

// --- the fold --------------------------------------------------------------------------------

interface FoldEvent {
  id: number;
  messageId: string;
  customerId: string;
  type: string;
  name: string | null;
  properties: Record<string, unknown>;
  timestamp: number;
}

interface SendRow extends SentRow {
  delivery_key: string;
  customer_id: string;
  status: string;
}

async function sendsByKey(trx: Db, keys: string[]): Promise<Map<string, SendRow>> {
  const sends = new Map<string, SendRow>();
  for (const batch of chunks([...new Set(keys)])) {
    const rows = await trx
      .selectFrom('sends')
      .select(['delivery_key', 'customer_id', 'status', 'flow_id', 'flow_version', 'node_id', 'variant', 'scheduled_at'])
      .where('delivery_key', 'in', batch)
      .execute();
    for (const row of rows) sends.set(row.delivery_key, row);
  }
  return sends;
}

/** The customers the ids were merged into (identities), for ids that were merged. */
async function mergedInto(trx: Db, ids: string[]): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  for (const batch of chunks([...new Set(ids)])) {
    const rows = await trx.selectFrom('identities').select(['alias_id', 'customer_id']).where('alias_id', 'in', batch).execute();
    for (const row of rows) owners.set(row.alias_id, row.customer_id);
  }
  return owners;
}

/**
 * Counts each engagement event once per send and kind. The event's delivery_key is a claim (a webhook payload, a link):
 * it counts only when that send went to the event's own customer (or to an id since merged into them).
 */
async function foldEngagement(trx: Db, events: FoldEvent[], tally: Tally): Promise<void> {
  const claimed = events.flatMap((event) => {
    const metric = engagementMetric(event.name, event.properties);
    const key = event.properties.delivery_key;
    return metric !== undefined && typeof key === 'string' && key !== '' ? [{ event, metric, key }] : [];
  });
  if (claimed.length === 0) return;
  const sends = await sendsByKey(trx, claimed.map((c) => c.key));
  const owners = await mergedInto(trx, [...sends.values()].map((s) => s.customer_id));
  const fresh = new Map<string, { send: SendRow; metric: MetricName; at: number }>();
  for (const { event, metric, key } of claimed) {
    const send = sends.get(key);
    if (!send) continue;
    const owner = owners.get(send.customer_id) ?? send.customer_id;
    if (send.customer_id !== event.customerId && owner !== event.customerId) continue;
    const id = `${key}\u0000${metric}`;
    if (!fresh.has(id)) fresh.set(id, { send, metric, at: event.timestamp });
  }
  for (const batch of chunks([...fresh.values()])) {
    const inserted = await trx
      .insertInto('send_events')
      .values(batch.map((f) => ({ delivery_key: f.send.delivery_key, kind: f.metric, at: f.at })))
      .onConflict((oc) => oc.columns(['delivery_key', 'kind']).doNothing())
      .returning(['delivery_key', 'kind'])
      .execute();
    for (const row of inserted) tally.add(sendKey(fresh.get(`${row.delivery_key}\u0000${row.kind}`)!.send, row.kind as MetricName));
  }
}

interface EntryRow extends EnteredRow {
  workflow_id: string;
}

/** What the customer got of the flow up to the goal event, for core/attribution; each list oldest first. */
async function touchesOf(trx: Db, flow: FlowDefinition, event: FoldEvent, windowMs: number) {
  const aliases = await trx.selectFrom('identities').select('alias_id').where('customer_id', '=', event.customerId).execute();
  const ids = [event.customerId, ...aliases.map((a) => a.alias_id)];
  const sends: SendRow[] = [];
  const entries: EntryRow[] = [];
  for (const batch of chunks(ids)) {
    sends.push(
      ...(await trx
        .selectFrom('sends')
        .select(['delivery_key', 'customer_id', 'status', 'flow_id', 'flow_version', 'node_id', 'variant', 'scheduled_at'])
        .where('flow_id', '=', flow.id)
        .where('customer_id', 'in', batch)
        .where('status', '=', 'sent')
        .where('scheduled_at', '<=', event.timestamp)
        .execute()),
    );
    entries.push(
      ...(await trx
        .selectFrom('flow_entries')
        .select(['workflow_id', 'flow_id', 'flow_version', 'entered_at', 'holdout'])
        .where('flow_id', '=', flow.id)
        .where('customer_id', 'in', batch)
        .where('entered_at', '<=', event.timestamp)
        .execute()),
    );
  }
  sends.sort((a, b) => Number(a.scheduled_at) - Number(b.scheduled_at) || (a.delivery_key < b.delivery_key ? -1 : a.delivery_key > b.delivery_key ? 1 : 0));
  entries.sort((a, b) => Number(a.entered_at) - Number(b.entered_at) || (a.workflow_id < b.workflow_id ? -1 : a.workflow_id > b.workflow_id ? 1 : 0));
  // Clicks recorded before the goal event: a click reported later does not change a conversion already counted, so a
  // rebuild credits the same send the fold did.
  const clickRows = await trx
    .selectFrom('events')
    .select(['properties', 'timestamp'])
    .where('customer_id', '=', event.customerId)
    .where('type', '=', 'track')
    .where('name', '=', 'Email Link Clicked')
    .where('timestamp', '>=', event.timestamp - windowMs)
    .where('timestamp', '<=', event.timestamp)
    .where('id', '<', event.id)
    .orderBy('id')
    .execute();
  const clicks: ClickTouch[] = clickRows.flatMap((row) => {
    const key = parseJson<Record<string, unknown>>(row.properties).delivery_key;
    return typeof key === 'string' ? [{ deliveryKey: key, at: Number(row.timestamp) }] : [];
  });
  return {
    sends,
    entries,
    touches: {
      sends: sends.map((s): SendTouch => ({ deliveryKey: s.delivery_key, at: Number(s.scheduled_at) })),
      clicks,
      entries: entries.map((e): EntryTouch => ({ workflowId: e.workflow_id, at: Number(e.entered_at), holdout: isTrue(e.holdout) })),
    },
  };
}

/** Credits each goal event once per flow it is a goal of (core/attribution); returns how many it credited. */
async function foldConversions(trx: Db, events: FoldEvent[], flows: readonly FlowDefinition[], tally: Tally): Promise<number> {
  let credited = 0;
  for (const event of events) {
    for (const flow of flowsWithGoal(flows, event)) {
      const done = await trx.selectFrom('conversions').select('flow_id').where('event_message_id', '=', event.messageId).where('flow_id', '=', flow.id).executeTakeFirst();
      if (done) continue;
      const { sends, entries, touches } = await touchesOf(trx, flow, event, attributionWindowMs(flow));
      const credit = creditConversion(flow, event, touches);
      if (!credit) continue;
      const inserted = await trx
        .insertInto('conversions')
        .values({
          event_message_id: event.messageId,
          flow_id: flow.id,
          customer_id: event.customerId,
          workflow_id: credit.workflowId,
          delivery_key: credit.deliveryKey,
          at: event.timestamp,
          revenue: credit.revenue,
        })
        .onConflict((oc) => oc.columns(['event_message_id', 'flow_id']).doNothing())
        .returning('flow_id')
        .executeTakeFirst();
      if (!inserted) continue;
      credited += 1;
      const send = credit.deliveryKey === null ? undefined : sends.find((s) => s.delivery_key === credit.deliveryKey);
      if (send) tally.add(sendKey(send, 'converted'), credit.revenue);
      const entry = credit.workflowId === null ? undefined : entries.find((e) => e.workflow_id === credit.workflowId);
      if (entry) tally.add(entryKey(entry, 'converted'), credit.revenue);
    }
  }
  return credited;
}

/** The event names the fold reads: engagement, and the goal events of `flows`. */
function foldedNames(flows: readonly FlowDefinition[]): string[] {
  const names = new Set(Object.keys(ENGAGEMENT_METRICS));
  for (const flow of flows) for (const matcher of flow.exit.onEvents) names.add(matcher.event);
  return [...names].sort();
}

/** One transaction: up to `limit` events after the cursor, counted, and the cursor moved past them. */
async function foldBatch(db: Kysely<Database>, dialect: StoreDialect, flows: readonly FlowDefinition[], limit: number, now: number): Promise<MetricsFold & { full: boolean }> {
  return db.transaction().execute(async (trx) => {
    const state = await lockState(trx, now);
    const { through, settled } = await settledThrough(trx, dialect, state);
    const rows = await trx
      .selectFrom('events')
      .select(['id', 'message_id', 'customer_id', 'type', 'name', 'properties', 'timestamp'])
      .where('id', '>', state.cursor)
      .where('id', '<=', through)
      .where('type', '=', 'track')
      .where('name', 'in', foldedNames(flows))
      .orderBy('id')
      .limit(limit)
      .execute();
    const events: FoldEvent[] = rows.map((r) => ({
      id: Number(r.id),
      messageId: r.message_id,
      customerId: r.customer_id,
      type: r.type,
      name: r.name,
      properties: parseJson<Record<string, unknown>>(r.properties),
      timestamp: Number(r.timestamp),
    }));
    const tally = new Tally();
    await foldEngagement(trx, events, tally);
    const conversions = await foldConversions(trx, events, flows, tally);
    await tally.write(trx);
    const full = events.length === limit;
    const cursor = Math.max(state.cursor, full ? events[events.length - 1]!.id : through);
    await trx.updateTable('metrics_state').set({ event_cursor: cursor }).where('id', '=', 1).execute();
    return { events: events.length, conversions, cursor, caughtUp: !full && settled, full };
  });
}

/**
 * Folds the events after the cursor into the counters, `limit` at a time (one transaction each), until none is left
 * that is settled. `flows` are the flows as they are now: their goal events decide what converts.
 */
export async function foldMetrics(db: Kysely<Database>, dialect: StoreDialect, options: { flows: readonly FlowDefinition[]; limit?: number; now: number }): Promise<MetricsFold> {
  const limit = Math.max(1, options.limit ?? 1000);
  const total: MetricsFold = { events: 0, conversions: 0, cursor: 0, caughtUp: false };
  for (;;) {
    const batch = await foldBatch(db, dialect, options.flows, limit, options.now);
    total.events += batch.events;
    total.conversions += batch.conversions;
    total.cursor = batch.cursor;
    total.caughtUp = batch.caughtUp;
    if (!batch.full) return total;
  }
}

/**
 * Starts the counters over: empties them and what they counted, counts entries, assignments and sends again from their
 * tables, and refolds every event. Its first transaction holds the counters (PostgreSQL: an EXCLUSIVE lock, which waits
 * for sends and entries being counted and holds new ones back until it commits), so each is counted once, by the
 * recount or after it. Reports read partial engagement until the refold is done.
 */
export async function rebuildMetrics(db: Kysely<Database>, dialect: StoreDialect, options: { flows: readonly FlowDefinition[]; limit?: number; now: number }): Promise<MetricsFold> {
  await db.transaction().execute(async (trx) => {
    await lockState(trx, options.now);
    if (dialect === 'postgres') await sql`lock table flow_metrics in exclusive mode`.execute(trx);
    await trx.deleteFrom('flow_metrics').execute();
    await trx.deleteFrom('send_events').execute();
    await trx.deleteFrom('conversions').execute();
    await trx.updateTable('metrics_state').set({ event_cursor: 0 }).where('id', '=', 1).execute();
    const tally = new Tally();
    // The day as SQL computes it (integer division): the same as dayOf for times after 1970.
    const dayFrom = (column: 'entered_at' | 'scheduled_at' | 'assigned_at') => sql<number>`${sql.ref(column)} / ${sql.lit(DAY_MS)}`;
    const entered = await trx
      .selectFrom('flow_entries')
      .select((eb) => ['flow_id', 'flow_version', 'holdout', dayFrom('entered_at').as('day'), eb.fn.countAll<number>().as('n')])
      .groupBy(['flow_id', 'flow_version', 'holdout'])
      .groupBy(dayFrom('entered_at'))
      .execute();
    for (const row of entered) {
      const variant = isTrue(row.holdout) ? HOLDOUT_VARIANT : '';
      tally.add({ flowId: row.flow_id, flowVersion: Number(row.flow_version), stepId: '', variant, metric: 'entered', day: Number(row.day) }, 0, Number(row.n));
    }
    const sent = await trx
      .selectFrom('sends')
      .select((eb) => ['flow_id', 'flow_version', 'node_id', 'variant', dayFrom('scheduled_at').as('day'), eb.fn.countAll<number>().as('n')])
      .where('status', '=', 'sent')
      .groupBy(['flow_id', 'flow_version', 'node_id', 'variant'])
      .groupBy(dayFrom('scheduled_at'))
      .execute();
    for (const row of sent) {
      tally.add({ flowId: row.flow_id, flowVersion: Number(row.flow_version), stepId: row.node_id, variant: row.variant ?? '', metric: 'sent', day: Number(row.day) }, 0, Number(row.n));
    }
    const assigned = await trx
      .selectFrom('experiment_assignments')
      .select((eb) => ['flow_id', 'flow_version', 'step_id', 'variant', dayFrom('assigned_at').as('day'), eb.fn.countAll<number>().as('n')])
      .groupBy(['flow_id', 'flow_version', 'step_id', 'variant'])
      .groupBy(dayFrom('assigned_at'))
      .execute();
    for (const row of assigned) {
      tally.add({ flowId: row.flow_id, flowVersion: Number(row.flow_version), stepId: row.step_id, variant: row.variant, metric: 'assigned', day: Number(row.day) }, 0, Number(row.n));
    }
    await tally.write(trx);
  });
  return foldMetrics(db, dialect, options);
}

/** The counters summed over the days asked for, by flow, version, step, variant and metric, in that order. */
export async function metricsOf(db: Db, query: MetricsQuery = {}): Promise<MetricRow[]> {
  let select = db
    .selectFrom('flow_metrics')
    .select((eb) => [
      'flow_id',
      'flow_version',
      'step_id',
      'variant',
      'metric',
      eb.fn.sum<number>('count').as('count'),
      eb.fn.sum<number>('amount').as('amount'),
      eb.fn.sum<number>('amount_squares').as('amount_squares'),
    ])
    .groupBy(['flow_id', 'flow_version', 'step_id', 'variant', 'metric']);
  if (query.flowId !== undefined) select = select.where('flow_id', '=', query.flowId);
  if (query.since !== undefined) select = select.where('day', '>=', dayOf(query.since));
  if (query.until !== undefined) select = select.where('day', '<=', dayOf(query.until));
  const rows = await select.execute();
  const text = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  // Sorted here: PostgreSQL orders text by its collation, SQLite by bytes.
  return rows
    .map((r) => ({
      flowId: r.flow_id,
      flowVersion: Number(r.flow_version),
      stepId: r.step_id,
      variant: r.variant,
      metric: r.metric as MetricName,
      count: Number(r.count),
      amount: Number(r.amount),
      amountSquares: Number(r.amount_squares),
    }))
    .sort((a, b) => text(a.flowId, b.flowId) || a.flowVersion - b.flowVersion || text(a.stepId, b.stepId) || text(a.variant, b.variant) || text(a.metric, b.metric));
}
