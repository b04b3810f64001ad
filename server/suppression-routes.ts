// The suppression list's admin API (core/suppression; the admin listener's middleware checks the key and scope):
// GET /api/suppressions lists entries a page at a time, POST /api/suppressions adds one entry or many (all or
// nothing), DELETE /api/suppressions/:address removes an address's entries (by the address or its hash).
import express, { Router, type RequestHandler } from 'express';
import { BadInputError, PayloadTooLargeError } from '../core/errors';
import { parseStrictJson } from '../core/strict-json';
import { SUPPRESSION_REASONS, hashOfAddressOrHash, type SuppressionReason } from '../core/suppression';
import type { Store } from '../store/store';
import { NotFoundError, asyncHandler } from './http-errors';

export interface SuppressionRouteDeps {
  store: Pick<Store, 'listSuppressions' | 'importSuppressions' | 'removeSuppressions'>;
  /** The time an entry given without created_at gets; tests pin it. */
  now?: () => number;
}

/** Room for a few thousand entries per request; a larger list goes through `microflows suppressions import`. */
const BODY_LIMIT_BYTES = 1024 * 1024;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** The body as bytes whatever its Content-Type, with body-parser's errors worded as ours (a 400 or 413, not a 500). */
function readBody(): RequestHandler {
  const raw = express.raw({ type: () => true, limit: BODY_LIMIT_BYTES });
  return (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err === undefined || err === null) return next();
      const e = err as { type?: string; status?: number; message?: string };
      if (e.type === 'entity.too.large') return next(new PayloadTooLargeError(`the body is over ${BODY_LIMIT_BYTES} bytes: send fewer entries per request, or use microflows suppressions import`));
      if (typeof e.status === 'number' && e.status < 500) return next(new BadInputError(`could not read the body: ${e.message ?? e.type}`));
      next(err);
    });
  };
}

function reasonQuery(value: unknown, field: string): SuppressionReason | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || !(SUPPRESSION_REASONS as readonly string[]).includes(value)) {
    throw new BadInputError(`one of ${SUPPRESSION_REASONS.join(', ')}`, field);
  }
  return value as SuppressionReason;
}

function limitQuery(value: unknown): number {
  if (value === undefined || value === '') return DEFAULT_PAGE;
  const limit = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE)) throw new BadInputError(`a whole number from 1 to ${MAX_PAGE}`, 'limit');
  return limit;
}

export function suppressionRoutes(deps: SuppressionRouteDeps): Router {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const router = Router();

  router.get(
    '/api/suppressions',
    asyncHandler(async (req, res) => {
      const after = typeof req.query.after === 'string' && req.query.after !== '' ? req.query.after : null;
      res.json(await store.listSuppressions({ reason: reasonQuery(req.query.reason, 'reason'), after, limit: limitQuery(req.query.limit) }));
    }),
  );

  // One entry ({ "address": … }) or a list of them; each field as in core/suppression entryFromInput, reason `manual`
  // when not given. A bad entry is answered 400 naming it (`[2].reason`) and none is written.
  router.post(
    '/api/suppressions',
    readBody(),
    asyncHandler(async (req, res) => {
      const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (bytes.length === 0) throw new BadInputError('send a JSON entry { "address": "…", "reason": "manual", "scope": "all" } or a list of them');
      const body = parseStrictJson(bytes);
      const many = Array.isArray(body);
      const rows = many ? (body as unknown[]) : [body];
      if (rows.length === 0) throw new BadInputError('the list is empty: send at least one entry');
      const added = await store.importSuppressions(rows, { reason: 'manual', source: 'api', now: now() }, (index, field) => (many ? `[${index}].${field}` : field));
      res.status(201).json({ added });
    }),
  );

  router.delete(
    '/api/suppressions/:address',
    asyncHandler(async (req, res) => {
      const given = req.params.address ?? '';
      if (given.trim() === '') throw new BadInputError('name the address (or its address_hash) whose entries to remove', 'address');
      const reason = reasonQuery(req.query.reason, 'reason');
      const removed = await store.removeSuppressions({ addressHash: hashOfAddressOrHash(given), ...(reason ? { reason } : {}) });
      if (removed === 0) throw new NotFoundError(`no suppression entry${reason ? ` of reason ${reason}` : ''} for "${given}": GET /api/suppressions lists them`);
      res.json({ removed });
    }),
  );

  return router;
}
