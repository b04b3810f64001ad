// The overlap and fatigue audit over HTTP (admin, read scope; the admin listener's middleware checks it):
// GET /api/audit?since=30d answers core/audit's report of the period that ends now.
import { Router } from 'express';
import { auditReport, parseAuditSince } from '../core/audit';
import { BadInputError } from '../core/errors';
import type { Store } from '../store/store';
import { asyncHandler } from './http-errors';

export interface AuditRouteDeps {
  store: Pick<Store, 'auditRows'>;
  /** The period's end; tests pin it. */
  now?: () => number;
}

export function auditRoutes(deps: AuditRouteDeps): Router {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const router = Router();

  router.get(
    '/api/audit',
    asyncHandler(async (req, res) => {
      const since = req.query.since;
      if (since !== undefined && typeof since !== 'string') throw new BadInputError('give one period, e.g. ?since=30d', 'since');
      const to = now();
      const period = { from: to - parseAuditSince(since), to };
      res.json(auditReport(await store.auditRows(period), period));
    }),
  );

  return router;
}
