// One customer's run through one flow version (flow/<flow>/<customer>/<n>): walks the compiled graph,
// waiting durably and calling activities for every side effect. Stops when its arbiter says so.
import { condition, getExternalWorkflowHandle, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createActivities, RunAdmission } from '../activities';
import type { FlowNode, NodeId } from '../core/flow-types';
import { FlowClock, scheduleStartOf, type DispatchTiming } from '../core/flow-clock';
import { SEND_HEARTBEAT_TIMEOUT_MS } from '../core/send-heartbeat';
import { msUntilTimeOfDay } from '../core/time-of-day';
import { eventMatches, type EventFacts } from '../core/triggers';
import { currentStepQuery, runEndedSignal, runEventSignal, stopRunSignal, type RunOutcome } from './messages';

type Activities = ReturnType<typeof createActivities>;

const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '30s', retry: { initialInterval: '200ms', maximumInterval: '10s' } });
// Delivery talks to an SMTP server: a regular activity with a longer timeout and unlimited retries. It heartbeats
// while it works, so a send whose worker died is retried once the heartbeat is missed, not after the 2-minute timeout.
const delivery = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: SEND_HEARTBEAT_TIMEOUT_MS,
  retry: { initialInterval: '1s', maximumInterval: '5m' },
});

/** The idempotency key of one send: the run, the step, and the pass through it (loops pass again). */
export function deliveryKeyFor(workflowId: string, nodeId: NodeId, pass: number): string {
  return pass === 1 ? `${workflowId}/${nodeId}` : `${workflowId}/${nodeId}#${pass}`;
}

export interface FlowRunInput {
  customerId: string;
  flowId: string;
  version: number;
  parentWorkflowId: string;
  /**
   * The event that started the run. `ageAtDispatchMs`, set by the server that delivered it, says how late it reached
   * Temporal: the run's waits count from the event's time, not from the run's start (core/flow-clock).
   */
  trigger: EventFacts & DispatchTiming;
  /** The arbiter's decision that admitted this run, recorded by the run as its first step. */
  admission: RunAdmission;
}

export interface FlowRunResult {
  outcome: RunOutcome;
  reason: string;
  /** Emails delivered by this run (a send skipped for lack of an address or consent does not count). */
  sends: number;
}

export async function flowRunWorkflow(input: FlowRunInput): Promise<FlowRunResult> {
  const { workflowId } = workflowInfo();
  let stop: { outcome: 'converted' | 'preempted'; reason: string; eventMessageId: string | null } | undefined;
  const received: EventFacts[] = [];
  let current: NodeId | null = null;
  // The experiment and variant of the last ab_split the run passed: recorded with each later send.
  let experiment: { id: string; variant: string } | undefined;

  setHandler(stopRunSignal, (request) => void (stop ??= request));
  setHandler(runEventSignal, (event) => void received.push(event));
  setHandler(currentStepQuery, () => current);

  const flow = await local.beginRun({ customerId: input.customerId, workflowId, flowId: input.flowId, version: input.version, admission: input.admission });
  // Read only when a `wait: { until }` step needs it: most flows never do.
  let timezone: string | undefined;
  // The schedule starts at the trigger's time (moved onto the workflow's clock): a run started late catches up.
  const clock = new FlowClock(scheduleStartOf(input.admission.enteredAt, input.trigger));
  // A wait whose time has passed still sleeps 1 ms: one timer command per wait, as before late starts were measured,
  // so histories recorded earlier replay the same (condition(fn, 0) would add a patch marker instead).
  const sleepFor = (ms: number) => condition(stopped, Math.max(1, ms));

  let outcome: RunOutcome = 'completed';
  let reason = 'reached the end of the flow';
  let sends = 0;
  // How often each node ran: a send inside a goto loop delivers once per pass, not once per run.
  const visits = new Map<NodeId, number>();
  const stopped = () => stop !== undefined;

  async function step(node: FlowNode): Promise<NodeId | null> {
    switch (node.kind) {
      case 'wait':
        await sleepFor(clock.wait(node.ms, Date.now()));
        return node.next;
      case 'wait_until': {
        const zone = (timezone ??= (await local.customerTimezone(input.customerId)) ?? flow.defaultTimezone);
        await sleepFor(clock.waitUntil((from) => msUntilTimeOfDay(from, node.hour, node.minute, zone), Date.now()));
        return node.next;
      }
      case 'wait_for': {
        const from = received.length;
        let match: EventFacts | undefined;
        const arrived = () => (match = received.slice(from).find((e) => eventMatches(node.match, e))) !== undefined;
        await condition(() => stopped() || arrived(), node.timeoutMs);
        return match ? node.onEvent : node.onTimeout;
      }
      case 'split': {
        const holds = await local.evaluateForCustomer({ customerId: input.customerId, condition: node.when, event: input.trigger, at: Date.now() });
        return holds ? node.then : node.else;
      }
      case 'send': {
        // Quiet hours, best send time and frequency caps answer `deferred`: the step sleeps until then and asks again
        // under the same delivery key. The first ask is the commands older histories recorded, so they replay as before.
        const dueAt = Date.now();
        const deliveryKey = deliveryKeyFor(workflowId, node.id, visits.get(node.id) ?? 1);
        let result: Awaited<ReturnType<Activities['sendEmail']>>;
        for (let attempt = 1; ; attempt++) {
          // The flow's reason is checked again before each ask: a cart emptied since the trigger (a purchase that
          // arrived late, on another server, or while the send was deferred), a lapse undone, takes the flow's exit
          // instead of an email that is wrong.
          if (flow.requires && !(await local.evaluateForCustomer({ customerId: input.customerId, condition: flow.requires, event: input.trigger, at: Date.now() }))) {
            outcome = 'exited';
            const after = attempt === 1 ? '' : ` after waiting ${attempt - 1} time${attempt === 2 ? '' : 's'} (deferred)`;
            reason = `send ${node.id} (${node.template}) not sent: the flow's reason no longer holds${after} (requires ${JSON.stringify(flow.requires)} is false)`;
            return null;
          }
          result = await delivery.sendEmail({
            deliveryKey,
            customerId: input.customerId,
            flowId: input.flowId,
            flowVersion: input.version,
            workflowId,
            nodeId: node.id,
            template: node.template,
            data: node.data,
            trigger: input.trigger,
            scheduledAt: Date.now(),
            dueAt,
            attempt,
            ...(node.at === 'best_time' && attempt === 1 ? { bestTime: { withinMs: node.withinMs ?? 0 } } : {}),
            ...(experiment ? { experiment } : {}),
          });
          if (result.status !== 'deferred') break;
          await sleepFor(result.until - Date.now());
          if (stopped()) return null;
        }
        if (result.status === 'sent' || result.status === 'already_sent') sends += 1;
        return node.next;
      }
      case 'update_profile':
        await local.updateProfile({ customerId: input.customerId, set: node.set, addTags: node.addTags, removeTags: node.removeTags });
        return node.next;
      case 'exit':
        outcome = 'exited';
        reason = `exit step ${node.id}: ${node.reason}`;
        return null;
      case 'ab_split': {
        const chosen = await local.assignVariant({
          experimentId: node.experiment,
          customerId: input.customerId,
          flowId: input.flowId,
          version: input.version,
          stepId: node.id,
          workflowId,
          variants: node.variants.map((v) => ({ name: v.name, weight: v.weight })),
          at: Date.now(),
        });
        // Every later send of the run is measured as this variant's: a variant may change the whole path after it.
        experiment = { id: node.experiment, variant: chosen.variant };
        const branch = node.variants.find((v) => v.name === chosen.variant);
        if (!branch) throw new Error(`ab_split ${node.id} of flow ${flow.id} v${flow.version} has no variant ${chosen.variant}`);
        return branch.next;
      }
    }
  }

  let nodeId = flow.start;
  while (nodeId !== null && !stopped()) {
    const node = flow.nodes[nodeId];
    if (!node) throw new Error(`flow ${flow.id} v${flow.version} has no node ${nodeId}`);
    visits.set(nodeId, (visits.get(nodeId) ?? 0) + 1);
    // The step is read by the currentStep query; a memo upsert per step would cost a visibility write each.
    current = nodeId;
    nodeId = await step(node);
    clock.stepDone(node.kind, Date.now());
  }
  current = null;
  if (stop) {
    outcome = stop.outcome;
    reason = stop.reason;
  }

  await local.finishRun({ workflowId, outcome, at: Date.now(), conversionMessageId: stop?.outcome === 'converted' ? stop.eventMessageId : null });
  try {
    await getExternalWorkflowHandle(input.parentWorkflowId).signal(runEndedSignal, { workflowId, outcome, reason });
  } catch {
    /* the arbiter is gone (terminated by an operator); the outcome is in the store */
  }
  return { outcome, reason, sends };
}
