// The catalog API: PUT /api/catalog/products (products in the catalog file format, taken whole or not at all),
// GET and DELETE /api/catalog/products/:id. On the admin surface: reads need an admin key with `read`, writes one
// with `write` (server/auth.ts); validation is core/catalog.
import { Router } from 'express';
import { buildCatalog, readCatalogJson } from '../core/catalog';
import { BadInputError } from '../core/errors';
import type { Store } from '../store/store';
import { NotFoundError, asyncHandler } from './http-errors';
import { bodyBytes, readBody } from './ingest-routes';

/** Largest PUT body: about 10,000 products; send a bigger catalog in parts. */
export const CATALOG_LIMIT_BYTES = 5 * 1024 * 1024;

/** What problems in a PUT body are located in, as a file would be: `request body:3:5 ($[2].price)`. */
const BODY_NAME = 'request body';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface CatalogRouteDeps {
  store: Pick<Store, 'upsertProducts' | 'catalogProducts' | 'catalogProduct' | 'deleteProducts' | 'catalogVersion'>;
}

export function catalogRoutes(deps: CatalogRouteDeps): Router {
  const { store } = deps;
  const router = Router();

  router.put(
    '/api/catalog/products',
    readBody(CATALOG_LIMIT_BYTES, 'catalog'),
    asyncHandler(async (req, res) => {
      let text: string;
      try {
        text = utf8.decode(bodyBytes(req));
      } catch {
        throw new BadInputError('the body is not valid UTF-8: send the JSON encoded as UTF-8');
      }
      const file = readCatalogJson(text, BODY_NAME);
      // Related ids may name products stored before; the store is read only when some name none in this body.
      const inBody = new Set(file.ids.map((i) => i.id));
      const elsewhere = file.entries.some((e) => e.product.related_ids.some((id) => !inBody.has(id)));
      const knownIds = elsewhere ? (await store.catalogProducts()).map((p) => p.product_id) : [];
      const products = buildCatalog([file], { knownIds });
      await store.upsertProducts(products);
      res.json({ upserted: products.length, version: await store.catalogVersion() });
    }),
  );

  router.get(
    '/api/catalog/products/:id',
    asyncHandler(async (req, res) => {
      const id = req.params.id ?? '';
      const product = await store.catalogProduct(id);
      if (!product) throw new NotFoundError(`no product "${id}" in the catalog: add it with PUT /api/catalog/products or to a file in the catalog directory`);
      res.json(product);
    }),
  );

  router.delete(
    '/api/catalog/products/:id',
    asyncHandler(async (req, res) => {
      const id = req.params.id ?? '';
      if ((await store.deleteProducts([id])) === 0) throw new NotFoundError(`no product "${id}" in the catalog: nothing to delete`);
      res.status(204).end();
    }),
  );

  return router;
}
