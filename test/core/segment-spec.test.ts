// Segment Tracking API validation: what a valid call becomes, and which field each bad call is blamed on.
import { BadEventError, isMicroflowsError } from '../../core/errors';
import { parseBatchCall, parseCallOfType, parseIdentifyCall, parseIsoTimestamp, parseTrackCall } from '../../core/segment-spec';

const RECEIVED = Date.UTC(2024, 4, 1, 12, 0, 0);
const UUID = '00000000-0000-4000-8000-000000000000';

function badField(call: () => unknown): { field: string | undefined; message: string; status: number; code: string } {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(BadEventError);
    expect(isMicroflowsError(err)).toBe(true);
    const e = err as BadEventError;
    return { field: e.field, message: e.message, status: e.status, code: e.code };
  }
  throw new Error('expected the call to be rejected');
}

describe('parseTrackCall', () => {
  it('turns a full track call into an event', () => {
    const event = parseTrackCall(
      {
        type: 'track',
        userId: 'u-1',
        anonymousId: 'a-1',
        event: 'Product Added',
        properties: { product_id: 'p1', price: 10 },
        context: { ip: '203.0.113.9' },
        messageId: 'm-1',
        timestamp: '2024-04-30T10:00:00.000Z',
      },
      RECEIVED,
      UUID,
    );
    expect(event).toEqual({
      messageId: 'm-1',
      type: 'track',
      customerId: 'u-1',
      userId: 'u-1',
      anonymousId: 'a-1',
      name: 'Product Added',
      properties: { product_id: 'p1', price: 10 },
      traits: {},
      context: { ip: '203.0.113.9' },
      timestamp: Date.UTC(2024, 3, 30, 10),
      receivedAt: RECEIVED,
    });
  });

  it('falls back to anonymousId, the given message id and the arrival time', () => {
    const event = parseTrackCall({ anonymousId: 'a-9', event: 'Product Viewed' }, RECEIVED, UUID);
    expect(event).toMatchObject({ customerId: 'a-9', userId: null, anonymousId: 'a-9', messageId: UUID, timestamp: RECEIVED, properties: {}, context: {} });
  });

  it('reads numeric ids as strings and treats empty or null ids as absent', () => {
    expect(parseTrackCall({ userId: 42, event: 'x' }, RECEIVED, UUID)).toMatchObject({ customerId: '42', userId: '42' });
    expect(parseTrackCall({ userId: '', anonymousId: 7, event: 'x' }, RECEIVED, UUID)).toMatchObject({ customerId: '7', userId: null, anonymousId: '7' });
    expect(parseTrackCall({ userId: null, anonymousId: 'a', event: 'x', messageId: null }, RECEIVED, UUID)).toMatchObject({ customerId: 'a', messageId: UUID });
  });

  it('corrects client clock skew from sentAt and originalTimestamp', () => {
    // The client's clock runs 1 h fast; the event happened 30 s before it was sent.
    const event = parseTrackCall(
      { userId: 'u', event: 'x', originalTimestamp: '2024-05-01T12:59:30Z', sentAt: '2024-05-01T13:00:00Z' },
      RECEIVED,
      UUID,
    );
    expect(event.timestamp).toBe(RECEIVED - 30_000);
  });

  it('keeps an explicit timestamp over the skew correction, as historical imports need', () => {
    const event = parseTrackCall(
      { userId: 'u', event: 'x', timestamp: '2020-01-01T00:00:00Z', originalTimestamp: '2024-05-01T12:59:30Z', sentAt: '2024-05-01T13:00:00Z' },
      RECEIVED,
      UUID,
    );
    expect(event.timestamp).toBe(Date.UTC(2020, 0, 1));
  });

  it('never places a skew-corrected event after its arrival', () => {
    const event = parseTrackCall({ userId: 'u', event: 'x', originalTimestamp: '2024-05-01T13:00:10Z', sentAt: '2024-05-01T13:00:00Z' }, RECEIVED, UUID);
    expect(event.timestamp).toBe(RECEIVED);
  });

  it('uses the arrival time when only one of sentAt and originalTimestamp is present', () => {
    expect(parseTrackCall({ userId: 'u', event: 'x', sentAt: '2024-05-01T13:00:00Z' }, RECEIVED, UUID).timestamp).toBe(RECEIVED);
    expect(parseTrackCall({ userId: 'u', event: 'x', originalTimestamp: '2024-05-01T13:00:00Z' }, RECEIVED, UUID).timestamp).toBe(RECEIVED);
  });

  it.each([
    ['a non-object body', [], undefined, /JSON object, got an array/],
    ['a null body', null, undefined, /JSON object, got null/],
    ['neither userId nor anonymousId', { event: 'x' }, 'userId', /anonymousId/],
    ['an object userId', { userId: { id: 1 }, event: 'x' }, 'userId', /string or a number, got an object/],
    ['a boolean anonymousId', { anonymousId: true, event: 'x' }, 'anonymousId', /string or a number/],
    ['no event', { userId: 'u' }, 'event', /required for a track call/],
    ['a numeric event', { userId: 'u', event: 5 }, 'event', /must be a string/],
    ['a blank event', { userId: 'u', event: '  ' }, 'event', /must not be empty/],
    ['array properties', { userId: 'u', event: 'x', properties: [1] }, 'properties', /JSON object, got an array/],
    ['string context', { userId: 'u', event: 'x', context: 'web' }, 'context', /JSON object, got a string/],
    ['string traits', { userId: 'u', event: 'x', traits: 'vip' }, 'traits', /JSON object/],
    ['a numeric messageId', { userId: 'u', event: 'x', messageId: 12 }, 'messageId', /must be a string/],
    ['a numeric timestamp', { userId: 'u', event: 'x', timestamp: 1714564800000 }, 'timestamp', /ISO-8601/],
    ['a non-ISO timestamp', { userId: 'u', event: 'x', timestamp: 'May 1 2024' }, 'timestamp', /"May 1 2024" is not an ISO-8601 date/],
    ['an impossible date', { userId: 'u', event: 'x', timestamp: '2023-02-29T00:00:00Z' }, 'timestamp', /not an ISO-8601 date/],
    ['a bad sentAt', { userId: 'u', event: 'x', sentAt: 'soon' }, 'sentAt', /ISO-8601/],
    ['a bad originalTimestamp', { userId: 'u', event: 'x', originalTimestamp: '2024-13-01' }, 'originalTimestamp', /ISO-8601/],
  ])('rejects %s', (_case, body, field, message) => {
    const error = badField(() => parseTrackCall(body, RECEIVED, UUID));
    expect(error).toMatchObject({ field, status: 400, code: 'bad_event' });
    expect(error.message).toMatch(message);
    if (field) expect(error.message.startsWith(`${field}: `)).toBe(true);
  });
});

describe('parseIdentifyCall', () => {
  it('turns an identify call into an event with traits and no name', () => {
    const event = parseIdentifyCall(
      { userId: 'u-1', traits: { email: 'ada@example.com', consent: { email_marketing: true } }, context: { locale: 'fr' }, messageId: 'm-2' },
      RECEIVED,
      UUID,
    );
    expect(event).toEqual({
      messageId: 'm-2',
      type: 'identify',
      customerId: 'u-1',
      userId: 'u-1',
      anonymousId: null,
      name: null,
      properties: {},
      traits: { email: 'ada@example.com', consent: { email_marketing: true } },
      context: { locale: 'fr' },
      timestamp: RECEIVED,
      receivedAt: RECEIVED,
    });
  });

  it('needs no event name and ignores properties', () => {
    expect(parseIdentifyCall({ anonymousId: 'a', properties: { x: 1 }, event: 'ignored' }, RECEIVED, UUID)).toMatchObject({ name: null, properties: {} });
  });

  it('blames the field at fault', () => {
    expect(badField(() => parseIdentifyCall({ traits: {} }, RECEIVED, UUID)).field).toBe('userId');
    expect(badField(() => parseIdentifyCall({ userId: 'u', traits: [] }, RECEIVED, UUID)).field).toBe('traits');
  });

  // The phishing relay: nodemailer would have sent the shop's email to every address in the trait.
  it.each([
    ['a list', 'victim@example.com, second@example.org', /holds 2 addresses/],
    ['a group', 'friends: victim@example.com, second@example.org;', /address group/],
    ['CRLF', 'victim@example.com\r\nBcc: second@example.org', /control character/],
    ['a display name', 'Victim <victim@example.com>', /display name/],
    ['an over-long address', `${'a'.repeat(64)}@${'b'.repeat(200)}.com`, /at most 254/],
    ['a number', 42, /must be a string/],
  ])('refuses an email trait holding %s, naming traits.email', (_what, email, message) => {
    const error = badField(() => parseIdentifyCall({ userId: 'u', traits: { email } }, RECEIVED, UUID));
    expect(error).toMatchObject({ field: 'traits.email', status: 400, code: 'bad_event' });
    expect(error.message).toMatch(message);
    expect(error.message.startsWith('traits.email: ')).toBe(true);
  });

  it('lets an identify clear the email with null or ""', () => {
    expect(parseIdentifyCall({ userId: 'u', traits: { email: null } }, RECEIVED, UUID).traits).toEqual({ email: null });
    expect(parseIdentifyCall({ userId: 'u', traits: { email: '' } }, RECEIVED, UUID).traits).toEqual({ email: '' });
  });

  it('names the item of a batch whose email trait is a list, and keeps the others', () => {
    const ids = ['m-a', 'm-b'];
    const { events, rejected } = parseBatchCall(
      { batch: [{ type: 'identify', userId: 'u1', traits: { email: 'u1@example.com' } }, { type: 'identify', userId: 'u2', traits: { email: 'a@example.com; b@example.org' } }] },
      RECEIVED,
      () => ids.shift()!,
    );
    expect(events.map((e) => e.userId)).toEqual(['u1']);
    expect(rejected).toEqual([{ index: 1, field: 'batch[1].traits.email', message: expect.stringMatching(/^batch\[1\]\.traits\.email: holds 2 addresses/) }]);
  });

  it('leaves the traits of calls that do not set the profile email unchecked (a group is a company, track ignores traits)', () => {
    expect(parseCallOfType('group', { userId: 'u', groupId: 'g', traits: { email: 'team@example.com, ops@example.com' } }, RECEIVED, UUID).traits.email).toBe('team@example.com, ops@example.com');
    expect(parseTrackCall({ userId: 'u', event: 'x', traits: { email: 'a@example.com, b@example.org' } }, RECEIVED, UUID).traits).toEqual({});
  });
});

describe('parseIsoTimestamp', () => {
  it.each([
    ['2024-05-01', Date.UTC(2024, 4, 1)],
    ['2024-05-01T12:00Z', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T12:00:00Z', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T12:00:00.5Z', Date.UTC(2024, 4, 1, 12, 0, 0, 500)],
    ['2024-05-01T12:00:00.123456Z', Date.UTC(2024, 4, 1, 12, 0, 0, 123)],
    ['2024-05-01T14:00:00+02:00', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T07:30:00-0430', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T14:00:00+02', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01 12:00:00', Date.UTC(2024, 4, 1, 12)],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['0050-01-01T00:00:00Z', -60589296000000],
  ])('reads %s', (text, ms) => {
    expect(parseIsoTimestamp(text)).toBe(ms);
  });

  it.each(['', 'yesterday', '2024-5-1', '2024-05-01T25:00:00Z', '2024-05-32', '2024-04-31', '2024-05-01T12:60Z', '2024-05-01T12:00:00+24:00', '1714564800000'])(
    'refuses %p',
    (text) => {
      expect(parseIsoTimestamp(text)).toBeUndefined();
    },
  );
});
