// The template preview API on a real port and a real store: `event=` gives the trigger event (a track call, read as
// ingest reads one) so transactional templates show their order; a bad `event=` or `data=` is a 400 naming it.
import path from 'node:path';
import { catalogReader } from '../../activities/catalog';
import { TemplateLibrary } from '../../activities/templates';
import type { NewEvent } from '../../core/event';
import { noDispatch } from '../../server/dispatcher';
import { storeBackends } from '../support/store-backends';
import { serveApp, type RunningApp } from '../support/serve-app';
import { TEST_ADMIN_KEY, adminFetch } from '../support/http';

const ROOT = path.resolve(__dirname, '../..');
const NOW = Date.now();

function identify(customerId: string, traits: Record<string, unknown>): NewEvent {
  return { messageId: `${customerId}-identify`, type: 'identify', name: null, customerId, userId: customerId, anonymousId: null, properties: {}, traits, context: {}, timestamp: NOW - 60_000, receivedAt: NOW - 60_000 };
}

for (const backend of storeBackends('template preview api')) {
  backend.describe(`template preview API: ${backend.name}`, () => {
    let app: RunningApp;

    beforeAll(async () => {
      const store = await backend.open();
      await store.recordEvents([identify('dana', { email: 'dana@example.com', first_name: 'Dana' })], { needsDispatch: () => false });
      const templates = new TemplateLibrary(path.join(ROOT, 'templates'), { shopUrl: 'https://shop.example' });
      app = await serveApp({ store, config: { writeKey: 'test-write-key', adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, templates, catalog: catalogReader(store), log: () => undefined });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    const previewUrl = (query: Record<string, string>) => `${app.url}/api/templates/order-thank-you/preview?${new URLSearchParams(query).toString()}`;

    test('event= renders the trigger event into the template; without it the fallbacks show', async () => {
      const event = JSON.stringify({ event: 'Order Completed', properties: { order_id: 'o-9', total: 42 } });
      const response = await adminFetch(previewUrl({ profile: 'dana', event }));
      expect(response.status).toBe(200);
      const preview = (await response.json()) as { subject: string; text: string; subjectOf: string };
      expect(preview.subjectOf).toBe('dana');
      expect(preview.subject).toBe('Thank you for your order o-9');
      expect(preview.text).toContain('Order number: o-9');
      expect(preview.text).toContain('Order total $42.00');

      const text = await (await adminFetch(previewUrl({ profile: 'dana', event, format: 'text' }))).text();
      expect(text).toContain('Order total $42.00');
      const without = (await (await adminFetch(previewUrl({ profile: 'dana' }))).json()) as { subject: string };
      expect(without.subject).toBe('Thank you for your order');
    });

    test.each([
      ['not JSON', { event: '{"event":' }, 'event', 'event: the event is not valid JSON'],
      ['an array', { event: '[]' }, 'event', 'event: give a track call as a JSON object'],
      ['a duplicate key', { event: '{"event":"Order Completed","properties":{"total":1,"total":2}}' }, 'event', 'event: $.properties: duplicate key "total"'],
      ['no name', { event: '{"properties":{}}' }, 'event', 'event: event: is required for a track call'],
      ['another customer', { event: '{"event":"Order Completed","userId":"eve"}' }, 'event userId', 'the event is for "eve", the preview for "dana"'],
      ['data that is not an object', { data: '[10]' }, 'data', 'data: must be a JSON object'],
    ])('a bad parameter (%s) is a 400 naming it', async (_what, query, field, message) => {
      const response = await adminFetch(previewUrl({ profile: 'dana', ...query }));
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: string; field: string; message: string };
      expect(body.field).toBe(field);
      expect(body.message).toContain(message);
    });

    test('event= given twice is a 400', async () => {
      const event = '{"event":"Order Completed"}';
      const response = await adminFetch(`${app.url}/api/templates/order-thank-you/preview?profile=dana&event=${encodeURIComponent(event)}&event=${encodeURIComponent(event)}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { message: string }).message).toBe('event: give it once, as a single string');
    });
  });
}
