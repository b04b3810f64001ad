// Experiments (ab_split steps): each customer's variant, fixed at their first assignment, and each experiment's state
// — running until the winner rule decides (or its maximum duration passes), then decided or inconclusive, once.
import type { Kysely, Selectable, Transaction } from 'kysely';
import { parseJson } from './rows';
import type { Database, ExperimentAssignmentsTable, ExperimentsTable } from './schema';

type Db = Kysely<Database>;

export interface ExperimentAssignment {
  experimentId: string;
  customerId: string;
  variant: string;
  assignedAt: number;
  flowId: string;
  flowVersion: number;
  stepId: string;
  workflowId: string;
}

export type ExperimentState = 'running' | 'decided' | 'inconclusive';

export interface ExperimentRecord {
  experimentId: string;
  flowId: string;
  stepId: string;
  startedAt: number;
  state: ExperimentState;
  winner: string | null;
  decidedAt: number | null;
  reason: string | null;
  /** The statistics the decision rested on (core/experiment-stats), as recorded. */
  figures: Record<string, unknown> | null;
  /** The sequential test's state after its last check (core/experiment-stats ExperimentEvidence); null before one. */
  evidence: Record<string, unknown> | null;
}

export function toAssignment(row: Selectable<ExperimentAssignmentsTable>): ExperimentAssignment {
  return {
    experimentId: row.experiment_id,
    customerId: row.customer_id,
    variant: row.variant,
    assignedAt: Number(row.assigned_at),
    flowId: row.flow_id,
    flowVersion: Number(row.flow_version),
    stepId: row.step_id,
    workflowId: row.workflow_id,
  };
}

function toExperiment(row: Selectable<ExperimentsTable>): ExperimentRecord {
  return {
    experimentId: row.experiment_id,
    flowId: row.flow_id,
    stepId: row.step_id,
    startedAt: Number(row.started_at),
    state: row.state as ExperimentState,
    winner: row.winner,
    decidedAt: row.decided_at === null ? null : Number(row.decided_at),
    reason: row.reason,
    figures: row.figures === null ? null : parseJson<Record<string, unknown>>(row.figures),
    evidence: row.evidence === null ? null : parseJson<Record<string, unknown>>(row.evidence),
  };
}

export async function assignmentOf(db: Db, experimentId: string, customerId: string): Promise<ExperimentAssignment | undefined> {
  const row = await db.selectFrom('experiment_assignments').selectAll().where('experiment_id', '=', experimentId).where('customer_id', '=', customerId).executeTakeFirst();
  return row ? toAssignment(row) : undefined;
}

/**
 * Records the customer's variant unless they already have one, and returns the stored assignment (the first one wins,
 * so a race between two runs of one customer ends with one variant). `counted` runs in the same transaction when the
 * row is new: the `assigned` counter of the reports.
 */
export function recordAssignment(db: Db, assignment: ExperimentAssignment, counted?: (trx: Transaction<Database>) => Promise<void>): Promise<ExperimentAssignment> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('experiment_assignments')
      .values({
        experiment_id: assignment.experimentId,
        customer_id: assignment.customerId,
        variant: assignment.variant,
        assigned_at: assignment.assignedAt,
        flow_id: assignment.flowId,
        flow_version: assignment.flowVersion,
        step_id: assignment.stepId,
        workflow_id: assignment.workflowId,
      })
      .onConflict((oc) => oc.columns(['experiment_id', 'customer_id']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) {
      await counted?.(trx);
      return toAssignment(inserted);
    }
    const stored = await trx.selectFrom('experiment_assignments').selectAll().where('experiment_id', '=', assignment.experimentId).where('customer_id', '=', assignment.customerId).executeTakeFirstOrThrow();
    return toAssignment(stored);
  });
}

/** The experiment, recorded as running from `startedAt` when it is new. */
export async function startExperiment(db: Db, experiment: { experimentId: string; flowId: string; stepId: string; startedAt: number }): Promise<ExperimentRecord> {
  // Every entrant asks: one read when the experiment exists, which is all but the first time.
  const known = await experimentOf(db, experiment.experimentId);
  if (known) return known;
  await db
    .insertInto('experiments')
    .values({ experiment_id: experiment.experimentId, flow_id: experiment.flowId, step_id: experiment.stepId, started_at: experiment.startedAt, state: 'running', winner: null, decided_at: null, reason: null, figures: null, evidence: null })
    .onConflict((oc) => oc.column('experiment_id').doNothing())
    .execute();
  return toExperiment(await db.selectFrom('experiments').selectAll().where('experiment_id', '=', experiment.experimentId).executeTakeFirstOrThrow());
}

export async function experimentOf(db: Db, experimentId: string): Promise<ExperimentRecord | undefined> {
  const row = await db.selectFrom('experiments').selectAll().where('experiment_id', '=', experimentId).executeTakeFirst();
  return row ? toExperiment(row) : undefined;
}

export async function experimentsOf(db: Db, flowId?: string): Promise<ExperimentRecord[]> {
  let query = db.selectFrom('experiments').selectAll();
  if (flowId !== undefined) query = query.where('flow_id', '=', flowId);
  return (await query.orderBy('experiment_id').execute()).map(toExperiment);
}

/**
 * Ends a running experiment (decided with a winner, or inconclusive) once: false when it was not running, so two
 * workers that decide at once record one decision.
 */
export async function concludeExperiment(
  db: Db,
  experimentId: string,
  outcome: { state: Exclude<ExperimentState, 'running'>; winner: string | null; at: number; reason: string; figures: Record<string, unknown> },
): Promise<boolean> {
  const result = await db
    .updateTable('experiments')
    .set({ state: outcome.state, winner: outcome.winner, decided_at: outcome.at, reason: outcome.reason, figures: JSON.stringify(outcome.figures) })
    .where('experiment_id', '=', experimentId)
    .where('state', '=', 'running')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Keeps a running experiment's sequential state for its next check. */
export async function saveEvidence(db: Db, experimentId: string, evidence: Record<string, unknown>): Promise<void> {
  await db.updateTable('experiments').set({ evidence: JSON.stringify(evidence) }).where('experiment_id', '=', experimentId).where('state', '=', 'running').execute();
}

/** How many customers each variant of the experiment was given (first assignments). */
export async function assignmentCounts(db: Db, experimentId: string): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('experiment_assignments')
    .select(['variant', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('experiment_id', '=', experimentId)
    .groupBy('variant')
    .execute();
  return new Map(rows.map((r) => [r.variant, Number(r.n)]));
}
