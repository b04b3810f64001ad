// Offer code pools (core/offer-codes): a pool's codes imported in one transaction, one code claimed per send and pool
// (the same one again for a retried send, never one code for two sends), a skipped send's codes released, and each
// pool's figures, kept in offer_code_pools by the same transactions. PostgreSQL claims with FOR UPDATE SKIP LOCKED, so
// concurrent sends pick different codes without waiting on each other's; SQLite has one writer, and its claim is one
// (immediate) transaction.
import { sql, type Kysely, type Transaction } from 'kysely';
import { BadInputError } from '../core/errors';
import { offerCodeProblem, offerPoolProblem, offerPoolStats, type OfferPoolStats } from '../core/offer-codes';
import { chunks } from './chunks';
import type { StoreDialect } from './migrations';
import type { Database } from './schema';

type Db = Kysely<Database> | Transaction<Database>;

export interface OfferCodeImport {
  pool: string;
  /** Codes added to the pool. */
  imported: number;
  /** Codes given that the pool already held (or that were given twice): left as they were. */
  alreadyThere: number;
  /** The pool's unclaimed codes after the import. */
  unclaimed: number;
}

export interface OfferCodeClaimRequest {
  pool: string;
  /** The send's delivery key: a retried send (the same key) gets the code it claimed before. */
  deliveryKey: string;
  customerId: string;
  /** When the code is claimed, epoch ms. */
  at: number;
}

/** A claimed code, or none (the pool is empty or unknown, `reason` says which); with the pool's figures after the claim. */
export type OfferCodeClaim = { code: string; stats: OfferPoolStats } | { code: null; reason: string; stats: OfferPoolStats };

/** A code as a customer's export lists it. */
export interface ClaimedOfferCode {
  pool: string;
  code: string;
  claimedAt: number;
}

function checkPool(pool: string, field: string): void {
  const problem = offerPoolProblem(pool);
  if (problem) throw new BadInputError(problem, field);
}

/**
 * Adds `codes` to `pool` in one transaction: a code the pool holds already is skipped (counted in `alreadyThere`), not
 * an error. Every code is checked first (core/offer-codes): a bad one throws BadInputError naming its index and
 * nothing is written.
 */
export async function importOfferCodes(db: Kysely<Database>, pool: string, codes: readonly string[], at: number): Promise<OfferCodeImport> {
  checkPool(pool, 'pool');
  codes.forEach((code, i) => {
    const problem = offerCodeProblem(code);
    if (problem) throw new BadInputError(problem, `codes[${i}]`);
  });
  const distinct = [...new Set(codes)];
  return db.transaction().execute(async (trx) => {
    let imported = 0;
    for (const batch of chunks(distinct)) {
      const result = await trx
        .insertInto('offer_codes')
        .values(batch.map((code) => ({ pool, code, imported_at: at, customer_id: null, delivery_key: null, claimed_at: null })))
        .onConflict((oc) => oc.columns(['pool', 'code']).doNothing())
        .executeTakeFirst();
      imported += Number(result.numInsertedOrUpdatedRows ?? 0);
    }
    const figures = await trx
      .insertInto('offer_code_pools')
      .values({ pool, total: imported, claimed: 0 })
      .onConflict((oc) => oc.column('pool').doUpdateSet((eb) => ({ total: eb('offer_code_pools.total', '+', imported) })))
      .returning(['total', 'claimed'])
      .executeTakeFirstOrThrow();
    return { pool, imported, alreadyThere: codes.length - imported, unclaimed: Number(figures.total) - Number(figures.claimed) };
  });
}

/** The pool's figures; an unknown pool is an empty one. */
export async function poolStats(db: Db, pool: string): Promise<OfferPoolStats> {
  const row = await db.selectFrom('offer_code_pools').select(['total', 'claimed']).where('pool', '=', pool).executeTakeFirst();
  return offerPoolStats(pool, Number(row?.total ?? 0), Number(row?.claimed ?? 0));
}

/** Moves the pools' claimed counts by `delta` per code (one entry per code whose claim changed). */
async function countClaims(trx: Transaction<Database>, pools: string[], delta: 1 | -1): Promise<void> {
  const byPool = new Map<string, number>();
  for (const pool of pools) byPool.set(pool, (byPool.get(pool) ?? 0) + delta);
  // In pool order: two releases of several pools lock their rows in one order.
  for (const [pool, change] of [...byPool].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    await trx
      .updateTable('offer_code_pools')
      .set((eb) => ({ claimed: eb('claimed', '+', change) }))
      .where('pool', '=', pool)
      .execute();
  }
}

/**
 * Claims the pool's next unclaimed code for a send, or returns the code the send's delivery key holds already. The
 * claim is one UPDATE of the row its subquery picks: on PostgreSQL FOR UPDATE SKIP LOCKED passes over codes other
 * sends are claiming at that moment (and a code claimed since the statement began fails the re-check), so no code is
 * handed to two sends; an advisory lock on (pool, delivery key) makes two attempts of one send take turns. The pool's
 * figures come from its offer_code_pools row, counted in the same transaction (last, so its lock is held briefly).
 */
export async function claimOfferCode(db: Kysely<Database>, dialect: StoreDialect, request: OfferCodeClaimRequest): Promise<OfferCodeClaim> {
  checkPool(request.pool, 'pool');
  const { code, stats } = await db.transaction().execute(async (trx) => {
    if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtextextended(${`microflows:offer-code:${request.pool}:${request.deliveryKey}`}, 0))`.execute(trx);
    const held = await trx.selectFrom('offer_codes').select('code').where('delivery_key', '=', request.deliveryKey).where('pool', '=', request.pool).executeTakeFirst();
    if (held) return { code: held.code, stats: await poolStats(trx, request.pool) };
    const next = trx.selectFrom('offer_codes').select('id').where('pool', '=', request.pool).where('claimed_at', 'is', null).orderBy('id').limit(1);
    const claimed = await trx
      .updateTable('offer_codes')
      .set({ customer_id: request.customerId, delivery_key: request.deliveryKey, claimed_at: request.at })
      .where('id', '=', dialect === 'postgres' ? next.forUpdate().skipLocked() : next)
      .where('claimed_at', 'is', null)
      .returning('code')
      .executeTakeFirst();
    if (!claimed) return { code: null, stats: await poolStats(trx, request.pool) };
    const figures = await trx
      .updateTable('offer_code_pools')
      .set((eb) => ({ claimed: eb('claimed', '+', 1) }))
      .where('pool', '=', request.pool)
      .returning(['total', 'claimed'])
      .executeTakeFirstOrThrow();
    return { code: claimed.code, stats: offerPoolStats(request.pool, Number(figures.total), Number(figures.claimed)) };
  });
  if (code !== null) return { code, stats };
  const reason = stats.total === 0 ? `pool "${request.pool}" has no codes: import them with microflows codes import ${request.pool} <file>` : `pool "${request.pool}" is empty: all ${stats.total} codes are claimed`;
  return { code: null, reason, stats };
}

/**
 * Frees the codes a send claimed (it was skipped after claiming): other sends may take them. A send the ledger holds
 * (pending or sent) keeps its codes: it may have gone out with them (a retry can be skipped after its first attempt
 * delivered). How many were freed.
 */
export function releaseOfferCodes(db: Kysely<Database>, deliveryKey: string): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const freed = await trx
      .updateTable('offer_codes')
      .set({ customer_id: null, delivery_key: null, claimed_at: null })
      .where('delivery_key', '=', deliveryKey)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('sends').select('delivery_key').where('sends.delivery_key', '=', deliveryKey))))
      .returning('pool')
      .execute();
    await countClaims(trx, freed.map((r) => r.pool), -1);
    return freed.length;
  });
}

/** Frees the codes of a run's sends that wait for a slot (store/send-slots-store): the run ended, they will not go. */
export async function releaseWaitingOfferCodes(trx: Transaction<Database>, workflowId: string): Promise<number> {
  const freed = await trx
    .updateTable('offer_codes')
    .set({ customer_id: null, delivery_key: null, claimed_at: null })
    .where('delivery_key', 'in', trx.selectFrom('send_waits').select('delivery_key').where('workflow_id', '=', workflowId))
    .returning('pool')
    .execute();
  await countClaims(trx, freed.map((r) => r.pool), -1);
  return freed.length;
}

/** Every pool's figures, by pool id. */
export async function offerCodePools(db: Db): Promise<OfferPoolStats[]> {
  const rows = await db.selectFrom('offer_code_pools').selectAll().execute();
  // Sorted here, not by ORDER BY: PostgreSQL orders text by its collation, SQLite by bytes.
  return rows.map((r) => offerPoolStats(r.pool, Number(r.total), Number(r.claimed))).sort((a, b) => (a.pool < b.pool ? -1 : a.pool > b.pool ? 1 : 0));
}

/** The codes claimed for any of `customerIds`, oldest claim first (a customer's export). */
export async function offerCodesOf(db: Db, customerIds: string[]): Promise<ClaimedOfferCode[]> {
  const rows = await db.selectFrom('offer_codes').select(['pool', 'code', 'claimed_at']).where('customer_id', 'in', customerIds).orderBy('claimed_at').orderBy('id').execute();
  return rows.map((r) => ({ pool: r.pool, code: r.code, claimedAt: Number(r.claimed_at) }));
}

/**
 * Erasure: the codes claimed for `customerIds` no longer name them (customer and delivery key, which holds the
 * workflow id, cleared) and stay claimed, so they are never handed out again. How many were unlinked.
 */
export async function unlinkOfferCodes(db: Db, customerIds: string[]): Promise<number> {
  const result = await db.updateTable('offer_codes').set({ customer_id: null, delivery_key: null }).where('customer_id', 'in', customerIds).executeTakeFirst();
  return Number(result.numUpdatedRows);
}
