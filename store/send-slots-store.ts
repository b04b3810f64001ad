// Reserving a send under frequency caps (core/send-slot): the cap check, the waiting list and the ledger row are one
// transaction, serialized per customer, so two runs sending to one customer at the same moment see each other's
// reservation whatever crashes in between. PostgreSQL serializes with a transaction-scoped advisory lock on the
// customer; SQLite has one writer (and one connection per process), so its transactions are already serial.
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { SlotVerdict, WaitingSlot } from '../core/send-slot';
import type { TemplateCategory } from '../core/suppression';
import type { Database, SendWaitsTable } from './schema';
import type { StoreDialect } from './migrations';
import { toSend } from './rows';
import type { ClaimSendInput, ReserveSendResult, SendSlotCounts, SendSlotRow } from './store';

type Db = Kysely<Database> | Transaction<Database>;

function toWaitingSlot(row: Selectable<SendWaitsTable>): WaitingSlot {
  return {
    deliveryKey: row.delivery_key,
    flowId: row.flow_id,
    priority: Number(row.priority),
    dueAt: Number(row.due_at),
    until: Number(row.until),
    group: row.flow_group,
    topic: row.topic,
    category: row.category as TemplateCategory,
  };
}

export function sendRow(send: ClaimSendInput, counts: SendSlotCounts | null) {
  return {
    delivery_key: send.deliveryKey,
    customer_id: send.customerId,
    flow_id: send.flowId,
    flow_version: send.flowVersion,
    workflow_id: send.workflowId,
    node_id: send.nodeId,
    template: send.template,
    to_address: send.to,
    subject: send.subject,
    status: 'pending',
    transport: send.transport,
    scheduled_at: send.scheduledAt,
    sent_at: null,
    message_id: null,
    fallbacks: JSON.stringify(send.fallbacks ?? []),
    flow_group: counts?.group ?? null,
    topic: counts?.topic ?? null,
    category: counts?.category ?? null,
    experiment_id: send.experimentId ?? null,
    variant: send.variant ?? null,
  };
}

async function lockCustomer(trx: Transaction<Database>, dialect: StoreDialect, customerId: string): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(hashtextextended(${`microflows:send-slots:${customerId}`}, 0))`.execute(trx);
}

/**
 * Claims `send` if `decide` lets it take a slot; otherwise records it as waiting (or drops its waiting row when it
 * gives up). A send already claimed under this delivery key is returned as it is, without asking again: the retry
 * of a reserved send keeps its slot.
 */
export function reserveSend(
  db: Kysely<Database>,
  dialect: StoreDialect,
  send: ClaimSendInput & SendSlotCounts,
  slot: { since: number; dueAt: number; priority: number; decide: (recent: SendSlotRow[], waiting: WaitingSlot[]) => SlotVerdict },
): Promise<ReserveSendResult> {
  return db.transaction().execute(async (trx) => {
    await lockCustomer(trx, dialect, send.customerId);
    const existing = await trx.selectFrom('sends').selectAll().where('delivery_key', '=', send.deliveryKey).executeTakeFirst();
    if (existing) return { outcome: 'existing', record: toSend(existing) };
    const recent = await trx
      .selectFrom('sends')
      .select(['delivery_key', 'flow_id', 'template', 'scheduled_at', 'flow_group', 'topic', 'category'])
      .where('customer_id', '=', send.customerId)
      .where('scheduled_at', '>', slot.since)
      .execute();
    const waiting = await trx.selectFrom('send_waits').selectAll().where('customer_id', '=', send.customerId).execute();
    const verdict = slot.decide(
      recent.map((r) => ({
        deliveryKey: r.delivery_key,
        flowId: r.flow_id,
        template: r.template,
        at: Number(r.scheduled_at),
        group: r.flow_group,
        topic: r.topic,
        category: r.category as TemplateCategory | null,
      })),
      waiting.map(toWaitingSlot),
    );
    if (verdict.action === 'claim') {
      const inserted = await trx.insertInto('sends').values(sendRow(send, send)).returningAll().executeTakeFirstOrThrow();
      await trx.deleteFrom('send_waits').where('delivery_key', '=', send.deliveryKey).execute();
      return { outcome: 'claimed', record: toSend(inserted) };
    }
    if (verdict.action === 'skip') {
      await trx.deleteFrom('send_waits').where('delivery_key', '=', send.deliveryKey).execute();
      return { outcome: 'skip', reason: verdict.reason };
    }
    await trx
      .insertInto('send_waits')
      .values({
        delivery_key: send.deliveryKey,
        customer_id: send.customerId,
        workflow_id: send.workflowId,
        flow_id: send.flowId,
        priority: slot.priority,
        due_at: slot.dueAt,
        until: verdict.until,
        flow_group: send.group,
        topic: send.topic,
        category: send.category,
      })
      // The first due time stays: defer.max counts from it.
      .onConflict((oc) => oc.column('delivery_key').doUpdateSet({ until: verdict.until, priority: slot.priority }))
      .execute();
    return { outcome: 'wait', until: verdict.until, reason: verdict.reason };
  });
}

/** A run that ended (converted, preempted, stopped) no longer waits for any slot. */
export async function releaseSendWaits(db: Db, workflowId: string): Promise<void> {
  await db.deleteFrom('send_waits').where('workflow_id', '=', workflowId).execute();
}

/** The customer's waiting sends (for export and tests), earliest retry first. */
export async function sendWaitsOf(db: Db, customerId: string): Promise<WaitingSlot[]> {
  const rows = await db.selectFrom('send_waits').selectAll().where('customer_id', '=', customerId).orderBy('until').orderBy('delivery_key').execute();
  return rows.map(toWaitingSlot);
}
