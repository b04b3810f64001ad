// Attacks on the ESP webhooks, replayed against the real app on a real port over each store backend: unsigned,
// altered and replayed SendGrid batches, Postmark without its credential, the browser-visible write key, forged
// suppressions that name another customer, and probing whether an address is a customer.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import postmarkStory from '../fixtures/webhooks/postmark-story.json';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const WRITE_KEY = 'test-write-key';
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
/** SENDGRID_WEBHOOK_VERIFICATION_KEY as SendGrid shows it: base64 of the DER public key. */
const VERIFICATION_KEY = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const POSTMARK_CREDENTIAL = `postmark:${randomBytes(16).toString('hex')}`;

const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

/** A fixture's raw text with {{name}} filled in: the body is sent as these bytes, never re-serialized. */
function fixtureText(name: string, fill: Record<string, string | number> = {}): string {
  const text = readFileSync(join(__dirname, '..', 'fixtures', 'webhooks', name), 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_all, key: string) => {
    if (!(key in fill)) throw new Error(`fixture ${name} needs {{${key}}}`);
    return String(fill[key]);
  });
}

/** SendGrid's story for `email`, its event ids made unique by `suffix`, byte for byte otherwise. */
function sendgridStory(email: string, suffix: string): Buffer {
  const text = fixtureText('sendgrid-story.json')
    .replaceAll('Ada.Lovelace@Example.com', email)
    .replace(/"sg_event_id": "([^"]+)"/g, `"sg_event_id": "$1-${suffix}"`);
  return Buffer.from(text, 'utf8');
}

/** The headers SendGrid sends: ECDSA P-256 / SHA-256 over the timestamp's text and the body's bytes. */
function sendgridSignature(body: Buffer, at = Date.now(), key = privateKey): Record<string, string> {
  const timestamp = String(Math.floor(at / 1000));
  const signature = sign('sha256', Buffer.concat([Buffer.from(timestamp), body]), { key, dsaEncoding: 'der' }).toString('base64');
  return { 'x-twilio-email-event-webhook-signature': signature, 'x-twilio-email-event-webhook-timestamp': timestamp };
}

interface Reply {
  status: number;
  text: string;
  body: Record<string, any>;
}

async function post(base: string, route: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as Record<string, any> };
}

const backends = storeBackends('security/webhooks');

for (const backend of backends) {
  backend.describe(`attacks on the ESP webhooks: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;
    const logged: string[] = [];

    beforeAll(async () => {
      store = await backend.open();
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, sendgridVerificationKey: VERIFICATION_KEY, postmarkWebhookCredential: POSTMARK_CREDENTIAL },
        dispatcher: noDispatch,
        log: (message) => logged.push(message),
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    /** A customer with an address and marketing consent, made through ingest as the shop would. */
    async function customer(prefix: string): Promise<{ id: string; email: string }> {
      const id = unique(prefix);
      const email = `${id}@example.com`;
      const identify = await post(app.url, '/v1/identify', JSON.stringify({ userId: id, traits: { email, consent: { email_marketing: true } } }), { authorization: basic(`${WRITE_KEY}:`) });
      expect(identify.status).toBe(200);
      return { id, email };
    }

    /** A send the flows made to `to`, as the mailer records it: the ledger row with the Message-ID it went out with. */
    async function sentTo(customerId: string, to: string): Promise<{ deliveryKey: string; messageId: string }> {
      const deliveryKey = `winback:${customerId}:1:mail`;
      const messageId = `<${randomBytes(16).toString('hex')}@microflows>`;
      await store.claimSend({ deliveryKey, customerId, flowId: 'winback', flowVersion: 1, workflowId: `wf-${customerId}`, nodeId: 'mail', template: 'winback', to, subject: 'We miss you', transport: 'smtp', scheduledAt: Date.now() });
      await store.completeSend(deliveryKey, messageId, Date.now());
      return { deliveryKey, messageId };
    }

    /** What an attack must leave as it was: every table's row count, and the victim's profile and events. */
    async function snapshot(customerId: string) {
      return { counts: await store.tableCounts(), profile: await store.getProfile(customerId), events: await store.eventsOf(customerId) };
    }

    describe('SendGrid: only a fresh, intact signature by the configured key is accepted', () => {
      it('a real SendGrid-format signed batch is accepted and records its events (the control for the attacks below)', async () => {
        const ada = await customer('ada');
        const body = sendgridStory(ada.email, ada.id);

        const reply = await post(app.url, '/webhooks/sendgrid', body, sendgridSignature(body));

        expect(reply.status).toBe(200);
        expect(reply.body).toEqual({ success: true, received: 7, ignored: [{ index: 0, reason: expect.stringContaining('"processed" ignored') }] });
        const story = ['Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed'];
        expect((await store.eventsOf(ada.id, { names: story })).map((e) => e.name).reverse()).toEqual(story);
      });

      it('attack: the same signed batch with one byte changed is refused (401) and records nothing', async () => {
        const victim = await customer('altered');
        const body = sendgridStory(victim.email, victim.id);
        const headers = sendgridSignature(body);
        const before = await snapshot(victim.id);
        // "delivered" → "delivereD": one byte, still valid JSON in SendGrid's format.
        const altered = Buffer.from(body);
        const at = altered.indexOf('"delivered"') + 9;
        altered[at] = 'D'.charCodeAt(0);

        const reply = await post(app.url, '/webhooks/sendgrid', altered, headers);

        expect(reply.status).toBe(401);
        expect(reply.body).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/^X-Twilio-Email-Event-Webhook-Signature: the signature does not match/) });
        expect(await snapshot(victim.id)).toEqual(before);
      });

      it('attack: a captured signed batch replayed 11 minutes later is refused (401) and records nothing', async () => {
        const victim = await customer('replayed');
        const body = sendgridStory(victim.email, victim.id);
        const before = await snapshot(victim.id);

        const reply = await post(app.url, '/webhooks/sendgrid', body, sendgridSignature(body, Date.now() - 11 * 60_000));

        expect(reply.status).toBe(401);
        expect(reply.body.message).toMatch(/^X-Twilio-Email-Event-Webhook-Timestamp: signed 6\d\d s ago; requests older than 10 minutes are refused as replays/);
        expect(await snapshot(victim.id)).toEqual(before);
      });

      it('attack: an unsigned batch, or one signed by another key, is refused (401) and records nothing', async () => {
        const victim = await customer('unsigned');
        const body = sendgridStory(victim.email, victim.id);
        const before = await snapshot(victim.id);
        const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

        const unsigned = await post(app.url, '/webhooks/sendgrid', body);
        const foreign = await post(app.url, '/webhooks/sendgrid', body, sendgridSignature(body, Date.now(), otherKey));

        expect([unsigned.status, foreign.status]).toEqual([401, 401]);
        expect(unsigned.body.message).toMatch(/^missing X-Twilio-Email-Event-Webhook-Signature and X-Twilio-Email-Event-Webhook-Timestamp: turn on Signed Event Webhook/);
        expect(foreign.body.message).toMatch(/signature does not match/);
        expect(await snapshot(victim.id)).toEqual(before);
      });
    });

    describe('the write key, which every page with analytics.js shows, opens no webhook', () => {
      it.each(['sendgrid', 'postmark'])('attack: a %s webhook sent with the write key is refused (401) and records nothing', async (provider) => {
        const victim = await customer(`writekey-${provider}`);
        const body = provider === 'sendgrid' ? sendgridStory(victim.email, victim.id) : JSON.stringify({ ...postmarkStory[6], Recipient: victim.email, MessageID: unique('pm') });
        const before = await snapshot(victim.id);

        const reply = await post(app.url, `/webhooks/${provider}`, body, { authorization: basic(`${WRITE_KEY}:`) });

        expect(reply.status).toBe(401);
        expect(await snapshot(victim.id)).toEqual(before);
      });
    });

    describe('Postmark: only its own Basic credential is accepted', () => {
      it.each([
        ['no credential', undefined, /^missing credential/],
        ['a wrong password', basic(`${POSTMARK_CREDENTIAL.split(':')[0]}:guess`), /^wrong credential/],
        ['the right password under another user', basic(`admin:${POSTMARK_CREDENTIAL.split(':')[1]}`), /^wrong credential/],
      ])('attack: a Postmark unsubscribe with %s is refused (401) and records nothing', async (_what, authorization, message) => {
        const victim = await customer('pm-forged');
        const body = JSON.stringify({ ...postmarkStory[6], Recipient: victim.email, MessageID: unique('pm'), Metadata: { customer_id: victim.id } });
        const before = await snapshot(victim.id);

        const reply = await post(app.url, '/webhooks/postmark', body, authorization ? { authorization } : {});

        expect(reply.status).toBe(401);
        expect(reply.body).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(message) });
        expect(await snapshot(victim.id)).toEqual(before);
      });

      it('the right credential is accepted and records the unsubscribe (the control)', async () => {
        const ada = await customer('pm-ok');
        const body = JSON.stringify({ ...postmarkStory[6], Recipient: ada.email, MessageID: unique('pm'), ChangedAt: new Date().toISOString() });

        const reply = await post(app.url, '/webhooks/postmark', body, { authorization: basic(POSTMARK_CREDENTIAL) });

        expect(reply).toMatchObject({ status: 200, body: { success: true, received: 1, ignored: [] } });
        expect((await store.getProfile(ada.id))?.consent.email_marketing).toMatchObject({ granted: false, source: 'unsubscribe' });
      });
    });

    describe('a provider this server has no credential for', () => {
      it.each([
        ['sendgrid', 'SENDGRID_WEBHOOK_VERIFICATION_KEY'],
        ['postmark', 'POSTMARK_WEBHOOK_CREDENTIAL'],
      ])('attack: %s webhooks on a server without its credential are refused (401), naming the variable to set', async (provider, variable) => {
        const bare = await serveApp({ store, config: { writeKey: WRITE_KEY }, dispatcher: noDispatch, log: () => undefined });
        try {
          const victim = await customer(`unconfigured-${provider}`);
          const body = provider === 'sendgrid' ? sendgridStory(victim.email, victim.id) : JSON.stringify({ ...postmarkStory[6], Recipient: victim.email });
          const headers = provider === 'sendgrid' ? sendgridSignature(body as Buffer) : { authorization: basic(POSTMARK_CREDENTIAL) };
          const before = await snapshot(victim.id);

          const reply = await post(bare.url, `/webhooks/${provider}`, body, headers);

          expect(reply.status).toBe(401);
          expect(reply.body.message).toContain(`set ${variable}`);
          expect(await snapshot(victim.id)).toEqual(before);
        } finally {
          await bare.close();
        }
      });
    });

    describe("forged suppressions: ids in the payload never override the address the provider delivered to", () => {
      it("attack: a signed SendGrid bounce, spam report and unsubscribes for the attacker's own address, carrying the victim's customer_id, delivery_key and Message-ID, do not touch the victim", async () => {
        const victim = await customer('victim');
        const attacker = await customer('attacker');
        const victimSend = await sentTo(victim.id, victim.email);
        const before = await snapshot(victim.id);
        const body = Buffer.from(
          fixtureText('sendgrid-forged-suppressions.json', {
            email: attacker.email,
            timestamp: Math.floor(Date.now() / 1000),
            message_id: victimSend.messageId,
            customer_id: victim.id,
            delivery_key: victimSend.deliveryKey,
            suffix: attacker.id,
          }),
        );

        const reply = await post(app.url, '/webhooks/sendgrid', body, sendgridSignature(body));

        expect(reply).toMatchObject({ status: 200, body: { success: true, received: 4, ignored: [] } });
        const after = await snapshot(victim.id);
        expect(after.profile).toEqual(before.profile);
        expect(after.profile?.consent.email_marketing?.granted).toBe(true);
        expect(after.events).toEqual(before.events);
        // They are the attacker's own events, without the victim's flow labels.
        const own = await store.eventsOf(attacker.id, { names: ['Email Bounced', 'Email Marked as Spam', 'Unsubscribed'] });
        expect(own.map((e) => [e.name, e.properties.delivery_key, e.properties.flow_id]).sort()).toEqual([
          ['Email Bounced', undefined, undefined],
          ['Email Marked as Spam', undefined, undefined],
          ['Unsubscribed', undefined, undefined],
          ['Unsubscribed', undefined, undefined],
        ]);
        expect(logged.some((line) => line.includes(`customer_id "${victim.id}" has another email`))).toBe(true);
      });

      it("attack: Postmark bounce, spam complaint and unsubscribe with the right credential, for the attacker's address and the victim's customer_id, do not touch the victim", async () => {
        const victim = await customer('pm-victim');
        const attacker = await customer('pm-attacker');
        const before = await snapshot(victim.id);
        // Times of now, so that had they reached the victim, the unsubscribe would have outranked their consent.
        const now = new Date().toISOString();
        const forged = [postmarkStory[3], postmarkStory[5], postmarkStory[6]].map((event) =>
          JSON.stringify({
            ...event,
            Email: attacker.email,
            Recipient: attacker.email,
            MessageID: unique('pm'),
            BouncedAt: now,
            ChangedAt: now,
            Metadata: { ...event!.Metadata, customer_id: victim.id },
          }),
        );

        const replies = [];
        for (const body of forged) replies.push(await post(app.url, '/webhooks/postmark', body, { authorization: basic(POSTMARK_CREDENTIAL) }));

        expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
        const after = await snapshot(victim.id);
        expect(after.profile).toEqual(before.profile);
        expect(after.profile?.consent.email_marketing?.granted).toBe(true);
        expect(after.events).toEqual(before.events);
        expect((await store.eventsOf(attacker.id, { names: ['Email Bounced', 'Email Marked as Spam', 'Unsubscribed'] })).map((e) => e.name).sort()).toEqual(['Email Bounced', 'Email Marked as Spam', 'Unsubscribed']);
      });

      it("attack: a forged unsubscribe for an address no customer has, carrying the victim's customer_id, records nothing at all", async () => {
        const victim = await customer('victim-nobody');
        const before = await snapshot(victim.id);
        const stranger = `${unique('stranger')}@example.net`;
        const body = Buffer.from(
          fixtureText('sendgrid-forged-suppressions.json', { email: stranger, timestamp: Math.floor(Date.now() / 1000), message_id: '<none@microflows>', customer_id: victim.id, delivery_key: 'winback:x:1:mail', suffix: victim.id }),
        );

        const reply = await post(app.url, '/webhooks/sendgrid', body, sendgridSignature(body));

        expect(reply.status).toBe(200);
        expect(await snapshot(victim.id)).toEqual(before);
      });
    });

    describe('probing whether an address is a customer', () => {
      it('attack: the answer for an address no customer has is byte-identical to the answer for a customer, first time and repeated', async () => {
        const known = await customer('known');
        const strangerEmail = `${unique('stranger')}@example.org`;
        // The same batch shape for both: only the address and the event ids differ, and neither is in the answer.
        const knownBody = sendgridStory(known.email, `${known.id}-probe`);
        const strangerBody = sendgridStory(strangerEmail, `${known.id}-stranger`);
        const before = await store.tableCounts();

        const knownReply = await post(app.url, '/webhooks/sendgrid', knownBody, sendgridSignature(knownBody));
        const strangerReply = await post(app.url, '/webhooks/sendgrid', strangerBody, sendgridSignature(strangerBody));
        const knownAgain = await post(app.url, '/webhooks/sendgrid', knownBody, sendgridSignature(knownBody));

        expect(knownReply.status).toBe(200);
        expect(strangerReply.status).toBe(200);
        expect(strangerReply.text).toBe(knownReply.text);
        expect(knownAgain.text).toBe(knownReply.text);
        // Nothing that counts what was stored (accepted, duplicates) or lists who was not found.
        expect(Object.keys(knownReply.body)).toEqual(['success', 'received', 'ignored']);
        expect(knownReply.text).not.toContain(known.email);
        // Only the customer's events were stored; the stranger is in the server log, masked.
        expect((await store.tableCounts()).events).toBe((before.events ?? 0) + 6);
        const line = logged.find((l) => l.includes(`${strangerEmail[0]}***@example.org`) && l.includes('no customer has'));
        expect(line).toMatch(/^\[webhooks\] sendgrid: 6 event\(s\) for recipients no customer has, not recorded/);
        expect(logged.join('\n')).not.toContain(strangerEmail);
      });
    });
  });
}
