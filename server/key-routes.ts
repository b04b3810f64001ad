// The key API (admin scope; the admin listener's middleware checks it): GET /api/keys lists every key (never its
// text), POST /api/keys { kind, name, scopes? } makes one and answers its text once, DELETE /api/keys/:id revokes one.
import express, { Router, type RequestHandler } from 'express';
import { newApiKey, type AdminScope, type KeyKind } from '../core/api-keys';
import { BadInputError, PayloadTooLargeError } from '../core/errors';
import { parseStrictJson } from '../core/strict-json';
import { listedApiKey } from '../store/api-keys-store';
import type { Store } from '../store/store';
import { NotFoundError, asyncHandler } from './http-errors';

export interface KeyRouteDeps {
  store: Pick<Store, 'createApiKey' | 'listApiKeys' | 'revokeApiKey'>;
  /** Creation and revocation times; tests pin it. */
  now?: () => number;
}

/** A key request is three short fields; anything near this is not one. */
const BODY_LIMIT_BYTES = 4096;
const FIELDS = ['kind', 'name', 'scopes'];

/** The body as bytes whatever its Content-Type, with body-parser's errors worded as ours (a 400, not a 500). */
function readKeyBody(): RequestHandler {
  const raw = express.raw({ type: () => true, limit: BODY_LIMIT_BYTES });
  return (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err === undefined || err === null) return next();
      const e = err as { type?: string; status?: number; message?: string };
      if (e.type === 'entity.too.large') return next(new PayloadTooLargeError(`the body is over ${BODY_LIMIT_BYTES} bytes: send { "kind", "name", "scopes" } only`));
      if (typeof e.status === 'number' && e.status < 500) return next(new BadInputError(`could not read the body: ${e.message ?? e.type}`));
      next(err);
    });
  };
}

/** `{ kind, name, scopes? }`, checked for shape here and for meaning by newApiKey. */
function keyRequest(bytes: Buffer): { kind: KeyKind; name: string; scopes: AdminScope[] } {
  if (bytes.length === 0) throw new BadInputError('send a JSON object: { "kind": "admin" | "server" | "client", "name": "…", "scopes": ["read"] }');
  const body = parseStrictJson(bytes);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadInputError('send a JSON object: { "kind": "admin" | "server" | "client", "name": "…", "scopes": ["read"] }');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((k) => !FIELDS.includes(k));
  if (unknown !== undefined) throw new BadInputError(`unknown field: a key request has ${FIELDS.join(', ')}`, unknown);
  const { kind, name, scopes = [] } = fields;
  if (typeof kind !== 'string') throw new BadInputError('give the kind of key as a string: admin, server or client', 'kind');
  if (typeof name !== 'string') throw new BadInputError('give the key a name (a string: who or what uses it)', 'name');
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string')) throw new BadInputError('give the scopes as a list of strings, e.g. ["read"]', 'scopes');
  return { kind: kind as KeyKind, name, scopes: scopes as AdminScope[] };
}

export function keyRoutes(deps: KeyRouteDeps): Router {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const router = Router();

  // A created key's text is in one answer only: no cache, proxy or browser history may keep a copy.
  router.use('/api/keys', (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  router.get(
    '/api/keys',
    asyncHandler(async (_req, res) => {
      res.json({ keys: (await store.listApiKeys()).map(listedApiKey) });
    }),
  );

  router.post(
    '/api/keys',
    readKeyBody(),
    asyncHandler(async (req, res) => {
      const asked = keyRequest(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
      const { key, record } = newApiKey(asked.kind, asked.name, asked.scopes, now());
      await store.createApiKey(record);
      res.status(201).json({ key, record: listedApiKey(record) });
    }),
  );

  router.delete(
    '/api/keys/:id',
    asyncHandler(async (req, res) => {
      const id = req.params.id ?? '';
      const revoked = await store.revokeApiKey(id, now());
      if (!revoked) throw new NotFoundError(`no key "${id}": GET /api/keys lists every key's id`);
      res.json(listedApiKey(revoked));
    }),
  );

  return router;
}
