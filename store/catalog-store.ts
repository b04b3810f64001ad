// The product catalog (core/catalog): products upserted and deleted in transactions that queue catalog writers one
// behind the other and bump the catalog's version (what recommendation caches key on), and read back.
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Product } from '../core/catalog';
import { chunks } from './chunks';
import type { StoreDialect } from './migrations';
import { parseJson } from './rows';
import type { CatalogProductsTable, Database } from './schema';

function toProduct(row: Selectable<CatalogProductsTable>): Product {
  return {
    product_id: row.product_id,
    name: row.name,
    category: row.category,
    price: row.price,
    ...(row.image_url !== null ? { image_url: row.image_url } : {}),
    url: row.url,
    ...(row.rating !== null ? { rating: row.rating } : {}),
    ...(row.review_count !== null ? { review_count: row.review_count } : {}),
    stock: row.stock,
    related_ids: parseJson<string[]>(row.related_ids),
  };
}

function productRow(product: Product, updatedAt: number): CatalogProductsTable {
  return {
    product_id: product.product_id,
    name: product.name,
    category: product.category,
    price: product.price,
    image_url: product.image_url ?? null,
    url: product.url,
    rating: product.rating ?? null,
    review_count: product.review_count ?? null,
    stock: product.stock,
    related_ids: JSON.stringify(product.related_ids),
    updated_at: updatedAt,
  };
}

/**
 * Every catalog write starts here: on PostgreSQL it locks the counter row, so catalog writers queue up one behind the
 * other (two upserts touching the same products in different orders cannot deadlock); SQLite's write transactions
 * are serial already.
 */
async function lockCatalog(trx: Transaction<Database>, dialect: StoreDialect): Promise<void> {
  if (dialect === 'postgres') await trx.selectFrom('catalog_state').select('version').where('id', '=', 1).forUpdate().execute();
}

async function bumpCatalogVersion(trx: Transaction<Database>): Promise<void> {
  await trx
    .updateTable('catalog_state')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', 1)
    .execute();
}

const byProductId = (a: { product_id: string }, b: { product_id: string }) => (a.product_id < b.product_id ? -1 : a.product_id > b.product_id ? 1 : 0);

/** Inserts or replaces `products` (stamped `now`) in one transaction, in product id order, and bumps the version. */
export async function upsertProducts(db: Kysely<Database>, dialect: StoreDialect, products: Product[], now: number): Promise<void> {
  if (products.length === 0) return;
  const sorted = [...products].sort(byProductId);
  await db.transaction().execute(async (trx) => {
    await lockCatalog(trx, dialect);
    for (const batch of chunks(sorted)) {
      await trx
        .insertInto('catalog_products')
        .values(batch.map((p) => productRow(p, now)))
        .onConflict((oc) =>
          oc.column('product_id').doUpdateSet((eb) => ({
            name: eb.ref('excluded.name'),
            category: eb.ref('excluded.category'),
            price: eb.ref('excluded.price'),
            image_url: eb.ref('excluded.image_url'),
            url: eb.ref('excluded.url'),
            rating: eb.ref('excluded.rating'),
            review_count: eb.ref('excluded.review_count'),
            stock: eb.ref('excluded.stock'),
            related_ids: eb.ref('excluded.related_ids'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .execute();
    }
    await bumpCatalogVersion(trx);
  });
}

/** Every product, by product id. */
export async function catalogProducts(db: Kysely<Database>): Promise<Product[]> {
  const rows = await db.selectFrom('catalog_products').selectAll().execute();
  // Sorted here, not by ORDER BY: PostgreSQL orders text by its collation, SQLite by bytes.
  return rows.map(toProduct).sort(byProductId);
}

export async function catalogProduct(db: Kysely<Database>, productId: string): Promise<Product | undefined> {
  const row = await db.selectFrom('catalog_products').selectAll().where('product_id', '=', productId).executeTakeFirst();
  return row ? toProduct(row) : undefined;
}

/** Deletes the products named (unknown ids are ignored); bumps the version when any was there. How many went. */
export async function deleteProducts(db: Kysely<Database>, dialect: StoreDialect, productIds: string[]): Promise<number> {
  if (productIds.length === 0) return 0;
  return db.transaction().execute(async (trx) => {
    await lockCatalog(trx, dialect);
    let deleted = 0;
    for (const ids of chunks([...new Set(productIds)])) {
      const result = await trx.deleteFrom('catalog_products').where('product_id', 'in', ids).executeTakeFirst();
      deleted += Number(result.numDeletedRows);
    }
    if (deleted > 0) await bumpCatalogVersion(trx);
    return deleted;
  });
}

/** Bumped by every write that changed the catalog. */
export async function catalogVersion(db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('catalog_state').select('version').where('id', '=', 1).executeTakeFirst();
  return Number(row?.version ?? 0);
}
