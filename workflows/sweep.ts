// The periodic sweep, started by a Temporal Schedule: finds conditions that became true with time
// alone (no purchase for 60 days) and re-signals those customers. The finding is an activity.
import { patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';

type Activities = ReturnType<typeof createActivities>;

const sweep = proxyActivities<Activities>({ startToCloseTimeout: '10m', heartbeatTimeout: '1m', retry: { maximumInterval: '1m' } });

export interface SweepResult {
  signalled: number;
  /** Events the retention purge deleted (MICROFLOWS_EVENT_RETENTION; 0 when unset). */
  purged: number;
  /** Sweep time (epoch ms), the "now" every inactivity window was measured against. */
  at: number;
}

export async function sweepWorkflow(): Promise<SweepResult> {
  const at = Date.now();
  let signalled = 0;
  let cursor: string | null = null;
  do {
    const page: { signalled: number; nextCursor: string | null } = await sweep.sweepInactivity({ now: at, cursor, pageSize: 500, sweepId: workflowInfo().workflowId });
    signalled += page.signalled;
    cursor = page.nextCursor;
  } while (cursor !== null);
  // After the inactivity pages, which read the events the purge may delete. Patched: a sweep started before this
  // step existed replays without it.
  let purged = 0;
  if (patched('event-retention')) {
    let after: string | null = null;
    do {
      const page: { purged: number; next: string | null } = await sweep.purgeExpiredEvents({ now: at, after, limit: 200 });
      purged += page.purged;
      after = page.next;
    } while (after !== null);
  }
  return { signalled, at, purged };
}

export interface SegmentSweepResult {
  evaluated: number;
  changes: number;
  failed: number;
  /** The "now" every due check was compared with and every customer evaluated at. */
  at: number;
}

/** Pages through the customers whose segment check has come (and no one else), then marks the segments swept. */
export async function segmentSweepWorkflow(input: { pageSize?: number } = {}): Promise<SegmentSweepResult> {
  const at = Date.now();
  await sweep.refreshRfm({ now: at });
  let evaluated = 0;
  let changes = 0;
  let failed = 0;
  type Cursor = { dueAt: number; customerId: string } | null;
  let after: Cursor = null;
  do {
    const page: { evaluated: number; changes: number; failed: number; next: Cursor } = await sweep.sweepSegments({ now: at, limit: input.pageSize ?? 500, after });
    evaluated += page.evaluated;
    changes += page.changes;
    failed += page.failed;
    after = page.next;
  } while (after !== null);
  // A sweep with failures has not applied everything up to `at`: the report keeps the previous sweep time.
  if (failed === 0) await sweep.markSegmentsSwept({ now: at });
  return { evaluated, changes, failed, at };
}
