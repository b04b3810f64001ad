// GET /api/codes in the real app on a real port (SQLite, and PostgreSQL with TEST_DATABASE_URL): behind an admin key
// with the read scope (401 without one, with a source key or a wrong key), answering each pool's figures as sends
// draw codes from it through the real send activity, whose worker logs once when a pool runs low and once when it is
// empty; the figures and the low flag follow the documented threshold (remaining <= max(10, 10% of total)).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type SendEmailInput } from '../../activities';
import { TemplateLibrary } from '../../activities/templates';
import { newApiKey } from '../../core/api-keys';
import { KeyRing } from '../../server/auth';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const NOW = Date.UTC(2026, 4, 4, 8);
const WRITE_KEY = 'code-routes-write-key';
const TEMPLATE = `---
subject: "A code for you"
category: transactional
---
<mjml><mj-body><mj-section><mj-column><mj-text>{{#if (offer_code pool="spring-15")}}Code {{offer_code pool="spring-15"}}{{else}}No code today{{/if}}</mj-text></mj-column></mj-section></mj-body></mjml>
`;

for (const backend of storeBackends('code routes')) {
  backend.describe(`offer code pools over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    let readKey: string;
    let templatesDir: string;
    let activities: ReturnType<typeof createActivities>;
    const logs: string[] = [];
    let sent = 0;

    beforeAll(async () => {
      store = await backend.open();
      const read = newApiKey('admin', 'codes reader', ['read'], NOW);
      await store.createApiKey(read.record);
      readKey = read.key;
      app = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, keys: new KeyRing(store, { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }), dispatcher: noDispatch, now: () => NOW, log: () => undefined });
      templatesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-code-routes-'));
      fs.writeFileSync(path.join(templatesDir, 'spring.mjml'), TEMPLATE);
      activities = createActivities({
        store,
        templates: new TemplateLibrary(templatesDir),
        smtp: null,
        fromAddress: 'Shop <shop@example.com>',
        tracking: null,
        catalog: null,
        signals: null,
        currentFlows: () => [],
        segments: null,
        log: (message) => logs.push(message),
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
      fs.rmSync(templatesDir, { recursive: true, force: true });
    });

    const get = (key: string | null) => fetch(`${app.url}/api/codes`, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
    const pools = async () => {
      const res = await get(readKey);
      expect(res.status).toBe(200);
      return ((await res.json()) as { pools: unknown[] }).pools;
    };

    /** `n` sends of the spring template, one after the other, to new customers. */
    async function sendSome(n: number): Promise<void> {
      for (let i = 0; i < n; i++) {
        const customerId = `spring-${++sent}`;
        await store.recordEvent(
          { messageId: `identify-${customerId}`, type: 'identify', customerId, userId: customerId, anonymousId: null, name: null, properties: {}, traits: { email: `${customerId}@example.com` }, context: {}, timestamp: NOW, receivedAt: NOW },
          { needsDispatch: false },
        );
        const workflowId = `flow/spring/${customerId}/1`;
        const input: SendEmailInput = { deliveryKey: `${workflowId}/steps[0]`, customerId, flowId: 'spring', flowVersion: 1, workflowId, nodeId: 'steps[0]', template: 'spring', scheduledAt: NOW, data: {}, trigger: { messageId: `t-${customerId}`, name: 'Spring', type: 'track', properties: {}, timestamp: NOW } };
        expect(await new MockActivityEnvironment().run(activities.sendEmail, input)).toMatchObject({ status: 'sent' });
      }
    }

    it('answers 401 without an admin key, with a source key and with a wrong key', async () => {
      for (const key of [null, WRITE_KEY, 'mf_admin_not-a-key']) {
        const res = await get(key);
        expect([key, res.status]).toEqual([key, 401]);
        expect(await res.json()).toMatchObject({ error: expect.any(String) });
      }
    });

    it('reports each pool as sends draw from it, flags it low at the threshold, and logs low then empty once each', async () => {
      expect(await pools()).toEqual([]);
      await store.importOfferCodes('spring-15', Array.from({ length: 20 }, (_, i) => `SPRING-${i}`), NOW);
      await store.importOfferCodes('autumn', Array.from({ length: 200 }, (_, i) => `AUTUMN-${i}`), NOW);
      expect(await pools()).toEqual([
        { pool: 'autumn', total: 200, claimed: 0, remaining: 200, low: false },
        { pool: 'spring-15', total: 20, claimed: 0, remaining: 20, low: false },
      ]);

      // 20 codes: low at 10 left (10 is more than 10% of 20). At 11 left it is not low, and nothing is logged.
      await sendSome(9);
      expect((await pools())[1]).toEqual({ pool: 'spring-15', total: 20, claimed: 9, remaining: 11, low: false });
      expect(logs).toEqual([]);
      await sendSome(1);
      expect((await pools())[1]).toEqual({ pool: 'spring-15', total: 20, claimed: 10, remaining: 10, low: true });
      const low = '[codes] pool "spring-15" is running low: 10 of 20 codes left; import more with microflows codes import spring-15 <file>';
      expect(logs).toEqual([low]);
      await sendSome(12);
      expect((await pools())[1]).toEqual({ pool: 'spring-15', total: 20, claimed: 20, remaining: 0, low: true });
      expect(logs).toEqual([low, '[codes] pool "spring-15" is empty: 0 of 20 codes left, and sends show their fallback; import more with microflows codes import spring-15 <file>']);
      const outbox = await store.listOutbox();
      expect(outbox.filter((m) => m.html.includes('No code today'))).toHaveLength(2);
      expect(new Set(outbox.flatMap((m) => /Code (SPRING-\d+)/.exec(m.html)?.[1] ?? [])).size).toBe(20);
    });
  });
}
