// Picks the products an email shows — top-rated in the customer's category, accessories of the product they viewed,
// their cart with ratings — from a catalog index and a profile view, leaving out what they bought and what is out
// of stock; and their last order with the catalog's images and pages. Pure and deterministic: the same catalog and
// profile give the same items, in the same order.
import type { CartItem } from './behavior';
import type { Product } from './catalog';
import { BadInputError } from './errors';

/** A catalog prepared for recommending: built once per catalog version, read by every render. */
export interface CatalogIndex {
  /** Product by id. */
  readonly products: ReadonlyMap<string, Product>;
  /** Every product, best first (see `compareTopRated`). */
  readonly topRated: readonly Product[];
  /** The products of each category (keyed by `categoryKey`), best first. */
  readonly topRatedByCategory: ReadonlyMap<string, readonly Product[]>;
}

export const RECOMMENDATION_KINDS = ['top_rated', 'related', 'cart', 'last_order'] as const;
export type RecommendationKind = (typeof RECOMMENDATION_KINDS)[number];

export const DEFAULT_RECOMMENDATION_LIMIT = 4;

export interface RecommendOptions {
  /** Most items returned; default 4. */
  limit?: number;
  /** related: the product whose related items to show, instead of the profile's last_viewed_product. */
  productId?: string;
}

/** Where a recommendation's items come from. */
export type RecommendationSource =
  // top_rated
  | 'last_browsed_category'
  | 'preferred_category'
  | 'catalog'
  // related
  | 'product_id'
  | 'last_viewed_product'
  // cart
  | 'cart'
  // last_order
  | 'last_order_products'
  // related without a product to relate to
  | 'none';

/** A cart item with what the catalog knows of its product. */
export type RecommendedCartItem = CartItem & { rating?: number; review_count?: number };

export interface Recommendation<Item> {
  kind: RecommendationKind;
  items: Item[];
  source: RecommendationSource;
  /** top_rated: the category the items come from (as the catalog spells it); null when they come from the whole catalog. */
  category: string | null;
  /** related: the product whose related items these are. */
  productId: string | null;
  /** True when the preferred source had nothing and the whole catalog stood in (top_rated only): worth recording. */
  fallback: boolean;
}

/** The fields of `behaviorView` (core/behavior.ts) that recommendations read. */
export type RecommendationProfile = Readonly<Record<string, unknown>>;

/** Categories match whatever their case and surrounding spaces: events say "shoes" where the catalog says "Shoes". */
export function categoryKey(category: string): string {
  return category.trim().toLowerCase();
}

/** Best first: rating (unrated last), then review count, then product id, so ties always break the same way. */
export function compareTopRated(a: Product, b: Product): number {
  const rating = (b.rating ?? -1) - (a.rating ?? -1);
  if (rating !== 0) return rating;
  const reviews = (b.review_count ?? 0) - (a.review_count ?? 0);
  if (reviews !== 0) return reviews;
  return a.product_id < b.product_id ? -1 : a.product_id > b.product_id ? 1 : 0;
}

/** Indexes products by id and by category, sorted best first. Ids are unique (the catalog parsers and the store see to it). */
export function catalogIndex(products: readonly Product[]): CatalogIndex {
  const topRated = [...products].sort(compareTopRated);
  const byId = new Map<string, Product>();
  const byCategory = new Map<string, Product[]>();
  for (const product of topRated) {
    byId.set(product.product_id, product);
    const key = categoryKey(product.category);
    const list = byCategory.get(key);
    if (list) list.push(product);
    else byCategory.set(key, [product]);
  }
  return { products: byId, topRated, topRatedByCategory: byCategory };
}

export function isInStock(product: Pick<Product, 'stock'>): boolean {
  return product.stock === null || product.stock > 0;
}

/**
 * The items of one recommendation block for a profile view (`behaviorView`). Every kind leaves out products already
 * purchased and products out of stock; top_rated and related also leave out what is in the cart and the viewed
 * product itself. Throws BadInputError for an unknown kind or a limit that is not a whole number of at least 1
 * (both come from templates).
 */
export function recommend(index: CatalogIndex, kind: 'cart' | 'last_order', profile: RecommendationProfile, options?: RecommendOptions): Recommendation<RecommendedCartItem>;
export function recommend(index: CatalogIndex, kind: 'top_rated' | 'related', profile: RecommendationProfile, options?: RecommendOptions): Recommendation<Product>;
export function recommend(index: CatalogIndex, kind: RecommendationKind, profile: RecommendationProfile, options?: RecommendOptions): Recommendation<Product | RecommendedCartItem>;
export function recommend(index: CatalogIndex, kind: RecommendationKind, profile: RecommendationProfile, options: RecommendOptions = {}): Recommendation<Product | RecommendedCartItem> {
  const limit = options.limit ?? DEFAULT_RECOMMENDATION_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new BadInputError(`must be a whole number of at least 1, got ${String(limit)}`, 'limit');
  const facts = profileFacts(profile);
  switch (kind) {
    case 'top_rated':
      return topRated(index, facts, options, limit);
    case 'related':
      return related(index, facts, options, limit);
    case 'cart':
      return cart(index, facts, limit);
    case 'last_order':
      return lastOrder(index, profile, limit);
    default:
      throw new BadInputError(`unknown recommendation kind ${JSON.stringify(kind)}; use one of ${RECOMMENDATION_KINDS.join(', ')}`, 'kind');
  }
}

/** What recommending needs of a profile view, read defensively: the view is untyped JSON. */
interface ProfileFacts {
  lastBrowsedCategory: string | null;
  preferredCategory: string | null;
  cart: CartItem[];
  purchased: ReadonlySet<string>;
  lastViewedProductId: string | null;
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

function productIdOf(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const id = (value as { product_id?: unknown }).product_id;
  return typeof id === 'string' && id !== '' ? id : typeof id === 'number' && Number.isFinite(id) ? String(id) : null;
}

function profileFacts(profile: RecommendationProfile): ProfileFacts {
  const cart = Array.isArray(profile.cart) ? (profile.cart as unknown[]).filter((item): item is CartItem => productIdOf(item) !== null) : [];
  const purchased = Array.isArray(profile.purchased_product_ids) ? (profile.purchased_product_ids as unknown[]).filter((id): id is string => typeof id === 'string') : [];
  return {
    lastBrowsedCategory: text(profile.last_browsed_category),
    preferredCategory: text(profile.preferred_category),
    cart,
    purchased: new Set(purchased),
    lastViewedProductId: productIdOf(profile.last_viewed_product),
  };
}

/** Products top_rated and related may show: not bought, in stock, not in the cart, not the one being looked at. */
function suggestable(facts: ProfileFacts, extraExcluded: string | null): (product: Product) => boolean {
  const excluded = new Set(facts.purchased);
  for (const item of facts.cart) excluded.add(String(productIdOf(item)));
  if (facts.lastViewedProductId !== null) excluded.add(facts.lastViewedProductId);
  if (extraExcluded !== null) excluded.add(extraExcluded);
  return (product) => !excluded.has(product.product_id) && isInStock(product);
}

function firstN<T>(items: Iterable<T>, keep: (item: T) => boolean, limit: number): T[] {
  const out: T[] = [];
  for (const item of items) {
    if (out.length >= limit) break;
    if (keep(item)) out.push(item);
  }
  return out;
}

function topRated(index: CatalogIndex, facts: ProfileFacts, options: RecommendOptions, limit: number): Recommendation<Product> {
  const keep = suggestable(facts, options.productId ?? null);
  const candidates: Array<['last_browsed_category' | 'preferred_category', string | null]> = [
    ['last_browsed_category', facts.lastBrowsedCategory],
    ['preferred_category', facts.preferredCategory],
  ];
  for (const [source, category] of candidates) {
    if (category === null) continue;
    const products = index.topRatedByCategory.get(categoryKey(category)) ?? [];
    const items = firstN(products, keep, limit);
    if (items.length > 0) return { kind: 'top_rated', items, source, category: items[0]!.category, productId: null, fallback: false };
  }
  return { kind: 'top_rated', items: firstN(index.topRated, keep, limit), source: 'catalog', category: null, productId: null, fallback: true };
}

function related(index: CatalogIndex, facts: ProfileFacts, options: RecommendOptions, limit: number): Recommendation<Product> {
  const productId = options.productId ?? facts.lastViewedProductId;
  const source: RecommendationSource = options.productId !== undefined ? 'product_id' : productId !== null ? 'last_viewed_product' : 'none';
  const product = productId === null ? undefined : index.products.get(productId);
  const keep = suggestable(facts, productId);
  const seen = new Set<string>();
  const listed: Product[] = [];
  // A related id whose product was deleted since is skipped, as is one listed twice.
  for (const id of product?.related_ids ?? []) {
    const candidate = index.products.get(id);
    if (candidate && !seen.has(id)) listed.push(candidate);
    seen.add(id);
  }
  return { kind: 'related', items: firstN(listed, keep, limit), source, category: null, productId, fallback: false };
}

function cart(index: CatalogIndex, facts: ProfileFacts, limit: number): Recommendation<RecommendedCartItem> {
  const items: RecommendedCartItem[] = [];
  for (const item of facts.cart) {
    if (items.length >= limit) break;
    const id = productIdOf(item)!;
    if (facts.purchased.has(id)) continue;
    const product = index.products.get(id);
    // A cart item the catalog does not know is shown as the events described it.
    if (!product) {
      items.push({ ...item });
      continue;
    }
    if (!isInStock(product)) continue;
    items.push(withCatalog(item, product));
  }
  return { kind: 'cart', items, source: 'cart', category: null, productId: null, fallback: false };
}

/**
 * The item keeps its own name, price and category (what the customer added or paid); the catalog fills in what it
 * lacks and supplies the current image, page and reviews. One object shape for every item keeps rendering fast.
 */
function withCatalog(item: CartItem, product: Product): RecommendedCartItem {
  return {
    product_id: item.product_id,
    quantity: item.quantity,
    name: item.name ?? product.name,
    price: item.price ?? product.price,
    category: item.category ?? product.category,
    image_url: product.image_url ?? item.image_url,
    url: product.url,
    rating: product.rating,
    review_count: product.review_count,
  };
}

/**
 * The items of the customer's last order with what the catalog knows of them (an order event often carries no image):
 * every item, in stock or not, since they were bought; one the catalog does not know is shown as the order described it.
 */
function lastOrder(index: CatalogIndex, profile: RecommendationProfile, limit: number): Recommendation<RecommendedCartItem> {
  const ordered = Array.isArray(profile.last_order_products) ? (profile.last_order_products as unknown[]).filter((item): item is CartItem => productIdOf(item) !== null) : [];
  const items = ordered.slice(0, limit).map((item) => {
    const product = index.products.get(productIdOf(item)!);
    return product ? withCatalog(item, product) : { ...item };
  });
  return { kind: 'last_order', items, source: 'last_order_products', category: null, productId: null, fallback: false };
}
