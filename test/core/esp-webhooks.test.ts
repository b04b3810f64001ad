// ESP webhooks → canonical engagement events: the same story told by SendGrid and by Postmark reads the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { BadEventError } from '../../core/errors';
import {
  attributeEngagement,
  maskEmail,
  normalizePostmarkEvent,
  normalizeSendGridEvents,
  parseIsoTimestamp,
  type EngagementEvent,
  type RecipientLookups,
  type SendRecipient,
} from '../../core/esp-webhooks';
import { fuzzRun } from '../support/fuzz-seed';

/** SendGrid fixture: one Event Webhook POST body (a batch). Postmark fixture: the bodies of successive POSTs. */
function fixture(name: string): unknown {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'webhooks', name), 'utf8'));
}

const sendgridStory = fixture('sendgrid-story.json') as unknown[];
const postmarkStory = fixture('postmark-story.json') as unknown[];

function postmarkAll(bodies: unknown[]): { events: EngagementEvent[]; ignored: Array<{ post: number; reason: string }> } {
  const events: EngagementEvent[] = [];
  const ignored: Array<{ post: number; reason: string }> = [];
  bodies.forEach((body, post) => {
    const result = normalizePostmarkEvent(body);
    events.push(...result.events);
    ignored.push(...result.ignored.map(({ reason }) => ({ post, reason })));
  });
  return { events, ignored };
}

/** What must not depend on the provider. Times agree to the second: SendGrid sends whole seconds. */
function comparable(event: EngagementEvent) {
  const p = event.properties;
  return {
    name: event.name,
    email: event.email,
    claimedCustomerId: event.claimedCustomerId,
    second: Math.floor(event.timestamp / 1000),
    url: p.url,
    bounce_type: p.bounce_type,
    delivery_key: p.delivery_key,
    flow_id: p.flow_id,
    step_id: p.step_id,
    variant: p.variant,
  };
}

describe('the same story from SendGrid and from Postmark', () => {
  const sendgrid = normalizeSendGridEvents(sendgridStory);
  const postmark = postmarkAll(postmarkStory);

  test('normalizes to the same sequence of canonical events', () => {
    expect(sendgrid.events.map(comparable)).toEqual(postmark.events.map(comparable));
    expect(sendgrid.events.map((e) => e.name)).toEqual([
      'Email Delivered',
      'Email Opened',
      'Email Link Clicked',
      'Email Bounced',
      'Email Marked as Spam',
      'Unsubscribed',
    ]);
  });

  test('the recipient is lower-cased and the custom args / metadata customer_id is kept as a claim', () => {
    for (const event of [...sendgrid.events, ...postmark.events]) {
      expect(event.email).toBe('ada.lovelace@example.com');
      expect(event.claimedCustomerId).toBe('cust_42');
    }
  });

  test("SendGrid's smtp-id is the Message-ID the email went out with; Postmark's MessageID is its own, so none", () => {
    expect(sendgrid.events.map((e) => e.sentMessageId)).toEqual(['<14c5d75ce93.dfd.64b469@ismtpd-555>', null, null, '<27a4c81de02.aab.91f2c0@ismtpd-555>', null, null]);
    expect(postmark.events.map((e) => e.sentMessageId)).toEqual(Array(6).fill(null));
  });

  test('clicks carry the url, bounces their type and reason, opens and clicks the user agent and ip', () => {
    for (const { events } of [sendgrid, postmark]) {
      const [delivered, opened, clicked, bounced] = events;
      expect(clicked?.properties.url).toBe('https://shop.example.com/cart?item=sku-1');
      expect(bounced?.properties).toMatchObject({ bounce_type: 'hard', reason: expect.stringContaining('5.1.1') });
      expect(bounced?.properties).toMatchObject({ step_id: 'discount', variant: 'b' });
      expect(opened?.properties).toMatchObject({ user_agent: expect.stringContaining('iPhone'), ip: '203.0.113.7' });
      expect(clicked?.properties).toMatchObject({ user_agent: expect.stringContaining('iPhone'), ip: '203.0.113.7' });
      expect(delivered?.properties).not.toHaveProperty('ip');
    }
  });

  test('ids and provider fields differ, as they should', () => {
    expect(sendgrid.events[0]).toMatchObject({
      messageId: 'sendgrid:ZGVsaXZlcmVkLTEtYWRh',
      properties: { provider: 'sendgrid', provider_message_id: '14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0' },
    });
    expect(postmark.events[0]).toMatchObject({
      messageId: `postmark:Delivery:883953f4-6105-42a2-a16a-77a8eac79483:${Date.UTC(2024, 4, 6, 10, 15, 32, 451)}`,
      properties: { provider: 'postmark', provider_message_id: '883953f4-6105-42a2-a16a-77a8eac79483' },
    });
    expect(new Set([...sendgrid.events, ...postmark.events].map((e) => e.messageId)).size).toBe(12);
  });

  test('provider-only events are reported as ignored, with where and why', () => {
    expect(sendgrid.ignored).toEqual([{ index: 0, reason: expect.stringContaining('"processed" ignored') }]);
    expect(postmark.ignored).toEqual([{ post: 4, reason: expect.stringContaining('suppression after HardBounce is reported by the Bounce webhook') }]);
  });

  test('a retried webhook normalizes to the same ids, so the store deduplicates it', () => {
    expect(normalizeSendGridEvents(sendgridStory).events.map((e) => e.messageId)).toEqual(sendgrid.events.map((e) => e.messageId));
    expect(postmarkAll(postmarkStory).events.map((e) => e.messageId)).toEqual(postmark.events.map((e) => e.messageId));
  });
});

const sg = (fields: Record<string, unknown>) => ({
  email: 'bob@example.com',
  timestamp: 1714990530,
  event: 'delivered',
  sg_event_id: 'evt-1',
  sg_message_id: 'msg-1.filter0001',
  ...fields,
});

describe('normalizeSendGridEvents', () => {
  test.each([
    [{}, 'an object'],
    [null, 'null'],
    ['[]', '"[]"'],
    [undefined, 'nothing'],
  ])('a body that is not an array (%j) throws BadEventError', (body, shown) => {
    expect(() => normalizeSendGridEvents(body)).toThrow(BadEventError);
    expect(() => normalizeSendGridEvents(body)).toThrow(`expected the SendGrid Event Webhook's JSON array of events, got ${shown}`);
  });

  test('an empty batch is fine', () => {
    expect(normalizeSendGridEvents([])).toEqual({ events: [], ignored: [] });
  });

  test('bad items are ignored with their index and reason; good ones in the same batch still count', () => {
    const result = normalizeSendGridEvents([
      sg({}),
      'not an event',
      sg({ email: undefined }),
      sg({ timestamp: '1714990530' }),
      sg({ timestamp: 1714990530123 }),
      sg({ email: 'no-at-sign' }),
      sg({ event: undefined }),
      sg({ event: 'click', url: undefined }),
      sg({ event: 'exploded' }),
      sg({ sg_event_id: undefined, sg_message_id: undefined }),
      sg({ timestamp: -5 }),
    ]);
    expect(result.events).toHaveLength(1);
    expect(result.ignored).toEqual([
      { index: 1, reason: '[1]: expected an event object, got "not an event"' },
      { index: 2, reason: "[2].email: expected the recipient's address, got nothing" },
      { index: 3, reason: '[3].timestamp: expected unix seconds, got "1714990530"' },
      { index: 4, reason: '[4].timestamp: expected unix seconds, got 1714990530123' },
      { index: 5, reason: `[5].email: expected the recipient's address, got "no-at-sign"` },
      { index: 6, reason: '[6].event: missing' },
      { index: 7, reason: '[7].url: a click without an http(s) url, got nothing' },
      { index: 8, reason: '[8]: unknown SendGrid event "exploded"' },
      { index: 9, reason: expect.stringContaining('[9].sg_event_id: missing') },
      { index: 10, reason: '[10].timestamp: expected unix seconds, got -5' },
    ]);
  });

  test.each([
    ['processed', 'accepted for sending'],
    ['deferred', 'temporary delivery delay'],
    ['dropped', 'never sent'],
    ['group_resubscribe', 'a resubscribe'],
  ])('"%s" is ignored, not an error (%s)', (event, reason) => {
    const result = normalizeSendGridEvents([sg({ event, reason: 'Bounced Address' })]);
    expect(result.events).toEqual([]);
    expect(result.ignored).toEqual([{ index: 0, reason: expect.stringContaining(reason) }]);
  });

  test('bounce type "bounce" is hard, "blocked" is soft, no type is hard; the reason is kept', () => {
    const [hard, soft, untyped] = normalizeSendGridEvents([
      sg({ event: 'bounce', type: 'bounce', reason: '550 unknown user', status: '5.1.1' }),
      sg({ event: 'bounce', type: 'blocked', reason: '554 blocked by policy', sg_event_id: 'evt-2' }),
      sg({ event: 'bounce', status: '5.0.0', sg_event_id: 'evt-3' }),
    ]).events;
    expect(hard?.properties).toMatchObject({ bounce_type: 'hard', reason: '550 unknown user' });
    expect(soft?.properties).toMatchObject({ bounce_type: 'soft', reason: '554 blocked by policy' });
    expect(untyped?.properties).toMatchObject({ bounce_type: 'hard', reason: '5.0.0' });
  });

  test('group_unsubscribe is Unsubscribed with its group; machine opens are marked', () => {
    const [unsub, open] = normalizeSendGridEvents([
      sg({ event: 'group_unsubscribe', asm_group_id: 10 }),
      sg({ event: 'open', sg_machine_open: true, sg_event_id: 'evt-2' }),
    ]).events;
    expect(unsub).toMatchObject({ name: 'Unsubscribed', properties: { group_id: '10' } });
    expect(open).toMatchObject({ name: 'Email Opened', properties: { machine_open: true } });
  });

  test('without custom args the customer is null; the timestamp becomes epoch ms', () => {
    const [event] = normalizeSendGridEvents([sg({ email: ' Bob@Example.COM ' })]).events;
    expect(event).toEqual({
      messageId: 'sendgrid:evt-1',
      name: 'Email Delivered',
      email: 'bob@example.com',
      claimedCustomerId: null,
      sentMessageId: null,
      timestamp: 1714990530000,
      properties: { provider: 'sendgrid', provider_message_id: 'msg-1.filter0001' },
    });
  });

  test('a numeric customer_id is read as text; a non-scalar one is not an id', () => {
    const [numeric, objectId] = normalizeSendGridEvents([sg({ customer_id: 42 }), sg({ customer_id: { id: 1 }, sg_event_id: 'evt-2' })]).events;
    expect(numeric?.claimedCustomerId).toBe('42');
    expect(objectId?.claimedCustomerId).toBeNull();
  });

  test('an smtp-id without angle brackets gets them, as the Message-ID header has them', () => {
    const [bare, bracketed] = normalizeSendGridEvents([sg({ 'smtp-id': ' abc@microflows ' }), sg({ 'smtp-id': '<abc@microflows>', sg_event_id: 'evt-2' })]).events;
    expect([bare?.sentMessageId, bracketed?.sentMessageId]).toEqual(['<abc@microflows>', '<abc@microflows>']);
  });

  test('without sg_event_id the id falls back to message, event and time', () => {
    const [event] = normalizeSendGridEvents([sg({ sg_event_id: undefined })]).events;
    expect(event?.messageId).toBe('sendgrid:msg-1.filter0001:delivered:1714990530000');
  });
});

const pm = (fields: Record<string, unknown>) => ({
  RecordType: 'Delivery',
  MessageID: 'pm-1',
  Recipient: 'bob@example.com',
  DeliveredAt: '2024-05-06T10:15:32Z',
  Metadata: {},
  ...fields,
});

describe('normalizePostmarkEvent', () => {
  test.each([
    [[], 'an array'],
    [null, 'null'],
    ['{}', '"{}"'],
    [42, '42'],
  ])('a body that is not an object (%j) throws BadEventError', (body, shown) => {
    expect(() => normalizePostmarkEvent(body)).toThrow(BadEventError);
    expect(() => normalizePostmarkEvent(body)).toThrow(`expected one Postmark webhook event object, got ${shown}`);
  });

  test.each([
    [pm({ Recipient: undefined }), "[0].Recipient: expected the recipient's address, got nothing"],
    [pm({ DeliveredAt: '06/05/2024 10:15' }), '[0].DeliveredAt: expected an ISO 8601 time, got "06/05/2024 10:15"'],
    [pm({ DeliveredAt: '2024-02-30T10:00:00Z' }), '[0].DeliveredAt: expected an ISO 8601 time'],
    [pm({ RecordType: undefined }), '[0].RecordType: missing'],
    [pm({ RecordType: 'Inbound' }), '[0]: unknown Postmark RecordType "Inbound"'],
    [pm({ RecordType: 'Click', ReceivedAt: '2024-05-06T10:15:32Z' }), '[0].OriginalLink: a click without an http(s) url'],
    [pm({ RecordType: 'Bounce', Email: 'bob@example.com', BouncedAt: '2024-05-06T10:15:32Z' }), '[0].Type: a bounce without a Type'],
  ])('a bad event is ignored with why: %#', (body, reason) => {
    const result = normalizePostmarkEvent(body);
    expect(result.events).toEqual([]);
    expect(result.ignored).toEqual([{ index: 0, reason: expect.stringContaining(reason) }]);
  });

  const bounce = (type: Record<string, unknown>) =>
    normalizePostmarkEvent({ RecordType: 'Bounce', MessageID: 'pm-2', Email: 'bob@example.com', BouncedAt: '2024-05-06T10:15:32Z', Details: 'smtp;552 mailbox full', ...type });

  test.each([
    ['HardBounce', 'Email Bounced', 'hard'],
    ['BadEmailAddress', 'Email Bounced', 'hard'],
    ['SoftBounce', 'Email Bounced', 'soft'],
    ['Blocked', 'Email Bounced', 'soft'],
    ['DMARCPolicy', 'Email Bounced', 'soft'],
    ['SpamNotification', 'Email Bounced', 'soft'],
    ['SpamComplaint', 'Email Marked as Spam', undefined],
    ['Unsubscribe', 'Unsubscribed', undefined],
  ])('bounce Type %s is %s (%s)', (Type, name, bounceType) => {
    const [event] = bounce({ Type }).events;
    expect(event?.name).toBe(name);
    expect(event?.properties.bounce_type).toBe(bounceType);
  });

  test.each(['Transient', 'DnsError', 'ManuallyDeactivated', 'AutoResponder', 'VirusNotification', 'Unknown'])('bounce Type %s is ignored', (Type) => {
    const result = bounce({ Type });
    expect(result.events).toEqual([]);
    expect(result.ignored[0]?.reason).toContain(`bounce type "${Type}"`);
  });

  test('a bounce with only a TypeCode is read by its code; the reason prefers Details over Description', () => {
    const [event] = bounce({ TypeCode: 4096, Description: 'Soft bounce' }).events;
    expect(event?.properties).toMatchObject({ bounce_type: 'soft', reason: 'smtp;552 mailbox full' });
  });

  test('a reactivation is ignored; a suppression by the sender is Unsubscribed with its origin, even without a MessageID', () => {
    const change = (fields: Record<string, unknown>) =>
      normalizePostmarkEvent({ RecordType: 'SubscriptionChange', MessageID: null, Recipient: 'bob@example.com', ChangedAt: '2024-05-06T10:15:32Z', MessageStream: 'broadcast', ...fields });
    expect(change({ SuppressSending: false }).ignored[0]?.reason).toContain('a reactivation');
    expect(change({ SuppressSending: true, SuppressionReason: 'SpamComplaint' }).ignored[0]?.reason).toContain('reported by the SpamComplaint webhook');
    const [event] = change({ SuppressSending: true, SuppressionReason: 'ManualSuppression', Origin: 'Customer' }).events;
    expect(event).toMatchObject({
      name: 'Unsubscribed',
      messageId: `postmark:SubscriptionChange:bob@example.com:${Date.UTC(2024, 4, 6, 10, 15, 32)}`,
      properties: { origin: 'customer', message_stream: 'broadcast' },
    });
    expect(event?.properties).not.toHaveProperty('provider_message_id');
  });

  test('the delivery webhook\'s "MessageId" spelling is read too', () => {
    const [event] = normalizePostmarkEvent(pm({ MessageID: undefined, MessageId: 'pm-9' })).events;
    expect(event?.properties.provider_message_id).toBe('pm-9');
  });

  test('Metadata without customer_id gives a null customer; unknown metadata keys stay out of properties', () => {
    const [event] = normalizePostmarkEvent(pm({ Metadata: { flow_id: 'winback', coupon: 'X' } })).events;
    expect(event?.claimedCustomerId).toBeNull();
    expect(event?.properties).toEqual({ provider: 'postmark', provider_message_id: 'pm-1', flow_id: 'winback' });
  });
});

describe('parseIsoTimestamp', () => {
  test.each([
    ['2024-05-06T10:15:32Z', Date.UTC(2024, 4, 6, 10, 15, 32)],
    ['2024-05-06T10:15:32.4512338Z', Date.UTC(2024, 4, 6, 10, 15, 32, 451)],
    ['2024-05-06T06:25:32.9182311-04:00', Date.UTC(2024, 4, 6, 10, 25, 32, 918)],
    ['2024-05-06T12:26:32.27+02:00', Date.UTC(2024, 4, 6, 10, 26, 32, 270)],
    ['2024-05-06T15:45:32+0530', Date.UTC(2024, 4, 6, 10, 15, 32)],
  ])('%s', (text, ms) => {
    expect(parseIsoTimestamp(text)).toBe(ms);
  });

  test.each(['2024-05-06', '2024-05-06T10:15:32', '2024-13-01T00:00:00Z', 'yesterday', 1714990530])('%j is not a time', (value) => {
    expect(parseIsoTimestamp(value)).toBeNull();
  });
});

/** The store as attributeEngagement reads it, from plain tables; `reads` records each lookup made, in order. */
function fakeLookups(tables: { sends?: Array<SendRecipient & { messageId: string }>; profiles?: Record<string, string | null>; merged?: Record<string, string> }) {
  const reads: string[] = [];
  const sends = tables.sends ?? [];
  const profiles = tables.profiles ?? {};
  const lookups: RecipientLookups = {
    async sendByMessageId(messageId) {
      reads.push(`message-id ${messageId}`);
      const send = sends.find((s) => s.messageId === messageId);
      return send && { deliveryKey: send.deliveryKey, customerId: send.customerId, to: send.to };
    },
    async sendByDeliveryKey(deliveryKey) {
      reads.push(`delivery-key ${deliveryKey}`);
      const send = sends.find((s) => s.deliveryKey === deliveryKey);
      return send && { deliveryKey: send.deliveryKey, customerId: send.customerId, to: send.to };
    },
    async customerEmail(id) {
      reads.push(`customer ${id}`);
      const customerId = tables.merged?.[id] ?? id;
      return customerId in profiles ? { customerId, email: profiles[customerId] ?? null } : undefined;
    },
    async customerIdByEmail(email) {
      reads.push(`email ${email}`);
      return Object.keys(profiles).find((id) => profiles[id] === email);
    },
  };
  return { lookups, reads };
}

const engagement = (fields: Partial<EngagementEvent>): EngagementEvent => ({
  messageId: 'sendgrid:evt-1',
  name: 'Unsubscribed',
  email: 'mallory@example.com',
  claimedCustomerId: null,
  sentMessageId: null,
  timestamp: 1714990530000,
  properties: { provider: 'sendgrid' },
  ...fields,
});

describe('attributeEngagement: whose event it is', () => {
  const profiles = { alice: 'alice@example.com', mallory: 'mallory@example.com', nomail: null };
  const aliceSend = { messageId: '<a1@microflows>', deliveryKey: 'winback:alice:1:mail', customerId: 'alice', to: 'alice@example.com' };

  test("a customer_id naming another customer is ignored: the event goes to the recipient's own customer", async () => {
    const { lookups } = fakeLookups({ profiles });
    const attribution = await attributeEngagement(engagement({ claimedCustomerId: 'alice' }), lookups);
    expect(attribution).toEqual({ customerId: 'mallory', via: 'email', properties: { provider: 'sendgrid' }, distrusted: ['customer_id "alice" has another email'] });
  });

  test('a customer_id that agrees with the address picks that customer, even when another shares the address', async () => {
    const { lookups } = fakeLookups({ profiles: { older: 'shared@example.com', newer: 'shared@example.com' } });
    const attribution = await attributeEngagement(engagement({ email: 'shared@example.com', claimedCustomerId: 'newer' }), lookups);
    expect(attribution).toMatchObject({ customerId: 'newer', via: 'customer-id', distrusted: [] });
  });

  test('a customer_id that was merged into another customer resolves to that customer', async () => {
    const { lookups } = fakeLookups({ profiles, merged: { 'anon-7': 'alice' } });
    expect(await attributeEngagement(engagement({ email: 'alice@example.com', claimedCustomerId: 'anon-7' }), lookups)).toMatchObject({ customerId: 'alice', via: 'customer-id' });
  });

  test('an unknown address is nobody, whatever the payload claims', async () => {
    const { lookups } = fakeLookups({ profiles, sends: [aliceSend] });
    const attribution = await attributeEngagement(
      engagement({ email: 'stranger@example.com', claimedCustomerId: 'alice', sentMessageId: aliceSend.messageId, properties: { delivery_key: aliceSend.deliveryKey, flow_id: 'winback', step_id: 'mail' } }),
      lookups,
    );
    expect(attribution.customerId).toBeNull();
    expect(attribution.via).toBeNull();
    // The flow labels came with a key that names Alice's email: they are not this event's.
    expect(attribution.properties).toEqual({});
    expect(attribution.distrusted).toEqual([
      'Message-ID <a1@microflows> was sent to another address',
      `delivery_key "${aliceSend.deliveryKey}" names a send to another address`,
      'customer_id "alice" has another email',
    ]);
  });

  test('the echoed Message-ID of a send to this address decides first, and nothing else is read', async () => {
    const { lookups, reads } = fakeLookups({ profiles: { ...profiles, 'alice-new': 'alice@example.com' }, sends: [aliceSend] });
    const attribution = await attributeEngagement(engagement({ email: 'alice@example.com', sentMessageId: aliceSend.messageId, claimedCustomerId: 'alice-new' }), lookups);
    expect(attribution).toMatchObject({ customerId: 'alice', via: 'message-id', distrusted: [] });
    expect(reads).toEqual(['message-id <a1@microflows>']);
  });

  test("Message-IDs microflows did not send are not looked up (SendGrid's own smtp-ids)", async () => {
    const { lookups, reads } = fakeLookups({ profiles });
    await attributeEngagement(engagement({ sentMessageId: '<14c5d75ce93.dfd.64b469@ismtpd-555>' }), lookups);
    expect(reads).toEqual(['email mallory@example.com']);
  });

  test("a delivery_key of a send to this address decides; one not in the ledger is a label only, kept", async () => {
    const { lookups } = fakeLookups({ profiles, sends: [aliceSend] });
    expect(await attributeEngagement(engagement({ email: 'alice@example.com', properties: { delivery_key: aliceSend.deliveryKey } }), lookups)).toMatchObject({
      customerId: 'alice',
      via: 'delivery-key',
    });
    const unknownKey = await attributeEngagement(engagement({ properties: { delivery_key: 'elsewhere:1', flow_id: 'f' } }), lookups);
    expect(unknownKey).toEqual({ customerId: 'mallory', via: 'email', properties: { delivery_key: 'elsewhere:1', flow_id: 'f' }, distrusted: [] });
  });

  test('a customer without an email, or no customer at all, never matches a customer_id claim', async () => {
    const { lookups } = fakeLookups({ profiles });
    expect((await attributeEngagement(engagement({ email: 'x@example.com', claimedCustomerId: 'nomail' }), lookups)).distrusted).toEqual(['customer_id "nomail" has another email']);
    expect((await attributeEngagement(engagement({ email: 'x@example.com', claimedCustomerId: 'ghost' }), lookups)).distrusted).toEqual(['customer_id "ghost" is no customer']);
  });

  const fuzz = fuzzRun('test/core/esp-webhooks.test.ts');
  const address = fc.constantFrom('a@example.com', 'b@example.com', 'c@example.com', 'd@example.com');
  const id = fc.constantFrom('c1', 'c2', 'c3', 'c4');

  test('property: an event goes to a customer whose send or profile has the recipient address, and to nobody only when none has', async () => {
    await fuzz.checkAsync(
      fc.asyncProperty(
        fc.dictionary(id, fc.option(address, { nil: null })),
        fc.array(fc.record({ customerId: id, to: address }), { maxLength: 4 }),
        address,
        fc.option(id, { nil: null }),
        fc.option(fc.nat(5), { nil: null }),
        fc.option(fc.nat(5), { nil: null }),
        async (profiles, sendRows, email, claimedCustomerId, byMessage, byKey) => {
          const sends = sendRows.map((row, i) => ({ messageId: `<m${i}@microflows>`, deliveryKey: `k${i}`, customerId: row.customerId, to: row.to }));
          const { lookups } = fakeLookups({ profiles, sends });
          const event = engagement({
            email,
            claimedCustomerId,
            sentMessageId: byMessage === null ? null : `<m${byMessage}@microflows>`,
            properties: byKey === null ? {} : { delivery_key: `k${byKey}` },
          });
          const { customerId } = await attributeEngagement(event, lookups);
          // From the definition: who may have it, by each route.
          const sendOf = (pick: (s: (typeof sends)[number]) => boolean) => sends.find(pick);
          const allowed = new Set<string>();
          const byMessageSend = sendOf((s) => s.messageId === event.sentMessageId);
          if (byMessageSend?.to === email) allowed.add(byMessageSend.customerId);
          const byKeySend = sendOf((s) => s.deliveryKey === event.properties.delivery_key);
          if (byKeySend?.to === email) allowed.add(byKeySend.customerId);
          for (const [customer, mail] of Object.entries(profiles)) if (mail === email) allowed.add(customer);
          // Nobody only when nobody may have it; otherwise one who may.
          expect(customerId === null ? allowed.size === 0 : allowed.has(customerId)).toBe(true);
        },
      ),
      500,
    );
  });
});

describe('maskEmail', () => {
  test.each([
    ['ada.lovelace@example.com', 'a***@example.com'],
    ['x@example.org', 'x***@example.org'],
    ['no-at-sign', '***'],
    ['@example.com', '***'],
  ])('%s → %s', (email, masked) => {
    expect(maskEmail(email)).toBe(masked);
  });
});
