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

/** Hands newly stored events to the dispatcher after their commit; a dispatch failure never reaches the caller. */
export function dispatchRecorded(dispatcher: EventDispatcher, log: (message: string) => void, results: RecordEventResult[]): void {
  for (const result of results) {
    // A dropped event (no tracking consent) was never stored: nothing to trigger, no segment to re-evaluate.
    if (result.duplicate || result.dropped) continue;
    try {
      dispatcher.dispatch(result);
    } catch (err) {
      // The event stays undispatched in the store, so recovery at the next start picks it up.
      log(`[dispatch] dispatch of ${result.event.messageId} failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
}
