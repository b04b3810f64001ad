// The consent API (admin, read scope; the admin listener's middleware checks it): GET /api/customers/:id/consent
// answers the customer's consent as it stands and the trail of every change (value, source, time, event), oldest first.
import { Router } from 'express';
import type { Store } from '../store/store';
import { NotFoundError, asyncHandler } from './http-errors';

export interface ConsentRouteDeps {
  store: Pick<Store, 'resolveCustomerId' | 'getProfile' | 'consentTrail'>;
}

export function consentRoutes(deps: ConsentRouteDeps): Router {
  const { store } = deps;
  const router = Router();

  router.get(
    '/api/customers/:id/consent',
    asyncHandler(async (req, res) => {
      const requested = req.params.id ?? '';
      // An anonymousId or alias names its customer, as on /api/profiles/:id.
      const customerId = await store.resolveCustomerId(requested);
      const [profile, trail] = await Promise.all([store.getProfile(customerId), store.consentTrail(customerId)]);
      if (!profile && trail.length === 0) throw new NotFoundError(`no customer ${requested}: no event has named this userId or anonymousId`);
      res.json({ customerId, consent: profile?.consent ?? {}, trail });
    }),
  );

  return router;
}
