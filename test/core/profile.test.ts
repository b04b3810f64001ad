// Traits and consent merge by event time, so arrival order never matters; merging identities, update_profile
// steps and the context conditions read.
import { foldAll } from '../../core/behavior';
import { applyEventToProfile, applyProfileUpdate, cartOf, emptyProfile, mergeProfiles, profileContext, type Profile, type ProfileEvent } from '../../core/profile';

const T0 = Date.UTC(2026, 0, 5, 12);
const HOUR = 60 * 60 * 1000;

function identify(traits: Record<string, unknown>, at: number): ProfileEvent {
  return { type: 'identify', name: null, properties: {}, traits, timestamp: at };
}

function track(name: string, at: number, properties: Record<string, unknown> = {}): ProfileEvent {
  return { type: 'track', name, properties, traits: {}, timestamp: at };
}

function applyAll(events: ProfileEvent[], customerId = 'c1'): Profile {
  return events.reduce((profile, event, i) => applyEventToProfile(profile, event, T0 + 1000 + i), emptyProfile(customerId, T0));
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('traits', () => {
  const events = [
    identify({ plan: 'free', first_name: 'Ada', email: 'ada@old.example.com' }, T0),
    identify({ plan: 'pro', timezone: 'Europe/Paris' }, T0 + 2),
    identify({ plan: 'team', first_name: 'Ada L.', timezone: 'Europe/London', email: 'ada@new.example.com' }, T0 + 1),
  ];

  it.each(permutations([0, 1, 2]).map((order) => [order.join(',')]))('keep the newest value of each trait by event time, arriving in order %s', (order) => {
    const profile = applyAll(order.split(',').map((i) => events[Number(i)]!));
    expect(profile.traits).toEqual({ plan: 'pro', first_name: 'Ada L.', email: 'ada@new.example.com', timezone: 'Europe/Paris' });
    expect(profile.traitTimes).toEqual({ plan: T0 + 2, first_name: T0 + 1, email: T0 + 1, timezone: T0 + 2 });
    expect(profile.email).toBe('ada@new.example.com');
    expect(profile.timezone).toBe('Europe/Paris');
  });

  it('let the later arrival win when two events set a trait at the same time', () => {
    expect(applyAll([identify({ plan: 'free' }, T0), identify({ plan: 'pro' }, T0)]).traits.plan).toBe('pro');
    expect(applyAll([identify({ plan: 'pro' }, T0), identify({ plan: 'free' }, T0)]).traits.plan).toBe('free');
  });

  it('store the email lower-cased on the profile, whatever the case it came in', () => {
    const profile = applyAll([identify({ email: 'Ada.Lovelace@Example.COM' }, T0)]);
    expect(profile.email).toBe('ada.lovelace@example.com');
    expect(profileContext(profile, T0).profile.email).toBe('ada.lovelace@example.com');
  });

  it('clear the email when a newer identify sets it to null', () => {
    const profile = applyAll([identify({ email: 'ada@example.com' }, T0), identify({ email: null }, T0 + 1)]);
    expect(profile.email).toBeNull();
  });

  it('are not touched by track events, and the input profile is not modified', () => {
    const before = applyAll([identify({ plan: 'pro' }, T0)]);
    const copy = JSON.parse(JSON.stringify(before)) as Profile;
    const after = applyEventToProfile(before, track('Product Viewed', T0 + 1, { category: 'Shoes' }), T0 + 5000);
    expect(before).toEqual(copy);
    expect(after.traits).toEqual({ plan: 'pro' });
    expect(after.computed.last_browsed_category).toBe('Shoes');
    expect(after.updatedAt).toBe(T0 + 5000);
  });
});

describe('consent', () => {
  const granted = identify({ consent: { email_marketing: true, behavioral_tracking: true } }, T0);
  const unsubscribed = track('Unsubscribed', T0 + HOUR);

  it.each([
    ['identify, then Unsubscribed', [granted, unsubscribed]],
    ['Unsubscribed, then the older identify', [unsubscribed, granted]],
  ])('is withdrawn by an Unsubscribed newer than the grant (%s)', (_, events) => {
    const profile = applyAll(events);
    expect(profile.consent).toEqual({
      email_marketing: { granted: false, source: 'unsubscribe', at: T0 + HOUR },
      behavioral_tracking: { granted: true, source: 'identify', at: T0 },
    });
    expect(profileContext(profile, T0 + HOUR).consent).toEqual({ email_marketing: false, behavioral_tracking: true });
    expect(profile.traits).toEqual({});
  });

  const regranted = identify({ consent: { email_marketing: true } }, T0 + 2 * HOUR);
  it.each([
    ['Unsubscribed, then identify', [unsubscribed, regranted]],
    ['identify, then the older Unsubscribed', [regranted, unsubscribed]],
  ])('is granted again by an identify newer than the Unsubscribed (%s)', (_, events) => {
    expect(applyAll(events).consent).toEqual({ email_marketing: { granted: true, source: 'identify', at: T0 + 2 * HOUR } });
  });

  it('ignores consent values that are not booleans and kinds it does not know', () => {
    const profile = applyAll([identify({ consent: { email_marketing: 'yes', sms: true, behavioral_tracking: false } }, T0)]);
    expect(profile.consent).toEqual({ behavioral_tracking: { granted: false, source: 'identify', at: T0 } });
  });
});

describe('mergeProfiles', () => {
  function profileWith(customerId: string, events: ProfileEvent[], tags: string[] = []): Profile {
    return { ...applyAll(events, customerId), tags };
  }

  const user = profileWith(
    'user-1',
    [identify({ plan: 'pro', first_name: 'Ada', consent: { email_marketing: true } }, T0 + 10), track('Product Added', T0 + 11, { product_id: 'shoe' })],
    ['VIP'],
  );
  const anonymous = profileWith(
    'anon-1',
    [identify({ plan: 'free', referrer: 'ad', email: 'ADA@example.com', timezone: 'Europe/Paris' }, T0 + 5), identify({ first_name: 'Ada L.' }, T0 + 20), track('Unsubscribed', T0 + 30)],
    ['Newsletter', 'VIP'],
  );

  it('takes each trait and consent from whichever profile set it last, and unites tags', () => {
    const merged = mergeProfiles(user, anonymous, T0 + 100);
    expect(merged.customerId).toBe('user-1');
    expect(merged.traits).toEqual({ plan: 'pro', first_name: 'Ada L.', referrer: 'ad', email: 'ADA@example.com', timezone: 'Europe/Paris' });
    expect(merged.traitTimes).toEqual({ plan: T0 + 10, first_name: T0 + 20, referrer: T0 + 5, email: T0 + 5, timezone: T0 + 5 });
    expect(merged.email).toBe('ada@example.com');
    expect(merged.timezone).toBe('Europe/Paris');
    expect(merged.consent).toEqual({ email_marketing: { granted: false, source: 'unsubscribe', at: T0 + 30 } });
    expect(merged.tags).toEqual(['Newsletter', 'VIP']);
    expect(merged.updatedAt).toBe(T0 + 100);
  });

  it("keeps the target's computed fields (the caller refolds) and modifies neither input", () => {
    const userCopy = JSON.parse(JSON.stringify(user)) as Profile;
    const anonymousCopy = JSON.parse(JSON.stringify(anonymous)) as Profile;
    const merged = mergeProfiles(user, anonymous, T0 + 100);
    expect(merged.computed).toEqual(user.computed);
    expect(user).toEqual(userCopy);
    expect(anonymous).toEqual(anonymousCopy);
  });

  it('keeps the newer consent of the target', () => {
    const later = profileWith('user-2', [identify({ consent: { email_marketing: true } }, T0 + 40)]);
    expect(mergeProfiles(later, anonymous, T0 + 100).consent.email_marketing).toEqual({ granted: true, source: 'identify', at: T0 + 40 });
  });

  it('gives the same traits and consent whichever side is merged into which', () => {
    const a = mergeProfiles(user, anonymous, T0 + 100);
    const b = mergeProfiles(anonymous, user, T0 + 100);
    expect(b.traits).toEqual(a.traits);
    expect(b.consent).toEqual(a.consent);
    expect(b.email).toBe(a.email);
  });
});

describe('applyProfileUpdate', () => {
  it('sets traits at the time of the update, adds and removes tags, sorted and once each', () => {
    const before = { ...applyAll([identify({ plan: 'free' }, T0)]), tags: ['Newsletter'] };
    const copy = JSON.parse(JSON.stringify(before)) as Profile;
    const after = applyProfileUpdate(before, { set: { plan: 'pro', vip: true }, addTags: ['VIP', 'Newsletter', 'Winback'], removeTags: ['Winback', 'absent'] }, T0 + HOUR);
    expect(after.traits).toEqual({ plan: 'pro', vip: true });
    expect(after.traitTimes).toEqual({ plan: T0 + HOUR, vip: T0 + HOUR });
    expect(after.tags).toEqual(['Newsletter', 'VIP']);
    expect(after.updatedAt).toBe(T0 + HOUR);
    expect(before).toEqual(copy);
  });

  it('can set the email, lower-cased like any other source', () => {
    expect(applyProfileUpdate(emptyProfile('c1', T0), { set: { email: 'Ada@Example.com' }, addTags: [], removeTags: [] }, T0).email).toBe('ada@example.com');
  });

  it('is overridden by an identify newer than the update, and overrides an older one', () => {
    const updated = applyProfileUpdate(emptyProfile('c1', T0), { set: { plan: 'pro' }, addTags: [], removeTags: [] }, T0 + HOUR);
    expect(applyEventToProfile(updated, identify({ plan: 'free' }, T0), T0 + 2 * HOUR).traits.plan).toBe('pro');
    expect(applyEventToProfile(updated, identify({ plan: 'team' }, T0 + 2 * HOUR), T0 + 2 * HOUR).traits.plan).toBe('team');
  });
});

describe('profileContext', () => {
  it('merges manual and behavioral tags, sorted and once each', () => {
    const computed = foldAll([
      { type: 'track', name: 'Order Completed', properties: { total: 10 }, traits: {}, timestamp: T0 },
      { type: 'track', name: 'Order Completed', properties: { total: 20 }, traits: {}, timestamp: T0 + 1 },
    ]);
    const profile: Profile = { ...emptyProfile('c1', T0), computed, tags: ['VIP', 'Customer', 'Anniversary'] };
    const { profile: context } = profileContext(profile, T0 + 2);
    expect(context.tags).toEqual(['Anniversary', 'Customer', 'Repeat Buyer', 'VIP']);
    expect(context.behavioral_tags).toEqual(['Customer', 'Repeat Buyer']);
  });

  it('shows traits, the time-relative computed fields, the identity and consent as booleans', () => {
    const profile = applyAll([
      identify({ plan: 'pro', email: 'Ada@Example.com', timezone: 'Europe/Paris', consent: { email_marketing: true } }, T0),
      track('Product Added', T0 + 1, { product_id: 'shoe', price: 50 }),
      track('Order Completed', T0 + 2, { total: 50 }),
    ]);
    const context = profileContext(profile, T0 + 14 * 24 * HOUR + 2);
    expect(context.consent).toEqual({ email_marketing: true });
    expect(context.profile).toEqual(
      expect.objectContaining({ plan: 'pro', customer_id: 'c1', email: 'ada@example.com', timezone: 'Europe/Paris', orders_count: 1, total_spent: 50, cart: [], behavior_score: 6.5 }),
    );
    expect(Object.keys(context.profile).filter((k) => k.startsWith('_'))).toEqual([]);
  });

  it('lets computed fields and identity win over traits of the same name', () => {
    const profile = applyAll([identify({ orders_count: 99, customer_id: 'spoofed', tags: ['from-trait'] }, T0)]);
    expect(profileContext(profile, T0).profile).toEqual(expect.objectContaining({ orders_count: 0, customer_id: 'c1', tags: [] }));
  });

  it('is empty for no profile', () => {
    expect(profileContext(undefined, T0)).toEqual({ profile: {}, consent: {} });
    expect(cartOf(undefined)).toEqual([]);
  });

  it('exposes the cart through cartOf', () => {
    const profile = applyAll([track('Product Added', T0, { product_id: 'shoe', name: 'Shoe' })]);
    expect(cartOf(profile)).toEqual([{ product_id: 'shoe', name: 'Shoe', quantity: 1 }]);
  });
});
