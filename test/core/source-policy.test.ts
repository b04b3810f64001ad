// What a client source key may not send or change (core/source-policy), decided without the store: reserved names,
// time skew, and the email and consent rules the store applies to customers it knows to be identified.
import fc from 'fast-check';
import { ForbiddenError, isMicroflowsError } from '../../core/errors';
import { ENGAGEMENT_EVENT_NAMES } from '../../core/esp-webhooks';
import type { NewEvent } from '../../core/event';
import { emptyProfile, mergeProfiles, type Profile } from '../../core/profile';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import {
  checkClientEvent,
  clientMergeRefusal,
  clientProfileRefusal,
  consentGrants,
  isReservedEventName,
  isSystemEventName,
  loginMergeSource,
  RESERVED_EVENT_NAMES,
  RESERVED_EVENT_PREFIXES,
  SYSTEM_EVENT_NAMES,
  touchesProtectedTraits,
} from '../../core/source-policy';
import { eventMatches } from '../../core/triggers';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/source-policy.test.ts');
const NOW = Date.UTC(2025, 5, 1, 12);
const HOUR = 3_600_000;

function event(fields: Partial<NewEvent>): NewEvent {
  return { messageId: 'm', type: 'track', customerId: 'u', userId: 'u', anonymousId: null, name: 'Product Viewed', properties: {}, traits: {}, context: {}, timestamp: NOW, receivedAt: NOW, origin: 'client', ...fields };
}

function refusal(work: () => void): ForbiddenError {
  try {
    work();
  } catch (err) {
    expect(err).toBeInstanceOf(ForbiddenError);
    expect(isMicroflowsError(err) && err.status).toBe(403);
    return err as ForbiddenError;
  }
  throw new Error('expected a ForbiddenError');
}

const options = { now: NOW, maxSkewMs: HOUR };

describe('reserved event names', () => {
  it('reserves every name microflows records itself', () => {
    expect(SYSTEM_EVENT_NAMES).toEqual(expect.arrayContaining([...ENGAGEMENT_EVENT_NAMES, SEGMENT_ENTERED, SEGMENT_EXITED]));
    for (const name of SYSTEM_EVENT_NAMES) expect({ name, reserved: isReservedEventName(name) }).toEqual({ name, reserved: true });
  });

  it.each(['Segment Entered', 'Segment Exited', 'Segment Anything Else', 'Email Opened', 'Email Link Clicked', 'Email Delivered', 'Email Bounced', 'Email Marked as Spam', 'Email Sent', 'Email  Opened', 'Unsubscribed'])(
    'reserves %p',
    (name) => {
      expect(isReservedEventName(name)).toBe(true);
    },
  );

  it.each(['Order Completed', 'Product Viewed', 'Emailed A Friend', 'Segmented', 'Email', 'Segment', 'Unsubscribe Clicked', 'Newsletter Email Submitted', ''])('leaves %p to clients', (name) => {
    expect(isReservedEventName(name)).toBe(false);
  });

  it('reserves every case or spacing variant of a reserved name that a trigger on that name would fire on', () => {
    const canonical = fc.constantFrom(...SYSTEM_EVENT_NAMES, 'Segment Whatever', 'Email Whatever');
    const variant = fc.tuple(canonical, fc.array(fc.tuple(fc.boolean(), fc.constantFrom('', ' ', '  ', '\t', '\u00a0')), { maxLength: 40 })).map(([name, changes]) =>
      [...name].map((c, i) => `${changes[i]?.[0] ? (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) : c}${changes[i]?.[1] ?? ''}`).join(''),
    );
    fuzz.check(
      fc.property(canonical, variant, (name, sent) => {
        const fires = eventMatches({ event: name }, { name: sent, properties: {}, timestamp: NOW });
        if (fires) expect(isReservedEventName(sent)).toBe(true);
      }),
      2000,
    );
  });

  it('documents its prefixes and whole names, and knows microflows own events apart from reserved ones', () => {
    expect(RESERVED_EVENT_PREFIXES).toEqual(['Segment ', 'Email ']);
    expect(RESERVED_EVENT_NAMES).toEqual(['Unsubscribed', 'Preferences Updated']);
    expect(isSystemEventName('Email Opened')).toBe(true);
    expect(isSystemEventName('Email Whatever')).toBe(false);
    expect(isSystemEventName(null)).toBe(false);
  });
});

describe('checkClientEvent', () => {
  it.each(['Segment Entered', 'Email Opened', 'Unsubscribed', 'Email Bounced', 'Preferences Updated'])('refuses a client track named %p, naming event', (name) => {
    const err = refusal(() => checkClientEvent(event({ name, properties: { segment_id: 'lapsed-customers' } }), null, options));
    expect(err.field).toBe('event');
    expect(err.message).toMatch(new RegExp(`^event: "${name}" is reserved for events microflows records itself .*server key`));
  });

  it('names the item of a batch', () => {
    expect(refusal(() => checkClientEvent(event({ name: 'Segment Entered' }), 3, options)).field).toBe('batch[3].event');
    expect(refusal(() => checkClientEvent(event({ timestamp: NOW - 2 * HOUR }), 0, options)).field).toBe('batch[0].timestamp');
  });

  it('lets page and screen names be anything (only track events trigger flows)', () => {
    expect(() => checkClientEvent(event({ type: 'page', name: 'Email Preferences' }), null, options)).not.toThrow();
    expect(() => checkClientEvent(event({ type: 'screen', name: 'Unsubscribed' }), null, options)).not.toThrow();
  });

  it('takes events up to the skew on either side of now and refuses one millisecond beyond', () => {
    for (const timestamp of [NOW - HOUR, NOW, NOW + HOUR]) expect(() => checkClientEvent(event({ timestamp }), null, options)).not.toThrow();
    const past = refusal(() => checkClientEvent(event({ timestamp: NOW - HOUR - 1 }), null, options));
    expect(past.field).toBe('timestamp');
    expect(past.message).toMatch(/^timestamp: the event's time is 60 min in the past; a client key may send events at most 60 min from now: send history with a server key or `microflows import`$/);
    expect(refusal(() => checkClientEvent(event({ timestamp: NOW + 3 * 86_400_000 }), null, options)).message).toMatch(/3 days in the future/);
  });

  it('leaves merges, consent and email to the store', () => {
    expect(() =>
      checkClientEvent(event({ type: 'identify', name: null, userId: 'attacker', anonymousId: 'victim', traits: { email: 'a@example.com', consent: { email_marketing: true } } }), null, options),
    ).not.toThrow();
  });
});

describe('what a client identify may change on an identified customer', () => {
  const identify = (traits: Record<string, unknown>) => event({ type: 'identify', name: null, traits });
  const stored: Pick<Profile, 'email' | 'consent'> = { email: 'victim@example.com', consent: { email_marketing: { granted: false, source: 'identify', at: 1 }, behavioral_tracking: { granted: true, source: 'identify', at: 1 } } };

  it('refuses another email, a new one, or clearing it; takes the stored one again in any case', () => {
    expect(clientProfileRefusal(identify({ email: 'attacker@example.com' }), stored)).toEqual({ field: 'traits.email', message: expect.stringMatching(/may not set or change the email address .*server key/) });
    expect(clientProfileRefusal(identify({ email: 'attacker@example.com' }), { email: null, consent: {} })?.field).toBe('traits.email');
    expect(clientProfileRefusal(identify({ email: null }), stored)?.field).toBe('traits.email');
    expect(clientProfileRefusal(identify({ email: '' }), stored)?.field).toBe('traits.email');
    expect(clientProfileRefusal(identify({ email: 'Victim@Example.COM', first_name: 'V' }), stored)).toBeUndefined();
    expect(clientProfileRefusal(identify({ first_name: 'V' }), stored)).toBeUndefined();
  });

  it('refuses a grant not on file, naming the consent kind; takes a repeated grant and any withdrawal', () => {
    expect(clientProfileRefusal(identify({ consent: { email_marketing: true } }), stored)).toEqual({
      field: 'traits.consent.email_marketing',
      message: expect.stringMatching(/may grant consent only for a new user or an anonymous visitor/),
    });
    expect(clientProfileRefusal(identify({ consent: { email_marketing: true } }), { email: null, consent: {} })?.field).toBe('traits.consent.email_marketing');
    expect(clientProfileRefusal(identify({ consent: { behavioral_tracking: true } }), stored)).toBeUndefined();
    expect(clientProfileRefusal(identify({ consent: { email_marketing: false, behavioral_tracking: false } }), stored)).toBeUndefined();
    expect(clientProfileRefusal(identify({ consent: { email_marketing: 'yes' } }), stored)).toBeUndefined();
  });

  it('reads consent and email where the profile does: identify traits only', () => {
    expect(consentGrants(identify({ consent: { email_marketing: true, behavioral_tracking: true, other: true } }))).toEqual(['email_marketing', 'behavioral_tracking']);
    expect(consentGrants(event({ type: 'track', traits: { consent: { email_marketing: true } } }))).toEqual([]);
    expect(consentGrants(identify({ consent: true }))).toEqual([]);
    expect(touchesProtectedTraits(identify({ email: 'a@example.com' }))).toBe(true);
    expect(touchesProtectedTraits(identify({ consent: { email_marketing: true } }))).toBe(true);
    expect(touchesProtectedTraits(identify({ consent: { email_marketing: false }, first_name: 'A' }))).toBe(false);
    expect(touchesProtectedTraits(event({ type: 'group', traits: { email: 'team@example.com' } }))).toBe(false);
  });

  it('names the field a refused merge is about', () => {
    expect(clientMergeRefusal({ type: 'alias' }).field).toBe('previousId');
    expect(clientMergeRefusal({ type: 'identify' }).field).toBe('anonymousId');
    expect(clientMergeRefusal({ type: 'track' }).message).toMatch(/already identified.*server key/);
  });
});

describe('loginMergeSource', () => {
  it('carries an anonymous visitor onto an identified customer without their email and consent grants', () => {
    const anonymous: Profile = {
      ...emptyProfile('anon-1', NOW),
      email: 'attacker@example.com',
      traits: { email: 'attacker@example.com', first_name: 'Ana' },
      traitTimes: { email: NOW, first_name: NOW },
      consent: { email_marketing: { granted: true, source: 'identify', at: NOW }, behavioral_tracking: { granted: false, source: 'identify', at: NOW } },
      tags: ['vip'],
    };
    const copy = JSON.parse(JSON.stringify(anonymous)) as Profile;
    const victim: Profile = {
      ...emptyProfile('victim', 1),
      email: 'victim@example.com',
      traits: { email: 'victim@example.com' },
      traitTimes: { email: 1 },
      consent: { email_marketing: { granted: false, source: 'identify', at: 1 }, behavioral_tracking: { granted: true, source: 'identify', at: 1 } },
    };
    const merged = mergeProfiles(victim, loginMergeSource(anonymous), NOW);
    expect(anonymous).toEqual(copy);
    expect(merged.email).toBe('victim@example.com');
    expect(merged.traits).toEqual({ email: 'victim@example.com', first_name: 'Ana' });
    expect(merged.consent.email_marketing?.granted).toBe(false);
    expect(merged.consent.behavioral_tracking?.granted).toBe(false);
    expect(merged.tags).toEqual(['vip']);
    // Without it, the same merge hands the victim's mail and consent to the visitor: the guard is what stops it.
    expect(mergeProfiles(victim, anonymous, NOW)).toMatchObject({ email: 'attacker@example.com', consent: { email_marketing: { granted: true } } });
  });
});
