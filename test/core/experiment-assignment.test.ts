// Variant and holdout assignment: deterministic per (experiment, customer) and (flow, customer), spread as the
// weights say, and reshuffled by a new experiment id.
import fc from 'fast-check';
import { assignmentBucket, chooseVariant, HOLDOUT_VARIANT, inHoldout } from '../../core/experiment-assignment';

const customers = Array.from({ length: 20_000 }, (_, i) => `customer-${i}`);

describe('assignmentBucket', () => {
  it('is a number in [0, 1), the same for the same key', () => {
    fc.assert(
      fc.property(fc.string(), (key) => {
        const bucket = assignmentBucket(key);
        expect(bucket).toBeGreaterThanOrEqual(0);
        expect(bucket).toBeLessThan(1);
        expect(assignmentBucket(key)).toBe(bucket);
      }),
    );
  });

  it('spreads keys evenly: each tenth of [0, 1) holds about a tenth of 20,000 customers', () => {
    const deciles = new Array<number>(10).fill(0);
    for (const c of customers) deciles[Math.floor(assignmentBucket(c) * 10)]!++;
    // Binomial(20000, 0.1): sd ≈ 42; 5 sd either side.
    for (const n of deciles) expect(Math.abs(n - 2000)).toBeLessThan(210);
  });
});

describe('chooseVariant', () => {
  const variants = [
    { name: 'control', weight: 50 },
    { name: 'discount', weight: 30 },
    { name: 'free-shipping', weight: 20 },
  ];

  it('gives each variant its weight of the customers (within 5 standard deviations)', () => {
    const counts = new Map<string, number>();
    for (const c of customers) {
      const { variant } = chooseVariant('cart-subject', c, variants);
      counts.set(variant, (counts.get(variant) ?? 0) + 1);
    }
    for (const v of variants) {
      const p = v.weight / 100;
      const sd = Math.sqrt(customers.length * p * (1 - p));
      expect(Math.abs((counts.get(v.name) ?? 0) - customers.length * p)).toBeLessThan(5 * sd);
    }
  });

  it('is stable for a customer and an experiment, and a new experiment id reshuffles', () => {
    const first = customers.map((c) => chooseVariant('cart-subject', c, variants).variant);
    expect(customers.map((c) => chooseVariant('cart-subject', c, variants).variant)).toEqual(first);
    const renamed = customers.map((c) => chooseVariant('cart-subject-2', c, variants).variant);
    const same = renamed.filter((v, i) => v === first[i]).length;
    // Independent draws agree with probability 0.5² + 0.3² + 0.2² = 0.38.
    expect(Math.abs(same / customers.length - 0.38)).toBeLessThan(0.02);
  });

  it('a 0/100 split sends everyone to the weighted variant', () => {
    for (const c of customers.slice(0, 500)) expect(chooseVariant('x', c, [{ name: 'a', weight: 0 }, { name: 'b', weight: 100 }]).variant).toBe('b');
  });

  it('refuses a split without variants', () => {
    expect(() => chooseVariant('empty', 'c', [])).toThrow('experiment empty has no variants');
  });
});

describe('inHoldout', () => {
  it('holds out about the share asked, the same customers every time, independently of any experiment', () => {
    const held = customers.filter((c) => inHoldout('cart-abandonment', c, 0.1));
    const sd = Math.sqrt(customers.length * 0.1 * 0.9);
    expect(Math.abs(held.length - 2000)).toBeLessThan(5 * sd);
    expect(customers.filter((c) => inHoldout('cart-abandonment', c, 0.1))).toEqual(held);
    // A larger share keeps everyone the smaller one held (buckets are compared with the share).
    const wider = new Set(customers.filter((c) => inHoldout('cart-abandonment', c, 0.2)));
    for (const c of held) expect(wider.has(c)).toBe(true);
  });

  it('no holdout, or 0, holds out nobody', () => {
    expect(customers.some((c) => inHoldout('f', c, undefined) || inHoldout('f', c, 0))).toBe(false);
  });

  it('the holdout variant name cannot collide with a variant of a file (parentheses are not allowed there)', () => {
    expect(HOLDOUT_VARIANT).toMatch(/[()]/);
  });
});
