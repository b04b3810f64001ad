// `microflows preview` as users run it: the real CLI in a child process, against a real store (SQLite, and
// PostgreSQL when TEST_DATABASE_URL is set) that holds customers (written through the store's ingest path) and the
// sample catalog.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { loadCatalogDir } from '../../cli/catalog-files';
import type { NewEvent } from '../../core/event';
import { storeBackends } from '../support/store-backends';

const ROOT = path.resolve(__dirname, '../..');
const HOUR = 3_600_000;
const NOW = Date.now();

function event(customerId: string, type: NewEvent['type'], name: string | null, fields: Partial<NewEvent>, at: number): NewEvent {
  return { messageId: `${customerId}-${name ?? type}-${at}`, type, name, customerId, userId: customerId, anonymousId: null, properties: {}, traits: {}, context: {}, timestamp: at, receivedAt: at, ...fields };
}

for (const backend of storeBackends('preview cli')) {
  backend.describe(`microflows preview: ${backend.name}`, () => {
    function preview(args: string[]) {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICROFLOWS_') && k !== 'DATABASE_URL'));
      const result = spawnSync(process.execPath, ['bin/microflows.js', 'preview', ...args], {
        cwd: ROOT,
        env: { ...clean, ...backend.env, MICROFLOWS_SEGMENTS_DIR: path.join(ROOT, 'segments') },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    }

    beforeAll(async () => {
      const store = await backend.open();
      await store.upsertProducts(loadCatalogDir(path.join(ROOT, 'catalog')).products);
      const events: NewEvent[] = [];
      for (const [id, name] of [['ana', 'Ana'], ['ben', undefined], ['cy', 'Cy']] as const) {
        events.push(event(id, 'identify', null, { traits: { email: `${id}@example.com`, ...(name ? { first_name: name } : {}), consent: { email_marketing: true } } }, NOW - 5 * HOUR));
        events.push(event(id, 'track', 'Product Added', { properties: { product_id: 'sku-1', quantity: 1 } }, NOW - 3 * HOUR));
      }
      events.push(event('ana', 'track', 'Product Added', { properties: { product_id: 'sku-2', quantity: 2 } }, NOW - 2 * HOUR));
      await store.recordEvents(events, { needsDispatch: () => false });
    });

    afterAll(() => backend.dispose());

    test('--profile renders for that customer: subject, the fallbacks used, the fields read and the text part', () => {
      const run = preview(['cart-reminder', '--profile', 'ben']);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(run.stdout).toContain('subject:   You left something in your cart');
      expect(run.stdout).toContain('for:       ben');
      expect(run.stdout).toMatch(/templates\/cart-reminder\.mjml:9 {2}\{\{#if profile\.first_name\}\} {2}\(empty or missing\)/);
      expect(run.stdout).toMatch(/reads: {5}.*profile\.first_name/);
      expect(run.stdout).toContain('--- text part ---\nStill thinking it over?');
      expect(run.stdout).toContain('Trail Shoe');
    });

    test('--format html prints the HTML, with links that are not tracking tokens', () => {
      const run = preview(['cart-reminder', '--profile', 'ana', '--format', 'html']);
      expect(run.status).toBe(0);
      expect(run.stdout).toMatch(/^<!doctype html>/i);
      expect(run.stdout).toContain('Still thinking it over, Ana?');
      expect(run.stdout).not.toContain('/t/c/');
      expect(run.stdout).toContain('utm_campaign=preview');
    });

    test('--as renders for a synthetic typical member of a segment: placeholders instead of names', () => {
      const run = preview(['cart-reminder', '--as', 'cart-abandoners', '--format', 'json']);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const json = JSON.parse(run.stdout) as { subject: string; subjectOf: string; text: string };
      expect(json.subjectOf).toContain('a synthetic typical member of "cart-abandoners" (3 members');
      expect(json.subject).toBe('Alex, you left something in your cart');
      expect(json.text).not.toMatch(/\bAna\b|\bCy\b/);
      expect(json.text).toContain('Trail Shoe');
    });

    test('bad input says what to fix', () => {
      expect(preview(['cart-reminder', '--profile', 'nobody']).stderr).toContain('no profile "nobody" in the store');
      expect(preview(['no-such-template', '--profile', 'ana']).stderr).toContain('no template "no-such-template"');
      expect(preview(['cart-reminder', '--as', 'no-such-segment']).stderr).toContain('no segment "no-such-segment"');
      expect(preview(['cart-reminder']).stderr).toContain('give exactly one of --profile <customer id> and --as <segment>');
      const segmentWithoutMembers = preview(['cart-reminder', '--as', 'recent-purchasers']);
      expect(segmentWithoutMembers.status).toBe(1);
      expect(segmentWithoutMembers.stderr).toContain('segment "recent-purchasers" has no members in the store yet');
    });

    test('--event gives the trigger event, so a transactional template shows its order', () => {
      const order = { event: 'Order Completed', properties: { order_id: 'o-77', total: 120.5, products: [{ product_id: 'sku-1', quantity: 1 }] } };
      const run = preview(['order-thank-you', '--profile', 'ana', '--event', JSON.stringify(order), '--format', 'json']);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const json = JSON.parse(run.stdout) as { subject: string; text: string; fallbacks: Array<{ expression: string }> };
      expect(json.subject).toBe('Thank you for your order o-77');
      expect(json.text).toContain('Order number: o-77');
      expect(json.text).toContain('Order total $120.50');
      expect(json.fallbacks.map((f) => f.expression)).not.toContain('#if event.properties.total');
      // Without it, the fallbacks show: the same template, no order.
      const without = JSON.parse(preview(['order-thank-you', '--profile', 'ana', '--format', 'json']).stdout) as { subject: string };
      expect(without.subject).toBe('Thank you for your order');
      // The customer's own id may be given; typical members take an event too.
      expect(preview(['order-thank-you', '--profile', 'ana', '--event', JSON.stringify({ ...order, userId: 'ana' })]).stdout).toContain('subject:   Thank you for your order o-77');
      expect(preview(['order-thank-you', '--as', 'cart-abandoners', '--event', JSON.stringify(order)]).stdout).toContain('subject:   Thank you for your order o-77');
    });

    test.each([
      ['not JSON', '{"event": "Order Completed", ', '--event: the event is not valid JSON: unexpected end of input'],
      ['not an object', '["Order Completed"]', '--event: give a track call as a JSON object'],
      ['a duplicate key', '{"event": "Order Completed", "event": "Product Added"}', '--event: $: duplicate key "event"'],
      ['no event name', '{"properties": {"total": 5}}', '--event: event: is required for a track call'],
      ['properties not an object', '{"event": "Order Completed", "properties": [1]}', '--event: properties: must be a JSON object, got an array'],
      ['a number no store keeps', '{"event": "Order Completed", "properties": {"total": 1e400}}', '--event: $.properties.total: 1e400 is too large'],
      ['another customer', '{"event": "Order Completed", "userId": "ben"}', '--event userId: the event is for "ben", the preview for "ana"'],
      ['more than ingest takes', JSON.stringify({ event: 'Order Completed', properties: { note: 'x'.repeat(33_000) } }), '--event: 33052 bytes: an event is at most 32768 bytes, as in ingest'],
    ])('--event with %s is refused, saying what and where', (_what, json, message) => {
      const run = preview(['order-thank-you', '--profile', 'ana', '--event', json]);
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(message);
    });
  });
}
