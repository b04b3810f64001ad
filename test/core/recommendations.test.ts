// Recommendation blocks: top-rated in the customer's category (with the fallbacks said), related products of the
// one viewed, and the cart with ratings — never what was bought or is out of stock, and always in the same order.
import { behaviorView, foldAll, type BehaviorEvent } from '../../core/behavior';
import type { Product } from '../../core/catalog';
import { BadInputError } from '../../core/errors';
import { catalogIndex, recommend, type RecommendationProfile } from '../../core/recommendations';
import { seededRandom } from '../support/seeded-random';

function product(product_id: string, category: string, fields: Partial<Product> = {}): Product {
  return { product_id, name: `Product ${product_id}`, category, price: 10, url: `https://shop.example.com/p/${product_id}`, stock: null, related_ids: [], ...fields };
}

const CATALOG: Product[] = [
  product('s1', 'Shoes', { rating: 4.8, review_count: 100, related_ids: ['a3', 'a1', 'deleted', 'a2', 'a1', 's2', 's1'] }),
  product('s2', 'Shoes', { rating: 4.8, review_count: 50, stock: 4 }),
  product('s3', 'Shoes', { rating: 4.9, review_count: 900, stock: 0 }),
  product('s4', 'Shoes'),
  product('s5', 'Shoes', { rating: 4.8, review_count: 50 }),
  product('s6', 'Shoes', { rating: 3, review_count: 5 }),
  product('a1', 'Accessories', { rating: 4.9, review_count: 30, image_url: 'https://shop.example.com/img/a1.jpg' }),
  product('a2', 'Accessories', { rating: 4.2, stock: 12 }),
  product('a3', 'Accessories', { rating: 5, stock: 0 }),
  product('h1', 'Home', { rating: 4, review_count: 7 }),
];
const index = catalogIndex(CATALOG);
const ids = (items: Array<{ product_id: string }>) => items.map((i) => i.product_id);

describe('catalogIndex', () => {
  it('orders best first: rating, then review count, then id; unrated last', () => {
    expect(ids([...index.topRated])).toEqual(['a3', 's3', 'a1', 's1', 's2', 's5', 'a2', 'h1', 's6', 's4']);
    expect(ids([...(index.topRatedByCategory.get('shoes') ?? [])])).toEqual(['s3', 's1', 's2', 's5', 's6', 's4']);
  });
});

describe('recommend top_rated', () => {
  it("takes the last browsed category (any case), leaving out what is out of stock; 4 items by default", () => {
    const result = recommend(index, 'top_rated', { last_browsed_category: 'shoes', preferred_category: 'Home' });
    expect(result).toEqual({ kind: 'top_rated', items: [CATALOG[0], CATALOG[1], CATALOG[4], CATALOG[5]], source: 'last_browsed_category', category: 'Shoes', productId: null, fallback: false });
    expect(ids(recommend(index, 'top_rated', { last_browsed_category: 'Shoes' }, { limit: 2 }).items)).toEqual(['s1', 's2']);
  });

  it('leaves out what was purchased, what is in the cart and the product being viewed', () => {
    const profile = {
      last_browsed_category: 'Shoes',
      purchased_product_ids: ['s1'],
      cart: [{ product_id: 's2', quantity: 1 }],
      last_viewed_product: { product_id: 's5', quantity: 1 },
    };
    expect(ids(recommend(index, 'top_rated', profile).items)).toEqual(['s6', 's4']);
  });

  it('falls back to the preferred category when the last browsed one is unknown or has nothing left', () => {
    expect(recommend(index, 'top_rated', { last_browsed_category: null, preferred_category: 'Accessories' })).toMatchObject({
      source: 'preferred_category',
      category: 'Accessories',
      fallback: false,
    });
    const nothingLeft = recommend(index, 'top_rated', { last_browsed_category: 'Home', preferred_category: 'Accessories', purchased_product_ids: ['h1'] });
    expect(nothingLeft).toMatchObject({ source: 'preferred_category', category: 'Accessories', fallback: false });
    expect(ids(nothingLeft.items)).toEqual(['a1', 'a2']);
  });

  it('falls back to the whole catalog, and says so, when neither category is known or has anything left', () => {
    const unknown = recommend(index, 'top_rated', {});
    expect(unknown).toMatchObject({ source: 'catalog', category: null, fallback: true });
    expect(ids(unknown.items)).toEqual(['a1', 's1', 's2', 's5']);
    expect(recommend(index, 'top_rated', { last_browsed_category: 'Hats', preferred_category: 'Hats' })).toMatchObject({ source: 'catalog', fallback: true });
    expect(recommend(index, 'top_rated', { last_browsed_category: 'Home', purchased_product_ids: ['h1'] })).toMatchObject({ source: 'catalog', fallback: true });
  });
});

describe('recommend related', () => {
  it("lists the viewed product's related ids in their order: out of stock, deleted and repeated ids and the product itself left out", () => {
    const result = recommend(index, 'related', { last_viewed_product: { product_id: 's1', quantity: 1 } });
    expect(result).toMatchObject({ kind: 'related', source: 'last_viewed_product', productId: 's1', fallback: false });
    expect(ids(result.items)).toEqual(['a1', 'a2', 's2']);
  });

  it('takes productId over the viewed product, and leaves out what was purchased or is in the cart', () => {
    const profile = { last_viewed_product: { product_id: 'h1' }, purchased_product_ids: ['a1'], cart: [{ product_id: 's2', quantity: 1 }] };
    const result = recommend(index, 'related', profile, { productId: 's1', limit: 1 });
    expect(result).toMatchObject({ source: 'product_id', productId: 's1' });
    expect(ids(result.items)).toEqual(['a2']);
  });

  it('is empty without a product to relate to, or for one the catalog does not have', () => {
    expect(recommend(index, 'related', {})).toEqual({ kind: 'related', items: [], source: 'none', category: null, productId: null, fallback: false });
    expect(recommend(index, 'related', {}, { productId: 'unknown' }).items).toEqual([]);
  });
});

describe('recommend cart', () => {
  it("adds the catalog's rating, reviews, image and page to the cart's items, keeping the cart's quantity, name and price and filling in what it lacks", () => {
    const profile = {
      cart: [
        { product_id: 'a1', name: 'Socks as added', price: 9, quantity: 2, image_url: 'https://cdn.example/old.jpg', url: 'https://shop.example.com/old' },
        { product_id: 's2', quantity: 1 },
        { product_id: 'not-in-catalog', name: 'Gift card', price: 25, quantity: 1 },
      ],
    };
    expect(recommend(index, 'cart', profile)).toEqual({
      kind: 'cart',
      items: [
        { product_id: 'a1', name: 'Socks as added', price: 9, category: 'Accessories', quantity: 2, image_url: 'https://shop.example.com/img/a1.jpg', url: 'https://shop.example.com/p/a1', rating: 4.9, review_count: 30 },
        { product_id: 's2', name: 'Product s2', price: 10, category: 'Shoes', quantity: 1, url: 'https://shop.example.com/p/s2', rating: 4.8, review_count: 50 },
        { product_id: 'not-in-catalog', name: 'Gift card', price: 25, quantity: 1 },
      ],
      source: 'cart',
      category: null,
      productId: null,
      fallback: false,
    });
  });

  it("keeps the cart's image where the catalog has none, and leaves out items out of stock or purchased", () => {
    const profile = {
      cart: [
        { product_id: 's3', quantity: 1 },
        { product_id: 'h1', quantity: 1, image_url: 'https://cdn.example/h1.jpg' },
        { product_id: 's1', quantity: 1 },
        { product_id: 'a2', quantity: 3 },
      ],
      purchased_product_ids: ['s1'],
    };
    const items = recommend(index, 'cart', profile, { limit: 1 }).items;
    expect(items).toEqual([expect.objectContaining({ product_id: 'h1', image_url: 'https://cdn.example/h1.jpg', rating: 4 })]);
    expect(ids(recommend(index, 'cart', profile).items)).toEqual(['h1', 'a2']);
  });
});

describe('recommend last_order', () => {
  it("gives the last order's items with the catalog's image, page and reviews, keeping what was paid, in stock or not", () => {
    const profile = {
      last_order_products: [
        { product_id: 'a1', name: 'Socks as ordered', price: 9, quantity: 2 },
        { product_id: 's3', quantity: 1 },
        { product_id: 'not-in-catalog', name: 'Gift card', price: 25, quantity: 1, image_url: 'https://cdn.example/gift.jpg' },
      ],
      purchased_product_ids: ['a1', 's3', 'not-in-catalog'],
    };
    expect(recommend(index, 'last_order', profile)).toEqual({
      kind: 'last_order',
      items: [
        { product_id: 'a1', name: 'Socks as ordered', price: 9, category: 'Accessories', quantity: 2, image_url: 'https://shop.example.com/img/a1.jpg', url: 'https://shop.example.com/p/a1', rating: 4.9, review_count: 30 },
        // Out of stock now, but it was bought: the order shows it.
        { product_id: 's3', name: 'Product s3', price: 10, category: 'Shoes', quantity: 1, url: 'https://shop.example.com/p/s3', rating: 4.9, review_count: 900 },
        { product_id: 'not-in-catalog', name: 'Gift card', price: 25, quantity: 1, image_url: 'https://cdn.example/gift.jpg' },
      ],
      source: 'last_order_products',
      category: null,
      productId: null,
      fallback: false,
    });
    expect(ids(recommend(index, 'last_order', profile, { limit: 1 }).items)).toEqual(['a1']);
  });

  it('is empty for a customer who has ordered nothing', () => {
    expect(recommend(index, 'last_order', {}).items).toEqual([]);
    expect(recommend(index, 'last_order', { last_order_products: 'not a list' }).items).toEqual([]);
  });
});

describe('recommend with a real profile view', () => {
  it('reads the fields behaviorView gives: categories, cart, purchases and the last viewed product', () => {
    const at = Date.UTC(2024, 4, 1);
    const track = (name: string, properties: Record<string, unknown>, minute: number): BehaviorEvent => ({ type: 'track', name, properties, traits: {}, timestamp: at + minute * 60_000 });
    const events = [
      track('Order Completed', { order_id: 'o1', total: 10, products: [{ product_id: 's1', category: 'Shoes' }] }, 0),
      track('Product Viewed', { product_id: 'a1', category: 'Accessories' }, 1),
      track('Product Viewed', { product_id: 's5', category: 'Shoes' }, 2),
      track('Product Added', { product_id: 's2', price: 10, category: 'Shoes' }, 3),
    ];
    const view = behaviorView(foldAll(events), at + 3_600_000);

    expect(ids(recommend(index, 'top_rated', view).items)).toEqual(['s6', 's4']);
    expect(ids(recommend(index, 'related', view, { productId: 's1' }).items)).toEqual(['a1', 'a2']);
    expect(ids(recommend(index, 'cart', view).items)).toEqual(['s2']);
  });
});

describe('determinism and input checks', () => {
  const profiles: RecommendationProfile[] = [
    {},
    { last_browsed_category: 'Shoes', cart: [{ product_id: 's2', quantity: 1 }] },
    { preferred_category: 'accessories', purchased_product_ids: ['a1'] },
    { last_viewed_product: { product_id: 's1' }, cart: [{ product_id: 'a1', quantity: 1 }, { product_id: 'h1', quantity: 2 }] },
  ];

  it('gives the same items in the same order whatever order the catalog came in', () => {
    const random = seededRandom(4);
    const expected = profiles.map((p) => (['top_rated', 'related', 'cart'] as const).map((kind) => recommend(index, kind, p, { limit: 10 })));
    for (let round = 0; round < 25; round++) {
      const shuffled = [...CATALOG];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const again = catalogIndex(shuffled);
      expect(profiles.map((p) => (['top_rated', 'related', 'cart'] as const).map((kind) => recommend(again, kind, p, { limit: 10 })))).toEqual(expected);
    }
  });

  it('changes neither the catalog nor the profile', () => {
    const catalog = JSON.parse(JSON.stringify(CATALOG)) as Product[];
    const profile = JSON.parse(JSON.stringify(profiles[3])) as RecommendationProfile;
    const built = catalogIndex(catalog);
    for (const kind of ['top_rated', 'related', 'cart', 'last_order'] as const) recommend(built, kind, profile);
    expect(catalog).toEqual(CATALOG);
    expect(profile).toEqual(profiles[3]);
  });

  it('refuses an unknown kind and a limit that is not a whole number of at least 1', () => {
    expect(() => recommend(index, 'bestsellers' as never, {})).toThrow(new BadInputError('unknown recommendation kind "bestsellers"; use one of top_rated, related, cart, last_order', 'kind'));
    for (const limit of [0, -1, 1.5, Number.NaN]) expect(() => recommend(index, 'top_rated', {}, { limit })).toThrow(/^limit: must be a whole number of at least 1/);
  });
});
