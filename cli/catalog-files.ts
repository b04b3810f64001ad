// Reads the catalog directory (every *.json and *.csv file in it) and syncs it into the store at start, so every
// worker renders from one shared catalog. Parsing and checking are core/catalog; this is the file I/O around it.
import fs from 'node:fs';
import path from 'node:path';
import { buildCatalog, catalogFormatOf, readCatalogFile, type Product } from '../core/catalog';
import type { Store } from '../store/store';

export interface LoadedCatalog {
  products: Product[];
  /** The files read, sorted by name. */
  files: string[];
}

/**
 * Every `*.json` and `*.csv` file directly in `dir`, sorted by name, read and checked as one catalog: an id may
 * appear once across the files, and related ids may name products in any of them. A missing directory is an empty
 * catalog. Throws CatalogError listing every problem in every file, so a bad file loads nothing.
 */
export function loadCatalogDir(dir: string): LoadedCatalog {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { products: [], files: [] };
    throw err;
  }
  const files = entries
    .filter((e) => e.isFile() && catalogFormatOf(e.name) !== undefined)
    .map((e) => path.join(dir, e.name))
    .sort();
  const read = files.map((file) => readCatalogFile(fs.readFileSync(file, 'utf8'), file));
  return { products: buildCatalog(read), files };
}

/** Loads `dir` and upserts its products into the store. Products only in the store (sent to the API) are kept. */
export async function syncCatalogDir(dir: string, store: Pick<Store, 'upsertProducts'>, log: (message: string) => void): Promise<LoadedCatalog> {
  const catalog = loadCatalogDir(dir);
  if (catalog.products.length > 0) {
    await store.upsertProducts(catalog.products);
    log(`[microflows] catalog: ${catalog.products.length} product(s) from ${catalog.files.join(', ')}`);
  }
  return catalog;
}
