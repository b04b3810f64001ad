// The typical member of a segment: nearest the medians, common traits, placeholders for identity, deterministic.
import { compileCondition, type ConditionTester } from '../../core/conditions';
import { profileContext } from '../../core/profile';
import { emptyProfile, type Profile } from '../../core/profile';
import { parseSegmentFile } from '../../core/segment-definition';
import { typicalMember } from '../../core/typical-member';

const NOW = Date.UTC(2026, 10, 29);

function member(id: string, orders: number, spent: number, traits: Record<string, unknown> = {}): Profile {
  const profile = emptyProfile(id, NOW);
  profile.traits = { first_name: `Real-${id}`, email: `${id}@real.example`, country: 'DE', ...traits };
  profile.email = `${id}@real.example`;
  profile.computed = { orders_count: orders, total_spent: spent, cart: [{ product_id: `p-${id}`, quantity: 1 }] };
  profile.consent = { email_marketing: { granted: true, source: 'identify', at: NOW } };
  return profile;
}

const byCondition = (test: ConditionTester) => (synthetic: Profile) => test(profileContext(synthetic, NOW));
const everyone = byCondition(compileCondition({ 'profile.orders_count': { gte: 0 } }));

describe('typicalMember', () => {
  const members = [member('a', 1, 10), member('b', 3, 300), member('c', 2, 120, { country: 'FR' }), member('d', 2, 90), member('e', 9, 2000)];

  test('takes the behavior of the member nearest the medians', () => {
    const typical = typicalMember('buyers', members, NOW, everyone)!;
    // Medians: 2 orders, 120 spent: member c.
    expect(typical.profile.computed).toEqual(members[2]!.computed);
    expect(typical.description).toContain('5 members');
    expect(typical.description).toContain('orders_count 2');
  });

  test('shows placeholders, never a member name or address, and the common traits', () => {
    const typical = typicalMember('buyers', members, NOW, everyone)!;
    expect(typical.profile.traits).toEqual({ first_name: 'Alex', email: 'typical-member@example.com', country: 'DE' });
    expect(typical.profile.email).toBe('typical-member@example.com');
    expect(JSON.stringify(typical.profile)).not.toMatch(/Real-|real\.example/);
    expect(typical.profile.consent.email_marketing?.granted).toBe(true);
  });

  test('does not depend on the order members come in', () => {
    const reversed = typicalMember('buyers', [...members].reverse(), NOW, everyone)!;
    expect(reversed.profile).toEqual(typicalMember('buyers', members, NOW, everyone)!.profile);
  });

  test('keeps the nearest member\'s own traits (identity aside) when the common ones would leave the segment', () => {
    const pairs = byCondition(compileCondition({ any: [{ 'profile.country': 'FR', 'profile.city': 'Paris' }, { 'profile.country': 'DE', 'profile.city': 'Berlin' }, { 'profile.country': 'IT', 'profile.city': 'Paris' }] }));
    const people = [['a', 'FR', 'Paris'], ['b', 'FR', 'Paris'], ['c', 'DE', 'Berlin'], ['d', 'DE', 'Berlin'], ['e', 'IT', 'Paris']].map(([id, country, city]) => member(id!, 2, 100, { country, city }));
    // The most common country (DE, tied with FR) and city (Paris) make a pair no member has: a's own traits instead.
    const typical = typicalMember('pairs', people, NOW, pairs)!;
    expect(typical.profile.traits).toMatchObject({ country: 'FR', city: 'Paris', first_name: 'Alex', email: 'typical-member@example.com' });
  });

  test('no members, no typical member', () => {
    expect(typicalMember('nobody', [], NOW, everyone)).toBeNull();
  });
});

describe('parseSegmentFile', () => {
  test('reads id, description and the condition', () => {
    const { segment, problems } = parseSegmentFile('id: repeat-buyers\ndescription: two orders or more\nwhen: { profile.orders_count: { gte: 2 } }\n', 'segments/repeat-buyers.yaml');
    expect(problems).toEqual([]);
    expect(segment).toEqual({ id: 'repeat-buyers', description: 'two orders or more', rule: { kind: 'profile', condition: { 'profile.orders_count': { gte: 2 } } }, file: 'segments/repeat-buyers.yaml' });
  });

  test('names file, line and what to fix', () => {
    const { segment, problems } = parseSegmentFile('id: Repeat Buyers\nwhen: { profile.orders_count: { above: 2 } }\nextra: 1\n', 'segments/x.yaml');
    expect(segment).toBeNull();
    expect(problems.map((p) => `${p.line}: ${p.message}`)).toEqual([
      expect.stringMatching(/^1: "Repeat Buyers" is not kebab-case/),
      expect.stringMatching(/^2: condition: unknown operator "above"/),
      expect.stringMatching(/^3: .*extra/),
    ]);
  });
});
