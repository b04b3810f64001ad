// Frequency caps end to end on the time-skipping test server (issue 15): fixture flows in different groups
// (test/fixtures/cap-flows), so arbitration lets them all run and only the send policy's 1-per-24h cap stands
// between them; events in through HTTP, emails out over a real SMTP socket, on SQLite and PostgreSQL.
import path from 'node:path';
import type { DecisionRecord, SendRecord, Store } from '../../store/store';
import { post, waitUntil } from '../support/http';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';
import type { ReceivedMail } from '../support/smtp-sink';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FIXTURES = path.join(PROJECT_ROOT, 'test/fixtures/cap-flows');

/** The cap of both fixture policies, as decision reasons name it. */
const CAP = /cap marketing-daily \(1 per (1d|24h)\)/;

interface CapStack {
  stack: () => TimeSkippingStack;
  identify(userId: string): Promise<void>;
  track(userId: string, event: string, properties?: Record<string, unknown>): Promise<void>;
  runOf(userId: string, flowId: string): Promise<string>;
  result(workflowId: string): Promise<{ outcome: string; reason: string; sends: number }>;
  /** How many times the run's send step asked the sendEmail activity (the first ask, then one per deferral). */
  sendAsks(workflowId: string): Promise<number>;
  mailsTo(userId: string): ReceivedMail[];
  sendsOf(userId: string): Promise<SendRecord[]>;
  decisionsOf(userId: string, outcome: string): Promise<DecisionRecord[]>;
}

/** Starts a stack on `flowsDir` around the enclosing describe, with the helpers the scenarios share. */
function capStack(database: 'sqlite' | 'postgres', flowsDir: string): CapStack {
  let stack: TimeSkippingStack | undefined;
  beforeAll(async () => {
    stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir }, database);
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });
  const current = () => stack!;
  return {
    stack: current,
    async identify(userId) {
      const res = await post(`${current().url}/v1/identify`, { userId, traits: { email: `${userId}@example.com`, first_name: 'Ana', consent: { email_marketing: true } } }, WRITE_KEY);
      expect(res.status).toBe(200);
    },
    async track(userId, event, properties = {}) {
      const res = await post(`${current().url}/v1/track`, { userId, event, properties }, WRITE_KEY);
      expect(res.status).toBe(200);
      // The 200 comes after the durable write; the signal to Temporal follows: wait for it before skipping time.
      await current().runtime.dispatcher.idle();
    },
    async runOf(userId, flowId) {
      const entry = await waitUntil(`a ${flowId} run for ${userId}`, async () => (await current().runtime.store.flowEntriesOf(userId)).find((e) => e.flowId === flowId));
      return entry.workflowId;
    },
    result(workflowId) {
      return current().env.client.workflow.getHandle(workflowId).result();
    },
    async sendAsks(workflowId) {
      const { events } = await current().env.client.workflow.getHandle(workflowId).fetchHistory();
      return (events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendEmail').length;
    },
    mailsTo(userId) {
      return current().smtp.messages.filter((m) => m.to.includes(`${userId}@example.com`));
    },
    async sendsOf(userId) {
      return (await current().runtime.store.listSends({ customerId: userId })).sort((a, b) => a.scheduledAt - b.scheduledAt);
    },
    async decisionsOf(userId, outcome) {
      return (await current().runtime.store.decisionsOf(userId)).filter((d) => d.outcome === outcome);
    },
  };
}

/** Every pair of the times is at least a day apart: no 24-hour window holds two of them. */
function expectADayApart(times: number[], slackMs = 0): void {
  const sorted = [...times].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 1]!).toBeGreaterThanOrEqual(DAY - slackMs);
}

/**
 * `at` is at or just after `slot` (a timer fires a few ms after the time it was set for, on the workflow's clock):
 * the send went when the slot opened, not before and not a retry later.
 */
function expectSoonAfter(at: number, slot: number): void {
  expect(at).toBeGreaterThanOrEqual(slot);
  expect(at - slot).toBeLessThan(5_000);
}

type Reservation = Parameters<Store['reserveSend']>[0];

/**
 * Puts `gate` in front of every slot reservation the worker's activities make (they share the runtime's store), so a
 * test can force an interleaving: a reservation starts once its gate resolves. Returns the undo.
 */
function gateReservations(store: Store, gate: (send: Reservation) => Promise<void>, after: (send: Reservation) => void = () => undefined): () => void {
  const reserve = store.reserveSend;
  store.reserveSend = async (send, slot) => {
    await gate(send);
    try {
      return await reserve.call(store, send, slot);
    } finally {
      after(send);
    }
  };
  return () => {
    store.reserveSend = reserve;
  };
}

const flowOf = (mail: ReceivedMail): string => String(mail.headers.get('x-microflows-flow')).split('@')[0]!;
const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes', quantity: 1 };

/** Browse, cart and winback within an hour: winback (due first) at 15m, browse at 40m, cart at 1h20m. */
async function triggerAllThree(s: CapStack, userId: string): Promise<{ browse: string; cart: string; winback: string }> {
  await s.identify(userId);
  await s.track(userId, 'Lapsed');
  const winback = await s.runOf(userId, 'cap-winback');
  await s.stack().env.sleep('10m');
  await s.track(userId, 'Product Viewed', shoe);
  const browse = await s.runOf(userId, 'cap-browse');
  await s.stack().env.sleep('10m');
  await s.track(userId, 'Product Added', shoe);
  const cart = await s.runOf(userId, 'cap-cart');
  return { browse, cart, winback };
}

for (const database of stackDatabases('frequency-caps')) {
  describeOn(database, `on ${database}`, () => {
    describe('1 per 24h with on_cap: defer', () => {
      const s = capStack(database, path.join(FIXTURES, 'defer'));

      it('browse, cart and winback within an hour: one email a day, the waiting ones in priority order, each deferral logged', async () => {
        const runs = await triggerAllThree(s, 'defer-1');
        // Past every run's send time: winback took the day's slot; browse and cart wait for the same next slot.
        await s.stack().env.sleep('2h');
        const [first] = await waitUntil('the winback email', async () => {
          const sends = await s.sendsOf('defer-1');
          return sends.length === 1 && sends[0]!.status === 'sent' ? sends : undefined;
        });
        expect(first!.flowId).toBe('cap-winback');
        const waiting = await waitUntil('browse and cart waiting for a slot', async () => {
          const rows = await s.stack().runtime.store.sendWaitsOf('defer-1');
          return rows.length === 2 ? rows : undefined;
        });
        expect(waiting.map((w) => w.flowId).sort()).toEqual(['cap-browse', 'cap-cart']);
        for (const w of waiting) expect(w.until).toBe(first!.scheduledAt + DAY);
        expect(s.mailsTo('defer-1')).toHaveLength(1);

        // When the slot opens both ask again at the same moment. Make it the worst order: browse (lower) asks first,
        // cart only once browse has had its answer; browse must step back and leave the slot to cart.
        const slot = first!.scheduledAt + DAY;
        let browseAsked!: () => void;
        const browseHasAsked = new Promise<void>((resolve) => (browseAsked = resolve));
        const atSlot = (send: Reservation, flowId: string) => send.customerId === 'defer-1' && send.flowId === flowId && send.scheduledAt >= slot;
        const ungate = gateReservations(
          s.stack().runtime.store,
          (send) => (atSlot(send, 'cap-cart') ? browseHasAsked : Promise.resolve()),
          (send) => atSlot(send, 'cap-browse') && browseAsked(),
        );
        try {
          await expect(s.result(runs.cart)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
          await expect(s.result(runs.browse)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
          await expect(s.result(runs.winback)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
        } finally {
          ungate();
          browseAsked(); // never leave cart's ask hanging, whatever failed
        }

        // One email a day: each a day after the one before, and in priority order among the waiting (cart, 90, before
        // browse, 50, though browse was due 40 minutes earlier).
        const sends = await s.sendsOf('defer-1');
        expect(sends.map((x) => x.flowId)).toEqual(['cap-winback', 'cap-cart', 'cap-browse']);
        expect(sends.every((x) => x.status === 'sent')).toBe(true);
        expectADayApart(sends.map((x) => x.scheduledAt));
        // ... and each went when the slot it waited for opened.
        expectSoonAfter(sends[1]!.scheduledAt, sends[0]!.scheduledAt + DAY);
        expectSoonAfter(sends[2]!.scheduledAt, sends[1]!.scheduledAt + DAY);
        // The SMTP sink got exactly those, with their flow times in the Date header (whole seconds).
        const mails = await waitUntil('three emails', async () => (s.mailsTo('defer-1').length >= 3 ? s.mailsTo('defer-1') : undefined));
        expect(mails).toHaveLength(3);
        expect([...mails].sort((a, b) => a.date.getTime() - b.date.getTime()).map(flowOf)).toEqual(['cap-winback', 'cap-cart', 'cap-browse']);
        expectADayApart(mails.map((m) => m.date.getTime()), 1000);
        expect(mails.map((m) => m.messageId).sort()).toEqual(sends.map((x) => x.messageId).sort());

        // Each deferral is in the decision log, naming the cap: one per ask that did not send.
        const deferred = await s.decisionsOf('defer-1', 'deferred');
        for (const d of deferred) expect(d.reason).toMatch(new RegExp(`^send \\S+ \\((browse|cart)-reminder\\) deferred: ${CAP.source}`));
        const byRun = (workflowId: string) => deferred.filter((d) => d.workflowId === workflowId);
        expect(byRun(runs.winback)).toHaveLength(0);
        expect(byRun(runs.cart)).toHaveLength((await s.sendAsks(runs.cart)) - 1);
        expect(byRun(runs.browse)).toHaveLength((await s.sendAsks(runs.browse)) - 1);
        expect(byRun(runs.cart)).toHaveLength(1);
        expect(byRun(runs.cart)[0]!.reason).toContain(`is full; next slot at ${new Date(sends[0]!.scheduledAt + DAY).toISOString()}`);
        // Browse waited for the slot cart took, stepped back from it when it asked first, then waited for the next.
        expect(byRun(runs.browse).map((d) => d.reason)).toEqual([
          expect.stringContaining(`is full; next slot at ${new Date(slot).toISOString()}`),
          expect.stringContaining('its next slot goes first to flow cap-cart (priority 90 over 50), which waits for it'),
          expect.stringContaining(`is full; next slot at ${new Date(sends[1]!.scheduledAt + DAY).toISOString()}`),
        ]);
        // keyed per ask: nothing is logged twice
        expect(new Set(deferred.map((d) => d.key)).size).toBe(deferred.length);
        expect(await s.decisionsOf('defer-1', 'skipped')).toHaveLength(0);
        expect(await s.stack().runtime.store.sendWaitsOf('defer-1')).toHaveLength(0);
      });

      it("a send deferred by the cap checks the flow's reason again when it asks: a cart emptied meanwhile gets no reminder", async () => {
        await s.identify('defer-requires');
        await s.track('defer-requires', 'Lapsed');
        const winback = await s.runOf('defer-requires', 'cap-winback');
        await s.track('defer-requires', 'Product Added', shoe);
        const cart = await s.runOf('defer-requires', 'cap-cart');
        // Winback sends at 15m; cart, due at 1h, finds the day's slot taken and waits for the next one.
        await s.stack().env.sleep('2h');
        await waitUntil('the cart reminder waiting for a slot', async () => ((await s.stack().runtime.store.sendWaitsOf('defer-requires')).some((w) => w.flowId === 'cap-cart') ? true : undefined));
        await s.track('defer-requires', 'Product Removed', { product_id: shoe.product_id });
        const ended = await s.result(cart);
        expect(ended).toMatchObject({ outcome: 'exited', sends: 0 });
        expect(ended.reason).toContain("the flow's reason no longer holds after waiting 1 time (deferred)");
        await expect(s.result(winback)).resolves.toMatchObject({ sends: 1 });
        expect((await s.sendsOf('defer-requires')).map((x) => x.flowId)).toEqual(['cap-winback']);
        expect(s.mailsTo('defer-requires').map(flowOf)).toEqual(['cap-winback']);
        expect(await s.stack().runtime.store.sendWaitsOf('defer-requires')).toHaveLength(0);
      });

      it('two runs reach a send for one customer in the same second: one send, one deferral', async () => {
        const customers = ['same-second-1', 'same-second-2', 'same-second-3'];
        for (const userId of customers) await s.identify(userId);
        // One event starts both flows (two groups, so neither preempts the other); their waits end at the same moment.
        await Promise.all(customers.map((userId) => s.track(userId, 'Back In Stock', shoe)));
        const runs = await Promise.all(customers.map(async (userId) => ({ alert: await s.runOf(userId, 'restock-alert'), digest: await s.runOf(userId, 'restock-digest') })));
        // Forced concurrency: each customer's two first reservations start together, once both runs have asked, so
        // their transactions overlap (on PostgreSQL they contend for the customer; SQLite has one writer).
        const arrived = new Map<string, Array<() => void>>();
        const ungate = gateReservations(s.stack().runtime.store, (send) => {
          const waiting = arrived.get(send.customerId);
          if (!customers.includes(send.customerId) || (waiting && waiting.length === 0)) return Promise.resolve();
          return new Promise<void>((resolve) => {
            const both = [...(waiting ?? []), resolve];
            if (both.length < 2) return void arrived.set(send.customerId, both);
            arrived.set(send.customerId, []); // released: later asks (the deferred one's retry) pass at once
            for (const release of both) release();
          });
        });
        try {
          await s.stack().env.sleep('1h');
          await waitUntil('both runs of every customer at the gate', async () => customers.every((userId) => arrived.get(userId)?.length === 0));
        } finally {
          ungate();
          for (const release of [...arrived.values()].flat()) release(); // never leave an ask hanging, whatever failed
        }

        for (const userId of customers) {
          const sends = await waitUntil(`both asks of ${userId} answered`, async () => {
            const found = await s.sendsOf(userId);
            const deferred = await s.decisionsOf(userId, 'deferred');
            return found.length + deferred.length >= 2 ? found : undefined;
          });
          expect(sends).toHaveLength(1);
          const deferred = await s.decisionsOf(userId, 'deferred');
          expect(deferred).toHaveLength(1);
          expect(deferred[0]!.reason).toMatch(CAP);
          // The two asks were in the same second of flow time, one from each run.
          expect(Math.abs(deferred[0]!.at - sends[0]!.scheduledAt)).toBeLessThan(1000);
          expect(deferred[0]!.flowId).not.toBe(sends[0]!.flowId);
          expect((await s.stack().runtime.store.sendWaitsOf(userId)).map((w) => w.flowId)).toEqual([deferred[0]!.flowId]);
        }
        for (const userId of customers) {
          const [mail] = await waitUntil(`the email to ${userId}`, async () => (s.mailsTo(userId).length >= 1 ? s.mailsTo(userId) : undefined));
          expect(flowOf(mail!)).toBe((await s.sendsOf(userId))[0]!.flowId);
        }
        expect(customers.flatMap((userId) => s.mailsTo(userId))).toHaveLength(customers.length);

        // The deferred one goes when the day is over, not before.
        for (const [i, userId] of customers.entries()) {
          await expect(s.result(runs[i]!.alert)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
          await expect(s.result(runs[i]!.digest)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
          const sends = await s.sendsOf(userId);
          expect(sends).toHaveLength(2);
          expectSoonAfter(sends[1]!.scheduledAt, sends[0]!.scheduledAt + DAY);
          const mails = await waitUntil(`two emails to ${userId}`, async () => (s.mailsTo(userId).length >= 2 ? s.mailsTo(userId) : undefined));
          expect(mails).toHaveLength(2);
          expectADayApart(mails.map((m) => m.date.getTime()), 1000);
        }
      });
    });

    describe('1 per 24h with on_cap: skip', () => {
      const s = capStack(database, path.join(FIXTURES, 'skip'));

      it('browse, cart and winback within an hour: one email, the skipped sends logged and never sent later', async () => {
        const runs = await triggerAllThree(s, 'skip-1');
        await expect(s.result(runs.winback)).resolves.toMatchObject({ outcome: 'completed', sends: 1 });
        await expect(s.result(runs.browse)).resolves.toMatchObject({ outcome: 'completed', sends: 0 });
        await expect(s.result(runs.cart)).resolves.toMatchObject({ outcome: 'completed', sends: 0 });

        const skipped = await s.decisionsOf('skip-1', 'skipped');
        expect(skipped.map((d) => d.workflowId).sort()).toEqual([runs.browse, runs.cart].sort());
        for (const d of skipped) {
          expect(d.reason).toMatch(new RegExp(`^send \\S+ \\((browse|cart)-reminder\\) skipped: ${CAP.source} is full and the flow's on_cap is skip$`));
        }
        expect(await s.decisionsOf('skip-1', 'deferred')).toHaveLength(0);
        expect(await s.stack().runtime.store.sendWaitsOf('skip-1')).toHaveLength(0);

        // Days later, when the cap has long had room again: still the one email.
        await s.stack().env.sleep('4d');
        const sends = await s.sendsOf('skip-1');
        expect(sends.map((x) => x.flowId)).toEqual(['cap-winback']);
        const mails = await waitUntil('the winback email', async () => (s.mailsTo('skip-1').length >= 1 ? s.mailsTo('skip-1') : undefined));
        expect(mails.map(flowOf)).toEqual(['cap-winback']);
        expect(s.stack().smtp.messages).toHaveLength(1);
      });
    });
  });
}
