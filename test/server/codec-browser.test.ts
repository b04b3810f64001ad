// The codec endpoint as the Temporal Web UI uses it, in real Chromium: a page of another origin on the same host (the
// UI's port) calls POST /codec/decode with `credentials: 'include'`, as the UI does with "include cross-origin
// credentials". Before the operator signs in at /codec/login it reads a 401 and no plaintext; after, the session
// cookie goes with the call and the payloads come back decoded; a page of an origin not allowed reads nothing.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { defaultPayloadConverter } from '@temporalio/common';
import { EncryptingPayloadCodec } from '../../client/payload-codec';
import { PayloadKeyring } from '../../client/payload-keys';
import { customerWorkflowId } from '../../core/arbiter-state';
import { parseMasterKey } from '../../core/payload-crypto';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { launchChromium } from '../support/browser';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const [sqlite] = storeBackends('codec browser');
let store: KyselyStore;
let app: RunningApp;
let browser: Browser;
let codec: EncryptingPayloadCodec;
const pages: http.Server[] = [];

/** A blank page on 127.0.0.1 at a port of its own: the origin the Web UI's script runs in. */
async function origin(): Promise<string> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>ui</title><p>ui</p>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pages.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let uiOrigin: string;
let strangerOrigin: string;

beforeAll(async () => {
  store = await sqlite!.open();
  codec = new EncryptingPayloadCodec(new PayloadKeyring(store, { current: parseMasterKey(randomBytes(32).toString('hex'), 'MICROFLOWS_MASTER_KEY'), previous: [] }, { pseudonymousIds: false }), { encrypt: true });
  [uiOrigin, strangerOrigin] = [await origin(), await origin()];
  app = await serveApp({
    store,
    config: { writeKey: 'codec-browser-write-key', adminKey: TEST_ADMIN_KEY, signingSecret: 'b'.repeat(64) },
    dispatcher: noDispatch,
    log: () => undefined,
    payloads: { codec, allowedOrigins: [uiOrigin] },
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  for (const server of pages) await new Promise((resolve) => server.close(resolve));
  await sqlite?.dispose();
});

sqlite!.describe('the Web UI calling the codec endpoint from the browser', () => {
  it('reads a 401 before signing in, plaintext after, and an origin not allowed reads nothing', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload({ shipping_address: '221B Baker Street' })], { type: 'workflow', namespace: 'default', workflowId: customerWorkflowId('browser-1') });
    const body = JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(sealed!.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])), data: Buffer.from(sealed!.data!).toString('base64') }] });
    const context = await browser.newContext();
    const page = await context.newPage();
    // What the UI's data encoder does: POST {endpoint}/decode with X-Namespace, credentials included.
    const decodeFrom = (pageOrigin: string) =>
      page.goto(pageOrigin).then(() =>
        page.evaluate(
          async ({ endpoint, payloads }) => {
            try {
              const res = await fetch(`${endpoint}/decode`, { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default' }, body: payloads });
              return { status: res.status, text: await res.text() };
            } catch (err) {
              return { status: 0, text: String(err) };
            }
          },
          { endpoint: `${app.url}/codec`, payloads: body },
        ),
      );
    const before = await decodeFrom(uiOrigin);
    expect(before.status).toBe(401);
    expect(before.text).not.toContain('Baker');

    await page.goto(`${app.url}/codec/login`);
    await page.getByLabel('Admin key').fill(TEST_ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Signed in' }).waitFor();

    const after = await decodeFrom(uiOrigin);
    expect(after.status).toBe(200);
    const decoded = JSON.parse(after.text) as { payloads: Array<{ data: string }> };
    expect(Buffer.from(decoded.payloads[0]!.data, 'base64').toString()).toContain('221B Baker Street');

    // Another origin: the browser sends the call but keeps the answer from the page (no CORS for it).
    const stranger = await decodeFrom(strangerOrigin);
    expect(stranger.status).toBe(0);
    expect(stranger.text).not.toContain('Baker');
    await context.close();
  }, 60_000);
});
