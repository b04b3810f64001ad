// The offer code part of the store contract, on SQLite and PostgreSQL: an import adds a pool's codes in one
// transaction (codes already there skipped, a bad pool id or code writing nothing); a claim takes the pool's next
// unclaimed code and gives a send (a delivery key) the same code on every retry; 200 claims racing from two stores
// (two connection pools on PostgreSQL) for 150 codes get 150 distinct codes and 50 empties; a release frees a skipped
// send's codes but not those of a send in the ledger; a run's waiting sends free theirs when it ends; the pool figures
// and the low flag; a customer's export lists their codes and their erasure unlinks them, keeping them claimed.
import type { KyselyStore } from '../../store/kysely-store';
import type { OfferCodeClaim } from '../../store/offer-codes-store';
import type { ClaimSendInput } from '../../store/store';
import { isMicroflowsError } from '../../core/errors';
import { openRawDatabase } from '../support/database-scan';
import { storeBackends } from '../support/store-backends';

const NOW = Date.UTC(2026, 10, 2, 9);
let sequence = 0;
/** A pool, customer or key no other test in the suite (which shares one database) uses. */
const fresh = (name: string) => `${name}-${process.pid}-${++sequence}`;
const codesOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

function send(customerId: string, deliveryKey: string): ClaimSendInput {
  return { deliveryKey, customerId, flowId: 'winback', flowVersion: 1, workflowId: deliveryKey.replace(/\/steps\[\d+\]$/, ''), nodeId: 'steps[0]', template: 'winback', to: `${customerId}@example.com`, subject: 'We miss you', transport: 'outbox', scheduledAt: NOW };
}

async function errorOf(promise: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isMicroflowsError(err)) return { status: err.status, message: err.message };
    throw err;
  }
  throw new Error('expected a rejection');
}

const codeOf = (claim: OfferCodeClaim): string | null => claim.code;

for (const backend of storeBackends('offer-codes contract')) {
  backend.describe(`offer codes: ${backend.name}`, () => {
    let store: KyselyStore;
    let other: KyselyStore;

    beforeAll(async () => {
      store = await backend.open();
      other = await backend.open();
    });
    afterAll(() => backend.dispose());

    const claim = (pool: string, deliveryKey: string, customerId = 'c-1', by: KyselyStore = store) => by.claimOfferCode({ pool, deliveryKey, customerId, at: NOW });

    /** The pool's figures as the store keeps them are the counts of its rows, read past the store. */
    async function expectFiguresOfRows(pool: string): Promise<void> {
      const raw = openRawDatabase(backend);
      try {
        const [row] = await raw.query<{ total: unknown; claimed: unknown }>('select count(*) as total, count(claimed_at) as claimed from offer_codes where pool = ?', [pool]);
        const [total, claimed] = [Number(row!.total), Number(row!.claimed)];
        expect((await store.offerCodePools()).find((p) => p.pool === pool)).toEqual({ pool, total, claimed, remaining: total - claimed, low: expect.any(Boolean) });
      } finally {
        await raw.close();
      }
    }

    it('imports a pool in one transaction, skipping the codes it holds, and counts what is unclaimed', async () => {
      const pool = fresh('winback');
      expect(await store.importOfferCodes(pool, codesOf('W', 5), NOW)).toEqual({ pool, imported: 5, alreadyThere: 0, unclaimed: 5 });
      expect(codeOf(await claim(pool, fresh('send')))).toBe('W-0000');
      // Three new, two there already (one of them claimed), one given twice.
      expect(await store.importOfferCodes(pool, ['W-0003', 'W-0000', 'W-0100', 'W-0101', 'W-0101', 'W-0102'], NOW)).toEqual({ pool, imported: 3, alreadyThere: 3, unclaimed: 7 });
      await expectFiguresOfRows(pool);
      // The same codes in another pool are other codes.
      expect(await store.importOfferCodes(fresh('vip'), ['W-0000'], NOW)).toMatchObject({ imported: 1, alreadyThere: 0 });
    });

    it('refuses a bad pool id or code, naming it, and writes nothing', async () => {
      const before = await store.tableCounts();
      expect(await errorOf(store.importOfferCodes('Winback 10', ['A'], NOW))).toEqual({ status: 400, message: expect.stringMatching(/^pool: "Winback 10" is not a pool id/) });
      expect(await errorOf(store.importOfferCodes(fresh('p'), ['GOOD', 'BAD CODE', 'GOOD-2'], NOW))).toEqual({ status: 400, message: expect.stringMatching(/^codes\[1\]: the code "BAD CODE" holds a space/) });
      expect(await errorOf(store.claimOfferCode({ pool: '-x', deliveryKey: 'k', customerId: 'c', at: NOW }))).toMatchObject({ status: 400 });
      expect(await store.tableCounts()).toEqual(before);
    });

    it('gives a send the next code of the pool, and the same one on every retry; each pool its own', async () => {
      const [winback, vip] = [fresh('winback'), fresh('vip')];
      await store.importOfferCodes(winback, codesOf('W', 3), NOW);
      await store.importOfferCodes(vip, codesOf('V', 3), NOW);
      const [first, second] = [fresh('flow/winback/ana/1/steps[0]'), fresh('flow/winback/bo/1/steps[0]')];
      expect(await claim(winback, first)).toEqual({ code: 'W-0000', stats: { pool: winback, total: 3, claimed: 1, remaining: 2, low: true } });
      expect(codeOf(await claim(winback, first))).toBe('W-0000');
      expect(codeOf(await claim(winback, second))).toBe('W-0001');
      expect(codeOf(await claim(vip, first))).toBe('V-0000');
      // A retry from another process (another connection pool) finds its code too.
      expect(codeOf(await claim(winback, first, 'c-1', other))).toBe('W-0000');
      expect((await store.offerCodePools()).filter((p) => p.pool === winback || p.pool === vip)).toEqual(
        [
          { pool: vip, total: 3, claimed: 1, remaining: 2, low: true },
          { pool: winback, total: 3, claimed: 2, remaining: 1, low: true },
        ].sort((a, b) => (a.pool < b.pool ? -1 : 1)),
      );
    });

    it('gives nothing from an empty or unknown pool, and says which', async () => {
      const pool = fresh('small');
      await store.importOfferCodes(pool, ['ONLY-ONE'], NOW);
      expect(codeOf(await claim(pool, fresh('k')))).toBe('ONLY-ONE');
      expect(await claim(pool, fresh('k'))).toEqual({ code: null, reason: `pool "${pool}" is empty: all 1 codes are claimed`, stats: { pool, total: 1, claimed: 1, remaining: 0, low: true } });
      const unknown = fresh('never-imported');
      expect(await claim(unknown, fresh('k'))).toEqual({ code: null, reason: `pool "${unknown}" has no codes: import them with microflows codes import ${unknown} <file>`, stats: { pool: unknown, total: 0, claimed: 0, remaining: 0, low: true } });
    });

    it('hands 150 codes to 200 racing sends once each: 150 distinct codes, 50 empties, retries racing too', async () => {
      const pool = fresh('race');
      const codes = codesOf('R', 150);
      await store.importOfferCodes(pool, codes, NOW);
      const keys = Array.from({ length: 200 }, (_, i) => `flow/race/c${i}/1/steps[0]#${sequence}`);
      // Each send asks twice at once (an attempt and its retry), from the two stores in turn.
      const claims = await Promise.all(keys.flatMap((key, i) => [claim(pool, key, `c${i}`, i % 2 ? store : other), claim(pool, key, `c${i}`, i % 2 ? other : store)]));
      const bySend = keys.map((_, i) => [codeOf(claims[2 * i]!), codeOf(claims[2 * i + 1]!)] as const);
      // A send's two asks got the same answer.
      expect(bySend.filter(([a, b]) => a !== b)).toEqual([]);
      const given = bySend.map(([code]) => code).filter((code): code is string => code !== null);
      expect(given).toHaveLength(150);
      expect(new Set(given).size).toBe(150);
      expect([...given].sort()).toEqual(codes);
      expect(claims.filter((c) => c.code === null).every((c) => c.code === null && c.reason === `pool "${pool}" is empty: all 150 codes are claimed`)).toBe(true);
      expect((await store.offerCodePools()).find((p) => p.pool === pool)).toEqual({ pool, total: 150, claimed: 150, remaining: 0, low: true });
      await expectFiguresOfRows(pool);
    });

    it('releases a skipped send’s codes for others, but keeps those of a send in the ledger', async () => {
      const pool = fresh('release');
      await store.importOfferCodes(pool, codesOf('L', 2), NOW);
      const [skipped, sent] = [fresh('flow/release/a/1/steps[0]'), fresh('flow/release/b/1/steps[0]')];
      expect(codeOf(await claim(pool, skipped, 'a'))).toBe('L-0000');
      expect(codeOf(await claim(pool, sent, 'b'))).toBe('L-0001');
      await store.claimSend(send('b', sent));
      expect(await store.releaseOfferCodes(sent)).toBe(0);
      expect(await store.releaseOfferCodes(skipped)).toBe(1);
      expect(await store.releaseOfferCodes(skipped)).toBe(0);
      expect((await store.offerCodePools()).find((p) => p.pool === pool)).toMatchObject({ claimed: 1, remaining: 1 });
      // The freed code goes to the next send; the kept one stays its send's.
      expect(codeOf(await claim(pool, fresh('k'), 'c'))).toBe('L-0000');
      expect(codeOf(await claim(pool, sent, 'b'))).toBe('L-0001');
      await expectFiguresOfRows(pool);
    });

    it('frees the codes of a run’s waiting sends when the run ends, and only theirs', async () => {
      const pool = fresh('waits');
      await store.importOfferCodes(pool, codesOf('S', 3), NOW);
      const run = fresh('flow/waits/ana/1');
      const waiting = `${run}/steps[0]`;
      const otherRun = `${fresh('flow/waits/bo/1')}/steps[0]`;
      await claim(pool, waiting, 'ana');
      await claim(pool, otherRun, 'bo');
      const deferred = await store.reserveSend(
        { ...send('ana', waiting), group: 'marketing', topic: null, category: 'marketing' },
        { since: NOW - 86_400_000, dueAt: NOW, priority: 10, decide: () => ({ action: 'wait', until: NOW + 3_600_000, reason: 'cap full' }) },
      );
      expect(deferred).toMatchObject({ outcome: 'wait' });
      // Deferred, the send keeps its code for its next ask.
      expect(codeOf(await claim(pool, waiting, 'ana'))).toBe('S-0000');
      await store.releaseSendWaits(run);
      expect(await store.sendWaitsOf('ana')).toEqual([]);
      expect((await store.offerCodePools()).find((p) => p.pool === pool)).toMatchObject({ claimed: 1, remaining: 2 });
      expect(codeOf(await claim(pool, otherRun, 'bo'))).toBe('S-0001');
      await expectFiguresOfRows(pool);
    });

    it('exports a customer’s codes and erases the link, keeping the codes claimed', async () => {
      const pool = fresh('privacy');
      await store.importOfferCodes(pool, codesOf('P', 3), NOW);
      const customer = fresh('dana');
      const key = `flow/privacy/${customer}/1/steps[0]`;
      await store.claimOfferCode({ pool, deliveryKey: key, customerId: customer, at: NOW + 5 });
      await store.claimOfferCode({ pool: fresh('unknown'), deliveryKey: key, customerId: customer, at: NOW + 6 });
      // A claim is all the store holds about them: that is enough to know them.
      const exported = await store.exportCustomer(customer, { at: NOW + 10 });
      expect(exported.offerCodes).toEqual([{ pool, code: 'P-0000', claimedAt: NOW + 5 }]);
      expect(JSON.parse(JSON.stringify(exported.offerCodes))).toEqual(exported.offerCodes);

      const erased = await store.eraseCustomer(customer, { at: NOW + 20, requestedBy: 'cli' });
      expect(erased.removed.offer_codes_unlinked).toBe(1);
      const raw = openRawDatabase(backend);
      try {
        expect(await raw.scan([customer])).toEqual([]);
        const rows = await raw.query<{ code: string; customer_id: string | null; delivery_key: string | null; claimed_at: unknown }>('select code, customer_id, delivery_key, claimed_at from offer_codes where pool = ? order by id', [pool]);
        expect(rows.map((r) => [r.code, r.customer_id, r.delivery_key, r.claimed_at === null ? null : Number(r.claimed_at)])).toEqual([
          ['P-0000', null, null, NOW + 5],
          ['P-0001', null, null, null],
          ['P-0002', null, null, null],
        ]);
      } finally {
        await raw.close();
      }
      expect(await errorOf(store.exportCustomer(customer))).toMatchObject({ status: 404 });
      // The erased customer's code is never handed out again: the next sends get the others, then nothing.
      expect([codeOf(await claim(pool, fresh('k'))), codeOf(await claim(pool, fresh('k'))), codeOf(await claim(pool, fresh('k')))]).toEqual(['P-0001', 'P-0002', null]);
      await expectFiguresOfRows(pool);
    });
  });
}
