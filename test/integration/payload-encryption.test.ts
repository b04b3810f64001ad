// Encrypted Temporal payloads on the real Temporal dev server, read back with the real `temporal` CLI: a customer's
// `Product Added` carrying `email` and `shipping_address` leaves no trace of either in the history of their live run
// or arbiter (plain or base64); the codec endpoint with an admin key opens the payloads (over HTTP, and as the CLI's
// --codec-endpoint), answers 401 without one, and after the customer's key is shredded opens nothing of theirs.
// With MICROFLOWS_PSEUDONYMOUS_IDS=true neither the workflow ids, the CustomerId search attribute nor the histories
// contain the customer id.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { temporalCliPath } from '../../cli/temporal-binaries';
import { customerWorkflowId } from '../../core/arbiter-state';
import { isSubject } from '../../core/payload-crypto';
import { adminHeaders, post, TEST_ADMIN_KEY, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { tempDir, testConfig, workflowBundle, WRITE_KEY } from '../support/stack';

const run = promisify(execFile);
const ADDRESS = '221B Baker Street, London NW1 6XE';

let devServer: DevServer;
let smtp: SmtpSink;
let rawClient: Client;
const runtimes: Runtime[] = [];
const dataDirs: string[] = [];

beforeAll(async () => {
  const dataDir = tempDir('payload-encryption');
  dataDirs.push(dataDir);
  devServer = await startDevServer({ dataDir: path.join(dataDir, 'temporal'), headless: true });
  smtp = await startSmtpSink();
  // A client without the codec: what anyone with access to Temporal (and no key) gets.
  rawClient = new Client({ connection: await Connection.connect({ address: devServer.address }) });
}, 120_000);

afterAll(async () => {
  for (const runtime of runtimes) await runtime.stop();
  await rawClient?.connection.close();
  await smtp?.close();
  await devServer?.stop();
  for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A runtime (worker and HTTP server) on the dev server with the shipped flows, with a store and task queue of its own. */
async function startStack(name: string, overrides: Record<string, string> = {}): Promise<Runtime> {
  const dataDir = tempDir(name);
  dataDirs.push(dataDir);
  const runtime = await startRuntime({
    config: testConfig({ TEMPORAL_ADDRESS: devServer.address, MICROFLOWS_DATA_DIR: dataDir, SMTP_URL: smtp.url, TEMPORAL_TASK_QUEUE: `${name}-${process.pid}`, ...overrides }),
    workflowBundle: await workflowBundle(),
    schedule: false,
    log: () => undefined,
  });
  runtimes.push(runtime);
  return runtime;
}

/** A customer who consented and put something in their cart, with personal data in the event's properties. */
async function customerAddsToCart(runtime: Runtime, customerId: string): Promise<{ email: string; runWorkflowId: string }> {
  const email = `${customerId}.private@example.com`;
  const consent = { email_marketing: true, behavioral_tracking: true };
  expect((await post(`${runtime.url}/v1/identify`, { userId: customerId, traits: { email, consent } }, WRITE_KEY)).status).toBe(200);
  const properties = { product_id: 'p1', name: 'Trail shoe', price: 120, email, shipping_address: ADDRESS };
  expect((await post(`${runtime.url}/v1/track`, { userId: customerId, event: 'Product Added', properties }, WRITE_KEY)).status).toBe(200);
  const entry = await waitUntil(`the cart flow run of ${customerId}`, async () => (await runtime.store.flowEntriesOf(customerId)).find((e) => e.flowId === 'cart-abandonment'), 60_000);
  // The run has recorded its admission and sits in its first wait: its history holds the trigger event.
  await waitUntil('the run waiting', async () => ((await rawClient.workflow.getHandle(entry.workflowId).fetchHistory()).events ?? []).some((e) => e.timerStartedEventAttributes), 60_000);
  return { email, runWorkflowId: entry.workflowId };
}

/** `temporal workflow show --output json` of a workflow, by the real CLI, optionally through a codec endpoint. */
async function workflowShow(workflowId: string, codec?: { endpoint: string; auth?: string }): Promise<string> {
  const args = ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', devServer.address];
  if (codec) args.push('--codec-endpoint', codec.endpoint, ...(codec.auth ? ['--codec-auth', codec.auth] : []));
  const { stdout } = await run(temporalCliPath(), args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Every string of a JSON document, and what each reads as when base64-decoded (payload data is shown as base64). */
function readableTexts(json: string): string[] {
  const texts: string[] = [json];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') {
      texts.push(value);
      if (/^[A-Za-z0-9+/_-]+=*$/.test(value) && value.length >= 8) texts.push(Buffer.from(value, 'base64').toString('latin1'));
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(JSON.parse(json));
  return texts;
}

function expectNoneOf(json: string, secrets: string[]): void {
  const texts = readableTexts(json);
  for (const secret of secrets) {
    const found = texts.find((t) => t.includes(secret));
    expect(found === undefined ? 'absent' : `${secret} found in ${found.slice(0, 200)}`).toBe('absent');
  }
}

/**
 * The payloads of a history as Temporal stores them (no codec), but for the `data` of local activity markers: the
 * SDK core's own bookkeeping (sequence, attempt, activity type, times), never a codec's to see.
 */
async function storedPayloads(workflowId: string): Promise<temporal.api.common.v1.IPayload[]> {
  const payloads: temporal.api.common.v1.IPayload[] = [];
  const walk = (value: unknown, path: string[]): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((child) => walk(child, path));
    const record = value as Record<string, unknown>;
    const markerData = path.includes('markerRecordedEventAttributes') && path.at(-1) === 'data';
    if (Array.isArray(record.payloads) && !markerData) payloads.push(...(record.payloads as temporal.api.common.v1.IPayload[]));
    for (const [key, child] of Object.entries(record)) if (key !== 'payloads') walk(child, [...path, key]);
  };
  walk((await rawClient.workflow.getHandle(workflowId).fetchHistory()).events, []);
  return payloads;
}

const asJson = (payloads: temporal.api.common.v1.IPayload[]) =>
  payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  }));

describe('encrypted payloads on the dev server', () => {
  it('keeps the email and address out of the live histories; the codec endpoint opens them for an admin key only, and nothing after a shred', async () => {
    const runtime = await startStack('encrypted');
    const customerId = `enc-${process.pid}`;
    const { email, runWorkflowId } = await customerAddsToCart(runtime, customerId);
    const arbiterId = customerWorkflowId(customerId);

    for (const workflowId of [runWorkflowId, arbiterId]) {
      const shown = await workflowShow(workflowId);
      expect(readableTexts(shown).some((text) => text.includes('binary/encrypted'))).toBe(true);
      expectNoneOf(shown, [email, ADDRESS, 'Baker Street', 'Trail shoe']);
    }
    const sealed = await storedPayloads(runWorkflowId);
    expect(sealed.length).toBeGreaterThan(0);
    for (const payload of sealed) expect(`${Buffer.from(payload.metadata!.encoding!).toString()} ${Buffer.from(payload.data ?? []).toString().slice(0, 300)}`).toMatch(/^binary\/encrypted /);

    // The codec endpoint: 401 without a key, plaintext with one.
    const codecUrl = `${runtime.adminUrl}/codec`;
    const body = JSON.stringify({ payloads: asJson(sealed) });
    const refused = await fetch(`${codecUrl}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(refused.status).toBe(401);
    const opened = await fetch(`${codecUrl}/decode`, { method: 'POST', headers: { 'content-type': 'application/json', ...adminHeaders() }, body });
    expect(opened.status).toBe(200);
    const openedText = readableTexts(await opened.text()).join('\n');
    expect(openedText).toContain(email);
    expect(openedText).toContain(ADDRESS);
    // The real CLI through the endpoint shows plaintext to the operator with the key, and nothing without it.
    expect(readableTexts(await workflowShow(runWorkflowId, { endpoint: codecUrl, auth: `Bearer ${TEST_ADMIN_KEY}` })).join('\n')).toContain(ADDRESS);

    // Erased: the runs end and the key is shredded; the payloads stay in Temporal, readable by no one.
    for (const workflowId of [runWorkflowId, arbiterId]) await rawClient.workflow.getHandle(workflowId).terminate('customer erased');
    expect(await runtime.payloads.keyring.shred(customerId)).toBe(true);
    const afterShred = await fetch(`${codecUrl}/decode`, { method: 'POST', headers: { 'content-type': 'application/json', ...adminHeaders() }, body });
    expect(afterShred.status).toBe(200);
    const shredded = (await afterShred.json()) as { payloads: unknown[] };
    expect(shredded.payloads).toEqual(asJson(sealed));
    expectNoneOf(JSON.stringify(shredded), [email, ADDRESS, 'Baker Street']);
    // (The CLI itself, given payloads its codec cannot open, retries until its deadline: without the codec it shows the ciphertext.)
    expectNoneOf(await workflowShow(runWorkflowId), [email, ADDRESS, 'Baker Street']);
  }, 180_000);

  it('with MICROFLOWS_PSEUDONYMOUS_IDS=true, workflow ids, the CustomerId search attribute and histories hold the subject, never the id', async () => {
    const runtime = await startStack('pseudonymous', { MICROFLOWS_PSEUDONYMOUS_IDS: 'true' });
    const customerId = `pseudo-${process.pid}-customer`;
    const { email, runWorkflowId } = await customerAddsToCart(runtime, customerId);
    const subject = await runtime.payloads.keyring.subjectOf(customerId);
    expect(isSubject(subject)).toBe(true);
    expect(runWorkflowId).toBe(`flow/cart-abandonment/${subject}/1`);
    const arbiterId = customerWorkflowId(subject);
    expect((await rawClient.workflow.getHandle(arbiterId).describe()).status.name).toBe('RUNNING');

    // Visibility as Temporal answers it (the memo is encrypted: the raw service, not the client's decoding list).
    const listed = async (query: string) =>
      ((await rawClient.workflowService.listWorkflowExecutions({ namespace: 'default', query })).executions ?? []).map((e) => e.execution?.workflowId ?? '');
    const indexed = await waitUntil(
      'runs indexed by the subject',
      async () => {
        const found = await listed(`CustomerId = '${subject}'`);
        return found.includes(runWorkflowId) && found.includes(arbiterId) ? found : undefined;
      },
      30_000,
    );
    for (const id of indexed) expect(id).not.toContain(customerId);
    expect(await listed(`CustomerId = '${customerId}'`)).toEqual([]);

    for (const workflowId of [runWorkflowId, arbiterId]) {
      expectNoneOf(await workflowShow(workflowId), [customerId, email, ADDRESS, 'Baker Street']);
      // As Temporal describes it (search attributes in plaintext, the memo sealed), read without the codec.
      const description = await rawClient.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
      expectNoneOf(JSON.stringify(description.workflowExecutionInfo), [customerId, email]);
    }
    // The store records the run under the same id, so the API and the erasure find it.
    expect((await runtime.store.flowEntriesOf(customerId)).map((e) => e.workflowId)).toEqual([runWorkflowId]);
    // Still plaintext to the operator with the key.
    expect(readableTexts(await workflowShow(runWorkflowId, { endpoint: `${runtime.adminUrl}/codec`, auth: `Bearer ${TEST_ADMIN_KEY}` })).join('\n')).toContain(customerId);
    for (const workflowId of [runWorkflowId, arbiterId]) await rawClient.workflow.getHandle(workflowId).terminate('test over');
  }, 180_000);
});
