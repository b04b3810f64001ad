// Signals and queries between the ingest path, the customer arbiter and flow runs, named for what they are.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { CustomerEventSignalInput, DecisionLogEntry } from '../core/arbiter-state';
import type { ActiveRun } from '../core/arbitration';
import type { EventFacts } from '../core/triggers';

/** An event for a customer, with the flows its triggers fired. Sent by ingest (signalWithStart) and the sweep. */
export const customerEventSignal = defineSignal<[CustomerEventSignalInput]>('customerEvent');

export type RunOutcome = 'completed' | 'converted' | 'exited' | 'failed' | 'preempted';

/** A flow run tells its customer's arbiter that it ended. */
export const runEndedSignal = defineSignal<[{ workflowId: string; outcome: RunOutcome; reason: string }]>('runEnded');

/** The arbiter stops a run: it was preempted, or its goal event arrived. */
export const stopRunSignal = defineSignal<[{ outcome: 'converted' | 'preempted'; reason: string; eventMessageId: string | null }]>('stopRun');

/** The arbiter forwards an event a run's wait_for step may be waiting for. */
export const runEventSignal = defineSignal<[EventFacts]>('runEvent');

export const decisionsQuery = defineQuery<DecisionLogEntry[]>('decisions');
export const activeRunsQuery = defineQuery<ActiveRun[]>('activeRuns');
export const currentStepQuery = defineQuery<string | null>('currentStep');
