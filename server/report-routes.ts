// The flow reports over HTTP (admin, read scope; the admin listener's middleware checks it): GET /api/reports/flows and
// GET /api/reports/flows/:flowId, ?since=30d&format=json|csv, answer core/flow-report's report of the period that ends
// now. They read the counters as the runtime last folded the events into them (every MICROFLOWS_METRICS_EVERY);
// `microflows report` shares loadFlowReport and folds first.
import { Router, type Request, type Response } from 'express';
import { parseAuditSince } from '../core/audit';
import { BadInputError } from '../core/errors';
import type { FlowDefinition } from '../core/flow-types';
import { flowReport, flowReportCsv, type FlowsReport, type ReportExperiment } from '../core/flow-report';
import { DAY_MS } from '../store/metrics-store';
import type { Store } from '../store/store';
import { asyncHandler, NotFoundError } from './http-errors';

export type ReportStore = Pick<Store, 'metricsOf' | 'latestFlowVersions' | 'getFlowVersion' | 'experimentsOf' | 'assignmentCounts'>;

export interface ReportRouteDeps {
  store: ReportStore;
  /** The period's end; tests pin it. */
  now?: () => number;
}

/** What the report reads about: every flow registered or counted. */
async function knownFlowIds(store: ReportStore, registered: FlowDefinition[]): Promise<string[]> {
  const ids = new Set(registered.map((f) => f.id));
  for (const row of await store.metricsOf({})) ids.add(row.flowId);
  return [...ids].sort();
}

/**
 * The report of one flow (or of every flow) over the UTC days from `to − sinceMs` through `to`: the counters of those
 * days, the definitions of the versions they name, and the experiments with their counts of every day. A flow neither
 * registered nor counted is a NotFoundError listing the known ones.
 */
export async function loadFlowReport(store: ReportStore, query: { flowId?: string; sinceMs: number; to: number }): Promise<FlowsReport> {
  const registered = await store.latestFlowVersions();
  const since = query.to - query.sinceMs;
  const scope = query.flowId === undefined ? {} : { flowId: query.flowId };
  const lifetimeCounters = await store.metricsOf(scope);
  if (query.flowId !== undefined && !registered.some((f) => f.id === query.flowId) && lifetimeCounters.length === 0) {
    const known = await knownFlowIds(store, registered);
    throw new NotFoundError(`no flow "${query.flowId}": ${known.length === 0 ? 'no flow is registered or counted yet' : `known flows are ${known.join(', ')}`}`);
  }
  const counters = await store.metricsOf({ ...scope, since });
  const definitions: FlowDefinition[] = registered.filter((f) => query.flowId === undefined || f.id === query.flowId);
  const have = new Set(definitions.map((f) => `${f.id}@${f.version}`));
  for (const { flowId, flowVersion } of counters) {
    const key = `${flowId}@${flowVersion}`;
    if (have.has(key)) continue;
    have.add(key);
    const definition = await store.getFlowVersion(flowId, flowVersion);
    if (definition) definitions.push(definition);
  }
  const experiments: ReportExperiment[] = [];
  for (const record of await store.experimentsOf(query.flowId)) experiments.push({ ...record, assigned: await store.assignmentCounts(record.experimentId) });
  return flowReport({
    definitions,
    counters,
    lifetimeCounters,
    experiments,
    // The counters are per UTC day: the period starts at the first instant of the day that holds `since`.
    period: { from: Math.floor(since / DAY_MS) * DAY_MS, to: query.to },
    ...(query.flowId === undefined ? {} : { flowIds: [query.flowId] }),
  });
}

function oneQueryValue(req: Request, name: string, example: string): string | undefined {
  const value = req.query[name];
  if (value !== undefined && typeof value !== 'string') throw new BadInputError(`give one value, e.g. ?${name}=${example}`, name);
  return value;
}

export function reportRoutes(deps: ReportRouteDeps): Router {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const router = Router();

  const answer = async (req: Request, res: Response, flowId: string | undefined): Promise<void> => {
    const format = oneQueryValue(req, 'format', 'csv') ?? 'json';
    if (format !== 'json' && format !== 'csv') throw new BadInputError(`"${format}" is not a format: json (the default) or csv`, 'format');
    const sinceMs = parseAuditSince(oneQueryValue(req, 'since', '30d'), 'since', 'the report');
    const report = await loadFlowReport(store, { ...(flowId === undefined ? {} : { flowId }), sinceMs, to: now() });
    if (format === 'csv') res.type('text/csv; charset=utf-8').send(flowReportCsv(report));
    else res.json(report);
  };

  router.get('/api/reports/flows', asyncHandler((req, res) => answer(req, res, undefined)));
  router.get('/api/reports/flows/:flowId', asyncHandler((req, res) => answer(req, res, req.params.flowId ?? '')));

  return router;
}
