// Catalog files: JSON and CSV read into the Product records templates see, and every bad field reported at once
// with file:line, the JSON path or column, and what to fix.
import fs from 'node:fs';
import path from 'node:path';
import { buildCatalog, checkCatalog, parseCatalogCsv, parseCatalogJson, readCatalogCsv, readCatalogFile, readCatalogJson, type Product } from '../../core/catalog';
import { CatalogError, isMicroflowsError } from '../../core/errors';

const JSON_FILE = 'catalog/products.json';
const CSV_FILE = 'catalog/products.csv';
const lines = (...rows: string[]): string => rows.join('\n') + '\n';

/** The formatted problems of a catalog that must fail. */
function problemsOf(parse: () => unknown): string[] {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(CatalogError);
    return (err as CatalogError).message.split('\n');
  }
  throw new Error('expected a CatalogError');
}

const SHOE: Product = {
  product_id: 'sku-1',
  name: 'Trail Shoe',
  category: 'Shoes',
  price: 89.5,
  image_url: 'https://shop.example.com/img/sku-1.jpg',
  url: 'https://shop.example.com/p/sku-1',
  rating: 4.6,
  review_count: 212,
  stock: 34,
  related_ids: ['sku-10'],
};
const SOCKS: Product = { product_id: 'sku-10', name: 'Merino Trail Socks', category: 'Accessories', price: 14.5, url: 'https://shop.example.com/p/sku-10', stock: null, related_ids: [] };

describe('parseCatalogJson', () => {
  it('reads the file columns into Product fields; absent optional fields stay absent and stock is then null', () => {
    const text = JSON.stringify([
      { id: 'sku-1', name: 'Trail Shoe', category: 'Shoes', price: 89.5, image: SHOE.image_url, url: SHOE.url, rating: 4.6, reviews: 212, stock: 34, related: ['sku-10'] },
      { id: 'sku-10', name: 'Merino Trail Socks', category: 'Accessories', price: 14.5, url: SOCKS.url, stock: null, rating: null },
    ]);
    expect(parseCatalogJson(text, JSON_FILE)).toEqual([SHOE, SOCKS]);
  });

  it('takes { "products": [...] }, the Product field names, whole-number ids, and trims text', () => {
    const text = JSON.stringify({
      products: [
        { ...SHOE, product_id: ' sku-1 ', name: ' Trail Shoe ', related_ids: [10] },
        { id: 10, name: 'Merino Trail Socks', category: 'Accessories', price: 14.5, url: SOCKS.url, related_ids: [] },
      ],
    });
    expect(parseCatalogJson(text, JSON_FILE)).toEqual([
      { ...SHOE, related_ids: ['10'] },
      { ...SOCKS, product_id: '10' },
    ]);
  });

  it('reports every bad field at its line and column, with the JSON path and what to fix', () => {
    const text = lines(
      '[', //                                                                                        1
      '  { "id": "a", "name": "A", "category": "Shoes", "price": "abc", "url": "https://x.example/a" },', // 2
      '  {', //                                                                                      3
      '    "id": "b",', //                                                                           4
      '    "category": "Shoes",', //                                                                 5
      '    "price": 10,', //                                                                         6
      '    "stock": -2,', //                                                                         7
      '    "rating": 5.5,', //                                                                       8
      '    "raiting": 4', //                                                                         9
      '  },', //                                                                                     10
      '  { "id": "c", "name": "C", "category": "Home", "price": "19.99", "url": "shop.example/c", "stock": 1.5, "reviews": -1 }', // 11
      ']',
    );
    expect(problemsOf(() => parseCatalogJson(text, JSON_FILE))).toEqual([
      'catalog/products.json:2:59 ($[0].price): error: price must be a number of 0 or more, e.g. 19.99 (no currency sign, "." for decimals); got "abc"',
      'catalog/products.json:3:3 ($[1].name): error: missing name: the product name shown in emails',
      'catalog/products.json:3:3 ($[1].url): error: missing url: the product page, e.g. https://shop.example.com/p/sku-1',
      'catalog/products.json:7:14 ($[1].stock): error: stock must be a whole number of 0 or more (leave it empty when stock is not tracked); got -2',
      'catalog/products.json:8:15 ($[1].rating): error: rating must be a number from 0 to 5, e.g. 4.5; got 5.5',
      'catalog/products.json:9:16 ($[1].raiting): error: unknown key "raiting" (did you mean "rating"?); a catalog has id, name, category, price, image, url, rating, reviews, stock, related',
      'catalog/products.json:11:58 ($[2].price): error: price must be a JSON number, not text: write 19.99 without quotes',
      'catalog/products.json:11:74 ($[2].url): error: url must be an absolute http(s) URL, e.g. https://shop.example.com/p/sku-1; got "shop.example/c"',
      'catalog/products.json:11:101 ($[2].stock): error: stock must be a whole number of 0 or more (leave it empty when stock is not tracked); got 1.5',
      'catalog/products.json:11:117 ($[2].reviews): error: reviews must be a whole number of 0 or more; got -1',
    ]);
  });

  it('reports a missing id, a duplicate id and a related id that names no product', () => {
    const text = lines(
      '[',
      '  { "id": "a", "name": "A", "category": "Shoes", "price": 1, "url": "https://x.example/a", "related": ["b", "ghost"] },',
      '  { "id": "a", "name": "A again", "category": "Shoes", "price": 1, "url": "https://x.example/a2" },',
      '  { "name": "No id", "category": "Shoes", "price": 1, "url": "https://x.example/n" },',
      '  { "id": "b", "name": "B", "category": "Shoes", "price": "free", "url": "https://x.example/b" }',
      ']',
    );
    expect(problemsOf(() => parseCatalogJson(text, JSON_FILE))).toEqual([
      // "b" is a product, if a bad one: relating to it is no problem of its own.
      'catalog/products.json:2:109 ($[0].related[1]): error: related id "ghost" names no product in the catalog: add a product with this id, or remove it from related',
      'catalog/products.json:3:11 ($[1].id): error: duplicate id "a": the product at catalog/products.json:2 ($[0].id) has it already; give each product its own id',
      'catalog/products.json:4:3 ($[2].id): error: missing id: each product needs its own id, e.g. sku-1',
      expect.stringMatching(/^catalog\/products\.json:5:\d+ \(\$\[3\]\.price\): error: price must be a number/),
    ]);
  });

  it('finds the line of a value after strings holding quotes, brackets and escapes', () => {
    const text = lines(
      '{ "products": [',
      '  { "id": "a\\"]}", "name": "Shoe \\u00e9 [1] {x}", "category": "Shoes", "price": 1, "url": "https://x.example/a", "related": [] },',
      '  { "id": "b", "name": "B", "category": "Shoes", "price": 1, "url": "https://x.example/b", "related": ["a\\"]}", "c"] }',
      '] }',
    );
    expect(problemsOf(() => parseCatalogJson(text, JSON_FILE))).toEqual([
      'catalog/products.json:3:113 ($.products[1].related[1]): error: related id "c" names no product in the catalog: add a product with this id, or remove it from related',
    ]);
  });

  it('refuses a key given under both its names', () => {
    const text = JSON.stringify([{ id: 'a', product_id: 'a', name: 'A', category: 'Shoes', price: 1, url: 'https://x.example/a' }]);
    expect(problemsOf(() => parseCatalogJson(text, JSON_FILE))).toEqual([
      'catalog/products.json:1:25 ($[0].product_id): error: "id" and "product_id" are the same field: give only one of them',
    ]);
  });

  it('says where the JSON is broken, and what a catalog must be', () => {
    expect(problemsOf(() => parseCatalogJson('[\n  {"id": "a",}\n]', JSON_FILE))).toEqual([
      "catalog/products.json:2:14: error: not valid JSON: unexpected '}' at line 2, column 14 (in $[0]): expected a key in double quotes (JSON allows no comma after the last member)",
    ]);
    expect(problemsOf(() => parseCatalogJson('[{"id": "a", "id": "b"}]', JSON_FILE))).toEqual([
      'catalog/products.json ($[0]): error: duplicate key "id"; each key may appear only once in an object',
    ]);
    expect(problemsOf(() => parseCatalogJson('{"items": []}', JSON_FILE))).toEqual([
      'catalog/products.json:1:1 ($): error: missing "products": a catalog is a list of products, or { "products": [ ... ] }',
      'catalog/products.json:1:11 ($.items): error: unknown key "items" in a catalog; a catalog is a list of products, or { "products": [ ... ] }',
    ]);
    expect(problemsOf(() => parseCatalogJson('"sku-1"', JSON_FILE))).toEqual([
      'catalog/products.json:1:1 ($): error: a catalog must be a list of products, e.g. [{ "id": "sku-1", "name": ... }], got "sku-1"',
    ]);
    expect(problemsOf(() => parseCatalogJson('[1, ["a"]]', JSON_FILE))).toEqual([
      'catalog/products.json:1:2 ($[0]): error: a product must be an object such as { "id": "sku-1", "name": "Trail Shoe", ... }, got 1',
      'catalog/products.json:1:5 ($[1]): error: a product must be an object such as { "id": "sku-1", "name": "Trail Shoe", ... }, got a list',
    ]);
  });

  it('throws a CatalogError that answers 400 with the first problem as its field', () => {
    try {
      parseCatalogJson('[{"id": "a", "name": "A", "category": "Shoes", "price": -1, "url": "https://x.example/a"}]', JSON_FILE);
      throw new Error('expected a CatalogError');
    } catch (err) {
      expect(isMicroflowsError(err)).toBe(true);
      expect(err).toMatchObject({ status: 400, code: 'invalid_catalog', field: '$[0].price' });
      expect((err as CatalogError).problems).toEqual([expect.objectContaining({ file: JSON_FILE, line: 1, path: '$[0].price', severity: 'error' })]);
    }
  });

  it('reads an empty list as an empty catalog', () => {
    expect(parseCatalogJson('[]', JSON_FILE)).toEqual([]);
    expect(parseCatalogJson('{"products": []}', JSON_FILE)).toEqual([]);
  });
});

describe('parseCatalogCsv', () => {
  const HEADER = 'id,name,category,price,image,url,rating,reviews,stock,related';

  it('reads a header row and one product a row; related ids split on "|"; empty cells are absent', () => {
    const text = lines(
      HEADER,
      `sku-1,Trail Shoe,Shoes,89.50,${SHOE.image_url},${SHOE.url},4.6,212,34,sku-10`,
      `sku-10,Merino Trail Socks,Accessories,14.5,,${SOCKS.url},,,,`,
    );
    expect(parseCatalogCsv(text, CSV_FILE)).toEqual([SHOE, SOCKS]);
  });

  it('takes columns in any order and case, Product field names, quoted values, CRLF and a byte order mark', () => {
    const text = '\ufeffURL,Product_ID,Name,Category,Price,Related_IDs\r\n' + 'https://x.example/a,a,"Shoe, ""trail"" edition",Shoes,1, b | c |\r\n' + 'https://x.example/b,b,B,Shoes,2,\r\nhttps://x.example/c,c,C,Shoes,3,\r\n';
    expect(parseCatalogCsv(text, CSV_FILE)).toEqual([
      { product_id: 'a', name: 'Shoe, "trail" edition', category: 'Shoes', price: 1, url: 'https://x.example/a', stock: null, related_ids: ['b', 'c'] },
      { product_id: 'b', name: 'B', category: 'Shoes', price: 2, url: 'https://x.example/b', stock: null, related_ids: [] },
      { product_id: 'c', name: 'C', category: 'Shoes', price: 3, url: 'https://x.example/c', stock: null, related_ids: [] },
    ]);
  });

  it('reports each problem at the line its row starts on, naming the column', () => {
    const text = lines(
      HEADER, //                                                                              1
      '', //                                                                                  2
      'a,"A quoted name', //                                                                  3
      'on two lines",Shoes,1,,https://x.example/a,,,,b|ghost', //                             4
      'b,B,Shoes,12.99 EUR,,https://x.example/b,6,,-1,', //                                   5
      ',C,Shoes,1,,https://x.example/c,,,,', //                                               6
      'd,D,Shoes,1,,https://x.example/d,,,,,extra', //                                        7
      'a,A twice,Shoes,1,,https://x.example/a2,,,,', //                                       8
    );
    expect(problemsOf(() => parseCatalogCsv(text, CSV_FILE))).toEqual([
      'catalog/products.csv:3 (related): error: related id "ghost" names no product in the catalog: add a product with this id, or remove it from related',
      'catalog/products.csv:5 (price): error: price must be a number of 0 or more, e.g. 19.99 (no currency sign, "." for decimals); got "12.99 EUR"',
      'catalog/products.csv:5 (rating): error: rating must be a number from 0 to 5, e.g. 4.5; got "6"',
      'catalog/products.csv:5 (stock): error: stock must be a whole number of 0 or more (leave it empty when stock is not tracked); got "-1"',
      'catalog/products.csv:6 (id): error: missing id: each product needs its own id, e.g. sku-1',
      'catalog/products.csv:7: error: the row has 11 fields, the header has 10: a comma inside a value needs the value in double quotes',
      'catalog/products.csv:8 (id): error: duplicate id "a": the product at catalog/products.csv:3 (id) has it already; give each product its own id',
    ]);
  });

  it('reports a missing or unknown header column once, not on every row', () => {
    const text = lines('id,name,category,prize,url', 'a,A,Shoes,1,https://x.example/a', 'b,B,Shoes,2,https://x.example/b');
    expect(problemsOf(() => parseCatalogCsv(text, CSV_FILE))).toEqual([
      'catalog/products.csv:1 (prize): error: unknown column "prize" (did you mean "price"?); a catalog has id, name, category, price, image, url, rating, reviews, stock, related',
      'catalog/products.csv:1: error: missing column "price" in the header: a number such as 19.99; the header needs id, name, category, price, url',
    ]);
  });

  it('reports malformed CSV with its line, and an empty file', () => {
    expect(problemsOf(() => parseCatalogCsv(lines(HEADER, 'a,"A" B,Shoes,1,,https://x.example/a,,,,'), CSV_FILE))).toEqual([
      'catalog/products.csv:2: error: malformed CSV: a quoted value goes on after its closing quote: a quote inside a quoted value is written twice ("")',
    ]);
    expect(problemsOf(() => parseCatalogCsv('\n\n', CSV_FILE))).toEqual([
      'catalog/products.csv: error: empty file: a CSV catalog starts with a header row such as id,name,category,price,image,url,rating,reviews,stock,related',
    ]);
  });
});

describe('catalogs of several files', () => {
  it('checks ids and related ids across the files, and against products stored before', () => {
    const shoes = readCatalogJson(JSON.stringify([{ id: 'sku-1', name: 'Shoe', category: 'Shoes', price: 1, url: 'https://x.example/1', related: ['sku-10', 'stored'] }]), 'catalog/a.json');
    const socks = readCatalogCsv(lines('id,name,category,price,url', 'sku-10,Socks,Accessories,2,https://x.example/10'), 'catalog/b.csv');
    expect(buildCatalog([shoes, socks], { knownIds: ['stored'] }).map((p) => p.product_id)).toEqual(['sku-1', 'sku-10']);

    const again = readCatalogCsv(lines('id,name,category,price,url', 'sku-1,Shoe again,Shoes,2,https://x.example/1b'), 'catalog/c.csv');
    const { products, problems } = checkCatalog([shoes, socks, again]);
    expect(products.map((p) => p.product_id)).toEqual(['sku-1', 'sku-10']);
    expect(problems.map((p) => `${p.file}:${p.line} ${p.message}`)).toEqual([
      'catalog/a.json:1 related id "stored" names no product in the catalog: add a product with this id, or remove it from related',
      'catalog/c.csv:2 duplicate id "sku-1": the product at catalog/a.json:1 ($[0].id) has it already; give each product its own id',
    ]);
  });

  it('reads a file by its extension', () => {
    expect(readCatalogFile('id,name,category,price,url\n', 'x.CSV').problems).toEqual([]);
    expect(readCatalogFile('[]', 'x.json').problems).toEqual([]);
    expect(readCatalogFile('', 'x.txt').problems).toEqual([expect.objectContaining({ message: 'not a catalog file: name it *.json or *.csv' })]);
  });
});

describe('the sample catalog', () => {
  const file = path.resolve(__dirname, '../../catalog/products.json');
  const products = parseCatalogJson(fs.readFileSync(file, 'utf8'), 'catalog/products.json');

  it('is valid, with products in four categories, related accessories and one product out of stock', () => {
    expect(products.length).toBeGreaterThanOrEqual(20);
    expect([...new Set(products.map((p) => p.category))].sort()).toEqual(['Accessories', 'Electronics', 'Home', 'Shoes']);
    expect(products.filter((p) => p.stock === 0)).toHaveLength(1);
    expect(products.find((p) => p.product_id === 'sku-1')).toMatchObject({ name: 'Trail Shoe', category: 'Shoes', price: 89.5 });
    expect(products.filter((p) => p.related_ids.length > 0).length).toBeGreaterThan(5);
  });
});
