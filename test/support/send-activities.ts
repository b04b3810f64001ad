// The sendEmail activities of a run as the Temporal server sees them, for the crash tests that kill a worker mid-send
// (test/integration/send-retry, send-cap-crash).
import { defaultPayloadConverter } from '@temporalio/common';
import type { Runtime } from '../../cli/runtime';

/** Temporal's enum value for an activity handed to a worker (PENDING_ACTIVITY_STATE_STARTED). */
const ACTIVITY_STARTED = 2;

/** The send activities of a run as Temporal recorded them: the attempt that completed, and what it returned. */
export async function recordedSends<Result = Record<string, unknown>>(runtime: Runtime, workflowId: string): Promise<Array<{ attempt: number; result: Result }>> {
  const events = (await runtime.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const sends = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendEmail').map((e) => String(e.eventId)));
  const attempts = new Map(events.filter((e) => e.activityTaskStartedEventAttributes).map((e) => [String(e.eventId), e.activityTaskStartedEventAttributes!.attempt ?? 0]));
  const completed = events.filter((e) => e.activityTaskCompletedEventAttributes && sends.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId))).map((e) => e.activityTaskCompletedEventAttributes!);
  // Histories hold encrypted payloads: the runtime's codec opens them.
  const results = await runtime.payloads.codec.decode(completed.map((done) => done.result!.payloads![0]!));
  return completed.map((done, i) => ({ attempt: attempts.get(String(done.startedEventId)) ?? 0, result: defaultPayloadConverter.fromPayload(results[i]!) as Result }));
}

/** The run's send activity that a worker is executing now, if any. */
export async function runningSend(runtime: Runtime, workflowId: string): Promise<{ attempt: number } | undefined> {
  const described = await runtime.client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
  const send = described.pendingActivities?.find((a) => a.activityType?.name === 'sendEmail' && a.state === ACTIVITY_STARTED);
  return send ? { attempt: send.attempt ?? 0 } : undefined;
}
