// `microflows keys create|list|revoke` as users run them: the real CLI in a child process, on a SQLite store in a
// temporary MICROFLOWS_DATA_DIR (the store methods themselves are contract-tested on both backends). A key's text is
// printed once and stored nowhere; bad input exits 1 with what to fix and changes nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KEY_PREFIX, keyDigest, type ApiKeyRecord, type KeyKind } from '../../core/api-keys';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { inPool } from '../support/pool';
import { runCli } from '../support/cli-run';


interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

let dataDir: string;
let store: KyselyStore;

function microflows(args: string[]): Promise<Run> {
  return runCli(args, { MICROFLOWS_DATA_DIR: dataDir });
}


/** The key a `create` printed, by its kind's prefix: 32 random bytes in base64url. */
function printedKey(kind: KeyKind, stdout: string): string {
  const match = new RegExp(`${KEY_PREFIX[kind]}[A-Za-z0-9_-]{43}`).exec(stdout);
  if (!match) throw new Error(`no ${kind} key in:\n${stdout}`);
  return match[0];
}

/** 8-character pieces of the part of a key its hint does not show. */
function secretPieces(key: string, hint: string): string[] {
  const secret = key.slice(hint.length - 1);
  return Array.from({ length: secret.length - 7 }, (_, i) => secret.slice(i, i + 8));
}

const stored = async (id: string): Promise<ApiKeyRecord | undefined> => (await store.listApiKeys()).find((r) => r.id === id);

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'microflows-keys-'));
  // The store the CLI opens by default: MICROFLOWS_DATA_DIR/microflows.sqlite.
  store = openSqliteStore(path.join(dataDir, 'microflows.sqlite'));
  await store.migrate();
});

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test('create prints each kind of key once, with its prefix, id and use; the store keeps its digest only', async () => {
  const admin = await microflows(['keys', 'create', '--kind', 'admin', '--name', 'ci deploy', '--scope', 'write,read']);
  expect(admin.stderr).toBe('');
  expect(admin.status).toBe(0);
  const adminKey = printedKey('admin', admin.stdout);
  const id = /Created admin key (key_[0-9a-f]{12})/.exec(admin.stdout)?.[1];
  expect(admin.stdout).toContain(`Authorization: Bearer ${adminKey}`);
  expect(admin.stdout).toContain('only time the key is shown');
  expect(await stored(id!)).toEqual({ id, kind: 'admin', name: 'ci deploy', scopes: ['read', 'write'], digest: keyDigest(adminKey), hint: `${adminKey.slice(0, 13)}…`, createdAt: expect.any(Number), revokedAt: null });

  const [client, server] = await inPool(
    [
      ['keys', 'create', '--kind', 'client', '--name', 'shop site'],
      ['keys', 'create', '--kind', 'server', '--name', 'backend', '--json'],
    ],
    2,
    microflows,
  );
  expect(client!.status).toBe(0);
  expect(client!.stdout).toMatch(/Segment write key in the browser/);
  const clientKey = printedKey('client', client!.stdout);
  expect(server!.status).toBe(0);
  const made = JSON.parse(server!.stdout) as { key: string; record: Record<string, unknown> };
  expect(made.key.startsWith(KEY_PREFIX.server)).toBe(true);
  expect(made.record).toEqual({ id: expect.stringMatching(/^key_/), kind: 'server', name: 'backend', scopes: [], hint: `${made.key.slice(0, 14)}…`, createdAt: expect.any(Number), revokedAt: null });
  const active = await store.activeApiKeys();
  expect(active.map((r) => r.digest)).toEqual(expect.arrayContaining([keyDigest(clientKey), keyDigest(made.key)]));
}, 120_000);

test('list shows every key (revoked ones too) without its text; revoke by id, hint or key, once', async () => {
  const [a, b] = await inPool(
    [
      ['keys', 'create', '--kind', 'server', '--name', 'to revoke', '--json'],
      ['keys', 'create', '--kind', 'client', '--name', 'leaked', '--json'],
    ],
    2,
    microflows,
  );
  const first = JSON.parse(a!.stdout) as { key: string; record: ApiKeyRecord };
  const leaked = JSON.parse(b!.stdout) as { key: string; record: ApiKeyRecord };

  const revoked = await microflows(['keys', 'revoke', first.record.id]);
  expect(revoked.stderr).toBe('');
  expect(revoked.status).toBe(0);
  expect(revoked.stdout).toContain(`Revoked server key ${first.record.id}`);
  const revokedAt = (await stored(first.record.id))!.revokedAt!;
  expect(revokedAt).toEqual(expect.any(Number));

  // Again, by its hint as listed: nothing changes, and it says when it was revoked.
  const again = await microflows(['keys', 'revoke', first.record.hint]);
  expect(again.status).toBe(0);
  expect(again.stdout).toContain(`was already revoked at ${new Date(revokedAt).toISOString()}`);
  expect((await stored(first.record.id))!.revokedAt).toBe(revokedAt);

  // A leaked key whose id nobody noted: revoked by its own text.
  const byText = await microflows(['keys', 'revoke', leaked.key]);
  expect(byText.status).toBe(0);
  expect((await stored(leaked.record.id))!.revokedAt).toEqual(expect.any(Number));

  const [table, json] = await inPool(
    [
      ['keys', 'list'],
      ['keys', 'list', '--json'],
    ],
    2,
    microflows,
  );
  expect(table!.status).toBe(0);
  const lines = table!.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^ID\s+KIND\s+NAME\s+SCOPES\s+HINT\s+CREATED\s+REVOKED$/);
  const row = lines.find((l) => l.startsWith(first.record.id))!;
  expect(row.split(/\s{2,}/)).toEqual([first.record.id, 'server', 'to revoke', '-', first.record.hint, new Date(first.record.createdAt).toISOString(), new Date(revokedAt).toISOString()]);
  expect(lines.find((l) => l.startsWith(leaked.record.id))).toBeDefined();

  const all = await store.listApiKeys();
  expect(JSON.parse(json!.stdout)).toEqual(all.map(({ digest: _digest, ...rest }) => rest));
  for (const output of [table!.stdout, json!.stdout]) {
    for (const record of all) expect(output).not.toContain(record.digest);
    for (const key of [first, leaked]) for (const piece of secretPieces(key.key, key.record.hint)) expect(output).not.toContain(piece);
  }
}, 120_000);

test('bad input exits 1 saying what to fix, and changes nothing', async () => {
  // The checks of kind, name and scopes themselves are core/api-keys' (and the key API's tests); these are the CLI's.
  const before = await store.listApiKeys();
  const counts = await store.tableCounts();

  const cases: Array<[string[], RegExp]> = [
    [['keys', 'create', '--kind', 'root', '--name', 'x'], /^--kind: unknown key kind "root": use admin, server, client/],
    [['keys', 'create', '--name', 'x'], /^--kind: say which key to make: admin, server, client/],
    [['keys', 'create', '--kind', 'server'], /^--name: give the key a name/],
    [['keys', 'create', '--kind', 'admin', '--name', 'x'], /^--scope: an admin key needs at least one scope: read, write, admin/],
    [['keys', 'create', '--kind', 'admin', '--name', 'x', '--scope', 'read,root'], /^--scope: unknown scope "root": use read, write, admin/],
    [['keys', 'create', '--kind', 'server', '--name', 'x', '--bogus'], /--bogus/],
    [['keys', 'revoke', 'key_nobody'], /^no key "key_nobody": microflows keys list shows every key's id/],
    [['keys', 'revoke', 'key_one', 'key_other'], /^unexpected argument "key_other": revoke one key at a time/],
    [['keys', 'rotate'], /^unknown keys command "rotate": create, list or revoke/],
  ];
  const runs = await inPool(
    cases.map(([args]) => args),
    2,
    microflows,
  );

  expect(runs.map((run, i) => ({ args: cases[i]![0].join(' '), status: run.status, stdout: run.stdout, stderrMatches: cases[i]![1].test(run.stderr) || run.stderr }))).toEqual(
    cases.map(([args]) => ({ args: args.join(' '), status: 1, stdout: '', stderrMatches: true })),
  );
  expect(await store.listApiKeys()).toEqual(before);
  expect(await store.tableCounts()).toEqual(counts);
}, 180_000);
