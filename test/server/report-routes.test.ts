// The flow report over HTTP in the real app on a real port (SQLite, and PostgreSQL with TEST_DATABASE_URL): behind an
// admin key with the read scope (401 without one or with a source key), answering JSON or CSV (text/csv) for every flow
// or one, over ?since= (the period that ends at the app's clock); an unknown flow is a 404 listing the known ones, a
// bad period or format a 400 naming the parameter. The counts are checked against the test's own log.
import { parse as parseCsv } from 'csv-parse/sync';
import { newApiKey } from '../../core/api-keys';
import type { NewEvent } from '../../core/event';
import { compileFlow } from '../../core/flow-compiler';
import type { FlowsReport } from '../../core/flow-report';
import { KeyRing } from '../../server/auth';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The app's clock: the period ends here. */
const NOW = Date.UTC(2026, 2, 2, 12);
const WRITE_KEY = 'report-routes-write-key';
const CONTROL = 'steps[0].variants[0].steps[0]';
const DISCOUNT = 'steps[0].variants[1].steps[0]';

const FLOW = compileFlow(
  [
    'id: cart',
    'version: 1',
    'priority: 90',
    'holdout: 20%',
    'trigger: { event: Product Added }',
    'exit: { on_event: Order Completed }',
    'steps:',
    '  - ab_split:',
    '      experiment: cart-subject',
    '      variants:',
    '        - { name: control, weight: 50, steps: [ { send: { template: cart-reminder } } ] }',
    '        - { name: discount, weight: 50, steps: [ { send: { template: cart-discount } } ] }',
  ].join('\n') + '\n',
  'flows/cart.yaml',
  { templateExists: () => true, sha256: 'report-routes' },
);

let sequence = 0;
const track = (customerId: string, name: string, properties: Record<string, unknown>, at: number): NewEvent => ({
  messageId: `report-routes-${process.pid}-${++sequence}`,
  type: 'track',
  customerId,
  userId: customerId,
  anonymousId: null,
  name,
  properties,
  traits: {},
  context: {},
  timestamp: at,
  receivedAt: at,
});

for (const backend of storeBackends('report routes')) {
  backend.describe(`flow reports over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let readKey: string;
    /** customer → variant ('' for the holdout), and who opened */
    const variants = new Map<string, string>();
    const opened = new Set<string>();

    beforeAll(async () => {
      store = await backend.open();
      await store.registerFlowVersion(FLOW);
      // 30 customers three days before NOW: every fifth in the holdout, the rest alternating variants; every third opens.
      for (let i = 0; i < 30; i++) {
        const customerId = `r${i}`;
        const workflowId = `flow/cart/${customerId}/1`;
        const at = NOW - 3 * DAY + i * 60_000;
        const holdout = i % 5 === 0;
        await store.recordFlowEntry({ customerId, flowId: 'cart', flowVersion: 1, runNumber: 1, workflowId, enteredAt: at, triggerMessageId: null, ...(holdout ? { holdout: true } : {}) });
        if (holdout) {
          variants.set(customerId, '');
          continue;
        }
        const variant = i % 2 === 0 ? 'control' : 'discount';
        variants.set(customerId, variant);
        await store.recordAssignment({ experimentId: 'cart-subject', customerId, variant, assignedAt: at, flowId: 'cart', flowVersion: 1, stepId: 'steps[0]', workflowId });
        const key = `${workflowId}/${variant}`;
        const to = `${customerId}@example.com`;
        await store.claimSend({ deliveryKey: key, customerId, flowId: 'cart', flowVersion: 1, workflowId, nodeId: variant === 'control' ? CONTROL : DISCOUNT, template: 'cart', to, subject: 'Cart', transport: 'outbox', scheduledAt: at + HOUR, experimentId: 'cart-subject', variant });
        await store.deliverToOutbox({ deliveryKey: key, to, from: 'shop@example.com', subject: 'Cart', html: '<p>cart</p>', text: 'cart', headers: {}, createdAt: at + HOUR }, `<${key}@example.com>`);
        if (i % 3 === 0) {
          opened.add(customerId);
          await store.recordEvents([track(customerId, 'Email Opened', { delivery_key: key }, at + 2 * HOUR)], { needsDispatch: () => false });
        }
      }
      for (let pass = 0; pass < 20 && !(await store.foldMetrics({ flows: [FLOW] })).caughtUp; pass++);
      const read = newApiKey('admin', 'report reader', ['read'], NOW);
      await store.createApiKey(read.record);
      readKey = read.key;
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY },
        keys: new KeyRing(store, { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }),
        dispatcher: noDispatch,
        now: () => NOW,
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    const get = (path: string, key: string | null = readKey) => fetch(`${app.url}${path}`, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
    const count = (variant: string, of: (id: string) => boolean = () => true) => [...variants].filter(([id, v]) => v === variant && of(id)).length;

    it('answers 401 without an admin key and with a source key, on both routes', async () => {
      for (const key of [null, WRITE_KEY, 'not-a-key']) {
        for (const path of ['/api/reports/flows', '/api/reports/flows/cart?format=csv']) {
          const res = await get(path, key);
          expect([path, key, res.status]).toEqual([path, key, 401]);
        }
      }
    });

    it('answers the JSON report of every flow to a read key, with the counts the log holds', async () => {
      const res = await get('/api/reports/flows?since=7d');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const report = (await res.json()) as FlowsReport;
      expect(report.period).toEqual({ from: Date.UTC(2026, 1, 23), to: NOW });
      expect(report.flows.map((f) => f.flowId)).toEqual(['cart']);
      const flow = report.flows[0]!;
      expect([flow.entrants.treatment.entered, flow.entrants.holdout.entered]).toEqual([count('control') + count('discount'), count('')]);
      const steps = flow.versions[0]!.steps;
      for (const [step, variant] of [
        [CONTROL, 'control'],
        [DISCOUNT, 'discount'],
      ] as const) {
        const row = steps.find((s) => s.stepId === step)!.variants[0]!;
        expect([row.variant, row.sent, row.opened]).toEqual([variant, count(variant), count(variant, (id) => opened.has(id))]);
      }
      expect(flow.experiments).toEqual([]);
    });

    it('answers one flow as CSV (text/csv), and an earlier-ending period as none of it', async () => {
      const res = await get('/api/reports/flows/cart?format=csv&since=30d');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
      const records = parseCsv(await res.text(), { columns: true }) as Array<Record<string, string>>;
      expect(records.map((r) => [r.step_id, r.variant, r.entered, r.sent])).toEqual([
        ['', '', String(count('control') + count('discount')), '0'],
        ['', '(holdout)', String(count('')), '0'],
        ['steps[0]', 'control', '0', '0'],
        ['steps[0]', 'discount', '0', '0'],
        [CONTROL, 'control', '0', String(count('control'))],
        [DISCOUNT, 'discount', '0', String(count('discount'))],
      ]);
      expect(records.find((r) => r.step_id === 'steps[0]' && r.variant === 'control')!.assigned).toBe(String(count('control')));

      // The last day only: the entries of three days ago are outside it, the flow is still listed.
      const recent = (await (await get('/api/reports/flows/cart?since=1d')).json()) as FlowsReport;
      expect(recent.flows[0]!.entrants.treatment.entered).toBe(0);
      expect(recent.flows[0]!.versions[0]!.steps.map((s) => s.stepId)).toEqual(['steps[0]', CONTROL, DISCOUNT]);
    });

    it('answers 404 for an unknown flow, listing the known ones, and 400 naming a bad since or format', async () => {
      const unknown = await get('/api/reports/flows/nope');
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { message: string }).message).toBe('no flow "nope": known flows are cart');

      for (const [query, field] of [
        ['since=lots', 'since'],
        ['since=1d&since=2d', 'since'],
        ['format=xml', 'format'],
      ] as const) {
        const res = await get(`/api/reports/flows/cart?${query}`);
        expect([query, res.status]).toEqual([query, 400]);
        expect(((await res.json()) as { message: string }).message).toMatch(new RegExp(`^${field}: `));
      }
    });
  });
}
