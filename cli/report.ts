// `microflows report [flow] [--since 30d] [--json|--csv]`: each flow's funnel per step and variant, its lift against
// the holdout and its experiments' state (core/flow-report) over the period that ends now, as tables, or as the JSON
// or CSV GET /api/reports/flows answers. Folds the events recorded since the runtime's last pass first, so it is current.
import { parseArgs } from 'node:util';
import { DEFAULT_AUDIT_SINCE, parseAuditSince } from '../core/audit';
import { readConfig } from '../core/config';
import { isMicroflowsError } from '../core/errors';
import { flowReportCsv, formatFlowReport, RATE_BASES } from '../core/flow-report';
import { loadFlowReport } from '../server/report-routes';
import { openStore } from '../store/open-store';

export const REPORT_ARGS = '[flow] [--since 30d] [--json|--csv]';

export const REPORT_USAGE = `usage: microflows report [flow] [--since <duration>] [--json | --csv]

Each flow's numbers over the period that ends now (--since, default ${DEFAULT_AUDIT_SINCE}; e.g. 7d, 2w; whole UTC days), or one
flow's when named:
  funnel       per version, step (in file order: id, kind, template) and variant: assigned, sent, delivered,
               bounced, opened (people's, unique), machine opens apart, clicked, unsubscribed, complained,
               converted and revenue, with rates and 95% Wilson intervals:
                 ${Object.entries(RATE_BASES)
                   .map(([name, base]) => `${name} = ${base}`)
                   .join('\n                 ')}
  lift         treatment entrants against holdout entrants: conversion rate and revenue per recipient, each
               difference with its interval, and the relative lift
  experiments  each ab_split's state (running, decided, inconclusive), winner, when and why, and per-variant figures
Sends count on their day, with their engagement and conversions (the attribution rule: README, "Metrics and
attribution"). --json prints the report as JSON, --csv one row per flow, version, step and variant (the same as
GET /api/reports/flows[/<flow>]?since=…&format=json|csv). Reads the store (DATABASE_URL, or the SQLite file).`;

export async function runReport(args: string[]): Promise<number> {
  let values: { since?: string; json?: boolean; csv?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, allowPositionals: true, options: { since: { type: 'string' }, json: { type: 'boolean' }, csv: { type: 'boolean' } } }));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\nusage: microflows report ${REPORT_ARGS}`);
    return 1;
  }
  if (positionals.length > 1) {
    console.error(`one flow at most, got ${positionals.map((p) => JSON.stringify(p)).join(', ')}\nusage: microflows report ${REPORT_ARGS}`);
    return 1;
  }
  if (values.json === true && values.csv === true) {
    console.error(`--json and --csv: choose one\nusage: microflows report ${REPORT_ARGS}`);
    return 1;
  }
  let sinceMs: number;
  try {
    sinceMs = parseAuditSince(values.since, '--since', 'the report');
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    console.error(err.message);
    return 1;
  }
  const [flowId] = positionals;
  const store = openStore(readConfig(process.env, process.cwd()));
  try {
    await store.migrate();
    // The registered flows' goal events decide what converts, as in the runtime, which registers its flows at start.
    await store.foldMetrics({ flows: await store.latestFlowVersions() });
    const report = await loadFlowReport(store, { ...(flowId === undefined ? {} : { flowId }), sinceMs, to: Date.now() });
    process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : values.csv === true ? flowReportCsv(report) : `${formatFlowReport(report)}\n`);
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    console.error(err.message);
    return 1;
  } finally {
    await store.close();
  }
  return 0;
}
