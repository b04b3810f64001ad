// `microflows suppressions list|add|remove|import|export` as users run them: the real CLI in a child process, on a
// SQLite store in a temporary MICROFLOWS_DATA_DIR (the store methods are contract-tested on both backends). An
// import is all or nothing and names the line and field at fault; an export imports back unchanged.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { addressHash } from '../../core/suppression';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { runCli, type CliRun } from '../support/cli-run';

let dataDir: string;
let store: KyselyStore;

const microflows = (args: string[]): Promise<CliRun> => runCli(args, { MICROFLOWS_DATA_DIR: dataDir });

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'microflows-suppressions-'));
  store = openSqliteStore(path.join(dataDir, 'microflows.sqlite'));
  await store.migrate();
});

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('add suppresses an address (marketing only or until a time when asked); list shows it; remove lifts it', async () => {
  const add = await microflows(['suppressions', 'add', 'Ana@Example.com']);
  expect(add.stderr).toBe('');
  expect(add.status).toBe(0);
  expect(await store.suppressionsFor('ana@example.com', Date.now())).toEqual([expect.objectContaining({ reason: 'manual', scope: 'all', source: 'cli', expiresAt: null })]);
  expect((await microflows(['suppressions', 'add', 'bo@example.com', '--reason', 'complaint', '--expires', '30d'])).status).toBe(0);
  expect(await store.suppressionsFor('bo@example.com', Date.now())).toEqual([expect.objectContaining({ reason: 'complaint', scope: 'marketing', expiresAt: expect.any(Number) })]);

  const list = await microflows(['suppressions', 'list']);
  expect(list.status).toBe(0);
  expect(list.stdout).toMatch(/ana@example\.com\s+[0-9a-f]{12}…\s+manual\s+all\s+cli/);
  const json = JSON.parse((await microflows(['suppressions', 'list', '--reason', 'complaint', '--json'])).stdout) as { entries: Array<{ address: string }> };
  expect(json.entries.map((e) => e.address)).toEqual(['bo@example.com']);

  const removed = await microflows(['suppressions', 'remove', addressHash('ana@example.com')]);
  expect(removed.status).toBe(0);
  expect(removed.stdout).toContain('Removed 1 entry');
  expect(await store.suppressionsFor('ana@example.com', Date.now())).toEqual([]);
  const none = await microflows(['suppressions', 'remove', 'ana@example.com']);
  expect(none.status).toBe(1);
  expect(none.stderr).toContain('no suppression entry for "ana@example.com"');
});

test('bad input exits 1 saying what to fix, and writes nothing', async () => {
  const before = await store.tableCounts();
  for (const [args, message] of [
    [['suppressions', 'add', 'not an address'], '<address>: '],
    [['suppressions', 'add', 'ok@example.com', '--reason', 'bored'], '--reason: unknown reason "bored"'],
    [['suppressions', 'add', 'ok@example.com', '--scope', 'some'], '--scope: unknown scope'],
    [['suppressions', 'add', 'ok@example.com', '--expires', 'soon'], '--expires: '],
    [['suppressions', 'add'], 'name the address to suppress'],
    [['suppressions', 'list', '--reason', 'bored'], '--reason: one of'],
    [['suppressions', 'frobnicate'], 'unknown suppressions command "frobnicate"'],
  ] as Array<[string[], string]>) {
    const run = await microflows(args);
    expect([args.join(' '), run.status]).toEqual([args.join(' '), 1]);
    expect(run.stderr).toContain(message);
  }
  expect(await store.tableCounts()).toEqual(before);
});

test('import reads an ESP-style CSV all or nothing, naming the line and field of a bad row; export imports back unchanged', async () => {
  const bad = path.join(dataDir, 'bad.csv');
  writeFileSync(bad, 'email,reason\ncy@example.com,hard_bounce\ndee@example.com,bored\n');
  const before = await store.tableCounts();
  const refused = await microflows(['suppressions', 'import', bad]);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toContain(`${bad}:3: reason: unknown reason "bored"`);
  expect(await store.tableCounts()).toEqual(before);

  const good = path.join(dataDir, 'good.csv');
  writeFileSync(good, 'email,reason,created_at\ncy@example.com,hard_bounce,2026-11-01T00:00:00Z\ndee@example.com,,\n');
  const imported = await microflows(['suppressions', 'import', good]);
  expect(imported.stderr).toBe('');
  expect(imported.stdout).toContain('Imported 2 entries');
  expect(await store.suppressionsFor('cy@example.com', Date.now())).toEqual([expect.objectContaining({ reason: 'hard_bounce', scope: 'all', source: 'import', createdAt: Date.UTC(2026, 10, 1) })]);
  expect(await store.suppressionsFor('dee@example.com', Date.now())).toEqual([expect.objectContaining({ reason: 'import', scope: 'all' })]);

  // An erased customer's entry is exported as its hash alone, and imported back so.
  await store.addSuppressions([{ addressHash: addressHash('gone@example.com'), address: null, reason: 'erased', scope: 'all', source: 'erasure', createdAt: Date.UTC(2026, 10, 2), expiresAt: null }]);
  const exported = path.join(dataDir, 'export.csv');
  expect((await microflows(['suppressions', 'export', exported])).status).toBe(0);
  const csv = readFileSync(exported, 'utf8');
  expect(csv.split('\n')[0]).toBe('address,address_hash,reason,scope,source,created_at,expires_at');
  expect(csv).toContain(`,${addressHash('gone@example.com')},erased,all,erasure,2026-11-02T00:00:00.000Z,`);
  const all = await store.exportSuppressions();
  await store.removeSuppressions({ addressHash: addressHash('gone@example.com') });
  await store.removeSuppressions({ addressHash: addressHash('cy@example.com') });
  expect((await microflows(['suppressions', 'import', exported])).status).toBe(0);
  expect(await store.exportSuppressions()).toEqual(all);
  expect((await microflows(['suppressions', 'export'])).stdout).toBe(csv);
});
