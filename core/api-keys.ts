// API keys: their kinds, scopes, text format and stored digest. Admin keys (sent as `Authorization: Bearer`) reach
// /api with scopes; source keys (Segment's write key, Basic auth or `writeKey` in the body) reach ingest as a
// browser-safe `client` or a trusted `server`. Keys are random (256 bits), so a SHA-256 digest is what is stored and
// looked up: a slow password hash buys nothing against a key nobody can guess, and would cost every ingest call.
import { createHash, randomBytes } from 'node:crypto';
import { BadInputError } from './errors';

export const ADMIN_SCOPES = ['read', 'write', 'admin'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export const KEY_KINDS = ['admin', 'server', 'client'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];
/** Source keys send events. */
export type SourceKind = Exclude<KeyKind, 'admin'>;

/** The text every key of a kind starts with, so a leaked key says what it is (and secret scanners can find it). */
export const KEY_PREFIX: Record<KeyKind, string> = { admin: 'mf_admin_', server: 'mf_server_', client: 'mf_client_' };

/** A key as stored and listed: never the key itself. */
export interface ApiKeyRecord {
  /** Public id, for `keys list` and `keys revoke`. */
  id: string;
  kind: KeyKind;
  name: string;
  /** Admin keys: what they may do; source keys: empty. */
  scopes: AdminScope[];
  /** SHA-256 of the key text, hex. */
  digest: string;
  /** The key's first characters, to tell keys apart in a list. */
  hint: string;
  createdAt: number;
  revokedAt: number | null;
}

export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key of `kind`: its text (shown once) and the record to store. */
export function newApiKey(kind: KeyKind, name: string, scopes: AdminScope[], at: number): { key: string; record: ApiKeyRecord } {
  if (!(KEY_KINDS as readonly string[]).includes(kind)) throw new BadInputError(`unknown key kind ${JSON.stringify(kind)}: use ${KEY_KINDS.join(', ')}`, 'kind');
  const trimmed = name.trim();
  if (trimmed === '' || trimmed.length > 100) throw new BadInputError('give the key a name of 1 to 100 characters (who or what uses it)', 'name');
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw new BadInputError('the name holds a control character (a line break, a tab, an escape): use printable text', 'name');
  const checked = kind === 'admin' ? normalizeScopes(scopes) : [];
  if (kind !== 'admin' && scopes.length > 0) throw new BadInputError('only admin keys have scopes; source keys are client or server', 'scopes');
  const key = `${KEY_PREFIX[kind]}${randomBytes(32).toString('base64url')}`;
  return {
    key,
    record: { id: `key_${randomBytes(6).toString('hex')}`, kind, name: trimmed, scopes: checked, digest: keyDigest(key), hint: `${key.slice(0, KEY_PREFIX[kind].length + 4)}…`, createdAt: at, revokedAt: null },
  };
}

/** Scopes as given, checked and in canonical order; at least one. */
export function normalizeScopes(scopes: readonly string[]): AdminScope[] {
  if (scopes.length === 0) throw new BadInputError(`an admin key needs at least one scope: ${ADMIN_SCOPES.join(', ')}`, 'scopes');
  for (const scope of scopes) {
    if (!(ADMIN_SCOPES as readonly string[]).includes(scope)) throw new BadInputError(`unknown scope ${JSON.stringify(scope)}: use ${ADMIN_SCOPES.join(', ')}`, 'scopes');
  }
  return ADMIN_SCOPES.filter((scope) => scopes.includes(scope));
}

/** `admin` may do everything; `write` includes `read`. */
export function scopeAllows(scopes: readonly AdminScope[], needed: AdminScope): boolean {
  if (scopes.includes('admin')) return true;
  if (needed === 'read') return scopes.includes('read') || scopes.includes('write');
  return scopes.includes(needed);
}
