// The preference center's rules, without a server: the topics offered and their state (absent means subscribed),
// what a submitted form changes, how `Preferences Updated` folds into the consent map (source preference_center,
// newest time wins, malformed parts ignored), and the preference link's token (its own kind, expiring).
import { parseBrand } from '../../core/brand';
import { applyEventsToProfile, emptyProfile, type Profile, type ProfileEvent } from '../../core/profile';
import { preferencesChange, topicChoices } from '../../core/preferences';
import { preferenceConsents, PREFERENCES_UPDATED, topicIsOn } from '../../core/topic-consent';
import { InvalidTrackingTokenError, preferencesUrl, signPreferencesToken, signUnsubscribeToken, verifyPreferencesToken, verifyUnsubscribeToken } from '../../core/tracking';

const NOW = Date.UTC(2026, 5, 1);
const brand = parseBrand('name: Shop\npostal_address: 1 Main St\ntopics: { cart-reminders: { label: Cart reminders, description: Your cart. } }\n', 'brand.yaml');
const flows = [{ topic: 'cart-reminders' }, { topic: 'winback-offers' }, { topic: null }, { topic: 'cart-reminders' }];

function preferencesEvent(properties: Record<string, unknown>, timestamp = NOW): ProfileEvent {
  return { type: 'track', name: PREFERENCES_UPDATED, properties, traits: {}, timestamp };
}

function fold(profile: Profile, ...events: ProfileEvent[]): Profile {
  return applyEventsToProfile(profile, events.map((event) => ({ event, now: event.timestamp })));
}

const subscribed = () => fold(emptyProfile('c1', NOW - 10), { type: 'identify', name: null, properties: {}, traits: { consent: { email_marketing: true } }, timestamp: NOW - 10 });

describe('topics offered', () => {
  test('one per topic the flows declare, labelled by the brand or humanized, sorted by label; absent means on', () => {
    expect(topicChoices(flows, brand, emptyProfile('c1', NOW))).toEqual([
      { id: 'cart-reminders', label: 'Cart reminders', description: 'Your cart.', on: true },
      { id: 'winback-offers', label: 'Winback offers', description: null, on: true },
    ]);
    const off = fold(subscribed(), preferencesEvent({ topics: { 'winback-offers': false } }));
    expect(topicChoices(flows, null, off).map((t) => [t.id, t.on])).toEqual([
      ['cart-reminders', true],
      ['winback-offers', false],
    ]);
    expect(topicIsOn(undefined, 'cart-reminders')).toBe(true);
  });
});

describe('preferencesChange', () => {
  const choices = topicChoices(flows, brand, fold(subscribed(), preferencesEvent({ topics: { 'winback-offers': false } })));

  test('names only the topics whose state changes, and ignores ticked ids that are not offered', () => {
    expect(preferencesChange({ action: 'save', ticked: ['winback-offers', 'not-a-topic'], resubscribe: false }, choices, true)).toEqual({ topics: { 'cart-reminders': false, 'winback-offers': true } });
    expect(preferencesChange({ action: 'save', ticked: ['cart-reminders'], resubscribe: false }, choices, true)).toBeNull();
  });

  test('leave withdraws email_marketing (unless already withdrawn); resubscribe grants it to one who had left', () => {
    expect(preferencesChange({ action: 'leave' }, choices, true)).toEqual({ topics: {}, unsubscribe_all: true });
    expect(preferencesChange({ action: 'leave' }, choices, false)).toBeNull();
    expect(preferencesChange({ action: 'save', ticked: ['cart-reminders'], resubscribe: true }, choices, false)).toEqual({ topics: {}, resubscribe: true });
    expect(preferencesChange({ action: 'save', ticked: ['cart-reminders'], resubscribe: true }, choices, true)).toBeNull();
  });
});

describe('the Preferences Updated fold', () => {
  test('sets topic:<id> with source preference_center at the event time', () => {
    const profile = fold(subscribed(), preferencesEvent({ topics: { 'cart-reminders': false, 'winback-offers': true } }));
    expect(profile.consent['topic:cart-reminders']).toEqual({ granted: false, source: 'preference_center', at: NOW });
    expect(profile.consent['topic:winback-offers']).toEqual({ granted: true, source: 'preference_center', at: NOW });
    expect(profile.consent.email_marketing).toMatchObject({ granted: true, source: 'identify' });
  });

  test('unsubscribe_all withdraws email_marketing; resubscribe grants it; both from the preference center', () => {
    const left = fold(subscribed(), preferencesEvent({ topics: {}, unsubscribe_all: true }));
    expect(left.consent.email_marketing).toEqual({ granted: false, source: 'preference_center', at: NOW });
    const back = fold(left, preferencesEvent({ topics: {}, resubscribe: true }, NOW + 1));
    expect(back.consent.email_marketing).toEqual({ granted: true, source: 'preference_center', at: NOW + 1 });
  });

  test('an older change arriving late does not undo a newer one', () => {
    const profile = fold(subscribed(), preferencesEvent({ topics: { 'cart-reminders': false } }, NOW + 5), preferencesEvent({ topics: { 'cart-reminders': true } }, NOW));
    expect(profile.consent['topic:cart-reminders']).toMatchObject({ granted: false, at: NOW + 5 });
  });

  test('reads only well-formed parts: topic ids in kebab-case with boolean values', () => {
    expect(preferenceConsents({ topics: { 'Cart Reminders': false, 'cart-reminders': 'no', ok: false, 'topic:x': true } }, NOW)).toEqual([['topic:ok', { granted: false, source: 'preference_center', at: NOW }]]);
    expect(preferenceConsents({ topics: ['cart-reminders'], unsubscribe_all: 'yes', resubscribe: 1 }, NOW)).toEqual([]);
  });

  test('the same properties under another event name change nothing', () => {
    const profile = fold(subscribed(), { ...preferencesEvent({ topics: { 'cart-reminders': false }, unsubscribe_all: true }), name: 'Preferences Changed' });
    expect(profile.consent['topic:cart-reminders']).toBeUndefined();
    expect(profile.consent.email_marketing?.granted).toBe(true);
  });
});

describe('the preference link', () => {
  const claims = { customerId: 'c1', deliveryKey: 'flow/cart-abandonment/c1/1/steps[1]', flowId: 'cart-abandonment' };

  test('round-trips its claims, and says when it has expired', () => {
    const token = signPreferencesToken('s3cret', claims, NOW + 1000);
    expect(verifyPreferencesToken('s3cret', token, NOW)).toEqual({ claims, expiresAt: NOW + 1000, expired: false });
    expect(verifyPreferencesToken('s3cret', token, NOW + 1000).expired).toBe(true);
    expect(preferencesUrl('https://mail.shop.example/', 's3cret', claims, NOW + 1000)).toMatch(/^https:\/\/mail\.shop\.example\/preferences\/[A-Za-z0-9_-]+$/);
  });

  test('is not an unsubscribe token, nor the other way round, and another secret does not verify it', () => {
    const preferences = signPreferencesToken('s3cret', claims, NOW + 1000);
    const unsubscribe = signUnsubscribeToken('s3cret', claims, NOW + 1000);
    expect(() => verifyUnsubscribeToken('s3cret', preferences, NOW)).toThrow('this is a preferences token, not an unsubscribe token');
    expect(() => verifyPreferencesToken('s3cret', unsubscribe, NOW)).toThrow('this is an unsubscribe token, not a preferences token');
    expect(() => verifyPreferencesToken('other', preferences, NOW)).toThrow(InvalidTrackingTokenError);
    expect(() => verifyPreferencesToken('s3cret', 'abc.def', NOW)).toThrow(InvalidTrackingTokenError);
  });
});
