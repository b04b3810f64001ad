// How long the server waits between passes over the events still owed to Temporal: soon when the last pass went
// through, doubling after each pass that failed, up to a cap that bounds how long after Temporal's return they wait.
// Pure: the caller passes the jitter.

export interface RedispatchSchedule {
  /** The wait after a pass that delivered everything it tried (or found nothing owed): also the polling period. */
  baseMs: number;
  /** The most a wait grows to while passes keep failing. */
  capMs: number;
  /** Each wait is spread by up to ± this fraction, so servers sharing one database do not retry in step. */
  jitter: number;
}

/**
 * 1 s while nothing fails; 2, 4, 8, 10, 10 … s while Temporal is down. The 10 s cap is what bounds the delay after
 * Temporal comes back (an attempt already in flight retries its own call within 5 s, the client's gRPC backoff).
 */
export const REDISPATCH_SCHEDULE: RedispatchSchedule = { baseMs: 1_000, capMs: 10_000, jitter: 0.1 };

/**
 * The wait before the next pass, after `consecutiveFailedPasses` passes in a row failed (0: the last one went
 * through). `random` is in [0, 1): 0.5 gives the undisturbed value.
 */
export function redispatchDelay(consecutiveFailedPasses: number, random: number, schedule: RedispatchSchedule = REDISPATCH_SCHEDULE): number {
  const failures = Number.isFinite(consecutiveFailedPasses) && consecutiveFailedPasses > 0 ? Math.floor(consecutiveFailedPasses) : 0;
  // 2^failures overflows to Infinity long after the cap is reached; min() keeps it finite.
  const undisturbed = Math.min(schedule.capMs, schedule.baseMs * Math.pow(2, failures));
  const spread = 1 + schedule.jitter * (2 * Math.min(Math.max(random, 0), 1) - 1);
  return Math.round(undisturbed * spread);
}
