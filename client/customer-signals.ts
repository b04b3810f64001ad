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
}

/**
 * Returns whether the event reached a workflow. `ageAtDispatchMs` travels with the event's facts through the arbiter
 * to the run it starts (workflows/flow-run.ts `FlowRunInput.trigger`), whose waits count from the event's time.
 */
export async function signalCustomerEvent(target: SignalTarget, customerId: string, event: CustomerEventSignalInput & DispatchTiming): Promise<boolean> {
  const workflowId = customerWorkflowId(customerId);
  if (event.triggers.length > 0) {
    await target.client.workflow.signalWithStart('customerWorkflow', {
      workflowId,
      taskQueue: target.taskQueue,
      args: [{ customerId, searchAttributes: target.searchAttributes }],
      signal: customerEventSignal,
      signalArgs: [event],
      typedSearchAttributes: target.searchAttributes ? customerSearchAttributes(customerId) : undefined,
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
