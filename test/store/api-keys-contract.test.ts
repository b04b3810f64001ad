// The API-key part of the store contract, on SQLite and PostgreSQL: keys made by core/api-keys are stored as their
// digest only, listed newest first (revoked ones too), revoked once (a second revoke keeps the first time), and the
// active list leaves revoked keys out. Each suite shares one database, so each test reads back its own keys only.
import { readFileSync, existsSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { keyDigest, newApiKey, type AdminScope, type ApiKeyRecord, type KeyKind } from '../../core/api-keys';
import { isMicroflowsError } from '../../core/errors';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { storeBackends } from '../support/store-backends';

const NOW = 1_700_000_000_000;
let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

function made(kind: KeyKind, scopes: AdminScope[] = [], at = NOW): { key: string; record: ApiKeyRecord } {
  return newApiKey(kind, unique(`${kind} key`), kind === 'admin' ? scopes : [], at);
}

/** The stored row itself, read past the store with the backend's own driver. */
async function storedRow(env: Record<string, string>, id: string): Promise<Record<string, unknown> | undefined> {
  if (env.DATABASE_URL) {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    try {
      return (await client.query<Record<string, unknown>>('select * from api_keys where id = $1', [id])).rows[0];
    } finally {
      await client.end();
    }
  }
  const db = new BetterSqlite3(env.MICROFLOWS_SQLITE_PATH!, { readonly: true });
  try {
    return db.prepare('select * from api_keys where id = ?').get(id) as Record<string, unknown> | undefined;
  } finally {
    db.close();
  }
}

const mine = (records: ApiKeyRecord[], ids: string[]) => records.filter((r) => ids.includes(r.id));

/** 8-character pieces of what the hint does not show: stored anywhere, they would give part of the secret away. */
function secretPieces(key: string, hint: string): string[] {
  const secret = key.slice(hint.length - 1);
  return Array.from({ length: secret.length - 7 }, (_, i) => secret.slice(i, i + 8));
}

for (const backend of storeBackends('api-keys-contract')) {
  backend.describe(`API keys in the store: ${backend.name}`, () => {
    let store: KyselyStore;

    beforeAll(async () => {
      store = await backend.open();
    });

    afterAll(() => backend.dispose());

    it('stores a key and lists it back as made, newest first, revoked ones too', async () => {
      const older = made('admin', ['read', 'write'], NOW + 1);
      const newer = made('client', [], NOW + 2);
      const revoked = made('server', [], NOW + 3);
      for (const { record } of [older, newer, revoked]) await store.createApiKey(record);
      const gone = await store.revokeApiKey(revoked.record.id, NOW + 10);

      const ids = [older, newer, revoked].map((k) => k.record.id);
      expect(mine(await store.listApiKeys(), ids)).toEqual([{ ...revoked.record, revokedAt: NOW + 10 }, newer.record, older.record]);
      expect(gone).toEqual({ ...revoked.record, revokedAt: NOW + 10 });
      expect(older.record.scopes).toEqual(['read', 'write']);
      expect((await store.tableCounts()).api_keys).toBeGreaterThanOrEqual(3);
    });

    it('the active keys leave revoked ones out, and a revoked key never comes back', async () => {
      const kept = made('server');
      const dropped = made('admin', ['admin']);
      await store.createApiKey(kept.record);
      await store.createApiKey(dropped.record);
      const ids = [kept.record.id, dropped.record.id];
      expect(mine(await store.activeApiKeys(), ids).map((r) => r.id).sort()).toEqual([...ids].sort());

      await store.revokeApiKey(dropped.record.id, NOW + 5);

      expect(mine(await store.activeApiKeys(), ids)).toEqual([kept.record]);
      expect((await store.activeApiKeys()).every((r) => r.revokedAt === null)).toBe(true);
      expect((await store.activeApiKeys()).some((r) => r.digest === keyDigest(dropped.key))).toBe(false);
    });

    it('revoking twice keeps the first time; by the listed hint (with or without "…") as by id', async () => {
      const byHint = made('client');
      const bare = made('server');
      await store.createApiKey(byHint.record);
      await store.createApiKey(bare.record);

      expect(await store.revokeApiKey(byHint.record.hint, NOW + 100)).toMatchObject({ id: byHint.record.id, revokedAt: NOW + 100 });
      expect(await store.revokeApiKey(byHint.record.id, NOW + 200)).toMatchObject({ id: byHint.record.id, revokedAt: NOW + 100 });
      expect(await store.revokeApiKey(bare.record.hint.replace(/…$/, ''), NOW + 300)).toMatchObject({ id: bare.record.id, revokedAt: NOW + 300 });
      expect(mine(await store.listApiKeys(), [byHint.record.id]).map((r) => r.revokedAt)).toEqual([NOW + 100]);
    });

    it('an unknown id, or an empty one, revokes nothing', async () => {
      const key = made('server');
      await store.createApiKey(key.record);
      const before = await store.listApiKeys();

      expect(await store.revokeApiKey(unique('key_nobody'), NOW)).toBeUndefined();
      expect(await store.revokeApiKey('', NOW)).toBeUndefined();
      expect(await store.revokeApiKey('…', NOW)).toBeUndefined();

      expect(await store.listApiKeys()).toEqual(before);
    });

    it('a hint two keys share is refused, naming both ids, and revokes neither', async () => {
      const hint = `mf_client_${unique('x')}…`;
      const one = { ...made('client').record, hint };
      const two = { ...made('client').record, hint };
      await store.createApiKey(one);
      await store.createApiKey(two);

      const refused = await store.revokeApiKey(hint, NOW).catch((err: unknown) => err);

      expect(isMicroflowsError(refused)).toBe(true);
      expect(refused).toMatchObject({ status: 400, field: 'id' });
      expect((refused as Error).message).toContain(one.id);
      expect((refused as Error).message).toContain(two.id);
      expect(mine(await store.listApiKeys(), [one.id, two.id]).map((r) => r.revokedAt)).toEqual([null, null]);
    });

    it('the digest is unique: a second record with the same digest (or id) is refused (409) and stores nothing', async () => {
      const first = made('admin', ['read']);
      await store.createApiKey(first.record);
      const before = await store.tableCounts();

      const sameDigest = { ...made('server').record, digest: first.record.digest };
      const sameId = { ...made('server').record, id: first.record.id };
      for (const record of [sameDigest, sameId, first.record]) {
        const refused = await store.createApiKey(record).catch((err: unknown) => err);
        expect(refused).toMatchObject({ status: 409, code: 'api_key_conflict' });
      }

      expect(await store.tableCounts()).toEqual(before);
      expect(mine(await store.listApiKeys(), [first.record.id])).toEqual([first.record]);
      expect((await store.listApiKeys()).some((r) => r.id === sameDigest.id)).toBe(false);
    });

    it('the row holds the digest and the hint, never the key text nor a piece of its secret', async () => {
      const key = made('admin', ['admin']);
      await store.createApiKey(key.record);

      const row = await storedRow(backend.env, key.record.id);

      expect(row).toBeDefined();
      const values = Object.values(row!).map(String);
      expect(values).toContain(keyDigest(key.key));
      for (const value of values) {
        expect(value).not.toContain(key.key);
        for (const piece of secretPieces(key.key, key.record.hint)) expect(value).not.toContain(piece);
      }
    });

    if (backend.name === 'sqlite') {
      it('on SQLite, neither the database file nor its WAL holds a piece of the secret', async () => {
        const key = made('server');
        await store.createApiKey(key.record);
        await store.revokeApiKey(key.record.id, NOW);
        // A second connection sees the committed row: the bytes are on disk (in the file or the WAL) by now.
        const reader = openSqliteStore(backend.env.MICROFLOWS_SQLITE_PATH!);
        try {
          expect((await reader.listApiKeys()).some((r) => r.id === key.record.id)).toBe(true);
        } finally {
          await reader.close();
        }

        const file = backend.env.MICROFLOWS_SQLITE_PATH!;
        const bytes = [file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f).toString('latin1'));
        expect(bytes.some((b) => b.includes(key.record.digest))).toBe(true);
        for (const piece of secretPieces(key.key, key.record.hint)) expect(bytes.some((b) => b.includes(piece))).toBe(false);
      });
    }
  });
}
