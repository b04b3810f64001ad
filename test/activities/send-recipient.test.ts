// The send activity's last guard on the recipient: an email trait stored before identify validated it (a list, a
// group, CR/LF) is never handed to nodemailer, which would send to every address in it. The activity runs in
// Temporal's mock activity environment on a real store, with the shipped templates, delivering to the outbox.
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type SendEmailInput } from '../../activities';
import { TemplateLibrary } from '../../activities/templates';
import type { KyselyStore } from '../../store/kysely-store';
import { storeBackends } from '../support/store-backends';

const NOW = Date.UTC(2025, 5, 1, 12);
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${++sequence}`;

for (const backend of storeBackends('send recipient')) {
  backend.describe(`the send activity's recipient check: ${backend.name}`, () => {
    let store: KyselyStore;
    let activities: ReturnType<typeof createActivities>;

    beforeAll(async () => {
      store = await backend.open();
      activities = createActivities({
        store,
        templates: new TemplateLibrary(path.join(__dirname, '../../templates')),
        smtp: null,
        fromAddress: 'shop <shop@example.com>',
        tracking: null,
        catalog: null,
        signals: null,
        currentFlows: () => [],
        segments: null,
      });
    });
    afterAll(() => backend.dispose());

    /** A customer whose stored email is `email`, written past ingest's validation as an older release stored it. */
    async function customerWithEmail(email: string): Promise<string> {
      const customerId = unique('buyer');
      await store.recordEvent(
        { messageId: unique('m'), type: 'identify', customerId, userId: customerId, anonymousId: null, name: null, properties: {}, traits: { email }, context: {}, timestamp: NOW, receivedAt: NOW },
        { needsDispatch: false },
      );
      return customerId;
    }

    function send(customerId: string): Promise<unknown> {
      const input: SendEmailInput = {
        deliveryKey: `flow/post-purchase/${customerId}/1/steps[0]`,
        customerId,
        flowId: 'post-purchase',
        flowVersion: 1,
        workflowId: `flow/post-purchase/${customerId}/1`,
        nodeId: 'steps[0]',
        template: 'order-thank-you',
        scheduledAt: NOW,
        data: {},
        trigger: { messageId: unique('m'), name: 'Order Completed', type: 'track', properties: { order_id: 'o-1' }, timestamp: NOW },
      };
      return new MockActivityEnvironment().run(activities.sendEmail, input);
    }

    it.each([
      ['a list', 'victim@example.com, second@example.org', /holds 2 addresses/],
      ['a group', 'friends: victim@example.com, second@example.org;', /address group/],
      ['CRLF', 'victim@example.com\r\nBcc: second@example.org', /control character/],
    ])('skips a transactional send to a stored email holding %s, records why, and delivers nothing', async (_what, email, reason) => {
      const customerId = await customerWithEmail(email);
      expect(await send(customerId)).toEqual({ status: 'skipped', reason: expect.stringMatching(reason) });
      expect(await store.listSends({ customerId })).toEqual([]);
      expect((await store.listOutbox()).filter((m) => m.to.includes('victim@example.com'))).toEqual([]);
      const decisions = await store.decisionsOf(customerId);
      expect(decisions.map((d) => [d.outcome, d.reason])).toEqual([['skipped', expect.stringMatching(/^send steps\[0\] \(order-thank-you\) skipped: .*stored email address is invalid/)]]);
    });

    it('sends to a stored email that is one mailbox', async () => {
      const customerId = await customerWithEmail(`${unique('ok')}@example.com`);
      expect(await send(customerId)).toMatchObject({ status: 'sent', transport: 'outbox' });
      expect((await store.listSends({ customerId })).map((s) => s.status)).toEqual(['sent']);
    });
  });
}
