// What the store refuses from a client source key (origin 'client'), on SQLite and (with TEST_DATABASE_URL)
// PostgreSQL: merging a customer who is already identified into another (identify with their id as anonymousId,
// alias with it as previousId), granting their consent, changing their email, directly or through the login merge of
// an anonymous visitor. Each refusal is checked by what is stored: the events, identities and profiles of everyone
// involved are as before. The same calls from a server key (or microflows itself) do what they always did, and an
// anonymous visitor's login stays a merge. The races run on PostgreSQL, whose writers really overlap.
import type { KyselyStore } from '../../store/kysely-store';
import type { EventOrigin } from '../../core/event';
import type { NewEvent, RecordEventResult } from '../../store/store';
import { storeBackends } from '../support/store-backends';
import { identitySnapshot } from '../support/identity-snapshot';

const NOW = 1_700_000_000_000;
let n = 0;
const unique = (prefix: string) => `${prefix}-${++n}`;

interface Ids {
  userId?: string;
  anonymousId?: string;
}

function call(type: NewEvent['type'], ids: Ids, fields: Partial<NewEvent> = {}): NewEvent {
  const userId = ids.userId ?? null;
  const anonymousId = ids.anonymousId ?? null;
  const at = NOW + ++n;
  return { messageId: unique('msg'), type, customerId: userId ?? anonymousId ?? '', userId, anonymousId, name: null, properties: {}, traits: {}, context: {}, timestamp: at, receivedAt: at, ...fields };
}

const from = (origin: EventOrigin | undefined, event: NewEvent): NewEvent => (origin === undefined ? event : { ...event, origin });
const identify = (ids: Ids, traits: Record<string, unknown> = {}) => call('identify', ids, { traits });
const alias = (userId: string, previousId: string) => call('alias', { userId }, { properties: { previousId } });
const track = (ids: Ids, name: string, properties: Record<string, unknown> = {}) => call('track', ids, { name, properties });
const once = { needsDispatch: false };
const batch = { needsDispatch: () => false };

const snapshot = (store: KyselyStore, ids: string[]) => identitySnapshot(store, ids);

/** A customer identified by a server key: email, marketing consent withdrawn, a cart. */
async function identifiedCustomer(store: KyselyStore, id = unique('victim')): Promise<string> {
  await store.recordEvent(from('server', identify({ userId: id }, { email: `${id}@example.com`, consent: { email_marketing: false } })), once);
  await store.recordEvent(from('server', track({ userId: id }, 'Product Added', { product_id: 'p-1', quantity: 1 })), once);
  return id;
}

/** An anonymous visitor with a page view. */
async function anonymousVisitor(store: KyselyStore, id = unique('anon')): Promise<string> {
  await store.recordEvent(from('client', call('page', { anonymousId: id }, { name: 'Home' })), once);
  return id;
}

function expectRefused(result: RecordEventResult | undefined, field: string, message: RegExp): void {
  expect(result?.refused).toEqual({ field, message: expect.stringMatching(message) });
  expect(result?.duplicate).toBe(false);
  expect(result?.event.id).toBe(0);
  expect(result?.event.dispatched).toBe(true);
}

for (const backend of storeBackends('identity protection contract')) {
  backend.describe(`identity protection: ${backend.name}`, () => {
    let store: KyselyStore;
    beforeAll(async () => {
      store = await backend.open();
    });
    afterAll(() => backend.dispose());

    it('attack: a client identify with userId attacker and anonymousId <victim userId> is refused and changes nothing', async () => {
      const [victim, attacker] = [await identifiedCustomer(store), await identifiedCustomer(store, unique('attacker'))];
      const before = await snapshot(store, [victim, attacker]);
      const [result] = await store.recordEvents([from('client', identify({ userId: attacker, anonymousId: victim }, { email: `${attacker}@example.com` }))], batch);
      expectRefused(result, 'anonymousId', /already identified.*server key/);
      expect(await snapshot(store, [victim, attacker])).toEqual(before);
    });

    it('attack: a client identify naming a victim who has no email yet, from a new attacker id, is refused', async () => {
      const victim = unique('victim');
      await store.recordEvent(from('server', track({ userId: victim }, 'Order Completed', { total: 10 })), once);
      const attacker = unique('attacker');
      const before = await snapshot(store, [victim, attacker]);
      const [result] = await store.recordEvents([from('client', track({ userId: attacker, anonymousId: victim }, 'Product Viewed'))], batch);
      expectRefused(result, 'anonymousId', /already identified/);
      expect(await snapshot(store, [victim, attacker])).toEqual(before);
    });

    it('attack: a client alias of the victim into the attacker is refused and changes nothing', async () => {
      const [victim, attacker] = [await identifiedCustomer(store), await identifiedCustomer(store, unique('attacker'))];
      const before = await snapshot(store, [victim, attacker]);
      const [result] = await store.recordEvents([from('client', alias(attacker, victim))], batch);
      expectRefused(result, 'previousId', /already identified/);
      expect(await snapshot(store, [victim, attacker])).toEqual(before);
    });

    it('attack: a client alias of an anonymous id the victim already logged in with is refused (it resolves to the victim)', async () => {
      const victim = await identifiedCustomer(store);
      const victimAnon = await anonymousVisitor(store);
      await store.recordEvent(from('client', identify({ userId: victim, anonymousId: victimAnon })), once);
      expect(await store.resolveCustomerId(victimAnon)).toBe(victim);
      const attacker = unique('attacker');
      const before = await snapshot(store, [victim, victimAnon, attacker]);
      const [result] = await store.recordEvents([from('client', alias(attacker, victimAnon))], batch);
      expectRefused(result, 'previousId', /already identified/);
      expect(await snapshot(store, [victim, victimAnon, attacker])).toEqual(before);
    });

    it.each([['a server key', 'server' as const], ['microflows itself', undefined]])('the same merge from %s merges the victim into the attacker', async (_who, origin) => {
      const [victim, attacker] = [await identifiedCustomer(store), await identifiedCustomer(store, unique('attacker'))];
      const [result] = await store.recordEvents([from(origin, identify({ userId: attacker, anonymousId: victim }))], batch);
      expect(result?.refused).toBeUndefined();
      expect(await store.resolveCustomerId(victim)).toBe(attacker);
      expect(await store.getProfile(victim)).toBeUndefined();
      // Both had p-1 in their cart: the merged history holds both additions.
      expect((await store.getProfile(attacker))?.computed.cart).toEqual([{ product_id: 'p-1', quantity: 2 }]);
      const [aliased] = await store.recordEvents([from(origin, alias(unique('renamed'), attacker))], batch);
      expect(aliased?.refused).toBeUndefined();
    });

    it("an anonymous visitor's login from a client key joins their history to the customer", async () => {
      const customer = await identifiedCustomer(store);
      const anon = await anonymousVisitor(store);
      await store.recordEvent(from('client', track({ anonymousId: anon }, 'Product Viewed', { product_id: 'p-2', category: 'Shoes' })), once);
      const [result] = await store.recordEvents([from('client', identify({ userId: customer, anonymousId: anon }, { email: `${customer}@example.com`, first_name: 'Vic' }))], batch);
      expect(result?.refused).toBeUndefined();
      expect(await store.resolveCustomerId(anon)).toBe(customer);
      const profile = await store.getProfile(customer);
      expect(profile?.computed.product_views).toBe(1);
      expect(profile?.traits.first_name).toBe('Vic');
      // Later calls with only the anonymousId land on the customer.
      const later = await store.recordEvent(from('client', track({ anonymousId: anon }, 'Product Viewed')), once);
      expect(later.event.customerId).toBe(customer);
    });

    it('attack: a visitor who set an email and consent on their own anonymous id, then logs in as the victim, changes neither', async () => {
      const victim = await identifiedCustomer(store);
      const anon = await anonymousVisitor(store);
      await store.recordEvent(from('client', identify({ anonymousId: anon }, { email: 'attacker@example.org', consent: { email_marketing: true }, first_name: 'Mallory' })), once);
      const [result] = await store.recordEvents([from('client', identify({ userId: victim, anonymousId: anon }))], batch);
      expect(result?.refused).toBeUndefined();
      const profile = await store.getProfile(victim);
      expect(profile?.email).toBe(`${victim}@example.com`);
      expect(profile?.traits.email).toBe(`${victim}@example.com`);
      expect(profile?.consent.email_marketing?.granted).toBe(false);
      expect(profile?.traits.first_name).toBe('Mallory');
    });

    it('attack: the same in one batch refuses the anonymous identify and merges nothing', async () => {
      const victim = await identifiedCustomer(store);
      const anon = unique('anon');
      const before = await snapshot(store, [victim, anon]);
      const [setUp, login] = await store.recordEvents(
        [from('client', identify({ anonymousId: anon }, { email: 'attacker@example.org', consent: { email_marketing: true } })), from('client', identify({ userId: victim, anonymousId: anon }))],
        batch,
      );
      expectRefused(setUp, 'traits.email', /may not set or change the email address/);
      expect(login?.refused).toBeUndefined();
      const after = await snapshot(store, [victim, anon]);
      expect(after.people[0]!.profile?.email).toBe(before.people[0]!.profile?.email);
      expect(after.people[0]!.profile?.consent).toEqual(before.people[0]!.profile?.consent);
      expect(after.people[0]!.events).toHaveLength(before.people[0]!.events.length + 1);
      expect(after.people[1]!.resolves).toBe(anon);
    });

    it("attack: a client identify changing an identified customer's email is refused; repeating it is not", async () => {
      const victim = await identifiedCustomer(store);
      const before = await snapshot(store, [victim]);
      const [changed] = await store.recordEvents([from('client', identify({ userId: victim }, { email: 'attacker@example.org' }))], batch);
      expectRefused(changed, 'traits.email', /may not set or change the email address .*server key/);
      const [cleared] = await store.recordEvents([from('client', identify({ userId: victim }, { email: null }))], batch);
      expectRefused(cleared, 'traits.email', /email address/);
      expect(await snapshot(store, [victim])).toEqual(before);
      const [same] = await store.recordEvents([from('client', identify({ userId: victim }, { email: `${victim.toUpperCase()}@EXAMPLE.com`, first_name: 'V' }))], batch);
      expect(same?.refused).toBeUndefined();
      expect((await store.getProfile(victim))?.traits.first_name).toBe('V');
    });

    it("attack: a client identify granting an identified customer's consent is refused; a server key may", async () => {
      const victim = await identifiedCustomer(store);
      const before = await snapshot(store, [victim]);
      const [granted] = await store.recordEvents([from('client', identify({ userId: victim }, { consent: { email_marketing: true } }))], batch);
      expectRefused(granted, 'traits.consent.email_marketing', /may grant consent only for a new user or an anonymous visitor/);
      expect(await snapshot(store, [victim])).toEqual(before);
      const [withdrawn] = await store.recordEvents([from('client', identify({ userId: victim }, { consent: { behavioral_tracking: false } }))], batch);
      expect(withdrawn?.refused).toBeUndefined();
      const [server] = await store.recordEvents([from('server', identify({ userId: victim }, { consent: { email_marketing: true } }))], batch);
      expect(server?.refused).toBeUndefined();
      expect((await store.getProfile(victim))?.consent.email_marketing?.granted).toBe(true);
    });

    it('attack: a client identify setting the email of an anonymous id the victim logged in with is refused', async () => {
      const victim = await identifiedCustomer(store);
      const anon = await anonymousVisitor(store);
      await store.recordEvent(from('client', identify({ userId: victim, anonymousId: anon })), once);
      const before = await snapshot(store, [victim]);
      const [result] = await store.recordEvents([from('client', identify({ anonymousId: anon }, { email: 'attacker@example.org' }))], batch);
      expectRefused(result, 'traits.email', /email address/);
      expect(await snapshot(store, [victim])).toEqual(before);
    });

    it('a sign-up from a client key (a new userId with the visitor it was) sets email and consent', async () => {
      const anon = await anonymousVisitor(store);
      const user = unique('new-user');
      const [result] = await store.recordEvents([from('client', identify({ userId: user, anonymousId: anon }, { email: `${user}@example.com`, consent: { email_marketing: true } }))], batch);
      expect(result?.refused).toBeUndefined();
      const profile = await store.getProfile(user);
      expect(profile?.email).toBe(`${user}@example.com`);
      expect(profile?.consent.email_marketing?.granted).toBe(true);
      expect(await store.resolveCustomerId(anon)).toBe(user);
      // An anonymous visitor describes themselves as they like, and the sign-up carries it over.
      const anon2 = await anonymousVisitor(store);
      await store.recordEvent(from('client', identify({ anonymousId: anon2 }, { email: `${anon2}@example.com`, consent: { email_marketing: true } })), once);
      const user2 = unique('new-user');
      await store.recordEvent(from('client', identify({ userId: user2, anonymousId: anon2 })), once);
      expect((await store.getProfile(user2))?.email).toBe(`${anon2}@example.com`);
      expect((await store.getProfile(user2))?.consent.email_marketing?.granted).toBe(true);
    });

    it('attack: a client naming an id nobody has used as its anonymousId does not claim it for a customer who takes it later', async () => {
      const attacker = await identifiedCustomer(store, unique('attacker'));
      const future = unique('future-user');
      const [claim] = await store.recordEvents([from('client', identify({ userId: attacker, anonymousId: future }))], batch);
      expect(claim?.refused).toBeUndefined();
      expect(await store.resolveCustomerId(future)).toBe(future);
      await store.recordEvent(from('server', identify({ userId: future }, { email: `${future}@example.com` })), once);
      expect(await store.resolveCustomerId(future)).toBe(future);
      expect((await store.getProfile(attacker))?.email).toBe(`${attacker}@example.com`);
      expect((await store.getProfile(future))?.email).toBe(`${future}@example.com`);
    });

    it("microflows' own events for an anonymous visitor (an open, a segment entry) do not make them identified", async () => {
      const anon = await anonymousVisitor(store);
      await store.recordEvent(track({ userId: anon }, 'Email Opened', { delivery_key: 'd' }), once);
      await store.recordEvent(track({ userId: anon }, 'Segment Entered', { segment_id: 's' }), once);
      const customer = await identifiedCustomer(store);
      const [login] = await store.recordEvents([from('client', identify({ userId: customer, anonymousId: anon }))], batch);
      expect(login?.refused).toBeUndefined();
      expect(await store.resolveCustomerId(anon)).toBe(customer);
    });

    it('a refused call in a batch writes nothing of itself (nor of its repeat) and the others are stored', async () => {
      const [victim, attacker] = [await identifiedCustomer(store), await identifiedCustomer(store, unique('attacker'))];
      const bad = from('client', identify({ userId: attacker, anonymousId: victim }));
      const first = from('client', track({ userId: attacker }, 'Product Viewed'));
      const last = from('client', track({ userId: attacker }, 'Product Viewed'));
      const before = await store.tableCounts();
      const results = await store.recordEvents([first, bad, { ...bad }, last], batch);
      expect(results.map((r) => [r.refused?.field, r.duplicate, r.event.customerId])).toEqual([
        [undefined, false, attacker],
        ['anonymousId', false, attacker],
        ['anonymousId', false, attacker],
        [undefined, false, attacker],
      ]);
      expect((await store.tableCounts()).events).toBe(before.events! + 2);
      expect((await store.recentEvents(attacker, 100)).map((e) => e.messageId)).not.toContain(bad.messageId);
      // A refused call can be sent again from a server key under the same messageId: nothing of it was stored.
      const [retried] = await store.recordEvents([{ ...bad, origin: 'server' }], batch);
      expect([retried?.refused, retried?.duplicate]).toEqual([undefined, false]);
      expect(await store.resolveCustomerId(victim)).toBe(attacker);
    });

    it('a batch identifying a customer first refuses a later client merge of them in the same batch', async () => {
      const [target, attacker] = [unique('target'), unique('attacker')];
      const results = await store.recordEvents([from('server', identify({ userId: target }, { email: `${target}@example.com` })), from('client', identify({ userId: attacker, anonymousId: target }))], batch);
      expect(results.map((r) => r.refused?.field)).toEqual([undefined, 'anonymousId']);
      expect(await store.resolveCustomerId(target)).toBe(target);
      expect(await store.getProfile(attacker)).toBeUndefined();
    });

    if (backend.name !== 'postgres') return;

    it('race: a client merge racing the identify that makes the victim known never merges them', async () => {
      const [a, b] = [await backend.open(), await backend.open()];
      const pairs = Array.from({ length: 40 }, () => ({ victim: unique('victim'), attacker: unique('attacker') }));
      for (const { attacker } of pairs) await identifiedCustomer(a, attacker);
      const outcomes = await Promise.all(
        pairs.map(async ({ victim, attacker }) => {
          const [, [merge]] = await Promise.all([
            a.recordEvents([from('server', identify({ userId: victim }, { email: `${victim}@example.com` }))], batch),
            b.recordEvents([from('client', identify({ userId: attacker, anonymousId: victim }))], batch),
          ]);
          return merge?.refused ? 'refused' : 'recorded';
        }),
      );
      const taken: string[] = [];
      for (const { victim, attacker } of pairs) {
        const ok =
          (await a.resolveCustomerId(victim)) === victim &&
          (await a.getProfile(victim))?.email === `${victim}@example.com` &&
          (await a.getProfile(attacker))?.email === `${attacker}@example.com` &&
          (await a.recentEvents(victim, 10)).every((e) => e.customerId === victim && e.userId === victim);
        if (!ok) taken.push(victim);
      }
      // Whichever wrote first: the victim first refuses the merge; the merge first names an unknown id and joins nothing.
      expect({ taken, outcomes: [...new Set(outcomes)].every((o) => o === 'refused' || o === 'recorded') }).toEqual({ taken: [], outcomes: true });
    });

    it("race: a client alias of the victim's anonymous id racing their login never merges the victim", async () => {
      const [a, b] = [await backend.open(), await backend.open()];
      const trios = [];
      for (let i = 0; i < 40; i++) trios.push({ victim: await identifiedCustomer(a), anon: await anonymousVisitor(a), attacker: await identifiedCustomer(a, unique('attacker')) });
      await Promise.all(
        trios.flatMap(({ victim, anon, attacker }) => [
          a.recordEvents([from('client', identify({ userId: victim, anonymousId: anon }))], batch),
          b.recordEvents([from('client', alias(attacker, anon))], batch),
        ]),
      );
      const merged: string[] = [];
      for (const { victim, attacker } of trios) {
        const ok =
          (await a.resolveCustomerId(victim)) === victim &&
          (await a.getProfile(victim))?.email === `${victim}@example.com` &&
          (await a.getProfile(victim))?.computed.cart !== undefined &&
          (await a.getProfile(attacker))?.email === `${attacker}@example.com`;
        if (!ok) merged.push(victim);
      }
      expect(merged).toEqual([]);
    });
  });
}
