// The seam between ingest and Temporal: the server stores every event, and a dispatcher decides which ones
// Temporal must hear about (so most events never leave the database).
import type { NewEvent, RecordEventResult } from '../store/store';

export interface EventDispatcher {
  /** Decides from the event alone whether it could matter to Temporal (trigger or listened-to event); such events are stored with dispatched=false. */
  needsDispatch(event: NewEvent): boolean;
  /** Called after the event's transaction committed (not for duplicates). Must not throw into the request. */
  dispatch(result: RecordEventResult): void;
}

/** For a deployment with no flows: nothing is owed to Temporal. */
export const noDispatch: EventDispatcher = {
  needsDispatch: () => false,
  dispatch: () => undefined,
};
