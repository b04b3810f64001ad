// The queries behind the Store's erase and export (issue 14, GDPR articles 15, 17 and 20): everything held about one
// customer, read out as one document or removed in one transaction, with the erasure logged without personal data.
import { sendWaitsOf } from './send-slots-store';
import type { WaitingSlot } from '../core/send-slot';
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { MicroflowsError } from '../core/errors';
import type { Profile } from '../core/profile';
import { addressHash, type SuppressionEntry } from '../core/suppression';
import { parseJson, toDecision, toFlowEntry, toOutboxMessage, toProfile, toSend, toStoredEvent } from './rows';
import type { Database } from './schema';
import { toSuppressionEntry } from './suppressions-store';
import { toAssignment, type ExperimentAssignment } from './experiments-store';
import { offerCodesOf, unlinkOfferCodes, type ClaimedOfferCode } from './offer-codes-store';
import type { DecisionRecord, FlowEntry, OutboxMessage, SendRecord, StoredEvent } from './store';

type Db = Kysely<Database> | Transaction<Database>;

/** Nothing is held about this id: no profile, event, identity link, run, decision or send names it. */
export class CustomerNotFoundError extends MicroflowsError {
  override readonly status = 404;
  override readonly code = 'customer_not_found';
  override name = 'CustomerNotFoundError';
}

export interface EraseOptions {
  /** When the erasure happens, epoch ms: the log's time and the added suppressions' creation time. */
  at: number;
  /** Who asked: the admin key's id (`env:MICROFLOWS_ADMIN_KEY` for the environment's key) or `cli`. */
  requestedBy: string;
  /** The customer's pseudonymous subject in data_keys (the payload codec's key per customer): its row is deleted. */
  dataKeySubject?: string;
}

/** Rows removed (or, for suppressions, anonymized and added) per table: what the erasure log keeps. */
export type ErasureCounts = Record<string, number>;

export interface ErasureResult {
  /** The erasures row's id: what to quote when asked whether the erasure happened, since nothing else names them. */
  erasureId: string;
  removed: ErasureCounts;
  /** The customer's flow runs that had not ended (read before the delete): Temporal still runs them. */
  runningWorkflowIds: string[];
  /** How many email addresses were found and are now suppressed as hashes only. */
  addresses: number;
}

/** One row of the erasure log. */
export interface ErasureRecord {
  id: string;
  at: number;
  requestedBy: string;
  removed: ErasureCounts;
}

/** An event as exported: as stored, less the dispatch bookkeeping. */
export type ExportedEvent = Omit<StoredEvent, 'dispatched'>;

export interface ConsentChangeRecord {
  id: number;
  kind: string;
  granted: boolean;
  source: string;
  at: number;
  recordedAt: number;
  eventMessageId: string | null;
}

/** Everything the store holds about one customer, in a stable order (oldest first within each list). */
export interface CustomerExport {
  format: 'microflows-customer-export/1';
  customerId: string;
  exportedAt: number;
  profile: Profile | null;
  /** The ids (anonymousIds, aliases) merged into this customer, sorted. */
  aliases: string[];
  /** Every event of every type, oldest first (by time, then arrival). */
  events: ExportedEvent[];
  /** The consent trail, in the order it was recorded. */
  consentChanges: ConsentChangeRecord[];
  /** Current segment memberships, by segment id. */
  segments: Array<{ segmentId: string; enteredAt: number }>;
  flowEntries: FlowEntry[];
  decisions: DecisionRecord[];
  sends: SendRecord[];
  /** The messages written to the outbox for them (transport `outbox`), oldest first. */
  outbox: OutboxMessage[];
  /** The suppression list's entries for their addresses. */
  suppressions: SuppressionEntry[];
  /** Their sends a frequency cap is holding back, earliest retry first. */
  sendWaits: WaitingSlot[];
  /** Their variant in each experiment (ab_split), oldest first. */
  experimentAssignments: ExperimentAssignment[];
  /** Their goal events the reports credited to a flow (and to a send or run of it), oldest first. */
  conversions: ConversionRecord[];
  /** What the reports counted of their sends (one delivered, opened, clicked... each), oldest first. */
  sendEvents: Array<{ deliveryKey: string; kind: string; at: number }>;
  /** The offer codes their sends were given (`{{offer_code}}`), oldest claim first. */
  offerCodes: ClaimedOfferCode[];
}

/** A goal event credited to a flow (store/metrics-store, core/attribution). */
export interface ConversionRecord {
  eventMessageId: string;
  flowId: string;
  /** the run credited at flow level, if any */
  workflowId: string | null;
  /** the send credited (last touch), if any */
  deliveryKey: string | null;
  at: number;
  revenue: number;
}

/** Keeps `in (…)` lists under SQLite's bound-parameter limit and PostgreSQL's 65535. */
const CHUNK = 500;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** How an address is compared and hashed: as core/suppression addressHash reads it. */
function normalAddress(address: string): string {
  return address.trim().toLowerCase();
}

/** The customer an id names now (an alias resolves to its customer), and every id merged into them. */
async function customerIds(db: Db, id: string): Promise<{ customerId: string; aliases: string[] }> {
  const owner = await db.selectFrom('identities').select('customer_id').where('alias_id', '=', id).executeTakeFirst();
  const customerId = owner?.customer_id ?? id;
  const rows = await db.selectFrom('identities').select('alias_id').where('customer_id', '=', customerId).orderBy('alias_id').execute();
  return { customerId, aliases: rows.map((r) => r.alias_id) };
}

/** Whether any table the customer's activity writes names them: a customer with none of these is unknown. */
async function isKnown(db: Db, customerId: string, aliases: string[]): Promise<boolean> {
  if (aliases.length > 0) return true;
  for (const table of ['profiles', 'events', 'flow_entries', 'decisions', 'sends', 'send_waits', 'experiment_assignments', 'conversions', 'offer_codes'] as const) {
    const row = await db.selectFrom(table).select('customer_id').where('customer_id', '=', customerId).limit(1).executeTakeFirst();
    if (row) return true;
  }
  return false;
}

/** The customer's addresses, normalized: the profile's email and every address a send of theirs went to. */
async function addressesOf(db: Db, customerId: string): Promise<string[]> {
  const found = new Set<string>();
  const profile = await db.selectFrom('profiles').select('email').where('customer_id', '=', customerId).executeTakeFirst();
  if (profile?.email) found.add(normalAddress(profile.email));
  const sent = await db.selectFrom('sends').select('to_address').distinct().where('customer_id', '=', customerId).execute();
  for (const row of sent) if (row.to_address.trim() !== '') found.add(normalAddress(row.to_address));
  return [...found].sort();
}

async function suppressionsFor(db: Db, addresses: string[]): Promise<SuppressionEntry[]> {
  const hashes = addresses.map(addressHash);
  const entries: SuppressionEntry[] = [];
  for (const batch of chunks(hashes)) {
    const rows = await db.selectFrom('suppressions').selectAll().where('address_hash', 'in', batch).execute();
    entries.push(...rows.map(toSuppressionEntry));
  }
  return entries.sort((a, b) => (a.addressHash === b.addressHash ? a.reason.localeCompare(b.reason) : a.addressHash < b.addressHash ? -1 : 1));
}

const deleted = (result: { numDeletedRows: bigint }): number => Number(result.numDeletedRows);

/**
 * Erases a customer in one transaction: their events (and any event naming one of their ids), profile, identity links,
 * segment state, runs, decisions, sends and outbox messages (by the sends' delivery keys and by address), consent
 * trail, experiment assignments, credited conversions, what the reports counted of their sends (send_events), and
 * payload data key; their offer codes stay claimed but no longer name them; the report counters are aggregates that name no one, and stay. Their suppression entries keep the address hash only, and an `erased` entry (scope all)
 * joins them, so a later import of the address stays suppressed. Logs one erasures row that names no one.
 */
export async function eraseCustomer(db: Kysely<Database>, dialect: 'sqlite' | 'postgres', id: string, options: EraseOptions): Promise<ErasureResult> {
  return db.transaction().execute(async (trx) => {
    const { customerId, aliases } = await customerIds(trx, id);
    const ids = [customerId, ...aliases];
    // PostgreSQL: the same advisory locks ingest takes on the ids it touches (store/kysely-store lockIdentities), so an
    // event for this customer commits wholly before the erasure or after it. SQLite's write transactions are serial.
    if (dialect === 'postgres') {
      await sql`select pg_advisory_xact_lock(h) from (select distinct hashtext(x) as h from unnest(${ids}::text[]) as x order by h) as locks`.execute(trx);
    }
    if (!(await isKnown(trx, customerId, aliases))) {
      throw new CustomerNotFoundError(`nothing is held about customer "${id}": no profile, event, identity link, run or send names this id`);
    }
    const addresses = await addressesOf(trx, customerId);
    const running = await trx
      .selectFrom('flow_entries')
      .select('workflow_id')
      .where('customer_id', '=', customerId)
      .where('ended_at', 'is', null)
      .orderBy('workflow_id')
      .execute();

    const removed: ErasureCounts = {};
    const count = (table: string, n: number) => (removed[table] = (removed[table] ?? 0) + n);

    count('events', deleted(await trx.deleteFrom('events').where('customer_id', '=', customerId).executeTakeFirst()));
    for (const batch of chunks(ids)) {
      const naming = await trx
        .deleteFrom('events')
        .where((eb) => eb.or([eb('user_id', 'in', batch), eb('anonymous_id', 'in', batch)]))
        .executeTakeFirst();
      count('events', deleted(naming));
    }
    count('profiles', deleted(await trx.deleteFrom('profiles').where('customer_id', '=', customerId).executeTakeFirst()));
    count('identities', deleted(await trx.deleteFrom('identities').where('customer_id', '=', customerId).executeTakeFirst()));
    for (const batch of chunks(ids)) count('identities', deleted(await trx.deleteFrom('identities').where('alias_id', 'in', batch).executeTakeFirst()));
    count('segment_members', deleted(await trx.deleteFrom('segment_members').where('customer_id', 'in', ids).executeTakeFirst()));
    count('segment_checks', deleted(await trx.deleteFrom('segment_checks').where('customer_id', 'in', ids).executeTakeFirst()));
    count('flow_entries', deleted(await trx.deleteFrom('flow_entries').where('customer_id', '=', customerId).executeTakeFirst()));
    count('decisions', deleted(await trx.deleteFrom('decisions').where('customer_id', '=', customerId).executeTakeFirst()));
    // The outbox and what the reports counted of each send before the sends: their rows are found through the sends'
    // delivery keys. The report counters themselves are aggregates that name no one, and stay.
    const sendKeys = trx.selectFrom('sends').select('delivery_key').where('customer_id', '=', customerId);
    count('outbox', deleted(await trx.deleteFrom('outbox').where('delivery_key', 'in', sendKeys).executeTakeFirst()));
    count('send_events', deleted(await trx.deleteFrom('send_events').where('delivery_key', 'in', sendKeys).executeTakeFirst()));
    for (const batch of chunks(addresses)) {
      count('outbox', deleted(await trx.deleteFrom('outbox').where(sql`lower(trim(to_address))`, 'in', batch).executeTakeFirst()));
      const keysByAddress = trx.selectFrom('sends').select('delivery_key').where(sql`lower(trim(to_address))`, 'in', batch);
      count('send_events', deleted(await trx.deleteFrom('send_events').where('delivery_key', 'in', keysByAddress).executeTakeFirst()));
    }
    count('sends', deleted(await trx.deleteFrom('sends').where('customer_id', '=', customerId).executeTakeFirst()));
    count('send_waits', deleted(await trx.deleteFrom('send_waits').where('customer_id', '=', customerId).executeTakeFirst()));
    for (const batch of chunks(addresses)) {
      count('sends', deleted(await trx.deleteFrom('sends').where(sql`lower(trim(to_address))`, 'in', batch).executeTakeFirst()));
    }
    count('consent_changes', deleted(await trx.deleteFrom('consent_changes').where('customer_id', 'in', ids).executeTakeFirst()));
    count('experiment_assignments', deleted(await trx.deleteFrom('experiment_assignments').where('customer_id', 'in', ids).executeTakeFirst()));
    count('conversions', deleted(await trx.deleteFrom('conversions').where('customer_id', 'in', ids).executeTakeFirst()));
    // Their offer codes stay claimed, so no one else is given a code they may still use, but no longer name them.
    removed.offer_codes_unlinked = await unlinkOfferCodes(trx, ids);

    // The hash stays, so nothing is ever sent to the address again unless an operator removes the entry.
    let anonymized = 0;
    let added = 0;
    for (const address of addresses) {
      const hash = addressHash(address);
      const cleared = await trx.updateTable('suppressions').set({ address: null }).where('address_hash', '=', hash).where('address', 'is not', null).executeTakeFirst();
      anonymized += Number(cleared.numUpdatedRows);
      const inserted = await trx
        .insertInto('suppressions')
        .values({ address_hash: hash, reason: 'erased', address: null, scope: 'all', source: 'erasure', created_at: options.at, expires_at: null })
        .onConflict((oc) => oc.columns(['address_hash', 'reason']).doNothing())
        .executeTakeFirst();
      added += Number(inserted.numInsertedOrUpdatedRows ?? 0);
    }
    removed.suppressions_anonymized = anonymized;
    removed.suppressions_added = added;
    removed.data_keys = options.dataKeySubject === undefined ? 0 : deleted(await trx.deleteFrom('data_keys').where('subject', '=', options.dataKeySubject).executeTakeFirst());

    const erasureId = randomUUID();
    await trx.insertInto('erasures').values({ id: erasureId, at: options.at, requested_by: options.requestedBy, removed: JSON.stringify(removed) }).execute();
    return { erasureId, removed, runningWorkflowIds: running.map((r) => r.workflow_id), addresses: addresses.length };
  });
}

/** The erasure log, newest first. */
export async function listErasures(db: Kysely<Database>): Promise<ErasureRecord[]> {
  const rows = await db.selectFrom('erasures').selectAll().orderBy('at', 'desc').orderBy('id').execute();
  return rows.map((row) => ({ id: row.id, at: Number(row.at), requestedBy: row.requested_by, removed: parseJson<ErasureCounts>(row.removed) }));
}

/** Everything held about a customer (an alias names its customer), read in one transaction; unknown: CustomerNotFoundError. */
export async function exportCustomer(db: Kysely<Database>, id: string, at: number): Promise<CustomerExport> {
  return db.transaction().execute(async (trx) => {
    const { customerId, aliases } = await customerIds(trx, id);
    if (!(await isKnown(trx, customerId, aliases))) {
      throw new CustomerNotFoundError(`nothing is held about customer "${id}": no profile, event, identity link, run or send names this id`);
    }
    const ids = [customerId, ...aliases];
    const profileRow = await trx.selectFrom('profiles').selectAll().where('customer_id', '=', customerId).executeTakeFirst();
    const events = await trx.selectFrom('events').selectAll().where('customer_id', '=', customerId).orderBy('timestamp').orderBy('id').execute();
    const consent = await trx.selectFrom('consent_changes').selectAll().where('customer_id', 'in', ids).orderBy('id').execute();
    const segments = await trx.selectFrom('segment_members').select(['segment_id', 'entered_at']).where('customer_id', '=', customerId).orderBy('segment_id').execute();
    const entries = await trx.selectFrom('flow_entries').selectAll().where('customer_id', '=', customerId).orderBy('entered_at').orderBy('id').execute();
    const decisions = await trx.selectFrom('decisions').selectAll().where('customer_id', '=', customerId).orderBy('id').execute();
    const sends = await trx.selectFrom('sends').selectAll().where('customer_id', '=', customerId).orderBy('scheduled_at').orderBy('delivery_key').execute();
    const outbox = await trx
      .selectFrom('outbox')
      .selectAll()
      .where('delivery_key', 'in', trx.selectFrom('sends').select('delivery_key').where('customer_id', '=', customerId))
      .orderBy('id')
      .execute();
    return {
      format: 'microflows-customer-export/1',
      customerId,
      exportedAt: at,
      profile: profileRow ? toProfile(profileRow) : null,
      aliases,
      events: events.map((row) => {
        const { dispatched: _dispatched, ...event } = toStoredEvent(row);
        return { ...event, id: Number(event.id), timestamp: Number(event.timestamp), receivedAt: Number(event.receivedAt) };
      }),
      consentChanges: consent.map((row) => ({
        id: Number(row.id),
        kind: row.kind,
        granted: Boolean(row.granted),
        source: row.source,
        at: Number(row.at),
        recordedAt: Number(row.recorded_at),
        eventMessageId: row.event_message_id,
      })),
      segments: segments.map((row) => ({ segmentId: row.segment_id, enteredAt: Number(row.entered_at) })),
      flowEntries: entries.map(toFlowEntry),
      decisions: decisions.map(toDecision),
      sends: sends.map(toSend),
      outbox: outbox.map(toOutboxMessage),
      suppressions: await suppressionsFor(trx, await addressesOf(trx, customerId)),
      sendWaits: await sendWaitsOf(trx, customerId),
      experimentAssignments: (await trx.selectFrom('experiment_assignments').selectAll().where('customer_id', 'in', ids).orderBy('assigned_at').orderBy('experiment_id').execute()).map(toAssignment),
      conversions: (await trx.selectFrom('conversions').selectAll().where('customer_id', 'in', ids).orderBy('at').orderBy('event_message_id').orderBy('flow_id').execute()).map((row) => ({
        eventMessageId: row.event_message_id,
        flowId: row.flow_id,
        workflowId: row.workflow_id,
        deliveryKey: row.delivery_key,
        at: Number(row.at),
        revenue: Number(row.revenue),
      })),
      sendEvents: (
        await trx
          .selectFrom('send_events')
          .selectAll()
          .where('delivery_key', 'in', trx.selectFrom('sends').select('delivery_key').where('customer_id', '=', customerId))
          .orderBy('at')
          .orderBy('delivery_key')
          .orderBy('kind')
          .execute()
      ).map((row) => ({ deliveryKey: row.delivery_key, kind: row.kind, at: Number(row.at) })),
      offerCodes: await offerCodesOf(trx, ids),
    };
  });
}
