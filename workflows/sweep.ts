// The periodic sweep, started by a Temporal Schedule: finds conditions that became true with time
// alone (no purchase for 60 days) and re-signals those customers. The finding is an activity.
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';

type Activities = ReturnType<typeof createActivities>;

const sweep = proxyActivities<Activities>({ startToCloseTimeout: '10m', heartbeatTimeout: '1m', retry: { maximumInterval: '1m' } });

export interface SweepResult {
  signalled: number;
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
  return { signalled, at };
}
