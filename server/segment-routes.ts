// The segment API: GET /api/segments (the report: sizes, overlap, too-small and unused segments, last sweep) and
// GET /api/segments/:id/members?after=<customerId>&limit=<n> (members by customer id, a page at a time).
import { Router } from 'express';
import type { SegmentEngine } from '../activities/segment-engine';
import type { FlowDefinition } from '../core/flow-types';
import { segmentReport } from '../core/segment-report';
import type { Store } from '../store/store';
import { BadRequestError, NotFoundError, asyncHandler } from './http-errors';

export interface SegmentRouteDeps {
  store: Store;
  segments: SegmentEngine;
  flows: () => FlowDefinition[];
  minSize: number;
}

const MAX_PAGE = 1000;

export function segmentRoutes(deps: SegmentRouteDeps): Router {
  const router = Router();

  router.get(
    '/api/segments',
    asyncHandler(async (_req, res) => {
      const { sizes, overlap } = await deps.store.segmentCounts();
      res.json(segmentReport({ segments: deps.segments.currentSegments(), sizes, overlap, states: await deps.store.segmentStates(), flows: deps.flows(), minSize: deps.minSize }));
    }),
  );

  router.get(
    '/api/segments/:id/members',
    asyncHandler(async (req, res) => {
      const id = req.params.id ?? '';
      if (!deps.segments.currentSegments().some((s) => s.id === id)) {
        throw new NotFoundError(`no segment "${id}": known segments are ${deps.segments.currentSegments().map((s) => s.id).join(', ') || '(none)'}`);
      }
      const rawLimit = req.query.limit;
      const limit = rawLimit === undefined ? 100 : Number(rawLimit);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new BadRequestError(`must be a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(rawLimit)}`, 'limit');
      const after = req.query.after;
      if (after !== undefined && typeof after !== 'string') throw new BadRequestError('give it once, as a customer id', 'after');
      const members = await deps.store.segmentMembers(id, { after: after ?? null, limit });
      res.json({ segment: id, members, next: members.length === limit ? members[members.length - 1]!.customerId : null });
    }),
  );

  return router;
}
