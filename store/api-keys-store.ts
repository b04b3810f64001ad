// The api_keys queries behind the Store's key methods: admin and source keys (core/api-keys), stored as their digest.
import type { Kysely, Selectable } from 'kysely';
import type { AdminScope, ApiKeyRecord, KeyKind } from '../core/api-keys';
import { BadInputError, MicroflowsError } from '../core/errors';
import { parseJson } from './rows';
import type { ApiKeysTable, Database } from './schema';

/** A key with this id or digest is stored already: a record is stored once (newApiKey makes a fresh id and key). */
export class ApiKeyConflictError extends MicroflowsError {
  override readonly status = 409;
  override readonly code = 'api_key_conflict';
  override name = 'ApiKeyConflictError';
}

/** The list entry of a key: its record without the digest, which nobody needs to see (and `keys list` never shows). */
export type ListedApiKey = Omit<ApiKeyRecord, 'digest'>;

export function listedApiKey(record: ApiKeyRecord): ListedApiKey {
  const { digest: _digest, ...listed } = record;
  return listed;
}

function toApiKeyRecord(row: Selectable<ApiKeysTable>): ApiKeyRecord {
  return {
    id: row.id,
    kind: row.kind as KeyKind,
    name: row.name,
    scopes: parseJson<AdminScope[]>(row.scopes),
    digest: row.digest,
    hint: row.hint,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

export async function createApiKey(db: Kysely<Database>, record: ApiKeyRecord): Promise<void> {
  // DO NOTHING rather than catching the unique violation: the two backends word that error differently.
  const result = await db
    .insertInto('api_keys')
    .values({
      id: record.id,
      kind: record.kind,
      name: record.name,
      scopes: JSON.stringify(record.scopes),
      digest: record.digest,
      hint: record.hint,
      created_at: record.createdAt,
      revoked_at: record.revokedAt,
    })
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst();
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) {
    throw new ApiKeyConflictError(`a key with id ${record.id} or the same digest is stored already: create a new key instead of storing one twice`);
  }
}

/** Newest first, revoked ones too. */
export async function listApiKeys(db: Kysely<Database>): Promise<ApiKeyRecord[]> {
  const rows = await db.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  return rows.map(toApiKeyRecord);
}

export async function activeApiKeys(db: Kysely<Database>): Promise<ApiKeyRecord[]> {
  const rows = await db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  return rows.map(toApiKeyRecord);
}

/**
 * Revokes the key whose id is `idOrHint`, or else whose hint it is (as listed, with or without the closing "…").
 * Revoking again keeps the first time. Undefined when no key matches; a hint that several keys share is refused.
 */
export async function revokeApiKey(db: Kysely<Database>, idOrHint: string, at: number): Promise<ApiKeyRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    let rows = await trx.selectFrom('api_keys').selectAll().where('id', '=', idOrHint).execute();
    if (rows.length === 0 && idOrHint !== '') {
      const hint = idOrHint.endsWith('…') ? idOrHint : `${idOrHint}…`;
      rows = await trx.selectFrom('api_keys').selectAll().where('hint', '=', hint).orderBy('id').execute();
    }
    if (rows.length === 0) return undefined;
    if (rows.length > 1) {
      throw new BadInputError(`the hint ${idOrHint} is shared by keys ${rows.map((r) => r.id).join(', ')}: revoke by id`, 'id');
    }
    const id = rows[0]!.id;
    await trx.updateTable('api_keys').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).execute();
    const row = await trx.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return toApiKeyRecord(row);
  });
}
