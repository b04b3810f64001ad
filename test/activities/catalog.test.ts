// The activity-side catalog reader: one index per catalog version, rebuilt only when the store's version moves.
import { catalogReader } from '../../activities/catalog';
import type { Product } from '../../core/catalog';

function product(product_id: string, rating: number): Product {
  return { product_id, name: product_id, category: 'Shoes', price: 1, url: `https://shop.example.com/p/${product_id}`, rating, stock: null, related_ids: [] };
}

/** A store double that counts product reads. */
function fakeStore(products: Product[]) {
  const store = {
    version: 1,
    products,
    productReads: 0,
    catalogVersion: async () => store.version,
    catalogProducts: async () => {
      store.productReads += 1;
      await new Promise((resolve) => setImmediate(resolve));
      return store.products;
    },
  };
  return store;
}

describe('catalogReader', () => {
  it('reads the products once per version, and again only after the version moved', async () => {
    const store = fakeStore([product('a', 4), product('b', 5)]);
    const reader = catalogReader(store);

    const first = await reader.index();
    expect(first.topRated.map((p) => p.product_id)).toEqual(['b', 'a']);
    expect(await reader.index()).toBe(first);
    expect(store.productReads).toBe(1);

    store.products = [product('c', 3)];
    store.version = 2;
    const second = await reader.index();
    expect(second.topRated.map((p) => p.product_id)).toEqual(['c']);
    expect(store.productReads).toBe(2);
  });

  it('shares one reload among concurrent callers', async () => {
    const store = fakeStore([product('a', 4)]);
    const reader = catalogReader(store);
    const indexes = await Promise.all([reader.index(), reader.index(), reader.index()]);
    expect(new Set(indexes).size).toBe(1);
    expect(store.productReads).toBe(1);
  });
});
