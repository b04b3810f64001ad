// Who may call what. Admin keys (`Authorization: Bearer`, scopes read/write/admin) open /api; source keys open ingest
// as a browser-safe `client` or a trusted `server`. Keys live in the store as digests (`microflows keys`), plus two
// from the environment: MICROFLOWS_WRITE_KEY (a server key) and MICROFLOWS_ADMIN_KEY (an admin key with every scope).
// The store's keys are cached: a created key works within a second, a revoked one stops within REFRESH_MS.
import type { RequestHandler } from 'express';
import { ADMIN_SCOPES, keyDigest, scopeAllows, type AdminScope, type KeyKind, type SourceKind } from '../core/api-keys';
import { ForbiddenError, UnauthorizedError } from '../core/errors';
import type { Store } from '../store/store';

/** How stale the cached keys may get: a revoked key stops working within this. */
export const KEYS_REFRESH_MS = 5_000;
/** An unknown key reloads the keys at most this often, so guessing keys cannot hammer the store. */
const MISS_REFRESH_MS = 1_000;
/** Most key texts remembered between loads (only valid keys are). */
const SEEN_KEYS = 10_000;

export interface KnownKey {
  kind: KeyKind;
  scopes: readonly AdminScope[];
  /** The stored key's id, or `env:<VARIABLE>` for a key from the environment. */
  id: string;
}

/** An UnauthorizedError that asks for a Bearer credential (the WWW-Authenticate header says so). */
export class AdminUnauthorizedError extends UnauthorizedError {
  readonly scheme = 'Bearer';
}

const CREATE_ADMIN_KEY = 'create one with `microflows keys create --kind admin --name <who> --scope read` (or set MICROFLOWS_ADMIN_KEY)';

export class KeyRing {
  private stored = new Map<string, KnownKey>();
  private readonly fixed = new Map<string, KnownKey>();
  /** Key texts already looked up since the last load, so a busy key costs a map lookup, not a SHA-256 per call. */
  private seen = new Map<string, KnownKey>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly store: Pick<Store, 'activeApiKeys'> | null,
    keys: { writeKey?: string | null; adminKey?: string | null },
    private readonly clock: () => number = Date.now,
  ) {
    if (keys.writeKey) this.fixed.set(keyDigest(keys.writeKey), { kind: 'server', scopes: [], id: 'env:MICROFLOWS_WRITE_KEY' });
    if (keys.adminKey) this.fixed.set(keyDigest(keys.adminKey), { kind: 'admin', scopes: [...ADMIN_SCOPES], id: 'env:MICROFLOWS_ADMIN_KEY' });
  }

  /** The key `text` is, or undefined. Costs one SHA-256 and a map lookup while the cache is fresh. */
  async lookup(text: string): Promise<KnownKey | undefined> {
    if (this.store && this.clock() - this.loadedAt >= KEYS_REFRESH_MS) await this.refresh();
    const seen = this.seen.get(text);
    if (seen) return seen;
    const digest = keyDigest(text);
    let known = this.fixed.get(digest) ?? this.stored.get(digest);
    if (!known && this.store && this.clock() - this.loadedAt >= MISS_REFRESH_MS) {
      await this.refresh();
      known = this.stored.get(digest);
    }
    if (known) {
      if (this.seen.size >= SEEN_KEYS) this.seen.clear();
      this.seen.set(text, known);
    }
    return known;
  }

  /** The key whose SHA-256 digest this is: for a session that remembers a key's digest, never its text (the codec login). */
  async lookupDigest(digest: string): Promise<KnownKey | undefined> {
    if (this.store && this.clock() - this.loadedAt >= KEYS_REFRESH_MS) await this.refresh();
    return this.fixed.get(digest) ?? this.stored.get(digest);
  }

  /** Reloads the store's active keys now (one load at a time). */
  async refresh(): Promise<void> {
    if (!this.store) return;
    if (!this.loading) {
      const store = this.store;
      this.loading = (async () => {
        try {
          const next = new Map<string, KnownKey>();
          for (const record of await store.activeApiKeys()) next.set(record.digest, { kind: record.kind, scopes: record.scopes, id: record.id });
          this.stored = next;
          this.seen = new Map();
          this.loadedAt = this.clock();
        } finally {
          this.loading = null;
        }
      })();
    }
    await this.loading;
  }

  /** Whether any admin key can open /api (the environment's or an active stored one). */
  async hasAdminKey(): Promise<boolean> {
    if ([...this.fixed.values()].some((k) => k.kind === 'admin')) return true;
    await this.refresh();
    return [...this.stored.values()].some((k) => k.kind === 'admin');
  }

  /** The source key `text` is (its kind and id); UnauthorizedError when it is missing, unknown or not a source key. */
  async sourceKey(text: string | undefined, where: string): Promise<{ kind: SourceKind; id: string }> {
    if (text === undefined) throw new UnauthorizedError(`missing write key: send it as the username of HTTP Basic auth (empty password)${where}`);
    const known = await this.lookup(text);
    if (!known) throw new UnauthorizedError('wrong write key (unknown or revoked): use MICROFLOWS_WRITE_KEY or a source key from `microflows keys create --kind client|server`');
    if (known.kind === 'admin') throw new UnauthorizedError('this is an admin key: ingest takes a source key (MICROFLOWS_WRITE_KEY, or `microflows keys create --kind client|server`)');
    return { kind: known.kind, id: known.id };
  }
}

/** The scope a request needs: reading for GET and HEAD, writing otherwise, `admin` for managing keys. */
export function scopeFor(method: string, path: string): AdminScope {
  if (path === '/api/keys' || path.startsWith('/api/keys/')) return 'admin';
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
}

function bearerOf(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Every /api route but /api/health: a valid admin key with the scope the request needs. */
export function requireAdminKey(keys: KeyRing): RequestHandler {
  return (req, res, next) => {
    if (req.path === '/api/health') return next();
    const key = bearerOf(req.headers.authorization);
    if (key === undefined) {
      const basic = /^Basic\s/i.test(req.headers.authorization ?? '');
      return next(new AdminUnauthorizedError(`${basic ? 'the admin API does not take Basic auth (write keys are for ingest)' : 'missing admin key'}: send \`Authorization: Bearer <admin key>\`; ${CREATE_ADMIN_KEY}`));
    }
    keys.lookup(key).then(
      (known) => {
        if (!known) return next(new AdminUnauthorizedError(`unknown or revoked admin key; ${CREATE_ADMIN_KEY}`));
        if (known.kind !== 'admin') return next(new AdminUnauthorizedError(`this is a ${known.kind} source key, for ingest: the admin API takes an admin key; ${CREATE_ADMIN_KEY}`));
        const needed = scopeFor(req.method, req.path);
        if (!scopeAllows(known.scopes, needed)) {
          return next(new ForbiddenError(`${req.method} ${req.path} needs an admin key with the "${needed}" scope; this key has ${known.scopes.join(', ')}`));
        }
        // Which key did it, for logs that must say who asked (the erasure log) without saying more.
        res.locals.adminKeyId = known.id;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
