// Attacks on the preference center over real HTTP, on both stores: one link hammered past its limit, a body too large
// to be a form of checkboxes, a valid link for a customer no longer held (erased), and a form that names topics the
// page never offered or says other things. Each is answered with its status and changes only what it should.
import type { FlowDefinition } from '../../core/flow-types';
import { signPreferencesToken, tokenExpiry } from '../../core/tracking';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { WRITE_KEY } from '../support/stack';
import { storeBackends } from '../support/store-backends';
import { subscribedCustomer } from '../support/subscribed-customer';

const SECRET = 'preference-links-security-secret';
const PER_TOKEN = 6;
const DAY = 86_400_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;
/** Only the topics matter to the page. */
const FLOWS = [{ topic: 'cart-reminders' }, { topic: 'winback-offers' }] as unknown as FlowDefinition[];

const identify = subscribedCustomer;

for (const backend of storeBackends('security/preference-links')) {
  backend.describe(`attacks on preference links: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    const now = Date.now();

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, signingSecret: SECRET, rateLimitPerToken: PER_TOKEN },
        dispatcher: noDispatch,
        flows: () => FLOWS,
        now: () => now,
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    const linkFor = (customerId: string) => `${app.url}/preferences/${signPreferencesToken(SECRET, { customerId, deliveryKey: `flow/x/${customerId}/1/s`, flowId: 'x' }, tokenExpiry(now))}`;
    const submit = (url: string, body: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    const preferenceEvents = async (customerId: string) => (await store.eventsOf(customerId)).filter((e) => e.name === 'Preferences Updated');

    test(`one link hammered past ${PER_TOKEN} a minute gets a 429 page with Retry-After and records nothing more`, async () => {
      const customer = unique('hammer');
      await store.recordEvents([identify(customer, now - DAY)], { needsDispatch: () => false });
      const link = linkFor(customer);
      for (let i = 0; i < PER_TOKEN - 1; i++) expect((await fetch(link)).status).toBe(200);
      expect((await submit(link, 'action=save')).status).toBe(200);
      const before = await store.tableCounts();
      const res = await submit(link, 'action=leave');
      expect(res.status).toBe(429);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.text()).toContain('Please try again in a minute');
      expect(await store.tableCounts()).toEqual(before);
      expect((await store.getProfile(customer))?.consent.email_marketing?.granted).toBe(true);
      // Another customer's link is not held back by it.
      const other = unique('other');
      await store.recordEvents([identify(other, now - DAY)], { needsDispatch: () => false });
      expect((await fetch(linkFor(other))).status).toBe(200);
    });

    test('a body larger than a form of checkboxes is refused before it is read, and records nothing', async () => {
      const customer = unique('big');
      await store.recordEvents([identify(customer, now - DAY)], { needsDispatch: () => false });
      const res = await submit(linkFor(customer), `action=save&topic=${'x'.repeat(20_000)}`);
      expect(res.status).toBe(413);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await res.text()).toContain('Your choices could not be read');
      expect(await preferenceEvents(customer)).toEqual([]);
    });

    test('a valid link of a customer no longer held answers 404 and creates no profile', async () => {
      const customer = unique('erased');
      for (const res of [await fetch(linkFor(customer)), await submit(linkFor(customer), 'action=leave')]) {
        expect(res.status).toBe(404);
        expect(await res.text()).toContain('We hold no preferences for you');
      }
      expect(await store.getProfile(customer)).toBeUndefined();
      expect(await store.eventsOf(customer)).toEqual([]);
    });

    test('a form naming topics never offered, or saying more than the page asks, changes only the offered topics', async () => {
      const customer = unique('forged-form');
      await store.recordEvents([identify(customer, now - DAY)], { needsDispatch: () => false });
      const res = await submit(linkFor(customer), 'action=save&topic=winback-offers&topic=not-offered&topic=topic%3Aemail&unsubscribe_all=true&email_marketing=false');
      expect(res.status).toBe(200);
      const [event] = await preferenceEvents(customer);
      expect(event!.properties).toEqual({ topics: { 'cart-reminders': false }, delivery_key: `flow/x/${customer}/1/s`, flow_id: 'x' });
      const { consent } = (await store.getProfile(customer))!;
      expect(Object.keys(consent).sort()).toEqual(['email_marketing', 'topic:cart-reminders']);
      expect(consent.email_marketing).toMatchObject({ granted: true, source: 'identify' });
      expect(consent['topic:cart-reminders']).toMatchObject({ granted: false, source: 'preference_center' });
      // Saving the same choices again records nothing.
      expect((await submit(linkFor(customer), 'action=save&topic=winback-offers')).status).toBe(200);
      expect(await preferenceEvents(customer)).toHaveLength(1);
    });
  });
}
