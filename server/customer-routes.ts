// The customer data API (admin keys; the admin listener's middleware checks the scope): DELETE /api/customers/:id
// erases a customer and terminates their workflows, GET /api/customers/:id/export downloads everything held about
// them as one JSON document, GET /api/erasures lists the erasure log (which names no one).
import { Router, type Response } from 'express';
import { MicroflowsError } from '../core/errors';
import type { Store } from '../store/store';
import { asyncHandler } from './http-errors';
import { eraseCustomerEverywhere, type ErasureWiring, type WorkflowTerminator } from './customer-erasure';

/** This server was built without a Temporal client: erasing here would leave the customer's runs going. */
export class ErasureNotWiredError extends MicroflowsError {
  override readonly status = 503;
  override readonly code = 'erasure_unavailable';
  override name = 'ErasureNotWiredError';
}

export interface CustomerRouteDeps {
  store: Pick<Store, 'eraseCustomer' | 'exportCustomer' | 'listErasures' | 'resolveCustomerId'>;
  /** Terminates the erased customer's workflows; without it DELETE answers 503. */
  workflows?: WorkflowTerminator;
  arbiterWorkflowId?: ErasureWiring['arbiterWorkflowId'];
  dataKeySubject?: ErasureWiring['dataKeySubject'];
  forgetDataKey?: ErasureWiring['forgetDataKey'];
  now?: () => number;
}

/** requireAdminKey (server/auth.ts) notes which key let the request in; the erasure log records it. */
function requesterOf(res: Response): string {
  const id = (res.locals as { adminKeyId?: unknown }).adminKeyId;
  return typeof id === 'string' ? id : 'api';
}

export function customerRoutes(deps: CustomerRouteDeps): Router {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const router = Router();

  // Personal data, and the answer to an erasure: no cache, proxy or browser history may keep a copy.
  router.use(['/api/customers', '/api/erasures'], (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  router.delete(
    '/api/customers/:id',
    asyncHandler(async (req, res) => {
      if (!deps.workflows) {
        throw new ErasureNotWiredError('this server has no Temporal client to terminate the customer\'s runs with: erase with `microflows customers erase <id> --yes`, or through a server started by `microflows start` or `microflows server`');
      }
      const report = await eraseCustomerEverywhere(
        {
          store,
          workflows: deps.workflows,
          ...(deps.arbiterWorkflowId ? { arbiterWorkflowId: deps.arbiterWorkflowId } : {}),
          ...(deps.dataKeySubject ? { dataKeySubject: deps.dataKeySubject } : {}),
          ...(deps.forgetDataKey ? { forgetDataKey: deps.forgetDataKey } : {}),
        },
        req.params.id ?? '',
        requesterOf(res),
        now(),
      );
      // Counts and the log's id only: the answer names no one, as the log does not.
      res.json(report);
    }),
  );

  router.get(
    '/api/customers/:id/export',
    asyncHandler(async (req, res) => {
      const document = await store.exportCustomer(req.params.id ?? '', { at: now() });
      res.set('Content-Disposition', 'attachment; filename="customer-export.json"');
      res.type('application/json').send(`${JSON.stringify(document, null, 2)}\n`);
    }),
  );

  router.get(
    '/api/erasures',
    asyncHandler(async (_req, res) => {
      res.json({ erasures: await store.listErasures() });
    }),
  );

  return router;
}
