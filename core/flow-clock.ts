// When a flow run's waits end: counted from its trigger event's time, so a run that started late (its event was
// acknowledged while Temporal was down, and delivered when it came back) keeps the schedule the event set instead
// of starting it over. Pure: the workflow passes its own clock.
import type { FlowNode } from './flow-types';
import { BACKFILL_AGE_MS } from './triggers';

/** What the server tells a run about its trigger's lateness, carried on the event it signals. */
export interface DispatchTiming {
  /**
   * How old the event was when the server handed it to Temporal: the server's clock minus the event's time, ms.
   * Measured on one clock, so it holds whatever the workflow's clock says (a time-skipping test server's included).
   */
  ageAtDispatchMs?: number;
}

/**
 * How far back a run's schedule may start: events older than this start no flow at all (core/triggers
 * `isBackfill`), so a run never has more of its schedule to catch up on than this.
 */
export const LATE_START_LIMIT_MS = BACKFILL_AGE_MS;

/**
 * The moment a run's schedule starts, on the workflow's clock: the moment it was admitted, moved back by how late its
 * event reached Temporal (at most LATE_START_LIMIT_MS). A trigger without timing (the inactivity sweep's) starts at
 * admission; so does a trigger the arbiter queued, whose event was on time: its run starts when it is let in.
 */
export function scheduleStartOf(admittedAt: number, timing: DispatchTiming): number {
  const age = timing.ageAtDispatchMs;
  if (typeof age !== 'number' || !Number.isFinite(age) || age <= 0) return admittedAt;
  return admittedAt - Math.min(age, LATE_START_LIMIT_MS);
}

/**
 * The run's schedule: the moment its current step was due. A `wait` ends `ms` after the previous step was due, so
 * waits that a late start has already used up end at once and later ones keep their places. Steps that take real
 * time and face the customer (a send, a wait_for on their next event) move the schedule to when they finished, so
 * the spacing between two emails is never eaten by lateness. split and update_profile take no time.
 */
export class FlowClock {
  constructor(private dueAt: number) {}

  /** When the current step was due. */
  get due(): number {
    return this.dueAt;
  }

  /** A `wait` of `ms` reached at `now`: how long it still has to run (0: its time has passed). */
  wait(ms: number, now: number): number {
    this.dueAt += ms;
    return Math.max(0, this.dueAt - now);
  }

  /** A `wait` until a time of day: `msUntil(from)` is the time from `from` to the next such moment (core/time-of-day). */
  waitUntil(msUntil: (from: number) => number, now: number): number {
    this.dueAt += msUntil(this.dueAt);
    return Math.max(0, this.dueAt - now);
  }

  /** A step other than a wait finished at `now`. */
  stepDone(kind: FlowNode['kind'], now: number): void {
    if (kind === 'send' || kind === 'wait_for') this.dueAt = Math.max(this.dueAt, now);
  }
}
