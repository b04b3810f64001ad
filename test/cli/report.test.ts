// `microflows report` as users run it: the real CLI in a child process on a SQLite store in a temporary
// MICROFLOWS_DATA_DIR, seeded through the store with a flow (a two-variant split and a holdout), entries, assignments,
// sends and the events that followed them — never folded here, so the numbers appear only because the CLI folds first.
// Its counts equal the test's own count from its log; --since picks the period; --json, --csv and the tables say the
// same; an unknown flow, a bad period or two formats exit 1 saying what to write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { NewEvent } from '../../core/event';
import { compileFlow } from '../../core/flow-compiler';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { runCli, type CliRun } from '../support/cli-run';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const GOAL = 'Order Completed';
const SEED = runSeed('test/cli/report.test.ts');
const CONTROL = 'steps[0].variants[0].steps[0]';
const DISCOUNT = 'steps[0].variants[1].steps[0]';
const FOLLOWUP = 'steps[2]';

const FLOW = compileFlow(
  [
    'id: cart',
    'version: 1',
    'priority: 90',
    'holdout: 10%',
    'trigger: { event: Product Added }',
    `exit: { on_event: ${GOAL} }`,
    'steps:',
    '  - ab_split:',
    '      experiment: cart-subject',
    '      variants:',
    '        - { name: control, weight: 50, steps: [ { send: { template: cart-reminder } } ] }',
    '        - { name: discount, weight: 50, steps: [ { send: { template: cart-discount } } ] }',
    '      winner: { metric: click, min_per_variant: 20 }',
    '  - wait: 1d',
    '  - send: { template: cart-followup }',
  ].join('\n') + '\n',
  'flows/cart.yaml',
  { templateExists: () => true, sha256: 'report-test' },
);

interface LoggedSend {
  key: string;
  customerId: string;
  step: string;
  variant: string;
  at: number;
}

/** What the test did and simulated, from which it counts what the report must say. */
interface Log {
  entries: Array<{ customerId: string; at: number; holdout: boolean }>;
  assignments: Array<{ customerId: string; variant: string; at: number }>;
  sends: LoggedSend[];
  opens: Array<{ key: string; machine: boolean }>;
  clicks: Array<{ key: string; at: number }>;
  goals: Array<{ customerId: string; at: number; revenue: number }>;
}

let dataDir: string;
let store: KyselyStore;
let log: Log;
let sequence = 0;

const microflows = (args: string[]): Promise<CliRun> => runCli(args, { MICROFLOWS_DATA_DIR: dataDir });

function track(customerId: string, name: string, properties: Record<string, unknown>, at: number): NewEvent {
  return { messageId: `report-${++sequence}`, type: 'track', customerId, userId: customerId, anonymousId: null, name, properties, traits: {}, context: {}, timestamp: at, receivedAt: at };
}

async function seed(now: number): Promise<Log> {
  const random = seededRandom(SEED);
  const chance = (p: number) => random() < p;
  const out: Log = { entries: [], assignments: [], sends: [], opens: [], clicks: [], goals: [] };
  const events: NewEvent[] = [];
  await store.registerFlowVersion(FLOW);

  const send = async (customerId: string, workflowId: string, step: string, variant: string, at: number): Promise<LoggedSend> => {
    const key = `${workflowId}/${step}`;
    const to = `${customerId}@example.com`;
    await store.claimSend({ deliveryKey: key, customerId, flowId: 'cart', flowVersion: 1, workflowId, nodeId: step, template: 'cart', to, subject: 'Your cart', transport: 'outbox', scheduledAt: at, experimentId: 'cart-subject', variant });
    await store.deliverToOutbox({ deliveryKey: key, to, from: 'shop@example.com', subject: 'Your cart', html: '<p>cart</p>', text: 'cart', headers: {}, createdAt: at }, `<${key}@example.com>`);
    const logged = { key, customerId, step, variant, at };
    out.sends.push(logged);
    return logged;
  };

  // A customer from 40 days ago: outside the default 30 days, inside --since 60d, and always among the experiment's.
  const oldAt = now - 40 * DAY;
  await store.recordFlowEntry({ customerId: 'old', flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId: 'flow/cart/old/1', enteredAt: oldAt, triggerMessageId: null });
  out.entries.push({ customerId: 'old', at: oldAt, holdout: false });
  await store.recordAssignment({ experimentId: 'cart-subject', customerId: 'old', variant: 'control', assignedAt: oldAt, flowId: 'cart', flowVersion: 1, stepId: 'steps[0]', workflowId: 'flow/cart/old/1' });
  out.assignments.push({ customerId: 'old', variant: 'control', at: oldAt });
  await send('old', 'flow/cart/old/1', CONTROL, 'control', oldAt + HOUR);

  const start = now - 10 * DAY;
  for (let i = 0; i < 120; i++) {
    const customerId = `c${i}`;
    const workflowId = `flow/cart/${customerId}/1`;
    const at = start + i * 10 * 60_000;
    const holdout = chance(0.15);
    await store.recordFlowEntry({ customerId, flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId, enteredAt: at, triggerMessageId: null, ...(holdout ? { holdout: true } : {}) });
    out.entries.push({ customerId, at, holdout });
    if (holdout) {
      if (chance(0.1)) events.push(track(customerId, GOAL, { revenue: 0.5 * (1 + Math.floor(random() * 200)) }, at + DAY));
      continue;
    }
    const variant = chance(0.5) ? 'control' : 'discount';
    await store.recordAssignment({ experimentId: 'cart-subject', customerId, variant, assignedAt: at, flowId: 'cart', flowVersion: 1, stepId: 'steps[0]', workflowId });
    out.assignments.push({ customerId, variant, at });
    const sent = [await send(customerId, workflowId, variant === 'control' ? CONTROL : DISCOUNT, variant, at + HOUR)];
    if (chance(0.7)) sent.push(await send(customerId, workflowId, FOLLOWUP, variant, at + DAY + HOUR));
    for (const s of sent) {
      // Repeated opens and clicks: each counts once per send.
      for (let n = Math.floor(random() * 3); n > 0; n--) events.push(track(customerId, 'Email Opened', { delivery_key: s.key }, s.at + n * 60_000));
      if (chance(0.4)) events.push(track(customerId, 'Email Opened', { delivery_key: s.key, machine_open: true }, s.at + 30_000));
      for (let n = chance(variant === 'discount' ? 0.4 : 0.2) ? 1 + Math.floor(random() * 2) : 0; n > 0; n--) events.push(track(customerId, 'Email Link Clicked', { delivery_key: s.key }, s.at + 10 * 60_000 + n * 60_000));
    }
    if (chance(0.3)) events.push(track(customerId, GOAL, { revenue: 0.5 * (1 + Math.floor(random() * 200)) }, at + 2 * DAY));
  }

  for (const event of events) {
    const [result] = await store.recordEvents([event], { needsDispatch: () => false });
    if (!result || result.duplicate || result.dropped || result.refused) throw new Error(`event ${event.messageId} was not stored`);
    const key = event.properties.delivery_key as string;
    if (event.name === 'Email Opened') out.opens.push({ key, machine: event.properties.machine_open === true });
    if (event.name === 'Email Link Clicked') out.clicks.push({ key, at: event.timestamp });
    if (event.name === GOAL) out.goals.push({ customerId: event.customerId, at: event.timestamp, revenue: event.properties.revenue as number });
  }

  await store.startExperiment({ experimentId: 'cart-subject', flowId: 'cart', stepId: 'steps[0]', startedAt: oldAt });
  await store.concludeExperiment('cart-subject', { state: 'decided', winner: 'discount', at: now - DAY, reason: 'discount wins on click rate (as recorded)', figures: { recorded: true } });
  return out;
}

/** The report's numbers for one step and variant, counted from the log: unique per send, conversions by last touch. */
function expected(step: string, variant: string, from: number) {
  const sends = log.sends.filter((s) => s.step === step && s.variant === variant && s.at >= from);
  const keys = new Set(sends.map((s) => s.key));
  const unique = (xs: Array<{ key: string }>) => new Set(xs.filter((x) => keys.has(x.key)).map((x) => x.key)).size;
  let converted = 0;
  let revenue = 0;
  for (const goal of log.goals) {
    // The latest touch at or before the goal (a send, or a click on one), at most 5 days before it.
    const touches = [
      ...log.sends.filter((s) => s.customerId === goal.customerId).map((s) => ({ key: s.key, at: s.at })),
      ...log.clicks.filter((c) => log.sends.some((s) => s.key === c.key && s.customerId === goal.customerId)).map((c) => ({ key: c.key, at: c.at })),
    ].filter((t) => t.at <= goal.at && goal.at - t.at <= 5 * DAY);
    if (touches.length === 0) continue;
    const last = touches.reduce((a, b) => (b.at > a.at ? b : a));
    if (keys.has(last.key)) {
      converted += 1;
      revenue += goal.revenue;
    }
  }
  return {
    sent: sends.length,
    opened: unique(log.opens.filter((o) => !o.machine)),
    openedMachine: unique(log.opens.filter((o) => o.machine)),
    clicked: unique(log.clicks),
    converted,
    revenue,
  };
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'microflows-report-'));
  store = openSqliteStore(path.join(dataDir, 'microflows.sqlite'));
  await store.migrate();
  log = await seed(Date.now());
}, 60_000);

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test(`--json counts what the log holds, folding the events first (seed ${SEED})`, async () => {
  const run = await microflows(['report', 'cart', '--json']);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report.period.to - report.period.from).toBeGreaterThanOrEqual(30 * DAY);
  expect(report.period.to - report.period.from).toBeLessThan(31 * DAY);
  expect(report.flows).toHaveLength(1);
  const flow = report.flows[0];
  expect(flow).toMatchObject({ flowId: 'cart', latestVersion: 1, holdout: 0.1 });
  const from = report.period.from;
  const recent = log.entries.filter((e) => e.at >= from);
  expect(flow.entrants.treatment.entered).toBe(recent.filter((e) => !e.holdout).length);
  expect(flow.entrants.holdout.entered).toBe(recent.filter((e) => e.holdout).length);
  // Holdout conversions: each holdout customer's goal a day after their only entry.
  const holdoutIds = new Set(recent.filter((e) => e.holdout).map((e) => e.customerId));
  expect(flow.entrants.holdout.converted).toBe(log.goals.filter((g) => holdoutIds.has(g.customerId)).length);
  expect(flow.lift).not.toBeNull();

  const steps = flow.versions[0].steps;
  expect(steps.map((s: { stepId: string; kind: string }) => [s.stepId, s.kind])).toEqual([
    ['steps[0]', 'ab_split'],
    [CONTROL, 'send'],
    [DISCOUNT, 'send'],
    [FOLLOWUP, 'send'],
  ]);
  const assignedRecently = (variant: string) => log.assignments.filter((a) => a.variant === variant && a.at >= from).length;
  expect(steps[0].variants.map((r: { variant: string; assigned: number }) => [r.variant, r.assigned])).toEqual([
    ['control', assignedRecently('control')],
    ['discount', assignedRecently('discount')],
  ]);
  for (const [step, variant] of [
    [CONTROL, 'control'],
    [DISCOUNT, 'discount'],
    [FOLLOWUP, 'control'],
    [FOLLOWUP, 'discount'],
  ] as const) {
    const row = steps.find((s: { stepId: string }) => s.stepId === step).variants.find((r: { variant: string }) => r.variant === variant);
    const want = expected(step, variant, from);
    expect({ step, variant, sent: row.sent, opened: row.opened, openedMachine: row.openedMachine, clicked: row.clicked, converted: row.converted }).toEqual({
      step,
      variant,
      sent: want.sent,
      opened: want.opened,
      openedMachine: want.openedMachine,
      clicked: want.clicked,
      converted: want.converted,
    });
    expect(row.revenue).toBeCloseTo(want.revenue, 9);
    expect(row.rates.click.estimate).toBeCloseTo(want.clicked / want.sent, 12);
  }

  // The experiment: as recorded, with everyone ever assigned (the old customer too).
  expect(flow.experiments).toHaveLength(1);
  expect(flow.experiments[0]).toMatchObject({
    experimentId: 'cart-subject',
    state: 'decided',
    winner: 'discount',
    reason: 'discount wins on click rate (as recorded)',
    variants: [
      { name: 'control', weight: 50, assigned: log.assignments.filter((a) => a.variant === 'control').length },
      { name: 'discount', weight: 50, assigned: log.assignments.filter((a) => a.variant === 'discount').length },
    ],
  });
}, 120_000);

test('--since takes in older days; --csv has one row per step and variant; tables name steps and the experiment', async () => {
  const longer = JSON.parse((await microflows(['report', '--since', '60d', '--json'])).stdout);
  const control = longer.flows[0].versions[0].steps.find((s: { stepId: string }) => s.stepId === CONTROL).variants[0];
  expect(control.sent).toBe(expected(CONTROL, 'control', 0).sent);
  expect(control.sent).toBe(expected(CONTROL, 'control', Date.now() - 30 * DAY).sent + 1);

  const csv = await microflows(['report', 'cart', '--csv']);
  expect(csv.status).toBe(0);
  const records = parseCsv(csv.stdout, { columns: true }) as Array<Record<string, string>>;
  expect(records.map((r) => [r.step_id, r.step_kind, r.variant])).toEqual([
    ['', 'entry', ''],
    ['', 'entry', '(holdout)'],
    ['steps[0]', 'ab_split', 'control'],
    ['steps[0]', 'ab_split', 'discount'],
    [CONTROL, 'send', 'control'],
    [DISCOUNT, 'send', 'discount'],
    [FOLLOWUP, 'send', 'control'],
    [FOLLOWUP, 'send', 'discount'],
  ]);
  const discount = records.find((r) => r.step_id === DISCOUNT)!;
  const want = expected(DISCOUNT, 'discount', Date.now() - 30 * DAY);
  expect([discount.template, Number(discount.sent), Number(discount.clicked), Number(discount.converted)]).toEqual(['cart-discount', want.sent, want.clicked, want.converted]);

  const text = await microflows(['report', 'cart']);
  expect(text.status).toBe(0);
  expect(text.stdout).toContain('== cart (version 1 now, holdout 10%, attribution window 5d)');
  expect(text.stdout).toMatch(new RegExp(`^ {2}${DISCOUNT.replace(/[[\].]/g, '\\$&')}\\s+send\\s+cart-discount\\s+discount\\s+0\\s+${want.sent}\\s`, 'm'));
  expect(text.stdout).toContain('Experiment cart-subject at steps[0]: decided: discount won at');
}, 120_000);

test('refuses an unknown flow listing the known ones, a bad period, two formats and a second flow', async () => {
  const unknown = await microflows(['report', 'nope', '--json']);
  expect(unknown.status).toBe(1);
  expect(unknown.stdout).toBe('');
  expect(unknown.stderr).toContain('no flow "nope": known flows are cart');

  const bad = await microflows(['report', '--since', 'a month']);
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/^--since: .*how far back the report looks, e\.g\. 30d/);

  const both = await microflows(['report', '--json', '--csv']);
  expect(both.status).toBe(1);
  expect(both.stderr).toContain('--json and --csv: choose one');

  const two = await microflows(['report', 'cart', 'winback']);
  expect(two.status).toBe(1);
  expect(two.stderr).toContain('usage: microflows report');

  const flag = await microflows(['report', '--until', '3d']);
  expect(flag.status).toBe(1);
  expect(flag.stderr).toMatch(/--until/);
  expect(flag.stderr).toContain('usage: microflows report');
}, 120_000);
