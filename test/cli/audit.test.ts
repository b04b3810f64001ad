// `microflows audit` as users run it: the real CLI in a child process on a SQLite store in a temporary
// MICROFLOWS_DATA_DIR (the counts themselves are checked against a reference on both backends in
// test/store/audit-contract.test.ts). --since picks the period that ends now; --json prints the report as JSON; a bad
// period exits 1 saying what to write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { runCli, type CliRun } from '../support/cli-run';

const DAY = 86_400_000;
let dataDir: string;
let store: KyselyStore;

const microflows = (args: string[]): Promise<CliRun> => runCli(args, { MICROFLOWS_DATA_DIR: dataDir });

/** A customer who had decisions for browse and cart at `at` (cart preempted browse) and got one email from cart. */
async function collision(customerId: string, at: number): Promise<void> {
  const run = (flow: string) => `flow/${flow}/${customerId}/1`;
  await store.recordDecisions([
    { key: `${customerId}-1`, customerId, at, flowId: 'browse', flowVersion: 1, outcome: 'started', reason: 'entry condition met', eventMessageId: null, workflowId: run('browse') },
    { key: `${customerId}-2`, customerId, at, flowId: 'cart', flowVersion: 1, outcome: 'started', reason: 'entry condition met', eventMessageId: null, workflowId: run('cart') },
    { key: `${customerId}-3`, customerId, at, flowId: 'browse', flowVersion: 1, outcome: 'preempted', reason: 'cart started', eventMessageId: null, workflowId: run('browse') },
  ]);
  const deliveryKey = `${customerId}-send`;
  const to = `${customerId}@example.com`;
  await store.claimSend({ deliveryKey, customerId, flowId: 'cart', flowVersion: 1, workflowId: run('cart'), nodeId: 'email-1', template: 'cart', to, subject: 'Your cart', transport: 'outbox', scheduledAt: at });
  await store.deliverToOutbox({ deliveryKey, to, from: 'shop@example.com', subject: 'Your cart', html: '<p>cart</p>', text: 'cart', headers: {}, createdAt: at }, `<${deliveryKey}@example.com>`);
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'microflows-audit-'));
  store = openSqliteStore(path.join(dataDir, 'microflows.sqlite'));
  await store.migrate();
  await collision('recent', Date.now() - DAY);
  await collision('older', Date.now() - 40 * DAY);
});

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('--json reports the last 30 days by default, and a longer --since takes in older cases', async () => {
  const recent = await microflows(['audit', '--json']);
  expect(recent.stderr).toBe('');
  expect(recent.status).toBe(0);
  const report = JSON.parse(recent.stdout);
  expect(report.period.to - report.period.from).toBe(30 * DAY);
  expect(report.pairs).toEqual([{ flows: ['browse', 'cart'], customers: 1, resolutions: { preempted: 1, suppressed: 0, queued: 0, deferredByCap: 0, skippedByCap: 0, quietHours: 0 }, unresolved: 0 }]);
  expect(report.emailsPerWeek.total).toEqual({ '0': 0, '1': 1, '2': 0, '3': 0, '4': 0, '5+': 0 });
  expect(report.flows).toEqual([{ flowId: 'cart', attempts: 1, sent: 1, skipped: 0, deferred: 0, heldShare: 0 }]);

  const longer = JSON.parse((await microflows(['audit', '--since', '60d', '--json'])).stdout);
  expect(longer.pairs[0].customers).toBe(2);
  expect(longer.emailsPerWeek.total['1']).toBe(2);
}, 120_000);

test('prints the report as tables, and refuses a period that is not a duration', async () => {
  const text = await microflows(['audit', '--since', '7d']);
  expect(text.status).toBe(0);
  expect(text.stdout).toMatch(/^browse\s+cart\s+1\s+1\s/m);
  expect(text.stdout).toContain('No flow had most of its sends deferred or skipped.');

  const bad = await microflows(['audit', '--since', 'a month']);
  expect(bad.status).toBe(1);
  expect(bad.stdout).toBe('');
  expect(bad.stderr).toMatch(/^--since: .*e\.g\. 30d/);

  const unknown = await microflows(['audit', '--until', '3d']);
  expect(unknown.status).toBe(1);
  expect(unknown.stderr).toContain('usage: microflows audit');
}, 120_000);
