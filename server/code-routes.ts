// The offer code pools over HTTP (admin, read scope; the admin listener's middleware checks it): GET /api/codes answers
// each pool's figures (total, claimed, remaining, low), the same as `microflows codes list --json`.
import { Router } from 'express';
import type { Store } from '../store/store';
import { asyncHandler } from './http-errors';

export interface CodeRouteDeps {
  store: Pick<Store, 'offerCodePools'>;
}

export function codeRoutes(deps: CodeRouteDeps): Router {
  const router = Router();
  router.get(
    '/api/codes',
    asyncHandler(async (_req, res) => {
      res.json({ pools: await deps.store.offerCodePools() });
    }),
  );
  return router;
}
