// Erasing a customer everywhere: the store's erasure (one transaction), then their arbiter and every flow run that
// had not ended terminated in Temporal, so nothing of theirs runs or sends afterwards. Shared by
// DELETE /api/customers/:id and `microflows customers erase`.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { customerWorkflowId } from '../core/arbiter-state';
import type { ErasureCounts } from '../store/customer-data-store';
import { MicroflowsError } from '../core/errors';
import type { Store } from '../store/store';

/** Why the runs of an erased customer ended, as their Temporal histories show it. */
export const ERASURE_TERMINATION_REASON = 'customer erased';

/** How long an erasure waits for Temporal to answer before it refuses to begin. */
export const TEMPORAL_CHECK_TIMEOUT_MS = 5_000;

/** Ends workflows by id: `closed` when there was none running (never started, already ended, or unknown). */
export interface WorkflowTerminator {
  /** Resolves when Temporal answers within `timeoutMs`. */
  check(timeoutMs: number): Promise<void>;
  terminate(workflowId: string, reason: string): Promise<'terminated' | 'closed'>;
}

/** Terminates through a Temporal client; a workflow that is not running is not an error. */
export function temporalTerminator(client: Client): WorkflowTerminator {
  return {
    async check(timeoutMs) {
      await client.connection.withDeadline(Date.now() + timeoutMs, () => client.workflowService.getSystemInfo({}));
    },
    async terminate(workflowId, reason) {
      try {
        await client.workflow.getHandle(workflowId).terminate(reason);
        return 'terminated';
      } catch (err) {
        // The server answers NotFound for an id it never saw and for an execution that has already closed.
        if (err instanceof WorkflowNotFoundError || (err as { name?: string })?.name === 'WorkflowNotFoundError') return 'closed';
        throw err;
      }
    },
  };
}

export interface ErasureWiring {
  store: Pick<Store, 'eraseCustomer' | 'resolveCustomerId'>;
  workflows: WorkflowTerminator;
  /** The arbiter's workflow id for a customer (pseudonymous when payloads are); default core/arbiter-state customerWorkflowId. */
  arbiterWorkflowId?: (customerId: string) => string;
  /** The customer's subject in data_keys, whose row the erasure deletes (the payload codec's key per customer). */
  dataKeySubject?: (customerId: string) => string;
  /** Drops this process's cached copy of a deleted data key: called once the row is gone, so a decode in between cannot cache it again. */
  forgetDataKey?: (subject: string) => void;
}

/** Temporal does not answer: nothing was erased, since the customer's runs could not be terminated after it. */
export class TemporalUnavailableError extends MicroflowsError {
  override readonly status = 503;
  override readonly code = 'temporal_unavailable';
  override name = 'TemporalUnavailableError';
}

/** The store's erasure is done and logged, but some of the customer's workflows could not be terminated. */
export class ErasureIncompleteError extends MicroflowsError {
  override readonly status = 502;
  override readonly code = 'erasure_incomplete';
  override name = 'ErasureIncompleteError';
  constructor(
    readonly erasureId: string,
    failed: number,
    cause: unknown,
  ) {
    super(
      `erasure ${erasureId} removed the customer's data from the store, but ${failed} of their workflows could not be terminated ` +
        `(${(cause as Error)?.message ?? String(cause)}): their sends find no address and stop; terminate what still runs with ` +
        '`temporal workflow terminate` (the reason "customer erased" marks the ones already done)',
    );
  }
}

/** What an erasure reports: counts and ids only, nothing that names the customer. */
export interface ErasureReport {
  erasureId: string;
  removed: ErasureCounts;
  addresses: number;
  /** How many workflows (arbiter and flow runs) were running and are now terminated. */
  terminated: number;
}

/**
 * Erases `customerId` (an alias names its customer) in the store, then terminates their arbiter and the runs the
 * store had as running. The store goes first: a run that wakes meanwhile finds no profile and a suppressed address,
 * so it sends nothing; terminating first would let an event arriving in between start a new run the erasure misses.
 */
export async function eraseCustomerEverywhere(wiring: ErasureWiring, customerId: string, requestedBy: string, at: number): Promise<ErasureReport> {
  const arbiterWorkflowId = wiring.arbiterWorkflowId ?? customerWorkflowId;
  // Checked before anything is erased: afterwards the runs could no longer be found from the store.
  try {
    await wiring.workflows.check(TEMPORAL_CHECK_TIMEOUT_MS);
  } catch (err) {
    throw new TemporalUnavailableError(
      `Temporal does not answer (${(err as Error)?.message ?? String(err)}), so the customer's runs could not be terminated: nothing was erased; ` +
        'erase again once Temporal is up (GET /api/health shows it)',
    );
  }
  // Resolved here, not only in the store, because the data key's subject and the arbiter's id derive from it.
  const resolved = await wiring.store.resolveCustomerId(customerId);
  const subject = wiring.dataKeySubject?.(resolved);
  const result = await wiring.store.eraseCustomer(resolved, { at, requestedBy, ...(subject !== undefined ? { dataKeySubject: subject } : {}) });
  if (subject !== undefined) wiring.forgetDataKey?.(subject);
  let terminated = 0;
  const failures: unknown[] = [];
  // Every one is tried: one failure must not leave the others running.
  for (const workflowId of [arbiterWorkflowId(resolved), ...result.runningWorkflowIds]) {
    try {
      if ((await wiring.workflows.terminate(workflowId, ERASURE_TERMINATION_REASON)) === 'terminated') terminated += 1;
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length > 0) throw new ErasureIncompleteError(result.erasureId, failures.length, failures[0]);
  return { erasureId: result.erasureId, removed: result.removed, addresses: result.addresses, terminated };
}
