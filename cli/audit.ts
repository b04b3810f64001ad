// `microflows audit [--since 30d] [--json]`: the overlap and fatigue audit (core/audit) of the store's history over
// the period that ends now, as tables or as the JSON GET /api/audit answers.
import { parseArgs } from 'node:util';
import { auditReport, DEFAULT_AUDIT_SINCE, formatAuditReport, parseAuditSince } from '../core/audit';
import { readConfig } from '../core/config';
import { isMicroflowsError } from '../core/errors';
import { openStore } from '../store/open-store';

export const AUDIT_ARGS = '[--since 30d] [--json]';

export const AUDIT_USAGE = `usage: microflows audit [--since <duration>] [--json]

What really happened over the period that ends now (--since, default ${DEFAULT_AUDIT_SINCE}; e.g. 7d, 2w, 12h):
  flow pairs     customers with decisions for both flows, and how their cases were resolved: preempted,
                 suppressed, queued, deferred by a cap, skipped by a cap, held for quiet hours (or unresolved)
  emails/week    how many customers got 0, 1, 2, 3, 4, 5+ emails in each ISO week (UTC; customers seen that week)
  rates          unsubscribe and complaint rates of customer-weeks by that weekly volume
  sends per flow skipped and deferred sends of each flow's send attempts; flows over half are listed
--json prints the report as JSON (the same as GET /api/audit?since=…).
Reads the store (DATABASE_URL, or the SQLite file).`;

export async function runAudit(args: string[]): Promise<number> {
  let values: { since?: string; json?: boolean };
  try {
    ({ values } = parseArgs({ args, options: { since: { type: 'string' }, json: { type: 'boolean' } } }));
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\nusage: microflows audit ${AUDIT_ARGS}`);
    return 1;
  }
  let sinceMs: number;
  try {
    sinceMs = parseAuditSince(values.since, '--since');
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    console.error(err.message);
    return 1;
  }
  const to = Date.now();
  const period = { from: to - sinceMs, to };
  const store = openStore(readConfig(process.env, process.cwd()));
  try {
    await store.migrate();
    const report = auditReport(await store.auditRows(period), period);
    process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${formatAuditReport(report)}\n`);
  } finally {
    await store.close();
  }
  return 0;
}
