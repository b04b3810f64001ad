// The overlap and fatigue audit's reads (core/audit): a period's decisions, sends and unsubscribe/complaint events,
// each read bounded so one audit of a long period cannot hold the whole history in memory.
import type { Kysely, Transaction } from 'kysely';
import { AUDIT_EVENT_NAMES, type AuditRows } from '../core/audit';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

/** The most rows of each kind one audit reads; past it the report says it is truncated. */
export const AUDIT_ROW_LIMIT = 500_000;

/** The rows of [from, to] (inclusive, by each row's own time), at most `limit` of each kind (oldest first). */
export async function auditRows(db: Db, period: { from: number; to: number }, limit = AUDIT_ROW_LIMIT): Promise<AuditRows> {
  // One more than the bound tells a full read from a cut one.
  const [decisions, sends, events] = await Promise.all([
    db
      .selectFrom('decisions')
      .select(['customer_id', 'flow_id', 'outcome', 'reason', 'at'])
      .where('at', '>=', period.from)
      .where('at', '<=', period.to)
      .orderBy('at')
      .orderBy('id')
      .limit(limit + 1)
      .execute(),
    db
      .selectFrom('sends')
      .select(['customer_id', 'flow_id', 'status', 'scheduled_at'])
      .where('scheduled_at', '>=', period.from)
      .where('scheduled_at', '<=', period.to)
      .orderBy('scheduled_at')
      .orderBy('delivery_key')
      .limit(limit + 1)
      .execute(),
    db
      .selectFrom('events')
      .select(['customer_id', 'name', 'timestamp'])
      .where('type', '=', 'track')
      .where('name', 'in', [...AUDIT_EVENT_NAMES])
      .where('timestamp', '>=', period.from)
      .where('timestamp', '<=', period.to)
      .orderBy('timestamp')
      .orderBy('id')
      .limit(limit + 1)
      .execute(),
  ]);
  return {
    decisions: decisions.slice(0, limit).map((r) => ({ customerId: r.customer_id, flowId: r.flow_id, outcome: r.outcome, reason: r.reason, at: Number(r.at) })),
    sends: sends.slice(0, limit).map((r) => ({ customerId: r.customer_id, flowId: r.flow_id, status: r.status, scheduledAt: Number(r.scheduled_at) })),
    events: events.slice(0, limit).map((r) => ({ customerId: r.customer_id, name: r.name ?? '', at: Number(r.timestamp) })),
    truncated: decisions.length > limit || sends.length > limit || events.length > limit,
  };
}
