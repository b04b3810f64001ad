// `microflows import` as users run it: the real CLI in a child process, writing to a real store (SQLite, and
// PostgreSQL when TEST_DATABASE_URL is set), including a SIGKILL mid-import and the resumed run after it.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compileImportMapping, mapRow } from '../../core/import-mapping';
import type { KyselyStore } from '../../store/kysely-store';
import { MAX_LINES_PER_RECORD, openRowSource } from '../../cli/import-source';
import type { SourceFormat, SourceRow } from '../../cli/import-source';
import { storeBackends } from '../support/store-backends';

const ROOT = path.resolve(__dirname, '../..');
/** A shop's event export in the shape of the public e-commerce behavior logs, and the mapping the README shows for it. */
const SHOP_EXPORT = path.join(ROOT, 'test/fixtures/import-shop-export');
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The parent's environment without anything that would point the child at another store. */
function childEnv(env: Record<string, string>): Record<string, string> {
  const inherited = Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('MICROFLOWS_') && k !== 'DATABASE_URL');
  return { ...(Object.fromEntries(inherited) as Record<string, string>), ...env };
}

function microflows(args: string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/microflows.js', ...args], { cwd: ROOT, env: childEnv(env), encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const PROFILES_MAPPING = [
  'user_id: Customer ID',
  'traits:',
  '  email: Email',
  '  first_name: First Name',
  '  lifetime_value: { column: LTV, type: number }',
  '  vip: { column: VIP, type: boolean }',
  '  signup_date: { column: Created, type: date }',
  'consent:',
  '  email_marketing: { column: Opted In, type: boolean }',
  '',
].join('\n');

const CUSTOMERS_CSV = [
  'Customer ID,Email,First Name,LTV,VIP,Created,Opted In', //  line 1: header
  'p1,p1@example.com,Ana,120.5,yes,2024-01-02,true', //        line 2, row 1
  'p2,p2@example.com,"Bo, Jr.",12,no,2024-02-03T10:00:00Z,false', // line 3, row 2
  'p3,p3@example.com,Cy,"12,x",no,2024-02-03,1', //            line 4, row 3: not a number
  ',nobody@example.com,No,1,no,2024-01-01,0', //               line 5, row 4: no customer id
  'p5,p5@example.com,"Car"l,14,no,2024-01-01,0', //            line 6, row 5: malformed quote
  'p6,p6@example.com,"Multi', //                               line 7, row 6: a quoted line break
  'line",15,no,2024-01-01,yes', //                             line 8
  '', //                                                       line 9: blank, not a row
  'p7,p7@example.com,Dee,7,perhaps,2024-01-01,no', //          line 10, row 7: not a boolean
  'p8,p8@example.com,Eve,8,no,2024-01-01,no', //               line 11, row 8
  '',
].join('\n');

const EVENTS_MAPPING = [
  'user_id: customer_id',
  'event: { value: Order Completed }',
  'timestamp: { column: ordered_at, type: date }',
  'properties:',
  '  order_number: { column: n, type: number }',
  '  total: { column: amount, type: number }',
  '  products: { column: items_json, type: json }',
  '',
].join('\n');

const ORDER_ROWS = 20_000;
const ORDER_CUSTOMERS = 200;

function orderRecord(i: number): Record<string, string> {
  const at = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
  return { customer_id: `o${i % ORDER_CUSTOMERS}`, n: String(i), ordered_at: at, amount: `${(i % 500) + 0.5}`, items_json: `[{"product_id":"sku-${i % 77}","price":${i % 90}}]` };
}

function ordersCsv(): string {
  const lines = ['customer_id,n,ordered_at,amount,items_json'];
  for (let i = 0; i < ORDER_ROWS; i++) {
    const r = orderRecord(i);
    lines.push([r.customer_id, r.n, r.ordered_at, r.amount, `"${r.items_json!.replace(/"/g, '""')}"`].join(','));
  }
  return `${lines.join('\n')}\n`;
}

async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const readJson = (file: string): any => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined; // not there yet
  }
};

const reportLines = (file: string): any[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

for (const backend of storeBackends('microflows import')) {
  backend.describe(`microflows import (${backend.name})`, () => {
    let store: KyselyStore;
    let dir: string;
    const run = (args: string[]) => microflows(args, backend.env);
    const file = (name: string, text: string): string => {
      const target = path.join(dir, name);
      fs.writeFileSync(target, text);
      return target;
    };

    beforeAll(async () => {
      store = await backend.open();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-import-'));
    });

    afterAll(async () => {
      await backend.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    test('a CSV of profiles: good rows are stored, bad rows go to the report with row, line and reason; exit 2', async () => {
      const csv = file('customers.csv', CUSTOMERS_CSV);
      const mapping = file('profiles.yaml', PROFILES_MAPPING);
      const result = run(['import', 'profiles', csv, '--map', mapping]);
      expect(result.stdout).toContain('imported 4 rows (4 new, 0 already present), 4 bad rows in ');
      expect(result.stdout).toContain(`4 bad rows not imported: see ${csv}.bad-rows.jsonl`);
      expect(result.status).toBe(2);

      const p1 = await store.getProfile('p1');
      expect(p1?.email).toBe('p1@example.com');
      expect(p1?.traits).toMatchObject({ first_name: 'Ana', lifetime_value: 120.5, vip: true, signup_date: '2024-01-02T00:00:00.000Z' });
      expect((await store.getProfile('p2'))?.traits).toMatchObject({ first_name: 'Bo, Jr.', vip: false });
      expect((await store.getProfile('p6'))?.traits.first_name).toBe('Multi\nline');
      expect((await store.getProfile('p8'))?.email).toBe('p8@example.com');
      for (const bad of ['p3', 'p5', 'p7']) expect(await store.getProfile(bad)).toBeUndefined();

      const report = reportLines(`${csv}.bad-rows.jsonl`);
      expect(report.map((r) => [r.row, r.line])).toEqual([
        [3, 4],
        [4, 5],
        [5, 6],
        [7, 10],
      ]);
      expect(report[0].reason).toBe('column "LTV": "12,x" is not a number (write it like 1234.5: no thousands separators or units)');
      expect(report[0].record).toMatchObject({ 'Customer ID': 'p3', LTV: '12,x' });
      expect(report[1].reason).toBe('column "Customer ID": is empty');
      expect(report[2].reason).toMatch(/^malformed CSV: a quoted value goes on after its closing quote/);
      expect(report[2].raw).toBe('p5,p5@example.com,"Car"l,14,no,2024-01-01,0');
      expect(report[3].reason).toContain('column "VIP": "perhaps" is not a boolean');
      expect(fs.existsSync(`${csv}.import-checkpoint.json`)).toBe(false);
    });

    test('a rerun of the same file adds nothing twice', async () => {
      const before = await store.tableCounts();
      const csv = path.join(dir, 'customers.csv');
      const result = run(['import', 'profiles', csv, '--map', path.join(dir, 'profiles.yaml')]);
      expect(result.stdout).toContain('imported 4 rows (0 new, 4 already present), 4 bad rows');
      expect(result.status).toBe(2);
      expect(await store.tableCounts()).toEqual(before);
      expect(reportLines(`${csv}.bad-rows.jsonl`)).toHaveLength(4);
    });

    test('an import killed mid-file resumes from its checkpoint and stores each row exactly once', async () => {
      const csv = file('orders.csv', ordersCsv());
      const mappingFile = file('orders.yaml', EVENTS_MAPPING);
      const checkpoint = `${csv}.import-checkpoint.json`;
      const before = await store.tableCounts();

      const child = spawn(process.execPath, ['bin/microflows.js', 'import', 'events', csv, '--map', mappingFile, '--batch', '100'], {
        cwd: ROOT,
        env: childEnv(backend.env),
        stdio: 'ignore',
      });
      let exited = false;
      const exit = new Promise<void>((resolve) => child.on('exit', () => resolve())).then(() => {
        exited = true;
      });
      const reached = await waitFor(
        'the checkpoint to pass row 2,000',
        () => {
          if (exited) throw new Error('the import finished before it could be killed: make the file larger');
          const rows = (readJson(checkpoint) as { rowsDone?: number } | undefined)?.rowsDone;
          return rows !== undefined && rows >= 2000 ? rows : undefined;
        },
        60_000,
      );
      child.kill('SIGKILL');
      await exit;
      const left = readJson(checkpoint) as { rowsDone: number };
      expect(left.rowsDone).toBeGreaterThanOrEqual(reached);
      expect(left.rowsDone).toBeLessThan(ORDER_ROWS);

      const rerun = run(['import', 'events', csv, '--map', mappingFile]);
      expect(rerun.stderr).not.toMatch(/error/i); // progress lines only
      expect(rerun.stdout).toContain(`resuming from row ${left.rowsDone + 1}: rows 1-${left.rowsDone} were committed by an earlier run`);
      expect(rerun.stdout).toMatch(/imported 20,000 rows \([\d,]+ new, [\d,]+ already present\), 0 bad rows in /);
      // The names of the rows the killed run committed are counted too: the checkpoint carries them.
      expect(rerun.stdout).toContain('event names imported (1 name):\n  20,000  Order Completed\n');
      expect(rerun.status).toBe(0);
      expect(fs.existsSync(checkpoint)).toBe(false);
      expect(fs.existsSync(`${csv}.bad-rows.jsonl`)).toBe(false);

      const after = await store.tableCounts();
      expect(after.events! - before.events!).toBe(ORDER_ROWS);
      // Exactly once, by message id: the ids the store holds are the ids of the file's rows, each one time.
      const mapping = compileImportMapping(EVENTS_MAPPING, mappingFile, 'events');
      const expected = Array.from({ length: ORDER_ROWS }, (_, i) => mapRow(mapping, orderRecord(i), sha256).messageId).sort();
      const stored: string[] = [];
      for (let c = 0; c < ORDER_CUSTOMERS; c++) {
        for (const event of await store.eventsOf(`o${c}`)) stored.push(event.messageId);
      }
      expect(stored.sort()).toEqual(expected);
      const first = (await store.eventsOf('o0', { limit: 1 }))[0];
      expect(first?.properties).toMatchObject({ order_number: 19_800, total: 300.5, products: [{ product_id: 'sku-11', price: 0 }] });
    });

    test('a JSONL events import keeps each event time as given and triggers nothing', async () => {
      const jsonl = file(
        'events.jsonl',
        [
          JSON.stringify({ user: { id: 'j1' }, type: 'Product Viewed', at: '2023-11-05T14:30:00.125+01:00', product: { sku: 'a', price: 10 } }),
          JSON.stringify({ user: { id: 'j1' }, type: 'Product Added', at: '2023-11-05T14:35:00Z', product: { sku: 'a', price: 10 } }),
          '',
          '{"user": {"id": "j1"}, "type": "Order Completed", "at": "2023-11-05', // line 4: cut off
          JSON.stringify({ user: { id: 'j2' }, type: 'Product Viewed', at: 'yesterday' }),
          '[1, 2]',
          JSON.stringify({ user: { id: 7 }, type: 'Signed Up', at: '2020-02-29' }),
          '',
        ].join('\n'),
      );
      const mapping = file(
        'events-jsonl.yaml',
        ['user_id: user.id', 'event: type', 'timestamp: at', 'properties:', '  product_id: product.sku', '  price: { column: product.price, type: number }', ''].join('\n'),
      );
      const result = run(['import', 'events', jsonl, '--map', mapping, '--report', path.join(dir, 'jsonl-report.jsonl')]);
      expect(result.stdout).toContain('imported 3 rows (3 new, 0 already present), 3 bad rows');
      expect(result.status).toBe(2);

      const j1 = await store.eventsOf('j1');
      expect(j1.map((e) => [e.name, new Date(e.timestamp).toISOString(), e.properties])).toEqual([
        ['Product Added', '2023-11-05T14:35:00.000Z', { product_id: 'a', price: 10 }],
        ['Product Viewed', '2023-11-05T13:30:00.125Z', { product_id: 'a', price: 10 }],
      ]);
      const seven = await store.eventsOf('7');
      expect(seven.map((e) => [e.name, e.timestamp])).toEqual([['Signed Up', Date.UTC(2020, 1, 29)]]);
      // History: stored as dispatched, so nothing is owed to Temporal and no flow starts.
      expect([...j1, ...seven].every((e) => e.dispatched)).toBe(true);
      expect((await store.listUndispatched(100)).filter((e) => e.messageId.startsWith('import:'))).toEqual([]);

      const report = reportLines(path.join(dir, 'jsonl-report.jsonl'));
      expect(report.map((r) => [r.row, r.line])).toEqual([
        [3, 4],
        [4, 5],
        [5, 6],
      ]);
      expect(report[0].reason).toMatch(/^not valid JSON: /);
      expect(report[1].reason).toContain('column "at": "yesterday" is not an ISO-8601 date');
      expect(report[2].reason).toBe('the line is an array, not a JSON object');
    });

    test("a shop's event export (space-separated UTC times, its own event names, empty category cells) maps into Segment events and the profile fields they compute", async () => {
      const csv = file('shop-events.csv', fs.readFileSync(path.join(SHOP_EXPORT, 'events.csv'), 'utf8'));
      const result = run(['import', 'events', csv, '--map', path.join(SHOP_EXPORT, 'mapping.yaml')]);
      expect(result.stdout).toContain('imported 30 rows (30 new, 0 already present), 0 bad rows in ');
      expect(result.stdout).toContain(['event names imported (4 names):', '  17  Product Viewed', '   7  Product Added', '   4  Order Completed', '   2  Product Removed'].join('\n'));
      expect(result.stderr).not.toContain('warning');
      expect(result.status).toBe(0);

      // The cart abandoner: times in UTC as written, the shop's names translated, an empty category left out.
      const events = await store.eventsOf('541312140');
      expect(events.map((e) => [new Date(e.timestamp).toISOString(), e.name])).toEqual([
        ['2019-11-03T20:02:55.000Z', 'Product Removed'],
        ['2019-11-03T20:01:37.000Z', 'Product Added'],
        ['2019-11-03T19:59:12.000Z', 'Product Viewed'],
        ['2019-11-03T19:58:00.000Z', 'Product Viewed'],
        ['2019-10-03T10:06:02.000Z', 'Product Removed'],
        ['2019-10-03T10:04:30.000Z', 'Product Added'],
        ['2019-10-03T10:03:45.000Z', 'Product Viewed'],
        ['2019-10-03T10:01:10.000Z', 'Product Added'],
        ['2019-10-03T10:00:00.000Z', 'Product Viewed'],
      ]);
      const firstView = events[events.length - 1]!;
      expect(firstView.properties).toEqual({
        product_id: '5100816',
        brand: 'xiaomi',
        price: 29.81,
        session_id: '7d1a2b3c-4d5e-4f60-8172-83949a5b6c02',
        products: [{ product_id: '5100816', brand: 'xiaomi', price: 29.81 }],
        total: 29.81,
      });
      expect(events.every((e) => e.dispatched)).toBe(true); // history: nothing owed to Temporal

      const computed = async (id: string) => (await store.getProfile(id))!.computed;
      // Bought a phone, then browsed a TV: the last category browsed is the TV's.
      expect(await computed('512475445')).toMatchObject({
        last_browsed_category: 'electronics.video.tv',
        orders_count: 1,
        total_spent: 1280.21,
        cart: [],
        last_order_products: [{ product_id: '1004237', category: 'electronics.smartphone', price: 1280.21, quantity: 1 }],
      });
      // Added two products, removed one, later added a third and removed the second: one notebook left.
      const abandoner = await computed('541312140');
      expect(abandoner).toMatchObject({ last_browsed_category: 'computers.notebook', cart: [{ product_id: '1307073', category: 'computers.notebook', price: 289.58, quantity: 1 }] });
      expect(abandoner.orders_count).toBeUndefined();
      // Two orders on different days.
      const repeat = await computed('555444333');
      expect(repeat).toMatchObject({ last_browsed_category: 'appliances.kitchen.refrigerators', orders_count: 2, cart: [] });
      expect(repeat.total_spent).toBeCloseTo(463.15 + 707.81, 6);
      // A browser whose last views had empty category cells: the last real category stays, the product has none.
      const browser = await computed('600000001');
      expect(browser).toMatchObject({ last_browsed_category: 'electronics.audio.headphone', last_viewed_product: { product_id: '17300353', price: 380.96 } });
      expect(browser.last_viewed_product).not.toHaveProperty('category');
      // Every category cell of this customer was empty: no category at all, rather than "".
      const buyer = await computed('700000002');
      expect(buyer).toMatchObject({ orders_count: 1, total_spent: 146.21 });
      expect(buyer).not.toHaveProperty('last_browsed_category');
    });

    test('a mapping that leaves every event name unknown imports, exits 0, and warns naming the names that arrived', async () => {
      // The same export under other customer ids, mapped without translating the shop's names.
      const csv = file('shop-raw.csv', fs.readFileSync(path.join(SHOP_EXPORT, 'events.csv'), 'utf8').replace(/,(\d{9}),/g, ',raw-$1,'));
      const mapping = file('shop-raw.yaml', ['user_id: user_id', 'event: event_type', `timestamp: { column: event_time, format: "yyyy-MM-dd HH:mm:ss 'UTC'" }`, 'properties:', '  category: category_code', ''].join('\n'));
      const result = run(['import', 'events', csv, '--map', mapping]);
      expect(result.stdout).toContain('imported 30 rows (30 new, 0 already present), 0 bad rows in ');
      expect(result.stdout).toContain(['event names imported (4 names):', '  17  view', '   7  cart', '   4  purchase', '   2  remove_from_cart'].join('\n'));
      expect(result.stderr).toContain(
        'warning: none of the 4 event names that arrived (view, cart, purchase, remove_from_cart) is used by a flow, segment or computed field (flows in flows/, segments in segments/): the 30 rows were stored, but nothing reads them.',
      );
      expect(result.stderr).toContain(`in ${mapping}: event: { column: event_type, map: { view: ..., cart: ..., purchase: ..., ... } }`);
      expect(result.status).toBe(0);
      const raw = (await store.getProfile('raw-512475445'))!.computed;
      expect(Object.keys(raw).filter((field) => !field.startsWith('_')).sort()).toEqual(['last_action_date']);
    });

    test('a time not in the declared format is a bad row naming column, value and format; unmapped: skip rows are counted, not bad', async () => {
      const csv = file(
        'shop-odd.csv',
        [
          'event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session',
          '2019-10-09 08:00:00 UTC,view,1,2,electronics.tablet,apple,10.5,odd-1,s1',
          '2019-10-09T08:01:00Z,cart,1,2,electronics.tablet,apple,10.5,odd-1,s1',
          '2019-10-09 08:02:00 UTC,wishlist,1,2,electronics.tablet,apple,10.5,odd-1,s1',
          '',
        ].join('\n'),
      );
      const mapping = file(
        'shop-odd.yaml',
        fs.readFileSync(path.join(SHOP_EXPORT, 'mapping.yaml'), 'utf8').replace('    purchase: Order Completed\n', '    purchase: Order Completed\n  unmapped: skip\n'),
      );
      const result = run(['import', 'events', csv, '--map', mapping]);
      expect(result.stdout).toContain('imported 1 row (1 new, 0 already present), 1 bad row, 1 skipped in ');
      expect(result.stdout).toContain('  1  column "event_type": "wishlist" is not in its map (unmapped: skip)');
      expect(result.status).toBe(2);
      expect(reportLines(`${csv}.bad-rows.jsonl`).map((r) => [r.row, r.line, r.reason])).toEqual([
        [2, 3, `column "event_time": "2019-10-09T08:01:00Z" does not match the date format "yyyy-MM-dd HH:mm:ss 'UTC'" (e.g. 2001-02-03 04:05:06 UTC)`],
      ]);
      expect((await store.eventsOf('odd-1')).map((e) => [e.name, new Date(e.timestamp).toISOString()])).toEqual([['Product Viewed', '2019-10-09T08:00:00.000Z']]);
    });

    test('an invalid mapping or a header without a mapped column writes nothing: exit 1 with file:line:col', async () => {
      const before = await store.tableCounts();
      const csv = file('few.csv', 'Customer ID,Email,LTV\nz1,z1@example.com,3\n');
      const invalid = file('invalid.yaml', 'user_id: Customer ID\ntraits:\n  ltv: { column: LTV, type: numbr }\n');
      const bad = run(['import', 'profiles', csv, '--map', invalid]);
      expect(bad.stderr).toContain(`${invalid}:3:29 (traits.ltv.type): error: unknown type "numbr" (did you mean "number"?)`);
      expect(bad.status).toBe(1);

      const typo = file('typo.yaml', 'user_id: Customer ID\ntraits:\n  email: Emial\n');
      const missing = run(['import', 'profiles', csv, '--map', typo]);
      expect(missing.stderr).toContain(`${typo}:3:10 (traits.email): error: column "Emial" is not in the header of ${csv}:1 (did you mean "Email"?)`);
      expect(missing.status).toBe(1);

      const noFile = run(['import', 'profiles', path.join(dir, 'nope.csv'), '--map', typo]);
      expect(noFile.stderr).toContain('nope.csv: error: no such file');
      expect(noFile.status).toBe(1);

      expect(await store.tableCounts()).toEqual(before);
      expect(fs.existsSync(`${csv}.bad-rows.jsonl`)).toBe(false);
      expect(fs.existsSync(`${csv}.import-checkpoint.json`)).toBe(false);
    });
  });
}

describe('reading rows: one malformed row costs that row only', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-rows-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function rows(name: string, text: string, format: SourceFormat = 'csv'): Promise<{ header: string[] | null; rows: SourceRow[] }> {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    const source = await openRowSource(file, format);
    const out: SourceRow[] = [];
    try {
      for await (const row of source.rows) out.push(row);
    } finally {
      source.close();
    }
    return { header: source.header, rows: out };
  }
  const summary = (list: SourceRow[]) => list.map((r) => (r.record ? [r.row, r.line, Object.values(r.record).join('|')] : [r.row, r.line, r.problem!.split(':')[0]]));

  test('a quote that never closes: its line is bad, the lines after it are read again', async () => {
    const { rows: read } = await rows('unclosed.csv', 'a,b\n1,"open\n2,x\n3,"y"\n');
    expect(summary(read)).toEqual([
      [1, 2, 'malformed CSV'],
      [2, 3, '2|x'],
      [3, 4, '3|y'],
    ]);
  });

  test('a quoted field spanning lines is one row, reported at its first line; CRLF and a BOM are handled', async () => {
    const { header, rows: read } = await rows('multi.csv', '\ufeff"a",b\r\n1,"two\r\nlines"\r\n\r\n2,"say ""hi"""\r\n');
    expect(header).toEqual(['a', 'b']);
    expect(summary(read)).toEqual([
      [1, 2, '1|two\nlines'],
      [2, 5, '2|say "hi"'],
    ]);
  });

  test('a multi-line row that does not parse gives up on its first line only', async () => {
    const { rows: read } = await rows('bad-multi.csv', 'a,b\n1,"x\n2,"y"z\n3,ok\n');
    expect(summary(read)).toEqual([
      [1, 2, 'malformed CSV'],
      [2, 3, 'malformed CSV'],
      [3, 4, '3|ok'],
    ]);
    expect(read[0]!.problem).toContain('spanning lines 2-3');
  });

  test(`a quote still open after ${MAX_LINES_PER_RECORD} lines is taken as a stray one`, async () => {
    const lines = ['a,b', '0,"stray', ...Array.from({ length: MAX_LINES_PER_RECORD + 5 }, (_, i) => `${i + 1},v`)];
    const { rows: read } = await rows('stray.csv', `${lines.join('\n')}\n`);
    expect(read).toHaveLength(MAX_LINES_PER_RECORD + 6);
    expect(read[0]!.problem).toContain(`not closed within ${MAX_LINES_PER_RECORD} lines`);
    expect(read.slice(1).every((r) => r.record !== undefined)).toBe(true);
    expect(read[read.length - 1]).toMatchObject({ row: MAX_LINES_PER_RECORD + 6, line: MAX_LINES_PER_RECORD + 7 });
  });

  test('one bad row among many quoted ones keeps every row number and line right', async () => {
    const lines = ['a,b'];
    for (let i = 1; i <= 600; i++) lines.push(i === 300 ? `${i},"bad"x` : `${i},"v ${i}"`);
    const { rows: read } = await rows('chunk.csv', `${lines.join('\n')}\n`);
    expect(read).toHaveLength(600);
    expect(read.filter((r) => r.problem).map((r) => [r.row, r.line])).toEqual([[300, 301]]);
    expect(read[598]!.record).toEqual({ a: '599', b: 'v 599' });
    expect(read.every((r, i) => r.row === i + 1 && r.line === i + 2)).toBe(true);
  });

  test('a row with more or fewer fields than the header is bad', async () => {
    const { rows: read } = await rows('fields.csv', 'a,b\n1,2,3\n4\n5,6\n');
    expect(read.map((r) => r.problem ?? 'ok')).toEqual([
      'malformed CSV: the row has 3 fields, the header has 2: a comma inside a value needs the value in double quotes',
      'malformed CSV: the row has 1 field, the header has 2',
      'ok',
    ]);
  });

  test('JSONL: blank lines are skipped, lines that are not JSON objects are bad rows', async () => {
    const { header, rows: read } = await rows('e.jsonl', '{"a":1}\n\n{"a":\n"text"\n{"a":{"b":2}}\n', 'jsonl');
    expect(header).toBeNull();
    expect(read.map((r) => [r.row, r.line, r.record ?? r.problem!.split(':')[0]])).toEqual([
      [1, 1, { a: 1 }],
      [2, 3, 'not valid JSON'],
      [3, 4, 'the line is a string, not a JSON object'],
      [4, 5, { a: { b: 2 } }],
    ]);
  });
});

test("the README's mapping for a shop export is the one the tests import", () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf("### A shop's event export, end to end"));
  const shown = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  const fixture = fs.readFileSync(path.join(SHOP_EXPORT, 'mapping.yaml'), 'utf8').replace(/^#.*\n/gm, '');
  expect(shown).toBe(fixture);
  expect(section).toContain(fs.readFileSync(path.join(SHOP_EXPORT, 'events.csv'), 'utf8').split('\n')[0]);
});

test('microflows import --help prints the usage; bad arguments fail with it', () => {
  const help = microflows(['import', '--help'], {});
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('usage: microflows import profiles|events <file.csv|file.jsonl> --map <mapping.yaml>');
  const bad = microflows(['import', 'customers', 'x.csv'], {});
  expect(bad.status).toBe(1);
  expect(bad.stderr).toContain('unknown kind "customers": import profiles or events');
  const listed = microflows(['--help'], {});
  expect(listed.stdout).toContain('import profiles|events <file> --map <yaml>');
});
