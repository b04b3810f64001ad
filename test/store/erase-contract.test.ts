// Erase and export in the store contract, on SQLite and PostgreSQL (issue 14): a customer with something in every
// table (merged anonymous events, an alias, segment membership, runs, decisions, sends and outbox, consent trail,
// suppressions, a payload data key) is erased, and then no text of any row of any table the catalog lists names their
// ids or addresses, while a second customer is untouched, the log names no one and the address hashes still suppress.
// The export of such a customer lists every event and send created, in a stable order, as plain JSON.
import { createHash, randomBytes } from 'node:crypto';
import { flowRunWorkflowId } from '../../core/arbiter-state';
import { isMicroflowsError } from '../../core/errors';
import { segmentChangeEvents } from '../../core/segment-membership';
import { addressHash } from '../../core/suppression';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent } from '../../store/store';
import { openRawDatabase, type RawDatabase } from '../support/database-scan';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;

/** A customer as built: every id and address that names them, and what was created for them. */
interface Built {
  customerId: string;
  anonymousId: string;
  previousId: string;
  email: string;
  oldEmail: string;
  dataKeySubject: string;
  messageIds: string[];
  deliveryKeys: string[];
  sendMessageIds: string[];
  runningWorkflowId: string;
  /** The offer code their outbox send was given, from a pool of their own. */
  offerCode: { pool: string; code: string; claimedAt: number };
}

function event(fields: Partial<NewEvent> & Pick<NewEvent, 'customerId' | 'type'>): NewEvent {
  return {
    messageId: `msg-${randomBytes(6).toString('hex')}`,
    userId: null,
    anonymousId: null,
    name: null,
    properties: {},
    traits: {},
    context: { ip: '203.0.113.9', userAgent: 'Mozilla/5.0 (test)' },
    timestamp: NOW,
    receivedAt: NOW + 5,
    ...fields,
  };
}

/** Random per build, so one customer's ids are never part of another's text. */
function token(): string {
  return randomBytes(5).toString('hex');
}

async function buildCustomer(store: KyselyStore, raw: RawDatabase, dialect: 'sqlite' | 'postgres', name: string): Promise<Built> {
  const t = token();
  const customerId = `${name}-${t}`;
  const anonymousId = `anon-${token()}`;
  const previousId = `old-${token()}`;
  // Mixed case and another domain: the erasure compares addresses case-insensitively.
  const email = `${name}.${t}@Example.COM`;
  const oldEmail = `${name}.${token()}@old.example.org`;
  const at = (n: number) => ({ timestamp: NOW + n * 1000, receivedAt: NOW + n * 1000 + 5 });

  const events = [
    event({ type: 'track', customerId: anonymousId, anonymousId, name: 'Product Viewed', properties: { product_id: 'sku-1' }, ...at(1) }),
    event({ type: 'identify', customerId, userId: customerId, anonymousId, traits: { email, first_name: name, consent: { email_marketing: true } }, ...at(2) }),
    event({ type: 'track', customerId: previousId, userId: previousId, name: 'Product Viewed', properties: { product_id: 'sku-2' }, ...at(3) }),
    event({ type: 'alias', customerId, userId: customerId, properties: { previousId }, ...at(4) }),
    event({ type: 'track', customerId, userId: customerId, name: 'Product Added', properties: { product_id: 'sku-1', price: 20, shipping_address: `1 ${name} street` }, ...at(5) }),
    event({ type: 'page', customerId, userId: customerId, name: 'Checkout', properties: { url: `https://shop.example/checkout?u=${customerId}` }, ...at(6) }),
  ];
  for (const e of events) await store.recordEvent(e, { needsDispatch: false });

  const entered = segmentChangeEvents([{ segmentId: 'vip', customerId, change: 'entered', at: NOW + 7000 }], new Map(), NOW + 7005);
  await store.updateSegments(
    [customerId],
    () => ({ events: [], from: NOW + 7000, profileHistory: false }),
    () => ({ members: new Set(['vip']), at: NOW + 7000, nextCheckAt: NOW + 86_400_000, events: entered }),
    () => false,
  );

  const ended = flowRunWorkflowId('cart', customerId, 1);
  const running = flowRunWorkflowId('cart', customerId, 2);
  await store.recordFlowEntry({ customerId, flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId: ended, enteredAt: NOW + 8000, triggerMessageId: events[4]!.messageId });
  await store.recordRunOutcome(ended, 'completed', NOW + 9000);
  await store.recordFlowEntry({ customerId, flowId: 'cart', flowVersion: 1, runNumber: 2, workflowId: running, enteredAt: NOW + 10_000, triggerMessageId: null });
  await store.recordDecisions([
    { key: `customer/${customerId}:run:1`, customerId, at: NOW + 8000, flowId: 'cart', flowVersion: 1, outcome: 'started', reason: `trigger Product Added for ${customerId}`, eventMessageId: events[4]!.messageId, workflowId: ended },
  ]);

  // One send through the outbox to today's address, one by SMTP to the address they had before.
  const outboxKey = `${ended}/steps[1]`;
  const smtpKey = `${running}/steps[1]`;
  const sendMessageIds = [`<${token()}@mail.test>`, `<${token()}@mail.test>`];
  const send = { customerId, flowId: 'cart', flowVersion: 1, nodeId: 'steps[1]', template: 'cart-reminder', transport: 'outbox' as const };
  await store.claimSend({ ...send, deliveryKey: outboxKey, workflowId: ended, to: email, subject: `${name}, your cart`, scheduledAt: NOW + 11_000 });
  await store.deliverToOutbox(
    { deliveryKey: outboxKey, to: email, from: 'Shop <shop@example.com>', subject: `${name}, your cart`, html: `<p>Hi ${name}</p><a href="https://x/u/${customerId}">unsubscribe</a>`, text: `Hi ${name}`, headers: { 'List-Unsubscribe': `<https://x/u/${customerId}>` }, createdAt: NOW + 11_000 },
    sendMessageIds[0]!,
  );
  await store.claimSend({ ...send, transport: 'smtp', deliveryKey: smtpKey, workflowId: running, to: oldEmail, subject: 'Still thinking?', scheduledAt: NOW + 12_000 });
  await store.completeSend(smtpKey, sendMessageIds[1]!, NOW + 12_000);
  // An offer code for the outbox send: its claim names the customer and their delivery key.
  const pool = `erase-${t}`;
  await store.importOfferCodes(pool, [`${pool}-A`, `${pool}-B`], NOW);
  const claimed = await store.claimOfferCode({ pool, deliveryKey: outboxKey, customerId, at: NOW + 11_500 });

  // The tables other parts of issue 14 fill: written here with the backend's own driver.
  const granted = dialect === 'sqlite' ? 1 : true;
  await raw.query('insert into consent_changes (customer_id, kind, granted, source, at, recorded_at, event_message_id) values (?, ?, ?, ?, ?, ?, ?)', [customerId, 'email_marketing', granted, 'identify', NOW + 2000, NOW + 2005, events[1]!.messageId]);
  await raw.query('insert into consent_changes (customer_id, kind, granted, source, at, recorded_at, event_message_id) values (?, ?, ?, ?, ?, ?, ?)', [customerId, 'topic:cart', granted, 'preference_center', NOW + 13_000, NOW + 13_000, null]);
  await raw.query('insert into suppressions (address_hash, reason, address, scope, source, created_at, expires_at) values (?, ?, ?, ?, ?, ?, ?)', [addressHash(email), 'complaint', email.toLowerCase(), 'marketing', 'webhook', NOW + 14_000, null]);
  await raw.query('insert into suppressions (address_hash, reason, address, scope, source, created_at, expires_at) values (?, ?, ?, ?, ?, ?, ?)', [addressHash(oldEmail), 'hard_bounce', oldEmail, 'all', 'webhook', NOW + 14_000, null]);
  const dataKeySubject = createHash('sha256').update(`subject:${customerId}`).digest('hex');
  await raw.query('insert into data_keys (subject, wrapped_key, master_key_id, created_at) values (?, ?, ?, ?)', [dataKeySubject, `wrapped-${token()}`, 'master-1', NOW]);

  return {
    customerId,
    anonymousId,
    previousId,
    email,
    oldEmail,
    dataKeySubject,
    messageIds: [...events.map((e) => e.messageId), ...entered.map((e) => e.messageId)],
    deliveryKeys: [outboxKey, smtpKey],
    sendMessageIds,
    runningWorkflowId: running,
    offerCode: { pool, code: claimed.code!, claimedAt: NOW + 11_500 },
  };
}

function errorOf(promise: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => {
      if (!isMicroflowsError(err)) throw err;
      return { status: err.status, code: err.code, message: err.message };
    },
  );
}

for (const backend of storeBackends('erase-contract')) {
  backend.describe(`erase and export: ${backend.name}`, () => {
    let store: KyselyStore;
    let raw: RawDatabase;

    beforeAll(async () => {
      store = await backend.open();
      raw = openRawDatabase(backend);
    });

    afterAll(async () => {
      await raw?.close();
      await backend.dispose();
    });

    it('erases every trace of a customer, named by an alias, from every table; the other customer, the hashes and the log stay', async () => {
      const erased = await buildCustomer(store, raw, backend.name, 'ana');
      const kept = await buildCustomer(store, raw, backend.name, 'bob');
      // A third customer's event that carries the erased customer's anonymousId: it names them, so it goes too.
      const stray = event({ type: 'track', customerId: `carol-${token()}`, name: 'Product Viewed' });
      stray.userId = stray.customerId;
      stray.anonymousId = erased.anonymousId;
      await store.recordEvent(stray, { needsDispatch: false });
      const needles = [erased.customerId, erased.anonymousId, erased.previousId, erased.email, erased.oldEmail];
      // The scan can fail: before the erasure it finds them in the tables the build wrote.
      const before = new Set((await raw.scan(needles)).map((m) => m.table));
      expect([...before].sort()).toEqual(expect.arrayContaining(['consent_changes', 'decisions', 'events', 'flow_entries', 'identities', 'offer_codes', 'outbox', 'profiles', 'segment_checks', 'segment_members', 'sends', 'suppressions']));
      const keptExport = await store.exportCustomer(kept.customerId, { at: NOW });

      const result = await store.eraseCustomer(erased.anonymousId, { at: NOW + 99_000, requestedBy: 'key-test-admin', dataKeySubject: erased.dataKeySubject });

      expect(await raw.scan(needles)).toEqual([]);
      expect(result.runningWorkflowIds).toEqual([erased.runningWorkflowId]);
      expect(result.addresses).toBe(2);
      expect(result.removed).toMatchObject({
        events: 8,
        profiles: 1,
        identities: 2,
        segment_members: 1,
        segment_checks: 1,
        flow_entries: 2,
        decisions: 1,
        sends: 2,
        outbox: 1,
        suppressions_anonymized: 2,
        suppressions_added: 2,
        data_keys: 1,
        offer_codes_unlinked: 1,
      });
      // Their offer code stays claimed, naming no one, so it is never handed to another customer.
      expect(await raw.query('select code, customer_id, delivery_key from offer_codes where pool = ? and claimed_at is not null', [erased.offerCode.pool])).toEqual([{ code: erased.offerCode.code, customer_id: null, delivery_key: null }]);
      expect((await store.claimOfferCode({ pool: erased.offerCode.pool, deliveryKey: `other-${token()}`, customerId: 'other', at: NOW })).code).not.toBe(erased.offerCode.code);
      // The two written here, and whatever ingest recorded of the identify's consent.
      expect(result.removed.consent_changes).toBeGreaterThanOrEqual(2);
      expect(await raw.query('select subject from data_keys where subject = ?', [erased.dataKeySubject])).toEqual([]);

      // The log: one row, naming the key that asked and the counts, nothing more.
      const logged = await raw.query<{ id: string; requested_by: string; removed: string; at: unknown }>('select * from erasures where id = ?', [result.erasureId]);
      expect(logged).toHaveLength(1);
      expect(logged[0]!.requested_by).toBe('key-test-admin');
      expect(JSON.parse(logged[0]!.removed)).toEqual(result.removed);
      expect(Number(logged[0]!.at)).toBe(NOW + 99_000);
      expect(await store.listErasures()).toContainEqual({ id: result.erasureId, at: NOW + 99_000, requestedBy: 'key-test-admin', removed: result.removed });

      // The hashes stay: an address read back (as typed, in any case) is still suppressed, for every kind of email.
      for (const [address, reasons] of [[` ${erased.email.toUpperCase()} `, ['complaint', 'erased']], [erased.oldEmail, ['erased', 'hard_bounce']]] as const) {
        const rows = await raw.query<{ reason: string; address: string | null; scope: string }>('select reason, address, scope from suppressions where address_hash = ? order by reason', [addressHash(address)]);
        expect(rows.map((r) => r.reason)).toEqual(reasons);
        expect(rows.every((r) => r.address === null)).toBe(true);
        expect(rows.find((r) => r.reason === 'erased')?.scope).toBe('all');
      }

      // The other customer: everything as it was, their data key and suppressions too.
      expect(await store.exportCustomer(kept.customerId, { at: NOW })).toEqual(keptExport);
      expect(await raw.query('select subject from data_keys where subject = ?', [kept.dataKeySubject])).toHaveLength(1);
      expect((await raw.query<{ address: string | null }>('select address from suppressions where address_hash = ?', [addressHash(kept.email)]))[0]?.address).toBe(kept.email.toLowerCase());
      expect(await raw.scan([kept.customerId, kept.email])).not.toEqual([]);

      // Nothing is left to erase or export.
      for (const id of [erased.customerId, erased.anonymousId]) {
        expect(await errorOf(store.eraseCustomer(id, { at: NOW, requestedBy: 'cli' }))).toMatchObject({ status: 404, code: 'customer_not_found' });
        expect(await errorOf(store.exportCustomer(id))).toMatchObject({ status: 404, code: 'customer_not_found' });
      }
    });

    it('exports every event and send a customer has, by any of their ids, in a stable order, as plain JSON', async () => {
      const built = await buildCustomer(store, raw, backend.name, 'dana');
      const document = await store.exportCustomer(built.previousId, { at: NOW + 50_000 });

      expect(document.customerId).toBe(built.customerId);
      expect(document.exportedAt).toBe(NOW + 50_000);
      expect(document.aliases).toEqual([built.anonymousId, built.previousId].sort());
      expect(document.profile?.email).toBe(built.email.toLowerCase());
      expect(document.events.map((e) => e.messageId).sort()).toEqual([...built.messageIds].sort());
      // Oldest first; what each event carried is there, context (IP, user agent) included.
      expect(document.events.map((e) => e.timestamp)).toEqual([...document.events.map((e) => e.timestamp)].sort((a, b) => a - b));
      expect(document.events.find((e) => e.name === 'Product Added')).toMatchObject({ properties: { shipping_address: '1 dana street' }, context: { ip: '203.0.113.9' } });
      expect(document.sends.map((s) => s.deliveryKey).sort()).toEqual([...built.deliveryKeys].sort());
      expect(document.sends.map((s) => s.messageId).sort()).toEqual([...built.sendMessageIds].sort());
      expect(document.sends.map((s) => s.to).sort()).toEqual([built.email, built.oldEmail].sort());
      expect(document.outbox.map((m) => m.deliveryKey)).toEqual([built.deliveryKeys[0]]);
      expect(document.segments).toEqual([{ segmentId: 'vip', enteredAt: NOW + 7000 }]);
      expect(document.flowEntries.map((e) => e.runNumber)).toEqual([1, 2]);
      expect(document.decisions).toHaveLength(1);
      expect(document.consentChanges.map((c) => [c.kind, c.granted, c.source])).toEqual(
        expect.arrayContaining([
          ['email_marketing', true, 'identify'],
          ['topic:cart', true, 'preference_center'],
        ]),
      );
      expect(document.suppressions.map((s) => s.reason).sort()).toEqual(['complaint', 'hard_bounce']);
      expect(document.offerCodes).toEqual([built.offerCode]);

      // Plain JSON, the same read twice, and nothing of another customer in it.
      expect(JSON.parse(JSON.stringify(document))).toEqual(document);
      expect(await store.exportCustomer(built.customerId, { at: NOW + 50_000 })).toEqual(document);
      expect(await errorOf(store.exportCustomer(`nobody-${token()}`))).toMatchObject({ status: 404, code: 'customer_not_found' });
    });
  });
}
