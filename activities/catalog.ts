// The catalog as rendering activities read it: an index (core/recommendations) cached per process and rebuilt only
// when the store's catalog version has moved, so a send costs one one-row read, not a read of every product.
import { catalogIndex, recommend, type CatalogIndex, type RecommendationKind } from '../core/recommendations';
import type { RenderOptions } from './templates';
import type { Store } from '../store/store';

export interface CatalogReader {
  /** The index of the catalog as it is now in the store. */
  index(): Promise<CatalogIndex>;
}

export function catalogReader(store: Pick<Store, 'catalogVersion' | 'catalogProducts'>): CatalogReader {
  let cached: { version: number; index: CatalogIndex } | undefined;
  // Concurrent sends that find the cache stale share one reload instead of each reading every product.
  let loading: { version: number; promise: Promise<CatalogIndex> } | undefined;

  return {
    async index() {
      const version = await store.catalogVersion();
      if (cached?.version === version) return cached.index;
      if (loading?.version === version) return loading.promise;
      // The version is read before the products: a write landing in between is in the products but not the
      // version, and the next call just reloads once more. Older products under a newer version cannot happen.
      const promise = store.catalogProducts().then((products) => {
        const index = catalogIndex(products);
        if (!cached || cached.version <= version) cached = { version, index };
        return index;
      });
      loading = { version, promise };
      try {
        return await promise;
      } finally {
        if (loading?.promise === promise) loading = undefined;
      }
    },
  };
}

/** What rendering needs of the catalog: recommendation blocks and product URLs (without one, blocks show the cart). */
export function catalogRenderOptions(index: CatalogIndex | null): Pick<RenderOptions, 'recommend' | 'productUrl'> {
  return {
    recommend: index ? (kind, view, options) => recommend(index, kind as RecommendationKind, view, options) : null,
    productUrl: (productId) => index?.products.get(productId)?.url,
  };
}
