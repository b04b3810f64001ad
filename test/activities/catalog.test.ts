// The activity-side catalog reader on the real stores (SQLite, and PostgreSQL with TEST_DATABASE_URL): one index per
// catalog version, rebuilt only when the store's version moves. Product reads are counted by wrapping the real
// store's catalogProducts, which still does the reading.
import { catalogReader } from '../../activities/catalog';
import type { Product } from '../../core/catalog';
import type { KyselyStore } from '../../store/kysely-store';
import { storeBackends } from '../support/store-backends';

function product(product_id: string, rating: number): Product {
  return { product_id, name: product_id, category: 'Shoes', price: 1, url: `https://shop.example.com/p/${product_id}`, rating, stock: null, related_ids: [] };
}

for (const backend of storeBackends('catalog reader')) {
  backend.describe(`catalogReader: ${backend.name}`, () => {
    let store: KyselyStore;
    let productReads = 0;

    beforeAll(async () => {
      store = await backend.open();
      const catalogProducts = store.catalogProducts.bind(store);
      store.catalogProducts = () => {
        productReads += 1;
        return catalogProducts();
      };
    });
    afterAll(() => backend.dispose());

    beforeEach(async () => {
      await store.deleteProducts((await store.catalogProducts()).map((p) => p.product_id));
      productReads = 0;
    });

    it('reads the products once per version, and again only after the version moved', async () => {
      await store.upsertProducts([product('a', 4), product('b', 5)]);
      const reader = catalogReader(store);

      const first = await reader.index();
      expect(first.topRated.map((p) => p.product_id)).toEqual(['b', 'a']);
      expect(await reader.index()).toBe(first);
      expect(await reader.index()).toBe(first);
      expect(productReads).toBe(1);

      expect(await store.deleteProducts(['a', 'b'])).toBe(2);
      await store.upsertProducts([product('c', 3)]);
      const second = await reader.index();
      expect(second.topRated.map((p) => p.product_id)).toEqual(['c']);
      expect(productReads).toBe(2);
      expect(await reader.index()).toBe(second);
      expect(productReads).toBe(2);
    });

    it('shares one reload among concurrent callers', async () => {
      await store.upsertProducts([product('a', 4)]);
      const reader = catalogReader(store);
      const indexes = await Promise.all([reader.index(), reader.index(), reader.index()]);
      expect(new Set(indexes).size).toBe(1);
      expect(indexes[0]!.topRated.map((p) => p.product_id)).toEqual(['a']);
      expect(productReads).toBe(1);
    });
  });
}
