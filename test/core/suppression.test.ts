// The suppression list's pure rules: which events put an address on the list (and which lift it), what an entry
// blocks at flow entry and at send, and how an operator's entry is checked.
import fc from 'fast-check';
import {
  addressHash,
  DEFAULT_SOFT_BOUNCE_RULES,
  entryFromInput,
  entrySuppression,
  hashOfAddressOrHash,
  sendSuppression,
  sendsTransactional,
  softBounceWindowStart,
  suppressedEntry,
  suppressionChanges,
  type SuppressionEntry,
  type SuppressionEvent,
} from '../../core/suppression';

const DAY = 86_400_000;
const T = Date.UTC(2026, 11, 1, 12);
const EMAIL = 'ana@example.com';
const rules = DEFAULT_SOFT_BOUNCE_RULES;

function track(name: string, properties: Record<string, unknown> = {}, at = T, context: Record<string, unknown> = {}): SuppressionEvent {
  return { type: 'track', name, properties, traits: {}, context, timestamp: at, origin: 'server' };
}

const profile = (consent: Record<string, { granted: boolean; source: string; at: number }> = {}, email: string | null = EMAIL) => ({ email, consent });

function changes(events: SuppressionEvent[], options: { profile?: ReturnType<typeof profile>; softBounces?: SuppressionEvent[] } = {}) {
  return suppressionChanges({
    events,
    profile: options.profile ?? profile(),
    softBounces: (options.softBounces ?? events).map((e) => ({ name: e.name!, properties: e.properties, timestamp: e.timestamp })),
    rules,
  });
}

function entry(reason: SuppressionEntry['reason'], scope: SuppressionEntry['scope'], expiresAt: number | null = null): SuppressionEntry {
  return { addressHash: addressHash(EMAIL), address: EMAIL, reason, scope, source: 'webhook', createdAt: T, expiresAt };
}

describe('entries from recorded events', () => {
  it('a hard bounce, or a bounce of no stated type, suppresses the address of every email', () => {
    for (const properties of [{ bounce_type: 'hard' }, {}]) {
      expect(changes([track('Email Bounced', properties, T, { source: 'sendgrid-webhook' })]).entries).toEqual([
        { addressHash: addressHash(EMAIL), address: EMAIL, reason: 'hard_bounce', scope: 'all', source: 'webhook', createdAt: T, expiresAt: null },
      ]);
    }
  });

  it('a spam complaint suppresses marketing only', () => {
    expect(changes([track('Email Marked as Spam')]).entries).toEqual([expect.objectContaining({ reason: 'complaint', scope: 'marketing', source: 'ingest' })]);
  });

  it('uses the address the provider reported, not the profile email, when the event names one', () => {
    const [made] = changes([track('Email Bounced', { bounce_type: 'hard', email: ' Old@Example.com ' })]).entries;
    expect(made).toMatchObject({ address: 'old@example.com', addressHash: addressHash('old@example.com') });
  });

  it('makes nothing for a customer with no address, nor for other events', () => {
    expect(changes([track('Email Bounced')], { profile: profile({}, null) }).entries).toEqual([]);
    expect(changes([track('Email Opened'), track('Email Delivered'), track('Product Added')]).entries).toEqual([]);
  });

  it('N soft bounces to an address within the window suppress it for the period; N-1 do not', () => {
    const bounce = (at: number, email = EMAIL) => track('Email Bounced', { bounce_type: 'soft', email }, at);
    const two = [bounce(T - 2 * DAY), bounce(T)];
    expect(changes([bounce(T)], { softBounces: two }).entries).toEqual([]);
    const three = [bounce(T - 6 * DAY), bounce(T - DAY), bounce(T)];
    expect(changes([bounce(T)], { softBounces: three }).entries).toEqual([
      expect.objectContaining({ reason: 'soft_bounce', scope: 'all', createdAt: T, expiresAt: T + rules.suppressionMs }),
    ]);
    // One of the three fell out of the 7-day window; one went to another address.
    expect(changes([bounce(T)], { softBounces: [bounce(T - 7 * DAY), bounce(T - DAY), bounce(T)] }).entries).toEqual([]);
    expect(changes([bounce(T)], { softBounces: [bounce(T - 2 * DAY, 'other@example.com'), bounce(T - DAY), bounce(T)] }).entries).toEqual([]);
  });

  it('counts soft bounces like a brute-force reference over generated histories', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 * DAY }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 4 }), (offsets, limit) => {
        const times = offsets.map((o) => T + o);
        const latest = Math.max(...times);
        const history = times.map((at) => track('Email Bounced', { bounce_type: 'soft' }, at));
        const made = suppressionChanges({ events: [track('Email Bounced', { bounce_type: 'soft' }, latest)], profile: profile(), softBounces: history.map((e) => ({ name: e.name!, properties: e.properties, timestamp: e.timestamp })), rules: { ...rules, limit } }).entries;
        const inWindow = times.filter((t) => t <= latest && latest - t < rules.windowMs).length;
        expect(made.length).toBe(inWindow >= limit ? 1 : 0);
      }),
    );
  });

  it('reads bounces back to the window before the earliest soft bounce of the batch, and none without one', () => {
    expect(softBounceWindowStart([track('Email Bounced', { bounce_type: 'soft' }, T), track('Email Bounced', { bounce_type: 'soft' }, T - DAY)], rules)).toBe(T - DAY - rules.windowMs);
    expect(softBounceWindowStart([track('Email Bounced', { bounce_type: 'hard' })], rules)).toBeNull();
  });

  it('an Unsubscribed event, or consent withdrawn in the preference center, suppresses marketing', () => {
    const withdrawn = profile({ email_marketing: { granted: false, source: 'unsubscribe', at: T } });
    expect(changes([track('Unsubscribed', {}, T, { source: 'unsubscribe-link' })], { profile: withdrawn }).entries).toEqual([
      expect.objectContaining({ reason: 'unsubscribe', scope: 'marketing', source: 'unsubscribe_link' }),
    ]);
    const center = profile({ email_marketing: { granted: false, source: 'preference_center', at: T } });
    expect(changes([{ ...track('x'), type: 'identify', name: null }], { profile: center }).entries).toEqual([
      expect.objectContaining({ reason: 'unsubscribe', scope: 'marketing', source: 'preference_center' }),
    ]);
    // A withdrawal this batch did not make (an older one) is not made again; nor is a missing grant an unsubscribe.
    expect(changes([track('Product Added', {}, T + 1)], { profile: center }).entries).toEqual([]);
    expect(changes([track('Product Added')], { profile: profile({ email_marketing: { granted: false, source: 'identify', at: T } }) }).entries).toEqual([]);
  });

  it('a later grant by a server-key identify lifts the unsubscribe entry; a client key, an import or an older grant does not', () => {
    const identify = (origin: string | undefined, at: number, context: Record<string, unknown> = {}): SuppressionEvent => ({
      type: 'identify',
      name: null,
      properties: {},
      traits: { consent: { email_marketing: true } },
      context,
      timestamp: at,
      ...(origin ? { origin } : {}),
    });
    const granted = (at: number) => profile({ email_marketing: { granted: true, source: 'identify', at } });
    expect(changes([identify('server', T)], { profile: granted(T) }).lifts).toEqual([{ addressHash: addressHash(EMAIL), reason: 'unsubscribe', upTo: T }]);
    expect(changes([identify('client', T)], { profile: granted(T) }).lifts).toEqual([]);
    expect(changes([identify(undefined, T, { library: { name: 'microflows-import' } })], { profile: granted(T) }).lifts).toEqual([]);
    expect(changes([identify('server', T, { library: { name: 'microflows-import' } })], { profile: granted(T) }).lifts).toEqual([]);
    // The grant lost to a newer consent record: it lifts nothing.
    expect(changes([identify('server', T)], { profile: profile({ email_marketing: { granted: false, source: 'unsubscribe', at: T + 1 } }) }).lifts).toEqual([]);
    // Unsubscribed, then resubscribed in one batch: no entry, and the lift.
    const both = changes([track('Unsubscribed', {}, T), identify('server', T + 1)], { profile: granted(T + 1) });
    expect(both.entries).toEqual([]);
    expect(both.lifts).toHaveLength(1);
  });

  it('nothing lifts a bounce or a complaint', () => {
    const result = changes([track('Email Bounced'), track('Email Marked as Spam'), { type: 'identify', name: null, properties: {}, traits: { consent: { email_marketing: true } }, context: {}, timestamp: T, origin: 'server' }], {
      profile: profile({ email_marketing: { granted: true, source: 'identify', at: T } }),
    });
    expect(result.entries.map((e) => e.reason).sort()).toEqual(['complaint', 'hard_bounce']);
    expect(result.lifts.every((l) => l.reason === 'unsubscribe')).toBe(true);
  });
});

describe('the gates', () => {
  it('at send: scope all blocks every category, scope marketing only marketing, with the reason for the log', () => {
    expect(sendSuppression([entry('hard_bounce', 'all')], 'transactional', T)).toEqual({ blocked: true, reason: 'suppressed: hard bounce (webhook, 2026-12-01)', entry: entry('hard_bounce', 'all') });
    expect(sendSuppression([entry('complaint', 'marketing')], 'transactional', T)).toEqual({ blocked: false });
    expect(sendSuppression([entry('complaint', 'marketing')], 'marketing', T)).toMatchObject({ blocked: true, reason: 'suppressed: spam complaint (webhook, 2026-12-01)' });
    expect(sendSuppression([], 'marketing', T)).toEqual({ blocked: false });
  });

  it('an expired entry blocks nothing, from the moment it expires', () => {
    const soft = entry('soft_bounce', 'all', T + 30 * DAY);
    expect(sendSuppression([soft], 'transactional', T + 30 * DAY - 1)).toMatchObject({ blocked: true, reason: expect.stringContaining('until 2026-12-31T12:00:00.000Z') });
    expect(sendSuppression([soft], 'transactional', T + 30 * DAY)).toEqual({ blocked: false });
  });

  it('names the most telling entry when several apply', () => {
    expect(sendSuppression([entry('unsubscribe', 'marketing'), entry('hard_bounce', 'all'), entry('complaint', 'marketing')], 'marketing', T)).toMatchObject({ entry: { reason: 'hard_bounce' } });
  });

  it('at entry: scope all stops any flow; scope marketing stops only a flow with no transactional send', () => {
    expect(entrySuppression([entry('hard_bounce', 'all')], true, T)).toEqual({ matched: false, reason: 'suppressed: hard bounce (webhook, 2026-12-01): no email of any kind goes to this address' });
    expect(entrySuppression([entry('complaint', 'marketing')], true, T)).toBeNull();
    expect(entrySuppression([entry('complaint', 'marketing')], false, T)).toEqual({ matched: false, reason: 'suppressed: spam complaint (webhook, 2026-12-01): the flow sends only marketing email' });
    // An entry condition that failed keeps its own reason; one that held gives way to the list.
    expect(suppressedEntry({ matched: false, reason: 'entry.when is false' }, [entry('hard_bounce', 'all')], true, T)).toEqual({ matched: false, reason: 'entry.when is false' });
    expect(suppressedEntry({ matched: true, reason: 'no entry condition' }, [entry('hard_bounce', 'all')], true, T).matched).toBe(false);
    expect(suppressedEntry({ matched: true, reason: 'no entry condition' }, [], true, T)).toEqual({ matched: true, reason: 'no entry condition' });
  });

  it('knows a flow that sends a transactional template; a template the library lacks counts as not', () => {
    const flow = { nodes: { a: { kind: 'wait' }, b: { kind: 'send', template: 'order-thank-you' }, c: { kind: 'send', template: 'review-request' } } };
    const categories: Record<string, 'marketing' | 'transactional'> = { 'order-thank-you': 'transactional', 'review-request': 'marketing' };
    const categoryOf = (name: string) => {
      const category = categories[name];
      if (!category) throw new Error(`no template ${name}`);
      return category;
    };
    expect(sendsTransactional(flow, categoryOf)).toBe(true);
    expect(sendsTransactional({ nodes: { c: flow.nodes.c } }, categoryOf)).toBe(false);
    expect(sendsTransactional({ nodes: { d: { kind: 'send', template: 'gone' } } }, categoryOf)).toBe(false);
  });
});

describe("an operator's entry", () => {
  const defaults = { reason: 'manual' as const, source: 'api', now: T };

  it('takes an address (lower-cased) or its hash, with the reason’s scope by default', () => {
    expect(entryFromInput({ address: 'Ana@Example.com' }, defaults)).toEqual({ addressHash: addressHash(EMAIL), address: EMAIL, reason: 'manual', scope: 'all', source: 'api', createdAt: T, expiresAt: null });
    expect(entryFromInput({ address_hash: addressHash(EMAIL).toUpperCase(), reason: 'complaint', created_at: '2026-11-01T00:00:00Z', expires_at: String(T + DAY) }, defaults)).toEqual({
      addressHash: addressHash(EMAIL),
      address: null,
      reason: 'complaint',
      scope: 'marketing',
      source: 'api',
      createdAt: Date.UTC(2026, 10, 1),
      expiresAt: T + DAY,
    });
  });

  it.each([
    [{}, 'address: give the address'],
    [{ address: 'not an address' }, 'address: '],
    [{ address: 'a@example.com, b@example.com' }, 'address: holds 2 addresses'],
    [{ address_hash: 'abc' }, 'address_hash: expected the SHA-256'],
    [{ address: EMAIL, address_hash: addressHash('other@example.com') }, 'address_hash: is not the SHA-256'],
    [{ address: EMAIL, reason: 'bored' }, 'reason: unknown reason "bored"'],
    [{ address: EMAIL, scope: 'some' }, 'scope: unknown scope "some"'],
    [{ address: EMAIL, created_at: 'yesterday' }, 'created_at: expected a time'],
    [{ address: EMAIL, expires_at: T - 1 }, 'expires_at: must be after created_at'],
    [{ address: EMAIL, colour: 'red' }, 'colour: unknown field'],
    [[EMAIL], 'entry: expected an object'],
  ])('refuses %j naming the field', (raw, message) => {
    expect(() => entryFromInput(raw, defaults, (field) => `[3].${field}`)).toThrow(`[3].${message}`);
  });

  it('removes by an address or by a listed hash', () => {
    expect(hashOfAddressOrHash(' ANA@example.com ')).toBe(addressHash(EMAIL));
    expect(hashOfAddressOrHash(addressHash(EMAIL))).toBe(addressHash(EMAIL));
  });
});
