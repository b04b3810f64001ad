// The catalog directory: every *.json and *.csv file in it, checked as one catalog, and upserted at start.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCatalogDir, syncCatalogDir } from '../../cli/catalog-files';
import type { Product } from '../../core/catalog';
import { CatalogError } from '../../core/errors';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-catalog-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const write = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text);

describe('loadCatalogDir', () => {
  it('reads the .json and .csv files in name order as one catalog; related ids may cross files; other files are ignored', () => {
    write('b-accessories.csv', 'id,name,category,price,url\nsku-10,Socks,Accessories,14.5,https://shop.example.com/p/sku-10\n');
    write('a-shoes.json', JSON.stringify([{ id: 'sku-1', name: 'Trail Shoe', category: 'Shoes', price: 89.5, url: 'https://shop.example.com/p/sku-1', related: ['sku-10'] }]));
    write('notes.txt', 'not a catalog');
    fs.mkdirSync(path.join(dir, 'old.json'));

    const { products, files } = loadCatalogDir(dir);

    expect(files).toEqual([path.join(dir, 'a-shoes.json'), path.join(dir, 'b-accessories.csv')]);
    expect(products.map((p) => p.product_id)).toEqual(['sku-1', 'sku-10']);
  });

  it('is empty for a directory that does not exist', () => {
    expect(loadCatalogDir(path.join(dir, 'absent'))).toEqual({ products: [], files: [] });
  });

  it('throws a CatalogError naming every problem in every file, so nothing loads', () => {
    write('a.json', JSON.stringify([{ id: 'sku-1', name: 'Shoe', category: 'Shoes', price: 'free', url: 'https://shop.example.com/p/sku-1' }]));
    write('b.csv', 'id,name,category,price,url\nsku-1,Shoe again,Shoes,1,https://shop.example.com/p/sku-1b\n');
    expect(() => loadCatalogDir(dir)).toThrow(CatalogError);
    expect(() => loadCatalogDir(dir)).toThrow(
      [
        `${path.join(dir, 'a.json')}:1:57 ($[0].price): error: price must be a number of 0 or more, e.g. 19.99 (no currency sign, "." for decimals); got "free"`,
        `${path.join(dir, 'b.csv')}:2 (id): error: duplicate id "sku-1": the product at ${path.join(dir, 'a.json')}:1 ($[0].id) has it already; give each product its own id`,
      ].join('\n'),
    );
  });

  it('loads the sample catalog shipped in catalog/', () => {
    expect(loadCatalogDir(path.resolve(__dirname, '../../catalog')).products.length).toBeGreaterThanOrEqual(20);
  });
});

describe('syncCatalogDir', () => {
  it('upserts the products and says how many came from where; an empty directory writes nothing', async () => {
    const upserted: Product[][] = [];
    const logged: string[] = [];
    const store = { upsertProducts: async (products: Product[]) => void upserted.push(products) };

    await syncCatalogDir(dir, store, (m) => logged.push(m));
    expect(upserted).toEqual([]);

    write('p.csv', 'id,name,category,price,url\nsku-1,Shoe,Shoes,1,https://shop.example.com/p/sku-1\n');
    await syncCatalogDir(dir, store, (m) => logged.push(m));
    expect(upserted.map((batch) => batch.map((p) => p.product_id))).toEqual([['sku-1']]);
    expect(logged).toEqual([`[microflows] catalog: 1 product(s) from ${path.join(dir, 'p.csv')}`]);
  });
});
