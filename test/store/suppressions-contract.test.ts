// The suppression part of the store contract, on SQLite and PostgreSQL: entries keyed by the address hash and reason
// (an erased entry, address gone, still suppresses its address), listed a page at a time, removed by address or hash,
// imported all or nothing, exported whole; and the entries recorded events make in their own transaction, on each
// backend's ingest path (prepared statements on SQLite, Kysely on PostgreSQL).
import { addressHash, type SuppressionEntry } from '../../core/suppression';
import type { NewEvent } from '../../core/event';
import type { KyselyStore } from '../../store/kysely-store';
import { storeBackends } from '../support/store-backends';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 1);
let sequence = 0;
/** An address no other test in the suite (which shares one database) uses. */
const fresh = (name: string) => `${name}-${process.pid}-${++sequence}@example.com`;

function entry(address: string, reason: SuppressionEntry['reason'], overrides: Partial<SuppressionEntry> = {}): SuppressionEntry {
  return { addressHash: addressHash(address), address, reason, scope: reason === 'complaint' || reason === 'unsubscribe' ? 'marketing' : 'all', source: 'test', createdAt: NOW, expiresAt: null, ...overrides };
}

function event(customerId: string, name: string | null, fields: Partial<NewEvent> = {}): NewEvent {
  return {
    messageId: `${customerId}-${++sequence}`,
    type: 'track',
    customerId,
    userId: customerId,
    anonymousId: null,
    name,
    properties: {},
    traits: {},
    context: {},
    timestamp: NOW,
    receivedAt: NOW,
    origin: 'server',
    ...fields,
  };
}

const identify = (customerId: string, traits: Record<string, unknown>, at = NOW): NewEvent => event(customerId, null, { type: 'identify', traits, timestamp: at, receivedAt: at });

for (const backend of storeBackends('suppressions-contract')) {
  backend.describe(`the suppression list in the store: ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      store = await backend.open({ softBounce: { limit: 2, windowMs: 7 * DAY, suppressionMs: 30 * DAY } });
    });

    afterAll(() => backend.dispose());

    const record = (events: NewEvent[]) => store.recordEvents(events, { needsDispatch: () => false });

    it('adds by (address hash, reason), upserting; looks an address up in any case, leaving expired entries out', async () => {
      const address = fresh('add');
      await store.addSuppressions([entry(address, 'hard_bounce'), entry(address, 'soft_bounce', { expiresAt: NOW + DAY })]);
      await store.addSuppressions([entry(address, 'hard_bounce', { source: 'again', createdAt: NOW + 5 })]);
      expect(await store.suppressionsFor(address.toUpperCase(), NOW)).toEqual([entry(address, 'hard_bounce', { source: 'again', createdAt: NOW + 5 }), entry(address, 'soft_bounce', { expiresAt: NOW + DAY })]);
      expect(await store.suppressionsFor(address, NOW + DAY)).toEqual([entry(address, 'hard_bounce', { source: 'again', createdAt: NOW + 5 })]);
      expect(await store.suppressionsFor(fresh('nobody'), NOW)).toEqual([]);
    });

    it('keeps an erased entry by hash alone: the address stays suppressed, and a later entry does not blank a known address', async () => {
      const address = fresh('erased');
      await store.addSuppressions([{ ...entry(address, 'erased'), address: null }]);
      expect(await store.suppressionsFor(address, NOW)).toEqual([{ ...entry(address, 'erased'), address: null }]);
      await store.addSuppressions([entry(address, 'manual')]);
      await store.addSuppressions([{ ...entry(address, 'manual'), address: null, source: 'hash only' }]);
      expect((await store.suppressionsFor(address, NOW)).find((e) => e.reason === 'manual')).toMatchObject({ address, source: 'hash only' });
    });

    it('lists a page at a time in hash order, optionally of one reason; removes by address or hash, all or one reason', async () => {
      const addresses = [fresh('page'), fresh('page'), fresh('page')];
      await store.addSuppressions(addresses.flatMap((a) => [entry(a, 'complaint'), entry(a, 'manual')]));
      const mine = (entries: SuppressionEntry[]) => entries.filter((e) => addresses.includes(e.address ?? ''));
      const seen: SuppressionEntry[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < 100; pages++) {
        const page = await store.listSuppressions({ after, limit: 2 });
        expect(page.entries.length).toBeLessThanOrEqual(2);
        seen.push(...page.entries);
        if (page.next === null) break;
        after = page.next;
      }
      const keys = seen.map((e) => `${e.addressHash}:${e.reason}`);
      expect(keys).toEqual([...keys].sort());
      expect(new Set(keys).size).toBe(keys.length);
      expect(mine(seen)).toHaveLength(6);
      expect(mine((await store.listSuppressions({ reason: 'complaint', limit: 1000 })).entries).map((e) => e.reason)).toEqual(['complaint', 'complaint', 'complaint']);
      await expect(store.listSuppressions({ after: 'nonsense', limit: 2 })).rejects.toThrow('after: not a cursor');

      expect(await store.removeSuppressions({ addressHash: addressHash(addresses[0]!), reason: 'complaint' })).toBe(1);
      expect((await store.suppressionsFor(addresses[0]!, NOW)).map((e) => e.reason)).toEqual(['manual']);
      expect(await store.removeSuppressions({ addressHash: addressHash(addresses[1]!) })).toBe(2);
      expect(await store.suppressionsFor(addresses[1]!, NOW)).toEqual([]);
      expect(await store.removeSuppressions({ addressHash: addressHash(addresses[1]!) })).toBe(0);
    });

    it('imports every row or none: a bad row names itself and its field and writes nothing', async () => {
      const good = fresh('import');
      const before = await store.tableCounts();
      await expect(store.importSuppressions([{ address: good }, { address: fresh('import'), reason: 'bored' }], { reason: 'import', source: 'import', now: NOW })).rejects.toThrow(
        'row 2: reason: unknown reason "bored"',
      );
      expect(await store.tableCounts()).toEqual(before);
      // The same address twice in one import: one row, the last one given.
      expect(await store.importSuppressions([{ address: good }, { address: good.toUpperCase(), source: 'second' }, { address: fresh('import'), reason: 'complaint' }], { reason: 'import', source: 'import', now: NOW })).toBe(3);
      expect(await store.suppressionsFor(good, NOW)).toEqual([entry(good, 'import', { source: 'second' })]);
    });

    it('exports every entry, expired ones too, in a form import takes back', async () => {
      const expired = fresh('export');
      await store.addSuppressions([entry(expired, 'soft_bounce', { expiresAt: NOW - 1, createdAt: NOW - DAY })]);
      const all = await store.exportSuppressions();
      expect(all).toContainEqual(entry(expired, 'soft_bounce', { expiresAt: NOW - 1, createdAt: NOW - DAY }));
      const rows = all.map((e) => ({ address: e.address ?? undefined, address_hash: e.addressHash, reason: e.reason, scope: e.scope, source: e.source, created_at: e.createdAt, expires_at: e.expiresAt }));
      const before = await store.tableCounts();
      expect(await store.importSuppressions(rows, { reason: 'import', source: 'import', now: NOW })).toBe(all.length);
      expect(await store.exportSuppressions()).toEqual(all);
      expect((await store.tableCounts()).suppressions).toBe(before.suppressions);
    });

    it('records a hard bounce and a complaint as entries in the events’ transaction, for the reported address', async () => {
      const customer = `bounce-${process.pid}-${++sequence}`;
      const email = fresh('bounce');
      const reported = fresh('reported');
      await record([identify(customer, { email })]);
      await record([event(customer, 'Email Bounced', { properties: { bounce_type: 'hard' }, context: { source: 'postmark-webhook' } }), event(customer, 'Email Marked as Spam', { properties: { email: reported } })]);
      expect(await store.suppressionsFor(email, NOW)).toEqual([{ ...entry(email, 'hard_bounce'), source: 'webhook' }]);
      expect(await store.suppressionsFor(reported, NOW)).toEqual([{ ...entry(reported, 'complaint'), source: 'ingest' }]);
      // A redelivered bounce (same messageId) writes nothing new.
      await store.removeSuppressions({ addressHash: addressHash(email) });
      const again = event(customer, 'Email Bounced');
      await record([again]);
      await store.removeSuppressions({ addressHash: addressHash(email) });
      await record([again]);
      expect(await store.suppressionsFor(email, NOW)).toEqual([]);
    });

    it('counts soft bounces across batches: the limit within the window suppresses for the period', async () => {
      const customer = `soft-${process.pid}-${++sequence}`;
      const email = fresh('soft');
      await record([identify(customer, { email })]);
      const soft = (at: number) => event(customer, 'Email Bounced', { properties: { bounce_type: 'soft' }, timestamp: at, receivedAt: at });
      await record([soft(NOW - 10 * DAY)]);
      await record([soft(NOW)]);
      expect(await store.suppressionsFor(email, NOW)).toEqual([]);
      await record([soft(NOW + DAY)]);
      expect(await store.suppressionsFor(email, NOW + DAY)).toEqual([{ ...entry(email, 'soft_bounce', { createdAt: NOW + DAY, expiresAt: NOW + 31 * DAY }), source: 'ingest' }]);
      expect(await store.suppressionsFor(email, NOW + 31 * DAY)).toEqual([]);
    });

    it('an unsubscribe adds a marketing entry; a later server-key grant lifts it, an import’s does not', async () => {
      const customer = `unsub-${process.pid}-${++sequence}`;
      const email = fresh('unsub');
      await record([identify(customer, { email, consent: { email_marketing: true } })]);
      await record([event(customer, 'Unsubscribed', { timestamp: NOW + 1, receivedAt: NOW + 1, context: { source: 'unsubscribe-link' } })]);
      expect(await store.suppressionsFor(email, NOW)).toEqual([{ ...entry(email, 'unsubscribe', { createdAt: NOW + 1 }), source: 'unsubscribe_link' }]);
      await record([{ ...identify(customer, { consent: { email_marketing: true } }, NOW + 2), context: { library: { name: 'microflows-import' } }, origin: 'internal' }]);
      expect(await store.suppressionsFor(email, NOW)).toHaveLength(1);
      await record([identify(customer, { consent: { email_marketing: true } }, NOW + 3)]);
      expect(await store.suppressionsFor(email, NOW)).toEqual([]);
    });
  });
}
