// Segment rules at their boundaries: N−1, N and N+1 events, the window's edge, and the exact moment a verdict
// changes with no new event (what the sweep's index is keyed by).
import { DAY_MS } from '../../core/behavior';
import { parseSegmentFile } from '../../core/segment-definition';
import { CONTINUOUS_RECHECK_MS, DAY_SCAN_DAYS, evaluateSegmentRule, eventsRead, longestWindow, type CustomerFacts, type FactEvent, type SegmentRule } from '../../core/segment-rules';

const NOW = Date.UTC(2026, 10, 29, 12);
const HOUR = 3_600_000;

function rule(yaml: string): SegmentRule {
  const { segment, problems } = parseSegmentFile(`id: s\nrules:\n${yaml}`, 'segments/s.yaml');
  if (!segment) throw new Error(problems.map((p) => `${p.line}: ${p.message}`).join('\n'));
  return segment.rule;
}

function facts(events: FactEvent[], profile: Record<string, unknown> = {}, extra: Partial<CustomerFacts> = {}): CustomerFacts {
  return { view: { profile, consent: {} }, events, rfm: null, inSegment: () => false, segmentNextChange: () => ({ nextChange: null, exactChange: null }), ...extra };
}

const view = (category: string, at: number): FactEvent => ({ name: 'Product Viewed', properties: { category }, timestamp: at });
const order = (at: number): FactEvent => ({ name: 'Order Completed', properties: { total: 50 }, timestamp: at });

describe('performed: at least N within a window', () => {
  const threeViews = rule('  - performed: { event: Product Viewed, at_least: 3, within: 7d }');
  test.each([
    [2, false],
    [3, true],
    [4, true],
  ])('%i views in the window: member %s', (n, member) => {
    const events = Array.from({ length: n }, (_, i) => view('Shoes', NOW - (i + 1) * HOUR));
    expect(evaluateSegmentRule(threeViews, facts(events), NOW).member).toBe(member);
  });

  test('an event exactly `within` old has left the window; one a millisecond younger still counts', () => {
    const edge = [view('Shoes', NOW - 7 * DAY_MS), view('Shoes', NOW - HOUR), view('Shoes', NOW - 2 * HOUR)];
    expect(evaluateSegmentRule(threeViews, facts(edge), NOW).member).toBe(false);
    const inside = [view('Shoes', NOW - 7 * DAY_MS + 1), view('Shoes', NOW - HOUR), view('Shoes', NOW - 2 * HOUR)];
    expect(evaluateSegmentRule(threeViews, facts(inside), NOW).member).toBe(true);
  });

  test('the verdict changes the second the third-newest view leaves the window, and not before', () => {
    const events = [view('Shoes', NOW - 6 * DAY_MS), view('Shoes', NOW - 5 * DAY_MS), view('Shoes', NOW - 4 * DAY_MS), view('Shoes', NOW - HOUR)];
    // 4 counted; at_least 3 fails when 2 have left: the second-oldest leaves at NOW - 5d + 7d.
    const at = evaluateSegmentRule(threeViews, facts(events), NOW);
    expect(at).toEqual({ member: true, nextChange: NOW + 2 * DAY_MS, exactChange: NOW + 2 * DAY_MS });
    expect(evaluateSegmentRule(threeViews, facts(events), NOW + 2 * DAY_MS - 1).member).toBe(true);
    expect(evaluateSegmentRule(threeViews, facts(events), NOW + 2 * DAY_MS).member).toBe(false);
  });

  test('too few events: nothing can make it true without a new event', () => {
    expect(evaluateSegmentRule(threeViews, facts([view('Shoes', NOW - HOUR)]), NOW)).toEqual({ member: false, nextChange: null, exactChange: null });
  });

  test('same: the N must share a property value', () => {
    const perCategory = rule('  - performed: { event: Product Viewed, at_least: 3, within: 7d, same: properties.category }');
    const mixed = [view('Shoes', NOW - HOUR), view('Hats', NOW - 2 * HOUR), view('shoes ', NOW - 3 * HOUR)];
    expect(evaluateSegmentRule(perCategory, facts(mixed), NOW).member).toBe(false);
    expect(evaluateSegmentRule(perCategory, facts([...mixed, view('Shoes', NOW - 4 * HOUR)]), NOW)).toEqual({ member: true, nextChange: NOW - 4 * HOUR + 7 * DAY_MS, exactChange: NOW - 4 * HOUR + 7 * DAY_MS });
  });

  test('at_most and exactly', () => {
    const atMost = rule('  - performed: { event: Product Viewed, at_most: 1, within: 1d }');
    const two = [view('Shoes', NOW - 2 * HOUR), view('Shoes', NOW - HOUR)];
    // Two in the window: out, until the older leaves.
    expect(evaluateSegmentRule(atMost, facts(two), NOW)).toEqual({ member: false, nextChange: NOW - 2 * HOUR + DAY_MS, exactChange: NOW - 2 * HOUR + DAY_MS });
    const exactly = rule('  - performed: { event: Product Viewed, exactly: 2, within: 1d }');
    expect(evaluateSegmentRule(exactly, facts(two), NOW)).toEqual({ member: true, nextChange: NOW - 2 * HOUR + DAY_MS, exactChange: NOW - 2 * HOUR + DAY_MS });
    expect(evaluateSegmentRule(exactly, facts([view('x', NOW - HOUR)]), NOW)).toEqual({ member: false, nextChange: null, exactChange: null });
  });

  test.each([
    ['at_most: 2', 1, true],
    ['at_most: 2', 2, true],
    ['at_most: 2', 3, false],
    ['exactly: 2', 1, false],
    ['exactly: 2', 2, true],
    ['exactly: 2', 3, false],
  ])('%s with %i views in the window: member %s', (count, n, member) => {
    const counted = rule(`  - performed: { event: Product Viewed, ${count}, within: 1d }`);
    const events = Array.from({ length: n }, (_, i) => view('Shoes', NOW - (i + 1) * HOUR));
    expect(evaluateSegmentRule(counted, facts(events), NOW).member).toBe(member);
  });

  test('since a date counts from that moment on, for good', () => {
    const since = rule('  - performed: { event: Order Completed, since: 2026-11-01 }');
    expect(evaluateSegmentRule(since, facts([order(Date.UTC(2026, 9, 31, 23, 59))]), NOW).member).toBe(false);
    expect(evaluateSegmentRule(since, facts([order(Date.UTC(2026, 10, 1))]), NOW)).toEqual({ member: true, nextChange: null, exactChange: null });
  });

  test('where filters on the event', () => {
    const big = rule('  - performed: { event: Order Completed, where: { event.properties.total: { gte: 100 } } }');
    expect(evaluateSegmentRule(big, facts([order(NOW - HOUR)]), NOW).member).toBe(false);
    expect(evaluateSegmentRule(big, facts([{ ...order(NOW - HOUR), properties: { total: 100 } }]), NOW).member).toBe(true);
  });
});

describe('not_performed and last_performed: membership that time alone brings', () => {
  const noPurchase = rule('  - not_performed: { event: Order Completed, within: 60d }');

  test('enters "no purchase in 60 days" the second the last order turns 60 days old', () => {
    const last = NOW - 59 * DAY_MS;
    expect(evaluateSegmentRule(noPurchase, facts([order(NOW - 70 * DAY_MS), order(last)]), NOW)).toEqual({ member: false, nextChange: last + 60 * DAY_MS, exactChange: last + 60 * DAY_MS });
    expect(evaluateSegmentRule(noPurchase, facts([order(last)]), last + 60 * DAY_MS - 1).member).toBe(false);
    expect(evaluateSegmentRule(noPurchase, facts([order(last)]), last + 60 * DAY_MS)).toEqual({ member: true, nextChange: null, exactChange: null });
  });

  test('last_performed before / after a duration ago', () => {
    const lapsed = rule('  - last_performed: { event: Order Completed, before: 30d }');
    expect(evaluateSegmentRule(lapsed, facts([]), NOW)).toEqual({ member: false, nextChange: null, exactChange: null });
    expect(evaluateSegmentRule(lapsed, facts([order(NOW - 29 * DAY_MS)]), NOW)).toEqual({ member: false, nextChange: NOW + DAY_MS, exactChange: NOW + DAY_MS });
    const recent = rule('  - last_performed: { event: Order Completed, after: 14d }');
    expect(evaluateSegmentRule(recent, facts([order(NOW - 13 * DAY_MS)]), NOW)).toEqual({ member: true, nextChange: NOW + DAY_MS, exactChange: NOW + DAY_MS });
    expect(evaluateSegmentRule(recent, facts([order(NOW - 14 * DAY_MS)]), NOW).member).toBe(false);
  });
});

describe('profile, engagement, rfm, other segments and combinators', () => {
  test('a profile condition on a day counter ticks over at the next day boundary of its anchor', () => {
    const quiet = rule('  - profile: { profile.days_since_last_order: { gte: 45 } }');
    const lastOrder = NOW - 44 * DAY_MS - HOUR;
    const result = evaluateSegmentRule(quiet, facts([], { days_since_last_order: 44, last_order_at: lastOrder }), NOW);
    expect(result).toEqual({ member: false, nextChange: lastOrder + 45 * DAY_MS, exactChange: lastOrder + 45 * DAY_MS });
  });

  test('a decaying field is rechecked hourly, which is not a known change moment; a window in the same rule is', () => {
    const hot = rule('  - profile: { profile.behavior_score: { gte: 10 } }');
    expect(evaluateSegmentRule(hot, facts([], { behavior_score: 12 }), NOW)).toEqual({ member: true, nextChange: NOW + CONTINUOUS_RECHECK_MS, exactChange: null });
    const hotBrowser = rule('  - profile: { profile.behavior_score: { gte: 10 } }\n  - performed: { event: Product Viewed, within: 2d }');
    expect(evaluateSegmentRule(hotBrowser, facts([view('Shoes', NOW - DAY_MS)], { behavior_score: 12 }), NOW)).toEqual({ member: true, nextChange: NOW + CONTINUOUS_RECHECK_MS, exactChange: NOW + DAY_MS });
  });

  test('a tag or a 30-day count changes at the exact moment the facts give, or is rechecked hourly without it', () => {
    const abandoner = rule('  - profile: { profile.behavioral_tags: { contains: Cart Abandoner } }');
    const timeChange = (field: string) => (field === 'behavioral_tags' ? NOW + 40 * 60_000 : null);
    expect(evaluateSegmentRule(abandoner, facts([], { behavioral_tags: [] }, { timeChange }), NOW)).toEqual({ member: false, nextChange: NOW + 40 * 60_000, exactChange: NOW + 40 * 60_000 });
    expect(evaluateSegmentRule(abandoner, facts([], { behavioral_tags: [] }), NOW)).toEqual({ member: false, nextChange: NOW + CONTINUOUS_RECHECK_MS, exactChange: null });
  });

  test('a day-counter condition changes when its verdict does, not at every tick; one past its threshold never changes', () => {
    const lastOrder = NOW - 10 * DAY_MS - HOUR;
    const view = (days: number) => ({ days_since_last_order: days, last_order_at: lastOrder });
    const quiet = rule('  - profile: { profile.days_since_last_order: { gte: 45 } }');
    expect(evaluateSegmentRule(quiet, facts([], view(10)), NOW)).toEqual({ member: false, nextChange: lastOrder + 45 * DAY_MS, exactChange: lastOrder + 45 * DAY_MS });
    expect(evaluateSegmentRule(quiet, facts([], view(50)), NOW)).toEqual({ member: true, nextChange: null, exactChange: null });
    const exactly = rule('  - profile: { profile.days_since_last_order: 12 }');
    expect(evaluateSegmentRule(exactly, facts([], view(10)), NOW)).toEqual({ member: false, nextChange: lastOrder + 12 * DAY_MS, exactChange: lastOrder + 12 * DAY_MS });
    expect(evaluateSegmentRule(exactly, facts([], view(12)), NOW)).toEqual({ member: true, nextChange: lastOrder + 13 * DAY_MS, exactChange: lastOrder + 13 * DAY_MS });
    // Far thresholds are scanned up to DAY_SCAN_DAYS ahead, then checked again there.
    const far = rule('  - profile: { profile.days_since_last_order: 400 }');
    expect(evaluateSegmentRule(far, facts([], view(10)), NOW)).toEqual({ member: false, nextChange: NOW + DAY_SCAN_DAYS * DAY_MS, exactChange: null });
  });

  test('a combination waits for every part holding it back: an all kept false by a part time cannot change never changes', () => {
    const vipBrowser = rule('  - rfm: { monetary: { gte: 5 } }\n  - performed: { event: Product Viewed, within: 2d }');
    const viewed = [view('Shoes', NOW - DAY_MS)];
    expect(evaluateSegmentRule(vipBrowser, facts(viewed, {}, { rfm: { recency: 1, frequency: 1, monetary: 2 } }), NOW)).toEqual({ member: false, nextChange: null, exactChange: null });
    expect(evaluateSegmentRule(vipBrowser, facts(viewed, {}, { rfm: { recency: 1, frequency: 1, monetary: 5 } }), NOW)).toEqual({ member: true, nextChange: NOW + DAY_MS, exactChange: NOW + DAY_MS });
    // An any that holds through two parts changes only once both have flipped: the later of the two.
    const either = rule('  - any:\n      - performed: { event: Product Viewed, within: 2d }\n      - performed: { event: Product Viewed, within: 5d }');
    expect(evaluateSegmentRule(either, facts(viewed), NOW)).toEqual({ member: true, nextChange: NOW + 4 * DAY_MS, exactChange: NOW + 4 * DAY_MS });
  });

  test.each([
    ['opened', 'Email Opened'],
    ['clicked', 'Email Link Clicked'],
  ])('%s: N-1, N and N+1 engagements, the window edge, and the second the second-newest leaves', (kind, name) => {
    const engaged = rule(`  - ${kind}: { at_least: 2, within: 30d }`);
    const at = (t: number): FactEvent => ({ name, properties: {}, timestamp: t });
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS)]), NOW).member).toBe(false);
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 2 * DAY_MS)]), NOW)).toEqual({ member: true, nextChange: NOW + 28 * DAY_MS, exactChange: NOW + 28 * DAY_MS });
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 2 * DAY_MS), at(NOW - 3 * DAY_MS)]), NOW).member).toBe(true);
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 30 * DAY_MS)]), NOW).member).toBe(false);
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 30 * DAY_MS + 1)]), NOW).member).toBe(true);
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 2 * DAY_MS)]), NOW + 28 * DAY_MS - 1).member).toBe(true);
    expect(evaluateSegmentRule(engaged, facts([at(NOW - DAY_MS), at(NOW - 2 * DAY_MS)]), NOW + 28 * DAY_MS).member).toBe(false);
  });

  test.each([
    ['a trait below, at and above its threshold', '  - profile: { profile.lifetime_value: { gte: 100 } }', [{ lifetime_value: 99 }, { lifetime_value: 100 }, { lifetime_value: 101 }], [false, true, true]],
    ['a computed field', '  - profile: { profile.orders_count: { gt: 1 } }', [{ orders_count: 1 }, { orders_count: 2 }, { orders_count: 3 }], [false, true, true]],
    ['a tag', '  - profile: { profile.tags: { contains: VIP } }', [{ tags: [] }, { tags: ['VIP'] }, { tags: ['Customer', 'VIP'] }], [false, true, true]],
  ])('profile: %s', (_what, rules, profiles, members) => {
    const segmentRule = rule(rules);
    expect(profiles.map((p) => evaluateSegmentRule(segmentRule, facts([], p), NOW).member)).toEqual(members);
  });

  test('profile: consent, and the when shorthand', () => {
    const { segment } = parseSegmentFile('id: mailable\nwhen: { consent.email_marketing: true }\n', 'mailable.yaml');
    const consenting = (granted: boolean | undefined): CustomerFacts => ({ ...facts([]), view: { profile: {}, consent: granted === undefined ? {} : { email_marketing: granted } } });
    expect([true, false, undefined].map((g) => evaluateSegmentRule(segment!.rule, consenting(g), NOW).member)).toEqual([true, false, false]);
  });

  test('rfm scores', () => {
    const loyal = rule('  - rfm: { frequency: { gte: 4 }, monetary: { gte: 4 } }');
    expect(evaluateSegmentRule(loyal, facts([], {}, { rfm: { recency: 1, frequency: 5, monetary: 4 } }), NOW).member).toBe(true);
    expect(evaluateSegmentRule(loyal, facts([], {}, { rfm: { recency: 5, frequency: 3, monetary: 5 } }), NOW).member).toBe(false);
    expect(evaluateSegmentRule(loyal, facts([], {}), NOW).member).toBe(false);
  });

  test('all / any / not / in_segment, with the earliest change of their parts', () => {
    const combined = rule(`  - any:
      - in_segment: vip
      - all:
          - performed: { event: Product Viewed, within: 1d }
          - not: { performed: { event: Order Completed, within: 1d } }`);
    const events = [view('Shoes', NOW - 2 * HOUR), order(NOW - 5 * HOUR)];
    expect(evaluateSegmentRule(combined, facts(events), NOW)).toEqual({ member: false, nextChange: NOW - 5 * HOUR + DAY_MS, exactChange: NOW - 5 * HOUR + DAY_MS });
    expect(evaluateSegmentRule(combined, facts(events, {}, { inSegment: (id) => id === 'vip' }), NOW).member).toBe(true);
    expect(eventsRead(combined)).toEqual(['Product Viewed', 'Order Completed']);
    expect(longestWindow(combined)).toBe(DAY_MS);
  });
});

describe('segment files', () => {
  test('problems name the line and what to fix', () => {
    const { segment, problems } = parseSegmentFile(
      'id: s\nrules:\n  - performed: { event: Product Viewed, at_least: 0, within: 7 days }\n  - bought: { event: x }\n  - performed: { event: X, same: category }\n',
      'segments/s.yaml',
    );
    expect(segment).toBeNull();
    expect(problems.map((p) => `${p.line}: ${p.message}`)).toEqual([
      expect.stringMatching(/^3: at_least must be a positive whole number/),
      expect.stringMatching(/^4: unknown key "bought" in a rule/),
      expect.stringMatching(/^5: same counts per value of an event property/),
    ]);
  });

  test('the shipped segment files are valid', () => {
    const fs = jest.requireActual('node:fs') as typeof import('node:fs');
    const dir = `${__dirname}/../../segments`;
    for (const file of fs.readdirSync(dir)) {
      const { segment, problems } = parseSegmentFile(fs.readFileSync(`${dir}/${file}`, 'utf8'), file);
      expect(problems).toEqual([]);
      expect(segment?.id).toBe(file.replace(/\.yaml$/, ''));
    }
  });
});
