// The one condition language: operators, combinators, and the validation errors authors see.
import { compileCondition, evaluateCondition, fieldsRead, toSiftQuery, validateCondition } from '../../core/conditions';
import type { ConditionContext } from '../../core/conditions';
import { InvalidConditionError } from '../../core/errors';

const context: ConditionContext = {
  profile: { behavior_score: 62, tier: 'gold', tags: ['vip', 'newsletter'], orders_count: 0, city: null, cart: [] },
  consent: { email_marketing: true },
  event: { name: 'Product Added', properties: { price: 25, category: 'shoes' } },
};

const holds = (condition: unknown): boolean => evaluateCondition(condition, context);

/** The InvalidConditionError a condition raises, so tests can assert its path and message. */
function rejection(condition: unknown, path = 'when'): InvalidConditionError {
  try {
    validateCondition(condition, path);
  } catch (err) {
    if (err instanceof InvalidConditionError) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(condition)} to be rejected`);
}

describe('operators', () => {
  test.each([
    [{ 'profile.behavior_score': { gte: 62 } }, true],
    [{ 'profile.behavior_score': { gt: 62 } }, false],
    [{ 'profile.behavior_score': { lt: 63, lte: 62 } }, true],
    [{ 'profile.tier': 'gold' }, true],
    [{ 'profile.tier': { eq: 'silver' } }, false],
    [{ 'profile.tier': { ne: 'silver' } }, true],
    [{ 'profile.tier': { in: ['gold', 'platinum'] } }, true],
    [{ 'profile.tier': { nin: ['gold'] } }, false],
    [{ 'profile.tags': { contains: 'vip' } }, true],
    [{ 'profile.tags': { contains: 'churned' } }, false],
    [{ 'profile.tags': { size: 2 } }, true],
    [{ 'profile.cart': { size: 0 } }, true],
    [{ 'profile.missing': { exists: false } }, true],
    [{ 'profile.tier': { exists: false } }, false],
    [{ 'consent.email_marketing': true }, true],
    [{ 'event.properties.category': 'shoes', 'event.properties.price': { gte: 10 } }, true],
    [{ 'event.properties.price': { gte: 30 } }, false],
  ])('%j → %s', (condition, expected) => {
    expect(holds(condition)).toBe(expected);
  });

  test('an absent condition holds', () => {
    expect(evaluateCondition(undefined, context)).toBe(true);
    expect(evaluateCondition(null, {})).toBe(true);
  });

  test('a compiled tester is reusable across contexts', () => {
    const vip = compileCondition({ 'profile.tags': { contains: 'vip' } });
    expect(vip(context)).toBe(true);
    expect(vip({ profile: { tags: [] } })).toBe(false);
    expect(vip({})).toBe(false);
  });
});

describe('combinators', () => {
  test('all, any and not', () => {
    expect(holds({ all: [{ 'profile.tier': 'gold' }, { 'consent.email_marketing': true }] })).toBe(true);
    expect(holds({ all: [{ 'profile.tier': 'gold' }, { 'consent.email_marketing': false }] })).toBe(false);
    expect(holds({ any: [{ 'profile.tier': 'silver' }, { 'profile.orders_count': 0 }] })).toBe(true);
    expect(holds({ any: [{ 'profile.tier': 'silver' }, { 'profile.orders_count': 1 }] })).toBe(false);
    expect(holds({ not: { 'profile.tier': 'gold' } })).toBe(false);
    expect(holds({ not: { any: [{ 'profile.tier': 'silver' }] } })).toBe(true);
  });

  test('several keys in one object must all hold', () => {
    expect(toSiftQuery({ 'profile.a': 1, 'profile.b': 2 })).toEqual({ $and: [{ 'profile.a': 1 }, { 'profile.b': 2 }] });
    expect(holds({ 'profile.tier': 'gold', 'profile.orders_count': 1 })).toBe(false);
  });

  test('fieldsRead lists every path a condition reads', () => {
    expect(fieldsRead({ 'profile.a': 1, any: [{ 'consent.b': true }, { not: { 'event.c': { gt: 1 } } }] }).sort()).toEqual([
      'consent.b',
      'event.c',
      'profile.a',
    ]);
  });
});

describe('validation', () => {
  test('an unknown operator names its path and the operators that exist', () => {
    const err = rejection({ 'profile.score': { foo: 1 } }, 'steps[2].split.when');
    expect(err.path).toBe('steps[2].split.when.profile.score.foo');
    expect(err.message).toContain('unknown operator "foo" on profile.score');
    expect(err.message).toContain('eq, ne, gt, gte, lt, lte, in, nin, exists, contains, size');
  });

  test('an unknown operator inside a combinator names the list index', () => {
    expect(rejection({ any: [{ 'profile.a': 1 }, { 'profile.b': { regex: 'x' } }] }).path).toBe('when.any[1].profile.b.regex');
  });

  test('$where (and any $-operator) is rejected, never run', () => {
    const err = rejection({ $where: 'this.profile.score > 1' });
    expect(err.path).toBe('when.$where');
    expect(err.message).toContain('without "$"');
    expect(rejection({ 'profile.score': { $gt: 1 } }).path).toBe('when.profile.score.$gt');
  });

  test('an unknown root is rejected with the roots that exist', () => {
    const err = rejection({ 'customer.score': 1 });
    expect(err.path).toBe('when.customer.score');
    expect(err.message).toContain('paths start with profile., consent., event.');
  });

  test('operand shapes are checked', () => {
    expect(rejection({ 'profile.tier': { in: 'gold' } }).message).toContain('"in" takes a list');
    expect(rejection({ 'profile.tier': { exists: 'yes' } }).message).toContain('"exists" takes true or false');
    expect(rejection({ 'profile.tags': { size: 'two' } }).message).toContain('"size" takes a number');
    expect(rejection({ 'profile.tags': ['a'] }).message).toContain('a list cannot be compared directly');
    expect(rejection({ 'profile.tags': {} }).message).toContain('empty operator object');
    expect(rejection({ any: [] }).message).toContain('non-empty list');
    expect(rejection({}).message).toContain('empty condition');
    expect(rejection('profile.a == 1').message).toContain('a condition is a map');
  });
});
