// RFM scores: ranks each buyer 1..5 on recency, frequency and monetary value against the store's quintiles, so a
// segment rule can combine "top spenders" with any behavior condition. Pure: no I/O, no clock, no randomness.
//
// Quintiles are SQL's NTILE(5) OVER (ORDER BY value ASC), so 5 is the best tile in every dimension (latest order, most
// orders, most spent), with one tie rule: a value scores the tile of its FIRST occurrence in ascending order, like
// RANK() rather than ROW_NUMBER(). Equal values therefore always share a score, and a tie never lifts anyone above the
// lowest tile the tied group reaches. Only buyers (see `isBuyer`) are ranked and scored; others get no score (null).

/** A customer's order history, as the profile's computed fields give it (`last_order_at`, `orders_count`, `total_spent`). */
export interface RfmInput {
  customerId: string;
  /** epoch ms of the latest order, or null for a customer who never ordered */
  lastOrderAt: number | null;
  ordersCount: number;
  totalSpent: number;
}

/** A customer's RFM input from their profile's computed fields (`last_order_at`, `orders_count`, `total_spent`). */
export function rfmInputOf(customerId: string, computed: Record<string, unknown>): RfmInput {
  return {
    customerId,
    lastOrderAt: typeof computed.last_order_at === 'number' ? computed.last_order_at : null,
    ordersCount: Number(computed.orders_count ?? 0),
    totalSpent: Number(computed.total_spent ?? 0),
  };
}

/** Each score is 1..5; 5 is the best fifth of the store's buyers. */
export interface RfmScores {
  recency: number;
  frequency: number;
  monetary: number;
}

/**
 * The store's quintile cut points, plain JSON so they can be stored and reused until the next recomputation.
 * For each dimension, `cuts[k]` is the last value of tile k+1 in ascending order: a value strictly above it scores
 * at least k+2. There are min(5, population) - 1 cuts, nondecreasing (equal cuts come from ties and make a tile
 * unreachable). Recency cuts are epoch ms of last orders, so the boundaries do not depend on "now".
 */
export interface RfmBoundaries {
  /** how many buyers the quintiles were computed over */
  population: number;
  recency: number[];
  frequency: number[];
  monetary: number[];
}

const TILES = 5;

/**
 * Only a customer with at least one order and a known last order date has a place in the ranking: ranking
 * non-buyers would fill the bottom tiles with people who never bought and push every real buyer up.
 * Non-finite numbers are excluded too, because they cannot be ordered.
 */
export function isBuyer(input: RfmInput): input is RfmInput & { lastOrderAt: number } {
  return (
    input.lastOrderAt !== null &&
    Number.isFinite(input.lastOrderAt) &&
    Number.isFinite(input.ordersCount) &&
    input.ordersCount >= 1 &&
    Number.isFinite(input.totalSpent)
  );
}

/**
 * The cut points of one dimension. NTILE(5) over n rows gives the first n % 5 tiles one extra row, so tile k
 * (0-based) starts at position k * floor(n / 5) + min(k, n % 5). Under the first-occurrence rule a value v scores
 * at least tile k+1 exactly when more than `start(k)` values lie strictly below it, i.e. when v exceeds
 * sorted[start(k) - 1]; those values are the cuts. With fewer than 5 buyers only tiles 1..n exist, as in SQL.
 */
function cutPoints(values: Float64Array): number[] {
  // Float64Array sorts numerically and in O(n log n); the order of equal values does not matter.
  const sorted = values.sort();
  const n = sorted.length;
  const size = Math.floor(n / TILES);
  const extra = n % TILES;
  const cuts: number[] = [];
  for (let tile = 1; tile < Math.min(TILES, n); tile++) cuts.push(sorted[tile * size + Math.min(tile, extra) - 1]!);
  return cuts;
}

/** The store's quintile boundaries over its buyers, in O(n log n). Input order does not matter. */
export function rfmBoundaries(inputs: readonly RfmInput[]): RfmBoundaries {
  const buyers = inputs.filter(isBuyer);
  return {
    population: buyers.length,
    recency: cutPoints(Float64Array.from(buyers, (b) => b.lastOrderAt)),
    frequency: cutPoints(Float64Array.from(buyers, (b) => b.ordersCount)),
    monetary: cutPoints(Float64Array.from(buyers, (b) => b.totalSpent)),
  };
}

/** 1 + how many cuts lie strictly below `value`, by binary search, so scoring stays cheap in the ingest path. */
function tileOf(value: number, cuts: readonly number[]): number {
  let low = 0;
  let high = cuts.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (cuts[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low + 1;
}

/**
 * A customer's RFM scores against stored boundaries, or null for a customer who is not a buyer. A customer need
 * not be part of the population the boundaries came from (e.g. a first order since the last recomputation): they
 * score as if ranked among that population, so above every buyer means the top tile that exists. With no
 * buyers at all (population 0) there are no cuts and every buyer scores 1: there is nobody to rank them above.
 */
export function rfmScore(input: RfmInput, boundaries: RfmBoundaries): RfmScores | null {
  if (!isBuyer(input)) return null;
  return {
    recency: tileOf(input.lastOrderAt, boundaries.recency),
    frequency: tileOf(input.ordersCount, boundaries.frequency),
    monetary: tileOf(input.totalSpent, boundaries.monetary),
  };
}
