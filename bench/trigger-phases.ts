// Where a trigger's time goes, read from the arbiter's own history: for a sample of customers, the
// server timestamps of each step between `POST /v1/track` and the flow run's start.
import type { Client } from '@temporalio/client';
import { customerWorkflowId } from '../core/arbiter-state';
import { mapLimit, summarize, type LatencySummary } from './open-loop';

export const PHASES = [
  'HTTP 200 back at the sender',
  'arbiter started (signalWithStart)',
  'arbiter task picked up by the worker',
  'arbiter task done (local activities + startChild)',
  'flow run started',
] as const;

export type Phase = (typeof PHASES)[number];

type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;

export function timestampMs(ts: Timestamp): number | undefined {
  if (!ts) return undefined;
  const seconds = ts.seconds === null || ts.seconds === undefined ? 0 : Number(String(ts.seconds));
  return seconds * 1000 + (ts.nanos ?? 0) / 1e6;
}

export interface TriggerSample {
  customerId: string;
  sentAt: number;
  respondedAt: number;
  runStartedAt: number | undefined;
}

/** Time from the send to each phase, p50/p99 over the sample. */
export async function triggerPhases(client: Client, flowId: string, samples: TriggerSample[]): Promise<Map<Phase, LatencySummary>> {
  const elapsed = new Map<Phase, Array<number | undefined>>(PHASES.map((p) => [p, []]));
  await mapLimit(samples, 8, async (sample) => {
    const history = await client.workflow.getHandle(customerWorkflowId(sample.customerId)).fetchHistory();
    const events = history.events ?? [];
    const at = (has: (e: (typeof events)[number]) => unknown) => timestampMs(events.find((e) => has(e))?.eventTime);
    const since = (t: number | undefined) => (t === undefined ? undefined : t - sample.sentAt);
    elapsed.get('HTTP 200 back at the sender')!.push(sample.respondedAt - sample.sentAt);
    elapsed.get('arbiter started (signalWithStart)')!.push(since(at((e) => e.workflowExecutionStartedEventAttributes)));
    elapsed.get('arbiter task picked up by the worker')!.push(since(at((e) => e.workflowTaskStartedEventAttributes)));
    elapsed.get('arbiter task done (local activities + startChild)')!.push(since(at((e) => e.workflowTaskCompletedEventAttributes)));
    elapsed.get('flow run started')!.push(since(sample.runStartedAt));
  });
  return new Map(PHASES.map((p) => [p, summarize(elapsed.get(p)!)]));
}
