// RFM quintiles: agree with an independent NTILE(5) computation on generated data full of ties, and behave at the edges.
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';
import { rfmBoundaries, rfmScore, type RfmBoundaries, type RfmInput, type RfmScores } from '../../core/rfm';

const DAY = 24 * 60 * 60 * 1000;
const EPOCH = Date.UTC(2026, 0, 1);

function randInt(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

/** A store with many ties: integer order counts, amounts rounded to 5, last orders on a few dozen days; ~10% never ordered. */
function generateStore(seed: number, size: number): RfmInput[] {
  const random = seededRandom(seed);
  return Array.from({ length: size }, (_, i) => {
    if (random() < 0.1) return { customerId: `c${i}`, lastOrderAt: null, ordersCount: 0, totalSpent: 0 };
    const ordersCount = 1 + Math.floor(-Math.log(1 - random()) * 2);
    return {
      customerId: `c${i}`,
      lastOrderAt: EPOCH + randInt(random, 0, 40) * DAY,
      ordersCount,
      totalSpent: Math.round((ordersCount * random() * 200) / 5) * 5,
    };
  });
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = randInt(random, 0, i);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/**
 * Reference NTILE(5) with the first-occurrence tie rule, written without sorting or cut points: a value's first
 * occurrence in ascending order is the number of population values strictly below it (naive O(n²) counting), and
 * the tile of that position comes from dealing tiles out row by row, the first n % 5 tiles one row larger. A value
 * outside the population is placed where it would first occur, clamped to the last row.
 */
function referenceTiler(values: readonly number[]): (value: number) => number {
  const population = Float64Array.from(values);
  const n = population.length;
  const labels: number[] = [];
  for (let tile = 1; tile <= 5; tile++) {
    const rows = Math.floor(n / 5) + (tile <= n % 5 ? 1 : 0);
    for (let r = 0; r < rows; r++) labels.push(tile);
  }
  const belowByValue = new Map<number, number>(); // memo only: the generated data repeats values a lot
  return (value) => {
    if (n === 0) return 1;
    let below = belowByValue.get(value);
    if (below === undefined) {
      below = 0;
      for (let i = 0; i < n; i++) if (population[i]! < value) below++;
      belowByValue.set(value, below);
    }
    return labels[Math.min(below, n - 1)]!;
  };
}

function referenceScorer(store: readonly RfmInput[]): (input: RfmInput) => RfmScores | null {
  const hasOrder = (c: RfmInput) => c.ordersCount > 0 && c.lastOrderAt !== null;
  const buyers = store.filter(hasOrder);
  const recency = referenceTiler(buyers.map((b) => b.lastOrderAt!));
  const frequency = referenceTiler(buyers.map((b) => b.ordersCount));
  const monetary = referenceTiler(buyers.map((b) => b.totalSpent));
  return (input) =>
    hasOrder(input) ? { recency: recency(input.lastOrderAt!), frequency: frequency(input.ordersCount), monetary: monetary(input.totalSpent) } : null;
}

function buyer(customerId: string, lastOrderDay: number, ordersCount: number, totalSpent: number): RfmInput {
  return { customerId, lastOrderAt: EPOCH + lastOrderDay * DAY, ordersCount, totalSpent };
}

describe('rfmScore over rfmBoundaries', () => {
  const cases = [1, 4, 5, 6, 99, 1000, 10000].flatMap((size) => [1, 2, 3].map((seed) => [size, seed * 7919 + size] as const));

  test.each(cases)('matches the reference NTILE(5) for every customer of a store of %i (seed %i)', (size, seed) => {
    const store = generateStore(seed, size);
    const boundaries = rfmBoundaries(store);
    const actual = store.map((c) => rfmScore(c, boundaries));
    const expected = store.map(referenceScorer(store));
    expect(actual).toEqual(expected);
    // The generated data really spreads over the tiles (ties make some tiles unreachable, not all of them).
    if (size >= 99) {
      for (const dimension of ['recency', 'frequency', 'monetary'] as const) {
        expect(new Set(actual.map((s) => s?.[dimension]).filter((v) => v !== undefined)).size).toBeGreaterThanOrEqual(3);
      }
    }
    // Boundaries survive a round trip through the database unchanged.
    expect(JSON.parse(JSON.stringify(boundaries))).toEqual(boundaries);
  });

  // The cases above are the regression set; this one is generated fresh each run.
  test('matches the reference NTILE(5) for every customer of a store generated fresh this run', () => {
    const seed = runSeed('rfm');
    const size = 1 + Math.floor(seededRandom(seed)() * 3000);
    const store = generateStore(seed, size);
    const boundaries = rfmBoundaries(store);
    expect({ seed, size, scores: store.map((c) => rfmScore(c, boundaries)) }).toEqual({ seed, size, scores: store.map(referenceScorer(store)) });
  });

  test.each([5, 6, 99, 1000])('fills the tiles as NTILE(5) does when there are no ties (%i buyers)', (size) => {
    const store = Array.from({ length: size }, (_, i) => buyer(`c${i}`, i, i + 1, i * 10));
    const boundaries = rfmBoundaries(store);
    const counts = [0, 0, 0, 0, 0];
    for (const c of store) counts[rfmScore(c, boundaries)!.monetary - 1]!++;
    expect(counts).toEqual([1, 2, 3, 4, 5].map((tile) => Math.floor(size / 5) + (tile <= size % 5 ? 1 : 0)));
  });

  test('scores customers outside the population where they would rank in it', () => {
    const store = generateStore(42, 1000);
    const boundaries = rfmBoundaries(store);
    const reference = referenceScorer(store);
    const random = seededRandom(43);
    for (let i = 0; i < 500; i++) {
      const outsider = buyer(`new${i}`, randInt(random, -5, 45) + random(), randInt(random, 1, 12), random() * 1200 - 50);
      expect(rfmScore(outsider, boundaries)).toEqual(reference(outsider));
    }
    expect(rfmScore(buyer('newest', 1000, 1000, 1e9), boundaries)).toEqual({ recency: 5, frequency: 5, monetary: 5 });
    expect(rfmScore(buyer('oldest', -1000, 1, -1), boundaries)).toEqual({ recency: 1, frequency: 1, monetary: 1 });
  });
});

describe('rfm edge cases', () => {
  test('customers without an order get no score and are not ranked', () => {
    const neverOrdered: RfmInput = { customerId: 'n', lastOrderAt: null, ordersCount: 0, totalSpent: 0 };
    const noDate: RfmInput = { customerId: 'd', lastOrderAt: null, ordersCount: 2, totalSpent: 50 };
    const store = [neverOrdered, noDate, buyer('a', 1, 1, 10), buyer('b', 2, 2, 20)];
    const boundaries = rfmBoundaries(store);
    expect(boundaries.population).toBe(2);
    expect(rfmScore(neverOrdered, boundaries)).toBeNull();
    expect(rfmScore(noDate, boundaries)).toBeNull();
    expect(rfmScore({ ...neverOrdered, lastOrderAt: EPOCH }, boundaries)).toBeNull();
    expect(rfmScore(store[3]!, boundaries)).toEqual({ recency: 2, frequency: 2, monetary: 2 });
  });

  test('an empty store has no cut points; a buyer scored against it gets 1s', () => {
    const boundaries = rfmBoundaries([{ customerId: 'n', lastOrderAt: null, ordersCount: 0, totalSpent: 0 }]);
    expect(boundaries).toEqual({ population: 0, recency: [], frequency: [], monetary: [] });
    expect(rfmScore(buyer('a', 0, 3, 30), boundaries)).toEqual({ recency: 1, frequency: 1, monetary: 1 });
  });

  test('one customer scores 1, the only tile NTILE(5) gives a single row', () => {
    const only = buyer('a', 3, 4, 99);
    const boundaries = rfmBoundaries([only]);
    expect(boundaries).toEqual({ population: 1, recency: [], frequency: [], monetary: [] });
    expect(rfmScore(only, boundaries)).toEqual({ recency: 1, frequency: 1, monetary: 1 });
  });

  test('fewer than 5 buyers use tiles 1..n', () => {
    const store = [buyer('a', 4, 1, 30), buyer('b', 1, 3, 10), buyer('c', 2, 2, 20)];
    const boundaries = rfmBoundaries(store);
    expect(store.map((c) => rfmScore(c, boundaries))).toEqual([
      { recency: 3, frequency: 1, monetary: 3 },
      { recency: 1, frequency: 3, monetary: 1 },
      { recency: 2, frequency: 2, monetary: 2 },
    ]);
  });

  test('all-equal values share the first tile', () => {
    const store = Array.from({ length: 12 }, (_, i) => buyer(`c${i}`, 7, 2, 40));
    const boundaries = rfmBoundaries(store);
    for (const c of store) expect(rfmScore(c, boundaries)).toEqual({ recency: 1, frequency: 1, monetary: 1 });
    expect(rfmScore(buyer('x', 8, 3, 41), boundaries)).toEqual({ recency: 5, frequency: 5, monetary: 5 });
  });

  test('a tie spanning a boundary takes the tile of its first occurrence', () => {
    // 10 buyers, tiles of 2: sorted spend [10, 20, 30, 30, 30, 30, 70, 80, 90, 100]; 30 first occurs at row 2 (tile 2).
    const spends = [10, 20, 30, 30, 30, 30, 70, 80, 90, 100];
    const boundaries = rfmBoundaries(spends.map((s, i) => buyer(`c${i}`, 0, 1, s)));
    expect(spends.map((s) => rfmScore(buyer('q', 0, 1, s), boundaries)!.monetary)).toEqual([1, 1, 2, 2, 2, 2, 4, 4, 5, 5]);
  });
});

describe('rfm properties', () => {
  test('a later order, more orders or more spent never lowers a score', () => {
    const random = seededRandom(7);
    for (const size of [3, 50, 2000]) {
      const store = generateStore(size, size);
      const boundaries = rfmBoundaries(store);
      for (let i = 0; i < 300; i++) {
        const base = buyer('p', randInt(random, -2, 42), randInt(random, 1, 10), randInt(random, 0, 300) * 5);
        const before = rfmScore(base, boundaries)!;
        const later = rfmScore({ ...base, lastOrderAt: base.lastOrderAt! + randInt(random, 0, 5) * DAY }, boundaries)!;
        const more = rfmScore({ ...base, ordersCount: base.ordersCount + randInt(random, 0, 3) }, boundaries)!;
        const richer = rfmScore({ ...base, totalSpent: base.totalSpent + randInt(random, 0, 50) * 5 }, boundaries)!;
        expect(later.recency).toBeGreaterThanOrEqual(before.recency);
        expect(more.frequency).toBeGreaterThanOrEqual(before.frequency);
        expect(richer.monetary).toBeGreaterThanOrEqual(before.monetary);
        // Each dimension moves on its own.
        expect([later.frequency, later.monetary, more.recency, richer.recency]).toEqual([before.frequency, before.monetary, before.recency, before.recency]);
      }
    }
  });

  test.each([1, 5, 99, 1000])('shuffled input gives identical boundaries (%i customers)', (size) => {
    const store = generateStore(size + 1, size);
    const boundaries: RfmBoundaries = rfmBoundaries(store);
    const random = seededRandom(size);
    for (let i = 0; i < 5; i++) expect(rfmBoundaries(shuffle(store, random))).toEqual(boundaries);
  });
});
