// Delivers an event to a customer's arbiter workflow: signalWithStart when a trigger fired (the arbiter
// may not exist yet), a plain signal when only a running flow could care (never starts a workflow).
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { CustomerEventSignalInput } from '../core/arbiter-state';
import { customerWorkflowId } from '../core/arbiter-state';
import type { DispatchTiming } from '../core/flow-clock';
import { customerEventSignal } from '../workflows/messages';
import { customerSearchAttributes } from '../workflows/search-attributes';

export interface SignalTarget {
  client: Client;
  taskQueue: string;
  searchAttributes: boolean;
  /**
   * What the customer's workflow ids and CustomerId search attribute carry instead of their id (their pseudonymous
   * subject, MICROFLOWS_PSEUDONYMOUS_IDS); absent: the id. Workflows cannot hash (no node:crypto): it travels in the input.
   */
  workflowKeyOf?: (customerId: string) => Promise<string>;
}

/**
 * Returns whether the event reached a workflow. `ageAtDispatchMs` travels with the event's facts through the arbiter
 * to the run it starts (workflows/flow-run.ts `FlowRunInput.trigger`), whose waits count from the event's time.
 */
export async function signalCustomerEvent(target: SignalTarget, customerId: string, event: CustomerEventSignalInput & DispatchTiming): Promise<boolean> {
  const workflowKey = target.workflowKeyOf ? await target.workflowKeyOf(customerId) : customerId;
  const workflowId = customerWorkflowId(workflowKey);
  if (event.triggers.length > 0) {
    await target.client.workflow.signalWithStart('customerWorkflow', {
      workflowId,
      taskQueue: target.taskQueue,
      // The input names the key only when it is not the id, so arbiters started before it existed replay the same.
      args: [{ customerId, searchAttributes: target.searchAttributes, ...(workflowKey !== customerId ? { workflowKey } : {}) }],
      signal: customerEventSignal,
      signalArgs: [event],
      typedSearchAttributes: target.searchAttributes ? customerSearchAttributes(workflowKey) : undefined,
    });
    return true;
  }
  try {
    await target.client.workflow.getHandle(workflowId).signal(customerEventSignal, event);
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false; // no flow in flight for this customer
    throw err;
  }
}
