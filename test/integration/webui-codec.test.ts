// The Temporal Web UI of `microflows start` (the CLI's bundled UI, on the real dev server) reading encrypted payloads
// through the codec endpoint, in real Chromium, as the README tells an operator to set it up: without signing in,
// a customer's cart run shows ciphertext only (no email, address or customer id, even with the UI's codec settings
// right); after signing in at <admin>/codec/login and turning on the UI's "Include cross-origin credentials", it
// shows the plaintext. Then erasure end to end on the same stack: after DELETE /api/customers/:id, `temporal
// workflow show` of the customer's old runs yields ciphertext only, which the codec endpoint answers unchanged
// (their data key is shredded), while another customer's payloads still decode.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { freePort } from '../../cli/dev-server';
import { temporalCliPath } from '../../cli/temporal-binaries';
import { customerWorkflowId } from '../../core/arbiter-state';
import { launchChromium } from '../support/browser';
import { adminFetch, adminHeaders, post, TEST_ADMIN_KEY, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { PROJECT_ROOT, tempDir, WRITE_KEY } from '../support/stack';

const run = promisify(execFile);
const ADDRESS = '221B Baker Street, London NW1 6XE';

let smtp: SmtpSink;
let dataDir: string;
let ports: { http: number; temporal: number; ui: number };
let stack: ChildProcess | undefined;
let stackOutput = '';
let rawClient: Client;
let browser: Browser;

const adminUrl = () => `http://127.0.0.1:${ports.http}`;
const codecEndpoint = () => `${adminUrl()}/codec`;
const uiUrl = () => `http://127.0.0.1:${ports.ui}`;

/** The environment of `microflows start` as a user has it, without this machine's MICROFLOWS_ and TEMPORAL_ADDRESS. */
function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('MICROFLOWS_') && !k.startsWith('TEMPORAL_ADDRESS')) as Array<[string, string]>);
}

beforeAll(async () => {
  smtp = await startSmtpSink();
  dataDir = tempDir('webui-codec');
  ports = { http: await freePort(), temporal: await freePort(), ui: await freePort() };
  // The shipped flows, templates and brand (the project root is the working directory), with pseudonymous ids: the
  // UI then has nothing of the customer's to show but what the codec opens.
  const env = {
    ...cleanEnv(),
    PORT: String(ports.http),
    TEMPORAL_PORT: String(ports.temporal),
    TEMPORAL_UI_PORT: String(ports.ui),
    MICROFLOWS_DATA_DIR: dataDir,
    MICROFLOWS_WRITE_KEY: WRITE_KEY,
    MICROFLOWS_ADMIN_KEY: TEST_ADMIN_KEY,
    MICROFLOWS_PSEUDONYMOUS_IDS: 'true',
    SMTP_URL: smtp.url,
  };
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin/microflows.js'), 'start'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  stack = child;
  child.stdout?.on('data', (d: Buffer) => (stackOutput += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stackOutput += d.toString()));
  await waitUntil('microflows start to be running', async () => stackOutput.includes('embedded stack running') || child.exitCode !== null, 120_000);
  if (child.exitCode !== null) throw new Error(`microflows start exited ${child.exitCode}:\n${stackOutput}`);
  // What `start` tells the operator: the codec endpoint and where to sign in.
  expect(stackOutput).toContain(`Codec:      ${codecEndpoint()}`);
  // A client without the codec: Temporal's payloads as it stores them.
  rawClient = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${ports.temporal}` }) });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await rawClient?.connection.close();
  if (stack && stack.exitCode === null && stack.signalCode === null) {
    const exited = new Promise((resolve) => stack!.once('exit', resolve));
    stack.kill('SIGINT');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 60_000).unref())]);
    if (stack.exitCode === null && stack.signalCode === null) stack.kill('SIGKILL');
  }
  // A stop that failed may leave the dev server behind: its process group is the recorded watchdog's.
  try {
    const recorded = JSON.parse(fs.readFileSync(path.join(dataDir, 'temporal-dev-server.json'), 'utf8')) as { watchdogPid: number };
    process.kill(-recorded.watchdogPid, 'SIGKILL');
  } catch {
    // none recorded, or already gone
  }
  await smtp?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}, 90_000);

/** A customer who consented and put something in their cart, with personal data in the event's properties. */
async function customerAddsToCart(customerId: string): Promise<{ email: string; runWorkflowId: string; arbiterWorkflowId: string }> {
  const email = `${customerId}.private@example.com`;
  const url = adminUrl();
  expect((await post(`${url}/v1/identify`, { userId: customerId, traits: { email, consent: { email_marketing: true, behavioral_tracking: true } } }, WRITE_KEY)).status).toBe(200);
  const properties = { product_id: 'p1', name: 'Trail shoe', price: 120, email, shipping_address: ADDRESS };
  expect((await post(`${url}/v1/track`, { userId: customerId, event: 'Product Added', properties }, WRITE_KEY)).status).toBe(200);
  const runWorkflowId = await waitUntil(
    `the cart run of ${customerId}`,
    async () => {
      const { runs } = (await (await adminFetch(`${url}/api/customers/${customerId}/runs`)).json()) as { runs: Array<{ flowId: string; workflowId: string }> };
      return runs.find((r) => r.flowId === 'cart-abandonment')?.workflowId;
    },
    60_000,
  );
  // Pseudonymous ids: the run and the arbiter are named by the customer's subject, never their id.
  const subject = /^flow\/cart-abandonment\/(ps_[A-Za-z0-9_-]+)\/1$/.exec(runWorkflowId)?.[1];
  expect(subject).toBeDefined();
  // Admitted and in its first (hour-long) wait: its history holds the trigger event.
  await waitUntil('the run waiting', async () => ((await rawClient.workflow.getHandle(runWorkflowId).fetchHistory()).events ?? []).some((e) => e.timerStartedEventAttributes), 60_000);
  return { email, runWorkflowId, arbiterWorkflowId: customerWorkflowId(subject!) };
}

/** Every string of a text, and what each long base64-looking token in it reads as decoded (the UI shows ciphertext so). */
function readableTexts(text: string): string[] {
  const texts = [text];
  for (const token of text.match(/[A-Za-z0-9+/_-]{16,}={0,2}/g) ?? []) texts.push(Buffer.from(token, 'base64').toString('latin1'));
  return texts;
}

function expectNoneOf(text: string, secrets: string[]): void {
  const texts = readableTexts(text);
  for (const secret of secrets) {
    const found = texts.find((t) => t.includes(secret));
    expect(found === undefined ? 'absent' : `${secret} found in ${found.slice(0, 300)}`).toBe('absent');
  }
}

/** What the page holds for anyone who looks: its visible text and its HTML (attributes, hidden copies). */
async function pageTexts(page: Page): Promise<string> {
  return `${await page.locator('body').innerText()}\n${await page.content()}`;
}

/** The UI's page of a workflow (it redirects to the latest run), once the codec's answer to it is in. */
async function openRun(page: Page, workflowId: string): Promise<number> {
  const decoded = page.waitForResponse((r) => r.url().startsWith(`${codecEndpoint()}/decode`) && r.request().method() === 'POST', { timeout: 60_000 });
  await page.goto(`${uiUrl()}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  await page.getByText(workflowId).first().waitFor({ timeout: 60_000 });
  return (await decoded).status();
}

/** The run's input as the UI shows it, undecoded: one long base64 string (the ciphertext). */
async function waitForCiphertextInput(page: Page): Promise<void> {
  await waitUntil('the UI to show the run input undecoded', async () => /Input\s*"[A-Za-z0-9+/]{200,}={0,2}"/.test(await page.locator('body').innerText()), 60_000);
}

/**
 * The operator's steps in the UI's codec settings, by their labels: the status icon in the top bar opens them;
 * the browser's own setting, the endpoint, cross-origin credentials on; Apply, then a reload decodes with them.
 */
async function turnOnCodecWithCredentials(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Codec Server could not connect' }).click();
  const dialog = page.getByRole('dialog').filter({ hasText: 'Codec Server' });
  await dialog.getByLabel('Use my browser setting and ignore Cluster-level setting.').check();
  await dialog.getByLabel('Codec Server browser endpoint').fill(codecEndpoint());
  // The switch's input is visually hidden: its label is what a user clicks.
  await dialog.getByText('Include cross-origin credentials').click();
  expect(await dialog.getByLabel('Include cross-origin credentials').isChecked()).toBe(true);
  await dialog.getByRole('button', { name: 'Apply' }).click();
  await dialog.waitFor({ state: 'hidden' });
}

async function signIn(context: BrowserContext, key: string): Promise<void> {
  const page = await context.newPage();
  await page.goto(`${codecEndpoint()}/login`);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Signed in' }).waitFor();
  // The page tells the endpoint to set in the UI: the one verified below.
  expect(await page.locator('body').innerText()).toContain(`Codec server endpoint: ${codecEndpoint()}`);
  await page.close();
}

describe('the embedded Web UI with the codec endpoint', () => {
  it('shows a customer\'s run as ciphertext until the operator signs in, then as plaintext', async () => {
    const customerId = `webui-${process.pid}`;
    const { email, runWorkflowId } = await customerAddsToCart(customerId);
    const secrets = [email, ADDRESS, 'Baker Street', customerId];
    const context = await browser.newContext();
    const page = await context.newPage();

    // As the UI starts: the cluster-level endpoint `start` gave it, called without credentials.
    expect(await openRun(page, runWorkflowId)).toBe(401);
    await waitForCiphertextInput(page);
    await page.getByRole('button', { name: 'Codec Server could not connect' }).waitFor();
    expectNoneOf(await pageTexts(page), secrets);

    // The codec settings right, but no one signed in in this browser: the credentials carry no session.
    await turnOnCodecWithCredentials(page);
    const reloaded = page.waitForResponse((r) => r.url().startsWith(`${codecEndpoint()}/decode`) && r.request().method() === 'POST');
    await page.reload();
    expect((await reloaded).status()).toBe(401);
    await waitForCiphertextInput(page);
    expectNoneOf(await pageTexts(page), secrets);

    // The operator signs in at the admin address in the same browser: the UI's calls now carry the session cookie.
    await signIn(context, TEST_ADMIN_KEY);
    expect(await openRun(page, runWorkflowId)).toBe(200);
    const shown = await waitUntil('the UI to show the decoded input', async () => {
      const text = await page.locator('body').innerText();
      return text.includes(ADDRESS) ? text : undefined;
    }, 60_000);
    expect(shown).toContain(email);
    expect(shown).toContain('"shipping_address"');
    await context.close();

    // Another browser, not signed in, with the same settings stored: still nothing readable.
    const stranger = await browser.newContext();
    const strangerPage = await stranger.newPage();
    await strangerPage.goto(uiUrl());
    // Where the UI keeps the settings the dialog above wrote: localStorage, JSON values (read from its bundle).
    const settings = { overrideRemoteCodecConfiguration: true, endpoint: codecEndpoint(), includeCredentials: true };
    await strangerPage.evaluate(`for (const [k, v] of Object.entries(${JSON.stringify(settings)})) localStorage.setItem(k, JSON.stringify(v))`);
    expect(await openRun(strangerPage, runWorkflowId)).toBe(401);
    await waitForCiphertextInput(strangerPage);
    expectNoneOf(await pageTexts(strangerPage), secrets);
    await stranger.close();
  }, 300_000);
});

/** `temporal workflow show --output json` by the real CLI, without a codec (it waits on payloads a codec cannot open). */
async function workflowShow(workflowId: string): Promise<string> {
  const { stdout } = await run(temporalCliPath(), ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', `127.0.0.1:${ports.temporal}`], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

interface JsonPayload {
  metadata: Record<string, string>;
  data: string;
}

/** The codec's payloads in a history the CLI printed: every `payloads` list but local activity markers' data (SDK bookkeeping). */
function payloadsIn(shown: string): JsonPayload[] {
  const payloads: JsonPayload[] = [];
  const walk = (value: unknown, trail: string[]): void => {
    if (!value || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((child) => walk(child, trail));
    const record = value as Record<string, unknown>;
    const markerData = trail.includes('markerRecordedEventAttributes') && trail.at(-1) === 'data';
    if (Array.isArray(record.payloads) && !markerData) payloads.push(...(record.payloads as JsonPayload[]));
    for (const [key, child] of Object.entries(record)) if (key !== 'payloads') walk(child, [...trail, key]);
  };
  walk(JSON.parse(shown), []);
  return payloads;
}

const encodingOf = (payload: JsonPayload) => Buffer.from(payload.metadata.encoding ?? '', 'base64').toString();

async function decode(payloads: JsonPayload[]): Promise<JsonPayload[]> {
  const res = await fetch(`${codecEndpoint()}/decode`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...adminHeaders() }, body: JSON.stringify({ payloads }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { payloads: JsonPayload[] }).payloads;
}

const plaintextOf = (payloads: JsonPayload[]) => payloads.map((p) => Buffer.from(p.data, 'base64').toString()).join('\n');

/** RUNNING, TERMINATED…: read raw (the client's describe() would decode the memo, which is encrypted). */
async function statusOf(workflowId: string): Promise<string> {
  const described = await rawClient.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
  const status = described.workflowExecutionInfo?.status ?? temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED;
  return temporal.api.enums.v1.WorkflowExecutionStatus[status].replace('WORKFLOW_EXECUTION_STATUS_', '');
}

describe('erasure on the embedded stack', () => {
  it('leaves the erased customer\'s old runs as ciphertext the codec endpoint can no longer open; another customer\'s still open', async () => {
    const erasedId = `erased-${process.pid}`;
    const keptId = `kept-${process.pid}`;
    const erased = await customerAddsToCart(erasedId);
    const kept = await customerAddsToCart(keptId);
    const erasedWorkflows = [erased.runWorkflowId, erased.arbiterWorkflowId];

    // Before: the same payloads open for the operator, so what follows can tell shredded from never readable.
    const before = payloadsIn(await workflowShow(erased.runWorkflowId));
    expect(plaintextOf(await decode(before))).toContain(ADDRESS);

    const res = await adminFetch(`${adminUrl()}/api/customers/${erasedId}`, { method: 'DELETE' });
    const answer = await res.text();
    expect(res.status).toBe(200);
    expect((JSON.parse(answer) as { terminated: number }).terminated).toBe(2);
    for (const workflowId of erasedWorkflows) expect(`${workflowId}: ${await statusOf(workflowId)}`).toBe(`${workflowId}: TERMINATED`);

    for (const workflowId of erasedWorkflows) {
      const shown = await workflowShow(workflowId);
      expectNoneOf(shown, [erased.email, ADDRESS, 'Baker Street', erasedId]);
      const payloads = payloadsIn(shown);
      expect(payloads.length).toBeGreaterThan(0);
      expect([...new Set(payloads.map(encodingOf))]).toEqual(['binary/encrypted']);
      // The operator's key no longer opens them: answered unchanged, still sealed, nothing readable in them.
      const answered = await decode(payloads);
      expect(answered).toEqual(payloads);
      expect([...new Set(answered.map(encodingOf))]).toEqual(['binary/encrypted']);
      expectNoneOf(JSON.stringify(answered), [erased.email, ADDRESS, 'Baker Street', erasedId]);
      for (const payload of answered) expect(() => JSON.parse(Buffer.from(payload.data, 'base64').toString())).toThrow();
    }

    // The customer kept is untouched: their run goes on and its payloads open for the operator.
    expect(await statusOf(kept.runWorkflowId)).toBe('RUNNING');
    const keptPayloads = payloadsIn(await workflowShow(kept.runWorkflowId));
    expect([...new Set(keptPayloads.map(encodingOf))]).toEqual(['binary/encrypted']);
    const opened = plaintextOf(await decode(keptPayloads));
    expect(opened).toContain(kept.email);
    expect(opened).toContain(ADDRESS);
  }, 300_000);
});
