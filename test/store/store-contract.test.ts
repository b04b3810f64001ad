// The one contract every Store backend must keep, run against SQLite and (with TEST_DATABASE_URL) PostgreSQL.
// Each suite shares one database, so every test uses its own customer, flow and key names.
import type { Product } from '../../core/catalog';
import type { FlowDefinition } from '../../core/flow-types';
import { isMicroflowsError } from '../../core/errors';
import { FlowVersionConflictError } from '../../store/errors';
import type { KyselyStore } from '../../store/kysely-store';
import type { DecisionRecord, NewEvent, OutboxMessage, SendRecord } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
let sequence = 0;

function unique(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}`;
}

function track(customerId: string, name: string, properties: Record<string, unknown> = {}, overrides: Partial<NewEvent> = {}): NewEvent {
  return {
    messageId: unique('msg'),
    type: 'track',
    customerId,
    userId: customerId,
    anonymousId: null,
    name,
    properties,
    traits: {},
    context: { ip: '203.0.113.9' },
    timestamp: NOW,
    receivedAt: NOW + 5,
    ...overrides,
  };
}

function identify(customerId: string, traits: Record<string, unknown>, overrides: Partial<NewEvent> = {}): NewEvent {
  return { ...track(customerId, '', {}, overrides), type: 'identify', name: null, traits, ...overrides };
}

function flow(id: string, version: number, sha256 = `sha-${id}-${version}`): FlowDefinition {
  return {
    id,
    version,
    priority: 50,
    group: 'marketing',
    topic: null,
    trigger: { kind: 'event', event: 'Product Added' },
    entry: { reentry: { kind: 'always' }, onConflict: 'suppress' },
    exit: { onEvents: [{ event: 'Order Completed' }] },
    start: 'steps[0]',
    nodes: { 'steps[0]': { id: 'steps[0]', kind: 'send', template: 'cart-reminder', data: {}, next: null } },
    defaultTimezone: 'UTC',
    source: { file: `flows/${id}.yaml`, sha256 },
  };
}

function send(deliveryKey: string, customerId: string, overrides: Partial<SendRecord> = {}): Omit<SendRecord, 'status' | 'sentAt' | 'messageId' | 'fallbacks'> & { fallbacks?: SendRecord['fallbacks'] } {
  return {
    deliveryKey,
    customerId,
    flowId: 'cart',
    flowVersion: 1,
    workflowId: `flow/cart/${customerId}/1`,
    nodeId: 'steps[1]',
    template: 'cart-reminder',
    to: `${customerId}@example.com`,
    subject: 'You left something behind',
    transport: 'outbox',
    scheduledAt: NOW,
    ...overrides,
  };
}

function outboxMessage(deliveryKey: string, to: string, createdAt = NOW): OutboxMessage {
  return {
    deliveryKey,
    to,
    from: 'shop <no-reply@example.com>',
    subject: 'You left something behind',
    html: '<p>Your cart</p>',
    text: 'Your cart',
    headers: { 'List-Unsubscribe': '<https://example.com/u/1>' },
    createdAt,
  };
}

function decision(key: string, customerId: string, outcome = 'started'): DecisionRecord {
  return { key, customerId, at: NOW, flowId: 'cart', flowVersion: 1, outcome, reason: 'trigger fired', eventMessageId: null, workflowId: null };
}

function product(productId: string, overrides: Partial<Product> = {}): Product {
  return {
    product_id: productId,
    name: `Product ${productId}`,
    category: 'Shoes',
    price: 89.5,
    image_url: `https://shop.example.com/img/${productId}.jpg`,
    url: `https://shop.example.com/p/${productId}`,
    rating: 4.7,
    review_count: 212,
    stock: 3,
    related_ids: [],
    ...overrides,
  };
}

async function drainUndispatched(store: KyselyStore): Promise<void> {
  for (let page = await store.listUndispatched(1000); page.length > 0; page = await store.listUndispatched(1000)) {
    await store.markDispatched(page.map((e) => e.id));
  }
}

const backends = storeBackends('store contract');

for (const backend of backends) {
  backend.describe(`Store contract: ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      store = await backend.open({ now: () => NOW });
    });

    afterAll(() => backend.dispose());

    describe('schema', () => {
      it('reports its dialect and migrates again without error', async () => {
        expect(store.dialect).toBe(backend.name);
        await store.migrate();
        await expect((await backend.open()).migrate()).resolves.toBeUndefined();
      });

      it('counts rows in every table', async () => {
        const counts = await store.tableCounts();
        expect(Object.keys(counts).sort()).toEqual(['api_keys', 'catalog_products', 'consent_changes', 'conversions', 'data_keys', 'decisions', 'erasures', 'events', 'experiment_assignments', 'experiments', 'flow_entries', 'flow_metrics', 'flow_versions', 'identities', 'offer_codes', 'outbox', 'profiles', 'segment_members', 'send_events', 'send_waits', 'sends', 'suppressions']);
        for (const n of Object.values(counts)) expect(typeof n).toBe('number');
      });
    });

    describe('recordEvent', () => {
      it('stores a new event with every field and folds it into a new profile', async () => {
        const customer = unique('c');
        const event = track(customer, 'Product Viewed', { product_id: 'p1', category: 'Shoes', price: 49.5 }, { anonymousId: 'anon-1' });
        const before = await store.tableCounts();

        const result = await store.recordEvent(event, { needsDispatch: false });

        expect(result.duplicate).toBe(false);
        expect(result.event).toEqual({ ...event, id: expect.any(Number), dispatched: true });
        expect(result.profile.customerId).toBe(customer);
        expect(result.profile.computed.last_browsed_category).toBe('Shoes');
        expect(result.profile.computed.last_action_date).toBe(NOW);
        expect(result.profile.updatedAt).toBe(event.receivedAt);
        expect(await store.getProfile(customer)).toEqual(result.profile);
        const after = await store.tableCounts();
        expect(after.events).toBe((before.events ?? 0) + 1);
        expect(after.profiles).toBe((before.profiles ?? 0) + 1);
      });

      it('lists profiles in customer id order, a page at a time', async () => {
        const prefix = unique('page');
        for (const suffix of ['b', 'a', 'c']) await store.recordEvent(track(`${prefix}-${suffix}`, 'Product Viewed', { category: 'Shoes' }), { needsDispatch: false });
        const mine = async (after: string | null, limit: number) => (await store.listProfiles({ after, limit })).map((p) => p.customerId).filter((id) => id.startsWith(prefix));
        expect(await mine(`${prefix}`, 2)).toEqual([`${prefix}-a`, `${prefix}-b`]);
        expect(await mine(`${prefix}-b`, 10)).toEqual([`${prefix}-c`]);
        const [first] = await store.listProfiles({ after: `${prefix}-a`, limit: 1 });
        expect(first).toEqual(await store.getProfile(`${prefix}-b`));
      });

      it('marks an event that needs dispatch as not yet dispatched', async () => {
        const result = await store.recordEvent(track(unique('c'), 'Product Added', { product_id: 'p1' }), { needsDispatch: true });
        expect(result.event.dispatched).toBe(false);
      });

      it('writes nothing for a repeated messageId and returns the stored event and current profile', async () => {
        const customer = unique('c');
        const first = await store.recordEvent(track(customer, 'Product Added', { product_id: 'p1', quantity: 1 }), { needsDispatch: false });
        const before = await store.tableCounts();

        const again = await store.recordEvent(
          { ...first.event, properties: { product_id: 'p1', quantity: 5 }, receivedAt: NOW + 999 },
          { needsDispatch: true },
        );

        expect(again.duplicate).toBe(true);
        expect(again.event).toEqual(first.event);
        expect(again.profile).toEqual(first.profile);
        expect(await store.tableCounts()).toEqual(before);
        expect((await store.getProfile(customer))?.computed.cart).toEqual([expect.objectContaining({ product_id: 'p1', quantity: 1 })]);
      });

      it('stores one event when 20 copies of a messageId arrive at once', async () => {
        const customer = unique('c');
        const event = track(customer, 'Product Added', { product_id: 'p1', quantity: 1 });
        const before = await store.tableCounts();

        const results = await Promise.all(Array.from({ length: 20 }, () => store.recordEvent({ ...event }, { needsDispatch: false })));

        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        expect(new Set(results.map((r) => r.event.id)).size).toBe(1);
        const after = await store.tableCounts();
        expect(after.events).toBe((before.events ?? 0) + 1);
        expect(await store.eventsOf(customer)).toHaveLength(1);
        expect((await store.getProfile(customer))?.computed.cart).toEqual([expect.objectContaining({ product_id: 'p1', quantity: 1 })]);
      });

      it('loses no profile update when 20 events for one customer arrive at once', async () => {
        const customer = unique('c');
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.recordEvent(track(customer, 'Product Added', { product_id: 'p1', quantity: 1 }), { needsDispatch: false })),
        );
        expect(results.every((r) => !r.duplicate)).toBe(true);
        expect((await store.getProfile(customer))?.computed.cart).toEqual([expect.objectContaining({ product_id: 'p1', quantity: 20 })]);
      });

      it('a batch that fails after its inserts leaves nothing behind, and the next batch is written', async () => {
        const customer = unique('c');
        const anonymous = unique('anon');
        const batch = [
          identify(customer, { email: `${customer}@example.com` }, { anonymousId: anonymous }),
          track(customer, 'Product Added', { product_id: 'p1', quantity: 1 }),
          track(customer, 'Product Viewed', { product_id: 'p2' }),
        ];
        const before = await store.tableCounts();
        // needsDispatch is asked once per event before the inserts and again after them: the second round throws.
        let asked = 0;
        const failing = () => {
          asked += 1;
          if (asked > batch.length) throw new Error('fails part-way');
          return false;
        };
        await expect(store.recordEvents(batch, { needsDispatch: failing })).rejects.toThrow('fails part-way');
        expect(asked).toBeGreaterThan(batch.length);

        expect(await store.tableCounts()).toEqual(before);
        expect(await store.getProfile(customer)).toBeUndefined();
        expect(await store.resolveCustomerId(anonymous)).toBe(anonymous);

        const results = await store.recordEvents(batch, { needsDispatch: () => false });
        expect(results.map((r) => r.duplicate)).toEqual([false, false, false]);
        expect(await store.resolveCustomerId(anonymous)).toBe(customer);
        expect((await store.getProfile(customer))?.email).toBe(`${customer}@example.com`);
      });

      it('keeps concurrent events from a second store on the same database apart', async () => {
        const other = await backend.open();
        const customer = unique('c');
        const event = track(customer, 'Product Added', { product_id: 'p9' });
        const results = await Promise.all([
          ...Array.from({ length: 5 }, () => store.recordEvent({ ...event }, { needsDispatch: false })),
          ...Array.from({ length: 5 }, () => other.recordEvent({ ...event }, { needsDispatch: false })),
        ]);
        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        expect(await store.eventsOf(customer)).toHaveLength(1);
      });
    });

    describe('profile folding', () => {
      it('keeps the cart through Product Added, Product Removed and Order Completed', async () => {
        const customer = unique('c');
        const record = (name: string, properties: Record<string, unknown>, at: number) =>
          store.recordEvent(track(customer, name, properties, { timestamp: at }), { needsDispatch: false });

        await record('Product Added', { product_id: 'shoe', name: 'Shoe', price: 50, quantity: 1, category: 'Shoes' }, NOW + 1);
        await record('Product Added', { product_id: 'sock', name: 'Sock', price: 5, quantity: 2 }, NOW + 2);
        await record('Product Added', { product_id: 'shoe', quantity: 1 }, NOW + 3);
        let profile = (await record('Product Removed', { product_id: 'sock' }, NOW + 4)).profile;
        expect(profile.computed.cart).toEqual([expect.objectContaining({ product_id: 'shoe', quantity: 2 })]);
        expect(profile.computed.cart_updated_at).toBe(NOW + 4);

        profile = (await record('Order Completed', { total: 100, products: [{ product_id: 'shoe', quantity: 2 }] }, NOW + 5)).profile;
        expect(profile.computed.cart).toEqual([]);
        expect(profile.computed.orders_count).toBe(1);
        expect(profile.computed.total_spent).toBe(100);
        expect(profile.computed.last_order_at).toBe(NOW + 5);
        expect(profile.computed.last_action_date).toBe(NOW + 5);
        expect(await store.getProfile(customer)).toEqual(profile);
      });

      it('takes traits, email, time zone and consent from identify, and withdraws consent on Unsubscribed', async () => {
        const customer = unique('c');
        const { profile } = await store.recordEvent(
          identify(customer, {
            email: 'ada@example.com',
            timezone: 'Europe/Paris',
            first_name: 'Ada',
            consent: { email_marketing: true, behavioral_tracking: false },
          }),
          { needsDispatch: false },
        );
        expect(profile.email).toBe('ada@example.com');
        expect(profile.timezone).toBe('Europe/Paris');
        expect(profile.traits).toEqual({ email: 'ada@example.com', timezone: 'Europe/Paris', first_name: 'Ada' });
        expect(profile.consent).toEqual({
          email_marketing: { granted: true, source: 'identify', at: NOW },
          behavioral_tracking: { granted: false, source: 'identify', at: NOW },
        });

        const after = await store.recordEvent(track(customer, 'Unsubscribed', {}, { timestamp: NOW + 10 }), { needsDispatch: false });
        expect(after.profile.consent.email_marketing).toEqual({ granted: false, source: 'unsubscribe', at: NOW + 10 });
        expect(after.profile.traits.first_name).toBe('Ada');
        expect((await store.getProfile(customer))?.consent.email_marketing?.granted).toBe(false);
      });
    });

    describe('dispatch bookkeeping', () => {
      it('lists undispatched events oldest first until they are marked', async () => {
        await drainUndispatched(store);
        const customer = unique('c');
        const owed = [];
        for (let i = 0; i < 3; i++) owed.push((await store.recordEvent(track(customer, 'Product Added', { product_id: `p${i}` }), { needsDispatch: true })).event);
        await store.recordEvent(track(customer, 'Product Viewed'), { needsDispatch: false });

        expect((await store.listUndispatched(10)).map((e) => e.messageId)).toEqual(owed.map((e) => e.messageId));
        expect((await store.listUndispatched(2)).map((e) => e.id)).toEqual(owed.slice(0, 2).map((e) => e.id));

        const first = owed[0];
        if (!first) throw new Error('no events recorded');
        await store.markDispatched([first.id]);
        expect((await store.listUndispatched(10)).map((e) => e.id)).toEqual(owed.slice(1).map((e) => e.id));
        await store.markDispatched(owed.map((e) => e.id));
        await store.markDispatched([]);
        expect(await store.listUndispatched(10)).toEqual([]);
        expect((await store.eventsOf(customer, { names: ['Product Added'] })).every((e) => e.dispatched)).toBe(true);
      });
    });

    describe('eventsOf', () => {
      it("returns a customer's track events newest first, filtered by names, since (inclusive) and limit", async () => {
        const customer = unique('c');
        const at = (name: string, offset: number) => store.recordEvent(track(customer, name, {}, { timestamp: NOW + offset }), { needsDispatch: false });
        await at('Product Viewed', 1);
        await at('Product Added', 2);
        await at('Product Viewed', 3);
        await at('Order Completed', 4);
        await store.recordEvent(identify(customer, { email: 'x@example.com' }, { timestamp: NOW + 5 }), { needsDispatch: false });
        await store.recordEvent(track(unique('c'), 'Product Viewed', {}, { timestamp: NOW + 6 }), { needsDispatch: false });

        const names = (events: { name: string | null; timestamp: number }[]) => events.map((e) => `${e.name}@${e.timestamp - NOW}`);
        expect(names(await store.eventsOf(customer))).toEqual(['Order Completed@4', 'Product Viewed@3', 'Product Added@2', 'Product Viewed@1']);
        expect(names(await store.eventsOf(customer, { names: ['Product Viewed'] }))).toEqual(['Product Viewed@3', 'Product Viewed@1']);
        expect(names(await store.eventsOf(customer, { since: NOW + 2 }))).toEqual(['Order Completed@4', 'Product Viewed@3', 'Product Added@2']);
        expect(names(await store.eventsOf(customer, { names: ['Product Viewed', 'Product Added'], since: NOW + 2, limit: 1 }))).toEqual(['Product Viewed@3']);
        expect(await store.eventsOf(customer, { names: [] })).toEqual([]);
        expect(await store.eventsOf(unique('nobody'))).toEqual([]);
      });
    });

    describe('profiles', () => {
      it('returns undefined for an unknown customer', async () => {
        expect(await store.getProfile(unique('nobody'))).toBeUndefined();
      });

      it('updateProfile creates the profile, sets traits and adds and removes tags', async () => {
        const customer = unique('c');
        const created = await store.updateProfile(customer, { set: { vip: true }, addTags: ['Repeat Visitor', 'Cart Abandoner'], removeTags: [] });
        expect(created).toEqual(expect.objectContaining({ customerId: customer, traits: { vip: true }, tags: ['Cart Abandoner', 'Repeat Visitor'], updatedAt: NOW }));

        const updated = await store.updateProfile(customer, { set: { tier: 'gold' }, addTags: ['Browsed Electronics'], removeTags: ['Cart Abandoner'] });
        expect(updated.traits).toEqual({ vip: true, tier: 'gold' });
        expect(updated.tags).toEqual(['Browsed Electronics', 'Repeat Visitor']);
        expect(await store.getProfile(customer)).toEqual(updated);
      });

      it('loses no tag when updates for one customer run at once, with events in between', async () => {
        const customer = unique('c');
        const tags = Array.from({ length: 10 }, (_, i) => `tag-${String(i).padStart(2, '0')}`);
        await Promise.all([
          ...tags.map((tag) => store.updateProfile(customer, { set: {}, addTags: [tag], removeTags: [] })),
          ...tags.map(() => store.recordEvent(track(customer, 'Product Added', { product_id: 'p1' }), { needsDispatch: false })),
        ]);
        const profile = await store.getProfile(customer);
        expect(profile?.tags).toEqual(tags);
        expect(profile?.computed.cart).toEqual([expect.objectContaining({ quantity: 10 })]);
      });
    });

    describe('flow versions', () => {
      it('registers a version once, accepts the same content again, and round-trips the definition', async () => {
        const id = unique('flow');
        expect(await store.registerFlowVersion(flow(id, 1))).toBe('registered');
        expect(await store.registerFlowVersion(flow(id, 1))).toBe('unchanged');
        expect(await store.getFlowVersion(id, 1)).toEqual(flow(id, 1));
        expect(await store.getFlowVersion(id, 2)).toBeUndefined();
      });

      it('refuses a changed file under the same version with FlowVersionConflictError (409)', async () => {
        const id = unique('flow');
        await store.registerFlowVersion(flow(id, 3, 'aaa'));
        const before = await store.tableCounts();

        const error = await store.registerFlowVersion(flow(id, 3, 'bbb')).catch((e: unknown) => e);

        expect(error).toBeInstanceOf(FlowVersionConflictError);
        expect(isMicroflowsError(error)).toBe(true);
        expect(error).toMatchObject({ status: 409, code: 'flow_version_conflict', registeredSha256: 'aaa', sha256: 'bbb' });
        expect((error as Error).message).toBe(
          `flow ${id} version 3 is already registered with different content (from flows/${id}.yaml): bump "version" in flows/${id}.yaml`,
        );
        expect(await store.tableCounts()).toEqual(before);
        expect((await store.getFlowVersion(id, 3))?.source.sha256).toBe('aaa');
      });

      it('lists the newest version of each flow', async () => {
        const a = unique('flow-a');
        const b = unique('flow-b');
        await store.registerFlowVersion(flow(a, 1));
        await store.registerFlowVersion(flow(a, 10));
        await store.registerFlowVersion(flow(a, 2));
        await store.registerFlowVersion(flow(b, 1));
        const latest = (await store.latestFlowVersions()).filter((f) => f.id === a || f.id === b);
        expect(latest.map((f) => `${f.id}@${f.version}`).sort()).toEqual([`${a}@10`, `${b}@1`].sort());
      });
    });

    describe('flow entries', () => {
      it('records an entry once per workflowId and lists a customer’s runs in entry order', async () => {
        const customer = unique('c');
        const entry = (n: number, enteredAt: number) => ({
          customerId: customer,
          flowId: 'cart',
          flowVersion: 2,
          runNumber: n,
          workflowId: `flow/cart/${customer}/${n}`,
          enteredAt,
          triggerMessageId: `added-${n}`,
        });
        await store.recordFlowEntry(entry(2, NOW + 20));
        await store.recordFlowEntry(entry(1, NOW + 10));
        await store.recordFlowEntry({ ...entry(1, NOW + 99), flowVersion: 9 });
        const before = await store.tableCounts();
        await store.recordFlowEntry(entry(2, NOW + 20));
        expect(await store.tableCounts()).toEqual(before);

        const runs = await store.flowEntriesOf(customer);
        expect(runs).toEqual([
          { ...entry(1, NOW + 10), endedAt: null, outcome: null, conversionMessageId: null },
          { ...entry(2, NOW + 20), endedAt: null, outcome: null, conversionMessageId: null },
        ]);
        expect(await store.getFlowEntry(`flow/cart/${customer}/2`)).toEqual(runs[1]);
        expect(await store.getFlowEntry(`flow/cart/${customer}/3`)).toBeUndefined();
      });

      it('keeps the first outcome of a run', async () => {
        const customer = unique('c');
        const workflowId = `flow/cart/${customer}/1`;
        await store.recordFlowEntry({ customerId: customer, flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId, enteredAt: NOW, triggerMessageId: null });

        await store.recordRunOutcome(workflowId, 'converted', NOW + 50, 'order-msg-1');
        await store.recordRunOutcome(workflowId, 'completed', NOW + 60);
        await store.recordRunOutcome(workflowId, 'failed', NOW + 70, null);
        await store.recordRunOutcome(`flow/cart/${customer}/404`, 'completed', NOW);

        expect(await store.getFlowEntry(workflowId)).toMatchObject({ outcome: 'converted', endedAt: NOW + 50, conversionMessageId: 'order-msg-1' });
        expect(await store.flowEntriesOf(customer)).toHaveLength(1);
      });
    });

    describe('inactiveCustomers (the sweep)', () => {
      const DAY = 86_400_000;
      it('finds buyers whose last event is before the cutoff and who have not entered since, page by page', async () => {
        const event = unique('Order Completed');
        const at = (customerId: string, timestamp: number, id: string) => store.recordEvent(track(customerId, event, {}, { messageId: unique(id), timestamp }), { needsDispatch: false });
        const cutoff = NOW - 60 * DAY;
        await at('c-a', cutoff - DAY, 'a1'); // lapsed
        await at('c-b', cutoff - 3 * DAY, 'b1');
        await at('c-b', cutoff + DAY, 'b2'); // bought again since: not lapsed
        await at('c-c', cutoff - 1, 'c1'); // lapsed by one ms
        await at('c-d', cutoff, 'd1'); // exactly at the cutoff: not before it
        await at('c-e', cutoff - 5 * DAY, 'e1'); // lapsed, but already entered winback after that order
        await store.recordFlowEntry({ customerId: 'c-e', flowId: 'winback', flowVersion: 1, runNumber: 1, workflowId: unique('flow/winback/c-e/1'), enteredAt: cutoff - 4 * DAY, triggerMessageId: null });
        await at('c-f', cutoff - 9 * DAY, 'f1'); // entered winback before that order: lapsed again
        await store.recordFlowEntry({ customerId: 'c-f', flowId: 'winback', flowVersion: 1, runNumber: 1, workflowId: unique('flow/winback/c-f/1'), enteredAt: cutoff - 10 * DAY, triggerMessageId: null });

        const triggers = [{ flowId: 'winback', event, before: cutoff }];
        const first = await store.inactiveCustomers({ triggers, cursor: null, limit: 2 });
        const found = [...first.customers];
        let cursor = first.nextCursor;
        expect(cursor).not.toBeNull();
        while (cursor) {
          const page = await store.inactiveCustomers({ triggers, cursor, limit: 2 });
          found.push(...page.customers);
          cursor = page.nextCursor;
        }
        expect(found).toEqual([
          { customerId: 'c-a', flowId: 'winback', lastEventAt: cutoff - DAY },
          { customerId: 'c-c', flowId: 'winback', lastEventAt: cutoff - 1 },
          { customerId: 'c-f', flowId: 'winback', lastEventAt: cutoff - 9 * DAY },
        ]);
      });
    });

    describe('decisions', () => {
      it('stores each decision key once and lists them oldest first', async () => {
        const customer = unique('c');
        const d1 = decision(`${customer}/1`, customer, 'started');
        const d2 = { ...decision(`${customer}/2`, customer, 'skipped'), flowVersion: null, reason: 'cooldown 7d', eventMessageId: 'm-1', workflowId: 'customer/x' };
        const d3 = decision(`${customer}/3`, customer, 'preempted');

        await store.recordDecisions([d1, d2]);
        const before = await store.tableCounts();
        await store.recordDecisions([d1, d2]);
        await store.recordDecisions([]);
        expect(await store.tableCounts()).toEqual(before);
        await store.recordDecisions([{ ...d2, outcome: 'started' }, d3]);

        expect(await store.decisionsOf(customer)).toEqual([d1, d2, d3]);
        expect(await store.decisionsOf(unique('nobody'))).toEqual([]);
      });

      it('records a large batch in one call', async () => {
        const customer = unique('c');
        const many = Array.from({ length: 1200 }, (_, i) => decision(`${customer}/${i}`, customer));
        await store.recordDecisions(many);
        expect((await store.decisionsOf(customer)).map((d) => d.key)).toEqual(many.map((d) => d.key));
      });
    });

    describe('delivery ledger', () => {
      it('claims a delivery key once; a retry gets the first claim back', async () => {
        const customer = unique('c');
        const key = unique('dk');
        const first = await store.claimSend(send(key, customer));
        expect(first).toEqual({ claimed: true, record: { ...send(key, customer), status: 'pending', sentAt: null, messageId: null, fallbacks: [] } });

        const retry = await store.claimSend(send(key, customer, { subject: 'changed on retry' }));
        expect(retry).toEqual({ claimed: false, record: first.record });
        expect(await store.listSends({ customerId: customer })).toEqual([first.record]);
      });

      it('keeps the template fallbacks a send used', async () => {
        const customer = unique('c');
        const key = unique('dk');
        const fallbacks = [{ at: 'templates/cart-reminder.mjml:9', expression: '#if profile.first_name', reason: 'empty or missing' }];
        const claimed = await store.claimSend({ ...send(key, customer), fallbacks });
        expect(claimed.record.fallbacks).toEqual(fallbacks);
        expect((await store.listSends({ customerId: customer }))[0]!.fallbacks).toEqual(fallbacks);
      });

      it('completes an SMTP send once; a second completion keeps the first', async () => {
        const customer = unique('c');
        const key = unique('dk');
        await store.claimSend(send(key, customer, { transport: 'smtp' }));
        await store.completeSend(key, '<m1@example.com>', NOW + 100);
        await store.completeSend(key, '<m2@example.com>', NOW + 200);
        expect(await store.listSends({ customerId: customer })).toEqual([
          expect.objectContaining({ deliveryKey: key, status: 'sent', messageId: '<m1@example.com>', sentAt: NOW + 100 }),
        ]);
        await expect(store.completeSend(unique('never-claimed'), '<m3@example.com>', NOW)).rejects.toThrow(/claimSend/);
      });

      it('writes an outbox message exactly once per delivery key and marks the send delivered', async () => {
        const customer = unique('c');
        const to = `${customer}@example.com`;
        const key = unique('dk');
        await store.claimSend(send(key, customer));
        const before = await store.tableCounts();

        await store.deliverToOutbox(outboxMessage(key, to, NOW + 7), '<o1@example.com>');
        await store.deliverToOutbox({ ...outboxMessage(key, to, NOW + 8), subject: 'retry' }, '<o2@example.com>');

        const after = await store.tableCounts();
        expect(after.outbox).toBe((before.outbox ?? 0) + 1);
        expect(await store.listOutbox({ to })).toEqual([outboxMessage(key, to, NOW + 7)]);
        expect(await store.listSends({ customerId: customer })).toEqual([
          expect.objectContaining({ status: 'sent', messageId: '<o1@example.com>', sentAt: NOW + 7 }),
        ]);
      });

      it('refuses to deliver an unclaimed key and writes nothing', async () => {
        const before = await store.tableCounts();
        await expect(store.deliverToOutbox(outboxMessage(unique('dk'), 'x@example.com'), '<x@example.com>')).rejects.toThrow(/claimSend/);
        expect(await store.tableCounts()).toEqual(before);
      });

      it('lists the outbox newest last, by recipient, and the newest few with a limit', async () => {
        const customer = unique('c');
        const to = `${customer}@example.com`;
        const keys = [unique('dk'), unique('dk'), unique('dk')];
        for (const key of keys) {
          await store.claimSend(send(key, customer));
          await store.deliverToOutbox(outboxMessage(key, to), `<${key}@example.com>`);
        }
        const other = unique('dk');
        await store.claimSend(send(other, 'someone-else'));
        await store.deliverToOutbox(outboxMessage(other, 'else@example.com'), '<else@example.com>');

        expect((await store.listOutbox({ to })).map((m) => m.deliveryKey)).toEqual(keys);
        expect((await store.listOutbox({ to, limit: 2 })).map((m) => m.deliveryKey)).toEqual(keys.slice(1));
        expect((await store.listOutbox()).slice(-1).map((m) => m.deliveryKey)).toEqual([other]);
      });

      it('filters sends by customer and by workflow', async () => {
        const customer = unique('c');
        const a = send(unique('dk'), customer, { workflowId: 'wf-a', scheduledAt: NOW + 2 });
        const b = send(unique('dk'), customer, { workflowId: 'wf-b', scheduledAt: NOW + 1 });
        await store.claimSend(a);
        await store.claimSend(b);
        expect((await store.listSends({ customerId: customer })).map((s) => s.deliveryKey)).toEqual([b.deliveryKey, a.deliveryKey]);
        expect((await store.listSends({ customerId: customer, workflowId: 'wf-a' })).map((s) => s.deliveryKey)).toEqual([a.deliveryKey]);
      });
    });

    describe('product catalog', () => {
      const productsWith = async (prefix: string) => (await store.catalogProducts()).filter((p) => p.product_id.startsWith(prefix));

      it('stores products with every field, reads them back by id and in id order, and bumps the version', async () => {
        const prefix = unique('cat');
        const bare: Product = { product_id: `${prefix}-b`, name: 'Plain Socks', category: 'Accessories', price: 5, url: 'https://shop.example.com/p/b', stock: null, related_ids: [] };
        const full = product(`${prefix}-a`, { price: 0.1 + 0.2, rating: 4.25, related_ids: [`${prefix}-b`, 'elsewhere'] });
        const before = await store.catalogVersion();

        await store.upsertProducts([bare, full]);

        expect(await store.catalogVersion()).toBeGreaterThan(before);
        expect(await productsWith(prefix)).toEqual([full, bare]);
        expect(await store.catalogProduct(full.product_id)).toEqual(full);
        expect(await store.catalogProduct(bare.product_id)).toEqual(bare);
        expect(await store.catalogProduct(`${prefix}-absent`)).toBeUndefined();
      });

      it('replaces a product with the same id, clearing the fields the new one lacks', async () => {
        const id = unique('cat');
        await store.upsertProducts([product(id)]);
        const version = await store.catalogVersion();
        const replacement: Product = { product_id: id, name: 'Renamed', category: 'Home', price: 12, url: 'https://shop.example.com/p/r', stock: 0, related_ids: [] };

        await store.upsertProducts([replacement]);

        expect(await store.catalogProduct(id)).toEqual(replacement);
        expect(await store.catalogVersion()).toBeGreaterThan(version);
        expect((await store.tableCounts()).catalog_products).toBeGreaterThanOrEqual(1);
      });

      it('writes all of a batch or none of it, even across statements', async () => {
        const prefix = unique('cat');
        const version = await store.catalogVersion();
        const count = (await store.tableCounts()).catalog_products;
        // 600 products take two insert statements; the bad one is in the second.
        const batch = Array.from({ length: 600 }, (_, i) => product(`${prefix}-${String(i).padStart(3, '0')}`));
        batch[599] = { ...batch[599]!, name: null as unknown as string };

        // Matched by message, not toThrow(): a SqliteError created by better-sqlite3 loaded in an earlier test file
        // (jest gives each file its own globals, the native addon keeps the first file's error class) is not an
        // `instanceof Error` here, and toThrow() would call the rejection "did not throw".
        await expect(store.upsertProducts(batch)).rejects.toMatchObject({ message: expect.stringMatching(/NOT NULL|not-null/i) });

        expect(await productsWith(prefix)).toEqual([]);
        expect(await store.catalogVersion()).toBe(version);
        expect((await store.tableCounts()).catalog_products).toBe(count);
      });

      it('deletes by id, ignores absent ids, and bumps the version only when something went', async () => {
        const prefix = unique('cat');
        await store.upsertProducts([product(`${prefix}-1`), product(`${prefix}-2`), product(`${prefix}-3`)]);
        const version = await store.catalogVersion();

        expect(await store.deleteProducts([`${prefix}-1`, `${prefix}-3`, `${prefix}-absent`])).toBe(2);
        expect((await productsWith(prefix)).map((p) => p.product_id)).toEqual([`${prefix}-2`]);
        const afterDelete = await store.catalogVersion();
        expect(afterDelete).toBeGreaterThan(version);

        expect(await store.deleteProducts([`${prefix}-1`])).toBe(0);
        expect(await store.deleteProducts([])).toBe(0);
        expect(await store.catalogVersion()).toBe(afterDelete);
      });

      it('leaves the version alone for an empty batch', async () => {
        const version = await store.catalogVersion();
        await store.upsertProducts([]);
        expect(await store.catalogVersion()).toBe(version);
      });

      it('is one catalog for every store on the database: a second one sees the writes and the version', async () => {
        const other = await backend.open();
        const id = unique('cat');
        await store.upsertProducts([product(id)]);
        expect(await other.catalogVersion()).toBe(await store.catalogVersion());
        expect(await other.catalogProduct(id)).toEqual(product(id));
        await other.deleteProducts([id]);
        expect(await store.catalogProduct(id)).toBeUndefined();
        expect(await store.catalogVersion()).toBe(await other.catalogVersion());
      });

      it('takes concurrent upserts of the same products in opposite orders without deadlock, counting each', async () => {
        const other = await backend.open();
        const prefix = unique('cat');
        const batch = Array.from({ length: 20 }, (_, i) => product(`${prefix}-${String(i).padStart(2, '0')}`));
        const version = await store.catalogVersion();

        await Promise.all([
          store.upsertProducts(batch.map((p) => ({ ...p, stock: 1 }))),
          other.upsertProducts([...batch].reverse().map((p) => ({ ...p, stock: 2 }))),
          store.upsertProducts(batch.map((p) => ({ ...p, stock: 3 }))),
        ]);

        expect(await store.catalogVersion()).toBe(version + 3);
        const stocks = new Set((await productsWith(prefix)).map((p) => p.stock));
        // One of the three batches was written last, whole.
        expect(stocks.size).toBe(1);
      });
    });
  });
}
