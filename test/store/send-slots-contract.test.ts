// The send-slot part of the store contract, on SQLite and PostgreSQL: reserveSend reads the customer's recent and
// waiting sends, asks the caller's decision and claims, records a wait or gives up, in one transaction serialized per
// customer — so sends racing for one slot from separate stores (separate pools on PostgreSQL) claim it once; a retry
// of a claimed key keeps its slot without asking; a waiting row keeps its first due time and goes when its send
// claims, gives up or its run ends; a freed slot goes to the higher priority; erase and export cover waiting rows.
import { capLookbackMs, compileSendPolicy, type RecentSend, type SendPolicy } from '../../core/send-policy';
import { decideSlot, YIELD_RETRY_MS, type SlotVerdict, type WaitingSlot } from '../../core/send-slot';
import type { KyselyStore } from '../../store/kysely-store';
import type { ClaimSendInput, ReserveSendResult, SendSlotCounts, SendSlotRow } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 11, 1, 12);
const FILE = 'flows/policy.yaml';
const POLICY = compileSendPolicy('caps:\n  - { name: daily, max: 1, per: 24h }\non_cap: defer\ndefer: { max: 48h }\n', FILE);
const SKIP_POLICY = compileSendPolicy('caps:\n  - { name: daily, max: 1, per: 24h }\non_cap: skip\n', FILE);
const FULL = 'cap daily (1 per 1d) is full';
/** How many sends race for one customer's slot, and how many customers race at once. */
const RACERS = 8;
const RACES = 4;

let sequence = 0;
/** A customer id no other test in the suite (which shares one database) uses. */
const fresh = (name: string) => `${name}-${process.pid}-${++sequence}`;
const iso = (at: number) => new Date(at).toISOString();

type Send = ClaimSendInput & SendSlotCounts;

/** A send of run `run` of the customer, counted as marketing email of group marketing, scheduled now. */
function send(customerId: string, run: string, fields: Partial<Omit<Send, 'deliveryKey' | 'customerId'>> = {}): Send {
  const workflowId = fields.workflowId ?? `${customerId}:${run}`;
  const nodeId = fields.nodeId ?? 'steps[1]';
  return {
    customerId,
    flowId: 'cart',
    flowVersion: 1,
    template: 'cart-reminder',
    to: `${customerId}@example.com`,
    subject: 'Your cart',
    transport: 'outbox',
    scheduledAt: NOW,
    group: 'marketing',
    topic: null,
    category: 'marketing',
    ...fields,
    workflowId,
    nodeId,
    deliveryKey: `${workflowId}/${nodeId}`,
  };
}

/** What rows written before the counts were kept count as: the send step reads them from its flows and templates. */
function toRecent(row: SendSlotRow): RecentSend {
  return { at: row.at, group: row.group ?? 'marketing', topic: row.topic, category: row.category ?? 'marketing' };
}

interface Ask {
  /** when the send was first due; default its scheduledAt */
  dueAt?: number;
  priority?: number;
  policy?: SendPolicy;
  /** sees what the store passes to the decision */
  observe?: (recent: SendSlotRow[], waiting: WaitingSlot[]) => void;
}

/** Asks for a slot the way the send step does: at the send's flow time, through core/send-slot. */
function ask(store: KyselyStore, s: Send, options: Ask = {}): Promise<ReserveSendResult> {
  const policy = options.policy ?? POLICY;
  const now = s.scheduledAt;
  const dueAt = options.dueAt ?? now;
  const priority = options.priority ?? 0;
  const candidate = { deliveryKey: s.deliveryKey, flowId: s.flowId, group: s.group, topic: s.topic, category: s.category, priority };
  return store.reserveSend(s, {
    since: now - capLookbackMs(policy),
    dueAt,
    priority,
    decide: (recent, waiting): SlotVerdict => {
      options.observe?.(recent, waiting);
      return decideSlot(policy, { candidate, now, dueAt }, recent.map(toRecent), waiting);
    },
  });
}

/** The waiting row reserveSend keeps for `s`. */
function waitingRow(s: Send, fields: Pick<WaitingSlot, 'dueAt' | 'until'> & Partial<WaitingSlot>): WaitingSlot {
  return { deliveryKey: s.deliveryKey, flowId: s.flowId, priority: 0, group: s.group, topic: s.topic, category: s.category, ...fields };
}

for (const backend of storeBackends('send-slots-contract')) {
  backend.describe(`send slots under frequency caps in the store: ${backend.name}`, () => {
    let store: KyselyStore;
    /** Separate stores on the same database: on PostgreSQL each has its own pool, so their transactions overlap. */
    const racers: KyselyStore[] = [];

    beforeAll(async () => {
      store = await backend.open();
      racers.push(store);
      while (racers.length < RACERS) racers.push(await backend.open());
    });

    afterAll(() => backend.dispose());

    it('lets exactly one of many sends racing from separate stores take a 1-per-day slot; the rest wait for the next', async () => {
      const customers = Array.from({ length: RACES }, () => fresh('race'));
      const sends = customers.map((customer) => Array.from({ length: RACERS }, (_, i) => send(customer, `run-${i}`, { flowId: `flow-${i}` })));
      const settled = await Promise.allSettled(sends.flatMap((mine) => mine.map((s, i) => ask(racers[i]!, s))));

      const errors = settled.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      expect(errors).toEqual([]);
      const results = settled.map((r) => (r as PromiseFulfilledResult<ReserveSendResult>).value);
      for (const [c, customer] of customers.entries()) {
        const mine = results.slice(c * RACERS, (c + 1) * RACERS);
        const claimed = mine.flatMap((r, i) => (r.outcome === 'claimed' ? [sends[c]![i]!] : []));
        expect(claimed.map((s) => s.deliveryKey)).toHaveLength(1);
        const winner = claimed[0]!;
        expect(mine.filter((r) => r.outcome !== 'claimed')).toEqual(Array(RACERS - 1).fill({ outcome: 'wait', until: NOW + DAY, reason: `${FULL}; next slot at ${iso(NOW + DAY)}` }));
        expect((await store.listSends({ customerId: customer })).map((r) => [r.deliveryKey, r.status, r.scheduledAt])).toEqual([[winner.deliveryKey, 'pending', NOW]]);
        const losers = sends[c]!.filter((s) => s !== winner);
        expect(await store.sendWaitsOf(customer)).toEqual(losers.map((s) => waitingRow(s, { dueAt: NOW, until: NOW + DAY })).sort((a, b) => (a.deliveryKey < b.deliveryKey ? -1 : 1)));
      }
    });

    it('returns a claimed key as existing on retry without asking, even when its own slot fills the cap', async () => {
      const customer = fresh('retry');
      const first = send(customer, 'first');
      const claimed = await ask(store, first);
      expect(claimed).toMatchObject({ outcome: 'claimed', record: { deliveryKey: first.deliveryKey, status: 'pending', scheduledAt: NOW, customerId: customer } });
      const held = send(customer, 'held', { scheduledAt: NOW + HOUR });
      expect(await ask(store, held)).toMatchObject({ outcome: 'wait', until: NOW + DAY });

      const decide = jest.fn((): SlotVerdict => ({ action: 'skip', reason: 'a retry must not be asked' }));
      const retry = { ...first, scheduledAt: NOW + 2 * HOUR, subject: 'changed on retry' };
      expect(await store.reserveSend(retry, { since: NOW + 2 * HOUR - DAY, dueAt: NOW, priority: 0, decide })).toEqual({ outcome: 'existing', record: (claimed as { record: unknown }).record });
      expect(decide).not.toHaveBeenCalled();
      // Through the real decision too: the cap is full with the key's own row, and the key keeps its slot.
      expect(await ask(store, retry)).toEqual({ outcome: 'existing', record: (claimed as { record: unknown }).record });
      expect((await store.listSends({ customerId: customer })).map((r) => r.deliveryKey)).toEqual([first.deliveryKey]);
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(held, { dueAt: NOW + HOUR, until: NOW + DAY })]);
    });

    it('keeps a waiting row’s first due time across waits; drops it when the send claims or gives up', async () => {
      const customer = fresh('waits');
      expect((await ask(store, send(customer, 'first'))).outcome).toBe('claimed');
      const held = send(customer, 'held', { scheduledAt: NOW + HOUR, topic: 'cart-reminders' });
      expect(await ask(store, held, { priority: 2 })).toEqual({ outcome: 'wait', until: NOW + DAY, reason: `${FULL}; next slot at ${iso(NOW + DAY)}` });
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(held, { priority: 2, dueAt: NOW + HOUR, until: NOW + DAY })]);

      // Asked again later with a later due time (and another priority): the retry time and priority move, the due time stays.
      const later = { ...held, scheduledAt: NOW + 2 * HOUR };
      const wait = (): SlotVerdict => ({ action: 'wait', until: NOW + 30 * HOUR, reason: 'later' });
      expect(await store.reserveSend(later, { since: NOW + 2 * HOUR - DAY, dueAt: NOW + 2 * HOUR, priority: 3, decide: wait })).toEqual({ outcome: 'wait', until: NOW + 30 * HOUR, reason: 'later' });
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(held, { priority: 3, dueAt: NOW + HOUR, until: NOW + 30 * HOUR })]);

      // The slot frees a day after the first send: the held send claims it, and its waiting row goes.
      const claimed = await ask(store, { ...held, scheduledAt: NOW + 30 * HOUR }, { dueAt: NOW + HOUR, priority: 3 });
      expect(claimed).toMatchObject({ outcome: 'claimed', record: { deliveryKey: held.deliveryKey, scheduledAt: NOW + 30 * HOUR } });
      expect(await store.sendWaitsOf(customer)).toEqual([]);

      // A send that waits, then gives up (its flow's on_cap is skip), leaves no waiting row behind.
      const dropped = send(customer, 'dropped', { scheduledAt: NOW + 31 * HOUR });
      expect(await ask(store, dropped)).toMatchObject({ outcome: 'wait', until: NOW + 54 * HOUR });
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(dropped, { dueAt: NOW + 31 * HOUR, until: NOW + 54 * HOUR })]);
      expect(await ask(store, { ...dropped, scheduledAt: NOW + 32 * HOUR }, { dueAt: NOW + 31 * HOUR, policy: SKIP_POLICY })).toEqual({ outcome: 'skip', reason: `${FULL} and the flow's on_cap is skip` });
      expect(await store.sendWaitsOf(customer)).toEqual([]);
      expect((await store.listSends({ customerId: customer })).map((r) => r.deliveryKey)).toEqual([send(customer, 'first').deliveryKey, held.deliveryKey]);
    });

    it('drops every waiting row of a run that ended, and only those', async () => {
      const customer = fresh('release');
      const other = fresh('release-other');
      expect((await ask(store, send(customer, 'first'))).outcome).toBe('claimed');
      expect((await ask(store, send(other, 'first'))).outcome).toBe('claimed');
      const ending = [send(customer, 'ending', { nodeId: 'steps[1]' }), send(customer, 'ending', { nodeId: 'steps[4]' })];
      const staying = send(customer, 'staying');
      const elsewhere = send(other, 'ending');
      for (const s of [...ending, staying, elsewhere]) expect((await ask(store, s)).outcome).toBe('wait');
      expect(await store.sendWaitsOf(customer)).toHaveLength(3);

      await store.releaseSendWaits(ending[0]!.workflowId);
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(staying, { dueAt: NOW, until: NOW + DAY })]);
      expect(await store.sendWaitsOf(other)).toEqual([waitingRow(elsewhere, { dueAt: NOW, until: NOW + DAY })]);
      await store.releaseSendWaits(`${customer}:never-ran`);
      expect(await store.sendWaitsOf(customer)).toHaveLength(1);
    });

    it('gives a freed slot to the higher-priority waiting send: the lower one asking first steps back', async () => {
      const customer = fresh('priority');
      expect((await ask(store, send(customer, 'earlier'))).outcome).toBe('claimed');
      const low = send(customer, 'low', { flowId: 'browse', scheduledAt: NOW + HOUR });
      const high = send(customer, 'high', { flowId: 'cart', scheduledAt: NOW + 2 * HOUR });
      expect(await ask(store, low, { priority: 1 })).toMatchObject({ outcome: 'wait', until: NOW + DAY });
      expect(await ask(store, high, { priority: 5 })).toMatchObject({ outcome: 'wait', until: NOW + DAY });

      const slot = NOW + DAY;
      const yielded = await ask(store, { ...low, scheduledAt: slot }, { dueAt: NOW + HOUR, priority: 1 });
      expect(yielded).toEqual({ outcome: 'wait', until: slot + YIELD_RETRY_MS, reason: expect.stringContaining('its next slot goes first to flow cart (priority 5 over 1)') });
      expect(await ask(store, { ...high, scheduledAt: slot }, { dueAt: NOW + 2 * HOUR, priority: 5 })).toMatchObject({ outcome: 'claimed', record: { deliveryKey: high.deliveryKey, scheduledAt: slot } });
      // Back after its minute, the low one finds the slot taken and waits for the next, still counted from when it was due.
      expect(await ask(store, { ...low, scheduledAt: slot + YIELD_RETRY_MS }, { dueAt: NOW + HOUR, priority: 1 })).toMatchObject({ outcome: 'wait', until: slot + DAY });
      expect(await store.sendWaitsOf(customer)).toEqual([waitingRow(low, { priority: 1, dueAt: NOW + HOUR, until: slot + DAY })]);
      expect((await store.listSends({ customerId: customer })).map((r) => r.deliveryKey)).toEqual([send(customer, 'earlier').deliveryKey, high.deliveryKey]);
    });

    it('passes rows claimed without counts (claimSend) with nulls, and the caller’s reading of them fills the cap', async () => {
      const customer = fresh('legacy');
      const legacy = send(customer, 'legacy', { scheduledAt: NOW - HOUR });
      expect((await store.claimSend(legacy)).claimed).toBe(true);
      const seen: SendSlotRow[][] = [];
      const result = await ask(store, send(customer, 'new'), { observe: (recent) => seen.push(recent) });
      expect(seen).toEqual([[{ deliveryKey: legacy.deliveryKey, flowId: 'cart', template: 'cart-reminder', at: NOW - HOUR, group: null, topic: null, category: null }]]);
      expect(result).toEqual({ outcome: 'wait', until: NOW + 23 * HOUR, reason: `${FULL}; next slot at ${iso(NOW + 23 * HOUR)}` });
      expect((await store.listSends({ customerId: customer })).map((r) => r.deliveryKey)).toEqual([legacy.deliveryKey]);
    });

    it('passes the customer’s sends scheduled after `since` (reserved later ones too) with their counts, and no one else’s', async () => {
      const customer = fresh('since');
      const other = fresh('since-other');
      const since = NOW - DAY;
      await store.claimSend(send(customer, 'at-since', { scheduledAt: since }));
      const counted = [
        send(customer, 'just-after', { scheduledAt: since + 1, flowId: 'welcome', template: 'welcome-1', group: 'onboarding', topic: 'welcome-series', category: 'transactional' }),
        send(customer, 'reserved-later', { scheduledAt: NOW + HOUR, group: 'cart', topic: 'cart-reminders' }),
      ];
      // Reserved with a decision that lets everything through: the rows keep their counts.
      const claimAll = (): SlotVerdict => ({ action: 'claim' });
      for (const s of counted) expect((await store.reserveSend(s, { since: s.scheduledAt, dueAt: s.scheduledAt, priority: 0, decide: claimAll })).outcome).toBe('claimed');
      expect((await store.reserveSend(send(other, 'other'), { since, dueAt: NOW, priority: 0, decide: claimAll })).outcome).toBe('claimed');

      const seen: SendSlotRow[][] = [];
      const waitAWhile = (recent: SendSlotRow[]): SlotVerdict => (seen.push(recent), { action: 'wait', until: NOW + 5 * HOUR, reason: 'test' });
      await store.reserveSend(send(customer, 'asking'), { since, dueAt: NOW, priority: 0, decide: waitAWhile });
      const rows = [...seen[0]!].sort((a, b) => a.at - b.at);
      expect(rows).toEqual(counted.map((s) => ({ deliveryKey: s.deliveryKey, flowId: s.flowId, template: s.template, at: s.scheduledAt, group: s.group, topic: s.topic, category: s.category })));
      expect(seen).toHaveLength(1);
    });

    it('passes the customer’s waiting sends to the decision, and no one else’s', async () => {
      const customer = fresh('waiting');
      const other = fresh('waiting-other');
      for (const c of [customer, other]) expect((await ask(store, send(c, 'first'))).outcome).toBe('claimed');
      const held = send(customer, 'held', { scheduledAt: NOW + HOUR, group: 'cart', topic: 'cart-reminders' });
      expect((await ask(store, held, { priority: 4 })).outcome).toBe('wait');
      expect((await ask(store, send(other, 'held'))).outcome).toBe('wait');
      const seen: WaitingSlot[][] = [];
      await ask(store, send(customer, 'asking', { scheduledAt: NOW + 2 * HOUR }), { observe: (_recent, waiting) => seen.push(waiting) });
      expect(seen).toEqual([[waitingRow(held, { priority: 4, dueAt: NOW + HOUR, until: NOW + DAY })]]);
    });

    it('erases a customer’s waiting sends with them and exports them', async () => {
      const customer = fresh('erase');
      const other = fresh('erase-other');
      for (const c of [customer, other]) {
        expect((await ask(store, send(c, 'first'))).outcome).toBe('claimed');
        expect((await ask(store, send(c, 'held', { scheduledAt: NOW + HOUR }), { priority: 2 })).outcome).toBe('wait');
      }
      const waits = [waitingRow(send(customer, 'held', { scheduledAt: NOW + HOUR }), { priority: 2, dueAt: NOW + HOUR, until: NOW + DAY })];
      expect(await store.sendWaitsOf(customer)).toEqual(waits);
      expect((await store.exportCustomer(customer, { at: NOW })).sendWaits).toEqual(waits);

      const otherWaits = await store.sendWaitsOf(other);
      const erased = await store.eraseCustomer(customer, { at: NOW + 2 * HOUR, requestedBy: 'cli' });
      expect(erased.removed.send_waits).toBe(1);
      expect(await store.sendWaitsOf(customer)).toEqual([]);
      expect(await store.sendWaitsOf(other)).toEqual(otherWaits);
      expect(otherWaits).toHaveLength(1);
    });
  });
}
