// The catalog API on a real port and a real store: PUT takes a whole batch of products or none of them, naming the
// JSON path and line of every bad field; GET and DELETE work by id; writes need the write key.
import { noDispatch } from '../../server/dispatcher';
import type { KyselyStore } from '../../store/kysely-store';
import { storeBackends } from '../support/store-backends';
import { serveApp, type RunningApp } from '../support/serve-app';
import { TEST_ADMIN_KEY } from '../support/http';
import { newApiKey } from '../../core/api-keys';

const WRITE_KEY = 'test-write-key';
const basic = (username: string) => `Basic ${Buffer.from(`${username}:`).toString('base64')}`;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

interface Reply {
  status: number;
  body: any;
}

async function send(base: string, method: string, path: string, body?: unknown, auth: string | null = `Bearer ${TEST_ADMIN_KEY}`): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth !== null) headers.authorization = auth;
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  const res = await fetch(`${base}${path}`, { method, headers, body: payload });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** A product in the catalog file format. */
function fileProduct(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    name: `Shoe ${id}`,
    category: 'Shoes',
    price: 89.5,
    image: `https://shop.example.com/img/${id}.jpg`,
    url: `https://shop.example.com/p/${id}`,
    rating: 4.6,
    reviews: 212,
    stock: 3,
    related: [],
    ...overrides,
  };
}

const backends = storeBackends('catalog api');

for (const backend of backends) {
  backend.describe(`catalog API over HTTP: ${backend.name}`, () => {
    let store: KyselyStore;
    let app: RunningApp;

    /** An admin key that may only read; stored before the server starts, so its key cache has it from the first call. */
    const reader = newApiKey('admin', unique('catalog reader'), ['read'], Date.now());

    beforeAll(async () => {
      store = await backend.open();
      await store.createApiKey(reader.record);
      app = await serveApp({ store, config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: () => undefined });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    it('PUT stores the products and GET returns each as templates see it', async () => {
      const [shoe, socks] = [unique('sku'), unique('sku')];
      const before = await store.catalogVersion();

      const put = await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(shoe, { related: [socks] }), { id: socks, name: 'Socks', category: 'Accessories', price: 3, url: 'https://shop.example.com/p/socks' }]);

      expect(put).toEqual({ status: 200, body: { upserted: 2, version: expect.any(Number) } });
      expect(put.body.version).toBeGreaterThan(before);
      expect(await send(app.url, 'GET', `/api/catalog/products/${shoe}`)).toEqual({
        status: 200,
        body: {
          product_id: shoe,
          name: `Shoe ${shoe}`,
          category: 'Shoes',
          price: 89.5,
          image_url: `https://shop.example.com/img/${shoe}.jpg`,
          url: `https://shop.example.com/p/${shoe}`,
          rating: 4.6,
          review_count: 212,
          stock: 3,
          related_ids: [socks],
        },
      });
      expect((await send(app.url, 'GET', `/api/catalog/products/${socks}`)).body).toEqual({
        product_id: socks,
        name: 'Socks',
        category: 'Accessories',
        price: 3,
        url: 'https://shop.example.com/p/socks',
        stock: null,
        related_ids: [],
      });
    });

    it('takes back what GET returned, and replaces a product with the same id', async () => {
      const id = unique('sku');
      await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)]);
      const product = (await send(app.url, 'GET', `/api/catalog/products/${id}`)).body;

      const put = await send(app.url, 'PUT', '/api/catalog/products', [{ ...product, stock: 0, name: 'Renamed' }]);

      expect(put.status).toBe(200);
      expect(await store.catalogProduct(id)).toEqual({ ...product, stock: 0, name: 'Renamed' });
    });

    it('accepts related ids that name products stored before', async () => {
      const [stored, fresh] = [unique('sku'), unique('sku')];
      await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(stored)]);
      const put = await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(fresh, { related: [stored] })]);
      expect(put.status).toBe(200);
      expect((await store.catalogProduct(fresh))?.related_ids).toEqual([stored]);
    });

    it('refuses a batch with a bad item: 400 naming the JSON path, line and field, and the store is unchanged', async () => {
      const [good, bad] = [unique('sku'), unique('sku')];
      const counts = await store.tableCounts();
      const version = await store.catalogVersion();
      // Sent pretty-printed (2 spaces): item 1 starts on line 14, its price is on line 18 at column 14.
      const reply = await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(good), fileProduct(bad, { price: 'cheap', rating: 9 })]);

      expect(reply.status).toBe(400);
      expect(reply.body).toMatchObject({ error: 'invalid_catalog', field: '$[1].price' });
      expect(reply.body.message).toContain('request body:18:14 ($[1].price): error: price must be a number of 0 or more');
      expect(reply.body.message).toContain('($[1].rating): error: rating must be a number from 0 to 5');
      expect(await store.catalogProduct(good)).toBeUndefined();
      expect(await store.tableCounts()).toEqual(counts);
      expect(await store.catalogVersion()).toBe(version);
    });

    it('refuses missing fields, duplicate ids and related ids that name no product, all in one answer', async () => {
      const id = unique('sku');
      const reply = await send(app.url, 'PUT', '/api/catalog/products', [
        fileProduct(id, { related: ['no-such-product'] }),
        fileProduct(id),
        { id: unique('sku'), category: 'Shoes', price: 1 },
      ]);

      expect(reply.status).toBe(400);
      expect(reply.body.field).toBe('$[0].related[0]');
      const lines = (reply.body.message as string).split('\n');
      expect(lines).toEqual([
        expect.stringMatching(/^request body:\d+:\d+ \(\$\[0\]\.related\[0\]\): error: related id "no-such-product" names no product/),
        expect.stringMatching(new RegExp(`^request body:\\d+:\\d+ \\(\\$\\[1\\]\\.id\\): error: duplicate id "${id}": the product at request body:3 \\(\\$\\[0\\]\\.id\\)`)),
        expect.stringMatching(/^request body:\d+:\d+ \(\$\[2\]\.name\): error: missing name/),
        expect.stringMatching(/^request body:\d+:\d+ \(\$\[2\]\.url\): error: missing url/),
      ]);
      expect(await store.catalogProduct(id)).toBeUndefined();
    });

    it('refuses a body that is not JSON with the line and column', async () => {
      const reply = await send(app.url, 'PUT', '/api/catalog/products', '[\n  {"id": "x",}\n]');
      expect(reply.status).toBe(400);
      expect(reply.body.message).toBe(
        "request body:2:14: error: not valid JSON: unexpected '}' at line 2, column 14 (in $[0]): expected a key in double quotes (JSON allows no comma after the last member)",
      );
    });

    it('needs an admin key with the write scope to change the catalog, and one with read to read it', async () => {
      const id = unique('sku');
      expect((await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)], null)).status).toBe(401);
      // The write key is for ingest: it opens no admin route.
      expect((await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)], basic(WRITE_KEY))).status).toBe(401);
      expect((await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)], 'Bearer wrong-key')).status).toBe(401);
      expect(await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)], `Bearer ${reader.key}`)).toMatchObject({ status: 403, body: { error: 'forbidden' } });
      expect(await store.catalogProduct(id)).toBeUndefined();

      await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)]);
      expect((await send(app.url, 'DELETE', `/api/catalog/products/${id}`, undefined, null)).status).toBe(401);
      expect((await send(app.url, 'DELETE', `/api/catalog/products/${id}`, undefined, `Bearer ${reader.key}`)).status).toBe(403);
      expect((await send(app.url, 'GET', `/api/catalog/products/${id}`, undefined, null)).status).toBe(401);
      expect((await send(app.url, 'GET', `/api/catalog/products/${id}`, undefined, `Bearer ${reader.key}`)).status).toBe(200);
    });

    it('GET answers 404 for an absent product; DELETE removes one (204), then answers 404', async () => {
      const id = unique('sku');
      expect(await send(app.url, 'GET', `/api/catalog/products/${id}`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
      await send(app.url, 'PUT', '/api/catalog/products', [fileProduct(id)]);
      const version = await store.catalogVersion();

      expect((await send(app.url, 'DELETE', `/api/catalog/products/${id}`)).status).toBe(204);

      expect((await send(app.url, 'GET', `/api/catalog/products/${id}`)).status).toBe(404);
      expect(await store.catalogVersion()).toBeGreaterThan(version);
      expect(await send(app.url, 'DELETE', `/api/catalog/products/${id}`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
    });
  });
}
