// Erase and export on the real path (issue 14): a customer waiting in the cart flow, before its first send, is erased
// through DELETE /api/customers/:id; their arbiter and run are terminated in Temporal (time-skipping server), nothing
// is sent to them afterwards, the answer and the erasure log name no one, and the routes need an admin key of the
// right scope. The CLI's `customers export` and `customers erase --yes` do the same against the stack's database.
import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { customerWorkflowId } from '../../core/arbiter-state';
import { newApiKey } from '../../core/api-keys';
import type { CustomerExport } from '../../store/customer-data-store';
import { runCli } from '../support/cli-run';
import { openRawDatabase } from '../support/database-scan';
import { adminFetch, post, waitUntil } from '../support/http';
import { startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';

const shoe = { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5, category: 'Shoes', quantity: 1 };

let stack: TimeSkippingStack;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const emailOf = (userId: string) => `${userId}@example.com`;

/** A customer with marketing consent who added to cart: their cart-abandonment run waits an hour before it sends. */
async function waitingInCart(userId: string): Promise<{ runId: string }> {
  const identified = await post(`${stack.url}/v1/identify`, { userId, anonymousId: `anon-${userId}`, traits: { email: emailOf(userId), first_name: 'Ana', consent: { email_marketing: true } } }, WRITE_KEY);
  expect(identified.status).toBe(200);
  expect((await post(`${stack.url}/v1/track`, { userId, event: 'Product Added', properties: shoe }, WRITE_KEY)).status).toBe(200);
  await stack.runtime.dispatcher.idle();
  const entry = await waitUntil(`the cart run of ${userId}`, async () => (await stack.runtime.store.flowEntriesOf(userId)).find((e) => e.flowId === 'cart-abandonment'));
  await stack.env.sleep('30m');
  return { runId: entry.workflowId };
}

/** RUNNING, TERMINATED…: read raw, as describe() would decode the memo, which the payload codec has encrypted. */
async function statusOf(workflowId: string): Promise<string> {
  const described = await stack.env.client.workflowService.describeWorkflowExecution({ namespace: stack.env.namespace ?? 'default', execution: { workflowId } });
  const status = described.workflowExecutionInfo?.status ?? temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED;
  return temporal.api.enums.v1.WorkflowExecutionStatus[status].replace('WORKFLOW_EXECUTION_STATUS_', '');
}

const mailsTo = (userId: string) => stack.smtp.messages.filter((m) => m.to.includes(emailOf(userId)));

/** The CLI against the stack's database, its Temporal and its payload master key (which names the customer's data key). */
function cli(args: string[], env: Record<string, string> = {}) {
  const { sqlitePath, masterKey } = stack.runtime.config;
  return runCli(args, { MICROFLOWS_SQLITE_PATH: sqlitePath, MICROFLOWS_DATA_DIR: stack.dataDir, TEMPORAL_ADDRESS: stack.env.address, ...(masterKey ? { MICROFLOWS_MASTER_KEY: masterKey } : {}), ...env });
}

it('DELETE /api/customers/:id erases a customer mid-flow: arbiter and run terminated, nothing sent after, the answer names no one', async () => {
  const userId = 'erase-api-ana';
  const { runId } = await waitingInCart(userId);
  const arbiterId = customerWorkflowId(userId);
  // An offer code claimed for their run's send: the claim names them and their delivery key.
  await stack.runtime.store.importOfferCodes('erase-test', ['ERASE-1', 'ERASE-2'], Date.now());
  expect(await stack.runtime.store.claimOfferCode({ pool: 'erase-test', deliveryKey: `${runId}/steps[1]`, customerId: userId, at: Date.now() })).toMatchObject({ code: 'ERASE-1' });
  expect([await statusOf(arbiterId), await statusOf(runId)]).toEqual(['RUNNING', 'RUNNING']);

  // No key, and a key that may only read: refused, nothing erased.
  const anonymous = await fetch(`${stack.url}/api/customers/${userId}`, { method: 'DELETE' });
  expect(anonymous.status).toBe(401);
  expect((await fetch(`${stack.url}/api/customers/${userId}/export`)).status).toBe(401);
  expect((await fetch(`${stack.url}/api/erasures`)).status).toBe(401);
  const reader = newApiKey('admin', 'erase test reader', ['read'], Date.now());
  await stack.runtime.store.createApiKey(reader.record);
  // A new key works within a second (the server's key cache): until then it is unknown (401), then short of scope.
  const readOnly = await waitUntil('the read-only key to be known', async () => {
    const answer = await fetch(`${stack.url}/api/customers/${userId}`, { method: 'DELETE', headers: { authorization: `Bearer ${reader.key}` } });
    return answer.status === 401 ? undefined : answer;
  });
  expect(readOnly.status).toBe(403);
  expect(await stack.runtime.store.getProfile(userId)).toBeDefined();

  // Erased by the anonymousId they were first seen with: it names the same customer.
  const res = await adminFetch(`${stack.url}/api/customers/anon-${userId}`, { method: 'DELETE' });
  const text = await res.text();
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(text).not.toContain(userId);
  const report = JSON.parse(text) as { erasureId: string; removed: Record<string, number>; addresses: number; terminated: number };
  // data_keys: their payloads' key is shredded, so what Temporal keeps of them can no longer be decrypted.
  expect(report).toMatchObject({ addresses: 1, terminated: 2, removed: { profiles: 1, flow_entries: 1, data_keys: 1, offer_codes_unlinked: 1 } });
  // Their code stays claimed, naming no one: it is never handed to another customer.
  expect(await stack.runtime.store.offerCodePools()).toContainEqual({ pool: 'erase-test', total: 2, claimed: 1, remaining: 1, low: true });
  expect(report.removed.events).toBeGreaterThanOrEqual(2);

  expect([await statusOf(arbiterId), await statusOf(runId)]).toEqual(['TERMINATED', 'TERMINATED']);
  const history = await stack.env.client.workflow.getHandle(runId).fetchHistory();
  expect(history.events?.at(-1)?.workflowExecutionTerminatedEventAttributes?.reason).toBe('customer erased');

  // Past both of the flow's sends: nothing went to them, by SMTP or any other way.
  await stack.env.sleep('2d');
  await stack.runtime.dispatcher.idle();
  expect(mailsTo(userId)).toEqual([]);
  expect(await stack.runtime.store.listSends({ customerId: userId })).toEqual([]);
  expect(await stack.runtime.store.getProfile(userId)).toBeUndefined();
  // Nothing the stack wrote in those two days (or before) names them, in any table.
  const database = openRawDatabase({ name: 'sqlite', env: { MICROFLOWS_SQLITE_PATH: stack.runtime.config.sqlitePath } });
  try {
    expect(await database.scan([userId, emailOf(userId)])).toEqual([]);
  } finally {
    await database.close();
  }

  // The log: who asked (the environment's admin key), when, what was removed; nobody's id or address.
  const log = await adminFetch(`${stack.url}/api/erasures`);
  expect(log.status).toBe(200);
  const logText = await log.text();
  expect(logText).not.toContain(userId);
  expect((JSON.parse(logText) as { erasures: unknown[] }).erasures).toContainEqual({ id: report.erasureId, at: expect.any(Number), requestedBy: 'env:MICROFLOWS_ADMIN_KEY', removed: report.removed });

  // Gone: a second erasure or an export finds nothing.
  expect((await adminFetch(`${stack.url}/api/customers/${userId}`, { method: 'DELETE' })).status).toBe(404);
  expect((await adminFetch(`${stack.url}/api/customers/${userId}/export`)).status).toBe(404);
});

it('GET /api/customers/:id/export downloads everything held about a customer as a JSON attachment', async () => {
  const userId = 'export-api-bea';
  await waitingInCart(userId);
  await stack.runtime.store.importOfferCodes('export-test', ['EXPORT-1'], Date.now());
  await stack.runtime.store.claimOfferCode({ pool: 'export-test', deliveryKey: `flow/cart-abandonment/${userId}/1/steps[1]`, customerId: userId, at: 1_700_000_000_000 });
  const res = await adminFetch(`${stack.url}/api/customers/${userId}/export`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename=/);
  const document = (await res.json()) as CustomerExport;
  const events = await stack.runtime.store.recentEvents(userId, 100);
  expect(document.customerId).toBe(userId);
  expect(document.aliases).toEqual([`anon-${userId}`]);
  expect(document.events.map((e) => e.messageId).sort()).toEqual(events.map((e) => e.messageId).sort());
  expect(document.flowEntries.map((e) => e.flowId)).toEqual(['cart-abandonment']);
  expect(document.profile?.email).toBe(emailOf(userId));
  expect(document.offerCodes).toEqual([{ pool: 'export-test', code: 'EXPORT-1', claimedAt: 1_700_000_000_000 }]);
});

it('the CLI exports a customer, refuses an erasure without --yes or without Temporal, and erases with --yes, terminating their run', async () => {
  const userId = 'erase-cli-cyd';
  const { runId } = await waitingInCart(userId);
  const out = path.join(stack.dataDir, 'export.json');

  const exported = await cli(['customers', 'export', userId, '--out', out]);
  expect(exported).toMatchObject({ status: 0, stderr: '' });
  const document = JSON.parse(fs.readFileSync(out, 'utf8')) as CustomerExport;
  expect(document.events.map((e) => e.messageId).sort()).toEqual((await stack.runtime.store.recentEvents(userId, 100)).map((e) => e.messageId).sort());
  expect(fs.statSync(out).mode & 0o777).toBe(0o600);
  const printed = await cli(['customers', 'export', userId]);
  expect(printed.status).toBe(0);
  expect((JSON.parse(printed.stdout) as CustomerExport).customerId).toBe(userId);

  const unconfirmed = await cli(['customers', 'erase', userId]);
  expect(unconfirmed.status).toBe(1);
  expect(unconfirmed.stderr).toContain('add --yes');
  // Temporal out of reach: refused before anything is erased, so the runs can still be found and terminated later.
  const noTemporal = await cli(['customers', 'erase', userId, '--yes'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  expect(noTemporal.status).toBe(1);
  expect(noTemporal.stderr).toContain('cannot reach Temporal at 127.0.0.1:1');
  expect(noTemporal.stderr).toContain('nothing was erased');
  expect(await stack.runtime.store.getProfile(userId)).toBeDefined();
  expect(await statusOf(runId)).toBe('RUNNING');

  const erased = await cli(['customers', 'erase', userId, '--yes', '--json']);
  expect(erased).toMatchObject({ status: 0, stderr: '' });
  expect(JSON.parse(erased.stdout)).toMatchObject({ terminated: 2, addresses: 1, removed: { profiles: 1, data_keys: 1 } });
  expect([await statusOf(customerWorkflowId(userId)), await statusOf(runId)]).toEqual(['TERMINATED', 'TERMINATED']);
  expect(await stack.runtime.store.getProfile(userId)).toBeUndefined();
  const erasures = await stack.runtime.store.listErasures();
  expect(erasures[0]).toMatchObject({ requestedBy: 'cli' });

  await stack.env.sleep('2d');
  expect(mailsTo(userId)).toEqual([]);
  const again = await cli(['customers', 'export', userId]);
  expect(again.status).toBe(1);
  expect(again.stderr).toContain(`nothing is held about customer "${userId}"`);
}, 120_000);
