// Offer codes through the real send activity, on SQLite and PostgreSQL: 200 sends at once of a template that shows a
// code from a pool of 150 deliver 150 emails with 150 distinct codes (each the one the store recorded for that send)
// and 50 with the template's fallback, whose ledger rows record the empty pool; the pool's low and empty warnings are
// logged once each. A send skipped by a frequency cap after claiming gives its code back for the next customer, and
// a send run again keeps its code. The activities run in Temporal's mock activity environment on a real store, with
// templates from a temp folder, delivering to the outbox.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type SendEmailInput, type SendEmailResult } from '../../activities';
import { previewTemplate } from '../../activities/preview';
import { TemplateLibrary } from '../../activities/templates';
import { compileFlow } from '../../core/flow-compiler';
import { compileSendPolicy, DEFAULT_SEND_POLICY, type SendPolicy } from '../../core/send-policy';
import type { KyselyStore } from '../../store/kysely-store';
import type { NewEvent } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const NOW = Date.UTC(2026, 3, 1, 10);
const SENDS = 200;
const CODES = 150;

const WINBACK = `---
subject: "We miss you"
category: transactional
---
<mjml><mj-body><mj-section><mj-column>
<mj-text>{{#if (offer_code pool="winback-10")}}Use code <strong class="code">{{offer_code pool="winback-10"}}</strong>{{else}}Use code BACK10{{/if}}</mj-text>
</mj-column></mj-section></mj-body></mjml>
`;
const CAPPED = `---
subject: "Your code: {{offer_code pool=\\"capped-5\\"}}"
category: transactional
---
<mjml><mj-body><mj-section><mj-column><mj-text>Code: <b>{{offer_code pool="capped-5"}}</b></mj-text></mj-column></mj-section></mj-body></mjml>
`;
const BY_STEP = `---
subject: "Your code: {{#if (offer_code pool=data.code_pool)}}{{offer_code pool=data.code_pool}}{{else}}none{{/if}}"
category: transactional
---
<mjml><mj-body><mj-section><mj-column><mj-text>{{default data.discount_pct 10}}% off</mj-text></mj-column></mj-section></mj-body></mjml>
`;
const CAP_POLICY = compileSendPolicy('caps:\n  - { name: receipts, transactional: true, max: 1, per: 24h }\non_cap: skip\n', 'flows/policy.yaml');
const CAPPED_FLOW = compileFlow('id: capped\nversion: 1\npriority: 10\ntrigger: { event: Product Added }\nsteps:\n  - send: { template: capped }\n', 'flows/capped.yaml', { templateExists: () => true, sha256: 'offer-code-sends' });

function identify(customerId: string): NewEvent {
  return { messageId: `identify-${customerId}`, type: 'identify', customerId, userId: customerId, anonymousId: null, name: null, properties: {}, traits: { email: `${customerId}@example.com` }, context: {}, timestamp: NOW, receivedAt: NOW };
}

function sendInput(customerId: string, flowId: string, template: string, step = 'steps[0]'): SendEmailInput {
  const workflowId = `flow/${flowId}/${customerId}/1`;
  return {
    deliveryKey: `${workflowId}/${step}`,
    customerId,
    flowId,
    flowVersion: 1,
    workflowId,
    nodeId: step,
    template,
    scheduledAt: NOW,
    data: {},
    trigger: { messageId: `trigger-${customerId}`, name: 'Lapsed', type: 'track', properties: {}, timestamp: NOW },
  };
}

const CODE_IN_HTML = /Use code <strong class="code">([^<]+)<\/strong>/;

for (const backend of storeBackends('offer code sends')) {
  backend.describe(`offer codes in the send activity: ${backend.name}`, () => {
    let store: KyselyStore;
    let templatesDir: string;
    let activities: ReturnType<typeof createActivities>;
    let templates: TemplateLibrary;
    let policy: SendPolicy = DEFAULT_SEND_POLICY;
    const logs: string[] = [];

    beforeAll(async () => {
      store = await backend.open();
      templatesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-offer-templates-'));
      fs.writeFileSync(path.join(templatesDir, 'winback.mjml'), WINBACK);
      fs.writeFileSync(path.join(templatesDir, 'capped.mjml'), CAPPED);
      fs.writeFileSync(path.join(templatesDir, 'by-step.mjml'), BY_STEP);
      await store.registerFlowVersion(CAPPED_FLOW);
      activities = createActivities({
        store,
        templates: (templates = new TemplateLibrary(templatesDir)),
        smtp: null,
        fromAddress: 'Shop <shop@example.com>',
        tracking: null,
        catalog: null,
        signals: null,
        currentFlows: () => [CAPPED_FLOW],
        segments: null,
        sendPolicy: () => policy,
        log: (message) => logs.push(message),
      });
    });

    afterAll(async () => {
      await backend.dispose();
      fs.rmSync(templatesDir, { recursive: true, force: true });
    });

    const send = (input: SendEmailInput): Promise<SendEmailResult> => new MockActivityEnvironment().run(activities.sendEmail, input);

    it(`gives ${SENDS} concurrent sends ${CODES} distinct codes and ${SENDS - CODES} fallbacks that name the empty pool`, async () => {
      const customers = Array.from({ length: SENDS }, (_, i) => `lapsed-${String(i).padStart(3, '0')}`);
      await store.recordEvents(customers.map(identify), { needsDispatch: () => false });
      const codes = Array.from({ length: CODES }, (_, i) => `BACK-${(i * 7919).toString(36).toUpperCase()}-${i}`);
      expect(await store.importOfferCodes('winback-10', codes, NOW)).toMatchObject({ imported: CODES, unclaimed: CODES });

      const results = await Promise.all(customers.map((customer) => send(sendInput(customer, 'winback', 'winback'))));
      expect(results.filter((r) => r.status !== 'sent')).toEqual([]);

      const outbox = (await store.listOutbox()).filter((m) => m.to.startsWith('lapsed-'));
      expect(outbox).toHaveLength(SENDS);
      const withCode = outbox.filter((m) => CODE_IN_HTML.test(m.html));
      const sentCodes = withCode.map((m) => CODE_IN_HTML.exec(m.html)![1]!);
      expect(sentCodes).toHaveLength(CODES);
      expect([...sentCodes].sort()).toEqual([...codes].sort());
      // The text part carries the same code; the others show the template's own.
      for (const [i, message] of withCode.entries()) expect(message.text).toContain(`Use code ${sentCodes[i]}`);
      const fallbackMails = outbox.filter((m) => !CODE_IN_HTML.test(m.html));
      expect(fallbackMails).toHaveLength(SENDS - CODES);
      expect(fallbackMails.every((m) => m.html.includes('Use code BACK10') && m.text.includes('Use code BACK10'))).toBe(true);

      // Each email's code is the one the store recorded for that send's customer.
      for (const message of withCode.slice(0, 30)) {
        const customer = message.to.split('@')[0]!;
        expect((await store.exportCustomer(customer)).offerCodes).toEqual([{ pool: 'winback-10', code: CODE_IN_HTML.exec(message.html)![1], claimedAt: expect.any(Number) }]);
      }

      // The ledger records the fallback of each send the pool had no code for, where the template shows the code.
      const sends = (await store.listSends()).filter((s) => s.customerId.startsWith('lapsed-'));
      const emptyPool = { at: `${templatesDir}/winback.mjml:6`, expression: 'offer_code pool="winback-10"', reason: 'offer code pool "winback-10" is empty' };
      const fellBack = sends.filter((s) => s.fallbacks.some((f) => f.reason === emptyPool.reason));
      expect(fellBack).toHaveLength(SENDS - CODES);
      expect(fellBack.every((s) => s.fallbacks.some((f) => f.at === emptyPool.at && f.expression === emptyPool.expression))).toBe(true);
      expect(new Set(fellBack.map((s) => s.customerId))).toEqual(new Set(fallbackMails.map((m) => m.to.split('@')[0])));

      // One warning when the pool ran low, one when it ran out.
      const warnings = logs.filter((line) => line.includes('"winback-10"'));
      expect(warnings).toEqual([
        expect.stringMatching(/^\[codes\] pool "winback-10" is running low: ([1-9]|1[0-5]) of 150 codes left; import more with microflows codes import winback-10 <file>$/),
        '[codes] pool "winback-10" is empty: 0 of 150 codes left, and sends show their fallback; import more with microflows codes import winback-10 <file>',
      ]);
      expect((await store.offerCodePools()).find((p) => p.pool === 'winback-10')).toEqual({ pool: 'winback-10', total: CODES, claimed: CODES, remaining: 0, low: true });
    }, 120_000);

    it('gives back the code of a send a cap skipped after it claimed one, and keeps the code of a send run again', async () => {
      policy = CAP_POLICY;
      try {
        await store.importOfferCodes('capped-5', ['CAP-1', 'CAP-2', 'CAP-3'], NOW);
        await store.recordEvents(['capped-ana', 'capped-bo'].map(identify), { needsDispatch: () => false });
        const first = sendInput('capped-ana', 'capped', 'capped');
        expect(await send(first)).toMatchObject({ status: 'sent' });
        // A second send to Ana within the day: the cap skips it, after it claimed CAP-2.
        const second = { ...sendInput('capped-ana', 'capped', 'capped'), deliveryKey: 'flow/capped/capped-ana/2/steps[0]', workflowId: 'flow/capped/capped-ana/2' };
        expect(await send(second)).toEqual({ status: 'skipped', reason: expect.stringContaining('cap receipts (1 per 1d) is full') });
        expect((await store.offerCodePools()).find((p) => p.pool === 'capped-5')).toMatchObject({ claimed: 1, remaining: 2 });
        // The first send again (a retry): already sent, with its code, which it keeps.
        expect(await send(first)).toMatchObject({ status: 'already_sent' });
        expect((await store.exportCustomer('capped-ana')).offerCodes.map((c) => c.code)).toEqual(['CAP-1']);
        // The code the skipped send gave back goes to the next customer.
        expect(await send(sendInput('capped-bo', 'capped', 'capped'))).toMatchObject({ status: 'sent' });
        const mail = (await store.listOutbox()).filter((m) => m.to.startsWith('capped-'));
        expect(mail.map((m) => [m.to, m.subject])).toEqual([
          ['capped-ana@example.com', 'Your code: CAP-1'],
          ['capped-bo@example.com', 'Your code: CAP-2'],
        ]);
      } finally {
        policy = DEFAULT_SEND_POLICY;
      }
    });

    it('pool=data.code_pool claims from the pool the flow step names (a 20% step, a 10% step); a step naming none falls back', async () => {
      await store.importOfferCodes('step-20', ['TWENTY-1'], NOW);
      await store.importOfferCodes('step-10', ['TEN-1'], NOW);
      await store.recordEvents(['step-ana', 'step-bo', 'step-cy'].map(identify), { needsDispatch: () => false });
      const input = (customerId: string, data: Record<string, unknown>) => ({ ...sendInput(customerId, 'by-step', 'by-step'), data });
      expect(await send(input('step-ana', { discount_pct: 20, code_pool: 'step-20' }))).toMatchObject({ status: 'sent' });
      expect(await send(input('step-bo', { discount_pct: 10, code_pool: 'step-10' }))).toMatchObject({ status: 'sent' });
      expect(await send(input('step-cy', { discount_pct: 10 }))).toMatchObject({ status: 'sent' });
      const mail = (await store.listOutbox()).filter((m) => m.to.startsWith('step-'));
      expect(mail.map((m) => [m.to, m.subject])).toEqual([
        ['step-ana@example.com', 'Your code: TWENTY-1'],
        ['step-bo@example.com', 'Your code: TEN-1'],
        ['step-cy@example.com', 'Your code: none'],
      ]);
      const pools = await store.offerCodePools();
      expect(pools.filter((p) => p.pool.startsWith('step-')).map((p) => [p.pool, p.claimed])).toEqual([
        ['step-10', 1],
        ['step-20', 1],
      ]);
    });

    it('previews show a sample code for every pool and claim nothing', async () => {
      await store.importOfferCodes('capped-5', ['CAP-PREVIEW'], NOW);
      const before = await store.offerCodePools();
      const winback = await previewTemplate({ templates, store, catalog: null }, { template: 'winback', at: NOW });
      expect(winback.html).toContain('Use code <strong class="code">PREVIEW-CODE</strong>');
      expect(winback.fallbacks).toEqual([]);
      const capped = await previewTemplate({ templates, store, catalog: null }, { template: 'capped', customerId: 'capped-ana', at: NOW });
      expect(capped.subject).toBe('Your code: PREVIEW-CODE');
      expect(await store.offerCodePools()).toEqual(before);
      expect((await store.exportCustomer('capped-ana')).offerCodes.map((c) => c.code)).toEqual(['CAP-1']);
    });
  });
}
