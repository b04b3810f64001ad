// Experiments end to end (issue 16) on the time-skipping test server, on SQLite and PostgreSQL: a flow with a 10%
// holdout and a two-variant ab_split decided on clicks (test/fixtures/experiment-flows), a few hundred customers in
// through HTTP, emails out over a real SMTP socket, clicks on the emails' tracked links and orders through /v1/track,
// each decided by a seeded PRNG with different rates per variant. The test keeps its own log of what it sent and
// simulated and counts from it by the README's rule, sharing no code with the store: the counters and the report
// equal that count (and a rebuild counts the same), the runtime's folder decides the experiment for the variant
// clicked more, every later entrant gets the winner, and the holdout got nothing.
import path from 'node:path';
import type { Store } from '../../store/store';
import { adminFetch, post, waitUntil } from '../support/http';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';
import type { ReceivedMail } from '../support/smtp-sink';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FIXTURES = path.join(PROJECT_ROOT, 'test/fixtures/experiment-flows');
const FLOW = 'cart-experiment';
const EXPERIMENT = 'cart-experiment-subject';
/** The fixture's attribution window. */
const WINDOW = 2 * DAY;
const SPLIT_STEP = 'steps[1]';
type Variant = 'reminder' | 'discount';
const VARIANTS: readonly Variant[] = ['reminder', 'discount'];
/** The send step of each variant, as the compiler names it. */
const SEND_STEP: Record<Variant, string> = { reminder: 'steps[1].variants[0].steps[0]', discount: 'steps[1].variants[1].steps[0]' };
/** Which template an email came from, read from its subject (cart-reminder's and cart-discount's with 15%). */
const SUBJECTS: ReadonlyArray<[Variant, RegExp]> = [
  ['reminder', /^Ana, you left something in your cart$/],
  ['discount', /^15% off the items in your cart$/],
];
const HOLDOUT = '(holdout)';
/** Customers who enter before the experiment can decide, and after it has. */
const FIRST_COHORT = 240;
const LATER_COHORT = 40;

const seed = runSeed('experiments');

/** In the cart: the image links to the product, a second tracked link in every email. */
const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, quantity: 1, image_url: 'https://shop.example/img/sku-1.jpg', url: 'https://shop.example/p/sku-1' };

interface Order {
  /** the order's own time (flow time), epoch ms */
  at: number;
  revenue: number;
}

/** One customer as the test saw them: what it sent in, what came out at the SMTP sink, what it simulated. */
interface Entrant {
  id: string;
  cohort: 'first' | 'later';
  /** flow time just before the trigger was sent */
  triggeredAt: number;
  /** the store's entry says so; checked against what the sink received */
  holdout: boolean;
  workflowId: string;
  /** the email received, its variant read from the subject, its send time from its Date header */
  mail: { variant: Variant; deliveryKey: string; sentAt: number; links: string[] } | null;
  /** distinct tracked links followed */
  clicks: number;
  orders: Order[];
}

interface Count {
  count: number;
  amount: number;
  amountSquares: number;
}

const cell = (stepId: string, variant: string, metric: string) => `${stepId} | ${variant} | ${metric}`;

/**
 * The counters the log implies, from the README's definitions: entries per cohort (holdout apart); first assignments
 * per variant (the first cohort's customers who were sent a variant: later entrants get the winner without an
 * assignment); sends; unique clicks per send; and each order within the attribution window of the send it follows
 * (send level) and of the entry (flow level), with its revenue. Times are coarse on purpose: every order is minutes after
 * its customer's email or days past the window, so rounding (the Date header has whole seconds) cannot matter.
 */
function expectedCounters(log: readonly Entrant[]): Record<string, Count> {
  const counts: Record<string, Count> = {};
  const add = (stepId: string, variant: string, metric: string, amount = 0) => {
    const c = (counts[cell(stepId, variant, metric)] ??= { count: 0, amount: 0, amountSquares: 0 });
    c.count += 1;
    c.amount += amount;
    c.amountSquares += amount * amount;
  };
  for (const e of log) {
    const cohort = e.holdout ? HOLDOUT : '';
    add('', cohort, 'entered');
    if (e.mail) {
      const { variant } = e.mail;
      if (e.cohort === 'first') add(SPLIT_STEP, variant, 'assigned');
      add(SEND_STEP[variant], variant, 'sent');
      if (e.clicks > 0) add(SEND_STEP[variant], variant, 'clicked');
    }
    for (const order of e.orders) {
      if (e.mail && order.at >= e.mail.sentAt && order.at - e.mail.sentAt <= WINDOW) add(SEND_STEP[e.mail.variant], e.mail.variant, 'converted', order.revenue);
      if (order.at >= e.triggeredAt && order.at - e.triggeredAt <= WINDOW) add('', cohort, 'converted', order.revenue);
    }
  }
  return counts;
}

async function countersOf(store: Store): Promise<Record<string, Count>> {
  const counts: Record<string, Count> = {};
  for (const row of await store.metricsOf({ flowId: FLOW })) {
    expect([row.flowId, row.flowVersion]).toEqual([FLOW, 1]);
    counts[cell(row.stepId, row.variant, row.metric)] = { count: row.count, amount: row.amount, amountSquares: row.amountSquares };
  }
  return counts;
}

/** Folds every event recorded so far into the counters (the runtime's folder may be folding too: that is safe). */
async function foldAll(stack: TimeSkippingStack): Promise<void> {
  const flows = stack.runtime.dispatcher.currentFlows();
  await waitUntil('the fold to catch up with the events', async () => (await stack.runtime.store.foldMetrics({ flows })).caughtUp);
}

for (const database of stackDatabases('experiments')) {
  describeOn(database, `an experiment with a holdout on ${database}`, () => {
    let stack: TimeSkippingStack;
    const random = seededRandom(seed);
    const log: Entrant[] = [];
    // Which variant gets clicked more is the seed's choice, so the winner is not the first variant by construction.
    const better: Variant = random() < 0.5 ? 'reminder' : 'discount';
    const worse: Variant = better === 'reminder' ? 'discount' : 'reminder';
    const CLICK_RATE: Record<Variant, number> = { [better]: 0.6, [worse]: 0.05 } as Record<Variant, number>;
    const ORDER_RATE: Record<Variant | 'holdout', number> = { reminder: 0.15, discount: 0.3, holdout: 0.2 };
    let decidedWinner: string | null = null;

    beforeAll(async () => {
      // The runtime's own folder (every second here) folds the clicks and runs the winner check after each pass.
      stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: FIXTURES, MICROFLOWS_METRICS_EVERY: '1s' }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    const store = () => stack.runtime.store;
    const mailsTo = (id: string): ReceivedMail[] => stack.smtp.messages.filter((m) => m.to.includes(`${id}@example.com`));

    /** Identifies `count` new customers with consent and adds a shoe to each one's cart; returns them once each has entered. */
    async function enter(cohort: Entrant['cohort'], count: number): Promise<Entrant[]> {
      const ids = Array.from({ length: count }, (_, i) => `${database}-${seed}-${cohort}-${i}`);
      const triggeredAt = await stack.env.currentTimeMs();
      for (let from = 0; from < ids.length; from += 100) {
        const batch = ids.slice(from, from + 100).flatMap((id) => [
          { type: 'identify', userId: id, messageId: `${id}-identify`, traits: { email: `${id}@example.com`, first_name: 'Ana', consent: { email_marketing: true } } },
          { type: 'track', userId: id, messageId: `${id}-added`, event: 'Product Added', properties: shoe },
        ]);
        const res = await post(`${stack.url}/v1/batch`, { batch }, WRITE_KEY);
        expect(res).toMatchObject({ status: 200, json: { accepted: batch.length, rejected: [] } });
      }
      await stack.runtime.dispatcher.idle();
      const entries = await waitUntil(
        `a ${FLOW} run for each of ${count} customers`,
        async () => {
          const found = await Promise.all(ids.map(async (id) => (await store().flowEntriesOf(id)).filter((e) => e.flowId === FLOW)));
          return found.every((e) => e.length > 0) ? found : undefined;
        },
        60_000,
      );
      const entrants = entries.map((runs, i): Entrant => {
        expect(runs).toHaveLength(1);
        const entry = runs[0]!;
        return { id: ids[i]!, cohort, triggeredAt, holdout: entry.holdout === true, workflowId: entry.workflowId, mail: null, clicks: 0, orders: [] };
      });
      log.push(...entrants);
      return entrants;
    }

    /**
     * Skips the flow's wait and reads each customer's email once their send step has done its work: delivered (the
     * ledger says sent after the SMTP server took it) or held out. The runs then wait a week for an order.
     */
    async function sendsGoOut(entrants: Entrant[]): Promise<void> {
      await stack.env.sleep('1h');
      await waitUntil(
        'every send step to deliver or hold out',
        async () => {
          const done = await Promise.all(
            entrants.map(async (e) =>
              e.holdout
                ? (await store().decisionsOf(e.id)).some((d) => d.flowId === FLOW && d.outcome === 'held_out')
                : (await store().listSends({ customerId: e.id })).some((s) => s.status === 'sent'),
            ),
          );
          return done.every(Boolean);
        },
        60_000,
      );
      for (const e of entrants) {
        const mails = mailsTo(e.id);
        if (e.holdout) {
          expect([e.id, mails.length]).toEqual([e.id, 0]);
          continue;
        }
        expect([e.id, mails.length]).toEqual([e.id, 1]);
        const mail = mails[0]!;
        const variant = SUBJECTS.find(([, subject]) => subject.test(mail.subject))?.[0];
        expect([e.id, mail.subject, variant]).toEqual([e.id, mail.subject, expect.any(String)]);
        const links = [...new Set([...mail.html.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!).filter((href) => href.startsWith(`${stack.url}/t/c/`)))];
        // The call to action and the product image.
        expect(links.length).toBeGreaterThanOrEqual(2);
        e.mail = { variant: variant!, deliveryKey: mail.rawHeaders.get('x-microflows-delivery-key') ?? '', sentAt: mail.date.getTime(), links };
      }
    }

    /** Each recipient clicks with their variant's rate, through the real redirect; some follow a second link of the email. */
    async function clickThrough(entrants: Entrant[]): Promise<void> {
      for (const e of entrants) {
        if (!e.mail || random() >= CLICK_RATE[e.mail.variant]) continue;
        for (const link of e.mail.links.slice(0, random() < 0.3 ? 2 : 1)) {
          const res = await fetch(link, { redirect: 'manual' });
          expect(res.status).toBe(302);
          // The landing is tagged with the step and the variant, for the shop's own analytics.
          expect(new URL(res.headers.get('location')!).searchParams.get('utm_content')).toBe(`${SEND_STEP[e.mail.variant]}/${e.mail.variant}`);
          e.clicks += 1;
        }
      }
      await stack.runtime.dispatcher.idle();
    }

    async function order(e: Entrant, at: number): Promise<void> {
      const revenue = Math.round(20 + random() * 360) / 2;
      const n = e.orders.length + 1;
      // Revenue is the `revenue` property, else `total`: both are sent.
      const properties = random() < 0.5 ? { order_id: `${e.id}-o${n}`, revenue } : { order_id: `${e.id}-o${n}`, total: revenue };
      const res = await post(`${stack.url}/v1/track`, { userId: e.id, messageId: `${e.id}-order-${n}`, event: 'Order Completed', properties, timestamp: new Date(at).toISOString() }, WRITE_KEY);
      expect(res.status).toBe(200);
      e.orders.push({ at, revenue });
    }

    it('the first cohort: the holdout is entered and sent nothing, everyone else gets one email of their variant', async () => {
      const first = await enter('first', FIRST_COHORT);
      await sendsGoOut(first);
      const held = first.filter((e) => e.holdout);
      // 10% of 240: a count far outside 6..60 (over four standard deviations) means the holdout is not applied as written.
      expect(held.length).toBeGreaterThanOrEqual(6);
      expect(held.length).toBeLessThanOrEqual(60);
      for (const variant of VARIANTS) expect(first.filter((e) => e.mail?.variant === variant).length).toBeGreaterThanOrEqual(60);

      for (const e of first) {
        const decisions = (await store().decisionsOf(e.id)).filter((d) => d.flowId === FLOW);
        const heldOut = decisions.filter((d) => d.outcome === 'held_out');
        expect([e.id, heldOut.length]).toEqual([e.id, e.holdout ? 1 : 0]);
        const sends = await store().listSends({ customerId: e.id });
        const assigned = decisions.filter((d) => d.outcome === 'assigned').map((d) => d.reason);
        const assignment = await store().assignmentOf(EXPERIMENT, e.id);
        if (e.holdout) {
          expect([e.id, sends]).toEqual([e.id, []]);
          // The run walks a variant, but a customer sent nothing is no variant's recipient.
          expect([e.id, assigned, assignment]).toEqual([e.id, [expect.stringMatching(/not recorded: the customer is in the flow's holdout/)], undefined]);
          continue;
        }
        // The send records the experiment and the variant the customer was sent, as the assignment does.
        expect(sends.map((s) => [s.deliveryKey, s.status, s.nodeId, s.experimentId, s.variant])).toEqual([
          [e.mail!.deliveryKey, 'sent', SEND_STEP[e.mail!.variant], EXPERIMENT, e.mail!.variant],
        ]);
        expect([e.id, assigned, assignment?.variant]).toEqual([e.id, [expect.stringContaining(`variant ${e.mail!.variant}: bucket`)], e.mail!.variant]);
      }
      expect(await store().experimentOf(EXPERIMENT)).toMatchObject({ state: 'running', winner: null, flowId: FLOW, stepId: SPLIT_STEP });
    });

    it('clicks at very different rates per variant: the runtime decides the experiment for the variant clicked more', async () => {
      await clickThrough(log);
      const experiment = await waitUntil(
        'the runtime to conclude the experiment',
        async () => {
          const found = await store().experimentOf(EXPERIMENT);
          return found && found.state !== 'running' ? found : undefined;
        },
        60_000,
      );
      expect(experiment).toMatchObject({ state: 'decided', winner: better, decidedAt: expect.any(Number) });
      expect(experiment.reason).toMatch(new RegExp(`^${better} wins on click rate: it beats ${worse} by \\+`));
      // Its recipients were the customers mailed each variant, holdout apart (all assigned before the first click).
      const mailed = (variant: Variant) => log.filter((e) => e.mail?.variant === variant).length;
      const figures = experiment.figures as { variants: Array<{ name: string; recipients: number }> };
      expect(figures.variants.map((v) => [v.name, v.recipients])).toEqual(VARIANTS.map((v) => [v, mailed(v)]));
      decidedWinner = experiment.winner;
    });

    it('customers entering after the decision all get the winner; the holdout still gets nothing', async () => {
      expect(decidedWinner).toBe(better);
      const later = await enter('later', LATER_COHORT);
      await sendsGoOut(later);
      expect(later.filter((e) => !e.holdout).length).toBeGreaterThan(0);
      for (const e of later) {
        const decisions = (await store().decisionsOf(e.id)).filter((d) => d.flowId === FLOW);
        expect([e.id, decisions.filter((d) => d.outcome === 'held_out').length]).toEqual([e.id, e.holdout ? 1 : 0]);
        if (e.holdout) continue;
        expect([e.id, e.mail!.variant]).toEqual([e.id, better]);
        const sends = await store().listSends({ customerId: e.id });
        expect(sends.map((s) => [s.nodeId, s.experimentId, s.variant])).toEqual([[SEND_STEP[better], EXPERIMENT, better]]);
        expect(decisions.filter((d) => d.outcome === 'assigned').map((d) => d.reason)).toEqual([expect.stringContaining(`variant ${better}: the experiment decided for ${better}`)]);
      }
      await clickThrough(later);
    });

    it('orders at different rates per variant, and in the holdout, some past the attribution window', async () => {
      const now = await stack.env.currentTimeMs();
      // The first holdout customer orders whatever the draw: the holdout's conversions are never an empty comparison.
      const firstHeld = log.find((e) => e.holdout);
      for (const e of log) {
        if (e !== firstHeld && random() >= ORDER_RATE[e.mail?.variant ?? 'holdout']) continue;
        // Within the window: minutes to hours after the email (and the entry); a second order is a second conversion.
        await order(e, now + Math.floor(1 + random() * 600) * 60_000);
        if (random() < 0.1) await order(e, now + Math.floor(601 + random() * 600) * 60_000);
      }
      // Dated three days on, past the two-day window after the email and after the entry: no conversion of this flow.
      // (Dated ahead rather than skipped to: see the fixture on why no run may end while the test skips time.)
      for (const e of log) if (random() < 0.05) await order(e, now + 3 * DAY);
      await stack.runtime.dispatcher.idle();
      // Every run whose customer ordered ended on its goal (the rest wait out the week).
      const ordered = log.filter((e) => e.orders.length > 0);
      expect(ordered.length).toBeGreaterThan(0);
      const ends = await waitUntil(
        'the runs of customers who ordered to end',
        async () => {
          const runs = await Promise.all(ordered.map((e) => store().getFlowEntry(e.workflowId)));
          return runs.every((r) => r?.outcome != null) ? runs : undefined;
        },
        60_000,
      );
      expect(new Set(ends.map((r) => r!.outcome))).toEqual(new Set(['converted']));
    });

    it("the counters equal the log's own count, the report shows them, and a rebuild counts the same", async () => {
      // Nothing was held back from the holdout's mailboxes or mistaken for an email of this flow.
      const addresses = new Set(log.map((e) => `${e.id}@example.com`));
      expect(stack.smtp.messages.filter((m) => [...addresses].some((a) => m.to.includes(a))).length).toBe(log.filter((e) => e.mail).length);
      for (const e of log.filter((x) => x.holdout)) expect([e.id, mailsTo(e.id)]).toEqual([e.id, []]);

      await foldAll(stack);
      const expected = expectedCounters(log);
      // Enough happened for the comparison to mean something.
      expect(expected[cell('', HOLDOUT, 'converted')]?.count ?? 0).toBeGreaterThan(0);
      for (const variant of VARIANTS) expect(expected[cell(SEND_STEP[variant], variant, 'converted')]?.count ?? 0).toBeGreaterThan(0);
      expect(await countersOf(store())).toEqual(expected);

      const res = await adminFetch(`${stack.url}/api/reports/flows/${FLOW}`);
      expect(res.status).toBe(200);
      const report = (await res.json()) as ReportJson;
      const flow = report.flows.find((f) => f.flowId === FLOW)!;
      const of = (stepId: string, variant: string, metric: string) => expected[cell(stepId, variant, metric)] ?? { count: 0, amount: 0, amountSquares: 0 };
      const cohort = (variant: string) => ({ entered: of('', variant, 'entered').count, converted: of('', variant, 'converted').count, revenue: of('', variant, 'converted').amount });
      expect(flow.holdout).toBe(0.1);
      expect({ treatment: pick(flow.entrants.treatment), holdout: pick(flow.entrants.holdout) }).toEqual({ treatment: cohort(''), holdout: cohort(HOLDOUT) });
      expect(flow.lift).not.toBeNull();
      const steps = flow.versions.find((v) => v.version === 1)!.steps;
      const rows = steps.flatMap((s) => s.variants.map((v) => ({ stepId: s.stepId, ...v })));
      const funnel = (stepId: string, variant: string) => ({
        stepId,
        variant,
        assigned: of(stepId, variant, 'assigned').count,
        sent: of(stepId, variant, 'sent').count,
        clicked: of(stepId, variant, 'clicked').count,
        converted: of(stepId, variant, 'converted').count,
        revenue: of(stepId, variant, 'converted').amount,
      });
      for (const variant of VARIANTS) {
        expect(rows.filter((r) => r.stepId === SPLIT_STEP && r.variant === variant).map(pickFunnel)).toEqual([funnel(SPLIT_STEP, variant)]);
        expect(rows.filter((r) => r.stepId === SEND_STEP[variant] && r.variant === variant).map(pickFunnel)).toEqual([funnel(SEND_STEP[variant], variant)]);
      }
      const experiment = flow.experiments.find((x) => x.experimentId === EXPERIMENT)!;
      expect(experiment).toMatchObject({ state: 'decided', winner: better, stepId: SPLIT_STEP });
      expect(experiment.variants.map((v) => [v.name, v.assigned])).toEqual(VARIANTS.map((v) => [v, of(SPLIT_STEP, v, 'assigned').count]));

      await store().rebuildMetrics(stack.runtime.dispatcher.currentFlows());
      await foldAll(stack);
      expect(await countersOf(store())).toEqual(expected);
    });
  });
}

/** The slice of GET /api/reports/flows/:flowId (core/flow-report FlowsReport) this test reads. */
interface ReportJson {
  flows: Array<{
    flowId: string;
    holdout: number | null;
    entrants: { treatment: CohortJson; holdout: CohortJson };
    lift: unknown;
    versions: Array<{ version: number; steps: Array<{ stepId: string; variants: FunnelJson[] }> }>;
    experiments: Array<{ experimentId: string; stepId: string; state: string; winner: string | null; variants: Array<{ name: string; assigned: number }> }>;
  }>;
}

interface CohortJson {
  entered: number;
  converted: number;
  revenue: number;
}

interface FunnelJson {
  variant: string;
  assigned: number;
  sent: number;
  clicked: number;
  converted: number;
  revenue: number;
}

function pick(c: CohortJson): CohortJson {
  return { entered: c.entered, converted: c.converted, revenue: c.revenue };
}

function pickFunnel(r: FunnelJson & { stepId: string }) {
  return { stepId: r.stepId, variant: r.variant, assigned: r.assigned, sent: r.sent, clicked: r.clicked, converted: r.converted, revenue: r.revenue };
}
